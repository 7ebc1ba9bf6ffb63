//! The platform settings: cloudflared's flags, the pod's pull secrets and spread, the
//! DNSEndpoint and the PodMonitor.

use k8s_openapi::api::core::v1::{LocalObjectReference, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::tests::{pod_spec, render_with_token};
use super::*;
use crate::api::{
    Connector, Dns, EdgeIpVersion, IngressRule, LogLevel, PodMonitorSettings, Region,
};
use crate::names::{selector_labels, CA_HASH_ANNOTATION, RECORD_OWNER_LABEL};
use crate::test_support::{test_token, TUNNEL_ID};
use crate::validate::CaKind;

fn render(tunnel: &SecureTunnel) -> Children {
    render_with_token(tunnel, "c2VjcmV0")
}

fn args(children: &Children) -> Vec<String> {
    pod_spec(children).containers[0].args.clone().expect("args")
}

#[test]
fn connector_settings_become_flags_before_run_and_only_when_set() {
    let plain = args(&render(&SecureTunnel::test()));
    assert!(!plain.iter().any(|a| [
        "--loglevel",
        "--edge-ip-version",
        "--region",
        "--post-quantum",
        "--grace-period"
    ]
    .contains(&a.as_str())));

    let mut tunnel = SecureTunnel::test();
    tunnel.spec.connector = Connector {
        log_level: Some(LogLevel::Debug),
        edge_ip_version: Some(EdgeIpVersion::V6),
        region: Some(Region::Us),
        post_quantum: true,
        grace_period: Some("1m".into()),
    };
    let args = args(&render(&tunnel));
    let run = args.iter().position(|a| a == "run").expect("run");
    let flags = &args[args
        .iter()
        .position(|a| a == "--loglevel")
        .expect("loglevel")..run];
    assert_eq!(
        flags,
        [
            "--loglevel",
            "debug",
            "--edge-ip-version",
            "6",
            "--region",
            "us",
            "--post-quantum",
            "--grace-period",
            "1m"
        ]
    );
    // The token stays a file: nothing after `run` but --token-file.
    assert_eq!(
        args[run + 1..],
        ["--token-file", "/etc/cloudflared/token/token"]
    );
}

#[test]
fn the_pod_outlives_the_grace_period() {
    let grace = |value: Option<&str>| {
        let mut tunnel = SecureTunnel::test();
        tunnel.spec.connector.grace_period = value.map(String::from);
        pod_spec(&render(&tunnel)).termination_grace_period_seconds
    };
    assert_eq!(grace(None), Some(45));
    assert_eq!(grace(Some("1m30s")), Some(105));
    assert_eq!(grace(Some("2.5s")), Some(18));
    assert_eq!(grace(Some("3m")), Some(195));
}

#[test]
fn pull_secrets_and_a_spread_of_the_users_own() {
    let mut tunnel = SecureTunnel::test();
    let default = pod_spec(&render(&tunnel))
        .topology_spread_constraints
        .clone()
        .expect("default spread");
    assert_eq!(default.len(), 1);
    assert_eq!(default[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(pod_spec(&render(&tunnel)).image_pull_secrets, None);

    let own_selector = LabelSelector {
        match_labels: Some([("tier".to_string(), "edge".to_string())].into()),
        ..Default::default()
    };
    tunnel.spec.pod.image_pull_secrets = vec![crate::api::PullSecret {
        name: "corp-mirror".into(),
    }];
    tunnel.spec.pod.topology_spread_constraints = vec![
        TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        },
        TopologySpreadConstraint {
            max_skew: 2,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(own_selector.clone()),
            ..Default::default()
        },
    ];
    let children = render(&tunnel);
    let spread = pod_spec(&children)
        .topology_spread_constraints
        .clone()
        .expect("spread");
    assert_eq!(spread.len(), 2, "the default is replaced, not extended");
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(
        spread[0]
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(selector_labels("home")),
        "a constraint without a selector gets the tunnel's"
    );
    assert_eq!(spread[1].label_selector, Some(own_selector));
    assert_eq!(
        pod_spec(&children).image_pull_secrets,
        Some(vec![LocalObjectReference {
            name: "corp-mirror".into()
        }])
    );
}

fn rule(hostname: Option<&str>, path: Option<&str>) -> IngressRule {
    IngressRule {
        hostname: hostname.map(String::from),
        path: path.map(String::from),
        service: "http://10.0.0.1:80".into(),
        ..Default::default()
    }
}

#[test]
fn one_proxied_cname_per_distinct_hostname_after_the_deployment() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.ingress = vec![
        rule(Some("app.example.com"), None),
        rule(Some("APP.example.com"), Some("^/api/")),
        rule(Some("*.example.com"), None),
        rule(None, Some("^/static/")),
        rule(Some("*"), Some("^/health")),
        rule(Some("docs.example.com."), None),
    ];
    assert_eq!(render(&tunnel).dns_endpoint, None, "opt-in");

    tunnel.spec.dns = Some(Dns {
        ttl: 120,
        record_owner: None,
    });
    let children = render(&tunnel);
    let endpoint = children.dns_endpoint.clone().expect("a DNSEndpoint");
    let names: Vec<&str> = endpoint
        .spec
        .endpoints
        .iter()
        .map(|e| e.dns_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["app.example.com", "*.example.com", "docs.example.com"]
    );
    for record in &endpoint.spec.endpoints {
        assert_eq!(record.record_type, "CNAME");
        assert_eq!(record.targets, [format!("{TUNNEL_ID}.cfargotunnel.com")]);
        assert_eq!(record.record_ttl, 120);
        let proxied: Vec<(&str, &str)> = record
            .provider_specific
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            proxied,
            [
                ("cloudflare/proxied", "true"),
                (
                    "external-dns.alpha.kubernetes.io/cloudflare-proxied",
                    "true"
                )
            ]
        );
    }
    assert_eq!(endpoint.metadata.name.as_deref(), Some("home-cloudflared"));
    assert!(!endpoint
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .contains_key(RECORD_OWNER_LABEL));

    let kinds: Vec<ChildKind> = children
        .objects()
        .expect("objects")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let at = |kind| kinds.iter().position(|k| *k == kind).expect("present");
    assert!(
        at(ChildKind::DnsEndpoint) > at(ChildKind::Deployment),
        "no record before the connectors: {kinds:?}"
    );
    let json = children
        .objects()
        .expect("objects")
        .into_iter()
        .find(|(k, _)| *k == ChildKind::DnsEndpoint)
        .expect("json")
        .1;
    assert_eq!(json["apiVersion"], "externaldns.k8s.io/v1alpha1");
    assert_eq!(json["kind"], "DNSEndpoint");
    assert_eq!(json["spec"]["endpoints"][0]["recordTTL"], 120);

    tunnel.spec.dns = Some(Dns {
        ttl: 300,
        record_owner: Some("public".into()),
    });
    let labels = render(&tunnel)
        .dns_endpoint
        .and_then(|e| e.metadata.labels)
        .unwrap_or_default();
    assert_eq!(
        labels.get(RECORD_OWNER_LABEL).map(String::as_str),
        Some("public")
    );
}

