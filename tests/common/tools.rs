//! The external checkers the tests run: installed into `.venv` by
//! `scripts/test.sh` (PyPI `kubernetes-validate`, `checkov`, `helm-python-sdk`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Oldest (matches the k8s-openapi feature in Cargo.toml) and newest supported.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv_tool(name: &str) -> PathBuf {
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

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("securetunnel-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs kubernetes-validate --strict on `files` for each supported release.
pub fn kubernetes_validate(files: &[PathBuf]) -> Result<(), String> {
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

/// Runs checkov on the files in `dir`; returns the number of passed checks,
/// or every failed check.
pub fn checkov(dir: &Path) -> Result<u64, String> {
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
