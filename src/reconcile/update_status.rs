//! Update the status: server-side apply it when it changed (and was not just written by
//! us), and publish an Event when the Ready condition changed.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, warn};

use super::events::EventPublisher;
use crate::api::conditions::{self, READY};
use crate::api::{SecureTunnel, SecureTunnelStatus};
use crate::compact::{ShortHash, Uid};
use crate::names::FIELD_MANAGER;
use crate::{Error, Result};

/// A digest of the status last written per tunnel uid (condition times left out): a
/// reconcile that runs on a cached tunnel older than our own last write does not write
/// the same status again. Keyed by uid so that a tunnel deleted and created again under
/// the same name starts afresh.
#[derive(Default)]
pub struct WrittenStatus(Mutex<HashMap<Uid, ShortHash>>);

/// The status without condition times, digested.
fn status_digest(status: &SecureTunnelStatus) -> ShortHash {
    let mut timeless = status.clone();
    for c in &mut timeless.conditions {
        c.last_transition_time =
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH);
    }
    let text = serde_json::to_string(&timeless).unwrap_or_default();
    ShortHash::of(&text)
}

/// Writes the status when it changed, and an Event when Ready changed.
pub async fn write_status(
    client: &Client,
    events: &EventPublisher,
    written: &WrittenStatus,
    tunnel: &SecureTunnel,
    namespace: &str,
    status: SecureTunnelStatus,
) -> Result<()> {
    let previous = tunnel.status.clone().unwrap_or_default();
    if previous == status {
        debug!("status unchanged");
        return Ok(());
    }
    let key = Uid::of(tunnel.metadata.uid.as_deref().unwrap_or_default());
    let digest = status_digest(&status);
    let already_written = written
        .0
        .lock()
        .ok()
        .and_then(|w| w.get(&key).copied())
        .is_some_and(|d| d == digest);
    if already_written {
        debug!("status already written; the cached tunnel is older than our write");
        return Ok(());
    }
    let api: Api<SecureTunnel> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": SecureTunnel::api_version(&()),
        "kind": SecureTunnel::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&tunnel.name_any(), &params, &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::Status {
            object: format!("SecureTunnel {namespace}/{}", tunnel.name_any()),
            source,
        })?;
    if let Ok(mut w) = written.0.lock() {
        w.insert(key, digest);
    }

    let old_ready = conditions::find(&previous.conditions, READY);
    if let Some(ready) = conditions::find(&status.conditions, READY) {
        let changed =
            old_ready.is_none_or(|old| old.status != ready.status || old.reason != ready.reason);
        if changed {
            // Connectors still starting is normal; losing them, or being blocked, is not.
            let was_ready = old_ready.is_some_and(|old| old.status == conditions::TRUE);
            let warning = ready.status != conditions::TRUE
                && (was_ready || ready.reason != conditions::REASON_CONNECTORS_NOT_READY);
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: ready.reason.clone(),
                note: Some(truncate(&ready.message, 1024)),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            // An Event is a courtesy; failing to send one must not fail the reconcile.
            if let Err(e) = events.publish(tunnel, &event).await {
                warn!(error = %e, "could not publish event");
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        let long = "é".repeat(600);
        let t = truncate(&long, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
