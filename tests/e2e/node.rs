//! On the real node (e2e/node.sh): the operator installed by Helm or kustomize from the image
//! its Dockerfile builds, connectors running the rendered pod spec unedited, and a visitor's
//! request carried through the stand-in edge to an origin pod and back; rollouts, a restart
//! of the operator's pods and an API server outage, with the operator in its pods.
//!
//! The stand-in edge is a host of the suite's at an address inside the connectors' default
//! `egress.cloudflareEdge`; cloudflared discovers it through the cluster DNS as it discovers
//! the real edge. A visitor's request is an HTTP request to the edge's visitor port; the edge
//! passes it over one registered connection of the tunnel (header `Cf-Tunnel-Id`), and says
//! which in the `Cf-Connection` response header (`TUNNEL/INDEX/SECRET-DIGEST`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::install::{self, Method, NAMESPACE as OPERATOR_NAMESPACE, RELEASE};
use crate::lifecycle::{self, child, NAMESPACE, WAIT};
use crate::support::{run_cmd, wait_for, Env, Outcome, TUNNEL_ID};

/// The node `e2e/node.sh` starts, and the edge's visitor address on its host.
pub const NODE: &str = "node-0";
const VISITORS: &str = "http://198.41.192.7:8080";
/// The images a node must have (`e2e/cluster.sh images`).
const IMAGES: [&str; 4] = ["operator", "cloudflared", "origin", "probe"];

/// `NAME -> REF` from `e2e/cluster.sh images`.
pub fn images(env: &Env) -> Result<BTreeMap<String, String>, String> {
    let sh = env.cluster_sh.as_ref().ok_or("not the local cluster")?;
    let out = run_cmd(Command::new("bash").arg(sh).arg("images"), None)?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, r)| (n.to_string(), r.to_string()))
        .collect())
}

/// The node is Ready, its kubelet is the real one of the control plane's release (not kwok),
/// and every image the suite needs is on it.
pub async fn node_ready(env: &Env, client: &Client) -> Outcome {
    let node = Api::<Node>::all(client.clone())
        .get(NODE)
        .await
        .map_err(|e| format!("Node {NODE}: {e}"))?;
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    if ready.as_deref() != Some("True") {
        return Err(format!("Node {NODE} Ready={ready:?}"));
    }
    if node.annotations().contains_key("kwok.x-k8s.io/node") {
        return Err(format!("Node {NODE} is kwok's"));
    }
    let info = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .ok_or("no nodeInfo")?;
    if !info
        .container_runtime_version
        .starts_with("containerd://2.")
    {
        return Err(format!(
            "Node {NODE} runs {}, not containerd 2",
            info.container_runtime_version
        ));
    }
    let api_version = client
        .apiserver_version()
        .await
        .map_err(|e| e.to_string())?
        .git_version;
    if info.kubelet_version != api_version {
        return Err(format!(
            "kubelet {} beside kube-apiserver {api_version}",
            info.kubelet_version
        ));
    }
    let images = images(env)?;
    let missing: Vec<&str> = IMAGES
        .into_iter()
        .filter(|i| !images.contains_key(*i))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "e2e/cluster.sh images lists {images:?}, without {missing:?}"
        ));
    }
    Ok(())
}

/// The install by `method` with every default but the operator's image: the suite's build of
/// the Dockerfile, never pulled. Helm: `image.repository`, `image.tag` and `image.pullPolicy`;
/// kustomize: an overlay of `config/default` with an `images` entry, as a user writes one.
pub fn install_from_image(env: &Env, method: Method, images: &BTreeMap<String, String>) -> Outcome {
    let image = images.get("operator").ok_or("no operator image")?;
    let (repository, tag) = image
        .rsplit_once(':')
        .ok_or(format!("{image} has no tag"))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match method {
        Method::Helm => install::helm_install(
            env,
            &[
                &format!("image.repository={repository}"),
                &format!("image.tag={tag}"),
                "image.pullPolicy=Never",
            ],
        ),
        Method::Kustomize => {
            let overlay = env.scratch.join("overlay");
            std::fs::create_dir_all(&overlay).map_err(|e| e.to_string())?;
            // The image the manifests name, as kustomize's `images` entry matches it.
            let manager = std::fs::read_to_string(root.join("config/manager/manager.yaml"))
                .map_err(|e| e.to_string())?;
            let named = manager
                .lines()
                .find_map(|l| l.trim().strip_prefix("image: "))
                .and_then(|i| i.rsplit_once(':'))
                .map(|(name, _)| name.to_string())
                .ok_or("config/manager/manager.yaml names no image")?;
            std::fs::write(
                overlay.join("kustomization.yaml"),
                format!(
                    "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [{}]
images:
  - name: {named}
    newName: {repository}
    newTag: \"{tag}\"
",
                    relative_to(&overlay, &root.join("config/default"))
                ),
            )
            .map_err(|e| e.to_string())?;
            env.kubectl(&["apply", "-k", &overlay.display().to_string()])
                .map(|_| ())
        }
    }
}