#[test]
fn without_a_token_there_is_no_target_and_so_no_dns_endpoint() {
    let mut tunnel = SecureTunnel::test();
    tunnel.spec.dns = Some(Dns {
        ttl: 300,
        record_owner: None,
    });
    let children = desired_children(&tunnel, &Dereferenced::default()).expect("renders");
    assert_eq!(children.dns_endpoint, None);
}

#[test]
fn a_pod_monitor_scrapes_the_connectors_metrics_port_by_name() {
    let mut tunnel = SecureTunnel::test();
    assert_eq!(render(&tunnel).pod_monitor, None, "opt-in");
    tunnel.spec.metrics.pod_monitor = Some(PodMonitorSettings {
        labels: [
            ("release".to_string(), "prometheus".to_string()),
            // Ours win over a user label of the same key.
            (
                "app.kubernetes.io/instance".to_string(),
                "other".to_string(),
            ),
        ]
        .into(),
        interval: Some("15s".into()),
    });
    let children = render(&tunnel);
    let monitor = children.pod_monitor.clone().expect("a PodMonitor");
    let labels = monitor.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("release").map(String::as_str),
        Some("prometheus")
    );
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some("home")
    );
    assert_eq!(
        monitor.spec.selector.match_labels,
        Some(selector_labels("home"))
    );
    let endpoint = &monitor.spec.pod_metrics_endpoints[0];
    let port_name = pod_spec(&children).containers[0]
        .ports
        .as_ref()
        .and_then(|p| p[0].name.clone());
    assert_eq!(Some(endpoint.port.clone()), port_name);
    assert_eq!(endpoint.path, "/metrics");
    assert_eq!(endpoint.interval.as_deref(), Some("15s"));
}

