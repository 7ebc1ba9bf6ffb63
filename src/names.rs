//! One home for the names and numbers every layer shares: the children's name and
//! labels, the annotation keys, the ports, the bounds. The CRD's schema bounds and CEL
//! rules, the validation, the rendering and the tests all read them from here.

use std::collections::BTreeMap;

/// The operator's name, as a literal for `concat!`.
macro_rules! operator_name {
    () => {
        "securetunnel-operator"
    };
}

/// The field manager for every server-side apply this operator sends.
pub const FIELD_MANAGER: &str = operator_name!();

/// The User-Agent of every request the operator sends, so that API server audit and
/// request logs tell its requests apart.
pub const USER_AGENT: &str = concat!(operator_name!(), "/", env!("CARGO_PKG_VERSION"));

// ---- names -------------------------------------------------------------------------

/// Every child of a SecureTunnel is called `<name>` + this suffix.
pub const CHILD_SUFFIX: &str = "-cloudflared";
/// A DNS label (RFC 1123): names of Services, namespaces, label name parts.
pub const DNS_LABEL_MAX: usize = 63;
/// A DNS subdomain / hostname.
pub const DNS_NAME_MAX: usize = 253;
/// The longest SecureTunnel name: `<name>-cloudflared` must stay a valid DNS label,
/// and the name is also a label value.
pub const MAX_TUNNEL_NAME_LEN: usize = DNS_LABEL_MAX - CHILD_SUFFIX.len();

/// The name of every child of the tunnel `tunnel_name`.
pub fn child_name(tunnel_name: &str) -> String {
    format!("{tunnel_name}{CHILD_SUFFIX}")
}

// ---- labels ------------------------------------------------------------------------

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "cloudflared";
pub const MANAGED_BY: &str = operator_name!();
/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The label keys that select one tunnel's connector pods: users may not set them.
pub const SELECTOR_LABEL_KEYS: [&str; 2] = [NAME_LABEL, INSTANCE_LABEL];

/// Label selector matching every object this operator creates; the controller's
/// child watches use it so that they cache nothing else.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Label selector matching every object this operator did not create: the watches of the
/// user's Secrets and ConfigMaps (tokens, CA bundles) leave the children out.
pub fn unmanaged_selector() -> String {
    format!("{MANAGED_BY_LABEL}!={MANAGED_BY}")
}

/// The labels that select one tunnel's connector pods (immutable in a Deployment).
pub fn selector_labels(tunnel_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), tunnel_name.to_string()),
    ])
}

/// The labels on every child object.
pub fn child_labels(tunnel_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tunnel_name);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}

// ---- annotations -------------------------------------------------------------------

/// kubectl's copy of the object as last applied client-side: as large as the spec, and
/// never read by the operator, so the cached SecureTunnels drop it.
pub const KUBECTL_LAST_APPLIED_ANNOTATION: &str =
    "kubectl.kubernetes.io/last-applied-configuration";

/// Annotations under this prefix belong to the operator; users may not set them.
pub const ANNOTATION_PREFIX: &str = "securetunnel.dev/";