/// `target` as a path relative to the directory `from` (kustomize takes no absolute path);
/// both absolute.
fn relative_to(from: &Path, target: &Path) -> String {
    let up = from.components().count() - 1;
    let down = target.strip_prefix("/").unwrap_or(target);
    format!("{}{}", "../".repeat(up), down.display())
}

/// `helm upgrade --reuse-values` with `values`: the operator's Deployment rolls out, its two
/// new pods are Ready, and one of them holds the Lease.
pub async fn helm_upgrade(env: &Env, client: &Client, values: &[&str]) -> Outcome {
    let before = names(&operator_pods(client).await?);
    install::helm_upgrade(env, values)?;
    rolled_out(env, OPERATOR_NAMESPACE, RELEASE, "180s")?;
    operator_pods_ready(client).await?;
    leader_among(client, &before, WAIT).await.map(|_| ())
}

/// The pods of `namespace` labelled `app.kubernetes.io/instance: instance`, but those being
/// deleted.
async fn pods_of(client: &Client, namespace: &str, instance: &str) -> Result<Vec<Pod>, String> {
    Ok(Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={instance}")))
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// The names of `pods`.
fn names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

/// Waits (`kubectl rollout status`) until the Deployment `name` of `namespace` has rolled out.
fn rolled_out(env: &Env, namespace: &str, name: &str, timeout: &str) -> Outcome {
    env.kubectl(&[
        "-n",
        namespace,
        "rollout",
        "status",
        &format!("deployment/{name}"),
        &format!("--timeout={timeout}"),
    ])
    .map(|_| ())
}

async fn operator_pods(client: &Client) -> Result<Vec<Pod>, String> {
    pods_of(client, OPERATOR_NAMESPACE, RELEASE).await
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The operator's two pods run on the real node and are Ready through the chart's probes.
pub async fn operator_pods_ready(client: &Client) -> Outcome {
    wait_for(WAIT, "two Ready operator pods on the real node", || async {
        let pods = operator_pods(client).await?;
        let ready: Vec<String> = pods
            .iter()
            .filter(|p| pod_ready(p) && node_of(p) == Some(NODE))
            .map(|p| p.name_any())
            .collect();
        if ready.len() == 2 {
            Ok(())
        } else {
            Err(format!(
                "Ready on {NODE}: {ready:?}; pods: {}",
                pods.iter().map(pod_summary).collect::<Vec<_>>().join("; ")
            ))
        }
    })
    .await
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

/// A pod's name, node, phase and each container's state, for messages.
fn pod_summary(p: &Pod) -> String {
    let states: Vec<String> = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let state = c.state.as_ref();
                    let waiting = state
                        .and_then(|s| s.waiting.as_ref())
                        .map(|w| format!("waiting {:?} {:?}", w.reason, w.message));
                    let terminated = state
                        .and_then(|s| s.terminated.as_ref())
                        .map(|t| format!("terminated {:?} exit {}", t.reason, t.exit_code));
                    format!(
                        "{} ready={} restarts={} {}",
                        c.name,
                        c.ready,
                        c.restart_count,
                        waiting.or(terminated).unwrap_or_else(|| "running".into())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} on {:?} {:?} [{}]",
        p.name_any(),
        node_of(p),
        p.status.as_ref().and_then(|s| s.phase.clone()),
        states.join(", ")
    )
}

async fn holder(client: &Client) -> Result<Option<String>, String> {
    Ok(Api::<Lease>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .get_opt(RELEASE)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// One of the two pods holds the Lease; delete it (as a node drain or a rollout does), and the
/// other takes over. Returns how long the takeover took, from the delete.
pub async fn leader_failover(client: &Client) -> Result<Duration, String> {
    let leader = leader_among(client, &BTreeSet::new(), Duration::from_secs(120)).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let deleted_at = Instant::now();
    pods.delete(&leader, &DeleteParams::default())
        .await
        .map_err(|e| format!("deleting the leader pod {leader}: {e}"))?;
    leader_among(client, &BTreeSet::from([leader]), Duration::from_secs(60)).await?;
    Ok(deleted_at.elapsed())
}

/// Waits until an operator pod not in `except` holds the Lease; its name.
async fn leader_among(
    client: &Client,
    except: &BTreeSet<String>,
    wait: Duration,
) -> Result<String, String> {
    wait_for(
        wait,
        &format!("an operator pod other than {except:?} to hold the Lease"),
        || async {
            let pods: BTreeSet<String> = operator_pods(client)
                .await?
                .iter()
                .map(|p| p.name_any())
                .filter(|p| !except.contains(p))
                .collect();
            match holder(client).await? {
                Some(h) if pods.contains(&h) => Ok(()),
                other => Err(format!("holder {other:?}, pods {pods:?}")),
            }
        },
    )
    .await?;
    holder(client)
        .await?
        .ok_or_else(|| "the Lease lost its holder".to_string())
}

/// The namespace, the token Secret, and an origin Deployment (2 pods answering with their
/// own names) behind the Service `web`.
pub fn setup(env: &Env, origin_image: &str) -> Outcome {
    lifecycle::setup_origin(env, origin_image, 2, true)?;
    rolled_out(env, NAMESPACE, "web", "120s")
}

/// A tunnel of 2 connectors on `image`, routing each hostname to the Service web.
pub fn apply_tunnel(env: &Env, name: &str, image: &str, hostnames: &[&str]) -> Outcome {
    lifecycle::apply_tunnel_on(env, name, 2, Some(image), hostnames)
}

async fn connector_pods(client: &Client, name: &str) -> Result<Vec<Pod>, String> {
    pods_of(client, NAMESPACE, name).await
}

/// The connectors of tunnel `name` run on the real node with exactly the pod template the
/// operator rendered (the Deployment's), become Ready through their `/ready` probes, and the
/// tunnel is Ready=True because of them.
pub async fn connectors_run(client: &Client, name: &str) -> Outcome {
    let result = lifecycle::connectors_ready(client, name, 2, WAIT).await;
    let pods = connector_pods(client, name).await?;
    if let Err(e) = result {
        return Err(format!(
            "{e}\n{}",
            pods.iter().map(pod_summary).collect::<Vec<_>>().join("\n")
        ));
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get(&child(name))
        .await
        .map_err(|e| e.to_string())?;
    let template = deployment
        .spec
        .and_then(|s| s.template.spec)
        .ok_or("the Deployment has no pod template")?;
    for pod in &pods {
        if node_of(pod) != Some(NODE) {
            return Err(format!("{} runs on {:?}", pod.name_any(), node_of(pod)));
        }
        let spec = pod.spec.as_ref().ok_or("a pod without spec")?;
        let (want, got) = (&template.containers[0], &spec.containers[0]);
        if want.args != got.args
            || want.security_context != got.security_context
            || want.image != got.image
            || template.security_context != spec.security_context
        {
            return Err(format!(
                "pod {} differs from the rendered template: args {:?} / {:?}, image {:?} / {:?}",
                pod.name_any(),
                got.args,
                want.args,
                got.image,
                want.image
            ));
        }
        if got.command.is_some() {
            return Err(format!("pod {} has a command", pod.name_any()));
        }
    }
    Ok(())
}

/// On the node itself: every cloudflared process of the tunnel runs as uid and gid 65532, and
/// the token it reads is a file of mode 0440 owned by group 65532 (fsGroup).
pub fn connectors_run_as_65532() -> Outcome {
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").map_err(|e| e.to_string())? {
        let Ok(entry) = entry else { continue };
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) != Some("/usr/local/bin/cloudflared")
            || !args.iter().any(|a| a == "--token-file")
        {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).map_err(|e| e.to_string())?;
        let ids = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        let (uid, gid) = (ids("Uid:"), ids("Gid:"));
        if uid != "65532 65532 65532 65532" || gid != "65532 65532 65532 65532" {
            return Err(format!("{}: Uid {uid}, Gid {gid}", dir.display()));
        }
        let token = dir.join("root/etc/cloudflared/token/token");
        let meta = std::fs::metadata(&token).map_err(|e| format!("{}: {e}", token.display()))?;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o440 || meta.gid() != 65532 {
            return Err(format!(
                "{}: mode {mode:o}, gid {}",
                token.display(),
                meta.gid()
            ));
        }
        seen += 1;
    }
    if seen == 0 {
        return Err("no cloudflared process with --token-file on this machine".into());
    }
    Ok(())
}

/// A visitor's answer: status, body, and the connection that carried it.
#[derive(Debug)]
pub struct Visit {
    pub status: u16,
    pub body: String,
    pub connection: String,
}

/// A visitor's GET of `path` on `host`, through the edge.
pub fn visit(host: &str, path: &str) -> Result<Visit, String> {
    visit_tunnel(TUNNEL_ID, host, path)
}

/// A visitor's GET of `path` on `host`, through the edge, to the tunnel `tunnel_id`.
pub fn visit_tunnel(tunnel_id: &str, host: &str, path: &str) -> Result<Visit, String> {
    let out = run_cmd(
        Command::new("curl").args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            "-H",
            &format!("Host: {host}"),
            "-H",
            &format!("Cf-Tunnel-Id: {tunnel_id}"),
            &format!("{VISITORS}{path}"),
        ]),
        None,
    )?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or(format!("no header in {out:?}"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status in {head:?}"))?;
    let connection = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("cf-connection"))
        })
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok(Visit {
        status,
        body: body.trim().to_string(),
        connection,
    })
}

/// The names of the origin's pods.
async fn origin_pods(client: &Client) -> Result<BTreeSet<String>, String> {
    Ok(Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("app=web"))
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect())
}

