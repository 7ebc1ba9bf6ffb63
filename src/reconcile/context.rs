//! What every reconcile reads and counts: the caches the controller's watches fill, and
//! the backoff state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::cache::ChildCache;
use crate::api::SecureTunnel;
use crate::{Error, Result};

const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// How long a reconcile waits for the caches' first listing. Until then a missing
/// Service could mean "not listed yet", and rendering would close the sandbox on a
/// working origin.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// Caches filled by the controller's watches: the children and the Services that
/// ingress rules may name.
#[derive(Clone)]
pub struct Stores {
    /// A summary of each child (see [`ChildCache`]).
    pub children: Arc<ChildCache>,
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
        self.children.ready() && ready(&self.services) && ready(&self.token_secrets)
    }
}

/// Consecutive failures per tunnel, for exponential backoff.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<ObjectRef<SecureTunnel>, u32>>);

impl Backoff {
    pub fn reset(&self, key: &ObjectRef<SecureTunnel>) {
        if let Ok(mut failures) = self.0.lock() {
            failures.remove(key);
        }
    }

    /// Records one more failure and returns the delay before the next try:
    /// 5 s, 10 s, 20 s, … capped at 5 minutes.
    pub fn next(&self, key: ObjectRef<SecureTunnel>) -> Duration {
        let count = match self.0.lock() {
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
