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
