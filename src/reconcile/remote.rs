//! Observe: the configuration version a connector runs, from its metrics port's `/config`.
//! A locally-managed tunnel runs version -1 (the local file); Cloudflare's dashboard pushes
//! versions from 0 up, and a pushed configuration replaces the whole local ingress
//! (cloudflared's `orchestration/orchestrator.go`, `UpdateConfig`). No flag prevents it,
//! so the operator looks, and says so.
//!
//! It runs beside the reconciler, not in it: every [`TICK`], each Ready tunnel not asked
//! for an interval is asked, one at a time with a pause between, and a tunnel whose
//! answer changed is reconciled, which reads the answer from here without any I/O.
//!
//! Least privilege: one namespaced, label-selected list of the tunnel's pods (no watch),
//! one GET of one ready pod that is not being deleted, at most once per tunnel per interval ([`CHECK_INTERVAL`] by
//! default).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use tracing::debug;

use crate::api::{conditions, SecureTunnel};
use crate::names::{selector_labels, METRICS_PORT};
use crate::{Error, Result};

/// How often one tunnel's connector is asked, unless told otherwise.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How often the observer looks for tunnels due, at most.
pub const TICK: Duration = Duration::from_secs(30);
/// The pause between two tunnels: at most 10 tunnels asked per second.
const PAUSE: Duration = Duration::from_millis(100);
/// How long the connector has to answer.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The largest `/config` answer read.
const MAX_BODY: usize = 1 << 20;

/// A tunnel, by (namespace, name).
type TunnelKey = (String, String);
/// When a tunnel's connector was last asked, and its answer.
type Answer = (Instant, Option<i64>);

/// The last answer per tunnel, and when it was asked.
pub struct RemoteConfigChecks {
    /// The port `/config` is served on (the metrics port; tests point it elsewhere).
    pub port: u16,
    /// How often one tunnel's connector is asked.
    pub interval: Duration,
    last: Mutex<HashMap<TunnelKey, Answer>>,
}

impl Default for RemoteConfigChecks {
    fn default() -> Self {
        RemoteConfigChecks {
            port: METRICS_PORT,
            interval: CHECK_INTERVAL,
            last: Mutex::default(),
        }
    }
}

#[derive(Deserialize)]
struct VersionedConfig {
    version: i64,
}

impl RemoteConfigChecks {
    /// Asks each tunnel's connector every `interval`.
    pub fn every(interval: Duration) -> Self {
        RemoteConfigChecks {
            interval,
            ..Default::default()
        }
    }

    /// Asks connectors on `port` instead of the metrics port (a stand-in in tests).
    pub fn on_port(port: u16) -> Self {
        RemoteConfigChecks {
            port,
            ..Default::default()
        }
    }

    /// The version a connector of the tunnel last reported, if one has.
    pub fn known(&self, namespace: &str, name: &str) -> Option<i64> {
        let last = self.last.lock().ok()?;
        last.get(&(namespace.to_string(), name.to_string()))
            .and_then(|(_, version)| *version)
    }

    /// Asks one connector of the tunnel now; returns whether the answer changed.
    pub async fn check(&self, client: &Client, namespace: &str, name: &str) -> bool {
        let version = match self.ready_pod_ip(client, namespace, name).await {
            Ok(Some(ip)) => ask(&ip, self.port).await,
            Ok(None) => None,
            Err(e) => {
                debug!(%namespace, %name, error = %e, "connector pods not listed");
                None
            }
        };
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let key = (namespace.to_string(), name.to_string());
        let changed = last.get(&key).map(|(_, v)| *v) != Some(version);
        last.insert(key, (Instant::now(), version));
        changed
    }

    /// Whether the tunnel is due for a check.
    fn due(&self, namespace: &str, name: &str) -> bool {
        self.last.lock().is_ok_and(|last| {
            last.get(&(namespace.to_string(), name.to_string()))
                .is_none_or(|(at, _)| at.elapsed() >= self.interval)
        })
    }

    /// Asks every Ready tunnel's connector in turn, forever; a tunnel whose answer changed
    /// is sent to `changed` (the controller reconciles it).
    pub async fn observe(
        &self,
        client: Client,
        tunnels: Store<SecureTunnel>,
        changed: UnboundedSender<ObjectRef<SecureTunnel>>,
    ) {
        loop {
            tokio::time::sleep(TICK.min(self.interval)).await;
            let state = tunnels.state();
            // Deleted tunnels are forgotten.
            if let Ok(mut last) = self.last.lock() {
                let present: std::collections::HashSet<TunnelKey> = state
                    .iter()
                    .map(|t| (t.namespace().unwrap_or_default(), t.name_any()))
                    .collect();
                last.retain(|key, _| present.contains(key));
            }
            for tunnel in state {
                let ready = tunnel.status.as_ref().is_some_and(|s| {
                    conditions::find(&s.conditions, conditions::READY)
                        .is_some_and(|c| c.status == conditions::TRUE)
                });
                let (Some(namespace), name) = (tunnel.namespace(), tunnel.name_any()) else {
                    continue;
                };
                if !ready || !self.due(&namespace, &name) {
                    continue;
                }
                if self.check(&client, &namespace, &name).await {
                    let _ = changed.unbounded_send(ObjectRef::from_obj(tunnel.as_ref()));
                }
                tokio::time::sleep(PAUSE).await;
            }
        }
    }

    async fn ready_pod_ip(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>> {
        let selector = selector_labels(name)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&selector).limit(20))
            .await
            .map_err(|source| Error::Dereference {
                object: format!("Pods {namespace}/{selector}"),
                source,
            })?;
        // A terminating connector may still be Ready while it drains: the one asked is one
        // that stays.
        Ok(pods.items.into_iter().find_map(|pod| {
            if pod.metadata.deletion_timestamp.is_some() {
                return None;
            }
            let status = pod.status?;
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(status.pod_ip).flatten()
        }))
    }
}

/// GET http://ip:port/config and its `version`; `None` on any failure (logged).
async fn ask(ip: &str, port: u16) -> Option<i64> {
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    match tokio::time::timeout(TIMEOUT, get_config(&host, port)).await {
        Ok(Ok(version)) => Some(version),
        Ok(Err(e)) => {
            debug!(%host, error = %e, "connector /config not read");
            None
        }
        Err(_) => {
            debug!(%host, "connector /config timed out");
            None
        }
    }
}

async fn get_config(host: &str, port: u16) -> std::result::Result<i64, String> {
    let stream = tokio::net::TcpStream::connect(format!("{host}:{port}"))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/config")
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice::<VersionedConfig>(&body)
        .map(|c| c.version)
        .map_err(|e| e.to_string())
}
