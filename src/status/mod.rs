//! Pure status computation: what the reconciler decided plus the observed
//! Deployment becomes the SecureTunnel's status and conditions.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{self, DesiredCondition, DEGRADED, PROGRESSING, READY};
use crate::api::{SecureTunnel, SecureTunnelStatus};

mod integrations;
pub use integrations::IntegrationOutcome;

/// The outcome of one reconcile, before it is written to the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The children were applied (or already matched).
    Applied {
        tunnel_id: String,
        config_hash: String,
        /// Rules the sandbox could not open (described for the Degraded condition).
        unresolved: Vec<String>,
        /// The children of integrations that the spec wants.
        integrations: Vec<IntegrationOutcome>,
        /// The configuration version a connector reported (`/config`), when one was asked:
        /// -1 for the local file, 0 and up for Cloudflare's remotely-managed configuration.
        remote_version: Option<i64>,
    },
    /// Nothing was applied; the reason is a Ready condition reason.
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// What the connector Deployment reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Pods the Deployment has, ready or not.
    replicas: i32,
    ready: i32,
    /// The Deployment controller has not yet finished rolling out the current spec.
    in_progress: bool,
    /// The rollout passed its progress deadline.
    stuck: bool,
}

impl Rollout {
    /// Connector pods that are ready.
    pub fn ready(&self) -> i32 {
        self.ready
    }

    /// The rollout of `deployment`, as its status tells it.
    pub fn of(deployment: &Deployment) -> Rollout {
        let Some(status) = deployment.status.as_ref() else {
            return Rollout {
                in_progress: true,
                ..Default::default()
            };
        };
        let observed =
            status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing");
        let stuck =
            progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        // "NewReplicaSetAvailable" is the Deployment controller's word for a finished rollout.
        let complete =
            progressing.is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
        Rollout {
            replicas: status.replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            in_progress: !stuck && (!observed || !complete),
            stuck,
        }
    }
}

