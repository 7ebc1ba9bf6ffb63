//! What every reconcile shares: the caches the controller's watches fill, the backoff
//! state, and the handles (client, Event recorder, metrics, the tunnel index).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Client;

use super::dereference::TokenCache;
use super::update_status::WrittenStatus;
use crate::api::SecureTunnel;
use crate::children::ChildKind;
use crate::index::TunnelIndex;
use crate::metrics::Metrics;
use crate::{Error, Result};

const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// How long a reconcile waits for the caches' first listing. Until then a missing
/// Service could mean "not listed yet", and rendering would close the sandbox on a
/// working origin.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// Caches filled by the controller's watches: the children (label-filtered, one per
/// [`ChildKind`]) and the Services that ingress rules may name.
#[derive(Clone)]
pub struct Stores {
    pub children: BTreeMap<ChildKind, Store<DynamicObject>>,
    pub services: Store<Service>,
    /// Metadata of every Secret in scope: a token is read again only when its
    /// Secret's resourceVersion changed.
    pub token_secrets: Store<PartialObjectMeta<Secret>>,
}

fn ready<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

impl Stores {
    /// Waits (bounded) for every cache's first listing: until then, a cache miss would
    /// cost an API read, or hide an object. Readiness is polled: a waiter that
    /// registered before the first listing could sleep until some later wake-up (seen
    /// in the scale benchmark as 30 s stalls).
    pub async fn wait_until_ready(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CACHE_WAIT;
        while !self.all_ready() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CacheNotReady("watch"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn all_ready(&self) -> bool {
        ChildKind::ALL.len() == self.children.len()
            && self.children.values().all(ready)
            && ready(&self.services)
            && ready(&self.token_secrets)
    }

    /// The cached child `kind`/`namespace`/`name`, if the watch has seen it.
    pub fn child(
        &self,
        kind: ChildKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let store = self.children.get(&kind)?;
        store.get(&ObjectRef::new_with(name, kind.api_resource()).within(namespace))
    }
}

/// Shared state of the reconciler.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    /// Each tunnel's spec, validated once per change (fed by the SecureTunnel watch).
    pub index: Arc<TunnelIndex>,
    /// Consecutive failures per tunnel, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<SecureTunnel>, u32>>,
    pub(super) tokens: TokenCache,
    pub(super) written_status: WrittenStatus,
}

impl Context {
    pub fn new(client: Client, recorder: Recorder, stores: Stores) -> Self {
        Context::with_metrics(
            client,
            recorder,
            stores,
            Arc::new(Metrics::new()),
            Arc::default(),
        )
    }

    pub fn with_metrics(
        client: Client,
        recorder: Recorder,
        stores: Stores,
        metrics: Arc<Metrics>,
        index: Arc<TunnelIndex>,
    ) -> Self {
        Context {
            client,
            recorder,
            stores,
            metrics,
            index,
            failures: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            written_status: WrittenStatus::default(),
        }
    }

    pub(super) fn reset_failures(&self, key: &ObjectRef<SecureTunnel>) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Records one more failure and returns the delay before the next try:
    /// 5 s, 10 s, 20 s, … capped at 5 minutes.
    pub(super) fn next_backoff(&self, key: ObjectRef<SecureTunnel>) -> Duration {
        let count = match self.failures.lock() {
            Ok(mut failures) => {
                let n = failures.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        backoff_delay(count)
    }
}

/// Delay after `failures` consecutive failures.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(7), Duration::from_secs(300));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
    }
}
