//! The sandbox, decided by a NetworkPolicy engine not written here: cyclonus (`analyze
//! --mode query-traffic`) evaluates each input's rendered NetworkPolicy against a matrix
//! of connections from and to its connector pod. The connections that must pass come from
//! tests/fixtures/sandbox/expected.yaml; the ones that must not are derived around them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};

use securetunnel_operator::names::{
    child_labels, EDGE_PORT, HTTPS_PORT, MANAGED_BY, METRICS_PORT, NAME_LABEL,
};
use securetunnel_operator::offline::DEFAULT_OPERATOR_NAMESPACE;

use crate::support::{run_cmd, Env, Outcome};

const EXPECTED: &str = "tests/fixtures/sandbox/expected.yaml";
const TOKEN_FILE: &str = "tests/fixtures/example-token.txt";
const SERVICES: &str = "config/samples/preview/services.yaml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Deserialize)]
struct Expected {
    input: String,
    #[serde(default)]
    origins: Vec<Origin>,
    dns: Option<Peer>,
    #[serde(default)]
    access: bool,
    scrapers: Option<Peer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Origin {
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    ip: Option<String>,
    port: u16,
    #[serde(default)]
    port_name: String,
}

#[derive(Deserialize, Clone)]
struct Peer {
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// One end of a connection: a pod (namespace, labels) with an IP, or an address.
#[derive(Clone)]
enum End {
    Pod {
        namespace: String,
        labels: BTreeMap<String, String>,
        ip: String,
    },
    Address(String),
}

impl End {
    fn pod(namespace: &str, labels: &BTreeMap<String, String>, ip: &str) -> End {
        End::Pod {
            namespace: namespace.to_string(),
            labels: labels.clone(),
            ip: ip.to_string(),
        }
    }

    fn json(&self) -> Value {
        match self {
            End::Pod {
                namespace,
                labels,
                ip,
            } => json!({
                "Internal": {
                    "Namespace": namespace,
                    "NamespaceLabels": { "kubernetes.io/metadata.name": namespace },
                    "PodLabels": labels,
                },
                "IP": ip,
            }),
            End::Address(ip) => json!({ "Internal": null, "IP": ip }),
        }
    }

