//! What every e2e check needs: the control plane's handles, the operator as a local
//! process, `kubectl`, polling with a message that names what differed, and the API
//! server's own counters (its audit log and `apiserver_request_total`).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use securetunnel_operator::children::ChildKind;
use serde_json::Value;

pub type Outcome = Result<(), String>;

/// The tunnel ID of every token the suite makes.
pub const TUNNEL_ID: &str = "6ff42ae2-765d-4adf-8112-31c55c1551ef";

/// The children every tunnel has (no integration's), as (kind, API resource) pairs.
pub fn child_kinds() -> Vec<(&'static str, ApiResource)> {
    ChildKind::core()
        .map(|k| (k.kind(), k.api_resource()))
        .collect()
}

/// The resources (plural names) the operator writes, for counting its writes: the
/// tunnels' status, every child kind, Events and the leader Lease.
pub fn written_resources() -> Vec<&'static str> {
    let mut out = vec!["securetunnels", "events", "leases"];
    out.extend(ChildKind::ALL.iter().map(|k| k.plural()));
    out
}

/// What run.sh hands the suite.
pub struct Env {
    /// The admin kubeconfig of the cluster under test.
    pub kubeconfig: PathBuf,
    /// e2e/cluster.sh when the control plane is the local one (faults need it).
    pub cluster_sh: Option<PathBuf>,
    /// The API server's audit log, when the control plane is the local one.
    pub audit_log: Option<PathBuf>,
    pub helm: Option<PathBuf>,
    pub cloudflared: Option<PathBuf>,
    /// external-dns, built from the module proxy.
    pub external_dns: Option<PathBuf>,
    /// external-dns's DNSEndpoint CRD, from its module.
    pub dnsendpoint_crd: Option<PathBuf>,
    /// The Prometheus Operator's module source (its CRDs).
    pub prometheus_operator_src: Option<PathBuf>,
    /// cyclonus, a NetworkPolicy engine.
    pub cyclonus: Option<PathBuf>,
    pub scratch: PathBuf,
    pub ci: bool,
}

impl Env {
    pub fn from_environment() -> Env {
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let scratch = std::env::temp_dir().join(format!("securetunnel-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        Env {
            kubeconfig: path("E2E_KUBECONFIG").unwrap_or_default(),
            cluster_sh: path("E2E_CLUSTER_SH"),
            audit_log: path("E2E_AUDIT_LOG"),
            helm: path("E2E_HELM"),
            cloudflared: path("E2E_CLOUDFLARED"),
            external_dns: path("E2E_EXTERNAL_DNS"),
            dnsendpoint_crd: path("E2E_DNSENDPOINT_CRD"),
            prometheus_operator_src: path("E2E_PROMETHEUS_OPERATOR_SRC"),
            cyclonus: path("E2E_CYCLONUS"),
            scratch,
            ci: std::env::var("CI").is_ok_and(|v| v == "true"),
        }
    }

    pub async fn client(&self) -> Result<Client, String> {
        client_for(&self.kubeconfig).await
    }

    /// `kubectl` against the cluster under test, as the admin.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        run_cmd(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            None,
        )
    }

    /// `kubectl apply --dry-run=server -f -` of a YAML document, as the admin, with
    /// kubectl's default (strict) field validation.
    pub fn apply_dry_run(&self, yaml: &str) -> Result<String, String> {
        run_cmd(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "--dry-run=server", "-f", "-"]),
            Some(yaml),
        )
    }

    /// `kubectl apply -f -` of a YAML document, as the admin.
    pub fn apply(&self, yaml: &str) -> Result<String, String> {
        run_cmd(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["apply", "-f", "-"]),
            Some(yaml),
        )
    }

    /// Stops or starts a control-plane component (`e2e/cluster.sh stop|start NAME`).
    pub fn cluster(&self, verb: &str, component: &str) -> Result<(), String> {
        let sh = self
            .cluster_sh
            .as_ref()
            .ok_or("not the local control plane")?;
        run_cmd(Command::new("bash").arg(sh).args([verb, component]), None).map(|_| ())
    }
}

pub async fn client_for(kubeconfig: &Path) -> Result<Client, String> {
    let kc =
        Kubeconfig::read_from(kubeconfig).map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    Client::try_from(config).map_err(|e| e.to_string())
}

