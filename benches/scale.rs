//! Scale benchmark: the real operator binary against an in-process API server
//! stand-in (tests/support/fake_api.rs).
//!
//!     cargo bench --bench scale -- [--tunnels N] [--delay-ms D] [--concurrency C] [--runs R]
//!
//! For N SecureTunnels (each with a token Secret and 1-8 ingress rules naming
//! Services), it measures: time from operator start to every tunnel Ready;
//! API requests per tunnel while converging, by verb; the requests of a full
//! resync with nothing changed (the operator restarted over the converged
//! state: every tunnel reconciled again); the CPU of a no-op reconcile in the
//! running process (every tunnel's metadata touched); the operator process's
//! peak RSS and CPU time; and the time to render a 256-rule tunnel. Prints one
//! Markdown row per run and the median of the runs.

#[path = "../tests/support/fake_api.rs"]
#[allow(dead_code)] // shared with tests/stand_in.rs, which uses other parts
mod fake_api;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use fake_api::{
    by_verb, exited_within, load, quiet, ready_count, stop, token, write_kubeconfig, writes,
    FakeApi,
};

/// The stand-in shares the two cores with the operator, and stands for an API server
/// that would run elsewhere: it gets the operator's allocator, so that less of the
/// machine goes to serving requests (its allocations were a fifth of its CPU samples
/// with the C library's).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    tunnels: usize,
    delay: Duration,
    concurrency: u16,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args {
        tunnels: 100,
        delay: Duration::from_millis(1),
        concurrency: 16,
        runs: 3,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--tunnels" => a.tunnels = value.parse().expect("--tunnels N"),
            "--delay-ms" => a.delay = Duration::from_millis(value.parse().expect("--delay-ms D")),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency C"),
            "--runs" => a.runs = value.parse().expect("--runs R"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn spawn_operator(kubeconfig: &std::path::Path, concurrency: u16) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // BENCH_OPERATOR_WRAPPER runs the operator under a profiler ("heaptrack -o FILE",
    // say); the RSS and CPU figures are then the wrapper's. The wrapper leads its own
    // process group, so that `stop_operator` can find the operator under it.
    let wrapper = std::env::var("BENCH_OPERATOR_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let binary = env!("CARGO_BIN_EXE_securetunnel-operator");
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(binary);
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c
        }
        None => Command::new(binary),
    };
    command
        .args([
            "run",
            "--concurrency",
            &concurrency.to_string(),
            "--http-address",
            &format!("127.0.0.1:{port}"),
            // The observer of remotely-managed tunnels asks connectors beside the
            // reconciler (at most ten tunnels a second); the stand-in has no pods.
            "--config-check-interval-seconds",
            "0",
        ])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the operator starts")
}

/// Stops the operator: SIGTERM to it, not to a profiler wrapping it (a profiler that
/// gets the signal may leave the operator running and its own output unwritten), then
/// waits for the spawned process.
fn stop_operator(mut child: Child) {
    if std::env::var("BENCH_OPERATOR_WRAPPER").is_ok_and(|w| !w.trim().is_empty()) {
        // The process name, as the kernel truncates it to 15 bytes.
        let _ = Command::new("pkill")
            .args([
                "-TERM",
                "-g",
                &child.id().to_string(),
                "-x",
                "securetunnel-op",
            ])
            .status();
        if exited_within(&mut child, Duration::from_secs(120)) {
            return;
        }
    }
    stop(child);
}

/// (peak RSS in KiB, CPU seconds) of a live process, from /proc.
fn process_usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
    let clock = 100.0; // USER_HZ on Linux
    (rss, (ticks(11) + ticks(12)) as f64 / clock)
}

struct Run {
    converge_secs: f64,
    /// Requests per tunnel at creation by verb, Events left out.
    per_tunnel: BTreeMap<String, f64>,
    /// Event writes per tunnel at creation.
    events_per_tunnel: f64,
    /// Requests (not watches) × delay ÷ concurrency: the time the requests alone need.
    request_floor_secs: f64,
    create_rss_mib: f64,
    create_cpu_secs: f64,
    /// CPU of this process (the stand-in, and the harness's polling) during creation.
    stand_in_cpu_secs: f64,
    resync_secs: f64,
    resync_writes: u64,
    resync_reads: u64,
    resync_cpu_ms_per_tunnel: f64,
    resync_rss_mib: f64,
    /// CPU per no-op reconcile in a running process (a metadata-only change of each tunnel).
    noop_us_per_tunnel: f64,
    /// Writes during those reconciles.
    noop_writes: u64,
}

