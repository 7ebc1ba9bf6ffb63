//! securetunnel-operator: turns a `SecureTunnel` into a hardened, replicated
//! `cloudflared` connector.
//!
//! The pipeline is split into small steps so that everything that does not
//! need the API server is a pure function:
//! [`validate`] → [`token`] → [`render`] are pure; [`reconcile`] adds the
//! reads (dereference), the server-side applies and the status patch.

pub mod api;
pub mod children;
pub mod compact;
pub mod controller;
pub mod external;
pub mod http;
pub mod index;
pub mod leader;
pub mod managed_fields;
pub mod metrics;
pub mod names;
pub mod offline;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod status;
pub mod telemetry;
pub mod token;
pub mod validate;

#[cfg(test)]
mod test_support;

/// Every failure of the operator. Spec and token problems are not errors:
/// they are reported on the SecureTunnel's status and wait for a change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    #[error("dereference: reading {object}: {source}")]
    Dereference {
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("apply: {object}: {source}")]
    Apply {
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("status: {object}: {source}")]
    Status {
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("could not serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("could not write the cloudflared config: {0}")]
    ConfigYaml(#[source] serde_norway::Error),

    #[error("the {0} cache has not finished its first listing")]
    CacheNotReady(&'static str),

    #[error(
        "lost the leader Lease (not renewed for a lease duration, or another replica holds it)"
    )]
    LostLeadership,

    #[error("object is missing {0}")]
    MissingObjectKey(&'static str),

    #[error("could not read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    Input { path: String, message: String },

    #[error("the spec is invalid:\n{0}")]
    InvalidSpec(validate::ValidationErrors),

    #[error("{0}")]
    Token(#[from] token::TokenError),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl Error {
    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            // An API failure is one label whatever the step (the message names the step
            // and the object): the label set stays small and stable.
            Error::Kube(_)
            | Error::Dereference { .. }
            | Error::Apply { .. }
            | Error::Status { .. } => "kube",
            Error::Serialize { .. } => "serialize",
            Error::ConfigYaml(_) => "config_yaml",
            Error::CacheNotReady(_) => "cache_not_ready",
            Error::LostLeadership => "lost_leadership",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::ReadFile { .. } => "read_file",
            Error::Input { .. } => "input",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Token(_) => "token",
        }
    }
}

impl Error {
    /// The pause the API server asked for (a 429's `retryAfterSeconds`), if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Kube(e)
            | Error::Dereference { source: e, .. }
            | Error::Apply { source: e, .. }
            | Error::Status { source: e, .. } => match e {
                kube::Error::Api(status) => status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| std::time::Duration::from_secs(u64::from(s))),
                _ => None,
            },
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
