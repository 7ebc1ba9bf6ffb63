//! The egress sandbox: a NetworkPolicy that lets the connector pods reach
//! DNS, the Cloudflare edge and the origins their rules name, and accept
//! only metrics scrapes from the peers the spec allows.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::origins::Resolution;
use crate::api::SecureTunnelSpec;
use crate::names::{
    selector_labels, DNS_PORT, EDGE_PORT, HTTPS_PORT, MANAGED_BY, METRICS_PORT,
    NAMESPACE_NAME_LABEL, NAME_LABEL,
};
use crate::validate::ValidatedSpec;

fn port(protocol: &str, port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(port),
        end_port: None,
    }
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

fn namespace_selector(namespace: &str) -> LabelSelector {
    selector(&BTreeMap::from([(
        NAMESPACE_NAME_LABEL.to_string(),
        namespace.to_string(),
    )]))
}

fn ip_block(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_string(),
            except: None,
        }),
        ..Default::default()
    }
}

pub fn network_policy(
    spec: &SecureTunnelSpec,
    validated: &ValidatedSpec,
    tunnel_name: &str,
    meta: ObjectMeta,
    resolution: &Resolution,
    operator_namespace: Option<&str>,
) -> NetworkPolicy {
    let dns_peer = NetworkPolicyPeer {
        namespace_selector: Some(namespace_selector(&spec.egress.dns.namespace)),
        pod_selector: Some(selector(&spec.egress.dns.pod_labels)),
        ..Default::default()
    };
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![dns_peer]),
            ports: Some(vec![
                port("UDP", IntOrString::Int(i32::from(DNS_PORT))),
                port("TCP", IntOrString::Int(i32::from(DNS_PORT))),
            ]),
        },
        NetworkPolicyEgressRule {
            to: Some(
                spec.egress
                    .cloudflare_edge
                    .iter()
                    .map(|c| ip_block(c))
                    .collect(),
            ),
            ports: Some(vec![
                port("TCP", IntOrString::Int(i32::from(EDGE_PORT))),
                port("UDP", IntOrString::Int(i32::from(EDGE_PORT))),
            ]),
        },
    ];
    for ((namespace, pod_labels), ports) in &resolution.pods {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespace_selector(namespace)),
                pod_selector: Some(selector(pod_labels)),
                ..Default::default()
            }]),
            ports: Some(
                ports
                    .iter()
                    .map(|(protocol, p)| port(protocol, p.clone().into()))
                    .collect(),
            ),
        });
    }
    for (cidr, ports) in &resolution.addresses {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![ip_block(cidr)]),
            ports: Some(
                ports
                    .iter()
                    .map(|p| port("TCP", IntOrString::Int(i32::from(*p))))
                    .collect(),
            ),
        });
    }
    // extraOrigins as given; identical CIDRs share one rule.
    let mut extra: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for origin in &spec.egress.extra_origins {
        extra
            .entry(origin.cidr.as_str())
            .or_default()
            .extend(origin.ports.iter().copied());
    }
    for (cidr, ports) in extra {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![ip_block(cidr)]),
            ports: Some(
                ports
                    .into_iter()
                    .map(|p| port("TCP", IntOrString::Int(p)))
                    .collect(),
            ),
        });
    }
    // Only a tunnel whose rules require Access may reach Cloudflare on 443: the keys that
    // sign Access's tokens are fetched from <teamName>.cloudflareaccess.com on the first
    // request. No other tunnel gets any 443 egress from this rule.
    if validated.uses_access {
        egress.push(NetworkPolicyEgressRule {
            to: Some(
                spec.egress
                    .cloudflare_access
                    .iter()
                    .map(|c| ip_block(c))
                    .collect(),
            ),
            ports: Some(vec![port("TCP", IntOrString::Int(i32::from(HTTPS_PORT)))]),
        });
    }

    // Port 2000 also serves /config and /debug/pprof: only the named scrapers may connect.
    let ingress = spec.metrics.allow_from.as_ref().map(|peers| {
        let peer = NetworkPolicyPeer {
            namespace_selector: (!peers.namespace_labels.is_empty())
                .then(|| selector(&peers.namespace_labels)),
            pod_selector: (!peers.pod_labels.is_empty()).then(|| selector(&peers.pod_labels)),
            ..Default::default()
        };
        NetworkPolicyIngressRule {
            from: Some(vec![peer]),
            ports: Some(vec![port("TCP", IntOrString::Int(i32::from(METRICS_PORT)))]),
        }
    });
    // The operator's own pods ask one connector which configuration it runs (GET
    // /config): a NetworkPolicy cannot narrow a port to a path, so it is port 2000 from
    // those pods only.
    let operator = operator_namespace.map(|namespace| NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(namespace_selector(namespace)),
            pod_selector: Some(selector(&BTreeMap::from([(
                NAME_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )]))),
            ..Default::default()
        }]),
        ports: Some(vec![port("TCP", IntOrString::Int(i32::from(METRICS_PORT)))]),
    });

    NetworkPolicy {
        metadata: meta,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&selector_labels(tunnel_name))),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: Some(ingress.into_iter().chain(operator).collect()),
            egress: Some(egress),
        }),
    }
}