/// The status for `tunnel` after a reconcile that reached `verdict`, given the
/// connector Deployment's rollout as last seen. Condition timestamps are kept where
/// nothing changed, so the same inputs give the same status.
pub fn desired_status(
    tunnel: &SecureTunnel,
    verdict: &Verdict,
    observed: Option<Rollout>,
    now: Timestamp,
) -> SecureTunnelStatus {
    let previous = tunnel.status.clone().unwrap_or_default();
    let desired = tunnel.spec.replicas;
    let ready = observed.map_or(0, |r| r.ready);

    let degraded = match observed {
        Some(r) if r.stuck => DesiredCondition::new(
            DEGRADED,
            true,
            conditions::REASON_PROGRESS_DEADLINE_EXCEEDED,
            format!("the rollout is stuck: {ready}/{desired} connectors ready"),
        ),
        Some(r) if !r.in_progress && ready < desired => DesiredCondition::new(
            DEGRADED,
            true,
            conditions::REASON_CONNECTORS_UNAVAILABLE,
            format!("{ready}/{desired} connectors ready"),
        ),
        _ => match verdict {
            // Nothing was applied, but what was applied before keeps the tunnel up.
            Verdict::Blocked { reason, message } if observed.is_some() => DesiredCondition::new(
                DEGRADED,
                true,
                reason,
                format!("the connectors keep running the last applied spec and token: {message}"),
            ),
            Verdict::Applied {
                remote_version: Some(version),
                ..
            } if *version >= 0 => DesiredCondition::new(
                DEGRADED,
                true,
                conditions::REASON_REMOTELY_MANAGED,
                format!(
                    "a connector runs configuration version {version} from Cloudflare's dashboard, which replaces spec.ingress: this tunnel is remotely managed, and its routes come from the dashboard, not from this SecureTunnel. The sandbox still opens only the origins of spec.ingress. Use a locally-managed tunnel (cloudflared tunnel create NAME)"
                ),
            ),
            Verdict::Applied { unresolved, .. } if !unresolved.is_empty() => DesiredCondition::new(
                DEGRADED,
                true,
                conditions::REASON_UNRESOLVED_ORIGIN,
                format!(
                    "not reachable through the sandbox: {}",
                    unresolved.join("; ")
                ),
            ),
            _ => DesiredCondition::new(
                DEGRADED,
                false,
                conditions::REASON_AS_EXPECTED,
                "all connectors are available or starting",
            ),
        },
    };

    let (ready_cond, progressing, tunnel_id, config_hash) = match verdict {
        Verdict::Blocked { reason, message } => (
            DesiredCondition::new(READY, false, reason, message.clone()),
            DesiredCondition::new(
                PROGRESSING,
                false,
                conditions::REASON_BLOCKED,
                format!("not applying the spec: {reason}"),
            ),
            // What is still running keeps being described.
            previous.tunnel_id.clone(),
            previous.config_hash.clone(),
        ),
        Verdict::Applied {
            tunnel_id,
            config_hash,
            ..
        } => {
            let ready_cond = if ready > 0 {
                DesiredCondition::new(
                    READY,
                    true,
                    conditions::REASON_CONNECTORS_READY,
                    format!("{ready}/{desired} connectors ready"),
                )
            } else {
                DesiredCondition::new(
                    READY,
                    false,
                    conditions::REASON_CONNECTORS_NOT_READY,
                    format!("0/{desired} connectors ready"),
                )
            };
            let progressing = match observed {
                Some(r) if r.stuck => DesiredCondition::new(
                    PROGRESSING,
                    false,
                    conditions::REASON_PROGRESS_DEADLINE_EXCEEDED,
                    "the connector Deployment exceeded its progress deadline",
                ),
                Some(r) if !r.in_progress => DesiredCondition::new(
                    PROGRESSING,
                    false,
                    conditions::REASON_ROLLOUT_COMPLETE,
                    "the connectors run the current spec",
                ),
                _ => DesiredCondition::new(
                    PROGRESSING,
                    true,
                    conditions::REASON_ROLLING_OUT,
                    format!("rolling out: {ready}/{desired} connectors ready"),
                ),
            };
            (
                ready_cond,
                progressing,
                Some(tunnel_id.clone()),
                Some(config_hash.clone()),
            )
        }
    };

    let mut all = vec![ready_cond, progressing, degraded];
    if let Verdict::Applied { integrations, .. } = verdict {
        all.extend(integrations::integration_conditions(
            &tunnel.spec,
            integrations,
        ));
    }
    let generation = tunnel.metadata.generation;
    SecureTunnelStatus {
        observed_generation: generation,
        tunnel_id,
        replicas: observed.map_or(0, |r| r.replicas),
        ready_replicas: ready,
        config_hash,
        conditions: conditions::merge(&previous.conditions, &all, generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{FALSE, TRUE};
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn tunnel() -> SecureTunnel {
        SecureTunnel::test()
            .with_generation(3)
            .with_uid("uid-1")
            .with_token_secret("tok")
            .with_rules(&["http://web:80"])
    }

    fn deployment(ready: i32, reason: &str, generation: i64, observed: i64) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: None,
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(2),
                ready_replicas: Some(ready),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Progressing".into(),
                    status: if reason == "ProgressDeadlineExceeded" {
                        "False"
                    } else {
                        "True"
                    }
                    .into(),
                    reason: Some(reason.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn applied() -> Verdict {
        Verdict::Applied {
            tunnel_id: crate::test_support::TUNNEL_ID.into(),
            config_hash: "sha256:abc".into(),
            unresolved: vec![],
            integrations: vec![],
            remote_version: None,
        }
    }

    fn cond<'a>(s: &'a SecureTunnelStatus, t: &str) -> (&'a str, &'a str, &'a str) {
        let c = conditions::find(&s.conditions, t).expect("condition present");
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).expect("valid")
    }

    #[test]
    fn all_ready_after_rollout() {
        let s = desired_status(
            &tunnel(),
            &applied(),
            Some(Rollout::of(&deployment(2, "NewReplicaSetAvailable", 1, 1))),
            now(),
        );
        assert_eq!(
            cond(&s, READY),
            (TRUE, "ConnectorsReady", "2/2 connectors ready")
        );
        assert_eq!(cond(&s, PROGRESSING).0, FALSE);
        assert_eq!(
            cond(&s, DEGRADED),
            (
                FALSE,
                "AsExpected",
                "all connectors are available or starting"
            )
        );
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(s.config_hash.as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn new_deployment_is_progressing_not_degraded() {
        let fresh = Deployment::default();
        let s = desired_status(&tunnel(), &applied(), Some(Rollout::of(&fresh)), now());
        assert_eq!(
            cond(&s, READY),
            (FALSE, "ConnectorsNotReady", "0/2 connectors ready")
        );
        assert_eq!(cond(&s, PROGRESSING).0, TRUE);
        assert_eq!(cond(&s, DEGRADED).0, FALSE);

        let rolling = deployment(0, "ReplicaSetUpdated", 1, 1);
        let s = desired_status(&tunnel(), &applied(), Some(Rollout::of(&rolling)), now());
        assert_eq!(cond(&s, PROGRESSING).1, "RollingOut");
        assert_eq!(cond(&s, DEGRADED).0, FALSE);
    }

    #[test]
    fn unobserved_generation_is_still_progressing() {
        let s = desired_status(
            &tunnel(),
            &applied(),
            Some(Rollout::of(&deployment(2, "NewReplicaSetAvailable", 2, 1))),
            now(),
        );
        assert_eq!(cond(&s, PROGRESSING).0, TRUE);
    }

    #[test]
    fn lost_connector_after_rollout_is_degraded_but_ready() {
        let s = desired_status(
            &tunnel(),
            &applied(),
            Some(Rollout::of(&deployment(1, "NewReplicaSetAvailable", 1, 1))),
            now(),
        );
        assert_eq!(
            cond(&s, READY),
            (TRUE, "ConnectorsReady", "1/2 connectors ready")
        );
        assert_eq!(
            cond(&s, DEGRADED),
            (TRUE, "ConnectorsUnavailable", "1/2 connectors ready")
        );
    }

    #[test]
    fn stuck_rollout_is_degraded() {
        let s = desired_status(
            &tunnel(),
            &applied(),
            Some(Rollout::of(&deployment(
                0,
                "ProgressDeadlineExceeded",
                1,
                1,
            ))),
            now(),
        );
        assert_eq!(
            cond(&s, PROGRESSING),
            (
                FALSE,
                "ProgressDeadlineExceeded",
                "the connector Deployment exceeded its progress deadline"
            )
        );
        assert_eq!(cond(&s, DEGRADED).1, "ProgressDeadlineExceeded");
    }

    #[test]
    fn blocked_keeps_what_is_running_described() {
        let mut t = tunnel();
        t.status = Some(SecureTunnelStatus {
            tunnel_id: Some("old-id".into()),
            config_hash: Some("sha256:old".into()),
            ..Default::default()
        });
        let verdict = Verdict::Blocked {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: "Secret apps/tok not found".into(),
        };
        let s = desired_status(&t, &verdict, None, now());
        assert_eq!(
            cond(&s, READY),
            (FALSE, "TokenSecretMissing", "Secret apps/tok not found")
        );
        assert_eq!(cond(&s, PROGRESSING).1, "Blocked");
        assert_eq!(s.tunnel_id.as_deref(), Some("old-id"));
        assert_eq!(s.config_hash.as_deref(), Some("sha256:old"));
    }

    #[test]
    fn a_blocked_tunnel_with_running_connectors_is_degraded_not_down() {
        let verdict = Verdict::Blocked {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: "Secret apps/tok not found".into(),
        };
        let running = deployment(2, "NewReplicaSetAvailable", 1, 1);
        let s = desired_status(&tunnel(), &verdict, Some(Rollout::of(&running)), now());
        assert_eq!(cond(&s, READY).1, "TokenSecretMissing");
        assert_eq!(
            cond(&s, DEGRADED),
            (
                TRUE,
                "TokenSecretMissing",
                "the connectors keep running the last applied spec and token: Secret apps/tok not found"
            )
        );
        assert_eq!(
            s.ready_replicas, 2,
            "the running connectors are still counted"
        );
    }

    #[test]
    fn same_inputs_give_an_identical_status_later() {
        let mut t = tunnel();
        let d = deployment(2, "NewReplicaSetAvailable", 1, 1);
        let first = desired_status(&t, &applied(), Some(Rollout::of(&d)), now());
        t.status = Some(first.clone());
        let later = Timestamp::from_second(1_800_000_000).expect("valid");
        assert_eq!(
            desired_status(&t, &applied(), Some(Rollout::of(&d)), later),
            first
        );
    }
}
