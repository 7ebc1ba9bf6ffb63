//! The tunnels as the SecureTunnel watch reports them, each spec validated once per
//! change: the reconciler reads the validated spec from here, and a Service event finds
//! the tunnels whose rules name that Service without parsing any rule again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::api::SecureTunnel;
use crate::compact::Uid;
use crate::validate::origin::ServiceRef;
use crate::validate::{validate, ValidatedSpec, ValidationErrors};

/// A spec, checked once: validated (or every problem found), and the Services its rules
/// name (under the pods' DNS search path, sorted, each once; none when the spec is
/// invalid).
pub struct Checked {
    pub spec: Result<ValidatedSpec, ValidationErrors>,
    pub services: Box<[ServiceRef]>,
}

/// A spec's verdict, shared between the index and the reconciles that read it.
pub type Verdict = Arc<Checked>;

struct Entry {
    uid: Option<Uid>,
    generation: Option<i64>,
    verdict: Verdict,
}

impl Entry {
    /// Whether this entry was made from this object at this generation.
    fn is_for(&self, tunnel: &SecureTunnel) -> bool {
        self.uid == tunnel.metadata.uid.as_deref().map(Uid::of)
            && self.generation.is_some()
            && self.generation == tunnel.metadata.generation
    }
}

/// A tunnel's namespace and name, shared by the tunnel's entry and every Service's set
/// that holds it.
type Key = Arc<ObjectRef<SecureTunnel>>;

/// The key of a tunnel: its namespace and name only (an `ObjectRef` made from the
/// object would also carry its uid and resourceVersion, which the key does not compare).
fn key_of(tunnel: &SecureTunnel) -> Key {
    let key = ObjectRef::new(&tunnel.name_any());
    Arc::new(match tunnel.metadata.namespace.as_deref() {
        Some(namespace) => key.within(namespace),
        None => key,
    })
}

#[derive(Default)]
struct Inner {
    tunnels: HashMap<Key, Entry>,
    by_service: HashMap<ServiceRef, HashSet<Key>>,
    /// During a relist: the tunnels not seen again yet.
    stale: Option<HashSet<Key>>,
}

impl Inner {
    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.tunnels.remove(key) {
            for service in &old.verdict.services {
                if let Some(set) = self.by_service.get_mut(service) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_service.remove(service);
                    }
                }
            }
        }
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        self.remove(&key);
        for service in &entry.verdict.services {
            self.by_service
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
        }
        self.tunnels.insert(key, entry);
    }
}

#[derive(Default)]
pub struct TunnelIndex {
    inner: RwLock<Inner>,
}

/// Validates the spec and lists the Services it names: the one place a tunnel is checked.
fn check(tunnel: &SecureTunnel) -> Verdict {
    let spec = validate(&tunnel.name_any(), &tunnel.spec);
    let namespace = tunnel.namespace().unwrap_or_default();
    let services = match &spec {
        Ok(spec) => spec.referenced_services(&namespace).into_iter().collect(),
        Err(_) => Box::default(),
    };
    Arc::new(Checked { spec, services })
}

impl TunnelIndex {
    /// Follows one event of the SecureTunnel watch.
    pub fn apply_event(&self, event: &watcher::Event<SecureTunnel>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        match event {
            watcher::Event::Apply(t) | watcher::Event::InitApply(t) => {
                let key = key_of(t);
                if let Some(stale) = inner.stale.as_mut() {
                    stale.remove(&key);
                }
                if !inner.tunnels.get(&key).is_some_and(|e| e.is_for(t)) {
                    let entry = Entry {
                        uid: t.metadata.uid.as_deref().map(Uid::of),
                        generation: t.metadata.generation,
                        verdict: check(t),
                    };
                    inner.insert(key, entry);
                }
            }
            watcher::Event::Delete(t) => inner.remove(&key_of(t)),
            watcher::Event::Init => {
                inner.stale = Some(inner.tunnels.keys().cloned().collect());
            }
            watcher::Event::InitDone => {
                for key in inner.stale.take().unwrap_or_default() {
                    inner.remove(&key);
                }
            }
        }
    }

