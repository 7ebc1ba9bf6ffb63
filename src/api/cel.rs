//! The CEL rules the CRD carries (`x-kubernetes-validations`), so that the
//! API server refuses at admission what `src/validate.rs` refuses in the
//! operator. `tests/admission.rs` runs both on one table of cases, so they
//! cannot drift apart. Kept as constants so each rule is written once.

use kube::core::{Message, Rule};

use crate::names::{
    ANNOTATION_PREFIX, CHILD_SUFFIX, MAX_GRACE_PERIOD_SECONDS, MAX_TUNNEL_NAME_LEN,
    SCHEMES_WITH_DEFAULT_PORT, SELECTOR_LABEL_KEYS,
};

/// Root: the name leaves room for the child suffix in a DNS label.
pub fn name_length() -> Rule {
    Rule::new(format!("size(self.metadata.name) <= {MAX_TUNNEL_NAME_LEN}")).message(
        Message::Message(format!(
            "metadata.name must be at most {MAX_TUNNEL_NAME_LEN} characters so that <name>{CHILD_SUFFIX} is a valid DNS label"
        )),
    )
}

pub const IMAGE_PINNED: &str = "!self.matches(':latest(@.*)?$')";
pub const IMAGE_HAS_TAG: &str =
    "self.contains('@') || self.split('/')[size(self.split('/')) - 1].contains(':')";

/// No rule may match everything: that is `spec.fallback`.
pub const NO_CATCH_ALL: &str =
    "self.all(r, (has(r.hostname) && r.hostname != '' && r.hostname != '*') || (has(r.path) && r.path != ''))";

// Not at admission: a repeated hostname + path. Comparing every pair of up to
// 256 rules would exceed the API server's CEL cost limits; src/validate.rs
// refuses it instead.

/// A DNS name with at most one leading `*.`; empty and `*` match every host.
pub const HOSTNAME: &str = "self == '' || self == '*' || self.matches('^(\\\\*\\\\.)?[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\\\\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\\\\.?$')";

pub const SERVICE_SHAPE: &str = "self == 'hello_world' || self.startsWith('http_status:') || self in ['bastion', 'socks-proxy'] || self.startsWith('unix:') || self.startsWith('unix+tls:') || self.matches('^[a-z][a-z0-9+.-]*://([a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?|\\\\[[0-9a-fA-F:.]+\\\\])(:[1-9][0-9]{0,4})?$')";
pub const SERVICE_SHAPE_MESSAGE: &str =
    "must be scheme://host[:port] with no path, query or credentials, http_status:NNN or hello_world";
pub const SERVICE_NOT_OPEN_PROXY: &str = "!(self in ['bastion', 'socks-proxy'])";
pub const SERVICE_NOT_OPEN_PROXY_MESSAGE: &str =
    "bastion and socks-proxy let the connector reach any destination, which defeats the egress sandbox";
pub const SERVICE_NOT_UNIX: &str = "!self.startsWith('unix:') && !self.startsWith('unix+tls:')";
pub const SERVICE_NOT_UNIX_MESSAGE: &str = "unix sockets cannot exist inside the connector pod";
pub const HTTP_STATUS_RANGE: &str =
    "!self.startsWith('http_status:') || self.matches('^http_status:[1-9][0-9][0-9]$')";
pub const HTTP_STATUS_RANGE_MESSAGE: &str = "http_status needs a status code from 100 to 999";
/// Schemes cloudflared has no default port for need one.
pub fn service_port_needed() -> Rule {
    let schemes = SCHEMES_WITH_DEFAULT_PORT.join("|");
    Rule::new(format!(
        "!self.matches('^[a-z][a-z0-9+.-]*://') || self.matches('^({schemes})://') || self.matches(':[0-9]+$')"
    ))
    .message("a scheme without a default port needs an explicit port")
}

/// A Go duration without sign: `30s`, `1m30s`, `1.5h`, `500ms`, `0`.
pub const DURATION: &str =
    "self.matches('^(0|(([0-9]+\\\\.?[0-9]*|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$')";
pub const DURATION_MESSAGE: &str = "must be a duration such as 30s, 1m30s or 500ms";

pub const ACCESS_TEAM: &str = "((!has(self.audTag) || size(self.audTag) == 0) && !(has(self.required) && self.required)) || (has(self.teamName) && self.teamName != '')";

pub const PEERS_SELECTED: &str = "(has(self.namespaceLabels) && size(self.namespaceLabels) > 0) || (has(self.podLabels) && size(self.podLabels) > 0)";

/// Pod labels may not steal the connector pods' selector.
pub fn no_selector_labels() -> Rule {
    let rule: Vec<String> = SELECTOR_LABEL_KEYS
        .iter()
        .map(|k| format!("!('{k}' in self)"))
        .collect();
    Rule::new(rule.join(" && ")).message(Message::Message(format!(
        "{} are set by the operator",
        SELECTOR_LABEL_KEYS.join(" and ")
    )))
}

/// Pod annotations under the operator's prefix are the operator's.
pub fn no_reserved_annotations() -> Rule {
    Rule::new(format!("self.all(k, !k.startsWith('{ANNOTATION_PREFIX}'))")).message(
        Message::Message(format!(
            "annotations under {ANNOTATION_PREFIX} are set by the operator"
        )),
    )
}

/// cloudflared refuses a `--grace-period` above 3 minutes.
pub fn grace_period_bound() -> Rule {
    Rule::new(format!(
        "duration(self) <= duration('{MAX_GRACE_PERIOD_SECONDS}s')"
    ))
    .message(Message::Message(format!(
        "cloudflared allows a grace period of at most {MAX_GRACE_PERIOD_SECONDS}s"
    )))
}

/// What the scheduler accepts in a spread constraint.
pub const SPREAD_VALID: &str =
    "self.all(c, c.maxSkew >= 1 && c.whenUnsatisfiable in ['DoNotSchedule', 'ScheduleAnyway'])";
pub const SPREAD_VALID_MESSAGE: &str =
    "each constraint needs maxSkew >= 1 and whenUnsatisfiable DoNotSchedule or ScheduleAnyway";

/// A CA bundle comes from exactly one place.
pub const ONE_CA_SOURCE: &str = "has(self.configMapKeyRef) != has(self.secretKeyRef)";
pub const ONE_CA_SOURCE_MESSAGE: &str =
    "caPool needs exactly one of configMapKeyRef and secretKeyRef";