/// A request for a routed hostname reaches an origin pod and comes back with its name; one
/// for a hostname no rule matches gets the fallback's 404.
pub async fn request_served(client: &Client, host: &str) -> Outcome {
    let origins = origin_pods(client).await?;
    // The edge learns of a connection when it registers: the first visitor may come just after.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match visit(host, "/") {
            Ok(v) if v.status == 200 && origins.contains(&v.body) => break,
            Ok(v) => format!("{v:?}"),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "GET https://{host}/ through the edge: {last}; origin pods {origins:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = visit("nothing.example.net", "/")?;
    if v.status != 404 {
        return Err(format!(
            "a hostname no rule matches got {v:?}, not the fallback's 404"
        ));
    }
    Ok(())
}

/// The digest the edge shows of a tunnel secret (`Cf-Connection`'s last part).
fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rotating the token rolls the pods, and the new pods connect with the new token: after the
/// rollout, every request is carried by a connection registered with the new secret.
pub async fn token_rotation(env: &Env, client: &Client, name: &str, host: &str) -> Outcome {
    let before = names(&connector_pods(client, name).await?);
    lifecycle::set_token(env, "second-secret")?;
    rolled(client, name, &before).await?;
    let want = secret_digest("second-secret");
    wait_for(
        Duration::from_secs(60),
        "requests carried by connections of the new token only",
        || async {
            for _ in 0..8 {
                let v = visit(host, "/")?;
                if v.status != 200 || !v.connection.ends_with(&format!("/{want}")) {
                    return Err(format!("{v:?} (the new secret's digest is {want})"));
                }
            }
            Ok(())
        },
    )
    .await
}

