//! The cloudflared `config.yaml` held by the child ConfigMap.

use serde::Serialize;

use crate::api::OriginRequest;
use crate::api::SecureTunnelSpec;
use crate::names::metrics_address;
use crate::{Error, Result};

#[derive(Serialize)]
struct CloudflaredConfig<'a> {
    ingress: Vec<ConfigRule<'a>>,
    #[serde(rename = "no-autoupdate")]
    no_autoupdate: bool,
    metrics: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigRule<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    service: &'a str,
    // The API type uses cloudflared's own key names, so it serializes as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_request: Option<&'a OriginRequest>,
}

/// Renders `config.yaml`: the spec's rules in order, then the fallback.
pub fn render_config(spec: &SecureTunnelSpec) -> Result<String> {
    let mut ingress: Vec<ConfigRule<'_>> = spec
        .ingress
        .iter()
        .map(|rule| ConfigRule {
            hostname: rule.hostname.as_deref().filter(|h| !h.is_empty()),
            path: rule.path.as_deref().filter(|p| !p.is_empty()),
            service: &rule.service,
            origin_request: rule.origin_request.as_ref(),
        })
        .collect();
    ingress.push(ConfigRule {
        hostname: None,
        path: None,
        service: &spec.fallback,
        origin_request: None,
    });
    let config = CloudflaredConfig {
        ingress,
        no_autoupdate: true,
        metrics: metrics_address(),
    };
    serde_norway::to_string(&config).map_err(Error::ConfigYaml)
}
