//! Spec checks mirroring cloudflared's own ingress validation, plus the
//! operator's rules (bounds, pinned image, no sandbox-defeating services).
//!
//! Every problem is reported with the field path it concerns, and all
//! problems are collected rather than stopping at the first one.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::api::{IngressRule, Region, SecureTunnelSpec};
use crate::names::{
    CHILD_SUFFIX, MAX_INGRESS_RULES, MAX_REPLICAS, MAX_TUNNEL_NAME_LEN, MIN_REPLICAS,
};
use origin::{parse_service, service_name, Host, Origin, ServiceName, ServiceRef};

mod ca;
mod fields;
pub mod origin;
mod platform;
mod rules;
pub use ca::{CaKey, CaKind, CaSource, CaSources, CA_DIR};
use fields::{check_cidr, check_image, check_label, check_namespace_name, check_object_name};
use rules::check_rule;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.ingress[3].service`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec, in field order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line per problem, for conditions and Events.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// A spec that passed every check, with each rule's `service` parsed once: render, the
/// sandbox and the controller's Service index read this, never the strings. The rules'
/// other fields are read from the spec itself, by index (they are used as written).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    /// `spec.ingress`, in match order.
    pub rules: Vec<ValidatedRule>,
    /// `spec.fallback`, parsed.
    pub fallback: Origin,
    /// `spec.connector.gracePeriod`, parsed (cloudflared's default when unset).
    pub grace_period: Duration,
    /// `spec.connector.region`: cloudflared refuses it with a token for another endpoint.
    pub region: Option<Region>,
    /// Some rule requires Cloudflare Access (`originRequest.access.required`): the
    /// connector fetches Access's signing keys from Cloudflare on TCP 443.
    pub uses_access: bool,
    /// The ConfigMaps and Secrets the rules take CA bundles from.
    pub ca_sources: CaSources,
}

/// One ingress rule that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedRule {
    /// Its position in `spec.ingress`.
    pub index: usize,
    /// Its `service`, parsed.
    pub origin: Origin,
    /// The file its `originRequest.caPool` becomes in the pods.
    pub ca_file: Option<String>,
}

impl ValidatedSpec {
    /// The Services the rules may refer to (under the pod's DNS search path), for the
    /// dereference step and the controller's Service index.
    pub fn referenced_services(&self, tunnel_namespace: &str) -> BTreeSet<ServiceRef> {
        self.rules
            .iter()
            .filter_map(|rule| match &rule.origin {
                Origin::Url {
                    host: Host::Name(name),
                    ..
                } => match service_name(name, tunnel_namespace) {
                    ServiceName::Certain(r) | ServiceName::Possible(r) => Some(r),
                    ServiceName::NotAService => None,
                },
                _ => None,
            })
            .collect()
    }
}

impl ValidatedRule {
    /// `spec.ingress[i]`, for messages.
    pub fn field_path(&self) -> String {
        format!("spec.ingress[{}]", self.index)
    }
}

/// A rule with no hostname (or `*`) and no path matches every request.
pub fn is_catch_all(rule: &IngressRule) -> bool {
    let any_host = matches!(rule.hostname.as_deref(), None | Some("") | Some("*"));
    let any_path = matches!(rule.path.as_deref(), None | Some(""));
    any_host && any_path
}

/// Checks a whole SecureTunnel spec (`name` is the object's name) and returns it
/// parsed, or every problem found.
pub fn validate(name: &str, spec: &SecureTunnelSpec) -> Result<ValidatedSpec, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let mut rules = Vec::with_capacity(spec.ingress.len());

    if name.len() > MAX_TUNNEL_NAME_LEN {
        errs.report(
            "metadata.name",
            format!("must be at most {MAX_TUNNEL_NAME_LEN} characters so that \"<name>{CHILD_SUFFIX}\" is a valid DNS label"),
        );
    }

    if spec.token_secret_ref.name.is_empty() {
        errs.report("spec.tokenSecretRef.name", "must not be empty");
    } else if let Err(e) = check_object_name(&spec.token_secret_ref.name) {
        errs.report("spec.tokenSecretRef.name", e);
    }
    let key = &spec.token_secret_ref.key;
    if key.is_empty()
        || key.len() > 253
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        errs.report(
            "spec.tokenSecretRef.key",
            format!("{key:?} is not a valid Secret key (letters, digits, '-', '_', '.')"),
        );
    }

    if !(MIN_REPLICAS..=MAX_REPLICAS).contains(&spec.replicas) {
        errs.report(
            "spec.replicas",
            format!(
                "{} is out of range: must be {MIN_REPLICAS} to {MAX_REPLICAS}",
                spec.replicas
            ),
        );
    }

    if let Err(e) = check_image(&spec.image) {
        errs.report("spec.image", e);
    }

    let count = spec.ingress.len();
    if count == 0 || count > MAX_INGRESS_RULES {
        errs.report(
            "spec.ingress",
            format!("has {count} rules: must have 1 to {MAX_INGRESS_RULES}"),
        );
    }
    let mut seen: std::collections::HashMap<(String, &str), usize> =
        std::collections::HashMap::new();
    let mut ca_sources = CaSources::default();
    for (i, rule) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        let ca_file = rule
            .origin_request
            .as_ref()
            .and_then(|o| o.ca_pool.as_ref())
            .and_then(|ca| ca_sources.add(&format!("{path}.originRequest.caPool"), ca, &mut errs));
        if let Some(origin) = check_rule(&path, rule, &mut errs) {
            rules.push(ValidatedRule {
                index: i,
                origin,
                ca_file,
            });
        }
        // cloudflared uses the first match: a repeated hostname + path is dead.
        let key = (
            rule.hostname.as_deref().unwrap_or("").to_ascii_lowercase(),
            rule.path.as_deref().unwrap_or(""),
        );
        if let Some(first) = seen.get(&key) {
            errs.report(
                format!("spec.ingress[{i}]"),
                format!("has the same hostname and path as spec.ingress[{first}], so it could never match"),
            );
        } else {
            seen.insert(key, i);
        }
    }

    let fallback = match parse_service(&spec.fallback) {
        Ok(origin) => Some(origin),
        Err(e) => {
            errs.report("spec.fallback", e);
            None
        }
    };

    for (i, cidr) in spec.egress.cloudflare_edge.iter().enumerate() {
        if let Err(e) = check_cidr(cidr) {
            errs.report(format!("spec.egress.cloudflareEdge[{i}]"), e);
        }
    }
    if spec.egress.cloudflare_edge.is_empty() {
        errs.report(
            "spec.egress.cloudflareEdge",
            "must list at least one CIDR: the connector cannot reach Cloudflare otherwise",
        );
    }
    if let Err(e) = check_namespace_name(&spec.egress.dns.namespace) {
        errs.report("spec.egress.dns.namespace", e);
    }
    for (k, v) in spec.egress.dns.pod_labels.iter() {
        if let Err(e) = check_label(k, v) {
            errs.report("spec.egress.dns.podLabels", e);
        }
    }
    for (i, origin) in spec.egress.extra_origins.iter().enumerate() {
        let path = format!("spec.egress.extraOrigins[{i}]");
        if let Err(e) = check_cidr(&origin.cidr) {
            errs.report(format!("{path}.cidr"), e);
        }
        if origin.ports.is_empty() {
            errs.report(format!("{path}.ports"), "must list at least one port");
        }
        for (j, port) in origin.ports.iter().enumerate() {
            if !(1..=65535).contains(port) {
                errs.report(
                    format!("{path}.ports[{j}]"),
                    format!("{port} must be 1 to 65535"),
                );
            }
        }
    }

    if let Some(peers) = &spec.metrics.allow_from {
        if peers.namespace_labels.is_empty() && peers.pod_labels.is_empty() {
            errs.report(
                "spec.metrics.allowFrom",
                "needs namespaceLabels or podLabels: an empty selector would let every pod scrape (and read /config and /debug/pprof)",
            );
        }
        for (k, v) in peers.namespace_labels.iter().chain(&peers.pod_labels) {
            if let Err(e) = check_label(k, v) {
                errs.report("spec.metrics.allowFrom", e);
            }
        }
    }

    if let Some(rc) = &spec.sandbox.runtime_class_name {
        if let Err(e) = check_object_name(rc) {
            errs.report("spec.sandbox.runtimeClassName", e);
        }
    }

    let uses_access = spec.ingress.iter().any(|r| {
        r.origin_request
            .as_ref()
            .and_then(|o| o.access.as_ref())
            .is_some_and(|a| a.required == Some(true))
    });
    for (i, cidr) in spec.egress.cloudflare_access.iter().enumerate() {
        if let Err(e) = check_cidr(cidr) {
            errs.report(format!("spec.egress.cloudflareAccess[{i}]"), e);
        }
    }
    if uses_access && spec.egress.cloudflare_access.is_empty() {
        errs.report(
            "spec.egress.cloudflareAccess",
            "must list at least one CIDR: a rule requires Access, whose signing keys the connector fetches from Cloudflare on 443",
        );
    }
    platform::check_pod(&spec.pod, &mut errs);
    let grace_period = platform::check_connector(&spec.connector, &mut errs);
    if let Some(dns) = &spec.dns {
        platform::check_dns(dns, &mut errs);
    }
    platform::check_pod_monitor(&spec.metrics, &mut errs);

    match fallback {
        Some(fallback) if errs.is_empty() => Ok(ValidatedSpec {
            rules,
            fallback,
            grace_period,
            region: spec.connector.region,
            uses_access,
            ca_sources,
        }),
        _ => Err(errs),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