    fn describe(&self) -> String {
        match self {
            End::Pod {
                namespace, labels, ..
            } => format!("{namespace}/{labels:?}"),
            End::Address(ip) => ip.clone(),
        }
    }
}

struct Case {
    from: End,
    to: End,
    protocol: &'static str,
    port: u16,
    port_name: String,
    allowed: bool,
    why: String,
}

impl Case {
    fn json(&self) -> Value {
        json!({
            "Source": self.from.json(),
            "Destination": self.to.json(),
            "Protocol": self.protocol,
            "ResolvedPort": self.port,
            "ResolvedPortName": self.port_name,
        })
    }
}

/// The tunnel's namespace and name, read from the input's first document.
fn tunnel_of(input: &Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let doc: Value = serde_norway::Deserializer::from_str(&text)
        .next()
        .map(|d| serde::Deserialize::deserialize(d).map_err(|e| e.to_string()))
        .ok_or("empty input")??;
    Ok((
        doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// The connections to decide for one input, with what must come of each.
fn cases(e: &Expected, namespace: &str, name: &str) -> Vec<Case> {
    let connector = End::pod(namespace, &child_labels(name), "10.244.200.10");
    let intruder = End::pod(
        namespace,
        &BTreeMap::from([("app".to_string(), "intruder".to_string())]),
        "10.244.200.20",
    );
    let mut out = Vec::new();
    let mut egress = |to: End, protocol, port, port_name: &str, allowed, why: String| {
        out.push(Case {
            from: connector.clone(),
            to,
            protocol,
            port,
            port_name: port_name.to_string(),
            allowed,
            why,
        })
    };
    for (i, origin) in e.origins.iter().enumerate() {
        let to = match (&origin.ip, &origin.namespace) {
            (Some(ip), _) => End::Address(ip.clone()),
            (None, Some(ns)) => End::pod(ns, &origin.labels, &format!("10.244.200.{}", 30 + i)),
            (None, None) => continue,
        };
        egress(
            to.clone(),
            "TCP",
            origin.port,
            &origin.port_name,
            true,
            "an origin".into(),
        );
        egress(
            to.clone(),
            "TCP",
            origin.port + 1,
            "",
            false,
            "another port of an origin".into(),
        );
        egress(
            intruder.clone(),
            "TCP",
            origin.port,
            &origin.port_name,
            false,
            "another pod of the connector's namespace, on an origin's port".into(),
        );
    }
    for port in [443, 6443] {
        egress(
            End::Address("10.96.0.1".into()),
            "TCP",
            port,
            "",
            false,
            "the API server".into(),
        );
    }
    for (ip, protocol) in [
        ("198.41.192.5", "TCP"),
        ("198.41.192.5", "UDP"),
        ("2606:4700:a0::1", "UDP"),
    ] {
        egress(
            End::Address(ip.into()),
            protocol,
            EDGE_PORT,
            "",
            true,
            "the Cloudflare edge".into(),
        );
    }
    egress(
        End::Address("104.16.0.1".into()),
        "TCP",
        HTTPS_PORT,
        "",
        e.access,
        "Cloudflare on 443 (open only with Access)".into(),
    );
    let dns = e.dns.clone().unwrap_or(Peer {
        namespace: "kube-system".into(),
        labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
    });
    for protocol in ["UDP", "TCP"] {
        egress(
            End::pod(&dns.namespace, &dns.labels, "10.244.200.53"),
            protocol,
            53,
            "",
            true,
            "cluster DNS".into(),
        );
    }
    let scrape = |from: End, allowed, why: &str| Case {
        from,
        to: connector.clone(),
        protocol: "TCP",
        port: METRICS_PORT,
        port_name: "metrics".into(),
        allowed,
        why: why.into(),
    };
    let prometheus = BTreeMap::from([("app".to_string(), "prometheus".to_string())]);
    if let Some(s) = &e.scrapers {
        out.push(scrape(
            End::pod(&s.namespace, &s.labels, "10.244.200.60"),
            true,
            "a scraper metrics.allowFrom admits",
        ));
    } else {
        out.push(scrape(
            End::pod("monitoring", &prometheus, "10.244.200.60"),
            false,
            "a scraper, with no metrics.allowFrom",
        ));
    }
    out.push(scrape(
        End::pod("default", &prometheus, "10.244.200.61"),
        false,
        "a scraper from a namespace metrics.allowFrom does not select",
    ));
    // The operator's pods read /config (render's default operator namespace); another
    // pod of that namespace may not.
    let operator = BTreeMap::from([(NAME_LABEL.to_string(), MANAGED_BY.to_string())]);
    out.push(scrape(
        End::pod(DEFAULT_OPERATOR_NAMESPACE, &operator, "10.244.200.70"),
        true,
        "the operator, asking which configuration the connector runs",
    ));
    let other = BTreeMap::from([("app".to_string(), "other".to_string())]);
    out.push(scrape(
        End::pod(DEFAULT_OPERATOR_NAMESPACE, &other, "10.244.200.71"),
        false,
        "another pod of the operator's namespace",
    ));
    out
}

/// The input's NetworkPolicy, as `render` prints it.
fn rendered_policy(input: &Path) -> Result<Value, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"));
    cmd.current_dir(root())
        .arg("render")
        .arg("-f")
        .arg(input)
        .arg("--token-file")
        .arg(TOKEN_FILE);
    if input.starts_with(root().join("config/samples")) {
        cmd.arg("--services").arg(SERVICES);
    }
    let yaml = run_cmd(&mut cmd, None)?;
    let policy = serde_norway::Deserializer::from_str(&yaml)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .find(|d: &Value| d["kind"] == "NetworkPolicy");
    policy.ok_or_else(|| format!("{}: no NetworkPolicy rendered", input.display()))
}

/// cyclonus's verdict on each connection, in order.
fn verdicts(
    cyclonus: &Path,
    dir: &Path,
    policy: &Value,
    cases: &[Case],
) -> Result<Vec<bool>, String> {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    // cyclonus reads one policy per file.
    let yaml = serde_norway::to_string(policy).map_err(|e| e.to_string())?;
    std::fs::write(policies.join("policy.yaml"), yaml).map_err(|e| e.to_string())?;
    let traffic = dir.join("traffic.json");
    let list: Vec<Value> = cases.iter().map(Case::json).collect();
    std::fs::write(
        &traffic,
        serde_json::to_vec_pretty(&list).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let out = run_cmd(
        Command::new(cyclonus)
            .args(["analyze", "--mode", "query-traffic", "--policy-path"])
            .arg(&policies)
            .arg("--traffic-path")
            .arg(&traffic),
        None,
    )?;
    let verdicts: Vec<bool> = out
        .lines()
        .filter(|l| l.contains("IS ALLOWED?"))
        .map(|l| l.contains("TRUE"))
        .collect();
    if verdicts.len() != cases.len() {
        return Err(format!(
            "cyclonus gave {} verdicts for {} connections:\n{out}",
            verdicts.len(),
            cases.len()
        ));
    }
    Ok(verdicts)
}

/// Every sample and render fixture has its expectations.
fn every_input_is_expected(expected: &[Expected]) -> Outcome {
    let mut inputs: Vec<String> = Vec::new();
    for (dir, suffix) in [
        ("config/samples", ".yaml"),
        ("tests/fixtures/render", ".input.yaml"),
    ] {
        for entry in std::fs::read_dir(root().join(dir)).map_err(|e| e.to_string())? {
            let name = entry.map_err(|e| e.to_string())?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(suffix) && name != "kustomization.yaml" {
                inputs.push(format!("{dir}/{name}"));
            }
        }
    }
    let missing: Vec<&String> = inputs
        .iter()
        .filter(|i| !expected.iter().any(|e| &e.input == *i))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{EXPECTED} has no entry for {missing:?}"))
    }
}

/// Each input's NetworkPolicy lets through exactly what it must, as cyclonus decides.
pub fn matrix(env: &Env, cyclonus: &Path) -> Outcome {
    let text = std::fs::read_to_string(root().join(EXPECTED)).map_err(|e| e.to_string())?;
    let expected: Vec<Expected> =
        serde_norway::from_str(&text).map_err(|e| format!("{EXPECTED}: {e}"))?;
    every_input_is_expected(&expected)?;
    let mut wrong = Vec::new();
    let mut decided = 0;
    for (i, e) in expected.iter().enumerate() {
        let input = root().join(&e.input);
        let (namespace, name) = tunnel_of(&input)?;
        let cases = cases(e, &namespace, &name);
        let dir = env.scratch.join(format!("sandbox-{i}"));
        let policy = rendered_policy(&input)?;
        let verdicts = verdicts(cyclonus, &dir, &policy, &cases)?;
        for (case, allowed) in cases.iter().zip(verdicts) {
            decided += 1;
            if allowed != case.allowed {
                wrong.push(format!(
                    "{}: {} -> {} {}/{}{}: {} ({}), expected {}",
                    e.input,
                    case.from.describe(),
                    case.to.describe(),
                    case.port,
                    case.protocol,
                    if case.port_name.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", case.port_name)
                    },
                    if allowed { "allowed" } else { "denied" },
                    case.why,
                    if case.allowed { "allowed" } else { "denied" },
                ));
            }
        }
    }
    if decided < 100 {
        return Err(format!("only {decided} connections decided"));
    }
    if wrong.is_empty() {
        println!("     ({decided} connections decided by cyclonus, as expected)");
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}
