//! Checks of the platform settings: cloudflared's own flags, the pod's pull secrets and
//! spread, the DNS records and the PodMonitor.

use std::time::Duration;

use super::fields::{check_label, check_object_name, parse_duration};
use super::ValidationErrors;
use crate::api::{Connector, Dns, Metrics, PodOverrides};
use crate::names::{
    ANNOTATION_PREFIX, DEFAULT_GRACE_PERIOD_SECONDS, MAX_DNS_TTL, MAX_GRACE_PERIOD_SECONDS,
    MIN_DNS_TTL, RECORD_OWNER_LABEL, SELECTOR_LABEL_KEYS,
};

/// What the scheduler accepts in `whenUnsatisfiable`.
const WHEN_UNSATISFIABLE: [&str; 2] = ["DoNotSchedule", "ScheduleAnyway"];

/// Checks `spec.connector`; the grace period cloudflared will use.
pub fn check_connector(c: &Connector, errs: &mut ValidationErrors) -> Duration {
    let default = Duration::from_secs(DEFAULT_GRACE_PERIOD_SECONDS);
    let Some(value) = &c.grace_period else {
        return default;
    };
    match parse_duration(value) {
        Err(e) => {
            errs.report("spec.connector.gracePeriod", e);
            default
        }
        Ok(d) if d > Duration::from_secs(MAX_GRACE_PERIOD_SECONDS) => {
            errs.report(
                "spec.connector.gracePeriod",
                format!(
                    "{value:?} is longer than cloudflared allows ({MAX_GRACE_PERIOD_SECONDS}s)"
                ),
            );
            default
        }
        Ok(d) => d,
    }
}

/// Checks `spec.pod`: its labels, annotations, node selector, pull secrets and spread.
pub fn check_pod(pod: &PodOverrides, errs: &mut ValidationErrors) {
    for (k, v) in &pod.labels {
        if SELECTOR_LABEL_KEYS.contains(&k.as_str()) {
            errs.report(
                "spec.pod.labels",
                format!("{k:?} is set by the operator (it selects the connector pods)"),
            );
        } else if let Err(e) = check_label(k, v) {
            errs.report("spec.pod.labels", e);
        }
    }
    for k in pod.annotations.keys() {
        if k.starts_with(ANNOTATION_PREFIX) {
            errs.report(
                "spec.pod.annotations",
                format!("{k:?}: annotations under {ANNOTATION_PREFIX} are set by the operator"),
            );
        }
    }
    for (k, v) in &pod.node_selector {
        if let Err(e) = check_label(k, v) {
            errs.report("spec.pod.nodeSelector", e);
        }
    }
    for (i, secret) in pod.image_pull_secrets.iter().enumerate() {
        let path = format!("spec.pod.imagePullSecrets[{i}].name");
        if secret.name.is_empty() {
            errs.report(path, "must name a Secret");
        } else if let Err(e) = check_object_name(&secret.name) {
            errs.report(path, e);
        }
    }
    for (i, c) in pod.topology_spread_constraints.iter().enumerate() {
        let path = format!("spec.pod.topologySpreadConstraints[{i}]");
        if c.max_skew < 1 {
            errs.report(
                format!("{path}.maxSkew"),
                format!("{} must be at least 1", c.max_skew),
            );
        }
        if let Err(e) = check_label(&c.topology_key, "") {
            errs.report(format!("{path}.topologyKey"), e);
        }
        if !WHEN_UNSATISFIABLE.contains(&c.when_unsatisfiable.as_str()) {
            errs.report(
                format!("{path}.whenUnsatisfiable"),
                format!(
                    "{:?} must be one of {WHEN_UNSATISFIABLE:?}",
                    c.when_unsatisfiable
                ),
            );
        }
        if c.min_domains.is_some_and(|m| m < 1) {
            errs.report(format!("{path}.minDomains"), "must be at least 1");
        }
    }
}

/// Checks `spec.dns`.
pub fn check_dns(dns: &Dns, errs: &mut ValidationErrors) {
    if !(MIN_DNS_TTL..=MAX_DNS_TTL).contains(&dns.ttl) {
        errs.report(
            "spec.dns.ttl",
            format!("{} must be {MIN_DNS_TTL} to {MAX_DNS_TTL} seconds", dns.ttl),
        );
    }
    if let Some(owner) = &dns.record_owner {
        if let Err(e) = check_label(RECORD_OWNER_LABEL, owner) {
            errs.report("spec.dns.recordOwner", e);
        }
    }
}

/// Checks `spec.metrics.podMonitor`.
pub fn check_pod_monitor(metrics: &Metrics, errs: &mut ValidationErrors) {
    let Some(monitor) = &metrics.pod_monitor else {
        return;
    };
    for (k, v) in &monitor.labels {
        if let Err(e) = check_label(k, v) {
            errs.report("spec.metrics.podMonitor.labels", e);
        }
    }
    if let Some(interval) = &monitor.interval {
        if let Err(e) = parse_duration(interval) {
            errs.report("spec.metrics.podMonitor.interval", e);
        }
    }
}
