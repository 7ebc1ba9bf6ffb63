//! Reconcile tests against a mock API server, in the style of kube-rs's
//! controller-rs: every request the reconciler sends is checked (method,
//! path, query, body) against a script, answered from the script, and the
//! test fails if a request is missing, different, or extra. The script is in order,
//! except within one wave of child writes, whose requests may come in any order (see
//! `pick`).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::ByteString;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{json, Value};

use crate::api::SecureTunnel;
use crate::children::ChildKind;
use crate::names::FIELD_MANAGER;
use crate::reconcile::cache::ChildCache;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::{reconcile, Context, Stores, BLOCKED_RECHECK, RESYNC_INTERVAL};
use crate::render::{self, Children, Dereferenced};
use crate::test_support::{token_string, TUNNEL_ID, TUNNEL_UID};
use crate::token::TunnelToken;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const SSA_QUERY: &[(&str, &str)] = &[("fieldManager", "securetunnel-operator"), ("force", "true")];

fn tunnel() -> SecureTunnel {
    SecureTunnel::test()
}

fn user_secret(token: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("home-tunnel-token".into()),
            namespace: Some("apps".into()),
            ..Default::default()
        },
        data: Some([("token".to_string(), ByteString(token.as_bytes().to_vec()))].into()),
        ..Default::default()
    }
}

/// The Service the fixture tunnel's rule names.
fn web_service(app_label: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "web", "namespace": "apps" },
        "spec": { "selector": { "app": app_label }, "ports": [ { "port": 8080, "targetPort": "http" } ] }
    }))
    .expect("service parses")
}

fn children_with(tunnel: &SecureTunnel, token: &str, services: &[Service]) -> Children {
    let token = TunnelToken::parse(token.as_bytes()).expect("token parses");
    let services = services
        .iter()
        .map(|s| {
            let key = crate::validate::origin::ServiceRef {
                namespace: s.metadata.namespace.clone().expect("namespace"),
                name: s.metadata.name.clone().expect("name"),
            };
            (key, s.clone())
        })
        .collect();
    render::desired_children(
        tunnel,
        &Dereferenced {
            token: Some(token),
            services,
            ca_bundles: Default::default(),
            operator_namespace: None,
        },
    )
    .expect("renders")
}

/// The children when the fixture's Service exists as `web_service("web")`.
fn children_for(tunnel: &SecureTunnel, token: &str) -> Children {
    children_with(tunnel, token, &[web_service("web")])
}

fn to_json<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("serializes")
}

/// One expected request and the answer to it.
struct Exchange {
    method: Method,
    path: String,
    query: Vec<(&'static str, &'static str)>,
    /// The exact body expected (after `normalize`); `None` for an empty body.
    body: Option<Value>,
    normalize: fn(&mut Value),
    reply: Reply,
}