fn with_ca(tunnel: &mut SecureTunnel, rule: usize, kind: &str, name: &str, key: &str) {
    let reference = crate::api::KeyRef {
        name: name.into(),
        key: key.into(),
    };
    let ca = match kind {
        "ConfigMap" => crate::api::CaPool {
            config_map_key_ref: Some(reference),
            ..Default::default()
        },
        _ => crate::api::CaPool {
            secret_key_ref: Some(reference),
            ..Default::default()
        },
    };
    tunnel.spec.ingress[rule]
        .origin_request
        .get_or_insert_with(Default::default)
        .ca_pool = Some(ca);
}

fn render_with_ca(tunnel: &SecureTunnel, bundles: &[((CaKind, &str, &str), &str)]) -> Children {
    desired_children(
        tunnel,
        &Dereferenced {
            token: Some(test_token("c2VjcmV0")),
            ca_bundles: bundles
                .iter()
                .map(|((kind, name, key), pem)| {
                    (
                        (*kind, name.to_string(), key.to_string()),
                        pem.as_bytes().to_vec(),
                    )
                })
                .collect(),
            ..Default::default()
        },
    )
    .expect("renders")
}

#[test]
fn a_private_ca_is_mounted_read_only_named_in_the_config_and_hashed_into_the_pods() {
    let mut tunnel = SecureTunnel::test().with_rules(&[
        "https://a.apps.svc:443",
        "https://b.apps.svc:443",
        "https://c.apps.svc:443",
    ]);
    with_ca(&mut tunnel, 0, "ConfigMap", "internal-ca", "ca.crt");
    with_ca(&mut tunnel, 1, "ConfigMap", "internal-ca", "other.crt");
    with_ca(&mut tunnel, 2, "Secret", "partner-ca", "tls.crt");
    let bundles = [
        ((CaKind::ConfigMap, "internal-ca", "ca.crt"), "PEM-1"),
        ((CaKind::ConfigMap, "internal-ca", "other.crt"), "PEM-2"),
        ((CaKind::Secret, "partner-ca", "tls.crt"), "PEM-3"),
    ];
    let children = render_with_ca(&tunnel, &bundles);

    let config: serde_json::Value =
        serde_norway::from_str(&children.config_map.data.as_ref().expect("data")["config.yaml"])
            .expect("yaml");
    let ca_pool = |i: usize| {
        config["ingress"][i]["originRequest"]["caPool"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(ca_pool(0).as_deref(), Some("/etc/cloudflared/ca/0/ca.crt"));
    assert_eq!(
        ca_pool(1).as_deref(),
        Some("/etc/cloudflared/ca/0/other.crt")
    );
    assert_eq!(ca_pool(2).as_deref(), Some("/etc/cloudflared/ca/1/tls.crt"));

    let pod = pod_spec(&children);
    let volumes = pod.volumes.clone().unwrap_or_default();
    let ca0 = volumes.iter().find(|v| v.name == "ca-0").expect("ca-0");
    let cm = ca0.config_map.as_ref().expect("a ConfigMap volume");
    assert_eq!(cm.name, "internal-ca");
    let keys: Vec<&str> = cm.items.iter().flatten().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["ca.crt", "other.crt"], "only the keys the rules use");
    let ca1 = volumes.iter().find(|v| v.name == "ca-1").expect("ca-1");
    assert_eq!(
        ca1.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
        Some("partner-ca")
    );
    let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
    for (name, path) in [
        ("ca-0", "/etc/cloudflared/ca/0"),
        ("ca-1", "/etc/cloudflared/ca/1"),
    ] {
        let m = mounts.iter().find(|m| m.name == name).expect("mounted");
        assert_eq!((m.mount_path.as_str(), m.read_only), (path, Some(true)));
    }

    let hash = |children: &Children| {
        children
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CA_HASH_ANNOTATION).cloned())
    };
    let before = hash(&children).expect("a CA hash on the pod template");
    let mut changed = bundles;
    changed[2].1 = "PEM-3-rotated";
    assert_ne!(
        hash(&render_with_ca(&tunnel, &changed)),
        Some(before.clone()),
        "a new bundle rolls the pods"
    );
    assert_eq!(
        hash(&render_with_ca(&tunnel, &bundles)),
        Some(before),
        "same bundles, same hash"
    );
    assert_eq!(
        hash(&render(&SecureTunnel::test())),
        None,
        "no caPool, no annotation"
    );
}
