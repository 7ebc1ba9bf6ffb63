//! The operator's own HTTP endpoints: `/healthz` (the process serves),
//! `/readyz` (the CRD is established and the controller can start) and
//! `/metrics` (Prometheus).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Readiness, flipped once start-up checks pass.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The router, separate from the listener so tests can call it in process.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, health })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    match state.metrics.render() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, router(metrics, health)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecureTunnel;
    use kube::runtime::controller::Action;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn tunnel(name: &str, ready: Option<&str>) -> SecureTunnel {
        let t = SecureTunnel::test().named("apps", name);
        match ready {
            Some(status) => t.with_ready(status),
            None => t,
        }
    }

    /// Scrapes a real listener and parses the exposition line by line.
    #[tokio::test]
    async fn endpoints_answer_and_metrics_parse() {
        let metrics = Arc::new(Metrics::new());
        let mut writer: Writer<SecureTunnel> = Writer::default();
        for t in [
            tunnel("a", Some("True")),
            tunnel("b", Some("True")),
            tunnel("c", Some("False")),
            tunnel("d", None),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(t));
        }
        metrics.watch_tunnels(writer.as_reader());
        metrics.observe(
            &Ok(Action::await_change()),
            std::time::Duration::from_millis(3),
        );
        metrics.observe(
            &Err(crate::Error::MissingObjectKey("x")),
            std::time::Duration::from_millis(30),
        );
        metrics.observe(
            &Err(crate::Error::CacheNotReady("Services")),
            std::time::Duration::from_millis(30),
        );

        let health = Arc::new(Health::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(metrics.clone(), health.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        assert_eq!(get_text(addr, "/healthz").await, (200, "ok".into()));
        assert_eq!(get_text(addr, "/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(get_text(addr, "/readyz").await.0, 200);

        let (status, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        let mut samples = std::collections::BTreeMap::new();
        for line in body.lines() {
            if line.starts_with('#') || line.is_empty() {
                assert!(
                    line.is_empty()
                        || line.starts_with("# HELP ")
                        || line.starts_with("# TYPE ")
                        || line == "# EOF",
                    "bad comment line {line:?}"
                );
                continue;
            }
            let (name, value) = line.rsplit_once(' ').expect("sample line: name value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}"));
            samples.insert(name.to_string(), value);
        }
        assert!(
            body.trim_end().ends_with("# EOF"),
            "OpenMetrics ends with # EOF"
        );
        assert_eq!(samples["securetunnel_reconciles_total"], 3.0);
        assert_eq!(
            samples["securetunnel_reconcile_failures_total{error=\"missing_object_key\"}"],
            1.0
        );
        assert_eq!(
            samples["securetunnel_reconcile_failures_total{error=\"cache_not_ready\"}"],
            1.0
        );
        assert_eq!(
            samples["securetunnel_reconcile_duration_seconds_count"],
            3.0
        );
        assert!((samples["securetunnel_reconcile_duration_seconds_sum"] - 0.063).abs() < 1e-9);
        assert_eq!(
            samples["securetunnel_reconcile_duration_seconds_bucket{le=\"0.004\"}"],
            1.0
        );
        assert_eq!(samples["securetunnel_tunnels{ready=\"True\"}"], 2.0);
        assert_eq!(samples["securetunnel_tunnels{ready=\"False\"}"], 1.0);
        assert_eq!(samples["securetunnel_tunnels{ready=\"Unknown\"}"], 1.0);
        server.abort();
    }
}