enum Reply {
    /// 200 with the request body.
    Echo,
    /// The request body as the API server stores it after our manager wrote it by
    /// `operation` ("Apply", or "Update" for a create, answered 201): with its
    /// `managedFields` entry.
    Written(&'static str),
    /// 200 with the request body's fields laid over a stored object
    /// (what the status subresource returns).
    EchoOnto(Value),
    Json(StatusCode, Value),
    /// No answer: the connection drops (a timeout or reset, as the client sees it).
    Cut,
}

fn no_normalize(_: &mut Value) {}

/// The read of the user's token Secret, answered with `token`.
fn token_lookup(token: &str) -> Exchange {
    get(
        TOKEN_SECRET_PATH,
        Reply::Json(StatusCode::OK, to_json(&user_secret(token))),
    )
}

/// A script made of parts.
fn joined(parts: Vec<Vec<Exchange>>) -> Vec<Exchange> {
    parts.into_iter().flatten().collect()
}

/// The writes of a reconcile whose caches hold none of the children: each is created,
/// in apply order; the first `stored` kinds already exist, as an earlier apply stored
/// them, and are read once and left alone.
fn child_creates(children: &Children, stored: usize) -> Vec<Exchange> {
    let found = children
        .objects()
        .expect("objects")
        .into_iter()
        .take(stored)
        .flat_map(|(kind, obj)| {
            [
                Exchange {
                    reply: already_exists(&kind.qualified_plural(), "home-cloudflared"),
                    ..create(kind, obj.clone())
                },
                get(
                    &path(kind),
                    Reply::Json(StatusCode::OK, applied_as(obj.clone(), &obj)),
                ),
            ]
        });
    found.chain(creates_after(children, stored)).collect()
}

/// The creates of the children after the first `done` (in apply order), which an
/// earlier reconcile of the same process wrote and still remembers.
fn creates_after(children: &Children, done: usize) -> Vec<Exchange> {
    children
        .objects()
        .expect("objects")
        .into_iter()
        .skip(done)
        .map(|(kind, obj)| create(kind, obj))
        .collect()
}

/// The creates of the children of these kinds, in apply order.
fn creates_of(children: &Children, kinds: &[ChildKind]) -> Vec<Exchange> {
    children
        .objects()
        .expect("objects")
        .into_iter()
        .filter(|(kind, _)| kinds.contains(kind))
        .map(|(kind, obj)| create(kind, obj))
        .collect()
}

/// The create of the fixture tunnel's child of `kind`.
fn create(kind: ChildKind, body: Value) -> Exchange {
    let item = path(kind);
    let collection = item.trim_end_matches("/home-cloudflared");
    Exchange {
        method: Method::POST,
        path: collection.to_string(),
        query: vec![("fieldManager", "securetunnel-operator")],
        body: Some(body),
        normalize: no_normalize,
        reply: Reply::Written("Update"),
    }
}

fn already_exists(kind: &str, name: &str) -> Reply {
    Reply::Json(
        StatusCode::CONFLICT,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" already exists"), "reason": "AlreadyExists", "code": 409
        }),
    )
}

/// The API path of the fixture tunnel's child of `kind`.
fn path(kind: ChildKind) -> String {
    kind.path("apps", "home-cloudflared")
}

fn get(path: &str, reply: Reply) -> Exchange {
    Exchange {
        method: Method::GET,
        path: path.to_string(),
        query: vec![],
        body: None,
        normalize: no_normalize,
        reply,
    }
}

fn apply(path: &str, body: Value) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: path.to_string(),
        query: SSA_QUERY.to_vec(),
        body: Some(body),
        normalize: no_normalize,
        reply: Reply::Written("Apply"),
    }
}

fn not_found(kind: &str, name: &str) -> Reply {
    Reply::Json(
        StatusCode::NOT_FOUND,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404
        }),
    )
}

const TOKEN_SECRET_PATH: &str = "/api/v1/namespaces/apps/secrets/home-tunnel-token";
const STATUS_PATH: &str =
    "/apis/securetunnel.dev/v1alpha1/namespaces/apps/securetunnels/home/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/apps/events";

/// Applying a Deployment that exists: the API server answers with the
/// applied object and the status its controller keeps.
fn apply_existing_deployment(body: Value) -> Exchange {
    let live = to_json(&rolled_out(
        serde_json::from_value(body.clone()).expect("deployment"),
        2,
    ));
    Exchange {
        reply: Reply::EchoOnto(live),
        ..apply(&path(ChildKind::Deployment), body)
    }
}

/// Condition timestamps are "now"; check they are present, then drop them.
fn normalize_status(body: &mut Value) {
    if let Some(conditions) = body
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conditions {
            let obj = c.as_object_mut().expect("condition is an object");
            let time = obj
                .remove("lastTransitionTime")
                .expect("lastTransitionTime is set");
            assert!(
                time.as_str().is_some_and(|t| t.ends_with('Z')),
                "bad time {time}"
            );
        }
    }
}

fn apply_status(status: Value) -> Exchange {
    Exchange {
        normalize: normalize_status,
        reply: Reply::EchoOnto(to_json(&tunnel())),
        ..apply(
            STATUS_PATH,
            json!({ "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel", "status": status }),
        )
    }
}

