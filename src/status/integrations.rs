//! The conditions of the integrations a spec uses: `DNSRecords` for `spec.dns`,
//! `Monitoring` for `spec.metrics.podMonitor`. Present while the spec is applied; an
//! integration's trouble never makes the tunnel itself unready.

use crate::api::conditions::{self, DesiredCondition};
use crate::api::SecureTunnelSpec;
use crate::children::{Availability, ChildKind, Integration};

/// One child of an integration's kind that the spec wants, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegrationOutcome {
    pub kind: ChildKind,
    pub availability: Availability,
    /// `namespace/name` of the child.
    pub object: String,
    /// What the child holds, for the condition ("2 CNAME records to ….cfargotunnel.com").
    pub summary: String,
}

/// The condition type that reports on children of `kind`.
fn condition_type(kind: ChildKind) -> &'static str {
    match kind.integration() {
        Some(Integration::DnsEndpoints) => conditions::DNS_RECORDS,
        _ => conditions::MONITORING,
    }
}

/// Why a child of `kind` could not be written, as a condition reason and message.
fn unavailable(kind: ChildKind, availability: Availability) -> (&'static str, String) {
    let crd = kind.crd_name();
    let (integration, value) = kind
        .integration()
        .map_or(("", ""), |i| (i.name(), i.value_name()));
    let enable = format!(
        "enable the {integration} integration (Helm: integrations.{value}=true; kustomize: the component config/components/{integration})"
    );
    match availability {
        Availability::NotEnabled => (
            conditions::REASON_INTEGRATION_NOT_ENABLED,
            format!("this operator does not manage {}s: {enable}", kind.kind()),
        ),
        Availability::NotInstalled => (
            conditions::REASON_CRD_NOT_INSTALLED,
            format!(
                "the {} CRD ({crd}) is not installed in this cluster",
                kind.kind()
            ),
        ),
        Availability::Forbidden => (
            conditions::REASON_FORBIDDEN,
            format!("the operator may not list {crd}: {enable}, which grants it"),
        ),
        Availability::Pending | Availability::Available => (
            conditions::REASON_WAITING_FOR_WATCH,
            format!("waiting for the first listing of {crd}"),
        ),
    }
}

/// One condition per integration child the spec wants.
pub fn integration_conditions(
    spec: &SecureTunnelSpec,
    outcomes: &[IntegrationOutcome],
) -> Vec<DesiredCondition> {
    outcomes
        .iter()
        .map(|o| {
            let type_ = condition_type(o.kind);
            if o.availability != Availability::Available {
                let (reason, message) = unavailable(o.kind, o.availability);
                return DesiredCondition::new(type_, false, reason, message);
            }
            let applied = format!("{} {}: {}", o.kind.kind(), o.object, o.summary);
            match o.kind {
                ChildKind::PodMonitor if spec.metrics.allow_from.is_none() => DesiredCondition::new(
                    type_,
                    false,
                    conditions::REASON_METRICS_NOT_ALLOWED,
                    format!("{applied}; but spec.metrics.allowFrom admits nobody, so the sandbox keeps Prometheus from scraping: set it to select the Prometheus pods"),
                ),
                _ => DesiredCondition::new(type_, true, conditions::REASON_APPLIED, applied),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PeerSelector, SecureTunnel};

    fn outcome(kind: ChildKind, availability: Availability) -> IntegrationOutcome {
        IntegrationOutcome {
            kind,
            availability,
            object: "apps/home-cloudflared".into(),
            summary: "1 CNAME record".into(),
        }
    }

    #[test]
    fn each_unavailable_integration_says_why_and_how_to_fix_it() {
        let spec = SecureTunnel::test().spec;
        let cases = [
            (
                Availability::NotEnabled,
                conditions::REASON_INTEGRATION_NOT_ENABLED,
                "integrations.dnsEndpoints=true",
            ),
            (
                Availability::NotInstalled,
                conditions::REASON_CRD_NOT_INSTALLED,
                "dnsendpoints.externaldns.k8s.io",
            ),
            (
                Availability::Forbidden,
                conditions::REASON_FORBIDDEN,
                "config/components/dns-endpoints",
            ),
            (
                Availability::Pending,
                conditions::REASON_WAITING_FOR_WATCH,
                "first listing",
            ),
        ];
        for (availability, reason, needle) in cases {
            let c = integration_conditions(&spec, &[outcome(ChildKind::DnsEndpoint, availability)]);
            assert_eq!(c.len(), 1);
            assert_eq!(
                (c[0].type_, c[0].status, c[0].reason),
                (conditions::DNS_RECORDS, false, reason)
            );
            assert!(c[0].message.contains(needle), "{}", c[0].message);
        }
    }

    #[test]
    fn a_pod_monitor_that_no_prometheus_may_use_is_not_true() {
        let mut spec = SecureTunnel::test().spec;
        let o = [outcome(ChildKind::PodMonitor, Availability::Available)];
        let c = integration_conditions(&spec, &o);
        assert_eq!(
            (c[0].type_, c[0].status, c[0].reason),
            (
                conditions::MONITORING,
                false,
                conditions::REASON_METRICS_NOT_ALLOWED
            )
        );
        assert!(c[0].message.contains("spec.metrics.allowFrom"));
        spec.metrics.allow_from = Some(PeerSelector {
            namespace_labels: [(
                "kubernetes.io/metadata.name".to_string(),
                "monitoring".to_string(),
            )]
            .into(),
            ..Default::default()
        });
        let c = integration_conditions(&spec, &o);
        assert_eq!(
            (c[0].status, c[0].reason),
            (true, conditions::REASON_APPLIED)
        );
        assert_eq!(
            c[0].message,
            "PodMonitor apps/home-cloudflared: 1 CNAME record"
        );
    }
}
