//! A remotely-managed tunnel: the observer lists the tunnel's pods, asks a ready one (not
//! one being deleted) for its `/config` (a local HTTP server answers like a connector), and
//! the reconcile reports `Degraded=True, RemotelyManaged`.

use std::io::{Read, Write};
use std::net::TcpListener;

use super::*;
use crate::reconcile::remote::RemoteConfigChecks;

/// A stand-in for a connector's metrics port, answering `/config` with `version`.
fn connector_serving(version: i64) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).unwrap_or(0);
            let asked = String::from_utf8_lossy(&request[..n]).to_string();
            let (status, body) = if asked.starts_with("GET /config ") {
                (
                    "200 OK",
                    format!(
                        r#"{{"version":{version},"config":{{"ingress":[{{"service":"http_status:404"}}],"warp-routing":{{}},"originRequest":{{}}}}}}"#
                    ),
                )
            } else {
                ("404 Not Found", String::new())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn pod_list() -> Exchange {
    Exchange {
        method: Method::GET,
        path: "/api/v1/namespaces/apps/pods".into(),
        query: vec![
            (
                "labelSelector",
                "app.kubernetes.io%2Finstance%3Dhome%2Capp.kubernetes.io%2Fname%3Dcloudflared",
            ),
            ("limit", "20"),
        ],
        body: None,
        normalize: no_normalize,
        reply: Reply::Json(
            StatusCode::OK,
            json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                // Draining after its delete, still Ready: never asked (nothing answers there).
                { "metadata": { "name": "home-cloudflared-0", "namespace": "apps",
                                "deletionTimestamp": "2026-01-01T00:00:00Z" },
                  "status": { "podIP": "127.0.0.2", "conditions": [ { "type": "Ready", "status": "True" } ] } },
                { "metadata": { "name": "home-cloudflared-1", "namespace": "apps" },
                  "status": { "podIP": "10.0.0.9", "conditions": [ { "type": "Ready", "status": "False" } ] } },
                { "metadata": { "name": "home-cloudflared-2", "namespace": "apps" },
                  "status": { "podIP": "127.0.0.1", "conditions": [ { "type": "Ready", "status": "True" } ] } }
            ] }),
        ),
    }
}

async fn observed(cluster: &mut MockCluster, checks: &Arc<RemoteConfigChecks>) -> bool {
    let (client, observer) = (cluster.ctx.client.clone(), checks.clone());
    let check = tokio::spawn(async move { observer.check(&client, "apps", "home").await });
    answer(
        0,
        &mut cluster.handle,
        pod_list(),
        &cluster.sent,
        &cluster.granted,
    )
    .await;
    check.await.expect("the check ends")
}

#[tokio::test]
async fn a_connector_on_cloudflare_s_configuration_makes_the_tunnel_degraded() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let checks = Arc::new(RemoteConfigChecks::on_port(connector_serving(3)));
    let mut cluster = MockCluster::with_remote(&Caches::holding(&children), Some(checks.clone()));

    assert!(observed(&mut cluster, &checks).await, "a new answer");
    assert_eq!(checks.known("apps", "home"), Some(3));

    let mut status = steady_status(&children);
    status["conditions"][2] = json!({
        "type": "Degraded", "status": "True", "reason": "RemotelyManaged", "observedGeneration": 1,
        "message": "a connector runs configuration version 3 from Cloudflare's dashboard, which replaces spec.ingress: this tunnel is remotely managed, and its routes come from the dashboard, not from this SecureTunnel. The sandbox still opens only the origins of spec.ingress. Use a locally-managed tunnel (cloudflared tunnel create NAME)",
    });
    cluster
        .reconcile(
            tunnel_in_steady_state(&children),
            vec![token_lookup(&token), apply_status(status)],
        )
        .await
        .expect("reconciles");
    cluster.finish().await;
}

#[tokio::test]
async fn a_locally_managed_connector_changes_nothing() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let checks = Arc::new(RemoteConfigChecks::on_port(connector_serving(-1)));
    let mut cluster = MockCluster::with_remote(&Caches::holding(&children), Some(checks.clone()));
    observed(&mut cluster, &checks).await;
    assert_eq!(checks.known("apps", "home"), Some(-1));
    // The steady state stays steady: no write.
    cluster.reconcile_steady(&children, &token).await;
    cluster.finish().await;
}

#[tokio::test]
async fn a_connector_that_does_not_answer_is_unknown_not_an_error() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    // Nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let checks = Arc::new(RemoteConfigChecks::on_port(port));
    let mut cluster = MockCluster::with_remote(&Caches::holding(&children), Some(checks.clone()));
    observed(&mut cluster, &checks).await;
    assert_eq!(checks.known("apps", "home"), None);
    cluster.finish().await;
}