/// Event names and times are generated; check they are present, then drop them.
fn normalize_event(body: &mut Value) {
    let obj = body.as_object_mut().expect("event is an object");
    assert!(obj.remove("eventTime").is_some(), "eventTime is set");
    let name = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("name"))
        .expect("event name is set");
    assert!(
        name.as_str().is_some_and(|n| n.starts_with("home.")),
        "event name {name}"
    );
}

fn event(type_: &str, reason: &str, note: &str) -> Exchange {
    Exchange {
        method: Method::POST,
        path: EVENTS_PATH.to_string(),
        query: vec![],
        body: Some(json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "action": "Reconcile",
            "metadata": { "namespace": "apps" },
            "note": note,
            "reason": reason,
            "regarding": {
                "apiVersion": "securetunnel.dev/v1alpha1",
                "kind": "SecureTunnel",
                "name": "home",
                "namespace": "apps",
                "uid": TUNNEL_UID
            },
            "reportingController": "securetunnel-operator",
            "reportingInstance": "securetunnel-operator",
            "type": type_
        })),
        normalize: normalize_event,
        reply: Reply::Echo,
    }
}

fn conditions(
    ready: (&str, &str, &str),
    progressing: (&str, &str, &str),
    degraded: (&str, &str, &str),
) -> Value {
    let c = |t: &str, (status, reason, message): (&str, &str, &str)| json!({ "type": t, "status": status, "reason": reason, "message": message, "observedGeneration": 1 });
    json!([
        c("Ready", ready),
        c("Progressing", progressing),
        c("Degraded", degraded)
    ])
}

fn query_pairs(query: Option<&str>) -> BTreeSet<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Every request body sent, as (method path, body text), for leak checks.
type SentLog = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// Answers the next request with `expected`, checking every part of it.
async fn answer(
    i: usize,
    handle: &mut ApiServerHandle,
    expected: Exchange,
    sent: &SentLog,
    granted: &[crate::rbac::Access],
) {
    let (request, send) = handle.next_request().await.unwrap_or_else(|| {
        panic!(
            "client gone before request {i} ({} {})",
            expected.method, expected.path
        )
    });
    answer_request(i, request, send, expected, sent, granted).await;
}

/// The child kind and wave of a request to a child collection or object, if it is one.
fn child_wave(method: &Method, path: &str) -> Option<crate::children::Wave> {
    if ![Method::POST, Method::PATCH, Method::GET, Method::DELETE].contains(method) {
        return None;
    }
    let (_, rest) = path.split_once("/namespaces/")?;
    let plural = rest.split('/').nth(1)?;
    ChildKind::ALL
        .iter()
        .find(|k| k.plural() == plural)
        .map(|k| k.wave())
}

/// Which of the remaining exchanges a request answers. The reconciler writes the children
/// of one wave at once (see [`ChildKind::wave`]), so their requests (and the read after
/// an `AlreadyExists`) arrive in any order: a request may answer any exchange of the
/// leading run of requests to children of the front exchange's wave. Anything else must
/// answer the front exchange.
fn pick(script: &VecDeque<Exchange>, method: &Method, path: &str) -> usize {
    let matches = |e: &Exchange| e.method == *method && e.path == path;
    let Some(front) = script.front() else {
        return 0;
    };
    if matches(front) {
        return 0;
    }
    let Some(wave) = child_wave(&front.method, &front.path) else {
        return 0;
    };
    script
        .iter()
        .take_while(|e| child_wave(&e.method, &e.path) == Some(wave))
        .position(matches)
        .unwrap_or(0)
}

