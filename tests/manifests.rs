//! Every manifest we ship or render, checked by real tools: Kubernetes schema
//! validation (`kubernetes-validate --strict`) for the oldest and newest
//! Kubernetes releases we support, and `checkov` for security findings. The
//! tools live in the virtualenv that `scripts/test.sh` prepares; without it
//! these tests fail with instructions.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest (matches the k8s-openapi feature in Cargo.toml) and newest supported.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("SECURETUNNEL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    let tool = venv.join("bin").join(name);
    assert!(
        tool.exists(),
        "{} not found: run the tests with scripts/test.sh, which installs it",
        tool.display()
    );
    tool
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("securetunnel-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs kubernetes-validate --strict on `files` for each supported release.
fn kubernetes_validate(files: &[PathBuf]) -> Result<(), String> {
    let tool = venv_tool("kubernetes-validate");
    for version in KUBERNETES_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("kubernetes-validate runs");
        if !out.status.success() {
            return Err(format!(
                "kubernetes-validate {version} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

fn render_sample(sample: &Path, out_dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"))
        .current_dir(root())
        .arg("render")
        .arg("-f")
        .arg(sample)
        .args(["--token-file", "tests/fixtures/example-token.txt"])
        .args(["--services", "config/samples/preview/services.yaml"])
        .output()
        .expect("render runs");
    assert!(
        out.status.success(),
        "{}: {}",
        sample.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let file = out_dir.join(sample.file_name().expect("file name"));
    std::fs::write(&file, &out.stdout).expect("write rendered");
    file
}

/// Renders every sample (with its example Services) into `dir`.
fn render_samples(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config/samples"))
        .expect("samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .map(|sample| render_sample(&sample, dir))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected at least three samples");
    files
}

/// Runs checkov on the files in `dir`; returns the number of passed checks,
/// or every failed check.
fn checkov(dir: &Path) -> Result<u64, String> {
    let out = Command::new(venv_tool("checkov"))
        .arg("--config-file")
        .arg(root().join("scripts/checkov.yaml"))
        .arg("--directory")
        .arg(dir)
        .args(["--output", "json"])
        .output()
        .expect("checkov runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "checkov printed no JSON report ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let summary = &report["summary"];
    let failed = summary["failed"]
        .as_u64()
        .ok_or("report has no summary.failed")?;
    let passed = summary["passed"]
        .as_u64()
        .ok_or("report has no summary.passed")?;
    if failed > 0 || !out.status.success() {
        let failures: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
            .collect();
        return Err(format!(
            "checkov: {failed} failed checks:\n{}",
            failures.join("\n")
        ));
    }
    Ok(passed)
}

#[test]
fn rendered_samples_and_the_crd_pass_strict_schema_validation() {
    let dir = scratch_dir("manifests");
    let mut files = render_samples(&dir);
    files.push(root().join("crds/securetunnel.yaml"));
    let result = kubernetes_validate(&files);
    std::fs::remove_dir_all(&dir).ok();
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn rendered_samples_pass_checkov_with_no_failed_check() {
    let dir = scratch_dir("checkov");
    render_samples(&dir);
    let result = checkov(&dir);
    std::fs::remove_dir_all(&dir).ok();
    match result {
        Ok(passed) => assert!(passed > 50, "checkov ran only {passed} checks"),
        Err(e) => panic!("{e}"),
    }
}

/// checkov must flag what it is there to flag: a privileged, root, unsandboxed pod.
#[test]
fn checkov_rejects_an_unhardened_pod() {
    let dir = scratch_dir("checkov-bad");
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: default}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n    securityContext: {privileged: true, runAsUser: 0}\n",
    )
    .expect("write");
    let result = checkov(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let err = result.expect_err("an unhardened pod passed checkov");
    assert!(
        err.contains("CKV_K8S_16"),
        "privileged container not flagged: {err}"
    );
}

/// The check above is only worth something if the checker rejects bad input.
#[test]
fn the_schema_validator_rejects_a_broken_manifest() {
    let dir = scratch_dir("broken");
    let cases = [
        ("unknown-field.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\nspecs: {}\n"),
        (
            "wrong-type.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
        ),
    ];
    for (name, manifest) in cases {
        let file = dir.join(name);
        std::fs::write(&file, manifest).expect("write");
        assert!(kubernetes_validate(&[file]).is_err(), "{name} was accepted");
    }
    std::fs::remove_dir_all(&dir).ok();
}
