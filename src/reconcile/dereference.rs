//! Dereference: what a tunnel refers to. The token from its Secret (read again only when
//! the Secret's resourceVersion changed), and the Services its rules name (from the
//! cache, which has listed them all).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use crate::api::conditions;
use crate::api::TokenSecretRef;
use crate::compact::ShortHash;
use crate::token::TunnelToken;
use crate::validate::origin::ServiceRef;
use crate::validate::{CaKey, CaKind, CaSources};
use crate::{Error, Result};

/// Why the token could not be used; becomes the Ready condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenProblem {
    pub reason: &'static str,
    pub message: String,
}

/// A token as read from a Secret at one resourceVersion.
#[derive(Clone)]
struct CachedToken {
    resource_version: ShortHash,
    token: Result<TunnelToken, TokenProblem>,
}

/// A Secret's key: its namespace, name and the key within it, digested (only compared).
type TokenKey = ShortHash;

/// Parsed tokens by Secret (namespace, name, key), with the Secret's resourceVersion.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<TokenKey, CachedToken>>);

impl TokenCache {
    fn get(&self, key: &TokenKey, version: &str) -> Option<Result<TunnelToken, TokenProblem>> {
        let tokens = self.0.lock().ok()?;
        tokens
            .get(key)
            .filter(|c| c.resource_version == ShortHash::of(version))
            .map(|c| c.token.clone())
    }

    fn put(&self, key: TokenKey, resource_version: &str, token: Result<TunnelToken, TokenProblem>) {
        let resource_version = ShortHash::of(resource_version);
        if let Ok(mut tokens) = self.0.lock() {
            tokens.insert(
                key,
                CachedToken {
                    resource_version,
                    token,
                },
            );
        }
    }

    fn forget(&self, key: &TokenKey) {
        if let Ok(mut tokens) = self.0.lock() {
            tokens.remove(key);
        }
    }
}

/// Reads and parses the token. API failures are errors (retried with backoff); a
/// missing or malformed token is a status, not an error. A token whose Secret has not
/// changed (same resourceVersion in the metadata cache) is not read again.
pub async fn read_token(
    client: &Client,
    secrets_meta: &Store<PartialObjectMeta<Secret>>,
    cache: &TokenCache,
    namespace: &str,
    reference: &TokenSecretRef,
) -> Result<Result<TunnelToken, TokenProblem>> {
    let key = ShortHash::of_parts(&[namespace, &reference.name, &reference.key]);
    let cached_version = secrets_meta
        .get(&ObjectRef::new(&reference.name).within(namespace))
        .and_then(|meta| meta.metadata.resource_version.clone());
    if let Some(hit) = cached_version.and_then(|v| cache.get(&key, &v)) {
        return Ok(hit);
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::Dereference {
            object: format!("Secret {namespace}/{}", reference.name),
            source,
        })?;
    let Some(secret) = secret else {
        cache.forget(&key);
        return Ok(Err(TokenProblem {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: format!("Secret {namespace}/{} not found", reference.name),
        }));
    };
    let token = match secret_value(&secret, &reference.key) {
        None => Err(TokenProblem {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: format!(
                "Secret {namespace}/{} has no key {:?}",
                reference.name, reference.key
            ),
        }),
        Some(raw) => TunnelToken::parse(&raw).map_err(|e| TokenProblem {
            reason: conditions::REASON_TOKEN_INVALID,
            message: format!(
                "Secret {namespace}/{} key {:?}: {e}",
                reference.name, reference.key
            ),
        }),
    };
    if let Some(version) = secret.metadata.resource_version.as_deref() {
        cache.put(key, version, token.clone());
    }
    Ok(token)
}

/// A ConfigMap's or a Secret's value of `key`: a ConfigMap's `data`, else `binaryData`; a
/// Secret's `stringData` (only in a file not yet stored, where the API server would merge
/// it over `data`), else `data`.
pub fn config_map_value(config_map: &ConfigMap, key: &str) -> Option<Vec<u8>> {
    let text = config_map.data.as_ref().and_then(|d| d.get(key));
    let binary = config_map.binary_data.as_ref().and_then(|d| d.get(key));
    text.map(|v| v.as_bytes().to_vec())
        .or_else(|| binary.map(|v| v.0.clone()))
}

/// See [`config_map_value`].
pub fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    let text = secret.string_data.as_ref().and_then(|d| d.get(key));
    let binary = secret.data.as_ref().and_then(|d| d.get(key));
    text.map(|v| v.as_bytes().to_vec())
        .or_else(|| binary.map(|v| v.0.clone()))
}

/// A ConfigMap or a Secret that holds a CA bundle.
enum KeyHolder {
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl KeyHolder {
    fn value(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            KeyHolder::ConfigMap(config_map) => config_map_value(config_map, key),
            KeyHolder::Secret(secret) => secret_value(secret, key),
        }
    }
}

/// Reads the CA bundles the rules' `caPool`s name (each source once). A missing object or
/// key is a status (the connector could not start: cloudflared exits when a `caPool` file
/// is missing), an API failure an error.
pub async fn read_ca_bundles(
    client: &Client,
    namespace: &str,
    sources: &CaSources,
) -> Result<Result<BTreeMap<CaKey, Vec<u8>>, TokenProblem>> {
    let mut bundles = BTreeMap::new();
    for source in &sources.0 {
        let object = format!("{} {namespace}/{}", source.kind.as_str(), source.name);
        let dereference_error = |source| Error::Dereference {
            object: object.clone(),
            source,
        };
        let found = match source.kind {
            CaKind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&source.name)
                .await
                .map_err(dereference_error)?
                .map(KeyHolder::ConfigMap),
            CaKind::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&source.name)
                .await
                .map_err(dereference_error)?
                .map(KeyHolder::Secret),
        };
        let Some(holder) = found else {
            return Ok(Err(TokenProblem {
                reason: conditions::REASON_CA_POOL_MISSING,
                message: format!("{object} (a caPool) not found"),
            }));
        };
        for key in &source.keys {
            let Some(content) = holder.value(key) else {
                return Ok(Err(TokenProblem {
                    reason: conditions::REASON_CA_POOL_MISSING,
                    message: format!("{object} (a caPool) has no key {key:?}"),
                }));
            };
            bundles.insert((source.kind, source.name.clone(), key.clone()), content);
        }
    }
    Ok(Ok(bundles))
}

/// The Services the rules name, from the cache (which has listed them all).
pub fn read_services(
    store: &Store<Service>,
    referenced: &[ServiceRef],
) -> BTreeMap<ServiceRef, Service> {
    referenced
        .iter()
        .filter_map(|r| {
            let service = store.get(&ObjectRef::new(&r.name).within(&r.namespace))?;
            Some((r.clone(), service.as_ref().clone()))
        })
        .collect()
}
