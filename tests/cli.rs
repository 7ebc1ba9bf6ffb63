//! The command line as a user runs it: `crd` and `render -f`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_securetunnel-operator"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config/samples"))
        .expect("samples exist")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    files
}

fn documents(yaml: &str) -> Vec<serde_norway::Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("output is YAML"))
        .collect()
}

#[test]
fn committed_crd_matches_the_code() {
    let out = operator(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string(root().join("crds/securetunnel.yaml"))
        .expect("crds/securetunnel.yaml");
    assert!(
        committed == text(&out.stdout),
        "crds/securetunnel.yaml is out of date: run `cargo run -- crd > crds/securetunnel.yaml`"
    );
}

#[test]
fn every_sample_renders_all_children() {
    let samples = samples();
    assert!(
        samples.len() >= 3,
        "expected at least three samples, found {samples:?}"
    );
    for sample in samples {
        let path = sample.to_string_lossy().into_owned();
        let out = operator(&[
            "render",
            "-f",
            &path,
            "--token-file",
            "tests/fixtures/example-token.txt",
            "--services",
            "config/samples/preview/services.yaml",
        ]);
        assert!(out.status.success(), "{path}: {}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("not opened in the sandbox"),
            "{path}: every origin of the samples resolves with the preview Services: {}",
            text(&out.stderr)
        );
        let docs = documents(&text(&out.stdout));
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        let budget = kinds.contains(&"PodDisruptionBudget");
        let mut expected = vec!["NetworkPolicy", "Secret", "ConfigMap", "ServiceAccount"];
        if budget {
            expected.push("PodDisruptionBudget");
        }
        expected.push("Deployment");
        assert_eq!(
            kinds, expected,
            "{path}: the sandbox comes first, the Deployment last"
        );
        let deployment = docs.last().expect("documents");
        let replicas = deployment["spec"]["replicas"].as_i64().expect("replicas");
        assert_eq!(budget, replicas > 1, "{path}");
    }
}

#[test]
fn render_redacts_the_token_unless_asked() {
    let token = std::fs::read_to_string(root().join("tests/fixtures/example-token.txt"))
        .expect("token fixture");
    let token = token.trim();
    let sample = "config/samples/single-service.yaml";
    let args = [
        "render",
        "-f",
        sample,
        "--token-file",
        "tests/fixtures/example-token.txt",
    ];

    let out = operator(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(token),
        "token printed without --reveal-token"
    );
    assert!(stdout.contains("# data.token is redacted"));
    assert!(stdout.contains("securetunnel.dev/token-hash"));

    let out = operator(&[&args[..], &["--reveal-token"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = documents(&text(&out.stdout));
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret")
        .expect("a Secret child");
    let encoded = secret["data"]["token"].as_str().expect("secret data");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(decoded, token.as_bytes());
}

#[test]
fn render_reads_the_token_from_a_secret_in_the_same_file() {
    let token = std::fs::read_to_string(root().join("tests/fixtures/example-token.txt"))
        .expect("token fixture");
    let input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: home-tunnel-token, namespace: apps }}\nstringData: {{ token: {} }}\n---\n{}",
        token.trim(),
        std::fs::read_to_string(root().join("config/samples/single-service.yaml")).expect("sample")
    );
    let dir = std::env::temp_dir().join(format!("securetunnel-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("with-secret.yaml");
    std::fs::write(&file, input).expect("write input");
    let out = operator(&["render", "-f", &file.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("securetunnel.dev/token-hash"),
        "the token from the Secret was used"
    );
    assert!(!text(&out.stderr).contains("no token given"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn render_of_an_invalid_spec_fails_with_every_field_path() {
    let out = operator(&["render", "-f", "tests/fixtures/invalid-tunnel.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an invalid spec"
    );
    let stderr = text(&out.stderr);
    for path in [
        "spec.replicas:",
        "spec.image:",
        "spec.ingress[0].hostname:",
        "spec.ingress[0].service:",
        "spec.ingress[1].path:",
        "spec.ingress[1].service:",
        "spec.ingress[2]:",
    ] {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
}

/// A value of the wrong type is reported with its field path, like a validation error.
#[test]
fn render_names_the_field_of_a_value_of_the_wrong_type() {
    let dir = std::env::temp_dir().join(format!("securetunnel-cli-types-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cases = [
        (
            "  ingress: [ { hostname: a.example.com, service: \"http://web:80\", originRequest: { noTLSVerify: maybe } } ]\n",
            "spec.ingress[0].originRequest.noTLSVerify: invalid type: string \"maybe\", expected a boolean",
        ),
        (
            "  replicas: two\n  ingress: [ { hostname: a.example.com, service: \"http://web:80\" } ]\n",
            "spec.replicas: invalid type: string \"two\"",
        ),
        (
            "  ingress: [ { hostname: a.example.com, service: \"http://web:80\" } ]\n  connector: { edgeIPVersion: \"5\" }\n",
            "spec.connector.edgeIPVersion: unknown variant `5`",
        ),
        (
            "  ingress: [ { hostname: a.example.com, service: \"http://web:80\" } ]\n  pod: { tolerations: [ { tolerationSeconds: soon } ] }\n",
            "spec.pod.tolerations[0].tolerationSeconds: invalid type: string \"soon\"",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("case-{i}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: securetunnel.dev/v1alpha1\nkind: SecureTunnel\nmetadata: {{ name: t }}\nspec:\n  tokenSecretRef: {{ name: t }}\n{spec}"),
        )
        .expect("write");
        let out = operator(&["render", "-f", &file.to_string_lossy()]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn render_explains_unreadable_input() {
    let out = operator(&["render", "-f", "does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("could not read does-not-exist.yaml"));

    let out = operator(&["render", "-f", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: Cargo.toml"),
        "{}",
        text(&out.stderr)
    );

    let out = operator(&["render", "-f", "crds/securetunnel.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("contains no SecureTunnel"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn samples_are_listed_in_the_kustomization() {
    let kustomization = std::fs::read_to_string(root().join("config/samples/kustomization.yaml"))
        .expect("kustomization");
    for sample in samples() {
        let name = sample
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        assert!(
            kustomization.contains(name),
            "{name} is not in config/samples/kustomization.yaml"
        );
    }
}

#[test]
fn render_reports_origins_it_cannot_open() {
    let out = operator(&["render", "-f", "config/samples/single-service.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "not opened in the sandbox: spec.ingress[0] (http://web.apps.svc.cluster.local:8080): no Service apps/web"
        ),
        "{}",
        text(&out.stderr)
    );
    let docs = documents(&text(&out.stdout));
    let egress = docs[0]["spec"]["egress"]
        .as_sequence()
        .expect("egress rules");
    assert_eq!(egress.len(), 2, "only DNS and the edge without the Service");
}

#[test]
fn render_takes_services_from_the_input_file_too() {
    let input = format!(
        "{}\n---\n{}",
        std::fs::read_to_string(root().join("config/samples/single-service.yaml")).expect("sample"),
        "apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: apps }\nspec: { selector: { app: web }, ports: [ { port: 8080, targetPort: http } ] }\n"
    );
    let dir = std::env::temp_dir().join(format!("securetunnel-cli-svc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("with-service.yaml");
    std::fs::write(&file, input).expect("write input");
    let out = operator(&["render", "-f", &file.to_string_lossy()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = documents(&text(&out.stdout));
    let origin = &docs[0]["spec"]["egress"][2];
    assert_eq!(
        origin["to"][0]["podSelector"]["matchLabels"]["app"].as_str(),
        Some("web")
    );
    assert_eq!(origin["ports"][0]["port"].as_str(), Some("http"));
}
