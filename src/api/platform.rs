//! The parts of the spec that fit the connector into a platform: cloudflared's own
//! settings, DNS records through external-dns, and a PodMonitor for Prometheus. Each is
//! a typed field mapped to one flag or one object, never free-form arguments.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel;
use crate::names::{DNS_LABEL_MAX, DNS_NAME_MAX, MAX_DNS_TTL, MAX_DURATION_LEN, MIN_DNS_TTL};

/// cloudflared's settings, each passed as its command-line flag. Unset: cloudflared's
/// default, and no flag.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    /// `--loglevel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// `--edge-ip-version`: the IP version used to reach the edge.
    #[serde(
        default,
        rename = "edgeIPVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub edge_ip_version: Option<EdgeIpVersion>,
    /// `--region`: `us` keeps the connections to the edge in the United States.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// `--post-quantum`: only post-quantum key agreement to the edge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub post_quantum: bool,
    /// `--grace-period`: how long a stopping connector lets requests in flight finish
    /// (cloudflared's default is 30s, its maximum 3m). The pods' termination grace period
    /// follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    #[x_kube(validation = cel::grace_period_bound())]
    pub grace_period: Option<String>,
}

/// A Secret in the tunnel's namespace with credentials for the image's registry.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct PullSecret {
    #[schemars(
        length(min = 1, max = DNS_NAME_MAX),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// cloudflared's log levels.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Fatal => "fatal",
        }
    }
}

/// The values cloudflared's `--edge-ip-version` accepts.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum EdgeIpVersion {
    #[serde(rename = "4")]
    V4,
    #[serde(rename = "6")]
    V6,
    #[serde(rename = "auto")]
    Auto,
}

impl EdgeIpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeIpVersion::V4 => "4",
            EdgeIpVersion::V6 => "6",
            EdgeIpVersion::Auto => "auto",
        }
    }
}

/// The edge regions cloudflared can be pinned to (none: the global region).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
        }
    }
}

/// DNS records for the ingress hostnames, published by external-dns from a
/// `DNSEndpoint` the operator keeps: one proxied CNAME per distinct hostname, to
/// `<tunnelID>.cfargotunnel.com`. The operator itself holds no DNS credential.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// The records' TTL in seconds. Cloudflare serves proxied records with its own
    /// automatic TTL; this is what other providers would use.
    #[serde(default = "default_dns_ttl")]
    #[schemars(range(min = MIN_DNS_TTL, max = MAX_DNS_TTL))]
    pub ttl: i64,
    /// Written as the DNSEndpoint's `securetunnel.dev/record-owner` label, so that one
    /// external-dns selects its own records (`--label-filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = DNS_LABEL_MAX),
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub record_owner: Option<String>,
}

pub const DEFAULT_DNS_TTL: i64 = 300;

fn default_dns_ttl() -> i64 {
    DEFAULT_DNS_TTL
}

/// A Prometheus Operator `PodMonitor` for the connector pods. Prometheus can scrape
/// them only where `spec.metrics.allowFrom` admits its pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSettings {
    /// Labels on the PodMonitor, for the Prometheus `podMonitorSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: BTreeMap<String, String>,
    /// The scrape interval; unset: Prometheus's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    pub interval: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    /// A RuntimeClass such as `gvisor` or `kata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = DNS_NAME_MAX),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub runtime_class_name: Option<String>,
    /// Let cloudflared proxy ICMP through the unprivileged ping socket.
    #[serde(default, rename = "allowICMP")]
    pub allow_icmp: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Replaces the default requests and limits.
    // Boxed, like `affinity`: most tunnels set neither, and every cached tunnel holds
    // both in place (the schema is the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<ResourceRequirements>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod anti-affinity and the rest of the scheduler's affinity rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Box<Affinity>>,
    /// Replaces the default spread (one connector per node where possible). A constraint
    /// without a `labelSelector` gets the one that selects this tunnel's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new(cel::SPREAD_VALID).message(cel::SPREAD_VALID_MESSAGE))]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Secrets holding credentials for a private mirror of the cloudflared image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<PullSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DNS_NAME_MAX))]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = cel::no_reserved_annotations())]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = cel::no_selector_labels())]
    pub labels: BTreeMap<String, String>,
}
