use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::api::SecureTunnel;
use crate::names::{CONFIG_HASH_ANNOTATION, TOKEN_HASH_ANNOTATION};
use crate::test_support::test_token;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render")
}

pub(super) fn render_with_token(tunnel: &SecureTunnel, secret: &str) -> Children {
    desired_children(
        tunnel,
        &Dereferenced {
            token: Some(test_token(secret)),
            ..Default::default()
        },
    )
    .expect("renders")
}

pub(super) fn pod_spec(children: &Children) -> &PodSpec {
    children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("deployment has a pod spec")
}

fn pod_annotation<'a>(children: &'a Children, key: &str) -> Option<&'a String> {
    children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(key))
}

fn applied_hash<K: Resource>(obj: &K) -> String {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
        .cloned()
        .expect("applied hash annotation")
}

/// A fixture file: one SecureTunnel, then any Services its rules name.
fn tunnel_and_services(
    text: &str,
) -> (
    SecureTunnel,
    BTreeMap<crate::validate::origin::ServiceRef, k8s_openapi::api::core::v1::Service>,
) {
    let mut docs = serde_norway::Deserializer::from_str(text).map(|d| {
        <serde_norway::Value as serde::Deserialize>::deserialize(d).expect("fixture is YAML")
    });
    let mut tunnel: SecureTunnel =
        serde_norway::from_value(docs.next().expect("a tunnel")).expect("tunnel parses");
    tunnel.metadata.uid = Some("0b7f5b8e-9d55-4a8e-9d43-3c8f0f6f7f01".to_string());
    let services = docs
        .map(|d| {
            let s: k8s_openapi::api::core::v1::Service =
                serde_norway::from_value(d).expect("service parses");
            let key = crate::validate::origin::ServiceRef {
                namespace: s.metadata.namespace.clone().expect("service namespace"),
                name: s.metadata.name.clone().expect("service name"),
            };
            (key, s)
        })
        .collect();
    (tunnel, services)
}

/// Golden files: `NAME.input.yaml` renders to `NAME.expected.yaml`.
/// `UPDATE_FIXTURES=1 cargo test` rewrites the expected files.
#[test]
fn fixtures_render_to_their_expected_children() {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixture directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.yaml"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 3,
        "expected at least three render fixtures, found {inputs:?}"
    );
    for input in inputs {
        let text = std::fs::read_to_string(&input).expect("read input");
        let (tunnel, services) = tunnel_and_services(&text);
        let children = desired_children(
            &tunnel,
            &Dereferenced {
                token: Some(test_token("c2VjcmV0LXZhbHVlLWZvci10ZXN0cw==")),
                services,
                ca_bundles: Default::default(),
                operator_namespace: Some(crate::offline::DEFAULT_OPERATOR_NAMESPACE.to_string()),
            },
        )
        .expect("renders");
        let mut actual = String::new();
        for doc in children.to_values().expect("serializes") {
            actual.push_str("---\n");
            actual.push_str(&serde_norway::to_string(&doc).expect("yaml"));
        }
        let expected_path = PathBuf::from(
            input
                .to_string_lossy()
                .replace(".input.yaml", ".expected.yaml"),
        );
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&expected_path, &actual).expect("write expected");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_FIXTURES=1 to create it)",
                expected_path.display()
            )
        });
        pretty_assertions::assert_eq!(expected, actual, "{}", input.display());
    }
}

#[test]
fn config_lists_the_rules_in_order_then_the_fallback() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.fallback = "http_status:410".to_string();
    tunnel.spec.ingress.push(crate::api::IngressRule {
        hostname: Some("*.example.com".to_string()),
        path: Some("^/api/".to_string()),
        service: "tcp://10.0.0.5:5432".to_string(),
        origin_request: None,
    });
    let children = render_with_token(&tunnel, "s");
    let config_yaml = &children.config_map.data.as_ref().expect("data")["config.yaml"];
    let config: serde_norway::Value = serde_norway::from_str(config_yaml).expect("config parses");
    let rules = config["ingress"].as_sequence().expect("ingress list");
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["hostname"].as_str(), Some("app.example.com"));
    assert_eq!(rules[1]["path"].as_str(), Some("^/api/"));
    assert_eq!(rules[1]["service"].as_str(), Some("tcp://10.0.0.5:5432"));
    let fallback = rules[2].as_mapping().expect("fallback rule");
    assert_eq!(
        fallback.len(),
        1,
        "the fallback has only a service: {fallback:?}"
    );
    assert_eq!(rules[2]["service"].as_str(), Some("http_status:410"));
    assert_eq!(config["no-autoupdate"].as_bool(), Some(true));
    assert_eq!(config["metrics"].as_str(), Some("0.0.0.0:2000"));
    assert_eq!(
        children.config_hash,
        crate::token::sha256_hex(config_yaml.as_bytes())
    );
}

