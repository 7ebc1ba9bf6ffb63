//! Every manifest we ship or render, checked by real tools: Kubernetes schema
//! validation (`kubernetes-validate --strict`) for the oldest and newest
//! Kubernetes releases we support, and `checkov` for security findings. The
//! tools live in the virtualenv that `scripts/test.sh` prepares; without it
//! these tests fail with instructions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{checkov, kubernetes_validate, root, scratch_dir};

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