    /// The tunnel's checked spec: from the index when it holds this generation (the
    /// watch feeds the index before the reconciler sees the object), else checked now
    /// and not kept (a tunnel the watch has not reported, as in tests that reconcile
    /// without one, or an older generation than the index holds).
    pub fn verdict(&self, tunnel: &SecureTunnel) -> Verdict {
        let key = key_of(tunnel);
        if let Ok(inner) = self.inner.read() {
            if let Some(e) = inner.tunnels.get(&key) {
                if e.is_for(tunnel) {
                    return e.verdict.clone();
                }
            }
        }
        check(tunnel)
    }

    /// The tunnels with a rule that names the Service.
    pub fn tunnels_using(&self, service: &ServiceRef) -> Vec<ObjectRef<SecureTunnel>> {
        self.inner
            .read()
            .map(|inner| {
                inner
                    .by_service
                    .get(service)
                    .map(|set| set.iter().map(|key| key.as_ref().clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(name: &str, generation: i64, service: &str) -> SecureTunnel {
        SecureTunnel::test()
            .named("apps", name)
            .with_generation(generation)
            .with_rules(&[service])
    }

    fn service(ns: &str, name: &str) -> ServiceRef {
        ServiceRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_service_finds_the_tunnels_that_name_it_and_follows_spec_changes() {
        let index = TunnelIndex::default();
        index.apply_event(&watcher::Event::Apply(tunnel("a", 1, "http://web:80")));
        index.apply_event(&watcher::Event::Apply(tunnel(
            "b",
            1,
            "http://web.apps.svc:80",
        )));
        index.apply_event(&watcher::Event::Apply(tunnel("c", 1, "http://api.ops:80")));
        let mut names: Vec<String> = index
            .tunnels_using(&service("apps", "web"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(index.tunnels_using(&service("ops", "api")).len(), 1);

        index.apply_event(&watcher::Event::Apply(tunnel("a", 2, "http://other:80")));
        assert_eq!(index.tunnels_using(&service("apps", "web")).len(), 1);
        assert_eq!(index.tunnels_using(&service("apps", "other")).len(), 1);

        index.apply_event(&watcher::Event::Delete(tunnel("b", 1, "http://web:80")));
        assert!(index.tunnels_using(&service("apps", "web")).is_empty());
    }

    #[test]
    fn a_relist_drops_the_tunnels_it_no_longer_lists() {
        let index = TunnelIndex::default();
        index.apply_event(&watcher::Event::Apply(tunnel("a", 1, "http://web:80")));
        index.apply_event(&watcher::Event::Apply(tunnel("b", 1, "http://api:80")));
        index.apply_event(&watcher::Event::Init);
        index.apply_event(&watcher::Event::InitApply(tunnel("a", 1, "http://web:80")));
        index.apply_event(&watcher::Event::InitDone);
        assert_eq!(index.tunnels_using(&service("apps", "web")).len(), 1);
        assert!(index.tunnels_using(&service("apps", "api")).is_empty());
    }

    #[test]
    fn a_spec_is_validated_once_per_generation() {
        let index = TunnelIndex::default();
        let t = tunnel("a", 1, "http://web:80");
        index.apply_event(&watcher::Event::Apply(t.clone()));
        let first = index.verdict(&t);
        assert!(
            Arc::ptr_eq(&first, &index.verdict(&t)),
            "same generation: same verdict"
        );
        assert_eq!(
            *first.services,
            [service("apps", "web")],
            "the Services the rules name"
        );
        let changed = tunnel("a", 2, "bastion");
        let second = index.verdict(&changed);
        assert!(
            second.spec.is_err(),
            "the new generation is validated afresh"
        );
        assert!(second.services.is_empty());
    }
}
