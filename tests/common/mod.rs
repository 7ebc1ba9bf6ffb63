//! Helpers shared by the integration tests: the two verdicts on a spec
//! (admission, as the API server would give it, and the operator's) and a
//! generator of arbitrary specs.
#![allow(dead_code)] // each test binary uses a different subset

pub mod admission_table;
pub mod dashboard;
pub mod spec_gen;
pub mod tools;

use kube::core::cel::Validator;
use kube::CustomResourceExt;
use serde_json::Value;

use securetunnel_operator::api::SecureTunnel;
use securetunnel_operator::validate::validate;

/// The CRD's openAPIV3Schema, as the API server holds it.
pub fn crd_schema() -> Value {
    let crd = SecureTunnel::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Admission's verdict: every refusal as (field path, message). The schema
/// (types, patterns, bounds) is checked with a JSON Schema validator, then
/// the CEL rules with kube's CEL evaluator, as the API server orders them.
pub fn admission(schema: &Value, obj: &Value) -> Vec<(String, String)> {
    let mut refusals = Vec::new();
    let validator =
        jsonschema::validator_for(schema).expect("the CRD schema compiles as JSON Schema");
    for e in validator.iter_errors(obj) {
        let mut path = pointer_to_path(&e.instance_path().to_string());
        // The API server names a missing required field by its own path
        // (`spec.ingress: Required value`), not by its parent's.
        if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
            if let Some(name) = property.as_str() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
            }
        }
        refusals.push((path, e.to_string()));
    }
    if refusals.is_empty() {
        if let Err(errors) = Validator::new().validate(schema, obj, None) {
            for e in errors.into_vec() {
                refusals.push((e.field_path.clone(), e.message.clone()));
            }
        }
    }
    refusals
}

/// `/spec/ingress/0/service` -> `spec.ingress[0].service`
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// The operator's verdict: every refusal as (field path, message), or the parse error.
pub fn operator(obj: &Value) -> Result<Vec<(String, String)>, String> {
    let tunnel: SecureTunnel = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let name = tunnel.metadata.name.clone().unwrap_or_default();
    Ok(match validate(&name, &tunnel.spec) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.into_iter().map(|e| (e.path, e.message)).collect(),
    })
}