#[test]
fn the_token_is_only_in_the_secret_and_mounted_as_a_file() {
    let token = test_token("dG9wLXNlY3JldA==");
    let tunnel = SecureTunnel::test();
    let children = desired_children(
        &tunnel,
        &Dereferenced {
            token: Some(token.clone()),
            ..Default::default()
        },
    )
    .expect("renders");

    let secret_data = children.secret.data.as_ref().expect("secret has data");
    assert_eq!(secret_data["token"].0, token.expose_secret().as_bytes());
    assert_eq!(children.secret.type_.as_deref(), Some("Opaque"));

    // Nowhere else: not in the ConfigMap, the Deployment (env, args) or the budget.
    for (what, value) in [
        ("configmap", serde_json::to_string(&children.config_map)),
        ("deployment", serde_json::to_string(&children.deployment)),
        (
            "serviceaccount",
            serde_json::to_string(&children.service_account),
        ),
    ] {
        let text = value.expect("serializes");
        assert!(
            !text.contains(token.expose_secret()),
            "token leaked into the {what}"
        );
        assert!(
            !text.contains("dG9wLXNlY3JldA"),
            "token secret leaked into the {what}"
        );
    }

    let pod = pod_spec(&children);
    let container = &pod.containers[0];
    assert_eq!(container.env, None);
    assert_eq!(container.env_from, None);
    assert_eq!(
        container.args.as_deref().expect("args"),
        [
            "tunnel",
            "--config",
            "/etc/cloudflared/config/config.yaml",
            "--metrics",
            "0.0.0.0:2000",
            "--protocol",
            "auto",
            "run",
            "--token-file",
            "/etc/cloudflared/token/token"
        ]
    );
    let token_volume = pod
        .volumes
        .as_ref()
        .and_then(|v| v.iter().find(|v| v.name == "token"))
        .and_then(|v| v.secret.as_ref())
        .expect("token volume");
    assert_eq!(
        token_volume.secret_name.as_deref(),
        Some("home-cloudflared")
    );
    assert_eq!(token_volume.default_mode, Some(0o440));
    let mount = container
        .volume_mounts
        .as_ref()
        .and_then(|m| m.iter().find(|m| m.name == "token"))
        .expect("token mount");
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(mount.mount_path, "/etc/cloudflared/token");
}

#[test]
fn debug_output_of_the_children_leaves_out_the_token() {
    let token = test_token("ZGVidWctY2FuYXJ5");
    let children = desired_children(
        &SecureTunnel::test(),
        &Dereferenced {
            token: Some(token.clone()),
            ..Default::default()
        },
    )
    .expect("renders");
    let debug = format!("{children:?}");
    assert!(!debug.contains(token.expose_secret()));
    assert!(!debug.contains("ZGVidWctY2FuYXJ5"));
    assert!(debug.contains("values redacted"));
}

#[test]
fn connector_runs_under_the_restricted_profile() {
    let children = render_with_token(&SecureTunnel::test(), "s");
    let pod = pod_spec(&children);
    let psc = pod.security_context.as_ref().expect("pod security context");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.run_as_group, Some(65532));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert_eq!(psc.sysctls, None, "no sysctls unless allowICMP");
    let csc = pod.containers[0]
        .security_context
        .as_ref()
        .expect("container security context");
    assert_eq!(csc.allow_privilege_escalation, Some(false));
    assert_eq!(csc.read_only_root_filesystem, Some(true));
    assert_eq!(csc.run_as_non_root, Some(true));
    assert_eq!(csc.privileged, None);
    let caps = csc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(caps.add, None);
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        children.service_account.automount_service_account_token,
        Some(false)
    );
    assert_eq!(pod.host_network, None);
    assert!(pod.termination_grace_period_seconds.expect("grace period") > 30);

    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let p = p.as_ref().expect("probe");
        let get = p.http_get.as_ref().expect("httpGet");
        (
            get.path.clone(),
            get.port.clone(),
            p.failure_threshold,
            p.initial_delay_seconds,
            p.period_seconds,
        )
    };
    let port = IntOrString::Int(2000);
    assert_eq!(
        probe(&pod.containers[0].liveness_probe),
        (
            Some("/ready".into()),
            port.clone(),
            Some(1),
            Some(10),
            Some(10)
        )
    );
    assert_eq!(
        probe(&pod.containers[0].readiness_probe).0,
        Some("/ready".into())
    );
    assert_eq!(probe(&pod.containers[0].readiness_probe).1, port);

    let spread = &pod.topology_spread_constraints.as_ref().expect("spread")[0];
    assert_eq!(spread.topology_key, "kubernetes.io/hostname");
}

#[test]
fn sandbox_options_reach_the_pod() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.sandbox.allow_icmp = true;
    tunnel.spec.sandbox.runtime_class_name = Some("gvisor".to_string());
    let children = render_with_token(&tunnel, "s");
    let pod = pod_spec(&children);
    assert_eq!(pod.runtime_class_name.as_deref(), Some("gvisor"));
    let sysctls = pod
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .expect("sysctls");
    assert_eq!(sysctls.len(), 1);
    assert_eq!(sysctls[0].name, "net.ipv4.ping_group_range");
    assert_eq!(sysctls[0].value, "65532 65532");
}

