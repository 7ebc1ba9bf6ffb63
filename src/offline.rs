//! `render -f`: the reconciler's validate + render path without an API
//! server. Reads SecureTunnels (and optionally their token Secrets and the
//! Services they name) from multi-document YAML and prints every child.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde::Deserialize;

use crate::api::SecureTunnel;
use crate::reconcile::dereference::{config_map_value, secret_value};
use crate::render::{render, workload::TOKEN_KEY, Dereferenced};
use crate::token::TunnelToken;
use crate::validate::origin::ServiceRef;
use crate::validate::{validate, CaKey, CaKind, ValidatedSpec};
use crate::{Error, Result};

/// The namespace assumed for objects in the file that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The namespace assumed for the operator when none is given: the chart's and
/// kustomize's.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "securetunnel-system";

/// Written in place of the token unless the caller asks to reveal it.
pub const REDACTED: &str = "<redacted>";

/// What the offline render produced.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Multi-document YAML of every child, in apply order.
    pub yaml: String,
    /// Remarks for stderr: defaults assumed, inputs missing, origins not opened.
    pub notes: Vec<String>,
}

/// The inputs of an offline render.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderInput<'a> {
    /// Name of the main file, for messages.
    pub source: &'a str,
    /// SecureTunnels, and optionally their token Secrets and the Services they name.
    pub input: &'a str,
    /// More Services (`--services FILE`): (name for messages, contents).
    pub services: Option<(&'a str, &'a str)>,
    /// The `--token-file` contents.
    pub token: Option<&'a [u8]>,
    /// Print the token instead of [`REDACTED`].
    pub reveal_token: bool,
    /// The namespace the operator runs in (its pods may read the connectors' `/config`).
    pub operator_namespace: &'a str,
}

/// Objects read from the input files, by kind.
#[derive(Default)]
struct Objects {
    tunnels: Vec<SecureTunnel>,
    secrets: Vec<Secret>,
    config_maps: Vec<ConfigMap>,
    services: BTreeMap<ServiceRef, Service>,
}

/// Renders every SecureTunnel found in the input.
///
/// The token comes from `--token-file` or else from a Secret in the same file
/// that the tunnel's `tokenSecretRef` names; with neither, the Secret child is
/// rendered without data. Services the rules name are looked up among the
/// Service objects of either file, as the controller looks them up in the
/// cluster. Unless `reveal_token`, the token is printed as [`REDACTED`].
pub fn render_file(args: RenderInput<'_>) -> Result<Rendered> {
    let mut objects = Objects::default();
    let mut out = Rendered::default();
    read_objects(args.source, args.input, &mut objects, &mut out.notes)?;
    if let Some((source, input)) = args.services {
        read_objects(source, input, &mut objects, &mut out.notes)?;
    }
    if objects.tunnels.is_empty() {
        return Err(Error::Input {
            path: args.source.to_string(),
            message: "contains no SecureTunnel".to_string(),
        });
    }

    let given_token = args.token.map(TunnelToken::parse).transpose()?;
    let mut invalid = Vec::new();
    let mut documents = Vec::new();
    for tunnel in &objects.tunnels {
        let label = format!(
            "SecureTunnel {}/{}",
            tunnel
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE),
            tunnel.metadata.name.as_deref().unwrap_or("<unnamed>")
        );
        let token = match &given_token {
            Some(t) => Some(t.clone()),
            None => token_from_secrets(tunnel, &objects.secrets)?,
        };
        if token.is_none() {
            out.notes.push(format!(
                "{label}: no token given (--token-file or a Secret in the file); its Secret child has no data"
            ));
            if tunnel.spec.dns.is_some() {
                out.notes.push(format!(
                    "{label}: no DNSEndpoint without a token: its records point at <tunnelID>.cfargotunnel.com, and the tunnel ID comes from the token"
                ));
            }
        }
        if tunnel.metadata.uid.is_none() {
            out.notes.push(format!(
                "{label}: has no uid yet, so its children carry no ownerReference (the cluster adds it)"
            ));
        }
        // The controller's path: validate once, then render from the validated spec.
        let name = tunnel.metadata.name.as_deref().unwrap_or_default();
        let validated = match validate(name, &tunnel.spec) {
            Ok(validated) => validated,
            Err(errors) => {
                invalid.push(format!("{label}:\n{errors}"));
                continue;
            }
        };
        let ca_bundles = ca_bundles(tunnel, &validated, &objects, &label, &mut out.notes);
        let deref = Dereferenced {
            token,
            services: objects.services.clone(),
            ca_bundles,
            operator_namespace: Some(args.operator_namespace.to_string()),
        };
        let children = render(tunnel, &validated, &deref)?;
        for origin in &children.unresolved {
            out.notes
                .push(format!("{label}: not opened in the sandbox: {origin}"));
        }
        documents.extend(children.to_values()?);
    }
    if !invalid.is_empty() {
        return Err(Error::Input {
            path: args.source.to_string(),
            message: format!("invalid spec\n{}", invalid.join("")),
        });
    }

    for mut doc in documents {
        let mut comment = String::new();
        if !args.reveal_token && redact_token(&mut doc) {
            comment = format!("# data.{TOKEN_KEY} is redacted; pass --reveal-token to print it\n");
        }
        let yaml = serde_norway::to_string(&doc).map_err(Error::ConfigYaml)?;
        out.yaml.push_str("---\n");
        out.yaml.push_str(&comment);
        out.yaml.push_str(&yaml);
    }
    Ok(out)
}

