//! One reconcile of one SecureTunnel:
//! dereference (token Secret) → validate → render → apply (SSA) → status.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use crate::api::conditions::{self, READY};
use crate::api::{SecureTunnel, SecureTunnelStatus, TokenSecretRef};
use crate::index::TunnelIndex;
use crate::metrics::Metrics;
use crate::names::APPLIED_HASH_ANNOTATION;
use crate::names::FIELD_MANAGER;
use crate::origin::ServiceRef;
use crate::render::origins;
use crate::render::{self, Children, Dereferenced};
use crate::status::{desired_status, Verdict};
use crate::token::TunnelToken;
use crate::validate::ValidatedSpec;
use crate::{Error, Result};

/// Periodic re-check of a healthy tunnel; changes arrive through watches.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Re-check of a tunnel waiting on something the watches may not see
/// (a token Secret in a namespace outside the watch, a foreign object).
pub const BLOCKED_RECHECK: Duration = Duration::from_secs(5 * 60);
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
/// How long a reconcile waits for the caches' first listing. Until then a
/// missing Service could mean "not listed yet", and rendering would close the
/// sandbox on a working origin.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// Caches filled by the controller's watches: the children (label-filtered)
/// and the Services that ingress rules may name.
#[derive(Clone)]
pub struct Stores {
    pub network_policies: Store<NetworkPolicy>,
    pub secrets: Store<Secret>,
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub deployments: Store<Deployment>,
    pub pod_disruption_budgets: Store<PodDisruptionBudget>,
    pub services: Store<Service>,
    /// Metadata of every Secret in scope: a token is read again only when its
    /// Secret's resourceVersion changed.
    pub token_secrets: Store<PartialObjectMeta<Secret>>,
}

impl Stores {
    /// Waits (bounded) for every cache's first listing: until then, a cache
    /// miss would cost an API read, or hide an object. Readiness is polled:
    /// a waiter that registered before the first listing could sleep until
    /// some later wake-up (seen in the scale benchmark as 30 s stalls).
    async fn wait_until_ready(&self) -> Result<()> {
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
        fn ready<K>(store: &Store<K>) -> bool
        where
            K: kube::runtime::reflector::Lookup + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        }
        ready(&self.network_policies)
            && ready(&self.secrets)
            && ready(&self.config_maps)
            && ready(&self.service_accounts)
            && ready(&self.deployments)
            && ready(&self.pod_disruption_budgets)
            && ready(&self.services)
            && ready(&self.token_secrets)
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
    /// Parsed tokens by Secret (namespace, name, key), with the Secret's resourceVersion.
    tokens: Mutex<HashMap<(String, String, String), CachedToken>>,
    /// A digest of the status last written per tunnel uid (condition times
    /// left out): a reconcile that runs on a cached tunnel older than our own
    /// last write does not write the same status again. Keyed by uid so that a
    /// tunnel deleted and created again under the same name starts afresh.
    written_status: Mutex<HashMap<String, [u8; 32]>>,
}

/// The status without condition times, digested.
fn status_digest(status: &SecureTunnelStatus) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut timeless = status.clone();
    for c in &mut timeless.conditions {
        c.last_transition_time =
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH);
    }
    let bytes = serde_json::to_vec(&timeless).unwrap_or_default();
    Sha256::digest(bytes).into()
}

/// A token as read from a Secret at one resourceVersion.
#[derive(Clone)]
struct CachedToken {
    resource_version: String,
    token: Result<TunnelToken, TokenProblem>,
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
            tokens: Mutex::new(HashMap::new()),
            written_status: Mutex::new(HashMap::new()),
        }
    }

    fn reset_failures(&self, key: &ObjectRef<SecureTunnel>) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Records one more failure and returns the delay before the next try:
    /// 5 s, 10 s, 20 s, … capped at 5 minutes.
    fn next_backoff(&self, key: ObjectRef<SecureTunnel>) -> Duration {
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

/// The pause the API server asked for, if any.
fn retry_after(error: &Error) -> Option<Duration> {
    match error {
        Error::Kube(kube::Error::Api(status)) => status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s))),
        _ => None,
    }
}

