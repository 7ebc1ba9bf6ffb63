//! Reconcile tests against a mock API server, in the style of kube-rs's
//! controller-rs: every request the reconciler sends is checked (method,
//! path, query, body) against a script, answered from the script, and the
//! test fails if a request is missing, different, or extra.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::ByteString;
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{json, Value};

use crate::api::SecureTunnel;
use crate::children::ChildKind;
use crate::reconcile::{reconcile, Context, Stores, BLOCKED_RECHECK, RESYNC_INTERVAL};
use crate::render::{self, Children, Dereferenced};
use crate::test_support::{example_tunnel, token_string, TUNNEL_ID, TUNNEL_UID};
use crate::token::TunnelToken;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const SSA_QUERY: &[(&str, &str)] = &[("fieldManager", "securetunnel-operator"), ("force", "true")];

fn tunnel() -> SecureTunnel {
    example_tunnel()
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
            let key = crate::origin::ServiceRef {
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
    /// 200 with the request body (what an API server returns for an apply).
    Echo,
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

/// The child lookups of a reconcile whose caches hold none of the children: the
/// first `stored` kinds (in apply order) are found as an earlier apply stored them, the
/// rest are not found.
fn child_lookups(children: &Children, stored: usize) -> Vec<Exchange> {
    let objects = children.objects().expect("objects");
    ChildKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            if i < stored {
                let obj = objects
                    .iter()
                    .find(|(k, _)| k == kind)
                    .map(|(_, o)| to_json(o))
                    .unwrap_or(Value::Null);
                get(&path(*kind), Reply::Json(StatusCode::OK, obj))
            } else {
                get(
                    &path(*kind),
                    not_found(&kind.qualified_plural(), "home-cloudflared"),
                )
            }
        })
        .collect()
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
        reply: Reply::Echo,
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

/// Answers one expected request, checking every part of it.
async fn answer(i: usize, handle: &mut ApiServerHandle, expected: Exchange, sent: &SentLog) {
    let (request, send) = handle.next_request().await.unwrap_or_else(|| {
        panic!(
            "client gone before request {i} ({} {})",
            expected.method, expected.path
        )
    });
    let step = format!("request {i}: {} {}", request.method(), request.uri());
    // Every call the reconciler makes must be granted by the RBAC list the chart is built from.
    assert!(
        crate::rbac::allows(
            &crate::rbac::controller(),
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

    let (status, reply) = match expected.reply {
        Reply::Echo => (StatusCode::OK, body.unwrap_or(Value::Null)),
        Reply::EchoOnto(mut stored) => {
            if let (Some(target), Some(Value::Object(fields))) = (stored.as_object_mut(), body) {
                target.extend(fields);
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
}

impl MockCluster {
    fn new(caches: &Caches) -> Self {
        let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock, "default");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "securetunnel-operator".into(),
                instance: None,
            },
        );
        MockCluster {
            ctx: Arc::new(Context::new(client, recorder, caches.stores())),
            handle,
            sent: SentLog::default(),
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
        let mut script = script.into_iter();
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
                    match script.next() {
                        Some(exchange) => answer(served, &mut self.handle, exchange, &self.sent).await,
                        None => match self.handle.next_request().await {
                            Some((request, _)) => panic!("unexpected request: {} {}", request.method(), request.uri()),
                            None => panic!("the client went away mid-reconcile"),
                        },
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

/// Caches standing in for the controller's watches.
struct Caches {
    children: BTreeMap<ChildKind, Writer<DynamicObject>>,
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

/// An object as a list or watch delivers it to a dynamic cache: items of a list carry
/// no apiVersion and kind.
fn dynamic<K: serde::Serialize>(obj: &K) -> DynamicObject {
    let mut obj: DynamicObject = serde_json::from_value(to_json(obj)).expect("a dynamic object");
    obj.types = None;
    obj
}

impl Caches {
    /// Nothing of ours cached; the Service cache has listed `services`;
    /// every cache has finished its first listing.
    fn with_services(services: &[Service]) -> Self {
        Caches {
            children: ChildKind::ALL
                .iter()
                .map(|k| (*k, listed(Writer::new(k.api_resource()), &[])))
                .collect(),
            services: listed(Writer::default(), services),
            token_secrets: listed(Writer::default(), &[]),
        }
    }

    /// Nothing of ours cached; the fixture's Service exists.
    fn empty() -> Self {
        Caches::with_services(&[web_service("web")])
    }

    /// The watch of `kind` reports `obj` (created or changed).
    fn put<K: serde::Serialize>(&mut self, kind: ChildKind, obj: &K) {
        if let Some(w) = self.children.get_mut(&kind) {
            w.apply_watcher_event(&watcher::Event::Apply(dynamic(obj)));
        }
    }

    /// The watch of `kind` reports `obj` deleted.
    fn remove<K: serde::Serialize>(&mut self, kind: ChildKind, obj: &K) {
        if let Some(w) = self.children.get_mut(&kind) {
            w.apply_watcher_event(&watcher::Event::Delete(dynamic(obj)));
        }
    }

    /// Caches holding exactly `children`, with the Deployment fully rolled out.
    fn holding(children: &Children) -> Self {
        let mut caches = Caches::empty();
        for (kind, obj) in children.objects().expect("objects") {
            if kind == ChildKind::Deployment {
                caches.put(kind, &rolled_out(children.deployment.clone(), 2));
            } else {
                caches.put(kind, &obj);
            }
        }
        caches
    }

    fn stores(&self) -> Stores {
        Stores {
            children: self
                .children
                .iter()
                .map(|(k, w)| (*k, w.as_reader()))
                .collect(),
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

#[tokio::test]
async fn a_new_tunnel_gets_every_child_then_a_status_and_an_event() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let pdb = children
        .pod_disruption_budget
        .as_ref()
        .expect("two replicas have a budget");
    let script = joined(vec![
        vec![
            token_lookup(&token),
            // Nothing cached: each name is checked for a foreign object first.
        ],
        child_lookups(&children, 0),
        vec![
            // The sandbox first, so no connector ever runs without it.
            apply(
                &path(ChildKind::NetworkPolicy),
                to_json(&children.network_policy),
            ),
            apply(&path(ChildKind::Secret), to_json(&children.secret)),
            apply(&path(ChildKind::ConfigMap), to_json(&children.config_map)),
            apply(
                &path(ChildKind::ServiceAccount),
                to_json(&children.service_account),
            ),
            apply(&path(ChildKind::Deployment), to_json(&children.deployment)),
            apply(&path(ChildKind::PodDisruptionBudget), to_json(pdb)),
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn steady_state_resync_reads_the_token_and_writes_nothing() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let script = vec![token_lookup(&token)];
    let action = reconcile_against(
        tunnel_in_steady_state(&children),
        &Caches::holding(&children),
        script,
    )
    .await
    .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn connectors_becoming_ready_update_the_status_and_emit_an_event() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    // The status still says what the first reconcile wrote.
    let mut t = tunnel();
    t.status = Some(crate::api::SecureTunnelStatus {
        observed_generation: Some(1),
        tunnel_id: Some(TUNNEL_ID.into()),
        config_hash: Some(children.config_hash.clone()),
        conditions: crate::api::conditions::merge(
            &[],
            &[crate::api::conditions::DesiredCondition::new(
                "Ready",
                false,
                "ConnectorsNotReady",
                "0/2 connectors ready",
            )],
            Some(1),
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        ..Default::default()
    });
    let script = vec![
        token_lookup(&token),
        apply_status(steady_status(&children)),
        event("Normal", "ConnectorsReady", "2/2 connectors ready"),
    ];
    reconcile_against(t, &Caches::holding(&children), script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn a_rotated_token_updates_the_secret_and_rolls_the_deployment_only() {
    let old_token = token_string("b2xkLXNlY3JldA==");
    let new_token = token_string("bmV3LXNlY3JldA==");
    let old_children = children_for(&tunnel(), &old_token);
    let new_children = children_for(&tunnel(), &new_token);
    let token_hash = |c: &Children| {
        c.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(crate::names::TOKEN_HASH_ANNOTATION))
            .cloned()
    };
    assert_ne!(token_hash(&old_children), token_hash(&new_children));

    let script = vec![
        get(
            TOKEN_SECRET_PATH,
            Reply::Json(StatusCode::OK, to_json(&user_secret(&new_token))),
        ),
        apply(&path(ChildKind::Secret), to_json(&new_children.secret)),
        apply_existing_deployment(to_json(&new_children.deployment)),
        // Same tunnel, same config: the status does not change.
    ];
    reconcile_against(
        tunnel_in_steady_state(&old_children),
        &Caches::holding(&old_children),
        script,
    )
    .await
    .expect("reconciles");
}

#[tokio::test]
async fn a_missing_token_secret_is_reported_and_nothing_is_applied() {
    let script = vec![
        get(TOKEN_SECRET_PATH, not_found("secrets", "home-tunnel-token")),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "TokenSecretMissing", "Secret apps/home-tunnel-token not found"),
                ("False", "Blocked", "not applying the spec: TokenSecretMissing"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event(
            "Warning",
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        ),
    ];
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    // Not retried hot: the Secret watch brings it back sooner if it appears.
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn a_secret_without_the_key_or_with_a_bad_token_is_reported() {
    let mut no_key = user_secret("unused");
    no_key.data = Some([("other".to_string(), ByteString(b"x".to_vec()))].into());
    let cases = [
        (no_key, "TokenSecretMissing", "Secret apps/home-tunnel-token has no key \"token\""),
        (
            user_secret("bm90LWEtdG9rZW4="), // base64 of "not-a-token"
            "TokenInvalid",
            "Secret apps/home-tunnel-token key \"token\": the token does not decode to a JSON object with the fields a, t and s; use the output of `cloudflared tunnel token NAME`",
        ),
    ];
    for (secret, reason, message) in cases {
        let script = vec![
            get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            ),
            apply_status(json!({
                "observedGeneration": 1,
                "replicas": 0,
                "readyReplicas": 0,
                "conditions": conditions(
                    ("False", reason, message),
                    ("False", "Blocked", &format!("not applying the spec: {reason}")),
                    ("False", "AsExpected", "all connectors are available or starting"),
                ),
            })),
            event("Warning", reason, message),
        ];
        reconcile_against(tunnel(), &Caches::empty(), script)
            .await
            .expect("reconciles");
    }
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_waits_for_a_change() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let mut t = tunnel();
    t.spec.replicas = 50;
    t.spec.ingress[0].service = "bastion".into();
    let message = "spec.replicas: 50 is out of range: must be 1 to 20; spec.ingress[0].service: bastion mode lets the connector reach any destination, which defeats the egress sandbox";
    let script = vec![
        token_lookup(&token),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "InvalidSpec", message),
                ("False", "Blocked", "not applying the spec: InvalidSpec"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event("Warning", "InvalidSpec", message),
    ];
    let action = reconcile_against(t, &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_foreign_object_with_a_child_name_is_never_written() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let foreign = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "home-cloudflared", "namespace": "apps", "uid": "someone-else" },
        "data": { "config.yaml": "mine" }
    });
    let message = "ConfigMap apps/home-cloudflared already exists and is not controlled by this SecureTunnel; rename or delete it";
    let script = vec![
        token_lookup(&token),
        get(
            &path(ChildKind::NetworkPolicy),
            not_found("networkpolicies.networking.k8s.io", "home-cloudflared"),
        ),
        get(
            &path(ChildKind::Secret),
            not_found("secrets", "home-cloudflared"),
        ),
        get(
            &path(ChildKind::ConfigMap),
            Reply::Json(StatusCode::OK, foreign),
        ),
        get(
            &path(ChildKind::ServiceAccount),
            not_found("serviceaccounts", "home-cloudflared"),
        ),
        get(
            &path(ChildKind::Deployment),
            not_found("deployments.apps", "home-cloudflared"),
        ),
        get(
            &path(ChildKind::PodDisruptionBudget),
            not_found("poddisruptionbudgets.policy", "home-cloudflared"),
        ),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "NameConflict", message),
                ("False", "Blocked", "not applying the spec: NameConflict"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event("Warning", "NameConflict", message),
    ];
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn scaling_to_one_replica_removes_our_disruption_budget() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut cached_pdb = children.pod_disruption_budget.clone().expect("pdb");
    cached_pdb.metadata.uid = Some("pdb-uid".into());
    caches.put(ChildKind::PodDisruptionBudget, &cached_pdb);

    let mut t = tunnel_in_steady_state(&children);
    t.spec.replicas = 1;
    let scaled = children_for(&t, &token);
    assert!(scaled.pod_disruption_budget.is_none());
    let script = vec![
        token_lookup(&token),
        apply_existing_deployment(to_json(&scaled.deployment)),
        Exchange {
            method: Method::DELETE,
            path: path(ChildKind::PodDisruptionBudget),
            query: vec![],
            body: Some(json!({ "preconditions": { "uid": "pdb-uid" } })),
            normalize: no_normalize,
            reply: Reply::Json(
                StatusCode::OK,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" }),
            ),
        },
        // The cached Deployment still runs 2 of 2; the status only moves its message.
        apply_status(json!({
            "observedGeneration": 1,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": conditions(
                ("True", "ConnectorsReady", "2/1 connectors ready"),
                ("False", "RolloutComplete", "the connectors run the current spec"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
    ];
    reconcile_against(t, &caches, script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn an_api_error_is_returned_for_backoff_and_nothing_else_is_sent() {
    let script = vec![get(
        TOKEN_SECRET_PATH,
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "etcd unavailable", "reason": "InternalError", "code": 500 }),
        ),
    )];
    let err = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect_err("fails");
    assert_eq!(err.metric_label(), "kube");
}

#[test]
fn the_mock_tunnel_is_namespaced_and_owned_by_uid() {
    let t = tunnel();
    assert_eq!(t.meta().namespace.as_deref(), Some("apps"));
    assert_eq!(reflector::ObjectRef::from_obj(&t).name, "home");
}

#[tokio::test]
async fn a_changed_service_selector_updates_only_the_network_policy() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let before = children_for(&tunnel(), &token);
    let moved = web_service("web-v2");
    let after = children_with(&tunnel(), &token, std::slice::from_ref(&moved));
    assert_ne!(before.network_policy, after.network_policy);

    let mut caches = Caches::holding(&before);
    caches
        .services
        .apply_watcher_event(&watcher::Event::Apply(moved));
    let script = vec![
        token_lookup(&token),
        apply(
            &path(ChildKind::NetworkPolicy),
            to_json(&after.network_policy),
        ),
    ];
    reconcile_against(tunnel_in_steady_state(&before), &caches, script)
        .await
        .expect("reconciles");
    let peer = &to_json(&after.network_policy)["spec"]["egress"][2]["to"][0];
    assert_eq!(
        peer["podSelector"],
        json!({ "matchLabels": { "app": "web-v2" } })
    );
}

#[tokio::test]
async fn a_vanished_service_closes_its_origin_and_degrades_the_tunnel() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let before = children_for(&tunnel(), &token);
    let after = children_with(&tunnel(), &token, &[]);
    assert_eq!(
        to_json(&after.network_policy)["spec"]["egress"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let mut caches = Caches::holding(&before);
    caches
        .services
        .apply_watcher_event(&watcher::Event::Delete(web_service("web")));
    let mut degraded_status = steady_status(&before);
    degraded_status["conditions"][2] = json!({
        "type": "Degraded", "status": "True", "reason": "UnresolvedOrigin", "observedGeneration": 1,
        "message": "not reachable through the sandbox: spec.ingress[0] (http://web.apps.svc.cluster.local:8080): no Service apps/web"
    });
    let script = vec![
        token_lookup(&token),
        apply(
            &path(ChildKind::NetworkPolicy),
            to_json(&after.network_policy),
        ),
        // Ready is unchanged (the connectors run), so no Event.
        apply_status(degraded_status),
    ];
    let action = reconcile_against(tunnel_in_steady_state(&before), &caches, script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn a_service_cache_that_never_lists_fails_the_reconcile_instead_of_closing_origins() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    caches.services = Writer::default(); // never sees its first listing
    tokio::time::pause(); // the 30 s wait passes instantly
                          // Nothing is read or written before every cache has listed.
    let err = reconcile_against(tunnel_in_steady_state(&children), &caches, vec![])
        .await
        .expect_err("waits, then fails");
    assert_eq!(err.metric_label(), "cache_not_ready");
}

#[tokio::test]
async fn a_hand_edited_child_is_reverted_and_a_deleted_one_recreated() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);

    // Someone scaled the Deployment and added an argument; the hash annotation is untouched.
    let mut edited = rolled_out(children.deployment.clone(), 2);
    if let Some(spec) = edited.spec.as_mut() {
        spec.replicas = Some(7);
        if let Some(pod) = spec.template.spec.as_mut() {
            pod.containers[0]
                .args
                .get_or_insert_with(Vec::new)
                .push("--loglevel=debug".into());
        }
    }
    caches.put(ChildKind::Deployment, &edited);
    // Someone deleted the ConfigMap; the watch removed it from the cache.
    caches.remove(ChildKind::ConfigMap, &children.config_map);

    let script = vec![
        token_lookup(&token),
        get(
            &path(ChildKind::ConfigMap),
            not_found("configmaps", "home-cloudflared"),
        ),
        apply(&path(ChildKind::ConfigMap), to_json(&children.config_map)),
        apply_existing_deployment(to_json(&children.deployment)),
    ];
    reconcile_against(tunnel_in_steady_state(&children), &caches, script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn defaults_added_by_the_api_server_are_not_drift() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut defaulted = to_json(&rolled_out(children.deployment.clone(), 2));
    defaulted["spec"]["progressDeadlineSeconds"] = json!(600);
    defaulted["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
    defaulted["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
        json!("/dev/termination-log");
    defaulted["metadata"]["managedFields"] =
        json!([ { "manager": "securetunnel-operator", "operation": "Apply" } ]);
    let defaulted: Deployment = serde_json::from_value(defaulted).expect("deployment parses");
    caches.put(ChildKind::Deployment, &defaulted);
    let mut np = to_json(&children.network_policy);
    np["spec"].as_object_mut().expect("spec").remove("ingress"); // the API server omits the empty list
    let np: NetworkPolicy = serde_json::from_value(np).expect("policy parses");
    caches.put(ChildKind::NetworkPolicy, &np);

    let script = vec![token_lookup(&token)];
    reconcile_against(tunnel_in_steady_state(&children), &caches, script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn a_deleted_token_secret_keeps_the_connectors_and_degrades_the_tunnel() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let running = |reason: &str, message: &str| {
        json!({
            "observedGeneration": 1,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": conditions(
                ("False", reason, message),
                ("False", "Blocked", &format!("not applying the spec: {reason}")),
                ("True", reason, &format!("the connectors keep running the last applied spec and token: {message}")),
            ),
        })
    };
    let script = vec![
        get(TOKEN_SECRET_PATH, not_found("secrets", "home-tunnel-token")),
        // No write to any child, and above all no DELETE: the operator's copy stays.
        apply_status(running(
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        )),
        event(
            "Warning",
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        ),
    ];
    reconcile_against(
        tunnel_in_steady_state(&children),
        &Caches::holding(&children),
        script,
    )
    .await
    .expect("reconciles");
}

#[tokio::test]
async fn a_spec_that_becomes_invalid_leaves_the_running_connector_alone() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut t = tunnel_in_steady_state(&children);
    t.spec.ingress[0].hostname = Some("app.example.com:443".into());
    t.metadata.generation = Some(2);
    let message = "spec.ingress[0].hostname: \"app.example.com:443\" must not include a port";
    let c = |ty: &str, status: &str, reason: &str, msg: &str| json!({ "type": ty, "status": status, "reason": reason, "message": msg, "observedGeneration": 2 });
    let script = vec![
        token_lookup(&token),
        apply_status(json!({
            "observedGeneration": 2,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": [
                c("Ready", "False", "InvalidSpec", message),
                c("Progressing", "False", "Blocked", "not applying the spec: InvalidSpec"),
                c("Degraded", "True", "InvalidSpec", &format!("the connectors keep running the last applied spec and token: {message}")),
            ],
        })),
        event("Warning", "InvalidSpec", message),
    ];
    let action = reconcile_against(t, &Caches::holding(&children), script)
        .await
        .expect("reconciles");
    assert_eq!(
        action,
        Action::await_change(),
        "no retry loop: the next edit brings it back"
    );
}

fn api_error(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        StatusCode::from_u16(code).expect("status code"),
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code }),
    )
}

#[tokio::test]
async fn api_faults_back_off_and_the_tunnel_converges_without_deleting_anything() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let pdb = children.pod_disruption_budget.clone().expect("pdb");
    let mut cluster = MockCluster::new(&Caches::empty());
    let t = tunnel();
    let mut delays = Vec::new();

    // 1. The API server is down.
    let err = cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                api_error(500, "InternalError", "etcd unavailable"),
            )],
        )
        .await
        .expect_err("500");
    delays.push(cluster.error_policy(&t, &err));

    // 2. It comes back, then answers 503 to the first write.
    let err = cluster
        .reconcile(
            t.clone(),
            joined(vec![
                vec![token_lookup(&token)],
                child_lookups(&children, 0),
                vec![Exchange {
                    reply: api_error(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    ),
                    ..apply(
                        &path(ChildKind::NetworkPolicy),
                        to_json(&children.network_policy),
                    )
                }],
            ]),
        )
        .await
        .expect_err("503");
    delays.push(cluster.error_policy(&t, &err));

    // 3. The policy and Secret land; the connection drops on the ConfigMap.
    let err = cluster
        .reconcile(
            t.clone(),
            joined(vec![
                vec![token_lookup(&token)],
                child_lookups(&children, 0),
                vec![
                    apply(
                        &path(ChildKind::NetworkPolicy),
                        to_json(&children.network_policy),
                    ),
                    apply(&path(ChildKind::Secret), to_json(&children.secret)),
                    Exchange {
                        reply: Reply::Cut,
                        ..apply(&path(ChildKind::ConfigMap), to_json(&children.config_map))
                    },
                ],
            ]),
        )
        .await
        .expect_err("connection reset");
    delays.push(cluster.error_policy(&t, &err));

    // 4. Everything applies, but the status write meets a conflict.
    let status_after = first_status(&children);
    // What earlier attempts stored is found, and not written again.
    let mut script = joined(vec![
        vec![token_lookup(&token)],
        child_lookups(&children, 2),
    ]);
    script.extend([
        apply(&path(ChildKind::ConfigMap), to_json(&children.config_map)),
        apply(
            &path(ChildKind::ServiceAccount),
            to_json(&children.service_account),
        ),
        apply(&path(ChildKind::Deployment), to_json(&children.deployment)),
        apply(&path(ChildKind::PodDisruptionBudget), to_json(&pdb)),
        Exchange {
            reply: api_error(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified",
            ),
            ..apply_status(status_after.clone())
        },
    ]);
    let err = cluster.reconcile(t.clone(), script).await.expect_err("409");
    delays.push(cluster.error_policy(&t, &err));

    // 5. It converges: every child found as stored, the status written, the event sent.
    let script = joined(vec![
        vec![token_lookup(&token)],
        child_lookups(&children, 6),
        vec![
            apply_status(status_after),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    let action = cluster
        .reconcile(t.clone(), script)
        .await
        .expect("converges");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));

    let backoff = |s| Action::requeue(Duration::from_secs(s));
    assert_eq!(
        delays,
        [backoff(5), backoff(10), backoff(20), backoff(40)],
        "exponential backoff across consecutive failures"
    );

    // Success resets the backoff.
    let err = cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                api_error(500, "InternalError", "again"),
            )],
        )
        .await
        .expect_err("500");
    assert_eq!(
        cluster.error_policy(&t, &err),
        Action::requeue(Duration::from_secs(5))
    );
    // The script never allowed a DELETE: `finish` fails on any unscripted request.
    cluster.finish().await;
}

#[tokio::test]
async fn a_throttled_request_waits_at_least_as_long_as_the_server_asks() {
    let throttled = Reply::Json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too many requests", "reason": "TooManyRequests", "code": 429,
                "details": { "retryAfterSeconds": 60 } }),
    );
    let mut cluster = MockCluster::new(&Caches::empty());
    let t = tunnel();
    let err = cluster
        .reconcile(t.clone(), vec![get(TOKEN_SECRET_PATH, throttled)])
        .await
        .expect_err("429");
    assert_eq!(
        cluster.error_policy(&t, &err),
        Action::requeue(Duration::from_secs(60))
    );
    cluster.finish().await;
}

std::thread_local! {
    /// Where this thread's log output goes while a test captures it.
    static CAPTURE: std::cell::RefCell<Option<Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// A `Write` into the current thread's capture buffer, if any.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buffer) = c.borrow().as_ref() {
                if let Ok(mut b) = buffer.lock() {
                    b.extend_from_slice(buf);
                }
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line (all levels, all crates) emitted on this thread
/// until the returned buffer is taken. The subscriber is global and at
/// trace level, so no callsite's cached interest can hide a line (a
/// thread-scoped subscriber proved flaky beside parallel tests).
fn capture_logs_on_this_thread() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadCapture)
            .with_ansi(false)
            .try_init();
    });
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    CAPTURE.with(|c| *c.borrow_mut() = Some(buffer.clone()));
    buffer
}

/// Every log line (at trace level, ours and the client libraries'), every
/// Event, the status and every request other than the Secret child's apply:
/// none may contain the token or any piece of it.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_reaches_logs_events_or_the_status() {
    let secret_part = "bGVhay1jYW5hcnktc2VjcmV0"; // base64 of "leak-canary-secret"
    let token = token_string(secret_part);
    let secret_child_encoding = base64::engine::general_purpose::STANDARD.encode(&token);
    let needles = [
        token.as_str(),
        secret_part,
        "leak-canary-secret",
        secret_child_encoding.as_str(),
    ];

    // The runtime is current-thread: every task of the reconcile logs on this thread.
    let captured = capture_logs_on_this_thread();

    let children = children_for(&tunnel(), &token);
    let pdb = children.pod_disruption_budget.clone().expect("pdb");
    let mut cluster = MockCluster::new(&Caches::empty());
    let script = joined(vec![
        vec![token_lookup(&token)],
        child_lookups(&children, 0),
        vec![
            apply(
                &path(ChildKind::NetworkPolicy),
                to_json(&children.network_policy),
            ),
            apply(&path(ChildKind::Secret), to_json(&children.secret)),
            // The Secret apply fails once, so error paths are logged too.
            Exchange {
                reply: api_error(500, "InternalError", "boom"),
                ..apply(&path(ChildKind::ConfigMap), to_json(&children.config_map))
            },
        ],
    ]);
    let t = tunnel();
    let err = cluster.reconcile(t.clone(), script).await.expect_err("500");
    tracing::error!(error = %err, debug = ?err, "as the controller logs it");
    cluster.error_policy(&t, &err);

    let script = joined(vec![
        vec![token_lookup(&token)],
        child_lookups(&children, 2),
        vec![
            apply(&path(ChildKind::ConfigMap), to_json(&children.config_map)),
            apply(
                &path(ChildKind::ServiceAccount),
                to_json(&children.service_account),
            ),
            apply(&path(ChildKind::Deployment), to_json(&children.deployment)),
            apply(&path(ChildKind::PodDisruptionBudget), to_json(&pdb)),
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    cluster.reconcile(t, script).await.expect("converges");
    let sent = cluster.sent.lock().map(|s| s.clone()).unwrap_or_default();
    cluster.finish().await;
    CAPTURE.with(|c| c.borrow_mut().take());

    let logs = String::from_utf8_lossy(&captured.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture saw the detailed levels:\n{logs}"
    );
    assert!(
        logs.contains("applied"),
        "the capture saw the reconciler's own lines"
    );
    for needle in needles {
        assert!(
            !logs.contains(needle),
            "the token leaked into the logs ({needle}):\n{logs}"
        );
    }
    let mut checked = 0;
    for (request, body) in &sent {
        if request.contains("/secrets/home-cloudflared")
            && request.starts_with("request")
            && request.contains("PATCH")
        {
            continue; // the one place the token belongs
        }
        for needle in needles {
            assert!(!body.contains(needle), "the token leaked into {request}");
        }
        checked += 1;
    }
    assert!(
        sent.iter().any(|(r, _)| r.contains("/events")),
        "an Event was checked"
    );
    assert!(
        sent.iter().any(|(r, _)| r.contains("/status")),
        "the status was checked"
    );
    assert!(checked >= 20, "checked {checked} requests");
}

#[tokio::test]
async fn an_unchanged_token_secret_is_not_read_again() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut secret = user_secret(&token);
    secret.metadata.resource_version = Some("5".into());
    let metadata = |rv: &str| kube::core::PartialObjectMeta::<Secret> {
        metadata: kube::api::ObjectMeta {
            name: Some("home-tunnel-token".into()),
            namespace: Some("apps".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut caches = Caches::holding(&children);
    caches
        .token_secrets
        .apply_watcher_event(&watcher::Event::Apply(metadata("5")));
    let mut cluster = MockCluster::new(&caches);
    let t = tunnel_in_steady_state(&children);

    // First reconcile: the token is read once.
    cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            )],
        )
        .await
        .expect("reconciles");
    // Same resourceVersion: a resync sends nothing at all.
    cluster
        .reconcile(t.clone(), vec![])
        .await
        .expect("reconciles");
    // The Secret changed: read again.
    caches
        .token_secrets
        .apply_watcher_event(&watcher::Event::Apply(metadata("6")));
    secret.metadata.resource_version = Some("6".into());
    cluster
        .reconcile(
            t,
            vec![get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            )],
        )
        .await
        .expect("reconciles");
    cluster.finish().await;
}