fn read_objects(
    source: &str,
    input: &str,
    objects: &mut Objects,
    notes: &mut Vec<String>,
) -> Result<()> {
    for (index, document) in serde_norway::Deserializer::from_str(input).enumerate() {
        let at = format!("{source} (document {})", index + 1);
        let value = serde_norway::Value::deserialize(document).map_err(|e| Error::Input {
            path: at.clone(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let kind = match &value {
            serde_norway::Value::Mapping(m) => m.get("kind").and_then(|k| k.as_str()).unwrap_or(""),
            _ => "",
        }
        .to_string();
        match kind.as_str() {
            "SecureTunnel" => {
                let mut tunnel: SecureTunnel = typed(&at, value)?;
                if tunnel.metadata.namespace.is_none() {
                    tunnel.metadata.namespace = Some(DEFAULT_NAMESPACE.to_string());
                }
                objects.tunnels.push(tunnel);
            }
            "Secret" => objects.secrets.push(typed(&at, value)?),
            "ConfigMap" => objects.config_maps.push(typed(&at, value)?),
            "Service" => {
                let service: Service = typed(&at, value)?;
                let key = ServiceRef {
                    namespace: service
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
                    name: service.metadata.name.clone().unwrap_or_default(),
                };
                objects.services.insert(key, service);
            }
            other => notes.push(format!("{at}: ignoring kind {other:?}")),
        }
    }
    Ok(())
}

/// A document as its type; an error names the field it concerns, as the validation's
/// do: `spec.ingress[0].originRequest.noTLSVerify: invalid type: string "maybe", …`.
fn typed<T: serde::de::DeserializeOwned>(at: &str, value: serde_norway::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| Error::Input {
        path: at.to_string(),
        message: match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        },
    })
}

/// The CA bundles the tunnel's rules name, from ConfigMaps and Secrets in the files; each
/// one missing is noted (the pod annotation then hashes what is known).
fn ca_bundles(
    tunnel: &SecureTunnel,
    validated: &ValidatedSpec,
    objects: &Objects,
    label: &str,
    notes: &mut Vec<String>,
) -> BTreeMap<CaKey, Vec<u8>> {
    let namespace = tunnel
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let mut out = BTreeMap::new();
    for key in validated.ca_sources.keys() {
        let (kind, name, item) = &key;
        let content = match kind {
            CaKind::ConfigMap => {
                named(&objects.config_maps, namespace, name).and_then(|c| config_map_value(c, item))
            }
            CaKind::Secret => {
                named(&objects.secrets, namespace, name).and_then(|s| secret_value(s, item))
            }
        };
        match content {
            Some(content) => {
                out.insert(key, content);
            }
            None => notes.push(format!(
                "{label}: {} {namespace}/{name} key {item:?} (a caPool) is not in the input; the pods' CA hash leaves it out",
                kind.as_str()
            )),
        }
    }
    out
}

/// The token from a Secret in the file, when the tunnel names one there.
fn token_from_secrets(tunnel: &SecureTunnel, secrets: &[Secret]) -> Result<Option<TunnelToken>> {
    let reference = &tunnel.spec.token_secret_ref;
    let namespace = tunnel
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let Some(raw) = named(secrets, namespace, &reference.name)
        .and_then(|secret| secret_value(secret, &reference.key))
    else {
        return Ok(None);
    };
    Ok(Some(TunnelToken::parse(&raw)?))
}

/// The object of the file with this name in this namespace (no namespace: the default).
fn named<'a, K: kube::Resource>(objects: &'a [K], namespace: &str, name: &str) -> Option<&'a K> {
    objects.iter().find(|o| {
        let meta = o.meta();
        meta.name.as_deref() == Some(name)
            && meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE) == namespace
    })
}

/// Replaces the token in a rendered Secret. Returns whether it did.
fn redact_token(doc: &mut serde_json::Value) -> bool {
    if doc.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
        return false;
    }
    match doc.pointer_mut(&format!("/data/{TOKEN_KEY}")) {
        Some(value) => {
            use base64::Engine;
            *value = serde_json::Value::String(
                base64::engine::general_purpose::STANDARD.encode(REDACTED),
            );
            true
        }
        None => false,
    }
}
