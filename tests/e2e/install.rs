//! Install by Helm or by kustomize, check what the API server made of it, and mint the
//! kubeconfig the operator then runs with: a token of the installed ServiceAccount, so its
//! permissions are exactly the chart's or kustomize's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{run_cmd, wait_for, Env, Outcome};

pub const NAMESPACE: &str = "securetunnel-system";
pub const RELEASE: &str = "securetunnel-operator";
pub const SERVICE_ACCOUNT: &str = "securetunnel-operator";
pub const CRD: &str = "securetunnels.securetunnel.dev";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Helm,
    Kustomize,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "helm" => Some(Method::Helm),
            "kustomize" => Some(Method::Kustomize),
            _ => None,
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The values the suite installs the chart with (`--set`): every default, and both
/// integrations (whose CRDs the suite installs later, to see the operator pick them up).
pub const HELM_VALUES: &str = "integrations.dnsEndpoints=true,integrations.podMonitors=true";

/// The manifests the method installs, as the tool renders them.
fn rendered(env: &Env, method: Method) -> Result<String, String> {
    match method {
        Method::Helm => {
            let helm = env.helm.as_ref().ok_or("E2E_HELM is not set")?;
            run_cmd(
                Command::new(helm)
                    .args(["template", RELEASE])
                    .arg(root().join("charts/securetunnel-operator"))
                    .args(["--namespace", NAMESPACE])
                    .args(["--set", HELM_VALUES]),
                None,
            )
        }
        Method::Kustomize => run_cmd(
            Command::new("kubectl")
                .arg("kustomize")
                .arg(root().join("config/default")),
            None,
        ),
    }
}

/// `helm install` of the chart with `values` (each `--set KEY=VALUE`).
pub fn helm_install(env: &Env, values: &[&str]) -> Outcome {
    helm_release(env, "install", "--create-namespace", values)
}

/// `helm upgrade` of the release, keeping its values but `values`.
pub fn helm_upgrade(env: &Env, values: &[&str]) -> Outcome {
    helm_release(env, "upgrade", "--reuse-values", values)
}

/// `helm VERB RELEASE CHART FLAG` in the operator's namespace, with `values` set.
fn helm_release(env: &Env, verb: &str, flag: &str, values: &[&str]) -> Outcome {
    let helm = env.helm.as_ref().ok_or("E2E_HELM is not set")?;
    run_cmd(
        Command::new(helm)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args([verb, RELEASE])
            .arg(root().join("charts/securetunnel-operator"))
            .args(["--namespace", NAMESPACE, flag])
            .args(values.iter().flat_map(|v| ["--set", v])),
        None,
    )
    .map(|_| ())
}

pub fn install(env: &Env, method: Method) -> Outcome {
    match method {
        Method::Helm => helm_install(env, &[HELM_VALUES]),
        Method::Kustomize => env
            .kubectl(&[
                "apply",
                "-k",
                &root().join("config/default").display().to_string(),
            ])
            .map(|_| ()),
    }
}

pub async fn crd_established(env: &Env) -> Outcome {
    established(env, CRD).await
}

/// Waits until the CustomResourceDefinition `name` is Established and its names accepted.
pub async fn established(env: &Env, name: &str) -> Outcome {
    wait_for(
        Duration::from_secs(60),
        &format!("the CRD {name} is Established"),
        || async {
            let crd: Value =
                serde_json::from_str(&env.kubectl(&["get", "crd", name, "-o", "json"])?)
                    .map_err(|e| e.to_string())?;
            let conditions = crd["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let status = |t: &str| {
                conditions
                    .iter()
                    .find(|c| c["type"] == t)
                    .map(|c| format!("{}={} ({})", t, c["status"], c["message"]))
                    .unwrap_or_else(|| format!("{t} absent"))
            };
            let established = status("Established");
            let names = status("NamesAccepted");
            if established.starts_with("Established=\"True\"")
                && names.starts_with("NamesAccepted=\"True\"")
            {
                Ok(())
            } else {
                Err(format!(
                    "CustomResourceDefinition {name}: {established}, {names}"
                ))
            }
        },
    )
    .await
}

/// Every RBAC object the method renders exists in the cluster with the same rules.
pub fn rbac_objects_exist(env: &Env, method: Method) -> Outcome {
    let text = rendered(env, method)?;
    let mut checked = 0;
    for doc in text.split("\n---") {
        let Ok(obj) = serde_norway::from_str::<Value>(doc) else {
            continue;
        };
        let kind = obj["kind"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
        ) {
            continue;
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE);
        let mut args = vec!["get", kind, name, "-o", "json"];
        if kind.starts_with("Role") {
            args.extend(["-n", namespace]);
        }
        let live: Value = serde_json::from_str(
            &env.kubectl(&args)
                .map_err(|e| format!("{kind} {name} was not created: {e}"))?,
        )
        .map_err(|e| e.to_string())?;
        for field in ["rules", "roleRef", "subjects"] {
            if !obj[field].is_null() && normalize(&obj[field]) != normalize(&live[field]) {
                return Err(format!(
                    "{kind} {name}: {field} differs\n  rendered: {}\n  live:     {}",
                    obj[field], live[field]
                ));
            }
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(format!("{method:?} renders no RBAC objects"));
    }
    Ok(())
}

/// The API server drops empty lists and orders nothing: compare as canonical JSON.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A kubeconfig that authenticates as the installed ServiceAccount (`kubectl create token`).
pub fn service_account_kubeconfig(env: &Env, into: &Path) -> Result<PathBuf, String> {
    let token = env.kubectl(&[
        "-n",
        NAMESPACE,
        "create",
        "token",
        SERVICE_ACCOUNT,
        "--duration=4h",
    ])?;
    let server = env.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])?;
    let ca = env.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority}",
    ])?;
    let ca_data = env.kubectl(&[
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ])?;
    let ca_line = if !ca_data.trim().is_empty() {
        format!("certificate-authority-data: {}", ca_data.trim())
    } else {
        format!("certificate-authority: {}", ca.trim())
    };
    let path = into.join("operator.kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {server}
    {ca_line}
users:
- name: {SERVICE_ACCOUNT}
  user:
    token: {token}
contexts:
- name: e2e
  context: {{ cluster: e2e, user: {SERVICE_ACCOUNT}, namespace: {NAMESPACE} }}
current-context: e2e
",
        server = server.trim(),
        token = token.trim()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    // The token really is the ServiceAccount's.
    let who = run_cmd(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&path)
            .args([
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ]),
        None,
    )?;
    let expected = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
    if who.trim() != expected {
        return Err(format!(
            "the minted kubeconfig authenticates as {who:?}, not {expected}"
        ));
    }
    Ok(path)
}

/// The flags the installed operator Deployment runs with, minus the ones a local
/// process sets itself (its HTTP address).
pub fn deployment_args(env: &Env) -> Result<Vec<String>, String> {
    let out = env.kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        RELEASE,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ])?;
    let args: Vec<String> = serde_json::from_str(&out).map_err(|e| format!("{out}: {e}"))?;
    Ok(args
        .into_iter()
        .filter(|a| a != "run" && !a.starts_with("--http-address"))
        .collect())
}
