//! The CEL rules the CRD carries (`x-kubernetes-validations`), so that the
//! API server refuses at admission what `src/validate.rs` refuses in the
//! operator. `tests/admission.rs` runs both on one table of cases, so they
//! cannot drift apart. Kept as constants so each rule is written once.

/// Root: the name leaves room for the `-cloudflared` suffix in a DNS label.
pub const NAME_LENGTH: &str = "size(self.metadata.name) <= 51";

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
pub const SERVICE_PORT_NEEDED: &str = "!self.matches('^[a-z][a-z0-9+.-]*://') || self.matches('^(https?|wss?|ssh|rdp|smb)://') || self.matches(':[0-9]+$')";

/// A Go duration without sign: `30s`, `1m30s`, `1.5h`, `500ms`, `0`.
pub const DURATION: &str =
    "self.matches('^(0|(([0-9]+\\\\.?[0-9]*|\\\\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$')";
pub const DURATION_MESSAGE: &str = "must be a duration such as 30s, 1m30s or 500ms";

pub const ACCESS_TEAM: &str =
    "!has(self.audTag) || size(self.audTag) == 0 || (has(self.teamName) && self.teamName != '')";

pub const PEERS_SELECTED: &str = "(has(self.namespaceLabels) && size(self.namespaceLabels) > 0) || (has(self.podLabels) && size(self.podLabels) > 0)";

pub const NO_SELECTOR_LABELS: &str =
    "!('app.kubernetes.io/name' in self) && !('app.kubernetes.io/instance' in self)";
