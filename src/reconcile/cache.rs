//! What the reconciler remembers of each child: not the object, but the few facts that
//! deciding "nothing to write" needs (identity, owner, the applied hash, whether the
//! fields our manager owns still hash to it), kept from every watch event, plus the
//! children this process just wrote and the watch has not delivered yet. Strings that
//! are only compared (uids, versions, hashes, the child's namespace and name) are kept
//! in the compact forms of [`crate::compact`]: about 100 bytes per child.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::watcher;
use serde::Deserialize;

use super::live::LiveObject;
use crate::children::{Availability, ChildKind};
use crate::compact::{ShortHash, Uid};
use crate::managed_fields;
use crate::names::{APPLIED_HASH_ANNOTATION, FIELD_MANAGER, INSTANCE_LABEL};
use crate::status::Rollout;

/// Our manager's create entry in `managedFields`, which an apply must turn into an
/// apply entry first: fields that only a create entry of ours holds would survive an
/// apply that no longer sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateEntry {
    /// Its index in `managedFields`.
    pub index: u32,
    /// Whether an apply entry of ours exists beside it (then it is removed, not converted).
    pub beside_apply: bool,
}

impl CreateEntry {
    /// Our create entry among an object's `managedFields`, if there is one.
    pub fn of(obj: &LiveObject) -> Option<CreateEntry> {
        let entries = obj.metadata.managed_fields.as_deref().unwrap_or_default();
        let ours = |op: &str| {
            entries.iter().position(|e| {
                e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some(op)
            })
        };
        let index = u32::try_from(ours("Update")?).ok()?;
        Some(CreateEntry {
            index,
            beside_apply: ours("Apply").is_some(),
        })
    }
}

/// One child as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSummary {
    pub uid: Uid,
    pub resource_version: ShortHash,
    /// The uid of its controller (ownerReference with `controller: true`), if any.
    controller: Option<ShortHash>,
    /// The value of its instance label.
    instance: Option<ShortHash>,
    /// The applied-hash annotation.
    applied_hash: Option<ShortHash>,
    /// The fields our manager owns hash to the applied hash: nobody changed them.
    pub intact: bool,
    pub create_entry: Option<CreateEntry>,
    /// The Deployment's rollout (Deployments only).
    pub rollout: Option<Rollout>,
}

impl ChildSummary {
    /// The summary of a live object of kind `kind`, as the API server sent it.
    pub fn of(kind: ChildKind, obj: &LiveObject) -> ChildSummary {
        let meta = &obj.metadata;
        let json = &obj.json;
        let applied_hash = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
            .map(String::as_str);
        let entries = meta.managed_fields.as_deref().unwrap_or_default();
        let intact = applied_hash.is_some_and(|hash| {
            let sets = managed_fields::sets_of(entries, FIELD_MANAGER);
            managed_fields::content_hash(&managed_fields::owned(json, &sets)) == hash
        });
        let create_entry = CreateEntry::of(obj);
        let rollout = (kind == ChildKind::Deployment)
            .then(|| Deployment::deserialize(json).ok())
            .flatten()
            .map(|d| Rollout::of(&d));
        ChildSummary {
            uid: Uid::of(meta.uid.as_deref().unwrap_or_default()),
            resource_version: version_of(obj),
            controller: meta
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| ShortHash::of(&r.uid)),
            instance: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(INSTANCE_LABEL))
                .map(|v| ShortHash::of(v)),
            applied_hash: applied_hash.map(ShortHash::of),
            intact,
            create_entry,
            rollout,
        }
    }

    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.controller == Some(ShortHash::of(uid))
    }

    /// Whether its instance label is `tunnel_name`.
    pub fn is_instance_of(&self, tunnel_name: &str) -> bool {
        self.instance == Some(ShortHash::of(tunnel_name))
    }

    /// Its applied-hash annotation.
    pub fn applied_hash(&self) -> Option<ShortHash> {
        self.applied_hash
    }

    /// Whether its applied-hash annotation is `hash` (`None`: it has none).
    pub fn has_applied_hash(&self, hash: Option<&str>) -> bool {
        self.applied_hash == hash.map(ShortHash::of)
    }
}