/// Waits until none of `before` is left and two new connectors are Ready.
async fn rolled(client: &Client, name: &str, before: &BTreeSet<String>) -> Outcome {
    wait_for(WAIT, "the connectors to be replaced", || async {
        let pods = connector_pods(client, name).await?;
        let all: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        let new_ready = pods
            .iter()
            .filter(|p| !before.contains(&p.name_any()) && pod_ready(p))
            .count();
        if new_ready == 2 && all.iter().all(|p| !before.contains(p)) {
            Ok(())
        } else {
            Err(format!("pods {all:?}, before {before:?}"))
        }
    })
    .await?;
    lifecycle::connectors_ready(client, name, 2, WAIT).await
}

/// What requests sent through a rollout saw.
#[derive(Debug, Default)]
pub struct Load {
    pub sent: u32,
    pub failed: u32,
    pub failures: Vec<String>,
}

/// Editing the rules rolls the connectors; a visitor sending a request every 100 ms through
/// the rollout is answered every time. Returns what the visitor saw.
pub async fn rule_edit_rolls(
    env: &Env,
    client: &Client,
    name: &str,
    image: &str,
    hosts: &[&str],
) -> Result<Load, String> {
    let before = names(&connector_pods(client, name).await?);
    let origins = origin_pods(client).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU32::new(0));
    let host = hosts[0].to_string();
    let visitor = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                match visit(&host, "/") {
                    Ok(v) if v.status == 200 && origins.contains(&v.body) => {}
                    Ok(v) => failures.push(format!("{v:?}")),
                    Err(e) => failures.push(e),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            failures
        })
    };
    let outcome = async {
        apply_tunnel(env, name, image, hosts)?;
        rolled(client, name, &before).await?;
        // The last hostname is the new rule: served too.
        request_served(client, hosts[hosts.len() - 1]).await
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let failures = visitor.join().map_err(|_| "the visitor thread panicked")?;
    outcome?;
    Ok(Load {
        sent: sent.load(Ordering::Relaxed),
        failed: failures.len() as u32,
        failures,
    })
}