/// Answers `request` with `expected`, checking every part of it.
async fn answer_request(
    i: usize,
    request: Request<Body>,
    send: tower_test::mock::SendResponse<Response<Body>>,
    expected: Exchange,
    sent: &SentLog,
    granted: &[crate::rbac::Access],
) {
    let step = format!("request {i}: {} {}", request.method(), request.uri());
    // Every call the reconciler makes must be granted by the RBAC list the chart is built
    // from (with the rules of the integrations the caches watch).
    assert!(
        crate::rbac::allows(
            granted,
            request.method().as_str(),
            request.uri().path(),
            request.uri().query().unwrap_or("")
        ),
        "{step} is not granted by src/rbac.rs"
    );
    assert_eq!(request.method(), expected.method, "{step}");
    assert_eq!(request.uri().path(), expected.path, "{step}");
    let want_query: BTreeSet<(String, String)> = expected
        .query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(query_pairs(request.uri().query()), want_query, "{step}");

    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    if let Ok(mut log) = sent.lock() {
        log.push((step.clone(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&bytes).expect("request body is JSON"))
    };
    let mut normalized = body.clone();
    if let Some(b) = normalized.as_mut() {
        (expected.normalize)(b);
    }
    pretty_assertions::assert_eq!(normalized, expected.body, "{step}");

    let is_apply = expected.query.contains(&("force", "true"));
    let (status, reply) = match expected.reply {
        Reply::Echo => (StatusCode::OK, body.unwrap_or(Value::Null)),
        Reply::Written(operation) => {
            let body = body.unwrap_or(Value::Null);
            let mut stored = applied_as(body.clone(), &body);
            stored["metadata"]["managedFields"][0]["operation"] = json!(operation);
            let status = if operation == "Update" {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, stored)
        }
        Reply::EchoOnto(mut stored) => {
            if let (Some(target), Some(Value::Object(fields))) =
                (stored.as_object_mut(), body.clone())
            {
                target.extend(fields);
            }
            if is_apply {
                let applied = body.unwrap_or(Value::Null);
                stored = applied_as(stored, &applied);
            }
            (StatusCode::OK, stored)
        }
        Reply::Json(status, value) => (status, value),
        Reply::Cut => {
            // The connection drops before an answer: the client sees a transport error.
            send.send_error("connection reset by peer");
            return;
        }
    };
    let response = Response::builder()
        .status(status)
        .body(Body::from(
            serde_json::to_vec(&reply).expect("reply serializes"),
        ))
        .expect("response builds");
    send.send_response(response);
}

/// A reconciler wired to a scripted API server. Each `reconcile` must send
/// exactly its script; `finish` checks that nothing else was ever sent.
struct MockCluster {
    ctx: Arc<Context>,
    handle: ApiServerHandle,
    sent: SentLog,
    granted: Vec<crate::rbac::Access>,
}

impl MockCluster {
    fn new(caches: &Caches) -> Self {
        MockCluster::with_remote(caches, None)
    }

    /// With an observer of connectors' configuration (see [`crate::reconcile::remote`]).
    fn with_remote(
        caches: &Caches,
        remote: Option<Arc<crate::reconcile::remote::RemoteConfigChecks>>,
    ) -> Self {
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let events = EventPublisher::new(client.clone(), "securetunnel-operator", None);
        let mut granted = crate::rbac::controller();
        let mut integrations: Vec<_> = caches
            .children
            .kinds()
            .filter_map(ChildKind::integration)
            .collect();
        integrations.dedup();
        for integration in integrations {
            granted.extend(crate::rbac::integration(integration));
        }
        let mut ctx = Context::new(client, events, caches.stores());
        ctx.remote = remote;
        MockCluster {
            ctx: Arc::new(ctx),
            handle,
            sent: SentLog::default(),
            granted,
        }
    }

    async fn reconcile(
        &mut self,
        tunnel: SecureTunnel,
        script: Vec<Exchange>,
    ) -> crate::Result<Action> {
        let expected = script.len();
        let mut served = 0;
        let run = reconcile(Arc::new(tunnel), self.ctx.clone());
        tokio::pin!(run);
        let mut script: VecDeque<Exchange> = script.into();
        // Generous bound: some tests pause time, and the reconciler may wait up to 30 s.
        let deadline = tokio::time::sleep(Duration::from_secs(120));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                result = &mut run => {
                    assert_eq!(served, expected, "the reconcile ended after {served} of {expected} scripted requests");
                    return result;
                }
                _ = async {
                    let Some((request, send)) = self.handle.next_request().await else {
                        panic!("the client went away mid-reconcile ({served} of {expected} requests served)");
                    };
                    let j = pick(&script, request.method(), request.uri().path());
                    match script.remove(j) {
                        Some(exchange) => answer_request(served, request, send, exchange, &self.sent, &self.granted).await,
                        None => panic!("unexpected request: {} {}", request.method(), request.uri()),
                    }
                } => {
                    served += 1;
                }
                _ = &mut deadline => panic!("the reconcile did not finish in time ({served} of {expected} requests served)"),
            }
        }
    }

    /// Backoff the controller would apply after `error`.
    fn error_policy(&self, tunnel: &SecureTunnel, error: &crate::Error) -> Action {
        crate::reconcile::error_policy(Arc::new(tunnel.clone()), error, self.ctx.clone())
    }

    /// One reconcile of the tunnel in its steady state over `children`: the token is read,
    /// and nothing else is sent.
    async fn reconcile_steady(&mut self, children: &Children, token: &str) {
        self.reconcile(tunnel_in_steady_state(children), vec![token_lookup(token)])
            .await
            .expect("reconciles");
    }

    async fn finish(self) {
        let MockCluster {
            ctx, mut handle, ..
        } = self;
        drop(ctx);
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }
}

