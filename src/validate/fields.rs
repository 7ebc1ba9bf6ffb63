//! Checks of single fields: names, hostnames, durations, CIDRs, the image, labels.

use std::net::IpAddr;
use std::time::Duration;

use super::origin::check_dns_name;
use crate::names::{DNS_LABEL_MAX, MAX_IMAGE_LEN};

/// cloudflared >= 2025.4.0 is the first release with `--token-file`.
const MIN_CLOUDFLARED_VERSION: (u32, u32, u32) = (2025, 4, 0);

/// A Kubernetes object name (RFC 1123 subdomain): a lowercase DNS name.
pub fn check_object_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_ascii_uppercase()) || name.ends_with('.') {
        return Err(format!(
            "{name:?} is not a valid object name (lowercase letters, digits, '-' and '.')"
        ));
    }
    check_dns_name(name)
}

/// A namespace name (RFC 1123 label): lowercase, no dots, 63 characters at most.
pub fn check_namespace_name(name: &str) -> Result<(), String> {
    if name.contains('.') {
        return Err(format!("{name:?} is not a valid namespace name (no dots)"));
    }
    check_object_name(name)
}

/// cloudflared hostnames: a DNS name with at most one leading `*.`, no port.
pub fn check_hostname(hostname: &str) -> Result<(), String> {
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
pub fn check_duration(value: &str) -> Result<(), String> {
    parse_duration(value).map(|_| ())
}

/// [`check_duration`], and the duration it gives.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("{value:?} is not a duration such as \"30s\", \"1m30s\" or \"500ms\"");
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = value;
    if rest.is_empty() {
        return Err(bad());
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let (unit, scale) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        // "ms" before "m" and "s": take the longest unit that matches.
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())
        .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
        seconds += number * scale;
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

pub fn check_cidr(value: &str) -> Result<(), String> {
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
pub fn check_image(image: &str) -> Result<(), String> {
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
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
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
