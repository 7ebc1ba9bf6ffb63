//! The operator binary, end to end, against the in-process API server
//! stand-in of the benchmark (tests/support/fake_api.rs): the `run` path that the
//! unit tests cannot reach (watches, caches, start-up, namespace scoping,
//! leader election, the HTTP endpoints).

#[path = "support/fake_api.rs"]
#[allow(dead_code)] // shared with the benchmark, which uses other parts
mod fake_api;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::{load, quiet, ready_count, stop, write_kubeconfig, writes, FakeApi, NAMESPACES};

const TUNNELS: usize = 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running operator process, killed if the test ends without stopping it.
struct Operator(Option<Child>);

impl Operator {
    fn stop(mut self) {
        if let Some(child) = self.0.take() {
            stop(child);
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn operator(kubeconfig: &std::path::Path, port: u16, extra: &[&str]) -> Operator {
    let child = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"))
        .args([
            "run",
            "--concurrency",
            "4",
            "--http-address",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the operator starts");
    Operator(Some(child))
}

async fn stand_in(name: &str) -> (Arc<FakeApi>, std::path::PathBuf) {
    let api = FakeApi::new(Duration::ZERO);
    load(&api, TUNNELS);
    api.reset_counts();
    let addr = api.clone().serve().await;
    let dir = std::env::temp_dir().join(format!(
        "securetunnel-stand-in-{name}-{}",
        std::process::id()
    ));
    let kubeconfig = write_kubeconfig(&dir, addr);
    (api, kubeconfig)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_converges_and_a_restart_writes_nothing() {
    let (api, kubeconfig) = stand_in("converge").await;
    let port = free_port();
    let child = operator(&kubeconfig, port, &[]);
    wait_until("every tunnel Ready", || ready_count(&api) == TUNNELS).await;

    for i in 0..TUNNELS {
        let ns = format!("ns-{}", i % NAMESPACES);
        let name = format!("tunnel-{i}-cloudflared");
        for plural in [
            "networkpolicies",
            "secrets",
            "configmaps",
            "serviceaccounts",
            "deployments",
            "poddisruptionbudgets",
        ] {
            assert!(
                api.get(plural, &ns, &name).is_some(),
                "{plural} {ns}/{name} missing"
            );
        }
        let policy = api.get("networkpolicies", &ns, &name).expect("policy");
        let egress = policy["spec"]["egress"].as_array().expect("egress");
        // DNS, the edge, and the Services its (i mod 8 + 1) rules name, merged by selector.
        assert_eq!(egress.len(), 2 + i % 8 + 1, "{ns}/{name}: {policy}");
        let tunnel = api
            .get("securetunnels", &ns, &format!("tunnel-{i}"))
            .expect("tunnel");
        assert_eq!(tunnel["status"]["observedGeneration"], 1);
        assert!(tunnel["status"]["tunnelID"]
            .as_str()
            .is_some_and(|id| id.starts_with("6ff42ae2-")));
    }

    assert_eq!(http_get(port, "/healthz").0, 200);
    assert_eq!(http_get(port, "/readyz").0, 200);
    // The gauge reads the operator's own tunnel cache, which may trail the stand-in by
    // a watch event or two.
    let want = format!("securetunnel_tunnels{{ready=\"True\"}} {TUNNELS}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = http_get(port, "/metrics");
        assert_eq!(status, 200);
        if metrics.contains(&want) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains(&want), "{metrics}");

    quiet(&api, Duration::from_millis(500)).await;
    child.stop();

    // A fresh operator over the converged state: everything is reconciled, nothing written.
    api.reset_counts();
    let child = operator(&kubeconfig, free_port(), &[]);
    let token_gets = || {
        api.counts()
            .get(&("get".to_string(), "secrets".to_string()))
            .copied()
            .unwrap_or(0)
    };
    wait_until("every tunnel reconciled again", || {
        token_gets() as usize >= TUNNELS
    })
    .await;
    quiet(&api, Duration::from_millis(500)).await;
    child.stop();
    assert_eq!(
        writes(&api.counts()),
        0,
        "a steady-state resync wrote: {:?}",
        api.counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_to_namespaces_it_never_asks_for_the_whole_cluster() {
    let (api, kubeconfig) = stand_in("scoped").await;
    api.refuse_cluster_wide();
    let namespaces: Vec<String> = (0..NAMESPACES).map(|n| format!("ns-{n}")).collect();
    let child = operator(
        &kubeconfig,
        free_port(),
        &["--namespace", &namespaces.join(",")],
    );
    wait_until("every tunnel Ready", || ready_count(&api) == TUNNELS).await;
    child.stop();
    let forbidden: u64 = api
        .counts()
        .iter()
        .filter(|((verb, _), _)| verb == "forbidden")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        forbidden,
        0,
        "cluster-wide requests were made: {:?}",
        api.counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_it_hands_over() {
    let (api, kubeconfig) = stand_in("leader").await;
    let elect = |identity: &str| {
        operator(
            &kubeconfig,
            free_port(),
            &[
                "--leader-elect",
                "--lease-namespace",
                "default",
                "--identity",
                identity,
            ],
        )
    };
    let first = elect("replica-a");
    wait_until("a leader", || {
        api.get("leases", "default", "securetunnel-operator")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "replica-a")
    })
    .await;
    let second = elect("replica-b");
    wait_until("every tunnel Ready", || ready_count(&api) == TUNNELS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lease = api
        .get("leases", "default", "securetunnel-operator")
        .expect("lease");
    assert_eq!(
        lease["spec"]["holderIdentity"], "replica-a",
        "the standby must not take a fresh lease"
    );

    // The leader stops: it releases the Lease and the standby takes over at once.
    first.stop();
    wait_until("the standby to lead", || {
        api.get("leases", "default", "securetunnel-operator")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "replica-b")
    })
    .await;
    second.stop();
}
