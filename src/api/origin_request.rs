//! A rule's `originRequest`: cloudflared's own settings for the connection to the origin,
//! under cloudflared's own key names, plus where its CA bundle comes from.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel;
use crate::names::{DNS_NAME_MAX, MAX_DURATION_LEN};

/// The subset of cloudflared's `originRequest` settings that make sense in a
/// sandboxed pod. Bastion mode and SOCKS proxying are left out on purpose; a CA file
/// comes from a ConfigMap or Secret key ([`CaPool`]), not from the connector's disk.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginRequest {
    /// Timeout for establishing a connection to the origin (Go duration, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    pub connect_timeout: Option<String>,
    /// Timeout for the TLS handshake with the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    pub tls_timeout: Option<String>,
    /// TCP keep-alive period for origin connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    pub tcp_keep_alive: Option<String>,
    /// Idle time after which an origin keep-alive connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DURATION_LEN))]
    #[x_kube(validation = Rule::new(cel::DURATION).message(cel::DURATION_MESSAGE))]
    pub keep_alive_timeout: Option<String>,
    /// Maximum idle keep-alive connections to the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub keep_alive_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_happy_eyeballs: Option<bool>,
    /// Host header sent to the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DNS_NAME_MAX))]
    pub http_host_header: Option<String>,
    /// Hostname expected on the origin's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = DNS_NAME_MAX),
        regex(
            pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\.?$"
        )
    )]
    pub origin_server_name: Option<String>,
    #[serde(
        default,
        rename = "matchSNItoHost",
        skip_serializing_if = "Option::is_none"
    )]
    pub match_sni_to_host: Option<bool>,
    /// Skip verification of the origin's TLS certificate.
    #[serde(
        default,
        rename = "noTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub no_tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_chunked_encoding: Option<bool>,
    /// Speak HTTP/2 to the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_origin: Option<bool>,
    /// Require a Cloudflare Access JWT on every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSettings>,
    /// CA certificates the origin's certificate must chain to (for an origin signed by a
    /// private CA), from a ConfigMap or Secret key in the tunnel's namespace. The operator
    /// mounts it into the connector pods and gives cloudflared its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pool: Option<CaPool>,
}

/// A PEM bundle, by exactly one of a ConfigMap key and a Secret key (same namespace).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(cel::ONE_CA_SOURCE).message(cel::ONE_CA_SOURCE_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct CaPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
}

/// One key of a ConfigMap or Secret in the tunnel's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KeyRef {
    #[schemars(
        length(min = 1, max = DNS_NAME_MAX),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    #[schemars(length(min = 1, max = DNS_NAME_MAX), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(cel::ACCESS_TEAM).message("access.teamName is required when access.audTag is set or access.required is true"))]
#[serde(rename_all = "camelCase")]
pub struct AccessSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The Zero Trust team name: cloudflared fetches Access's signing keys from
    /// `<teamName>.cloudflareaccess.com`. Required when `required` or `audTag` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DNS_NAME_MAX))]
    pub team_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 128)))]
    pub aud_tag: Vec<String>,
}
