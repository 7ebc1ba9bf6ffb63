//! An in-process stand-in for the Kubernetes API server, enough for the
//! operator: list (with label and field selectors), watch (with replay from
//! a resourceVersion), get, create, replace, apply, status apply and delete,
//! for the kinds it touches. Every request is counted by verb and resource,
//! and may be delayed to model a real API server's latency. Deployments
//! become ready as soon as they are written (there are no pods here). Writes
//! record `managedFields` like an API server: an `Update` entry for a create, an
//! `Apply` entry for a server-side apply; JSON patches (of those entries) apply.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command};
use std::time::Instant;

use base64::Engine;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// (resource plural, namespace, name)
type Key = (String, String, String);

#[derive(Clone, Debug)]
pub struct WatchEvent {
    rv: u64,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Arc<Value>,
}

#[derive(Default)]
struct Data {
    /// In key order, so that a list page starts where the last one ended (as etcd does).
    objects: BTreeMap<Key, Arc<Value>>,
    log: Vec<WatchEvent>,
    /// SecureTunnels with `Ready=True`, kept on each write: polling it must not scan
    /// every object under the lock the request handlers need.
    ready_tunnels: usize,
}

fn is_ready(tunnel: &Value) -> bool {
    tunnel["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

pub struct FakeApi {
    data: Mutex<Data>,
    rv: AtomicU64,
    events: broadcast::Sender<WatchEvent>,
    counts: Mutex<BTreeMap<(String, String), u64>>,
    pub delay: Duration,
    uid: AtomicU64,
    /// Refuse (403) requests across all namespaces, as RBAC does for an
    /// operator granted Roles in some namespaces only.
    namespaced_only: std::sync::atomic::AtomicBool,
    /// The server's accept loop, while it serves (see [`FakeApi::shutdown`]).
    server: Mutex<Option<tokio::task::AbortHandle>>,
}

/// One `managedFields` entry: `manager` set the fields of `obj` by `operation`.
fn managed_entry(manager: &str, operation: &str, obj: &Value) -> Value {
    json!({
        "manager": manager, "operation": operation, "apiVersion": obj["apiVersion"],
        "time": "2026-11-25T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": securetunnel_operator::managed_fields::fieldset(obj),
    })
}

/// No pods here: a Deployment's rollout completes the moment it is written.
fn roll_out(plural: &str, obj: &mut Value) {
    if plural == "deployments" {
        let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        obj["status"] = json!({
            "observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
            "readyReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas,
            "conditions": [ { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" },
                            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" } ]
        });
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn label_selector_matches(selector: &str, obj: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        // `k!=v`: the label is absent or has another value, as the API server has it.
        if let Some((k, v)) = term.split_once("!=") {
            return obj["metadata"]["labels"][k].as_str() != Some(v);
        }
        match term.split_once('=') {
            Some((k, v)) => {
                obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
            }
            None => obj["metadata"]["labels"].get(term).is_some(),
        }
    })
}

fn field_selector_matches(selector: &str, obj: &Value) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some(("metadata.name", v)) => {
                obj["metadata"]["name"].as_str() == Some(v.trim_start_matches('='))
            }
            Some(("metadata.namespace", v)) => {
                obj["metadata"]["namespace"].as_str() == Some(v.trim_start_matches('='))
            }
            _ => true,
        })
}

fn decode(s: &str) -> String {
    let mut out = String::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b as char);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' {
            ' '
        } else {
            bytes[i] as char
        });
        i += 1;
    }
    out
}

struct Request {
    plural: String,
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
    query: HashMap<String, String>,
    api_version: String,
}

