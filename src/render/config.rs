//! The cloudflared `config.yaml` held by the child ConfigMap.

use serde::Serialize;

use crate::api::OriginRequest;
use crate::api::SecureTunnelSpec;
use crate::names::metrics_address;
use crate::validate::ValidatedSpec;
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
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_request: Option<ConfigOriginRequest<'a>>,
}

/// A rule's `originRequest`. The API type uses cloudflared's own key names, so it
/// serializes as is, but for `caPool`: cloudflared takes a file, the API a ConfigMap or
/// Secret key, which the pods see at the validated path.
#[derive(Serialize)]
#[serde(untagged)]
enum ConfigOriginRequest<'a> {
    AsIs(&'a OriginRequest),
    WithCaFile(serde_json::Value),
}

fn origin_request<'a>(
    settings: &'a OriginRequest,
    ca_file: Option<&str>,
) -> Result<ConfigOriginRequest<'a>> {
    let Some(file) = ca_file else {
        return Ok(ConfigOriginRequest::AsIs(settings));
    };
    let mut json = serde_json::to_value(settings).map_err(|source| Error::Serialize {
        what: "originRequest",
        source,
    })?;
    json["caPool"] = serde_json::Value::from(file);
    Ok(ConfigOriginRequest::WithCaFile(json))
}

/// Renders `config.yaml`: the spec's rules in order, then the fallback.
pub fn render_config(spec: &SecureTunnelSpec, validated: &ValidatedSpec) -> Result<String> {
    let ca_file = |index: usize| {
        validated
            .rules
            .iter()
            .find(|r| r.index == index)
            .and_then(|r| r.ca_file.as_deref())
    };
    let mut ingress: Vec<ConfigRule<'_>> = Vec::with_capacity(spec.ingress.len() + 1);
    for (index, rule) in spec.ingress.iter().enumerate() {
        ingress.push(ConfigRule {
            hostname: rule.hostname.as_deref().filter(|h| !h.is_empty()),
            path: rule.path.as_deref().filter(|p| !p.is_empty()),
            service: &rule.service,
            origin_request: rule
                .origin_request
                .as_ref()
                .map(|o| origin_request(o, ca_file(index)))
                .transpose()?,
        });
    }
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
