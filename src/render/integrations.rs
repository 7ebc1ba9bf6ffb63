//! The children of other projects' kinds: external-dns's `DNSEndpoint` for `spec.dns`
//! and the Prometheus Operator's `PodMonitor` for `spec.metrics.podMonitor`.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::api::SecureTunnelSpec;
use crate::external::{
    DnsEndpoint, DnsEndpointSpec, Endpoint, PodMetricsEndpoint, PodMonitor, PodMonitorSpec,
    ProviderSpecificProperty,
};
use crate::names::{
    selector_labels, CLOUDFLARE_PROXIED, CLOUDFLARE_PROXIED_LEGACY, INSTANCE_LABEL,
    METRICS_PORT_NAME, RECORD_OWNER_LABEL, TUNNEL_DNS_SUFFIX,
};

/// The distinct public hostnames of the rules, in rule order: each needs a record. A
/// rule without a hostname (or `*`) names none.
pub fn hostnames(spec: &SecureTunnelSpec) -> Vec<String> {
    let mut seen = BTreeSet::new();
    spec.ingress
        .iter()
        .filter_map(|rule| rule.hostname.as_deref())
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty() && h != "*")
        .filter(|h| seen.insert(h.clone()))
        .collect()
}

/// One proxied CNAME per hostname to `<tunnelID>.cfargotunnel.com`, when `spec.dns` is
/// set and the tunnel ID is known (offline, without a token, it is not).
pub fn dns_endpoint(
    spec: &SecureTunnelSpec,
    mut meta: ObjectMeta,
    tunnel_id: Option<&str>,
) -> Option<DnsEndpoint> {
    let dns = spec.dns.as_ref()?;
    let target = format!("{}.{TUNNEL_DNS_SUFFIX}", tunnel_id?);
    if let Some(owner) = &dns.record_owner {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(RECORD_OWNER_LABEL.to_string(), owner.clone());
    }
    let endpoints = hostnames(spec)
        .into_iter()
        .map(|dns_name| Endpoint {
            dns_name,
            targets: vec![target.clone()],
            record_type: "CNAME".to_string(),
            record_ttl: dns.ttl,
            // Both names: external-dns of every release reads one of them.
            provider_specific: [CLOUDFLARE_PROXIED, CLOUDFLARE_PROXIED_LEGACY]
                .map(|name| ProviderSpecificProperty {
                    name: name.to_string(),
                    value: "true".to_string(),
                })
                .to_vec(),
        })
        .collect();
    Some(DnsEndpoint {
        metadata: meta,
        spec: DnsEndpointSpec { endpoints },
    })
}

/// A PodMonitor scraping `/metrics` on the connector pods' metrics port, when
/// `spec.metrics.podMonitor` is set.
pub fn pod_monitor(
    spec: &SecureTunnelSpec,
    tunnel_name: &str,
    mut meta: ObjectMeta,
) -> Option<PodMonitor> {
    let settings = spec.metrics.pod_monitor.as_ref()?;
    let labels = meta.labels.get_or_insert_with(Default::default);
    for (k, v) in &settings.labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Some(PodMonitor {
        metadata: meta,
        spec: PodMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels(tunnel_name)),
                ..Default::default()
            },
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port: METRICS_PORT_NAME.to_string(),
                path: "/metrics".to_string(),
                interval: settings.interval.clone(),
            }],
            pod_target_labels: vec![INSTANCE_LABEL.to_string()],
        },
    })
}