/// A child's resourceVersion, as the cache keeps it.
pub fn version_of(obj: &LiveObject) -> ShortHash {
    ShortHash::of(obj.metadata.resource_version.as_deref().unwrap_or_default())
}

/// A child's namespace and name.
type Key = ShortHash;

/// How long a write of ours stands in for a watch that has not delivered it: far longer
/// than a watch lags, short enough that a missed event cannot hide a child for long.
const WRITTEN_TTL: Duration = Duration::from_secs(30);

fn key(namespace: &str, name: &str) -> Key {
    ShortHash::of_parts(&[namespace, name])
}

/// The availability a failed watch shows, if the failure says anything about it.
fn failure_availability(error: &watcher::Error) -> Option<Availability> {
    let code = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => return None,
    };
    match code {
        404 => Some(Availability::NotInstalled),
        403 => Some(Availability::Forbidden),
        _ => None,
    }
}

#[derive(Default)]
struct KindCache {
    /// Set by a watch failure that says the kind is unavailable; cleared by any event.
    failure: Option<Availability>,
    /// The watch failed, and is listing again: its end makes the kind available again.
    recovering: bool,
    objects: HashMap<Key, ChildSummary>,
    /// Filled during a (re)list, swapped in when it is done.
    relisting: Option<HashMap<Key, ChildSummary>>,
    /// What this process wrote and the watch has not delivered yet.
    written: HashMap<Key, Written>,
}

/// A write of ours the watch has not delivered yet.
struct Written {
    at: Instant,
    /// What the API server answered.
    summary: ChildSummary,
    /// The versions of our earlier writes of that child that may still come before it (a
    /// create, the patch that adopts its entry in `managedFields`): their events are ours,
    /// not news, and keep the record.
    earlier: Vec<ShortHash>,
}

/// What the cache knew of a child when a write of ours was sent, for [`ChildCache::wrote`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Before {
    /// The resourceVersion the watch last delivered, if it has.
    watched: Option<ShortHash>,
    /// Versions of our own writes the watch may still deliver.
    ours: Vec<ShortHash>,
}

impl Before {
    /// Adds a write of ours made since (the adopting patch before an apply).
    pub fn and_ours(mut self, version: Option<ShortHash>) -> Self {
        self.ours.extend(version);
        self
    }
}

/// The summaries of every child, by kind, fed by the controller's watches.
pub struct ChildCache {
    kinds: Vec<(ChildKind, RwLock<KindCache>, AtomicBool)>,
}

impl Default for ChildCache {
    /// A cache of the core kinds only.
    fn default() -> Self {
        ChildCache::new(&ChildKind::core().collect::<Vec<_>>())
    }
}

fn name_of(obj: &LiveObject) -> Key {
    key(
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        obj.metadata.name.as_deref().unwrap_or_default(),
    )
}

impl ChildCache {
    /// A cache of these kinds (see [`ChildKind::enabled`]).
    pub fn new(kinds: &[ChildKind]) -> Self {
        ChildCache {
            kinds: kinds
                .iter()
                .map(|k| (*k, RwLock::default(), AtomicBool::new(false)))
                .collect(),
        }
    }

