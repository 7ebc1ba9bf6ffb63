//! A remotely-managed tunnel, and the operator's observer reporting it as
//! `Degraded=True, RemotelyManaged`, then clearing it when the connector runs the local
//! configuration again:
//!
//! - on kwok's node ([`reported`]), a stand-in for a connector's metrics port answers
//!   `/config` on 127.0.0.1:2000, and the tunnel's pod is given that address;
//! - on the real node ([`pushed_by_the_edge`]), the stand-in edge pushes a configuration to
//!   the real cloudflared, as Cloudflare's dashboard does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use securetunnel_operator::names::METRICS_PORT;

use crate::lifecycle::{
    apply_tunnel, delete_and_collect, wait_condition, wait_condition_within, NAMESPACE, WAIT,
};
use crate::support::{wait_for, Env, Outcome};

const NAME: &str = "remote";

/// Serves `/config` on 127.0.0.1:2000 with the version held in the returned cell.
fn connector_stand_in() -> Result<Arc<AtomicI64>, String> {
    let listener = TcpListener::bind(("127.0.0.1", METRICS_PORT))
        .map_err(|e| format!("127.0.0.1:{METRICS_PORT} is taken: {e}"))?;
    let version = Arc::new(AtomicI64::new(2));
    let served = version.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).unwrap_or(0);
            let body = if request[..n].starts_with(b"GET /config ") {
                format!(
                    r#"{{"version":{},"config":{{"ingress":[{{"service":"http_status:404"}}]}}}}"#,
                    served.load(Ordering::SeqCst)
                )
            } else {
                String::new()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(version)
}

pub async fn reported(env: &Env, client: &Client) -> Outcome {
    let version = connector_stand_in()?;
    apply_tunnel(env, NAME, 1, &["remote.e2e.example.com"])?;
    wait_condition(client, NAME, "Ready", "True", "ConnectorsReady").await?;
    // kwok gave the pod an address nothing answers on: point it at the stand-in.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = format!("app.kubernetes.io/instance={NAME}");
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .next()
        .ok_or("no connector pod")?;
    env.kubectl(&[
        "-n",
        NAMESPACE,
        "patch",
        "pod",
        &pod.name_any(),
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}]}}"#,
    ])?;
    wait_for(WAIT, "the pod to keep 127.0.0.1", || async {
        let p = pods.get(&pod.name_any()).await.map_err(|e| e.to_string())?;
        match p.status.and_then(|s| s.pod_ip) {
            Some(ip) if ip == "127.0.0.1" => Ok(()),
            other => Err(format!("podIP {other:?}")),
        }
    })
    .await?;
    wait_condition_within(client, NAME, "Degraded", "True", "RemotelyManaged", WAIT).await?;
    // Back to the local configuration: the condition clears.
    version.store(-1, Ordering::SeqCst);
    wait_condition_within(client, NAME, "Degraded", "False", "AsExpected", WAIT).await?;
    delete_and_collect(client, NAME, &[]).await
}

/// The tunnel the dashboard manages on the real node, under a tunnel ID of its own (the
/// edge pushes a configuration to every connection of a tunnel ID).
const PUSHED: &str = "dashboard";
const PUSHED_TUNNEL_ID: &str = "3c5d0a4e-9b1f-4f7a-8e2d-6a1b2c3d4e5f";
/// The dashboard's stand-in on the edge host (e2e/node.sh: `-admin`).
const EDGE_ADMIN: &str = "http://10.250.0.7:8081";
/// What the dashboard routes: every hostname to a status the origin never answers with.
const PUSHED_STATUS: u16 = 418;

/// PUT or DELETE of the tunnel's configuration at the dashboard's stand-in; its answer.
fn dashboard(method: &str, body: Option<&str>) -> Result<String, String> {
    let url = format!("{EDGE_ADMIN}/tunnels/{PUSHED_TUNNEL_ID}/configuration");
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "--max-time", "30", "-X", method]);
    if body.is_some() {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    crate::support::run_cmd(cmd.arg(&url), body)
}

/// On the real node, a tunnel managed from Cloudflare's dashboard: the edge pushes its
/// configuration to the real connector (cloudflared's UpdateConfiguration RPC, as the edge
/// does), which then routes by it and not by `spec.ingress`; the operator in its pods asks the
/// connector and reports `Degraded=True, RemotelyManaged`. Once the dashboard lets go and the
/// connector restarts on its local file, the condition clears.
pub async fn pushed_by_the_edge(env: &Env, client: &Client, image: &str) -> Outcome {
    let host = "dashboard.e2e.example.com";
    env.apply(&format!(
        "apiVersion: v1
kind: Secret
metadata: {{ name: {PUSHED}-token, namespace: {NAMESPACE} }}
stringData:
  token: {}
---
apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: {PUSHED}, namespace: {NAMESPACE} }}
spec:
  tokenSecretRef: {{ name: {PUSHED}-token }}
  replicas: 1
  image: {image}
  ingress:
  - hostname: {host}
    service: http://web.{NAMESPACE}.svc:8080
",
        crate::lifecycle::token_of(PUSHED_TUNNEL_ID, "dashboard-secret")
    ))?;
    wait_condition(client, PUSHED, "Ready", "True", "ConnectorsReady").await?;
    let served = |want: u16| async move {
        wait_for(
            WAIT,
            &format!("{host} answered with {want} through the edge"),
            || async {
                let v = crate::node::visit_tunnel(PUSHED_TUNNEL_ID, host, "/")?;
                if v.status == want {
                    Ok(())
                } else {
                    Err(format!("{v:?}"))
                }
            },
        )
        .await
    };
    served(200).await?;
    let config = format!(
        r#"{{"version": 1, "config": {{"ingress": [{{"service": "http_status:{PUSHED_STATUS}"}}]}}}}"#
    );
    let answers: serde_json::Value = serde_json::from_str(&dashboard("PUT", Some(&config))?)
        .map_err(|e| format!("the dashboard's answer: {e}"))?;
    let applied = answers.as_array().cloned().unwrap_or_default();
    if applied.is_empty() || applied.iter().any(|a| a["lastAppliedVersion"] != 1) {
        return Err(format!(
            "the connector did not apply version 1 of the dashboard's configuration: {answers}"
        ));
    }
    // The dashboard's routes replaced spec.ingress.
    served(PUSHED_STATUS).await?;
    wait_condition_within(client, PUSHED, "Degraded", "True", "RemotelyManaged", WAIT).await?;
    // The dashboard lets go; the connector restarts on its local configuration.
    dashboard("DELETE", None)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = format!("app.kubernetes.io/instance={PUSHED}");
    for pod in pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| e.to_string())?
        .items
    {
        pods.delete(&pod.name_any(), &Default::default())
            .await
            .map_err(|e| format!("deleting the connector {}: {e}", pod.name_any()))?;
    }
    served(200).await?;
    wait_condition_within(client, PUSHED, "Degraded", "False", "AsExpected", WAIT).await?;
    delete_and_collect(client, PUSHED, &[]).await?;
    env.kubectl(&[
        "-n",
        NAMESPACE,
        "delete",
        "secret",
        &format!("{PUSHED}-token"),
    ])
    .map(|_| ())
}