/// Delay after `failures` consecutive failures.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

/// Why the token could not be used; becomes the Ready condition.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TokenProblem {
    reason: &'static str,
    message: String,
}

/// One reconcile, timed and counted in the metrics.
#[instrument(skip(tunnel, ctx), fields(namespace = tunnel.namespace().unwrap_or_default(), name = %tunnel.name_any()))]
pub async fn reconcile(tunnel: Arc<SecureTunnel>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let result = reconcile_once(tunnel, &ctx).await;
    ctx.metrics.observe(&result, started.elapsed());
    result
}

async fn reconcile_once(tunnel: Arc<SecureTunnel>, ctx: &Arc<Context>) -> Result<Action> {
    let namespace = tunnel
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let uid = tunnel
        .uid()
        .ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let key = ObjectRef::from_obj(tunnel.as_ref());

    ctx.stores.wait_until_ready().await?;

    // Dereference.
    let token = read_token(ctx, &namespace, &tunnel.spec.token_secret_ref).await?;

    // Validate, then render, then apply.
    let spec = ctx.index.verdict(&tunnel);
    let (verdict, action, fresh_deployment) = match spec.as_ref() {
        Err(errors) => {
            warn!(problems = errors.0.len(), "spec is invalid");
            (
                Verdict::Blocked {
                    reason: conditions::REASON_INVALID_SPEC,
                    message: errors.summary(),
                },
                Action::await_change(),
                None,
            )
        }
        Ok(validated) => match token {
            Err(problem) => {
                warn!(reason = problem.reason, "token is not usable");
                (
                    Verdict::Blocked {
                        reason: problem.reason,
                        message: problem.message,
                    },
                    Action::requeue(BLOCKED_RECHECK),
                    None,
                )
            }
            Ok(token) => {
                let tunnel_id = token.tunnel_id().to_string();
                let services = read_services(&ctx.stores.services, validated, &namespace);
                let deref = Dereferenced {
                    token: Some(token),
                    services,
                };
                let children = render::render(&tunnel, validated, &deref)?;
                for origin in &children.unresolved {
                    warn!(%origin, "origin not opened in the sandbox");
                }
                match apply_children(ctx, &uid, &children).await? {
                    Err(conflict) => (
                        Verdict::Blocked {
                            reason: conditions::REASON_NAME_CONFLICT,
                            message: conflict,
                        },
                        Action::requeue(BLOCKED_RECHECK),
                        None,
                    ),
                    Ok(written) => (
                        Verdict::Applied {
                            tunnel_id,
                            config_hash: children.config_hash.clone(),
                            unresolved: children
                                .unresolved
                                .iter()
                                .map(ToString::to_string)
                                .collect(),
                        },
                        Action::requeue(RESYNC_INTERVAL),
                        written,
                    ),
                }
            }
        },
    };

    // The Deployment as just written, if it was; else as last seen.
    let deployment = fresh_deployment.map(Arc::new).or_else(|| {
        cached(
            &ctx.stores.deployments,
            &namespace,
            &crate::names::child_name(&tunnel.name_any()),
        )
    });
    let status = desired_status(&tunnel, &verdict, deployment.as_deref(), Timestamp::now());
    write_status(ctx, &tunnel, &namespace, status).await?;
    ctx.reset_failures(&key);
    Ok(action)
}