async fn one_run(a: &Args) -> Run {
    let api = FakeApi::new(a.delay);
    load(&api, a.tunnels);
    api.reset_counts();
    let addr = api.clone().serve().await;
    let dir = std::env::temp_dir().join(format!("securetunnel-bench-{}", std::process::id()));
    let kubeconfig = write_kubeconfig(&dir, addr);

    // Creation: from operator start to every tunnel Ready.
    let started = Instant::now();
    let own_cpu_before = process_usage(std::process::id()).1;
    let child = spawn_operator(&kubeconfig, a.concurrency);
    let pid = child.id();
    let mut usage = (0, 0.0);
    while ready_count(&api) < a.tunnels {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no convergence in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        usage = process_usage(pid);
    }
    let converge_secs = started.elapsed().as_secs_f64();
    let stand_in_cpu_secs = process_usage(std::process::id()).1 - own_cpu_before;
    // Let follow-up reconciles (from our own writes) settle before counting.
    quiet(&api, Duration::from_millis(1500)).await;
    let usage_after = process_usage(pid);
    if usage_after.0 > 0 {
        usage = usage_after;
    }
    let counts = api.counts();
    let (events, others): (BTreeMap<_, _>, BTreeMap<_, _>) = counts
        .clone()
        .into_iter()
        .partition(|((_, resource), _)| resource == "events");
    let per_tunnel = by_verb(&others)
        .into_iter()
        .map(|(v, n)| (v, n as f64 / a.tunnels as f64))
        .collect();
    let events_per_tunnel = events.values().sum::<u64>() as f64 / a.tunnels as f64;
    let requests: u64 = counts
        .iter()
        .filter(|((verb, _), _)| verb != "watch")
        .map(|(_, n)| n)
        .sum();
    let request_floor_secs =
        requests as f64 * a.delay.as_secs_f64() / f64::from(a.concurrency.max(1));
    stop_operator(child);

    // A full resync with nothing changed: a fresh operator over the converged state.
    api.reset_counts();
    let started = Instant::now();
    let child = spawn_operator(&kubeconfig, a.concurrency);
    let pid = child.id();
    let token_gets = |api: &FakeApi| {
        api.counts()
            .get(&("get".to_string(), "secrets".to_string()))
            .copied()
            .unwrap_or(0)
    };
    let mut resync_usage = (0, 0.0);
    while (token_gets(&api) as usize) < a.tunnels {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no resync in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        resync_usage = process_usage(pid);
    }
    let resync_secs = started.elapsed().as_secs_f64();
    quiet(&api, Duration::from_millis(1500)).await;
    let after = process_usage(pid);
    if after.0 > 0 {
        resync_usage = after;
    }
    let counts = api.counts();

    // No-op reconciles inside the running process: every tunnel's metadata touched (a
    // watch event, the same generation), each reconciled with nothing to do. The CPU the
    // process spends until it is idle again, per tunnel.
    api.reset_counts();
    let cpu_before = process_usage(pid).1;
    for tunnel in api.all("securetunnels") {
        let meta = &tunnel["metadata"];
        api.touch(
            "securetunnels",
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
            "1",
        );
    }
    let mut last = cpu_before;
    let mut idle = 0;
    while idle < 3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = process_usage(pid).1;
        idle = if now - last < 0.015 { idle + 1 } else { 0 };
        last = now;
    }
    let noop_us_per_tunnel = (last - cpu_before) * 1e6 / a.tunnels as f64;
    let noop_writes = writes(&api.counts());
    stop_operator(child);
    api.shutdown();
    std::fs::remove_dir_all(&dir).ok();

    let reads: u64 = counts
        .iter()
        .filter(|((v, _), _)| v == "get")
        .map(|(_, n)| n)
        .sum();
    Run {
        converge_secs,
        per_tunnel,
        events_per_tunnel,
        request_floor_secs,
        create_rss_mib: usage.0 as f64 / 1024.0,
        create_cpu_secs: usage.1,
        stand_in_cpu_secs,
        resync_secs,
        resync_writes: writes(&counts),
        resync_reads: reads,
        resync_cpu_ms_per_tunnel: resync_usage.1 * 1000.0 / a.tunnels as f64,
        resync_rss_mib: resync_usage.0 as f64 / 1024.0,
        noop_us_per_tunnel,
        noop_writes,
    }
}

