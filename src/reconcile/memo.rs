//! What the last render of each tunnel came to, by a fingerprint of everything render
//! reads: when nothing it reads has changed and every child still holds what that render
//! asked for, a reconcile neither renders nor applies (the steady state's no-op).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::cache::ChildCache;
use crate::children::{Availability, ChildKind};
use crate::compact::ShortHash;
use crate::names::APPLIED_HASH_ANNOTATION;
use crate::render::Children;
use crate::validate::CaKey;

/// A SHA-256 over render's inputs.
pub type Fingerprint = [u8; 32];

/// Render's inputs, for [`fingerprint`].
pub struct Inputs<'a> {
    pub uid: &'a str,
    pub generation: i64,
    pub token_hash: &'a str,
    /// The resourceVersion of each referenced Service (`None`: absent).
    pub services: Vec<(String, Option<String>)>,
    pub ca_bundles: &'a BTreeMap<CaKey, Vec<u8>>,
    pub operator_namespace: Option<&'a str>,
    /// The availability of each integration's kind (it decides what is held back).
    pub integrations: Vec<Availability>,
}

/// The fingerprint of render's inputs: the same bytes, the same children.
pub fn fingerprint(inputs: &Inputs<'_>) -> Fingerprint {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(inputs.uid.as_bytes());
    part(&inputs.generation.to_be_bytes());
    part(inputs.token_hash.as_bytes());
    for (name, version) in &inputs.services {
        part(name.as_bytes());
        part(version.as_deref().unwrap_or("-").as_bytes());
    }
    for ((kind, name, key), content) in inputs.ca_bundles {
        part(kind.as_str().as_bytes());
        part(name.as_bytes());
        part(key.as_bytes());
        part(content);
    }
    part(inputs.operator_namespace.unwrap_or("-").as_bytes());
    for availability in &inputs.integrations {
        part(&[*availability as u8]);
    }
    h.finalize().into()
}

/// What a render gives the status: the config hash, the rules left closed, the
/// integrations' children.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSummary {
    pub config_hash: String,
    pub unresolved: Vec<String>,
    /// [`Children::integration_summaries`].
    pub integrations: Vec<(ChildKind, String, String)>,
}

impl RenderSummary {
    pub fn of(children: &Children) -> RenderSummary {
        RenderSummary {
            config_hash: children.config_hash.clone(),
            unresolved: children
                .unresolved
                .iter()
                .map(ToString::to_string)
                .collect(),
            integrations: children.integration_summaries(),
        }
    }
}

/// What one render and apply came to: each child written with its applied hash (every
/// child bears the tunnel's child name), what was held back, and what the status needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub fingerprint: Fingerprint,
    pub children: Vec<(ChildKind, Option<ShortHash>)>,
    pub held_back: Vec<(ChildKind, Availability)>,
    pub summary: RenderSummary,
}

impl Rendered {
    pub fn of(
        fingerprint: Fingerprint,
        summary: RenderSummary,
        objects: &[(ChildKind, serde_json::Value)],
        held_back: &[(ChildKind, Availability)],
    ) -> Rendered {
        Rendered {
            fingerprint,
            held_back: held_back.to_vec(),
            summary,
            children: objects
                .iter()
                .filter(|(kind, _)| !held_back.iter().any(|(k, _)| k == kind))
                .map(|(kind, obj)| {
                    let hash = obj["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].as_str();
                    (*kind, hash.map(ShortHash::of))
                })
                .collect(),
        }
    }

    /// Whether every child holds what this render asked for (ours, our applied hash,
    /// intact), and no optional child of ours that it did not ask for exists.
    pub fn still_applied(
        &self,
        cache: &ChildCache,
        namespace: &str,
        uid: &str,
        child_name: &str,
    ) -> bool {
        let wanted = self.children.iter().all(|(kind, hash)| {
            cache.with(*kind, namespace, child_name, |c| {
                c.is_some_and(|c| {
                    c.is_controlled_by(uid)
                        && c.intact
                        && hash.is_some()
                        && c.applied_hash() == *hash
                })
            })
        });
        let nothing_unwanted = cache
            .kinds()
            .filter(|k| k.optional() && !self.children.iter().any(|(c, _)| c == k))
            .all(|k| {
                cache.with(k, namespace, child_name, |c| {
                    c.is_none_or(|c| !c.is_controlled_by(uid))
                })
            });
        wanted && nothing_unwanted
    }
}

/// A tunnel's namespace and name.
fn key(namespace: &str, name: &str) -> ShortHash {
    ShortHash::of_parts(&[namespace, name])
}

/// The last render per tunnel (by namespace and name).
#[derive(Default)]
pub struct RenderMemo {
    renders: Mutex<HashMap<ShortHash, Rendered>>,
    /// Reconciles that found their render here.
    hits: AtomicU64,
}

impl RenderMemo {
    /// When the last render of the tunnel had this fingerprint and `still` holds of it:
    /// what it held back and gave the status (the children are not copied).
    pub fn reuse(
        &self,
        namespace: &str,
        name: &str,
        fingerprint: &Fingerprint,
        still: impl FnOnce(&Rendered) -> bool,
    ) -> Option<(Vec<(ChildKind, Availability)>, RenderSummary)> {
        let memo = self.renders.lock().ok()?;
        memo.get(&key(namespace, name))
            .filter(|r| &r.fingerprint == fingerprint && still(r))
            .map(|r| (r.held_back.clone(), r.summary.clone()))
    }

    /// Counts a reconcile that needed no render.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Reconciles so far that needed no render.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn put(&self, namespace: &str, name: &str, rendered: Rendered) {
        if let Ok(mut memo) = self.renders.lock() {
            memo.insert(key(namespace, name), rendered);
        }
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        if let Ok(mut memo) = self.renders.lock() {
            memo.remove(&key(namespace, name));
        }
    }
}
