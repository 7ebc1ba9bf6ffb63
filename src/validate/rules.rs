//! Checks of one ingress rule: its hostname, path, service and `originRequest`, as
//! cloudflared checks them.

use super::fields::{check_duration, check_hostname};
use super::origin::{check_dns_name, parse_service, Origin};
use super::{is_catch_all, ValidationErrors};
use crate::api::{IngressRule, OriginRequest};
use crate::names::MAX_PATH_LEN;

/// A regular expression larger than this (compiled) is refused; cloudflared
/// evaluates it on every request.
const MAX_PATH_REGEX_SIZE: usize = 1 << 20;

/// Checks one rule; its parsed service when that is valid.
pub fn check_rule(path: &str, rule: &IngressRule, errs: &mut ValidationErrors) -> Option<Origin> {
    if let Some(hostname) = rule
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty() && *h != "*")
    {
        if let Err(e) = check_hostname(hostname) {
            errs.report(format!("{path}.hostname"), e);
        }
    }
    if let Some(re) = rule.path.as_deref().filter(|p| p.len() > MAX_PATH_LEN) {
        errs.report(
            format!("{path}.path"),
            format!("is {} characters long: at most {MAX_PATH_LEN}", re.len()),
        );
    } else if let Some(re) = rule.path.as_deref().filter(|p| !p.is_empty()) {
        if let Err(e) = regex::RegexBuilder::new(re)
            .size_limit(MAX_PATH_REGEX_SIZE)
            .build()
        {
            errs.report(
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
            errs.report(format!("{path}.service"), e);
            None
        }
        Ok(origin @ Origin::Url { .. }) if origin.port().is_none() => {
            errs.report(
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
        errs.report(
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
                errs.report(format!("{path}.{field}"), e);
            }
        }
    }
    if let Some(n) = o.keep_alive_connections {
        if n < 0 {
            errs.report(
                format!("{path}.keepAliveConnections"),
                format!("{n} must not be negative"),
            );
        }
    }
    if let Some(host) = &o.origin_server_name {
        if let Err(e) = check_dns_name(host) {
            errs.report(format!("{path}.originServerName"), e);
        }
    }
    if let Some(access) = &o.access {
        let team = access.team_name.as_deref().unwrap_or("");
        if !access.aud_tag.is_empty() && team.is_empty() {
            errs.report(
                format!("{path}.access.teamName"),
                "is required when audTag is set",
            );
        } else if access.required == Some(true) && team.is_empty() {
            // cloudflared accepts it, then fails every request: the signing keys would be
            // fetched from https://.cloudflareaccess.com.
            errs.report(
                format!("{path}.access.teamName"),
                "is required when access.required is true: cloudflared fetches the signing keys from <teamName>.cloudflareaccess.com",
            );
        }
    }
}
