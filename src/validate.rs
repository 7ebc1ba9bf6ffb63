//! Spec checks mirroring cloudflared's own ingress validation, plus the
//! operator's rules (bounds, pinned image, no sandbox-defeating services).
//!
//! Every problem is reported with the field path it concerns, and all
//! problems are collected rather than stopping at the first one.

use std::fmt;
use std::net::IpAddr;

use crate::api::{IngressRule, OriginRequest, SecureTunnelSpec};
use crate::names::{
    ANNOTATION_PREFIX, CHILD_SUFFIX, DNS_LABEL_MAX, MAX_IMAGE_LEN, MAX_INGRESS_RULES, MAX_PATH_LEN,
    MAX_REPLICAS, MAX_TUNNEL_NAME_LEN, MIN_REPLICAS, SELECTOR_LABEL_KEYS,
};
use crate::origin::{check_dns_name, parse_service, Origin};

/// cloudflared >= 2025.4.0 is the first release with `--token-file`.
const MIN_CLOUDFLARED_VERSION: (u32, u32, u32) = (2025, 4, 0);

/// A regular expression larger than this (compiled) is refused; cloudflared
/// evaluates it on every request.
const MAX_PATH_REGEX_SIZE: usize = 1 << 20;

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
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
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

/// A Kubernetes object name (RFC 1123 subdomain): a lowercase DNS name.
fn check_object_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_ascii_uppercase()) || name.ends_with('.') {
        return Err(format!(
            "{name:?} is not a valid object name (lowercase letters, digits, '-' and '.')"
        ));
    }
    check_dns_name(name)
}

/// A namespace name (RFC 1123 label): lowercase, no dots, 63 characters at most.
fn check_namespace_name(name: &str) -> Result<(), String> {
    if name.contains('.') {
        return Err(format!("{name:?} is not a valid namespace name (no dots)"));
    }
    check_object_name(name)
}

/// cloudflared hostnames: a DNS name with at most one leading `*.`, no port.
fn check_hostname(hostname: &str) -> Result<(), String> {
    if hostname.contains(':') {
        return Err(format!("{hostname:?} must not include a port"));
    }
    let rest = hostname.strip_prefix("*.").unwrap_or(hostname);
    if rest.contains('*') {
        return Err(format!(
            "{hostname:?}: a wildcard may only be one leading \"*.\", e.g. \"*.example.com\""
        ));
    }
    check_dns_name(rest)
}

/// A Go `time.ParseDuration` string without sign, e.g. `30s`, `1m30s`, `1.5h`.
fn check_duration(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not a duration such as \"30s\", \"1m30s\" or \"500ms\"");
    if value == "0" {
        return Ok(());
    }
    let mut rest = value;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number = &rest[..number_len];
        if number.is_empty() || number.parse::<f64>().is_err() {
            return Err(bad());
        }
        rest = &rest[number_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            // "ms" before "m" and "s": take the longest unit that matches.
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len())
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    Ok(())
}

fn check_cidr(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not a CIDR such as 10.0.0.0/8 or 2606:4700::/32");
    let (ip, prefix) = value.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok(())
}

/// `image` must be pinned: a tag other than `latest`, or a digest. A
/// calendar-versioned tag must be at least the first `--token-file` release.
fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("must not be empty".into());
    }
    if image.len() > MAX_IMAGE_LEN {
        return Err(format!("is longer than {MAX_IMAGE_LEN} characters"));
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) => Err(format!(
            "{image:?}: the tag must be pinned to a release, not \"latest\""
        )),
        (None, None) => Err(format!(
            "{image:?} has no tag: pin a release, e.g. {}",
            crate::api::DEFAULT_IMAGE
        )),
        (Some(tag), _) => match calver(tag) {
            Some(v) if v < MIN_CLOUDFLARED_VERSION => Err(format!(
                "{image:?}: cloudflared {tag} is older than 2025.4.0, the first release with --token-file"
            )),
            _ => Ok(()),
        },
        (None, Some(_)) => Ok(()),
    }
}

/// cloudflared tags are `YYYY.M.P`; anything else is a custom build.
fn calver(tag: &str) -> Option<(u32, u32, u32)> {
    let mut parts = tag.split('.').map(|p| p.parse::<u32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Label keys and values as Kubernetes accepts them (prefix/name, 63-char name).
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns_name(p).map_err(|e| format!("label key {key:?}: prefix {e}"))?;
    }
    let name_ok = |s: &str, allow_empty: bool| {
        (allow_empty && s.is_empty())
            || (s.len() <= DNS_LABEL_MAX
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
    };
    if !name_ok(name, false) {
        return Err(format!("{key:?} is not a valid label key"));
    }
    if !name_ok(value, true) {
        return Err(format!("{value:?} is not a valid label value (63 characters at most, alphanumeric at both ends)"));
    }
    Ok(())
}

/// A spec that passed every check, with each rule's `service` parsed once: render, the
/// sandbox and the controller's Service index read this, never the strings.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedSpec {
    /// `spec.ingress`, in match order.
    pub rules: Vec<ValidatedRule>,
    /// `spec.fallback` as written, and parsed.
    pub fallback: String,
    pub fallback_origin: Origin,
}

