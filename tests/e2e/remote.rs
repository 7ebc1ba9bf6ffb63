//! A remotely-managed tunnel on the real control plane: a stand-in for a connector's
//! metrics port answers `/config` on 127.0.0.1:2000, the tunnel's (kwok) pod is given that
//! address, and the operator's observer must report `Degraded=True, RemotelyManaged`, then
//! clear it when the connector runs the local configuration again.

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