fn parse(uri: &Uri) -> Option<Request> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        other => (String::new(), other),
    };
    let (plural, name, subresource) = match rest {
        [p] => (p.to_string(), None, None),
        [p, n] => (p.to_string(), Some(n.to_string()), None),
        [p, n, s] => (p.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let query = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), decode(v))))
        .collect();
    Some(Request {
        plural,
        namespace,
        name,
        subresource,
        query,
        api_version,
    })
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "securetunnels" => "SecureTunnel",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "serviceaccounts" => "ServiceAccount",
        "services" => "Service",
        "deployments" => "Deployment",
        "networkpolicies" => "NetworkPolicy",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "events" => "Event",
        "leases" => "Lease",
        "customresourcedefinitions" => "CustomResourceDefinition",
        _ => "Unknown",
    }
}

fn metadata_only(obj: &Value) -> Value {
    json!({ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"] })
}

impl FakeApi {
    pub fn new(delay: Duration) -> Arc<Self> {
        let (events, _) = broadcast::channel(1 << 16);
        Arc::new(FakeApi {
            data: Mutex::new(Data::default()),
            rv: AtomicU64::new(1),
            events,
            counts: Mutex::new(BTreeMap::new()),
            delay,
            uid: AtomicU64::new(1),
            namespaced_only: std::sync::atomic::AtomicBool::new(false),
            server: Mutex::new(None),
        })
    }

    fn count(&self, verb: &str, plural: &str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((verb.to_string(), plural.to_string())).or_default() += 1;
        }
    }

    /// From now on, refuse requests that span all namespaces (but the cluster-scoped CRDs).
    pub fn refuse_cluster_wide(&self) {
        self.namespaced_only.store(true, Ordering::SeqCst);
    }

    /// Requests so far by (verb, resource).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset_counts(&self) {
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
    }

    /// Stores an object as a client would create it (used to load the scenario).
    pub fn put(&self, plural: &str, mut obj: Value) {
        let namespace = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.stamp_new(&mut obj);
        self.store(plural, &namespace, &name, obj, "ADDED");
    }

    /// Changes an object's metadata only (an annotation), as `kubectl annotate` would: a
    /// watch event, a new resourceVersion, the same generation.
    pub fn touch(&self, plural: &str, namespace: &str, name: &str, value: &str) {
        let Some(current) = self.get(plural, namespace, name) else {
            return;
        };
        let mut obj = (*current).clone();
        obj["metadata"]["annotations"]["bench.securetunnel.dev/touched"] = json!(value);
        self.store(plural, namespace, name, obj, "MODIFIED");
    }

    fn stamp_new(&self, obj: &mut Value) {
        let uid = self.uid.fetch_add(1, Ordering::SeqCst);
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{uid:012}"));
        obj["metadata"]["creationTimestamp"] = json!("2026-11-25T00:00:00Z");
        if obj["metadata"].get("generation").is_none() {
            obj["metadata"]["generation"] = json!(1);
        }
    }

    fn store(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        mut obj: Value,
        kind: &'static str,
    ) -> Arc<Value> {
        let mut data = self.data.lock().expect("data lock");
        let rv = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(obj);
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        let previous = if kind == "DELETED" {
            data.objects.remove(&key)
        } else {
            data.objects.insert(key, obj.clone())
        };
        if plural == "securetunnels" {
            let was = previous.is_some_and(|p| is_ready(&p));
            let is = kind != "DELETED" && is_ready(&obj);
            data.ready_tunnels = data.ready_tunnels + usize::from(is) - usize::from(was);
        }
        let event = WatchEvent {
            rv,
            plural: plural.to_string(),
            namespace: namespace.to_string(),
            kind,
            object: obj.clone(),
        };
        data.log.push(event.clone());
        let _ = self.events.send(event);
        obj
    }

    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let data = self.data.lock().ok()?;
        data.objects
            .get(&(plural.to_string(), namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn all(&self, plural: &str) -> Vec<Arc<Value>> {
        let data = self.data.lock().expect("data lock");
        data.objects
            .iter()
            .filter(|((p, _, _), _)| p == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn handle(
        self: Arc<Self>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let Some(req) = parse(&uri) else {
            return status(404, "NotFound", "unknown path");
        };
        let watch = req
            .query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1");
        let verb = match (&method, req.name.is_some(), watch) {
            (&Method::GET, true, _) => "get",
            (&Method::GET, false, true) => "watch",
            (&Method::GET, false, false) => "list",
            (&Method::POST, _, _) => "create",
            (&Method::PUT, _, _) => "update",
            (&Method::PATCH, _, _) => "patch",
            (&Method::DELETE, _, _) => "delete",
            _ => "other",
        };
        let counted = match &req.subresource {
            Some(sub) => format!("{}/{sub}", req.plural),
            None => req.plural.clone(),
        };
        self.count(verb, &counted);
        if self.namespaced_only.load(Ordering::SeqCst)
            && req.namespace.is_empty()
            && req.plural != "customresourcedefinitions"
        {
            self.count("forbidden", &counted);
            return status(403, "Forbidden", "cluster-wide access is not granted");
        }
        if !watch && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let meta_only = headers
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
        match verb {
            "list" => self.list(&req, meta_only),
            "watch" => self.watch(&req, meta_only),
            "get" => match self.get(
                &req.plural,
                &req.namespace,
                req.name.as_deref().unwrap_or(""),
            ) {
                Some(obj) => axum::Json(obj.as_ref()).into_response(),
                None => status(404, "NotFound", "not found"),
            },
            "create" => self.create(&req, &body),
            "update" => self.replace(&req, &body),
            "patch" => self.patch(&req, &headers, &body),
            "delete" => {
                let name = req.name.clone().unwrap_or_default();
                match self.get(&req.plural, &req.namespace, &name) {
                    Some(obj) => {
                        self.store(
                            &req.plural,
                            &req.namespace,
                            &name,
                            obj.as_ref().clone(),
                            "DELETED",
                        );
                        axum::Json(json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" })).into_response()
                    }
                    None => status(404, "NotFound", "not found"),
                }
            }
            _ => status(405, "MethodNotAllowed", "unsupported"),
        }
    }

    fn matches(req: &Request, plural: &str, namespace: &str, obj: &Value) -> bool {
        plural == req.plural
            && (req.namespace.is_empty() || req.namespace == namespace)
            && req
                .query
                .get("labelSelector")
                .is_none_or(|s| label_selector_matches(s, obj))
            && req
                .query
                .get("fieldSelector")
                .is_none_or(|s| field_selector_matches(s, obj))
    }

    /// Lists in pages of `limit` (as the watcher asks), with `continue` tokens: the
    /// namespace and name of the page's last object, after which the next page starts.
    fn list(&self, req: &Request, meta_only: bool) -> Response {
        use std::ops::Bound;
        let data = self.data.lock().expect("data lock");
        let from = match req.query.get("continue").and_then(|c| c.split_once('/')) {
            Some((ns, name)) => {
                Bound::Excluded((req.plural.clone(), ns.to_string(), name.to_string()))
            }
            None => Bound::Included((req.plural.clone(), String::new(), String::new())),
        };
        let limit: usize = req
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let mut page: Vec<(&Key, &Arc<Value>)> = Vec::new();
        let mut more = false;
        for (key, obj) in data.objects.range((from, Bound::Unbounded)) {
            let (p, ns, _) = key;
            if *p != req.plural {
                break;
            }
            if !Self::matches(req, p, ns, obj) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push((key, obj));
        }
        let next = page
            .last()
            .filter(|_| more)
            .map(|((_, ns, name), _)| format!("{ns}/{name}"));
        let items: Vec<Value> = page
            .iter()
            .map(|(_, obj)| {
                if meta_only {
                    metadata_only(obj)
                } else {
                    // Like a real API server: items of a list carry no apiVersion and kind.
                    let mut item = obj.as_ref().clone();
                    if let Some(fields) = item.as_object_mut() {
                        fields.remove("apiVersion");
                        fields.remove("kind");
                    }
                    item
                }
            })
            .collect();
        let rv = self.rv.load(Ordering::SeqCst);
        let kind = if meta_only {
            "PartialObjectMetadataList".to_string()
        } else {
            format!("{}List", kind_of(&req.plural))
        };
        let api_version = if meta_only {
            "meta.k8s.io/v1".to_string()
        } else {
            req.api_version.clone()
        };
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if let Some(next) = next {
            metadata["continue"] = json!(next);
        }
        axum::Json(json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items })).into_response()
    }

    fn watch(self: &Arc<Self>, req: &Request, meta_only: bool) -> Response {
        let since: u64 = req
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rx = self.events.subscribe();
        let replay: Vec<WatchEvent> = {
            let data = self.data.lock().expect("data lock");
            data.log.iter().filter(|e| e.rv > since).cloned().collect()
        };
        let filter = Request {
            plural: req.plural.clone(),
            namespace: req.namespace.clone(),
            name: None,
            subresource: None,
            query: req.query.clone(),
            api_version: req.api_version.clone(),
        };
        let timeout = req
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290u64);
        let last_replayed = replay.last().map_or(since, |e| e.rv);
        let line = move |e: &WatchEvent| -> Option<Bytes> {
            if !Self::matches(&filter, &e.plural, &e.namespace, &e.object) {
                return None;
            }
            let meta;
            let object = if meta_only {
                meta = metadata_only(&e.object);
                &meta
            } else {
                e.object.as_ref()
            };
            let mut text = serde_json::to_vec(&WatchLine {
                kind: e.kind,
                object,
            })
            .ok()?;
            text.push(b'\n');
            Some(Bytes::from(text))
        };
        let replayed: Vec<Bytes> = replay.iter().filter_map(&line).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let live = futures::stream::unfold((rx, line), move |(mut rx, line)| async move {
            loop {
                let next = tokio::time::timeout_at(deadline, rx.recv()).await;
                match next {
                    Ok(Ok(e)) if e.rv > last_replayed => {
                        if let Some(bytes) = line(&e) {
                            return Some((Ok::<Bytes, Infallible>(bytes), (rx, line)));
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                    _ => return None,
                }
            }
        });
        let stream = futures::StreamExt::chain(
            futures::stream::iter(replayed.into_iter().map(Ok::<Bytes, Infallible>)),
            live,
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| status(500, "InternalError", "stream"))
    }

    fn create(&self, req: &Request, body: &Bytes) -> Response {
        let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
            return status(400, "BadRequest", "not JSON");
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if self.get(&req.plural, &req.namespace, &name).is_some() {
            return status(409, "AlreadyExists", "already exists");
        }
        obj["metadata"]["namespace"] = json!(req.namespace);
        if let Some(manager) = req.query.get("fieldManager") {
            obj["metadata"]["managedFields"] = json!([managed_entry(manager, "Update", &obj)]);
        }
        self.stamp_new(&mut obj);
        roll_out(&req.plural, &mut obj);
        let stored = self.store(&req.plural, &req.namespace, &name, obj, "ADDED");
        (StatusCode::CREATED, axum::Json(stored.as_ref())).into_response()
    }

    fn replace(&self, req: &Request, body: &Bytes) -> Response {
        let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
            return status(400, "BadRequest", "not JSON");
        };
        let name = req.name.clone().unwrap_or_default();
        let Some(current) = self.get(&req.plural, &req.namespace, &name) else {
            return status(404, "NotFound", "not found");
        };
        if obj["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
            return status(409, "Conflict", "the object has been modified");
        }
        obj["metadata"]["uid"] = current["metadata"]["uid"].clone();
        let stored = self.store(&req.plural, &req.namespace, &name, obj, "MODIFIED");
        axum::Json(stored.as_ref()).into_response()
    }

    fn patch(&self, req: &Request, headers: &HeaderMap, body: &Bytes) -> Response {
        let Ok(patch) = serde_json::from_slice::<Value>(body) else {
            return status(400, "BadRequest", "not JSON");
        };
        let name = req.name.clone().unwrap_or_default();
        let apply = headers
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.contains("apply-patch"));
        let current = self.get(&req.plural, &req.namespace, &name);
        if req.subresource.as_deref() == Some("status") {
            let Some(current) = current else {
                return status(404, "NotFound", "not found");
            };
            let mut obj = current.as_ref().clone();
            obj["status"] = patch["status"].clone();
            let stored = self.store(&req.plural, &req.namespace, &name, obj, "MODIFIED");
            return axum::Json(stored.as_ref()).into_response();
        }
        let json_patch = headers
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.contains("json-patch"));
        if json_patch {
            let Some(current) = current else {
                return status(404, "NotFound", "not found");
            };
            let Ok(ops) = serde_json::from_value::<json_patch::Patch>(patch) else {
                return status(400, "BadRequest", "not a JSON patch");
            };
            let mut obj = current.as_ref().clone();
            if json_patch::patch(&mut obj, &ops).is_err() {
                return status(422, "Invalid", "the JSON patch does not apply");
            }
            let stored = self.store(&req.plural, &req.namespace, &name, obj, "MODIFIED");
            return axum::Json(stored.as_ref()).into_response();
        }
        if !apply {
            // Merge patches (Event series): accepted as they are.
            return match current {
                Some(c) => axum::Json(c.as_ref()).into_response(),
                None => status(404, "NotFound", "not found"),
            };
        }
        // Server-side apply: the applied fields replace ours; server fields stay.
        let mut obj = patch.clone();
        obj["metadata"]["namespace"] = json!(req.namespace);
        let manager = req.query.get("fieldManager").cloned().unwrap_or_default();
        // managedFields as an API server keeps them: the other entries stay, this
        // manager's apply entry is the applied object's field set.
        let mut entries: Vec<Value> = current
            .as_ref()
            .and_then(|c| c["metadata"]["managedFields"].as_array().cloned())
            .unwrap_or_default();
        entries.retain(|e| !(e["manager"] == json!(manager) && e["operation"] == "Apply"));
        entries.push(managed_entry(&manager, "Apply", &patch));
        obj["metadata"]["managedFields"] = json!(entries);
        let kind = match &current {
            Some(c) => {
                obj["metadata"]["uid"] = c["metadata"]["uid"].clone();
                obj["metadata"]["creationTimestamp"] = c["metadata"]["creationTimestamp"].clone();
                let generation = c["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = c.get("spec") != obj.get("spec");
                obj["metadata"]["generation"] =
                    json!(if changed { generation + 1 } else { generation });
                if let Some(s) = c.get("status") {
                    obj["status"] = s.clone();
                }
                "MODIFIED"
            }
            None => {
                self.stamp_new(&mut obj);
                "ADDED"
            }
        };
        roll_out(&req.plural, &mut obj);
        let stored = self.store(&req.plural, &req.namespace, &name, obj, kind);
        axum::Json(stored.as_ref()).into_response()
    }

    /// Serves on 127.0.0.1 (an ephemeral port); returns the address.
    pub async fn serve(self: Arc<Self>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(
            |State(api): State<Arc<FakeApi>>,
             method: Method,
             uri: Uri,
             headers: HeaderMap,
             body: Bytes| async move { api.handle(method, uri, headers, body).await },
        );
        let app = app.with_state(self.clone());
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        if let Ok(mut server) = self.server.lock() {
            *server = Some(task.abort_handle());
        }
        addr
    }

    /// Stops accepting connections; the stand-in (its objects and its event log) is freed
    /// once its clients have gone too. A benchmark run ends with it, so that the next run
    /// does not share the process with the last one's stand-in.
    pub fn shutdown(&self) {
        if let Some(server) = self.server.lock().ok().and_then(|mut s| s.take()) {
            server.abort();
        }
    }
}

// ---- The scenario and the process around it, shared by the benchmark and tests/stand_in.rs.

pub const NAMESPACES: usize = 10;
pub const SERVICES_PER_NAMESPACE: usize = 8;

pub fn token(i: usize) -> String {
    let json = format!(
        r#"{{"a":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","t":"6ff42ae2-765d-4adf-8112-{i:012}","s":"c2VjcmV0LXtpfQ=="}}"#
    );
    base64::engine::general_purpose::STANDARD.encode(json)
}

pub fn load(api: &FakeApi, n: usize) {
    api.put(
        "customresourcedefinitions",
        json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": { "name": "securetunnels.securetunnel.dev" },
                "spec": {}, "status": { "conditions": [
                    { "type": "NamesAccepted", "status": "True" }, { "type": "Established", "status": "True" } ] } }),
    );
    for ns in 0..NAMESPACES {
        for s in 0..SERVICES_PER_NAMESPACE {
            api.put(
                "services",
                json!({ "apiVersion": "v1", "kind": "Service",
                        "metadata": { "name": format!("web-{s}"), "namespace": format!("ns-{ns}") },
                        "spec": { "selector": { "app": format!("web-{s}") }, "ports": [ { "port": 8080, "targetPort": "http" } ] } }),
            );
        }
    }
    for i in 0..n {
        let ns = format!("ns-{}", i % NAMESPACES);
        let rules: Vec<Value> = (0..(i % 8 + 1))
            .map(|r| json!({ "hostname": format!("t{i}-r{r}.example.com"), "service": format!("http://web-{r}.{ns}.svc:8080") }))
            .collect();
        api.put(
            "secrets",
            json!({ "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": { "name": format!("tunnel-{i}-token"), "namespace": ns },
                    "data": { "token": base64::engine::general_purpose::STANDARD.encode(token(i)) } }),
        );
        api.put(
            "securetunnels",
            json!({ "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel",
                    "metadata": { "name": format!("tunnel-{i}"), "namespace": ns },
                    "spec": { "tokenSecretRef": { "name": format!("tunnel-{i}-token"), "key": "token" }, "ingress": rules } }),
        );
    }
}