/// One ingress rule that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedRule {
    /// Its position in `spec.ingress`.
    pub index: usize,
    /// `None` for an empty hostname.
    pub hostname: Option<String>,
    /// `None` for an empty path.
    pub path: Option<String>,
    /// The `service` as written (cloudflared's config carries it verbatim).
    pub service: String,
    /// The `service`, parsed.
    pub origin: Origin,
    pub origin_request: Option<OriginRequest>,
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
        errs.push(
            "metadata.name",
            format!("must be at most {MAX_TUNNEL_NAME_LEN} characters so that \"<name>{CHILD_SUFFIX}\" is a valid DNS label"),
        );
    }

    if spec.token_secret_ref.name.is_empty() {
        errs.push("spec.tokenSecretRef.name", "must not be empty");
    } else if let Err(e) = check_object_name(&spec.token_secret_ref.name) {
        errs.push("spec.tokenSecretRef.name", e);
    }
    let key = &spec.token_secret_ref.key;
    if key.is_empty()
        || key.len() > 253
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        errs.push(
            "spec.tokenSecretRef.key",
            format!("{key:?} is not a valid Secret key (letters, digits, '-', '_', '.')"),
        );
    }

    if !(MIN_REPLICAS..=MAX_REPLICAS).contains(&spec.replicas) {
        errs.push(
            "spec.replicas",
            format!(
                "{} is out of range: must be {MIN_REPLICAS} to {MAX_REPLICAS}",
                spec.replicas
            ),
        );
    }

    if let Err(e) = check_image(&spec.image) {
        errs.push("spec.image", e);
    }

    let count = spec.ingress.len();
    if count == 0 || count > MAX_INGRESS_RULES {
        errs.push(
            "spec.ingress",
            format!("has {count} rules: must have 1 to {MAX_INGRESS_RULES}"),
        );
    }
    let mut seen: std::collections::HashMap<(String, &str), usize> =
        std::collections::HashMap::new();
    for (i, rule) in spec.ingress.iter().enumerate() {
        if let Some(origin) = check_rule(&format!("spec.ingress[{i}]"), rule, &mut errs) {
            rules.push(ValidatedRule {
                index: i,
                hostname: rule.hostname.clone().filter(|h| !h.is_empty()),
                path: rule.path.clone().filter(|p| !p.is_empty()),
                service: rule.service.clone(),
                origin,
                origin_request: rule.origin_request.clone(),
            });
        }
        // cloudflared uses the first match: a repeated hostname + path is dead.
        let key = (
            rule.hostname.as_deref().unwrap_or("").to_ascii_lowercase(),
            rule.path.as_deref().unwrap_or(""),
        );
        if let Some(first) = seen.get(&key) {
            errs.push(
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
            errs.push("spec.fallback", e);
            None
        }
    };

    for (i, cidr) in spec.egress.cloudflare_edge.iter().enumerate() {
        if let Err(e) = check_cidr(cidr) {
            errs.push(format!("spec.egress.cloudflareEdge[{i}]"), e);
        }
    }
    if spec.egress.cloudflare_edge.is_empty() {
        errs.push(
            "spec.egress.cloudflareEdge",
            "must list at least one CIDR: the connector cannot reach Cloudflare otherwise",
        );
    }
    if let Err(e) = check_namespace_name(&spec.egress.dns.namespace) {
        errs.push("spec.egress.dns.namespace", e);
    }
    for (k, v) in &spec.egress.dns.pod_labels {
        if let Err(e) = check_label(k, v) {
            errs.push("spec.egress.dns.podLabels", e);
        }
    }
    for (i, origin) in spec.egress.extra_origins.iter().enumerate() {
        let path = format!("spec.egress.extraOrigins[{i}]");
        if let Err(e) = check_cidr(&origin.cidr) {
            errs.push(format!("{path}.cidr"), e);
        }
        if origin.ports.is_empty() {
            errs.push(format!("{path}.ports"), "must list at least one port");
        }
        for (j, port) in origin.ports.iter().enumerate() {
            if !(1..=65535).contains(port) {
                errs.push(
                    format!("{path}.ports[{j}]"),
                    format!("{port} must be 1 to 65535"),
                );
            }
        }
    }

    if let Some(peers) = &spec.metrics.allow_from {
        if peers.namespace_labels.is_empty() && peers.pod_labels.is_empty() {
            errs.push(
                "spec.metrics.allowFrom",
                "needs namespaceLabels or podLabels: an empty selector would let every pod scrape (and read /config and /debug/pprof)",
            );
        }
        for (k, v) in peers.namespace_labels.iter().chain(&peers.pod_labels) {
            if let Err(e) = check_label(k, v) {
                errs.push("spec.metrics.allowFrom", e);
            }
        }
    }

    if let Some(rc) = &spec.sandbox.runtime_class_name {
        if let Err(e) = check_object_name(rc) {
            errs.push("spec.sandbox.runtimeClassName", e);
        }
    }

    for (k, v) in &spec.pod.labels {
        if SELECTOR_LABEL_KEYS.contains(&k.as_str()) {
            errs.push(
                "spec.pod.labels",
                format!("{k:?} is set by the operator (it selects the connector pods)"),
            );
        } else if let Err(e) = check_label(k, v) {
            errs.push("spec.pod.labels", e);
        }
    }
    for k in spec.pod.annotations.keys() {
        if k.starts_with(ANNOTATION_PREFIX) {
            errs.push(
                "spec.pod.annotations",
                format!("{k:?}: annotations under {ANNOTATION_PREFIX} are set by the operator"),
            );
        }
    }
    for (k, v) in &spec.pod.node_selector {
        if let Err(e) = check_label(k, v) {
            errs.push("spec.pod.nodeSelector", e);
        }
    }

    match fallback {
        Some(fallback_origin) if errs.is_empty() => Ok(ValidatedSpec {
            rules,
            fallback: spec.fallback.clone(),
            fallback_origin,
        }),
        _ => Err(errs),
    }
}