/// The README's "Try it on a cluster" commands, as written: the fenced block under that
/// heading, run by bash with the kubeconfig and `TUNNEL_TOKEN` set.
pub async fn readme_walkthrough(env: &Env) -> Outcome {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .map_err(|e| e.to_string())?;
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Try it on a cluster"))
        .ok_or("README.md has no \"## Try it on a cluster\" section")?;
    let block = section
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .ok_or("the section has no ```bash block")?;
    let script = format!("set -euo pipefail\n{block}\n");
    let out = run_cmd(
        Command::new("bash")
            .args(["-c", &script])
            .env("KUBECONFIG", &env.kubeconfig)
            .env("TUNNEL_TOKEN", lifecycle::token("walkthrough-secret"))
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        None,
    )?;
    // The block ends by waiting for the tunnel and showing it: READY must read True.
    let tunnels: Value =
        serde_json::from_str(&env.kubectl(&["get", "securetunnels", "-A", "-o", "json"])?)
            .map_err(|e| e.to_string())?;
    let home = tunnels["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["metadata"]["name"] == "home"))
        .ok_or(format!(
            "no SecureTunnel home after the walkthrough:\n{out}"
        ))?;
    let ready = home["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    if ready["status"] != "True" {
        return Err(format!("SecureTunnel home: Ready {ready}\n{out}"));
    }
    if !out.contains("home") {
        return Err(format!("the walkthrough printed no tunnel:\n{out}"));
    }
    Ok(())
}

/// The logs of every operator pod (and of its previous container, where it restarted),
/// written to the scratch directory; their paths.
pub async fn operator_logs(env: &Env, client: &Client) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for pod in operator_pods(client).await? {
        let name = pod.name_any();
        for previous in [false, true] {
            let mut args = vec!["-n", OPERATOR_NAMESPACE, "logs", name.as_str()];
            if previous {
                args.push("--previous");
            }
            let Ok(text) = env.kubectl(&args) else {
                if previous {
                    continue;
                }
                return Err(format!("kubectl logs {name} failed"));
            };
            let path = env.scratch.join(format!(
                "pod-{name}{}.log",
                if previous { "-previous" } else { "" }
            ));
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            out.push(path);
        }
    }
    Ok(out)
}

/// After a failure: the operator pods' logs, every pod and the Events of the cluster, into
/// the scratch directory (kept when the phase fails).
pub async fn keep_logs(env: &Env) {
    if let Ok(client) = env.client().await {
        if let Err(e) = operator_logs(env, &client).await {
            println!("     note: the operator pods' logs could not all be read: {e}");
        }
    }
    for (file, args) in [
        ("pods.txt", &["get", "pods", "-A", "-o", "wide"][..]),
        (
            "events.txt",
            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
        ),
    ] {
        if let Ok(text) = env.kubectl(args) {
            let _ = std::fs::write(env.scratch.join(file), text);
        }
    }
}

/// Restart counts of the operator's containers, by pod.
async fn operator_restarts(client: &Client) -> Result<BTreeMap<String, i32>, String> {
    Ok(operator_pods(client)
        .await?
        .iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            (p.name_any(), restarts)
        })
        .collect())
}

