//! Property tests standing in for a fuzzer (cargo fuzz needs a nightly
//! toolchain): arbitrary input through parsing, validation and rendering.
//! Runs with a fixed seed so CI is repeatable; set PROPTEST_CASES to run more.

mod common;

use std::sync::OnceLock;

use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::Value;

use securetunnel_operator::api::SecureTunnel;
use securetunnel_operator::offline::{render_file, RenderInput};
use securetunnel_operator::render::{desired_children, Dereferenced};
use securetunnel_operator::token::TunnelToken;

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(common::crd_schema)
}

fn token() -> TunnelToken {
    let json = r#"{"a":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","t":"6ff42ae2-765d-4adf-8112-31c55c1551ef","s":"c2VjcmV0"}"#;
    TunnelToken::parse(
        base64::engine::general_purpose::STANDARD
            .encode(json)
            .as_bytes(),
    )
    .expect("token")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(400),
        rng_seed: RngSeed::Fixed(0x5ec7_0e11),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What must hold for every child of an accepted spec.
fn check_children(obj: &Value) -> Result<(), TestCaseError> {
    let tunnel: SecureTunnel =
        serde_json::from_value(obj.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let children = desired_children(
        &tunnel,
        &Dereferenced {
            token: Some(token()),
            ..Default::default()
        },
    )
    .map_err(|e| TestCaseError::fail(format!("an accepted spec failed to render: {e}")))?;
    let name = format!(
        "{}-cloudflared",
        tunnel.metadata.name.as_deref().unwrap_or_default()
    );
    prop_assert!(name.len() <= 63, "{name} is not a DNS label");

    let values = children
        .to_values()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for v in &values {
        prop_assert_eq!(v["metadata"]["name"].as_str(), Some(name.as_str()));
    }
    // Each child reads back as its Kubernetes type.
    let kinds: Vec<&str> = values.iter().filter_map(|v| v["kind"].as_str()).collect();
    for (kind, v) in kinds.iter().zip(&values) {
        let ok = match *kind {
            "NetworkPolicy" => {
                serde_json::from_value::<k8s_openapi::api::networking::v1::NetworkPolicy>(v.clone())
                    .is_ok()
            }
            "Secret" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(v.clone()).is_ok()
            }
            "ConfigMap" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(v.clone()).is_ok()
            }
            "ServiceAccount" => {
                serde_json::from_value::<k8s_openapi::api::core::v1::ServiceAccount>(v.clone())
                    .is_ok()
            }
            "Deployment" => {
                serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(v.clone()).is_ok()
            }
            "PodDisruptionBudget" => serde_json::from_value::<
                k8s_openapi::api::policy::v1::PodDisruptionBudget,
            >(v.clone())
            .is_ok(),
            _ => false,
        };
        prop_assert!(ok, "{kind} does not read back");
    }

    // The sandbox never opens "anything".
    for rule in children
        .network_policy
        .spec
        .iter()
        .flat_map(|s| s.egress.iter().flatten())
    {
        prop_assert!(
            rule.to.as_ref().is_some_and(|t| !t.is_empty()),
            "an egress rule allows every destination"
        );
    }
    // The token only in the Secret; the connector reads it from a file.
    let deployment = serde_json::to_string(&children.deployment)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(!deployment.contains(token().expose_secret()));
    let container = &children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod")
        .containers[0];
    prop_assert!(container.env.is_none());
    prop_assert!(container
        .args
        .as_ref()
        .is_some_and(|a| a.iter().any(|x| x == "--token-file")));

    // config.yaml: the rules in order, then the fallback.
    let config_yaml = &children.config_map.data.as_ref().expect("data")["config.yaml"];
    let config: serde_norway::Value =
        serde_norway::from_str(config_yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let rules = config["ingress"].as_sequence().expect("ingress");
    prop_assert_eq!(rules.len(), tunnel.spec.ingress.len() + 1);
    prop_assert_eq!(
        rules[rules.len() - 1]["service"].as_str(),
        Some(tunnel.spec.fallback.as_str())
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Anything at all fed to `render -f`: an error or output, never a panic.
    #[test]
    fn arbitrary_text_never_panics_the_offline_render(input in r"(\PC|\n){0,300}") {
        let _ = render_file(RenderInput { source: "fuzz", input: &input, ..Default::default() });
    }

    /// Arbitrary YAML-shaped documents, some of them SecureTunnels.
    #[test]
    fn arbitrary_documents_never_panic_the_offline_render(
        kind in prop::sample::select(vec!["SecureTunnel", "Secret", "Service", "Other", ""]),
        body in r"(\PC|\n){0,200}",
        token in prop::option::of(r"\PC{0,60}"),
    ) {
        let input = format!("apiVersion: securetunnel.dev/v1alpha1\nkind: {kind}\n{body}");
        let _ = render_file(RenderInput { source: "fuzz", input: &input, token: token.as_deref().map(str::as_bytes), ..Default::default() });
    }

    /// Generated specs: admission and the operator agree that anything the
    /// operator accepts is admitted, and every accepted spec renders
    /// children that hold the operator's invariants.
    #[test]
    fn accepted_specs_are_admitted_and_render_sound_children(obj in common::spec_gen::any_tunnel()) {
        let operator = common::operator(&obj);
        let admission = common::admission(schema(), &obj);
        if let Ok(errors) = &operator {
            if errors.is_empty() {
                prop_assert!(admission.is_empty(), "the operator accepts what admission refuses: {:?}\n{}", admission, obj);
                check_children(&obj)?;
                // The same object through the offline path gives the same children.
                let yaml = serde_norway::to_string(&obj).expect("yaml");
                let rendered = render_file(RenderInput { source: "fuzz", input: &yaml, ..Default::default() });
                prop_assert!(rendered.is_ok(), "offline render refused an accepted spec: {:?}", rendered.err());
            }
        }
        // Admission admits nothing the operator refuses, but for the rules
        // CEL cannot express (see tests/admission.rs).
        if admission.is_empty() {
            if let Ok(errors) = &operator {
                for (path, message) in errors {
                    let expressible = !(path.ends_with(".path")
                        || message.contains("older than 2025.4.0")
                        || message.contains("same hostname and path")
                        || message.contains("from 1 to 65535")
                        || message.contains("not a valid label"));
                    prop_assert!(!expressible, "admitted, but the operator refuses {}: {}\n{}", path, message, obj);
                }
            }
        }
    }
}

#[test]
fn the_generator_produces_both_accepted_and_refused_specs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config());
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..300 {
        let obj = common::spec_gen::any_tunnel()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        match common::operator(&obj) {
            Ok(errors) if errors.is_empty() => accepted += 1,
            _ => refused += 1,
        }
    }
    assert!(
        accepted >= 15,
        "only {accepted} of 300 generated specs were valid: the property above would test little"
    );
    assert!(
        refused >= 100,
        "only {refused} of 300 generated specs were invalid"
    );
}