/// The child summaries, as the child watches would fill them.
fn listed_children() -> Arc<ChildCache> {
    listed_kinds(&ChildKind::core().collect::<Vec<_>>())
}

/// The summaries of these kinds, each listed (and empty).
fn listed_kinds(kinds: &[ChildKind]) -> Arc<ChildCache> {
    let cache = Arc::new(ChildCache::new(kinds));
    for kind in kinds {
        cache.apply_event(*kind, &watcher::Event::Init);
        cache.apply_event(*kind, &watcher::Event::InitDone);
    }
    cache
}

/// `live` as the API server holds it after our manager applied `applied`: the
/// `managedFields` entry an apply of `applied` leaves.
pub(super) fn applied_as(mut live: Value, applied: &Value) -> Value {
    live["metadata"]["managedFields"] = json!([{
        "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": applied["apiVersion"],
        "fieldsType": "FieldsV1", "fieldsV1": crate::managed_fields::fieldset(applied),
    }]);
    live
}

/// Caches standing in for the controller's watches.
struct Caches {
    children: Arc<ChildCache>,
    services: Writer<Service>,
    token_secrets: Writer<kube::core::PartialObjectMeta<Secret>>,
}

/// A writer that has finished its first listing of `items`.
fn listed<K>(mut writer: Writer<K>, items: &[K]) -> Writer<K>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for item in items {
        writer.apply_watcher_event(&watcher::Event::InitApply(item.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    writer
}

impl Caches {
    /// Nothing of ours cached; the Service cache has listed `services`;
    /// every cache has finished its first listing.
    fn with_services(services: &[Service]) -> Self {
        Caches {
            children: listed_children(),
            services: listed(Writer::default(), services),
            token_secrets: listed(Writer::default(), &[]),
        }
    }

    /// Nothing of ours cached; the fixture's Service exists.
    fn empty() -> Self {
        Caches::with_services(&[web_service("web")])
    }

    /// The watch of `kind` reports `obj` (created or changed). Unless `obj` says who
    /// owns its fields, our manager applied exactly `obj`.
    fn put<K: serde::Serialize>(&mut self, kind: ChildKind, obj: &K) {
        let mut obj = to_json(obj);
        if obj["metadata"].get("managedFields").is_none() {
            obj = applied_as(obj.clone(), &obj);
        }
        let obj = serde_json::from_value(obj).expect("an object");
        self.children.apply_event(kind, &watcher::Event::Apply(obj));
    }

    /// The watch of `kind` reports `obj` deleted.
    fn remove<K: serde::Serialize>(&mut self, kind: ChildKind, obj: &K) {
        let obj = serde_json::from_value(to_json(obj)).expect("an object");
        self.children
            .apply_event(kind, &watcher::Event::Delete(obj));
    }

    /// Caches holding exactly `children`, with the Deployment fully rolled out.
    fn holding(children: &Children) -> Self {
        Caches::holding_with(children, &ChildKind::core().collect::<Vec<_>>())
    }

    /// Caches watching `kinds`, holding the core children of `children` (the Deployment
    /// rolled out); the integrations' children are not there yet.
    fn holding_with(children: &Children, kinds: &[ChildKind]) -> Self {
        let mut caches = Caches {
            children: listed_kinds(kinds),
            ..Caches::empty()
        };
        for (kind, obj) in children.objects().expect("objects") {
            match kind {
                ChildKind::Deployment => {
                    let live = to_json(&rolled_out(children.deployment.clone(), 2));
                    caches.put(kind, &applied_as(live, &obj));
                }
                k if k.integration().is_some() => {}
                k => caches.put(k, &obj),
            }
        }
        caches
    }

    fn stores(&self) -> Stores {
        Stores {
            children: self.children.clone(),
            services: self.services.as_reader(),
            token_secrets: self.token_secrets.as_reader(),
        }
    }
}

fn rolled_out(mut deployment: Deployment, ready: i32) -> Deployment {
    deployment.metadata.generation = Some(1);
    deployment.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(2),
        ready_replicas: Some(ready),
        updated_replicas: Some(2),
        available_replicas: Some(ready),
        conditions: Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: Some("NewReplicaSetAvailable".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    deployment
}

/// Runs one reconcile of `tunnel` against `script` and returns its result.
async fn reconcile_against(
    tunnel: SecureTunnel,
    caches: &Caches,
    script: Vec<Exchange>,
) -> crate::Result<Action> {
    let mut cluster = MockCluster::new(caches);
    let result = cluster.reconcile(tunnel, script).await;
    cluster.finish().await;
    result
}

/// The status the reconciler writes for a healthy, fully rolled-out tunnel.
fn steady_status(children: &Children) -> Value {
    json!({
        "observedGeneration": 1,
        "tunnelID": TUNNEL_ID,
        "replicas": 2,
        "readyReplicas": 2,
        "configHash": children.config_hash,
        "conditions": conditions(
            ("True", "ConnectorsReady", "2/2 connectors ready"),
            ("False", "RolloutComplete", "the connectors run the current spec"),
            ("False", "AsExpected", "all connectors are available or starting"),
        ),
    })
}

/// The status the reconciler writes for a tunnel whose connectors are not up yet.
fn first_status(children: &Children) -> Value {
    json!({
        "observedGeneration": 1,
        "tunnelID": TUNNEL_ID,
        "replicas": 0,
        "readyReplicas": 0,
        "configHash": children.config_hash,
        "conditions": conditions(
            ("False", "ConnectorsNotReady", "0/2 connectors ready"),
            ("True", "RollingOut", "rolling out: 0/2 connectors ready"),
            ("False", "AsExpected", "all connectors are available or starting"),
        ),
    })
}

/// A tunnel whose status already says what `steady_status` says.
fn tunnel_in_steady_state(children: &Children) -> SecureTunnel {
    let mut t = tunnel();
    let mut status = steady_status(children);
    for c in status["conditions"].as_array_mut().expect("conditions") {
        c["lastTransitionTime"] = json!("2026-11-01T00:00:00Z");
    }
    t.status = Some(serde_json::from_value(status).expect("status parses"));
    t
}

fn api_error(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(code).expect("status code"),
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code }),
    )
}

mod ca;
mod faults;
mod integrations;
mod lifecycle;
mod memo;
mod remote;
mod sandbox;
mod tokens;
