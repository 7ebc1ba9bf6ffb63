//! Pure rendering: a SecureTunnel plus what the dereference step found
//! becomes the desired child objects. No I/O; the reconciler and the
//! offline `render` command both validate once and call [`render`].

pub mod config;
pub mod integrations;
pub mod network_policy;
pub mod origins;
mod pod_settings;
pub mod workload;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::api::SecureTunnel;
use crate::children::ChildKind;
use crate::external::{DnsEndpoint, PodMonitor};
use crate::managed_fields;
use crate::names::{child_labels, child_name, APPLIED_HASH_ANNOTATION};
use crate::token::{sha256_hex, TunnelToken};
use crate::validate::origin::ServiceRef;
use crate::validate::{self, CaKey, ValidatedSpec};
use crate::{Error, Result};
use origins::Unresolved;
use workload::{PodHashes, CONFIG_KEY, TOKEN_KEY};

/// What the dereference step resolved from the cluster (or, offline, from files).
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    /// The tunnel token. Always present in the reconciler; optional offline,
    /// where the Secret child is then rendered without data.
    pub token: Option<TunnelToken>,
    /// The Services the rules name that exist (see [`ValidatedSpec::referenced_services`]).
    pub services: BTreeMap<ServiceRef, Service>,
    /// The namespace the operator runs in: its pods may reach the connectors' metrics port
    /// to read `/config`. `None`: no such rule (the reconciler's tests).
    pub operator_namespace: Option<String>,
    /// The CA bundles the rules' `caPool`s name, by (kind, name, key). Always complete in
    /// the reconciler; offline, a bundle not in the input files is left out of the hash.
    pub ca_bundles: BTreeMap<CaKey, Vec<u8>>,
}

/// `sha256:` over every CA bundle the rules use, in source order; `None` without any.
fn ca_hash(validated: &ValidatedSpec, bundles: &BTreeMap<CaKey, Vec<u8>>) -> Option<String> {
    use sha2::{Digest, Sha256};
    if validated.ca_sources.0.is_empty() {
        return None;
    }
    let mut hasher = Sha256::new();
    for key in validated.ca_sources.keys() {
        let (kind, name, item) = &key;
        let content = bundles.get(&key).map(Vec::as_slice).unwrap_or_default();
        for part in [kind.as_str().as_bytes(), name.as_bytes(), item.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content);
    }
    Some(crate::token::hex_digest(&hasher.finalize()))
}

/// Every object one SecureTunnel becomes, in apply order. `Debug` leaves out
/// the Secret's data.
#[derive(Clone, PartialEq)]
pub struct Children {
    /// Applied first, so that no connector pod ever runs outside the sandbox.
    pub network_policy: NetworkPolicy,
    pub secret: Secret,
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub deployment: Deployment,
    /// `None` when a single replica makes a budget pointless.
    pub pod_disruption_budget: Option<PodDisruptionBudget>,
    /// Only with `spec.dns` (and a known tunnel ID).
    pub dns_endpoint: Option<DnsEndpoint>,
    /// Only with `spec.metrics.podMonitor`.
    pub pod_monitor: Option<PodMonitor>,
    /// `sha256:` of `config.yaml`, also reported in the status.
    pub config_hash: String,
    /// Rules whose destination the sandbox could not open.
    pub unresolved: Vec<Unresolved>,
}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret_keys: Vec<&String> = self.secret.data.iter().flatten().map(|(k, _)| k).collect();
        f.debug_struct("Children")
            .field("network_policy", &self.network_policy)
            .field(
                "secret",
                &format_args!(
                    "Secret {:?} (data keys {secret_keys:?}, values redacted)",
                    self.secret.metadata.name
                ),
            )
            .field("config_map", &self.config_map)
            .field("service_account", &self.service_account)
            .field("deployment", &self.deployment)
            .field("pod_disruption_budget", &self.pod_disruption_budget)
            .field("dns_endpoint", &self.dns_endpoint)
            .field("pod_monitor", &self.pod_monitor)
            .field("config_hash", &self.config_hash)
            .field("unresolved", &self.unresolved)
            .finish()
    }
}

impl Children {
    /// Every object with its kind, as JSON, in apply order (the optional ones only when
    /// wanted).
    pub fn objects(&self) -> Result<Vec<(ChildKind, serde_json::Value)>> {
        let mut out = vec![
            (ChildKind::NetworkPolicy, to_json(&self.network_policy)?),
            (ChildKind::Secret, to_json(&self.secret)?),
            (ChildKind::ConfigMap, to_json(&self.config_map)?),
            (ChildKind::ServiceAccount, to_json(&self.service_account)?),
        ];
        if let Some(pdb) = &self.pod_disruption_budget {
            out.push((ChildKind::PodDisruptionBudget, to_json(pdb)?));
        }
        out.push((ChildKind::Deployment, to_json(&self.deployment)?));
        if let Some(endpoint) = &self.dns_endpoint {
            out.push((ChildKind::DnsEndpoint, to_json(endpoint)?));
        }
        if let Some(monitor) = &self.pod_monitor {
            out.push((ChildKind::PodMonitor, to_json(monitor)?));
        }
        debug_assert!(out.iter().map(|(k, _)| k).eq(ChildKind::ALL
            .iter()
            .filter(|k| out.iter().any(|(o, _)| o == *k))));
        Ok(out)
    }

