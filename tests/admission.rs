//! One table of specs, checked twice: by what the API server would enforce
//! at admission (the CRD's OpenAPI schema, with a JSON Schema validator, and
//! its CEL rules, with kube's CEL evaluator) and by the operator's own
//! `validate`. A rule cannot be changed on one side without this test
//! noticing; where admission cannot express a rule, the case says why.

mod common;

use common::admission_table::{apply_edits, bad_cases, good_cases, Admission, Operator};
use common::{admission, crd_schema, operator};

#[test]
fn the_table_is_big_enough() {
    assert!(bad_cases().len() >= 60, "{} bad cases", bad_cases().len());
    assert!(
        good_cases().len() >= 20,
        "{} good cases",
        good_cases().len()
    );
}

#[test]
fn good_specs_pass_admission_and_the_operator() {
    let schema = crd_schema();
    for (name, edits) in good_cases() {
        let obj = apply_edits(&edits);
        assert_eq!(
            admission(&schema, &obj),
            Vec::<(String, String)>::new(),
            "admission refused good case {name:?}"
        );
        assert_eq!(
            operator(&obj),
            Ok(Vec::new()),
            "the operator refused good case {name:?}"
        );
    }
}

#[test]
fn bad_specs_are_refused_by_the_operator_and_wherever_possible_at_admission() {
    let schema = crd_schema();
    let mut failures = Vec::new();
    for case in bad_cases() {
        let obj = apply_edits(&case.edits);
        let name = case.name;

        match (&case.operator, operator(&obj)) {
            (Operator::CannotParse, Err(_)) => {}
            (Operator::CannotParse, Ok(errors)) => {
                failures.push(format!("{name}: expected a parse error, got {errors:?}"))
            }
            (Operator::Refuses(_, _), Err(e)) => {
                failures.push(format!("{name}: does not parse: {e}"))
            }
            (Operator::Refuses(path, needle), Ok(errors)) => {
                if !errors.iter().any(|(p, m)| p == path && m.contains(needle)) {
                    failures.push(format!(
                        "{name}: operator gave {errors:?}, expected {path}: …{needle}…"
                    ));
                }
            }
        }

        let refusals = admission(&schema, &obj);
        match case.admission {
            Admission::Refuses(path) => {
                if !refusals.iter().any(|(p, _)| p == path) {
                    failures.push(format!(
                        "{name}: admission gave {refusals:?}, expected a refusal at {path:?}"
                    ));
                }
            }
            Admission::CannotExpress(why) => {
                assert!(!why.is_empty());
                if !refusals.is_empty() {
                    failures.push(format!(
                        "{name}: admission now refuses it ({refusals:?}): mark the case Refuses"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
