//! The Helm chart and the kustomize base, with Helm's real engine (PyPI
//! helm-python-sdk): render, strict lint, schema, RBAC and agreement with
//! kustomize, and the generated files they carry.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{checkov, kubernetes_validate, root, scratch_dir, venv_tool};
use securetunnel_operator::children::Integration;
use securetunnel_operator::rbac;
use serde_json::Value;

const CHART: &str = "charts/securetunnel-operator";
const ALL_OPTIONS: &str = "tests/fixtures/chart/all-options.json";

fn helm(args: &[&str]) -> std::process::Output {
    Command::new(venv_tool("python"))
        .current_dir(root())
        .arg("scripts/helm.py")
        .args(args)
        .output()
        .expect("python runs")
}

fn values_file(dir: &Path, name: &str, json: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, json).expect("write values");
    file.to_string_lossy().into_owned()
}

/// Renders the chart with the values file into `dir`; returns the manifest files.
fn render(values: &str, dir: &Path) -> Vec<PathBuf> {
    let out = helm(&["render", CHART, values, &dir.to_string_lossy()]);
    assert!(
        out.status.success(),
        "helm render: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rendered dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
}

fn documents(files: &[PathBuf]) -> Vec<Value> {
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read manifest");
            serde_norway::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).expect("manifest is YAML"))
                .filter(|v: &Value| !v.is_null())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn kind_and_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn rules(access: &[rbac::Access]) -> Value {
    serde_json::to_value(rbac::policy_rules(access)).expect("rules")
}