fn render_256_rules_micros() -> f64 {
    use securetunnel_operator::api::SecureTunnel;
    use securetunnel_operator::render::{render, Dereferenced};
    use securetunnel_operator::token::TunnelToken;
    let rules: Vec<Value> = (0..256)
        .map(|r| json!({ "hostname": format!("h{r}.example.com"), "path": format!("^/{r}/"), "service": format!("http://web-{}.apps.svc:8080", r % 8) }))
        .collect();
    let tunnel: SecureTunnel = serde_json::from_value(json!({
        "apiVersion": "securetunnel.dev/v1alpha1", "kind": "SecureTunnel",
        "metadata": { "name": "big", "namespace": "apps", "uid": "00000000-0000-4000-8000-000000000001" },
        "spec": { "tokenSecretRef": { "name": "t" }, "ingress": rules }
    }))
    .expect("tunnel");
    let services = (0..8)
        .map(|s| {
            let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
                "metadata": { "name": format!("web-{s}"), "namespace": "apps" },
                "spec": { "selector": { "app": format!("web-{s}") }, "ports": [ { "port": 8080, "targetPort": "http" } ] }
            }))
            .expect("service");
            (
                securetunnel_operator::validate::origin::ServiceRef {
                    namespace: "apps".into(),
                    name: format!("web-{s}"),
                },
                svc,
            )
        })
        .collect();
    let deref = Dereferenced {
        token: Some(TunnelToken::parse(token(1).as_bytes()).expect("token")),
        services,
        ca_bundles: Default::default(),
        operator_namespace: None,
    };
    let validated =
        securetunnel_operator::validate::validate("big", &tunnel.spec).expect("a valid spec");
    let mut samples = Vec::new();
    for _ in 0..9 {
        let iterations = 200;
        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(render(&tunnel, &validated, &deref).expect("renders"));
        }
        samples.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
    }
    median(&mut samples)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let a = args();
    println!(
        "tunnels={} delay={}ms concurrency={} runs={} cores={}",
        a.tunnels,
        a.delay.as_millis(),
        a.concurrency,
        a.runs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("| run | converge s | reqs/tunnel (by verb) | RSS MiB | CPU s | stand-in CPU s | resync s | resync writes | resync gets | CPU ms/no-op reconcile | resync RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut runs = Vec::new();
    for r in 0..a.runs {
        let run = one_run(&a).await;
        let verbs: Vec<String> = run
            .per_tunnel
            .iter()
            .map(|(v, n)| format!("{v} {n:.2}"))
            .collect();
        println!(
            "| {} | {:.2} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {:.3} | {:.1} |",
            r + 1,
            run.converge_secs,
            verbs.join(", "),
            run.create_rss_mib,
            run.create_cpu_secs,
            run.stand_in_cpu_secs,
            run.resync_secs,
            run.resync_writes,
            run.resync_reads,
            run.resync_cpu_ms_per_tunnel,
            run.resync_rss_mib
        );
        runs.push(run);
    }
    let med = |f: &dyn Fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    println!(
        "| median | {:.2} | total {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {:.3} | {:.1} |",
        med(&|r| r.converge_secs),
        med(&|r| r.per_tunnel.values().sum()),
        med(&|r| r.create_rss_mib),
        med(&|r| r.create_cpu_secs),
        med(&|r| r.stand_in_cpu_secs),
        med(&|r| r.resync_secs),
        med(&|r| r.resync_writes as f64),
        med(&|r| r.resync_reads as f64),
        med(&|r| r.resync_cpu_ms_per_tunnel),
        med(&|r| r.resync_rss_mib)
    );
    let render_micros = render_256_rules_micros();
    println!("render of a 256-rule tunnel: {render_micros:.1} µs (median of 9 batches of 200)");
    let verbs: BTreeMap<String, f64> = runs
        .iter()
        .flat_map(|r| r.per_tunnel.keys().cloned())
        .map(|verb| {
            let n = med(&|r| r.per_tunnel.get(&verb).copied().unwrap_or(0.0));
            (verb, (n * 100.0).round() / 100.0)
        })
        .collect();
    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    let summary = serde_json::json!({
        "tunnels": a.tunnels,
        "converge_s": round(med(&|r| r.converge_secs), 2),
        "request_floor_s": round(med(&|r| r.request_floor_secs), 2),
        // Creation's CPU: the operator's, and the stand-in's on the same cores.
        "operator_cpu_s": round(med(&|r| r.create_cpu_secs), 2),
        "stand_in_cpu_s": round(med(&|r| r.stand_in_cpu_secs), 2),
        "requests_per_tunnel": {
            "by_verb": verbs,
            "total": round(med(&|r| r.per_tunnel.values().sum()), 2),
            "events": round(med(&|r| r.events_per_tunnel), 2),
        },
        "resync_writes": med(&|r| r.resync_writes as f64),
        "peak_rss_mib": round(med(&|r| r.create_rss_mib), 1),
        "resync_peak_rss_mib": round(med(&|r| r.resync_rss_mib), 1),
        // A no-op reconcile inside a running process: every tunnel touched (metadata only).
        "cpu_us_per_noop_reconcile": round(med(&|r| r.noop_us_per_tunnel), 0),
        "noop_writes": med(&|r| r.noop_writes as f64),
        // A fresh process reconciling every converged tunnel, its start-up included.
        "cpu_us_per_tunnel_fresh_resync": round(med(&|r| r.resync_cpu_ms_per_tunnel) * 1000.0, 0),
        "render_256_rules_ms": round(render_micros / 1000.0, 3),
    });
    println!("summary: {summary}");
}