    /// The kinds this cache holds, in apply order.
    pub fn kinds(&self) -> impl Iterator<Item = ChildKind> + '_ {
        self.kinds.iter().map(|(k, _, _)| *k)
    }

    /// Whether children of `kind` can be written.
    pub fn availability(&self, kind: ChildKind) -> Availability {
        let Some((_, cache, ready)) = self.kind(kind) else {
            return Availability::NotEnabled;
        };
        match cache.read().ok().and_then(|c| c.failure) {
            Some(failure) => failure,
            None if ready.load(Ordering::Acquire) => Availability::Available,
            None => Availability::Pending,
        }
    }

    /// Takes a failure of the watch of `kind`: a 404 or 403 makes the kind unavailable
    /// until the watch works again.
    pub fn watch_failed(&self, kind: ChildKind, error: &watcher::Error) {
        let Some(failure) = failure_availability(error) else {
            return;
        };
        if let Some(Ok(mut cache)) = self.kind(kind).map(|(_, c, _)| c.write()) {
            cache.failure = Some(failure);
        }
    }

    fn kind(&self, kind: ChildKind) -> Option<&(ChildKind, RwLock<KindCache>, AtomicBool)> {
        self.kinds.iter().find(|(k, _, _)| *k == kind)
    }

    /// Every core kind has finished its first listing (an integration's kind may never:
    /// its CRD may be missing; see [`ChildCache::availability`]).
    pub fn ready(&self) -> bool {
        self.kinds
            .iter()
            .filter(|(kind, _, _)| kind.integration().is_none())
            .all(|(_, _, ready)| ready.load(Ordering::Acquire))
    }

    /// Takes one watch event of `kind`. A write of ours is forgotten once the watch
    /// delivers it (or anything else but an earlier write of ours: a change by someone
    /// else, a delete, a relist). True when the event ends
    /// the first listing after a failure: the kind is available again (its CRD was
    /// installed, its RBAC granted), and tunnels waiting for it can go on.
    pub fn apply_event(&self, kind: ChildKind, event: &watcher::Event<LiveObject>) -> bool {
        let Some((_, cache, ready)) = self.kind(kind) else {
            return false;
        };
        let Ok(mut cache) = cache.write() else {
            return false;
        };
        let cache = &mut *cache;
        if cache.failure.take().is_some() {
            cache.recovering = true;
        }
        match event {
            watcher::Event::Apply(obj) => {
                let key = name_of(obj);
                // Our write, or something after it: the watch has caught up. Our write
                // itself (same uid and resourceVersion) is summarised already.
                let version = version_of(obj);
                let summary = match cache.written.remove(&key) {
                    Some(ours)
                        if Uid::of(obj.metadata.uid.as_deref().unwrap_or_default())
                            == ours.summary.uid
                            && version == ours.summary.resource_version =>
                    {
                        ours.summary
                    }
                    // An earlier write of ours: the record of the later one stays.
                    Some(ours) if ours.earlier.contains(&version) => {
                        cache.written.insert(key, ours);
                        ChildSummary::of(kind, obj)
                    }
                    _ => ChildSummary::of(kind, obj),
                };
                cache.objects.insert(key, summary);
            }
            watcher::Event::Delete(obj) => {
                let key = name_of(obj);
                cache.written.remove(&key);
                cache.objects.remove(&key);
            }
            watcher::Event::Init => {
                cache.relisting = Some(HashMap::new());
                cache.written.clear();
            }
            watcher::Event::InitApply(obj) => {
                let summary = ChildSummary::of(kind, obj);
                cache
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(name_of(obj), summary);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = cache.relisting.take() {
                    cache.objects = listed;
                }
                ready.store(true, Ordering::Release);
                return std::mem::take(&mut cache.recovering);
            }
        }
        false
    }

    /// What the cache knows of the child before a write: the resourceVersion the watch
    /// last delivered, and our writes still on their way. For [`ChildCache::wrote`].
    pub fn before_write(&self, kind: ChildKind, namespace: &str, name: &str) -> Before {
        let Some(Ok(cache)) = self.kind(kind).map(|(_, c, _)| c.read()) else {
            return Before::default();
        };
        let key = key(namespace, name);
        Before {
            watched: cache.objects.get(&key).map(|seen| seen.resource_version),
            ours: cache
                .written
                .get(&key)
                .map(|w| {
                    let mut ours = w.earlier.clone();
                    ours.push(w.summary.resource_version);
                    ours
                })
                .unwrap_or_default(),
        }
    }

    /// Remembers what the API server answered to a write of ours, until the watch
    /// delivers it: a reconcile in between must not write the same object again.
    /// `before` is [`ChildCache::before_write`] as it was when the write was sent (with
    /// the versions of any write of ours made since, [`Before::and_ours`]): if the watch
    /// has delivered anything else of that child since (this write, or something newer),
    /// there is nothing to remember, and a record could only hide a newer state. A record
    /// lives until the watch delivers this write or anything not ours, and at most
    /// [`WRITTEN_TTL`].
    pub fn wrote(
        &self,
        kind: ChildKind,
        namespace: &str,
        name: &str,
        before: Before,
        summary: ChildSummary,
    ) {
        if let Some(Ok(mut cache)) = self.kind(kind).map(|(_, c, _)| c.write()) {
            let key = key(namespace, name);
            let since = cache.objects.get(&key).map(|seen| seen.resource_version);
            let ours = |v: &ShortHash| before.ours.contains(v);
            if since == before.watched || since.as_ref().is_some_and(ours) {
                let written = Written {
                    at: Instant::now(),
                    summary,
                    earlier: before.ours,
                };
                cache.written.insert(key, written);
            }
        }
    }

    /// The child as last written by us or seen by the watch.
    pub fn get(&self, kind: ChildKind, namespace: &str, name: &str) -> Option<ChildSummary> {
        self.with(kind, namespace, name, |summary| summary.cloned())
    }

    /// `f` of the child as [`ChildCache::get`] would return it, without copying it.
    pub fn with<T>(
        &self,
        kind: ChildKind,
        namespace: &str,
        name: &str,
        f: impl FnOnce(Option<&ChildSummary>) -> T,
    ) -> T {
        let Some(Ok(cache)) = self.kind(kind).map(|(_, c, _)| c.read()) else {
            return f(None);
        };
        let key = key(namespace, name);
        let summary = cache
            .written
            .get(&key)
            .filter(|w| w.at.elapsed() < WRITTEN_TTL)
            .map(|w| &w.summary)
            .or_else(|| cache.objects.get(&key));
        f(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn child(rv: &str, replicas: i64) -> LiveObject {
        let mut desired = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "t-cloudflared", "namespace": "n", "labels": { INSTANCE_LABEL: "t" },
                "ownerReferences": [{ "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel", "name": "t", "uid": "tunnel-uid", "controller": true }] },
            "data": { "replicas": "2" }
        });
        let hash = managed_fields::content_hash(&desired);
        desired["metadata"]["annotations"] = json!({ APPLIED_HASH_ANNOTATION: hash });
        let mut live = desired.clone();
        live["metadata"]["uid"] = json!("u1");
        live["metadata"]["resourceVersion"] = json!(rv);
        live["metadata"]["managedFields"] = json!([{ "manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": managed_fields::fieldset(&desired) }]);
        // Someone else changed the value.
        live["data"]["replicas"] = json!(replicas.to_string());
        serde_json::from_value(live).expect("object")
    }

    fn listed() -> ChildCache {
        let cache = ChildCache::default();
        for kind in ChildKind::ALL {
            cache.apply_event(*kind, &watcher::Event::Init);
            cache.apply_event(*kind, &watcher::Event::InitDone);
        }
        cache
    }

    #[test]
    fn a_summary_keeps_what_apply_needs() {
        let s = ChildSummary::of(ChildKind::ConfigMap, &child("5", 2));
        assert!(s.intact);
        assert!(s.is_controlled_by("tunnel-uid"));
        assert!(s.is_instance_of("t"));
        assert!(!s.is_instance_of("u"));
        assert_eq!(s.uid.to_string(), "u1");
        let annotated = child("5", 2).metadata.annotations.unwrap_or_default();
        assert!(s.has_applied_hash(annotated.get(APPLIED_HASH_ANNOTATION).map(String::as_str)));
        assert!(!s.has_applied_hash(Some("another")));
        assert!(!s.has_applied_hash(None));
        assert_eq!(s.create_entry, None);
        assert!(!ChildSummary::of(ChildKind::ConfigMap, &child("6", 7)).intact);
    }

    #[test]
    fn the_watch_event_of_our_own_write_keeps_the_summary_of_the_answer() {
        let cache = listed();
        let kind = ChildKind::ConfigMap;
        let name = "t-cloudflared";
        cache.apply_event(kind, &watcher::Event::Apply(child("5", 2)));
        // What the API server answered to our write (marked, to be told apart).
        let mut answered = ChildSummary::of(kind, &child("6", 2));
        answered.instance = Some(ShortHash::of("as answered"));
        let before = cache.before_write(kind, "n", name);
        cache.wrote(kind, "n", name, before, answered.clone());
        // The watch delivers that very version: the answer's summary stays.
        cache.apply_event(kind, &watcher::Event::Apply(child("6", 2)));
        assert_eq!(cache.get(kind, "n", name), Some(answered));
        // A later version is summarised from the event.
        cache.apply_event(kind, &watcher::Event::Apply(child("7", 2)));
        assert_eq!(
            cache.get(kind, "n", name),
            Some(ChildSummary::of(kind, &child("7", 2)))
        );
    }

    #[test]
    fn the_events_of_our_earlier_writes_do_not_end_the_record_of_a_later_one() {
        let cache = listed();
        let kind = ChildKind::ConfigMap;
        let name = "t-cloudflared";
        let summary = |rv: &str, replicas: i64| ChildSummary::of(kind, &child(rv, replicas));
        let version = |c: &ChildCache| c.get(kind, "n", name).map(|s| s.resource_version);

        // Created (version 5), not yet seen by the watch.
        let before = cache.before_write(kind, "n", name);
        cache.wrote(kind, "n", name, before, summary("5", 2));
        // The next write adopts the create entry (version 6) and applies (version 7);
        // meanwhile the watch delivers the create.
        let before = cache.before_write(kind, "n", name);
        assert_eq!(before.ours, [ShortHash::of("5")]);
        cache.apply_event(kind, &watcher::Event::Apply(child("5", 2)));
        cache.wrote(
            kind,
            "n",
            name,
            before.and_ours(Some(ShortHash::of("6"))),
            summary("7", 3),
        );
        assert_eq!(version(&cache), Some(ShortHash::of("7")));
        // The adopting patch's event is ours: the apply's answer still stands…
        cache.apply_event(kind, &watcher::Event::Apply(child("6", 2)));
        assert_eq!(cache.get(kind, "n", name), Some(summary("7", 3)));
        // …until the watch delivers it.
        cache.apply_event(kind, &watcher::Event::Apply(child("7", 3)));
        assert_eq!(version(&cache), Some(ShortHash::of("7")));
        assert!(cache
            .kind(kind)
            .is_some_and(|(_, c, _)| c.read().is_ok_and(|c| c.written.is_empty())));

        // A change by someone else between our writes ends the record: it is news.
        let before = cache.before_write(kind, "n", name);
        cache.wrote(
            kind,
            "n",
            name,
            before.and_ours(Some(ShortHash::of("8"))),
            summary("9", 4),
        );
        cache.apply_event(kind, &watcher::Event::Apply(child("10", 1)));
        assert_eq!(cache.get(kind, "n", name), Some(summary("10", 1)));
    }

    #[test]
    fn a_write_is_remembered_until_the_next_event_of_that_child() {
        let cache = listed();
        assert!(cache.ready());
        let kind = ChildKind::ConfigMap;
        let name = "t-cloudflared";
        let summary = |rv: &str, replicas: i64| ChildSummary::of(kind, &child(rv, replicas));
        let version = |c: &ChildCache| c.get(kind, "n", name).map(|s| s.resource_version);
        cache.apply_event(kind, &watcher::Event::Apply(child("5", 2)));

        // A write sent while the watch showed version 5 stands in for it…
        let before = cache.before_write(kind, "n", name);
        assert_eq!(before.watched, Some(ShortHash::of("5")));
        cache.wrote(kind, "n", name, before, summary("6", 3));
        assert_eq!(cache.get(kind, "n", name), Some(summary("6", 3)));
        // …until the watch delivers it…
        cache.apply_event(kind, &watcher::Event::Apply(child("6", 3)));
        assert_eq!(version(&cache), Some(ShortHash::of("6")));
        // …or anything after it.
        let before = cache.before_write(kind, "n", name);
        cache.wrote(kind, "n", name, before, summary("7", 4));
        cache.apply_event(kind, &watcher::Event::Apply(child("8", 9)));
        assert_eq!(version(&cache), Some(ShortHash::of("8")));

        // The watch delivered our write and something newer before the answer came
        // back: nothing is remembered, and the newer state stands.
        let before = cache.before_write(kind, "n", name);
        cache.apply_event(kind, &watcher::Event::Apply(child("9", 2)));
        cache.apply_event(kind, &watcher::Event::Apply(child("10", 7)));
        cache.wrote(kind, "n", name, before, summary("9", 2));
        assert_eq!(version(&cache), Some(ShortHash::of("10")));

        // A delete after a write is seen.
        let before = cache.before_write(kind, "n", name);
        cache.wrote(kind, "n", name, before, summary("11", 1));
        cache.apply_event(kind, &watcher::Event::Delete(child("11", 1)));
        assert_eq!(cache.get(kind, "n", name), None);
    }

    #[test]
    fn an_integration_kind_is_unavailable_while_its_watch_fails_and_says_when_it_recovers() {
        let kind = ChildKind::DnsEndpoint;
        let cache = ChildCache::new(&ChildKind::enabled(&[
            crate::children::Integration::DnsEndpoints,
        ]));
        for core in ChildKind::core() {
            cache.apply_event(core, &watcher::Event::Init);
            cache.apply_event(core, &watcher::Event::InitDone);
        }
        assert!(
            cache.ready(),
            "an integration's kind does not hold back the core"
        );
        assert_eq!(cache.availability(kind), Availability::Pending);
        assert_eq!(
            ChildCache::default().availability(kind),
            Availability::NotEnabled
        );
        let failed = |code: u16| {
            let status: kube::core::Status =
                serde_json::from_value(serde_json::json!({ "code": code, "reason": "x", "message": "x", "status": "Failure" }))
                    .expect("status");
            watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
        };
        cache.watch_failed(kind, &failed(404));
        assert_eq!(cache.availability(kind), Availability::NotInstalled);
        cache.watch_failed(kind, &failed(500));
        assert_eq!(
            cache.availability(kind),
            Availability::NotInstalled,
            "other errors say nothing"
        );
        cache.watch_failed(kind, &failed(403));
        assert_eq!(cache.availability(kind), Availability::Forbidden);
        assert!(!cache.apply_event(kind, &watcher::Event::Init));
        assert_eq!(cache.availability(kind), Availability::Pending);
        assert!(
            cache.apply_event(kind, &watcher::Event::InitDone),
            "recovered"
        );
        assert_eq!(cache.availability(kind), Availability::Available);
        // A later relist is no recovery.
        assert!(!cache.apply_event(kind, &watcher::Event::Init));
        assert!(!cache.apply_event(kind, &watcher::Event::InitDone));
    }

    #[test]
    fn not_ready_until_every_kind_has_listed() {
        let cache = ChildCache::default();
        cache.apply_event(ChildKind::ConfigMap, &watcher::Event::Init);
        cache.apply_event(ChildKind::ConfigMap, &watcher::Event::InitDone);
        assert!(!cache.ready());
        assert!(listed().ready());
    }
}