/// One line of a watch response, serialized from the stored object without copying it.
#[derive(serde::Serialize)]
struct WatchLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// The SecureTunnels with `Ready=True`.
pub fn ready_count(api: &FakeApi) -> usize {
    api.data.lock().map(|d| d.ready_tunnels).unwrap_or(0)
}

/// A kubeconfig pointing at the stand-in (plain HTTP, no credentials).
pub fn write_kubeconfig(dir: &std::path::Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [ {{ name: fake, cluster: {{ server: 'http://{addr}' }} }} ]\n\
             users: [ {{ name: fake, user: {{}} }} ]\ncontexts: [ {{ name: fake, context: {{ cluster: fake, user: fake, namespace: default }} }} ]\n\
             current-context: fake\n"
        ),
    )
    .expect("kubeconfig");
    kubeconfig
}

/// Stops a process with SIGTERM (30 s grace, then SIGKILL).
pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if exited_within(&mut child, Duration::from_secs(30)) {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the process exits (and is reaped) within `grace`.
pub fn exited_within(child: &mut Child, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn by_verb(counts: &BTreeMap<(String, String), u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((verb, _), n) in counts {
        *out.entry(verb.clone()).or_default() += n;
    }
    out
}

pub fn writes(counts: &BTreeMap<(String, String), u64>) -> u64 {
    counts
        .iter()
        .filter(|((verb, _), _)| matches!(verb.as_str(), "create" | "update" | "patch" | "delete"))
        .map(|(_, n)| n)
        .sum()
}

/// Waits until no request has arrived for `quiet_for`.
pub async fn quiet(api: &FakeApi, quiet_for: Duration) {
    let total = |api: &FakeApi| api.counts().values().sum::<u64>();
    let mut last = total(api);
    let mut since = Instant::now();
    while since.elapsed() < quiet_for {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = total(api);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}
