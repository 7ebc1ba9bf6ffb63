use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel;
use super::cidrs::{default_cloudflare_access, default_cloudflare_edge, Cidrs};
use super::labels::{default_dns_pod_labels, Labels};
use super::origin_request::OriginRequest;
use super::platform::{Connector, Dns, PodMonitorSettings, PodOverrides, Sandbox};
use crate::names::{
    DNS_LABEL_MAX, DNS_NAME_MAX, MAX_IMAGE_LEN, MAX_INGRESS_RULES, MAX_PATH_LEN, MAX_REPLICAS,
    MAX_SERVICE_LEN, MIN_REPLICAS,
};

/// The cloudflared image used when `spec.image` is not set. Must support
/// `--token-file` (cloudflared >= 2025.4.0).
pub const DEFAULT_IMAGE: &str = "docker.io/cloudflare/cloudflared:2026.8.2";
pub const DEFAULT_REPLICAS: i32 = 2;
/// Cloudflare advises a handful of connectors per tunnel, not autoscaling.
pub const DEFAULT_TOKEN_KEY: &str = "token";
pub const DEFAULT_FALLBACK: &str = "http_status:404";

/// A Cloudflare Tunnel connector: a replicated, hardened `cloudflared`
/// Deployment whose routes are the `ingress` rules below.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    validation = cel::name_length(),
    group = "securetunnel.dev",
    version = "v1alpha1",
    kind = "SecureTunnel",
    namespaced,
    status = "SecureTunnelStatus",
    shortname = "stun",
    category = "cloudflare",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas","description":"connectors ready"}"#,
    printcolumn = r#"{"name":"TunnelID","type":"string","jsonPath":".status.tunnelID"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecureTunnelSpec {
    /// The Secret (same namespace) holding the tunnel token printed by
    /// `cloudflared tunnel token NAME`. The operator never edits or deletes it.
    pub token_secret_ref: TokenSecretRef,

    /// Number of connector pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = MIN_REPLICAS, max = MAX_REPLICAS))]
    pub replicas: i32,

    /// The cloudflared image; the tag must be pinned (not `latest`).
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = MAX_IMAGE_LEN))]
    #[x_kube(validation = Rule::new(cel::IMAGE_PINNED).message("the image tag must be pinned to a release, not latest"))]
    #[x_kube(validation = Rule::new(cel::IMAGE_HAS_TAG).message("the image needs a tag or a digest"))]
    pub image: String,

    /// Transport to the Cloudflare edge.
    #[serde(default)]
    pub protocol: Protocol,

    /// Routing rules, in match order. The operator appends `fallback` last.
    #[schemars(length(min = 1, max = MAX_INGRESS_RULES))]
    #[x_kube(validation = Rule::new(cel::NO_CATCH_ALL).message("a rule with no hostname and no path matches every request; use spec.fallback for the catch-all"))]
    pub ingress: Vec<IngressRule>,

    /// The service of the catch-all rule appended after `ingress`.
    #[serde(default = "default_fallback")]
    #[schemars(length(min = 1, max = MAX_SERVICE_LEN))]
    #[x_kube(validation = Rule::new(cel::SERVICE_SHAPE).message(cel::SERVICE_SHAPE_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::SERVICE_NOT_OPEN_PROXY).message(cel::SERVICE_NOT_OPEN_PROXY_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::SERVICE_NOT_UNIX).message(cel::SERVICE_NOT_UNIX_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::HTTP_STATUS_RANGE).message(cel::HTTP_STATUS_RANGE_MESSAGE))]
    pub fallback: String,

    /// What the connector may reach (the NetworkPolicy sandbox).
    #[serde(default)]
    pub egress: Egress,

    /// Who may reach the connector's metrics port.
    #[serde(default)]
    pub metrics: Metrics,

    /// Extra isolation for the connector pods.
    #[serde(default)]
    pub sandbox: Sandbox,

    /// Scheduling and metadata overrides for the connector pods.
    #[serde(default)]
    pub pod: PodOverrides,

    /// cloudflared's own settings (log level, edge IP version, region, post-quantum,
    /// grace period).
    #[serde(default)]
    pub connector: Connector,

    /// Publish the ingress hostnames as DNS records through external-dns (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

