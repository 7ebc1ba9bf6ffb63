//! The admission table (tests/common/admission_table.rs), sent to the real API server with
//! server-side dry run: every bad case refused at its field path, every good case accepted.

use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::Value;

use securetunnel_operator::api::SecureTunnel;

use crate::common::admission_table::{apply_edits, bad_cases, good_cases, Admission};
use crate::support::Outcome;

async fn dry_run(client: &Client, namespace: &str, mut obj: Value) -> Result<(), String> {
    obj["metadata"]["namespace"] = Value::from(namespace);
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<SecureTunnel>(&()),
    );
    let object: DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&params, &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(format!("{} ({})", status.message, status.code)),
        Err(e) => Err(format!("transport: {e}")),
    }
}

pub async fn bad_specs_refused(client: &Client, namespace: &str) -> Outcome {
    let mut disagreements = Vec::new();
    let cases = bad_cases();
    for case in &cases {
        let answer = dry_run(client, namespace, apply_edits(&case.edits)).await;
        match (&case.admission, answer) {
            (_, Err(e)) if e.starts_with("transport") => return Err(format!("{}: {e}", case.name)),
            (Admission::Refuses(path), Err(message)) => {
                if !path.is_empty() && !message.contains(&format!("{path}:")) && !message.contains(&format!("{path} ")) {
                    disagreements.push(format!(
                        "{}: refused, but the message does not name {path}: {message}",
                        case.name
                    ));
                }
            }
            (Admission::Refuses(path), Ok(())) => disagreements.push(format!(
                "{}: the API server accepted it; the table expects a refusal at {path}",
                case.name
            )),
            (Admission::CannotExpress(_), Ok(())) => {}
            (Admission::CannotExpress(why), Err(message)) => disagreements.push(format!(
                "{}: the table says admission cannot refuse it ({why}), but the API server did: {message}",
                case.name
            )),
        }
    }
    if disagreements.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} bad cases disagree with the API server:\n  {}",
            disagreements.len(),
            cases.len(),
            disagreements.join("\n  ")
        ))
    }
}

pub async fn good_specs_accepted(client: &Client, namespace: &str) -> Outcome {
    let mut refused = Vec::new();
    let cases = good_cases();
    for (name, edits) in &cases {
        if let Err(message) = dry_run(client, namespace, apply_edits(edits)).await {
            refused.push(format!("{name}: {message}"));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the API server refused {} of {} good cases:\n  {}",
            refused.len(),
            cases.len(),
            refused.join("\n  ")
        ))
    }
}

/// Fields the spec does not have (a container's arguments or environment, a security
/// context, another metrics port) are refused by `kubectl apply`, whose default
/// `--validate=strict` asks the API server to fail on any field it would drop: nothing
/// can put the token on a command line or in the environment, widen the metrics port or
/// run the connector as root.
pub fn fields_outside_the_schema_refused(env: &crate::support::Env, namespace: &str) -> Outcome {
    let tunnel = |extra: &str| {
        format!(
            "apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: strict, namespace: {namespace} }}
spec:
  tokenSecretRef: {{ name: strict-token }}
  ingress: [ {{ hostname: strict.example.com, service: http_status:200 }} ]
{extra}"
        )
    };
    let cases = [
        ("spec.args", "  args: [\"--token\", \"x\"]\n"),
        (
            "spec.pod.env",
            "  pod: { env: [ { name: TUNNEL_TOKEN, value: x } ] }\n",
        ),
        (
            "spec.pod.securityContext",
            "  pod: { securityContext: { runAsUser: 0 } }\n",
        ),
        (
            "spec.connector.extraArgs",
            "  connector: { extraArgs: [\"--metrics\", \"0.0.0.0:9000\"] }\n",
        ),
        ("spec.metrics.port", "  metrics: { port: 9000 }\n"),
    ];
    env.apply_dry_run(&tunnel(""))
        .map_err(|e| format!("the base object is refused: {e}"))?;
    let mut accepted = Vec::new();
    for (field, extra) in cases {
        match env.apply_dry_run(&tunnel(extra)) {
            Err(e) if e.contains(&format!("unknown field \"{field}\"")) => {}
            Err(e) => accepted.push(format!(
                "{field}: refused, but not as an unknown field: {e}"
            )),
            Ok(out) => accepted.push(format!("{field}: accepted ({})", out.trim())),
        }
    }
    if accepted.is_empty() {
        Ok(())
    } else {
        Err(accepted.join("\n"))
    }
}