#[test]
fn default_and_all_options_renders_validate_and_pass_checkov() {
    let dir = scratch_dir("chart");
    let defaults = values_file(&dir, "defaults.json", "{}");
    for (name, values) in [
        ("defaults", defaults.as_str()),
        ("all-options", ALL_OPTIONS),
    ] {
        let out_dir = dir.join(name);
        let files = render(values, &out_dir);
        assert!(files.len() >= 7, "{name}: rendered {files:?}");
        // kubernetes-validate has no schema for the ServiceMonitor CRD; it warns and moves on.
        if let Err(e) = kubernetes_validate(&files) {
            panic!("{name}: {e}");
        }
        match checkov(&out_dir) {
            Ok(passed) => assert!(passed > 50, "{name}: checkov ran only {passed} checks"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn helm_lint_strict_is_clean_for_both_value_sets() {
    let dir = scratch_dir("chart-lint");
    let defaults = values_file(&dir, "defaults.json", "{}");
    for values in [defaults.as_str(), ALL_OPTIONS] {
        let out = helm(&["lint", CHART, values]);
        assert!(
            out.status.success(),
            "helm lint --strict {values}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("lint report");
        assert_eq!(report["total_charts_linted"], 1);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_values_schema_rejects_wrong_types_and_typos() {
    let dir = scratch_dir("chart-schema");
    let good = values_file(
        &dir,
        "good.json",
        &std::fs::read_to_string(root().join(ALL_OPTIONS)).expect("all options"),
    );
    assert!(
        helm(&["schema", CHART, &good]).status.success(),
        "all-options must pass the schema"
    );
    let bad = [
        r#"{"replicas": "two"}"#,
        r#"{"replicas": 0}"#,
        r#"{"logging": {"format": "xml"}}"#,
        r#"{"image": {"pullPolicy": "Sometimes"}}"#,
        r#"{"watchNamespaces": "apps"}"#,
        r#"{"watchNamespaces": ["Apps_Team"]}"#,
        r#"{"metrics": {"service": {"port": 70000}}}"#,
        r#"{"leaderElection": {"enabled": "yes"}}"#,
        r#"{"replica": 2}"#,
        r#"{"crds": {"instal": true}}"#,
        r#"{"grafanaDashboard": {"enabled": "yes"}}"#,
        r#"{"grafanaDashboard": {"namespace": "Monitoring"}}"#,
        r#"{"grafanaDashboard": {"sidecarLabel": ""}}"#,
        r#"{"grafanaDashboard": {"sidecarLabel": "grafana dashboard"}}"#,
        r#"{"grafanaDashboard": {"sidecarLabelValue": 1}}"#,
        r#"{"grafanaDashboard": {"labels": {"release": 1}}}"#,
        r#"{"grafanaDashboard": {"folder": "Networking"}}"#,
        r#"{"integrations": {"dnsEndpoints": "yes"}}"#,
        r#"{"integrations": {"externalDns": true}}"#,
        r#"{"configCheckIntervalSeconds": -1}"#,
        r#"{"configCheckIntervalSeconds": "10m"}"#,
    ];
    for (i, values) in bad.iter().enumerate() {
        let file = values_file(&dir, &format!("bad-{i}.json"), values);
        let out = helm(&["schema", CHART, &file]);
        assert!(!out.status.success(), "the schema accepted {values}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The Grafana dashboard is off by default; on, it is one ConfigMap carrying the
/// sidecar's label and files/dashboard.json as it is.
#[test]
fn the_grafana_dashboard_configmap_is_opt_in_and_carries_the_json() {
    let dir = scratch_dir("chart-dashboard");
    let is_dashboard = |d: &&Value| {
        d["kind"] == "ConfigMap"
            && d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-dashboard"))
    };
    let defaults = values_file(&dir, "defaults.json", "{}");
    let docs = documents(&render(&defaults, &dir.join("defaults")));
    assert!(
        !docs.iter().any(|d| is_dashboard(&d)),
        "the dashboard must be opt-in"
    );

    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(CHART).join("files/dashboard.json"))
            .expect("dashboard.json"),
    )
    .expect("dashboard.json is JSON");
    let enabled = values_file(
        &dir,
        "enabled.json",
        r#"{"grafanaDashboard": {"enabled": true}}"#,
    );
    for (values, namespace, label_value, extra_label, annotation) in [
        (enabled.as_str(), "securetunnel-system", "1", None, None),
        (
            ALL_OPTIONS,
            "monitoring",
            "1",
            Some(("release", "prometheus")),
            Some(("grafana_folder", "Networking")),
        ),
    ] {
        let docs = documents(&render(values, &dir.join(format!("on-{namespace}"))));
        let maps: Vec<&Value> = docs.iter().filter(is_dashboard).collect();
        assert_eq!(maps.len(), 1, "{values}: one dashboard ConfigMap");
        let map = maps[0];
        let meta = &map["metadata"];
        assert_eq!(meta["name"], "securetunnel-operator-dashboard");
        assert_eq!(meta["namespace"], namespace, "{values}");
        assert_eq!(meta["labels"]["grafana_dashboard"], label_value, "{values}");
        assert_eq!(
            meta["labels"]["app.kubernetes.io/name"],
            "securetunnel-operator"
        );
        if let Some((k, v)) = extra_label {
            assert_eq!(meta["labels"][k], v, "{values}");
        }
        if let Some((k, v)) = annotation {
            assert_eq!(meta["annotations"][k], v, "{values}");
        }
        let data = map["data"].as_object().expect("data");
        assert_eq!(data.len(), 1, "one dashboard: {:?}", data.keys());
        let (key, text) = data.iter().next().expect("one key");
        assert!(key.ends_with(".json"), "the sidecar loads *.json: {key}");
        let rendered: Value =
            serde_json::from_str(text.as_str().expect("text")).expect("the ConfigMap holds JSON");
        assert_eq!(
            rendered, shipped,
            "the ConfigMap holds files/dashboard.json as it is"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The chart grants exactly what src/rbac.rs lists: cluster-wide by
/// default, per namespace with watchNamespaces.
#[test]
fn chart_rbac_is_exactly_the_code_s_list() {
    let dir = scratch_dir("chart-rbac");
    let defaults = values_file(&dir, "defaults.json", "{}");
    let docs = documents(&render(&defaults, &dir.join("defaults")));
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| kind_and_name(d) == (kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .clone()
    };
    assert_eq!(
        find("ClusterRole", "securetunnel-operator")["rules"],
        rules(&rbac::controller())
    );
    assert_eq!(
        find("ClusterRole", "securetunnel-operator-crd-reader")["rules"],
        rules(rbac::CLUSTER)
    );
    assert_eq!(
        find("Role", "securetunnel-operator-leader-election")["rules"],
        rules(rbac::LEADER_ELECTION)
    );
    let role_kinds: Vec<(String, String)> = docs
        .iter()
        .map(kind_and_name)
        .filter(|(k, _)| k.ends_with("Role"))
        .collect();
    assert_eq!(role_kinds.len(), 3, "no other roles: {role_kinds:?}");

    let scoped = documents(&render(ALL_OPTIONS, &dir.join("scoped")));
    assert!(
        !scoped
            .iter()
            .any(|d| kind_and_name(d) == ("ClusterRole".into(), "securetunnel-operator".into())),
        "watchNamespaces must not grant cluster-wide access"
    );
    // all-options enables every integration: their rules join the controller's.
    let mut with_integrations = rbac::controller();
    for i in Integration::ALL {
        with_integrations.extend(rbac::integration(i));
    }
    for ns in ["apps", "shop"] {
        let role = scoped
            .iter()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(role["rules"], rules(&with_integrations));
        assert!(scoped
            .iter()
            .any(|d| d["kind"] == "RoleBinding" && d["metadata"]["namespace"] == ns));
    }
    let deployment = scoped
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("deployment");
    let args: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&"--namespace=apps") && args.contains(&"--namespace=shop"),
        "{args:?}"
    );
    for i in Integration::ALL {
        let flag = format!("--integration={}", i.name());
        assert!(
            args.contains(&flag.as_str()),
            "{flag} missing from {args:?}"
        );
    }
    // 0 (never) is a value, not an absence.
    assert!(
        args.contains(&"--config-check-interval-seconds=0"),
        "{args:?}"
    );
    let default_args = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(
        !default_args.contains("--integration"),
        "integrations are opt-in: {default_args}"
    );
    assert!(
        !default_args.contains("--config-check-interval-seconds"),
        "the operator's own default unless set: {default_args}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Each integration's kustomize component grants exactly the code's rules for it and
/// passes its flag; an overlay of config/default with both renders and validates.
#[test]
fn kustomize_components_enable_each_integration() {
    for i in Integration::ALL {
        let component = root().join("config/components").join(i.name());
        let text = std::fs::read_to_string(component.join("rbac.yaml")).expect("rbac.yaml");
        let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
            .collect();
        let role = docs
            .iter()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("a ClusterRole");
        assert_eq!(role["rules"], rules(&rbac::integration(i)), "{}", i.name());
        let kustomization =
            std::fs::read_to_string(component.join("kustomization.yaml")).expect("kustomization");
        assert!(kustomization.contains(&format!("value: --integration={}", i.name())));
    }
    // An overlay inside the repository (kustomize loads nothing from outside its root).
    let overlay = root().join(format!("config/.test-overlay-{}", std::process::id()));
    std::fs::create_dir_all(&overlay).expect("overlay dir");
    let components: Vec<String> = Integration::ALL
        .iter()
        .map(|i| format!("  - ../components/{}", i.name()))
        .collect();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "resources:\n  - ../default\ncomponents:\n{}\n",
            components.join("\n")
        ),
    )
    .expect("write overlay");
    let out = Command::new("kubectl")
        .args(["kustomize", &overlay.to_string_lossy()])
        .output()
        .expect("kubectl runs");
    std::fs::remove_dir_all(&overlay).ok();
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    for i in Integration::ALL {
        assert!(
            text.contains(&format!("- --integration={}", i.name())),
            "{}",
            i.name()
        );
        assert!(text.contains(&format!("name: securetunnel-operator-{}", i.name())));
    }
    let dir = scratch_dir("kustomize-integrations");
    let file = dir.join("all.yaml");
    std::fs::write(&file, &text).expect("write");
    if let Err(e) = kubernetes_validate(&[file]) {
        panic!("{e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn kustomize_default_installs_what_the_chart_installs() {
    let dir = scratch_dir("kustomize");
    let out = Command::new("kubectl")
        .args(["kustomize", "config/default"])
        .current_dir(root())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kustomized = dir.join("kustomized.yaml");
    std::fs::write(&kustomized, &out.stdout).expect("write");
    let from_kustomize: BTreeSet<(String, String)> = documents(std::slice::from_ref(&kustomized))
        .iter()
        .map(kind_and_name)
        // The chart leaves the namespace to `helm install --create-namespace`.
        .filter(|(kind, _)| kind != "Namespace")
        .collect();
    let defaults = values_file(&dir, "defaults.json", "{}");
    let from_chart: BTreeSet<(String, String)> = documents(&render(&defaults, &dir.join("chart")))
        .iter()
        .map(kind_and_name)
        .collect();
    assert_eq!(from_kustomize, from_chart);
    if let Err(e) = kubernetes_validate(&[kustomized]) {
        panic!("{e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn kustomize_rbac_is_exactly_the_code_s_list() {
    let text = std::fs::read_to_string(root().join("config/rbac/rbac.yaml")).expect("rbac.yaml");
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect();
    let rules_of = |name: &str| {
        docs.iter()
            .find(|d| {
                d["metadata"]["name"] == name
                    && d["kind"].as_str().is_some_and(|k| k.ends_with("Role"))
            })
            .unwrap_or_else(|| panic!("no role {name}"))["rules"]
            .clone()
    };
    assert_eq!(
        rules_of("securetunnel-operator"),
        rules(&rbac::controller())
    );
    assert_eq!(
        rules_of("securetunnel-operator-crd-reader"),
        rules(rbac::CLUSTER)
    );
    assert_eq!(
        rules_of("securetunnel-operator-leader-election"),
        rules(rbac::LEADER_ELECTION)
    );
}

/// Generated files the chart and kustomize carry must match the code.
#[test]
fn generated_copies_match_the_binary() {
    let run = |arg: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"))
            .arg(arg)
            .output()
            .expect("binary runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf8")
    };
    let crd = run("crd");
    for copy in [
        "charts/securetunnel-operator/files/crd.yaml",
        "config/crd/securetunnel.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(copy)).expect("copy");
        assert!(
            text == crd,
            "{copy} is out of date: copy crds/securetunnel.yaml over it"
        );
    }
    let rules = run("rbac");
    let text =
        std::fs::read_to_string(root().join("charts/securetunnel-operator/files/rbac-rules.yaml"))
            .expect("rules file");
    assert!(
        text == rules,
        "charts/securetunnel-operator/files/rbac-rules.yaml is out of date: run `cargo run -- rbac > charts/securetunnel-operator/files/rbac-rules.yaml`"
    );
}