fn default_replicas() -> i32 {
    DEFAULT_REPLICAS
}
fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}
fn default_fallback() -> String {
    DEFAULT_FALLBACK.to_string()
}
fn default_token_key() -> String {
    DEFAULT_TOKEN_KEY.to_string()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecretRef {
    /// Name of a Secret in the SecureTunnel's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Auto,
    Quic,
    Http2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Quic => "quic",
            Protocol::Http2 => "http2",
        }
    }
}

/// One cloudflared ingress rule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// DNS name, or one leading `*.` wildcard; no port. Empty matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DNS_NAME_MAX))]
    #[x_kube(validation = Rule::new(cel::HOSTNAME).message("must be a DNS name with at most one leading '*.', and no port"))]
    pub hostname: Option<String>,
    /// Go RE2 regular expression matched against the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_LEN))]
    pub path: Option<String>,
    /// `scheme://host[:port]` (no path), `http_status:NNN` or `hello_world`.
    #[schemars(length(min = 1, max = MAX_SERVICE_LEN))]
    #[x_kube(validation = Rule::new(cel::SERVICE_SHAPE).message(cel::SERVICE_SHAPE_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::SERVICE_NOT_OPEN_PROXY).message(cel::SERVICE_NOT_OPEN_PROXY_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::SERVICE_NOT_UNIX).message(cel::SERVICE_NOT_UNIX_MESSAGE))]
    #[x_kube(validation = Rule::new(cel::HTTP_STATUS_RANGE).message(cel::HTTP_STATUS_RANGE_MESSAGE))]
    #[x_kube(validation = cel::service_port_needed())]
    pub service: String,
    // Boxed: most rules set none, and every cached tunnel holds all its rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_request: Option<Box<OriginRequest>>,
}

/// The egress allow-list of the connector.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// CIDRs of the Cloudflare edge, reached on port 7844 (TCP and UDP).
    #[serde(default = "default_cloudflare_edge")]
    #[schemars(length(min = 1, max = 64), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 198.41.192.0/24"))]
    pub cloudflare_edge: Cidrs,
    /// Where cluster DNS runs (port 53, UDP and TCP).
    #[serde(default)]
    pub dns: DnsPeer,
    /// Origins outside the cluster, by CIDR and port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub extra_origins: Vec<ExtraOrigin>,
    /// CIDRs of Cloudflare, reached on TCP 443 only by a tunnel whose rules require Access:
    /// cloudflared fetches Access's signing keys from `<teamName>.cloudflareaccess.com`.
    /// Defaults to Cloudflare's published ranges.
    #[serde(default = "default_cloudflare_access")]
    #[schemars(length(max = 64), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 104.16.0.0/13"))]
    pub cloudflare_access: Cidrs,
}

impl Default for Egress {
    fn default() -> Self {
        Egress {
            cloudflare_edge: default_cloudflare_edge(),
            dns: DnsPeer::default(),
            extra_origins: Vec::new(),
            cloudflare_access: default_cloudflare_access(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsPeer {
    #[serde(default = "default_dns_namespace")]
    #[schemars(
        length(min = 1, max = DNS_LABEL_MAX),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    #[serde(default = "default_dns_pod_labels")]
    pub pod_labels: Labels,
}

impl Default for DnsPeer {
    fn default() -> Self {
        DnsPeer {
            namespace: default_dns_namespace(),
            pod_labels: default_dns_pod_labels(),
        }
    }
}

fn default_dns_namespace() -> String {
    "kube-system".to_string()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraOrigin {
    /// The destination, e.g. 10.20.0.0/16.
    #[schemars(length(max = 43))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("must be a CIDR such as 10.20.0.0/16"))]
    pub cidr: String,
    /// TCP ports allowed to that destination.
    #[schemars(length(min = 1, max = 32), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Peers allowed to scrape port 2000. Unset: nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<PeerSelector>,
    /// A Prometheus Operator PodMonitor for the connector pods (opt-in; `{}` for the
    /// defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<PodMonitorSettings>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(cel::PEERS_SELECTED).message("allowFrom needs namespaceLabels or podLabels: an empty selector would admit every pod"))]
#[serde(rename_all = "camelCase")]
pub struct PeerSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
}

/// What the operator observed at its last reconcile.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecureTunnelStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The tunnel's UUID, decoded from the token (never the secret itself).
    #[serde(default, rename = "tunnelID", skip_serializing_if = "Option::is_none")]
    pub tunnel_id: Option<String>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Hash of the rendered cloudflared config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
