//! Condition types and reasons, as constants so that code, tests, docs and
//! the Argo CD health check agree on the spelling.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Only with `spec.dns`: whether the DNSEndpoint for external-dns is applied.
pub const DNS_RECORDS: &str = "DNSRecords";
/// Only with `spec.metrics.podMonitor`: whether the PodMonitor is applied and usable.
pub const MONITORING: &str = "Monitoring";

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";

// Ready reasons.
pub const REASON_CONNECTORS_READY: &str = "ConnectorsReady";
pub const REASON_CONNECTORS_NOT_READY: &str = "ConnectorsNotReady";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_TOKEN_SECRET_MISSING: &str = "TokenSecretMissing";
pub const REASON_TOKEN_INVALID: &str = "TokenInvalid";
pub const REASON_NAME_CONFLICT: &str = "NameConflict";
/// A rule's `caPool` names a ConfigMap or Secret (or key) that does not exist.
pub const REASON_CA_POOL_MISSING: &str = "CAPoolMissing";

// Progressing reasons.
pub const REASON_ROLLING_OUT: &str = "RollingOut";
pub const REASON_ROLLOUT_COMPLETE: &str = "RolloutComplete";
pub const REASON_BLOCKED: &str = "Blocked";
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

// Degraded reasons.
pub const REASON_AS_EXPECTED: &str = "AsExpected";
pub const REASON_CONNECTORS_UNAVAILABLE: &str = "ConnectorsUnavailable";
pub const REASON_UNRESOLVED_ORIGIN: &str = "UnresolvedOrigin";
/// A connector runs Cloudflare's dashboard configuration, not `spec.ingress`.
pub const REASON_REMOTELY_MANAGED: &str = "RemotelyManaged";

// DNSRecords and Monitoring reasons.
pub const REASON_APPLIED: &str = "Applied";
pub const REASON_INTEGRATION_NOT_ENABLED: &str = "IntegrationNotEnabled";
pub const REASON_CRD_NOT_INSTALLED: &str = "CRDNotInstalled";
pub const REASON_FORBIDDEN: &str = "Forbidden";
pub const REASON_WAITING_FOR_WATCH: &str = "WaitingForWatch";
pub const REASON_METRICS_NOT_ALLOWED: &str = "MetricsNotAllowed";

/// A condition as the reconciler decides it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        DesiredCondition {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }

    fn status_str(&self) -> &'static str {
        if self.status {
            TRUE
        } else {
            FALSE
        }
    }
}

/// Turns desired conditions into API conditions, keeping the previous
/// `lastTransitionTime` of every condition whose status did not change so
/// that a steady state produces an identical status (and so no write).
pub fn merge(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = d.status_str();
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == d.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status: status.to_string(),
                reason: d.reason.to_string(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    #[test]
    fn merge_keeps_transition_time_when_status_is_unchanged() {
        let first = merge(
            &[],
            &[DesiredCondition::new(
                READY,
                false,
                REASON_CONNECTORS_NOT_READY,
                "0/2",
            )],
            Some(1),
            at(100),
        );
        let second = merge(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                REASON_CONNECTORS_NOT_READY,
                "1/2",
            )],
            Some(2),
            at(200),
        );
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].message, "1/2");
        assert_eq!(second[0].observed_generation, Some(2));

        let third = merge(
            &second,
            &[DesiredCondition::new(
                READY,
                true,
                REASON_CONNECTORS_READY,
                "2/2",
            )],
            Some(2),
            at(300),
        );
        assert_eq!(third[0].last_transition_time, Time(at(300)));
        assert_eq!(third[0].status, TRUE);
    }
}