macro_rules! annotation {
    ($(#[$doc:meta])* $name:ident = $key:literal) => {
        $(#[$doc])*
        pub const $name: &str = concat!("securetunnel.dev/", $key);
        const _: () = assert!(const_str_starts_with($name, ANNOTATION_PREFIX));
    };
}

const fn const_str_starts_with(s: &str, prefix: &str) -> bool {
    let (s, prefix) = (s.as_bytes(), prefix.as_bytes());
    if s.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if s[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

annotation!(
    /// Hash of the rendered cloudflared config, on the pod template.
    CONFIG_HASH_ANNOTATION = "config-hash"
);
annotation!(
    /// Hash of the tunnel token, on the pod template: rotating the token rolls the pods.
    TOKEN_HASH_ANNOTATION = "token-hash"
);
annotation!(
    /// Hash of the CA bundles the rules' `caPool`s name, on the pod template: a changed
    /// bundle rolls the pods (cloudflared reads it when an origin starts).
    CA_HASH_ANNOTATION = "ca-hash"
);
annotation!(
    /// On a DNSEndpoint: which external-dns publishes it (`spec.dns.recordOwner`), for
    /// external-dns's `--label-filter`. A label, under the operator's prefix.
    RECORD_OWNER_LABEL = "record-owner"
);
annotation!(
    /// Hash of the whole desired child; a cached child carrying the same hash is not
    /// written again.
    APPLIED_HASH_ANNOTATION = "applied-hash"
);

// ---- ports -------------------------------------------------------------------------

/// cloudflared's metrics server: `/metrics`, `/ready` (the probes), `/config`, `/debug`.
pub const METRICS_PORT: u16 = 2000;
/// The container port's name, which a PodMonitor scrapes.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The Cloudflare edge listens on 7844 over TCP (http2) and UDP (quic).
pub const EDGE_PORT: u16 = 7844;
pub const DNS_PORT: u16 = 53;
/// Cloudflare Access's signing keys are fetched over HTTPS.
pub const HTTPS_PORT: u16 = 443;

/// Where cloudflared serves its metrics inside the pod.
pub fn metrics_address() -> String {
    format!("0.0.0.0:{METRICS_PORT}")
}

/// The port cloudflared dials for a scheme when the service URL names none.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ssh" => Some(22),
        "rdp" => Some(3389),
        "smb" => Some(445),
        _ => None,
    }
}

/// The schemes [`default_port`] knows, for the CRD's CEL rule.
pub const SCHEMES_WITH_DEFAULT_PORT: [&str; 7] =
    ["http", "https", "ws", "wss", "ssh", "rdp", "smb"];

// ---- bounds (the CRD's schema and `validate` both use them) -------------------------

pub const MIN_REPLICAS: i32 = 1;
pub const MAX_REPLICAS: i32 = 20;
pub const MAX_INGRESS_RULES: usize = 256;
pub const MAX_IMAGE_LEN: usize = 512;
pub const MAX_SERVICE_LEN: usize = 512;
pub const MAX_PATH_LEN: usize = 1024;
pub const MAX_DURATION_LEN: usize = 32;

/// The cluster DNS domain Service names are resolved under.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

pub const MIN_DNS_TTL: i64 = 1;
pub const MAX_DNS_TTL: i64 = 86_400;
/// cloudflared refuses a `--grace-period` longer than this (seconds).
pub const MAX_GRACE_PERIOD_SECONDS: u64 = 180;
/// cloudflared's default `--grace-period` (seconds).
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 30;
/// The pod outlives cloudflared's grace period by this much (seconds): the time to
/// notice SIGTERM and to flush logs.
pub const TERMINATION_GRACE_MARGIN_SECONDS: u64 = 15;

// ---- DNS records (external-dns) ------------------------------------------------------

/// A tunnel's public hostnames are CNAMEs to `<tunnelID>.` + this.
pub const TUNNEL_DNS_SUFFIX: &str = "cfargotunnel.com";
/// external-dns's provider-specific setting that makes a Cloudflare record proxied, by the
/// name external-dns 0.23 reads.
pub const CLOUDFLARE_PROXIED: &str = "cloudflare/proxied";
/// The same setting by the name older external-dns releases read. 0.23 rewrites it to
/// [`CLOUDFLARE_PROXIED`] (with a deprecation warning), and ignores it beside that one.
pub const CLOUDFLARE_PROXIED_LEGACY: &str = "external-dns.alpha.kubernetes.io/cloudflare-proxied";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_operator_and_its_version_and_is_a_valid_header() {
        assert_eq!(
            USER_AGENT,
            format!("{FIELD_MANAGER}/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(hyper::header::HeaderValue::from_str(USER_AGENT).is_ok());
    }

    #[test]
    fn a_child_name_of_the_longest_tunnel_name_is_a_dns_label() {
        assert_eq!(MAX_TUNNEL_NAME_LEN, 51);
        assert_eq!(
            child_name(&"n".repeat(MAX_TUNNEL_NAME_LEN)).len(),
            DNS_LABEL_MAX
        );
    }

    #[test]
    fn every_scheme_with_a_default_port_is_listed() {
        for scheme in SCHEMES_WITH_DEFAULT_PORT {
            assert!(default_port(scheme).is_some(), "{scheme}");
        }
        assert_eq!(default_port("tcp"), None);
    }
}