/// Backoff for transient errors; spec and token problems never get here.
/// An API server that asks for a pause (429 with `retryAfterSeconds`) gets
/// at least that pause.
pub fn error_policy(tunnel: Arc<SecureTunnel>, error: &Error, ctx: Arc<Context>) -> Action {
    let backoff = ctx.next_backoff(ObjectRef::from_obj(tunnel.as_ref()));
    let delay = backoff.max(retry_after(error).unwrap_or_default());
    warn!(
        namespace = tunnel.namespace().unwrap_or_default(),
        name = %tunnel.name_any(),
        error = %error,
        label = error.metric_label(),
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Reads and parses the token. API failures are errors (retried with
/// backoff); a missing or malformed token is a status, not an error. A token
/// whose Secret has not changed (same resourceVersion in the metadata cache)
/// is not read again.
async fn read_token(
    ctx: &Context,
    namespace: &str,
    reference: &TokenSecretRef,
) -> Result<Result<TunnelToken, TokenProblem>> {
    let key = (
        namespace.to_string(),
        reference.name.clone(),
        reference.key.clone(),
    );
    let cached_version = ctx
        .stores
        .token_secrets
        .get(&ObjectRef::new(&reference.name).within(namespace))
        .and_then(|meta| meta.metadata.resource_version.clone());
    if let Some(version) = &cached_version {
        let hit = ctx.tokens.lock().ok().and_then(|tokens| {
            tokens
                .get(&key)
                .filter(|c| &c.resource_version == version)
                .map(|c| c.token.clone())
        });
        if let Some(token) = hit {
            return Ok(token);
        }
    }

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(&reference.name).await? else {
        if let Ok(mut tokens) = ctx.tokens.lock() {
            tokens.remove(&key);
        }
        return Ok(Err(TokenProblem {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: format!("Secret {namespace}/{} not found", reference.name),
        }));
    };
    let token = match secret.data.as_ref().and_then(|d| d.get(&reference.key)) {
        None => Err(TokenProblem {
            reason: conditions::REASON_TOKEN_SECRET_MISSING,
            message: format!(
                "Secret {namespace}/{} has no key {:?}",
                reference.name, reference.key
            ),
        }),
        Some(raw) => TunnelToken::parse(&raw.0).map_err(|e| TokenProblem {
            reason: conditions::REASON_TOKEN_INVALID,
            message: format!(
                "Secret {namespace}/{} key {:?}: {e}",
                reference.name, reference.key
            ),
        }),
    };
    if let (Some(version), Ok(mut tokens)) =
        (secret.metadata.resource_version.clone(), ctx.tokens.lock())
    {
        tokens.insert(
            key,
            CachedToken {
                resource_version: version,
                token: token.clone(),
            },
        );
    }
    Ok(token)
}

/// The Services the rules name, from the cache (which has listed them all).
fn read_services(
    store: &Store<Service>,
    spec: &ValidatedSpec,
    namespace: &str,
) -> BTreeMap<ServiceRef, Service> {
    origins::referenced_services(spec, namespace)
        .into_iter()
        .filter_map(|r| {
            let service = store.get(&ObjectRef::new(&r.name).within(&r.namespace))?;
            Some((r, service.as_ref().clone()))
        })
        .collect()
}

/// A child kind the reconciler manages.
trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}
impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// One child: what we want and what exists.
struct Planned<K> {
    desired: K,
    current: Option<Arc<K>>,
}

fn cached<K: Child>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(namespace))
}

/// The existing object: from the cache, or (when the cache has not seen it,
/// e.g. an object made by someone else, which our label-filtered watches
/// skip) from the API server.
async fn current<K: Child>(
    client: &Client,
    store: &Store<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<K>>> {
    if let Some(obj) = cached(store, namespace, name) {
        return Ok(Some(obj));
    }
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

async fn plan<K: Child>(client: &Client, store: &Store<K>, desired: K) -> Result<Planned<K>> {
    let namespace = desired
        .meta()
        .namespace
        .clone()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let current = current(client, store, &namespace, &desired.name_any()).await?;
    Ok(Planned { desired, current })
}

/// Whether `current` holds every field of `desired` with the same value.
/// Arrays must match element by element; an empty array or map in `desired`
/// is also satisfied by an absent field (the API server omits empty lists).
pub fn contains(current: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => {
            want.iter().all(|(key, want)| match cur.get(key) {
                Some(cur) => contains(cur, want),
                None => is_empty_collection(want),
            })
        }
        (Value::Array(cur), Value::Array(want)) => {
            cur.len() == want.len() && cur.iter().zip(want).all(|(c, w)| contains(c, w))
        }
        (Value::Null, want) => is_empty_collection(want),
        (cur, want) => cur == want,
    }
}

fn is_empty_collection(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::Null => true,
        _ => false,
    }
}

fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn describe<K: Child>(obj: &K) -> String {
    format!(
        "{} {}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

impl<K: Child> Planned<K> {
    /// The existing object, when it is not ours to write.
    fn conflict(&self, uid: &str) -> Option<String> {
        let current = self.current.as_ref()?;
        (!is_controlled_by(current.meta(), uid)).then(|| describe(current.as_ref()))
    }

    /// True when the existing object already has every field we set: our
    /// hash annotation (the desired state did not change) and the content
    /// (nobody edited it by hand). Fields others added (defaults, other
    /// managers) do not count.
    fn up_to_date(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        let hash = |meta: &ObjectMeta| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
                .cloned()
        };
        if hash(current.meta()).is_none() || hash(current.meta()) != hash(self.desired.meta()) {
            return false;
        }
        match (
            serde_json::to_value(current.as_ref()),
            serde_json::to_value(&self.desired),
        ) {
            (Ok(current), Ok(desired)) => contains(&current, &desired),
            _ => false,
        }
    }

    /// Applies the desired object unless it is up to date; returns what the
    /// API server answered, when something was written.
    async fn apply(&self, client: &Client) -> Result<Option<K>> {
        if self.up_to_date() {
            debug!(object = %describe(&self.desired), "up to date");
            return Ok(None);
        }
        let namespace = self
            .desired
            .namespace()
            .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let stored = api
            .patch(
                &self.desired.name_any(),
                &params,
                &Patch::Apply(&self.desired),
            )
            .await?;
        info!(object = %describe(&self.desired), "applied");
        Ok(Some(stored))
    }
}

/// Applies every child that differs from the cache, and returns the
/// Deployment if it was written. Returns `Err` with a description of the
/// first existing object we do not control, in which case nothing is written.
async fn apply_children(
    ctx: &Context,
    uid: &str,
    children: &Children,
) -> Result<Result<Option<Deployment>, String>> {
    let client = &ctx.client;
    let stores = &ctx.stores;
    let network_policy = plan(
        client,
        &stores.network_policies,
        children.network_policy.clone(),
    )
    .await?;
    let secret = plan(client, &stores.secrets, children.secret.clone()).await?;
    let config_map = plan(client, &stores.config_maps, children.config_map.clone()).await?;
    let service_account = plan(
        client,
        &stores.service_accounts,
        children.service_account.clone(),
    )
    .await?;
    let deployment = plan(client, &stores.deployments, children.deployment.clone()).await?;
    let pdb = match &children.pod_disruption_budget {
        Some(desired) => Some(plan(client, &stores.pod_disruption_budgets, desired.clone()).await?),
        None => None,
    };

    let conflict = network_policy
        .conflict(uid)
        .or_else(|| secret.conflict(uid))
        .or_else(|| config_map.conflict(uid))
        .or_else(|| service_account.conflict(uid))
        .or_else(|| deployment.conflict(uid))
        .or_else(|| pdb.as_ref().and_then(|p| p.conflict(uid)));
    if let Some(object) = conflict {
        warn!(%object, "name taken by an object this tunnel does not control");
        return Ok(Err(format!(
            "{object} already exists and is not controlled by this SecureTunnel; rename or delete it"
        )));
    }

    // The sandbox before anything that starts pods; then what the pods mount.
    network_policy.apply(client).await?;
    secret.apply(client).await?;
    config_map.apply(client).await?;
    service_account.apply(client).await?;
    let written = deployment.apply(client).await?;
    match pdb {
        Some(pdb) => {
            pdb.apply(client).await?;
        }
        None => delete_stale_pdb(ctx, uid, &children.deployment).await?,
    }
    Ok(Ok(written))
}

/// Scaling down to one replica leaves a budget that no longer makes sense;
/// remove it if (and only if) it is ours.
async fn delete_stale_pdb(ctx: &Context, uid: &str, deployment: &Deployment) -> Result<()> {
    let namespace = deployment
        .namespace()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = deployment.name_any();
    let Some(stale) = cached(&ctx.stores.pod_disruption_budgets, &namespace, &name) else {
        return Ok(());
    };
    if !is_controlled_by(stale.meta(), uid) {
        return Ok(());
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: stale.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            info!(object = %describe(stale.as_ref()), "deleted: one replica needs no disruption budget");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the status when it changed, and an Event when Ready changed.
async fn write_status(
    ctx: &Context,
    tunnel: &SecureTunnel,
    namespace: &str,
    status: SecureTunnelStatus,
) -> Result<()> {
    let previous = tunnel.status.clone().unwrap_or_default();
    if previous == status {
        debug!("status unchanged");
        return Ok(());
    }
    let key = tunnel.uid().unwrap_or_default();
    let digest = status_digest(&status);
    let already_written = ctx
        .written_status
        .lock()
        .ok()
        .and_then(|w| w.get(&key).copied())
        .is_some_and(|d| d == digest);
    if already_written {
        debug!("status already written; the cached tunnel is older than our write");
        return Ok(());
    }
    let api: Api<SecureTunnel> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": SecureTunnel::api_version(&()),
        "kind": SecureTunnel::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&tunnel.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    if let Ok(mut written) = ctx.written_status.lock() {
        written.insert(key, digest);
    }

    let old_ready = conditions::find(&previous.conditions, READY);
    if let Some(ready) = conditions::find(&status.conditions, READY) {
        let changed =
            old_ready.is_none_or(|old| old.status != ready.status || old.reason != ready.reason);
        if changed {
            // Connectors still starting is normal; losing them, or being blocked, is not.
            let was_ready = old_ready.is_some_and(|old| old.status == conditions::TRUE);
            let warning = ready.status != conditions::TRUE
                && (was_ready || ready.reason != conditions::REASON_CONNECTORS_NOT_READY);
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: ready.reason.clone(),
                note: Some(truncate(&ready.message, 1024)),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            // An Event is a courtesy; failing to send one must not fail the reconcile.
            if let Err(e) = ctx.recorder.publish(&event, &tunnel.object_ref(&())).await {
                warn!(error = %e, "could not publish event");
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_ignores_fields_others_added_but_not_changed_ones() {
        use serde_json::json;
        let desired = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] }, "ingress": [] } });
        let defaulted = json!({ "spec": { "replicas": 2, "progressDeadlineSeconds": 600,
            "template": { "containers": [ { "name": "c", "args": ["a", "b"], "terminationMessagePath": "/dev/termination-log" } ] } },
            "status": { "readyReplicas": 2 } });
        assert!(
            contains(&defaulted, &desired),
            "defaults and an omitted empty list are fine"
        );
        let scaled = json!({ "spec": { "replicas": 5, "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] } } });
        assert!(!contains(&scaled, &desired), "a changed field is drift");
        let extra_arg = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b", "--evil"] } ] } } });
        assert!(
            !contains(&extra_arg, &desired),
            "an added list element is drift"
        );
        let second_container = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b"] }, { "name": "sidecar" } ] } } });
        assert!(
            !contains(&second_container, &desired),
            "an added container is drift"
        );
        let removed = json!({ "spec": { "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] } } });
        assert!(!contains(&removed, &desired), "a removed field is drift");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(7), Duration::from_secs(300));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        let long = "é".repeat(600);
        let t = truncate(&long, 1024);
        assert!(t.len() <= 1024 && t.ends_with("..."));
    }
}