#[test]
fn a_change_of_config_or_token_rolls_the_pods_and_nothing_else_does() {
    let tunnel = SecureTunnel::test();
    let first = render_with_token(&tunnel, "one");
    let again = render_with_token(&tunnel, "one");
    assert_eq!(first, again, "rendering is deterministic");

    let rotated = render_with_token(&tunnel, "two");
    assert_ne!(
        pod_annotation(&first, TOKEN_HASH_ANNOTATION),
        pod_annotation(&rotated, TOKEN_HASH_ANNOTATION)
    );
    assert_eq!(
        pod_annotation(&first, CONFIG_HASH_ANNOTATION),
        pod_annotation(&rotated, CONFIG_HASH_ANNOTATION)
    );
    assert_ne!(
        applied_hash(&first.deployment),
        applied_hash(&rotated.deployment)
    );
    assert_ne!(applied_hash(&first.secret), applied_hash(&rotated.secret));
    assert_eq!(
        applied_hash(&first.config_map),
        applied_hash(&rotated.config_map)
    );

    let mut edited = tunnel.clone();
    edited.spec.ingress[0].hostname = Some("other.example.com".to_string());
    let edited = render_with_token(&edited, "one");
    assert_ne!(
        pod_annotation(&first, CONFIG_HASH_ANNOTATION),
        pod_annotation(&edited, CONFIG_HASH_ANNOTATION)
    );
    assert_eq!(
        pod_annotation(&first, TOKEN_HASH_ANNOTATION),
        pod_annotation(&edited, TOKEN_HASH_ANNOTATION)
    );
    assert_eq!(applied_hash(&first.secret), applied_hash(&edited.secret));
}

#[test]
fn every_child_is_named_labelled_and_owned() {
    let tunnel = SecureTunnel::test();
    let children = render_with_token(&tunnel, "s");
    let metas = [
        children.secret.meta(),
        children.config_map.meta(),
        children.service_account.meta(),
        children.deployment.meta(),
        children
            .pod_disruption_budget
            .as_ref()
            .expect("pdb for 2 replicas")
            .meta(),
    ];
    for meta in metas {
        assert_eq!(meta.name.as_deref(), Some("home-cloudflared"));
        assert_eq!(meta.namespace.as_deref(), Some("apps"));
        assert_eq!(meta.labels, Some(crate::names::child_labels("home")));
        let owners = meta.owner_references.as_ref().expect("owner references");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "SecureTunnel");
        assert_eq!(owners[0].api_version, "securetunnel.dev/v1alpha1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(Some(owners[0].uid.clone()), tunnel.metadata.uid);
    }
}

#[test]
fn a_single_replica_gets_no_disruption_budget() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.replicas = 1;
    assert_eq!(render_with_token(&tunnel, "s").pod_disruption_budget, None);
    tunnel.spec.replicas = 3;
    let pdb = render_with_token(&tunnel, "s")
        .pod_disruption_budget
        .expect("pdb");
    let spec = pdb.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        Some(crate::names::selector_labels("home"))
    );
}

#[test]
fn pod_overrides_are_merged_without_touching_the_selector() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.pod.labels.insert("team".into(), "edge".into());
    tunnel
        .spec
        .pod
        .annotations
        .insert("example.com/owner".into(), "edge".into());
    tunnel
        .spec
        .pod
        .node_selector
        .insert("kubernetes.io/os".into(), "linux".into());
    tunnel.spec.pod.priority_class_name = Some("system-cluster-critical".into());
    let children = render_with_token(&tunnel, "s");
    let template = &children.deployment.spec.as_ref().expect("spec").template;
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("edge"));
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some("home")
    );
    assert_eq!(
        pod_annotation(&children, "example.com/owner").map(String::as_str),
        Some("edge")
    );
    assert!(pod_annotation(&children, CONFIG_HASH_ANNOTATION).is_some());
    let pod = pod_spec(&children);
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(
        pod.node_selector
            .as_ref()
            .and_then(|n| n.get("kubernetes.io/os"))
            .map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        children
            .deployment
            .spec
            .as_ref()
            .expect("spec")
            .selector
            .match_labels,
        Some(crate::names::selector_labels("home"))
    );
}

#[test]
fn default_resources_apply_unless_overridden() {
    let children = render_with_token(&SecureTunnel::test(), "s");
    let resources = pod_spec(&children).containers[0]
        .resources
        .clone()
        .expect("resources");
    assert_eq!(resources, workload::default_resources());
    assert!(resources
        .limits
        .as_ref()
        .is_some_and(|l| l.contains_key("memory") && l.contains_key("cpu")));

    let mut tunnel = SecureTunnel::test();
    let custom = k8s_openapi::api::core::v1::ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "memory".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".into()),
        )])),
        ..Default::default()
    };
    tunnel.spec.pod.resources = Some(Box::new(custom.clone()));
    let children = render_with_token(&tunnel, "s");
    assert_eq!(pod_spec(&children).containers[0].resources, Some(custom));
}

#[test]
fn an_invalid_spec_renders_nothing() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.ingress[0].service = "bastion".to_string();
    match desired_children(&tunnel, &Dereferenced::default()) {
        Err(Error::InvalidSpec(errors)) => assert_eq!(errors.0[0].path, "spec.ingress[0].service"),
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}