/// The operator's reconcile counter, from a pod's own /metrics (through the API server's
/// proxy to the pod).
async fn pod_reconciles(env: &Env, pod: &str) -> Result<f64, String> {
    let text = env.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod}:8080/proxy/metrics"),
    ])?;
    text.lines()
        .find_map(|l| l.strip_prefix("securetunnel_reconciles_total "))
        .ok_or_else(|| format!("no securetunnel_reconciles_total in {pod}'s /metrics"))?
        .trim()
        .parse()
        .map_err(|e| format!("securetunnel_reconciles_total: {e}"))
}

/// `kubectl rollout restart` of the operator over `tunnels` converged tunnels: new pods, a new
/// leader that reconciles every tunnel, and not one write of the operator's to a kind it
/// writes (Leases aside), from the audit log.
pub async fn pods_restart_write_nothing(
    env: &Env,
    client: &Client,
    user: &str,
    tunnels: &[&str],
) -> Outcome {
    let log = env.audit_log.as_ref().ok_or("no audit log")?;
    let before = names(&operator_pods(client).await?);
    for t in tunnels {
        lifecycle::connectors_ready(client, t, 2, WAIT).await?;
    }
    let mark = crate::support::audit_events(log)?.len();
    env.kubectl(&[
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "restart",
        &format!("deployment/{RELEASE}"),
    ])?;
    rolled_out(env, OPERATOR_NAMESPACE, RELEASE, "180s")?;
    let leader = leader_among(client, &before, WAIT).await?;
    let n = tunnels.len() as f64;
    wait_for(
        WAIT,
        &format!("the new leader {leader} to reconcile {n} tunnels"),
        || async {
            let done = pod_reconciles(env, &leader).await?;
            if done >= n {
                Ok(())
            } else {
                Err(format!("{done} reconciles"))
            }
        },
    )
    .await?;
    // Let any write a reconcile would make reach the API server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resources: Vec<&str> = crate::support::written_resources()
        .into_iter()
        .filter(|r| *r != "leases")
        .collect();
    let events: Vec<_> = crate::support::audit_events(log)?
        .into_iter()
        .skip(mark)
        .collect();
    // The new pods' own requests must be there, or no write below proves nothing.
    if !events.iter().any(|e| e.user == user) {
        return Err(format!(
            "the audit log has no request of {user} since the restart"
        ));
    }
    let writes: Vec<String> = events
        .into_iter()
        .filter(|e| {
            e.user == user
                && !matches!(e.verb.as_str(), "get" | "list" | "watch")
                && resources.contains(&e.resource.as_str())
        })
        .map(|e| format!("{} {} ({})", e.verb, e.uri, e.code))
        .collect();
    if writes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the restarted operator wrote {} times: {writes:#?}",
            writes.len()
        ))
    }
}

/// `component` of the control plane (kube-apiserver or etcd) stopped for `outage` right after
/// a new tunnel is applied, then started: the operator's pods (reaching the API server through
/// the kubernetes Service) converge the new tunnel and keep the old one whole, without a
/// restart of theirs (no liveness failure, no crash).
pub async fn outage(
    env: &Env,
    client: &Client,
    component: &str,
    origin_tunnel: &str,
    new_tunnel: &str,
    image: &str,
    outage: Duration,
) -> Outcome {
    let restarts = operator_restarts(client).await?;
    apply_tunnel(env, new_tunnel, image, &["outage.e2e.example.com"])?;
    let stopped = Instant::now();
    let from = k8s_openapi::jiff::Timestamp::now();
    env.cluster("stop", component)?;
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    env.cluster("start", component)?;
    if let Ok(mut windows) = crate::support::RESTARTS.lock() {
        windows.push((from, k8s_openapi::jiff::Timestamp::now()));
    }
    let back = Instant::now();
    for t in [new_tunnel, origin_tunnel] {
        lifecycle::all_converged(client, &[t.to_string()], 2, Duration::from_secs(300)).await?;
    }
    println!(
        "     both tunnels Ready {:.1} s after {component} was started again",
        back.elapsed().as_secs_f64()
    );
    let after = operator_restarts(client).await?;
    if after != restarts {
        return Err(format!(
            "the operator's containers restarted: before {restarts:?}, after {after:?}"
        ));
    }
    lifecycle::delete_and_collect(client, new_tunnel, &[]).await
}