/// Checks one rule; its parsed service when that is valid.
fn check_rule(path: &str, rule: &IngressRule, errs: &mut ValidationErrors) -> Option<Origin> {
    if let Some(hostname) = rule
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty() && *h != "*")
    {
        if let Err(e) = check_hostname(hostname) {
            errs.push(format!("{path}.hostname"), e);
        }
    }
    if let Some(re) = rule.path.as_deref().filter(|p| p.len() > MAX_PATH_LEN) {
        errs.push(
            format!("{path}.path"),
            format!("is {} characters long: at most {MAX_PATH_LEN}", re.len()),
        );
    } else if let Some(re) = rule.path.as_deref().filter(|p| !p.is_empty()) {
        if let Err(e) = regex::RegexBuilder::new(re)
            .size_limit(MAX_PATH_REGEX_SIZE)
            .build()
        {
            errs.push(
                format!("{path}.path"),
                format!(
                    "{re:?} is not a valid regular expression: {}",
                    regex_error_summary(&e.to_string())
                ),
            );
        }
    }
    let origin = match parse_service(&rule.service) {
        Err(e) => {
            errs.push(format!("{path}.service"), e);
            None
        }
        Ok(origin @ Origin::Url { .. }) if origin.port().is_none() => {
            errs.push(
                format!("{path}.service"),
                format!(
                    "{:?} needs a port: its scheme has no default port",
                    rule.service
                ),
            );
            None
        }
        Ok(origin) => Some(origin),
    };
    if is_catch_all(rule) {
        errs.push(
            path.to_string(),
            "matches every request (no hostname and no path), so the rules after it and spec.fallback could never match; set spec.fallback for the catch-all instead",
        );
    }
    if let Some(origin) = &rule.origin_request {
        check_origin_request(&format!("{path}.originRequest"), origin, errs);
    }
    origin
}

/// The regex crate's errors end with the line that says what is wrong
/// ("error: unclosed group"), after a copy of the pattern and a caret.
fn regex_error_summary(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
}

fn check_origin_request(path: &str, o: &OriginRequest, errs: &mut ValidationErrors) {
    let durations = [
        ("connectTimeout", &o.connect_timeout),
        ("tlsTimeout", &o.tls_timeout),
        ("tcpKeepAlive", &o.tcp_keep_alive),
        ("keepAliveTimeout", &o.keep_alive_timeout),
    ];
    for (field, value) in durations {
        if let Some(v) = value {
            if let Err(e) = check_duration(v) {
                errs.push(format!("{path}.{field}"), e);
            }
        }
    }
    if let Some(n) = o.keep_alive_connections {
        if n < 0 {
            errs.push(
                format!("{path}.keepAliveConnections"),
                format!("{n} must not be negative"),
            );
        }
    }
    if let Some(host) = &o.origin_server_name {
        if let Err(e) = check_dns_name(host) {
            errs.push(format!("{path}.originServerName"), e);
        }
    }
    if let Some(access) = &o.access {
        let team = access.team_name.as_deref().unwrap_or("");
        if !access.aud_tag.is_empty() && team.is_empty() {
            errs.push(
                format!("{path}.access.teamName"),
                "is required when audTag is set",
            );
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