/// Runs a command; its stdout, or an error with everything it printed.
pub fn run_cmd(cmd: &mut Command, stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let shown = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin")?;
        pipe.write_all(input.as_bytes())
            .map_err(|e| format!("{shown}: writing stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{shown} exited with {}:\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Polls `probe` until it returns `Ok(true)`; on timeout, the error names `what` and the
/// last observation `probe` gave (`Ok(false)` observations come from `observe`).
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut probe: F) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(()) => return Ok(()),
            Err(last) => {
                if Instant::now() >= deadline {
                    return Err(format!("after {}s, {what}: {last}", timeout.as_secs()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The operator binary, run as a local process with a given kubeconfig.
pub struct Operator {
    child: Child,
    pub name: String,
    pub log: PathBuf,
    pub http_port: u16,
}

impl Operator {
    pub fn start(
        scratch: &Path,
        name: &str,
        kubeconfig: &Path,
        extra_args: &[String],
    ) -> Result<Operator, String> {
        let http_port = free_port();
        let log = scratch.join(format!("operator-{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| e.to_string())?;
        let child = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"))
            .arg("run")
            .arg(format!("--http-address=127.0.0.1:{http_port}"))
            .arg(format!("--identity={name}"))
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,securetunnel_operator=debug")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("WATCH_NAMESPACES")
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("starting the operator: {e}"))?;
        Ok(Operator {
            child,
            name: name.to_string(),
            log,
            http_port,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while it runs, else how it ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// SIGTERM, and wait for it to drain and exit.
    pub fn stop(mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL: a crash, with no chance to release the Lease.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> Result<String, String> {
        http_get(&format!("http://127.0.0.1:{}{path}", self.http_port)).await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback; the body of a 2xx answer.
pub async fn http_get(url: &str) -> Result<String, String> {
    let out = run_cmd(
        Command::new("curl").args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", url]),
        None,
    )?;
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    if code.starts_with('2') {
        Ok(body.to_string())
    } else {
        Err(format!("GET {url} answered {code}: {body}"))
    }
}

/// The API server's `apiserver_request_total`, summed by (verb, resource).
pub fn request_totals(env: &Env) -> Result<BTreeMap<(String, String), f64>, String> {
    let text = env.kubectl(&["get", "--raw", "/metrics"])?;
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |key: &str| {
            labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let value: f64 = value.trim().parse().map_err(|e| format!("{line}: {e}"))?;
        *totals
            .entry((label("verb"), label("resource")))
            .or_insert(0.0) += value;
    }
    if totals.is_empty() {
        return Err("the API server's /metrics has no apiserver_request_total".into());
    }
    Ok(totals)
}

pub const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "APPLY"];

/// Writes counted between two scrapes of `apiserver_request_total`, for `resources`.
pub fn writes_between(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
    resources: &[&str],
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .filter(|((verb, resource), _)| {
            WRITE_VERBS.contains(&verb.as_str()) && resources.contains(&resource.as_str())
        })
        .filter_map(|(key, n)| {
            let delta = n - before.get(key).copied().unwrap_or(0.0);
            (delta > 0.0).then(|| (key.clone(), delta))
        })
        .collect()
}

/// One request of the audit log.
#[derive(Debug, Clone)]
pub struct Audited {
    pub user: String,
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    pub uri: String,
    pub user_agent: String,
    pub at: Option<Timestamp>,
}

/// When the API server was restarting: from the stop request until `/readyz` answered
/// again. A restarting API server serves requests before its RBAC cache has synced, and
/// refuses them (`clusterrole … not found`); such refusals say nothing about our RBAC.
pub static RESTARTS: Mutex<Vec<(Timestamp, Timestamp)>> = Mutex::new(Vec::new());

pub fn during_restart(at: Option<Timestamp>) -> bool {
    let Some(at) = at else { return false };
    RESTARTS
        .lock()
        .map(|windows| windows.iter().any(|(from, to)| *from <= at && at <= *to))
        .unwrap_or(false)
}

/// Every request the audit log holds (one JSON event per line, stage ResponseComplete).
pub fn audit_events(log: &Path) -> Result<Vec<Audited>, String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut events = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["stage"] != "ResponseComplete" {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        events.push(Audited {
            user: s(&event["user"]["username"]),
            verb: s(&event["verb"]),
            resource: s(&event["objectRef"]["resource"]),
            namespace: s(&event["objectRef"]["namespace"]),
            name: s(&event["objectRef"]["name"]),
            code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            uri: s(&event["requestURI"]),
            user_agent: s(&event["userAgent"]),
            at: event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok()),
        });
    }
    Ok(events)
}

/// `apiVersion`/`kind`/name of a dynamic object, for messages.
pub fn describe(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}

pub fn dynamic_api(client: &Client, namespace: &str, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, resource)
}