    /// Each child of an integration's kind: its kind, `namespace/name`, and what it holds
    /// in a few words (for the status).
    pub fn integration_summaries(&self) -> Vec<(ChildKind, String, String)> {
        let object = |meta: &ObjectMeta| {
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            )
        };
        let mut out = Vec::new();
        if let Some(endpoint) = &self.dns_endpoint {
            let records = &endpoint.spec.endpoints;
            let target = records
                .first()
                .and_then(|r| r.targets.first())
                .map_or(String::new(), |t| format!(" to {t}"));
            let summary = match records.len() {
                1 => format!("1 CNAME record{target}"),
                n => format!("{n} CNAME records{target}"),
            };
            out.push((ChildKind::DnsEndpoint, object(&endpoint.metadata), summary));
        }
        if let Some(monitor) = &self.pod_monitor {
            out.push((
                ChildKind::PodMonitor,
                object(&monitor.metadata),
                "scrapes /metrics on the connector pods".to_string(),
            ));
        }
        out
    }

    /// The objects as JSON values, in apply order, for printing.
    pub fn to_values(&self) -> Result<Vec<serde_json::Value>> {
        Ok(self.objects()?.into_iter().map(|(_, obj)| obj).collect())
    }
}

fn to_json<T: Serialize>(obj: &T) -> Result<serde_json::Value> {
    serde_json::to_value(obj).map_err(|source| Error::Serialize {
        what: "child object",
        source,
    })
}

/// Validate, then render: for callers that hold no validated spec (tests, the fuzzer).
pub fn desired_children(tunnel: &SecureTunnel, deref: &Dereferenced) -> Result<Children> {
    let validated =
        validate::validate(&tunnel.name_any(), &tunnel.spec).map_err(Error::InvalidSpec)?;
    render(tunnel, &validated, deref)
}

/// Renders the children of a SecureTunnel from its validated spec.
pub fn render(
    tunnel: &SecureTunnel,
    validated: &ValidatedSpec,
    deref: &Dereferenced,
) -> Result<Children> {
    let name = tunnel.name_any();
    let namespace = tunnel
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let meta = ObjectMeta {
        name: Some(child_name(&name)),
        namespace: Some(namespace),
        labels: Some(child_labels(&name)),
        // Absent only offline, for an object that has never been stored.
        owner_references: tunnel.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    };

    let config_yaml = config::render_config(&tunnel.spec, validated)?;
    let config_hash = sha256_hex(config_yaml.as_bytes());

    let secret = Secret {
        metadata: meta.clone(),
        type_: Some("Opaque".to_string()),
        data: deref.token.as_ref().map(|token| {
            BTreeMap::from([(
                TOKEN_KEY.to_string(),
                ByteString(token.expose_secret().as_bytes().to_vec()),
            )])
        }),
        ..Default::default()
    };

    let config_map = ConfigMap {
        metadata: meta.clone(),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), config_yaml)])),
        ..Default::default()
    };

    let service_account = ServiceAccount {
        metadata: meta.clone(),
        automount_service_account_token: Some(false),
        ..Default::default()
    };

    let ca_hash = ca_hash(validated, &deref.ca_bundles);
    let hashes = PodHashes {
        config: &config_hash,
        token: deref.token.as_ref().map(TunnelToken::hash),
        ca: ca_hash.as_deref(),
    };
    let deployment = workload::deployment(tunnel, validated, &name, meta.clone(), &hashes);
    let pod_disruption_budget = workload::pod_disruption_budget(tunnel, &name, meta.clone());
    let dns_endpoint = integrations::dns_endpoint(
        &tunnel.spec,
        meta.clone(),
        deref.token.as_ref().map(TunnelToken::tunnel_id),
    );
    let pod_monitor = integrations::pod_monitor(&tunnel.spec, &name, meta.clone());

    let namespace = meta.namespace.clone().unwrap_or_default();
    let resolution = origins::resolve(validated, &tunnel.spec, &namespace, &deref.services);
    let network_policy = network_policy::network_policy(
        &tunnel.spec,
        validated,
        &name,
        meta,
        &resolution,
        deref.operator_namespace.as_deref(),
    );

    let mut children = Children {
        network_policy,
        secret,
        config_map,
        service_account,
        deployment,
        pod_disruption_budget,
        dns_endpoint,
        pod_monitor,
        config_hash,
        unresolved: resolution.unresolved,
    };
    stamp_applied_hash(&mut children.network_policy)?;
    stamp_applied_hash(&mut children.secret)?;
    stamp_applied_hash(&mut children.config_map)?;
    stamp_applied_hash(&mut children.service_account)?;
    stamp_applied_hash(&mut children.deployment)?;
    if let Some(pdb) = children.pod_disruption_budget.as_mut() {
        stamp_applied_hash(pdb)?;
    }
    if let Some(endpoint) = children.dns_endpoint.as_mut() {
        stamp_applied_hash(endpoint)?;
    }
    if let Some(monitor) = children.pod_monitor.as_mut() {
        stamp_applied_hash(monitor)?;
    }
    Ok(children)
}

/// Records a hash of the object's desired content (its canonical form, see
/// [`managed_fields::content`]) in an annotation: the reconciler tells from a child's
/// cached summary that it is already up to date, and intact.
fn stamp_applied_hash<K: Resource + Serialize>(obj: &mut K) -> Result<()> {
    let json = serde_json::to_value(&*obj).map_err(|source| Error::Serialize {
        what: "child object",
        source,
    })?;
    let hash = managed_fields::content_hash(&json);
    obj.annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod sandbox_tests;

#[cfg(test)]
#[path = "platform_tests.rs"]
mod platform_tests;
