use super::*;
use crate::api::OriginRequest;

/// A valid spec to mutate: the README's example.
fn base() -> SecureTunnelSpec {
    crate::api::SecureTunnel::test().spec
}

fn rule(hostname: Option<&str>, path: Option<&str>, service: &str) -> IngressRule {
    IngressRule {
        hostname: hostname.map(String::from),
        path: path.map(String::from),
        service: service.to_string(),
        origin_request: None,
    }
}

fn errors_of(spec: &SecureTunnelSpec) -> Vec<FieldError> {
    match validate("home", spec) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

/// Asserts that `spec` fails with exactly one error at `path` whose message contains `needle`.
#[track_caller]
fn assert_one_error(spec: &SecureTunnelSpec, path: &str, needle: &str) {
    let errors = errors_of(spec);
    assert_eq!(
        errors.len(),
        1,
        "expected one error at {path}, got {errors:#?}"
    );
    assert_eq!(errors[0].path, path, "{errors:#?}");
    assert!(
        errors[0].message.contains(needle),
        "message {:?} lacks {needle:?}",
        errors[0].message
    );
}

#[test]
fn base_spec_is_valid() {
    assert_eq!(errors_of(&base()), vec![]);
}

#[test]
fn good_hostnames_paths_and_services_pass() {
    let good = [
        rule(Some("app.example.com"), None, "http://web:80"),
        rule(Some("*.example.com"), None, "https://web.apps.svc:8443"),
        rule(Some("APP.Example.COM"), None, "http://web"),
        rule(
            Some("example.com"),
            Some("^/api/(v1|v2)/.*$"),
            "http://10.0.0.1:8080",
        ),
        rule(None, Some("^/static/"), "http://[2001:db8::1]:8080"),
        rule(Some("*"), Some("/health"), "http_status:200"),
        rule(Some("ssh.example.com"), None, "ssh://jump.ops.svc:22"),
        rule(Some("rdp.example.com"), None, "rdp://desktop.ops:3389"),
        rule(
            Some("tcp.example.com"),
            None,
            "tcp://db.data.svc.cluster.local:5432",
        ),
        rule(Some("ws.example.com"), None, "wss://chat.apps.svc"),
        rule(Some("smb.example.com"), None, "smb://files:445"),
        rule(Some("hello.example.com"), None, "hello_world"),
        rule(Some("gone.example.com"), None, "http_status:100"),
        rule(Some("teapot.example.com"), None, "http_status:999"),
    ];
    for r in good {
        let mut spec = base();
        spec.ingress = vec![r.clone()];
        assert_eq!(errors_of(&spec), vec![], "rule {r:?}");
    }
}

#[test]
fn bad_hostnames_are_refused_with_the_reason() {
    let cases = [
        ("app.example.com:8443", "must not include a port"),
        ("*.*.example.com", "wildcard"),
        ("app.*.example.com", "wildcard"),
        ("*example.com", "wildcard"),
        ("-app.example.com", "not a valid DNS name"),
        ("app_1.example.com", "not a valid DNS name"),
        ("app..example.com", "not a valid DNS name"),
    ];
    for (hostname, needle) in cases {
        let mut spec = base();
        spec.ingress[0].hostname = Some(hostname.to_string());
        assert_one_error(&spec, "spec.ingress[0].hostname", needle);
    }
    let mut spec = base();
    spec.ingress[0].hostname = Some(format!("{}.example.com", "a".repeat(64)));
    assert_one_error(&spec, "spec.ingress[0].hostname", "not a valid DNS name");
}

#[test]
fn a_path_that_is_not_a_regex_is_refused() {
    let mut spec = base();
    spec.ingress[0].path = Some("^/api/(v1".to_string());
    assert_one_error(
        &spec,
        "spec.ingress[0].path",
        "is not a valid regular expression",
    );
    // RE2 has no backreferences; neither does the regex crate.
    spec.ingress[0].path = Some(r"(a)\1".to_string());
    assert_one_error(
        &spec,
        "spec.ingress[0].path",
        "is not a valid regular expression",
    );
}

#[test]
fn bad_services_are_refused_with_the_reason() {
    let cases = [
        ("web.apps.svc:8080", "must be scheme://host[:port]"),
        ("http://web.apps.svc:8080/api", "must not have a path"),
        ("http://web.apps.svc/", "must not have a path"),
        ("http://web?x=1", "must not have a path"),
        ("http://", "the host is empty"),
        ("http://:8080", "the host is empty"),
        (
            "http://web:0",
            "port \"0\" must be a number from 1 to 65535",
        ),
        ("http://web:65536", "must be a number from 1 to 65535"),
        ("http://web:http", "must be a number from 1 to 65535"),
        ("http://user:pw@web", "must not contain credentials"),
        ("HTTP://web", "the scheme must be lowercase"),
        ("http://[::1", "closed by ']'"),
        ("http://[zz::1]:80", "not an IPv6 address"),
        ("unix:/var/run/app.sock", "unix sockets"),
        ("unix+tls:/var/run/app.sock", "unix sockets"),
        ("bastion", "defeats the egress sandbox"),
        ("socks-proxy", "defeats the egress sandbox"),
        ("http_status:99", "from 100 to 999"),
        ("http_status:1000", "from 100 to 999"),
        ("http_status:abc", "from 100 to 999"),
        ("http://web_app:80", "not a valid DNS name"),
    ];
    for (service, needle) in cases {
        let mut spec = base();
        spec.ingress[0].service = service.to_string();
        assert_one_error(&spec, "spec.ingress[0].service", needle);
    }
}

#[test]
fn a_catch_all_rule_is_refused_anywhere_in_the_list() {
    for catch_all in [
        rule(None, None, "http://web:80"),
        rule(Some(""), Some(""), "http://web:80"),
        rule(Some("*"), None, "http://web:80"),
    ] {
        let mut spec = base();
        spec.ingress.insert(0, catch_all.clone());
        assert_one_error(&spec, "spec.ingress[0]", "matches every request");
        let mut spec = base();
        spec.ingress.push(catch_all);
        assert_one_error(&spec, "spec.ingress[1]", "set spec.fallback");
    }
}

#[test]
fn rule_count_is_bounded() {
    let mut spec = base();
    spec.ingress.clear();
    assert_one_error(&spec, "spec.ingress", "has 0 rules: must have 1 to 256");

    let mut spec = base();
    spec.ingress = (0..256)
        .map(|i| rule(Some(&format!("h{i}.example.com")), None, "http://web:80"))
        .collect();
    assert_eq!(errors_of(&spec), vec![]);
    spec.ingress
        .push(rule(Some("one-more.example.com"), None, "http://web:80"));
    assert_one_error(&spec, "spec.ingress", "has 257 rules");
}

#[test]
fn replicas_are_bounded() {
    for (replicas, ok) in [(0, false), (1, true), (20, true), (21, false), (-3, false)] {
        let mut spec = base();
        spec.replicas = replicas;
        if ok {
            assert_eq!(errors_of(&spec), vec![], "replicas {replicas}");
        } else {
            assert_one_error(&spec, "spec.replicas", "must be 1 to 20");
        }
    }
}

#[test]
fn images_must_be_pinned_and_recent_enough() {
    let good = [
        "docker.io/cloudflare/cloudflared:2026.8.2",
        "cloudflare/cloudflared:2025.4.0",
        "registry.local:5000/mirror/cloudflared:2025.11.1",
        "cloudflare/cloudflared@sha256:0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b",
        "registry.local:5000/cloudflared:custom-build",
    ];
    for image in good {
        let mut spec = base();
        spec.image = image.to_string();
        assert_eq!(errors_of(&spec), vec![], "image {image}");
    }
    let bad = [
        ("cloudflare/cloudflared:latest", "not \"latest\""),
        ("cloudflare/cloudflared:latest@sha256:00", "not \"latest\""),
        ("cloudflare/cloudflared", "has no tag"),
        ("registry.local:5000/cloudflared", "has no tag"),
        ("cloudflare/cloudflared:2025.2.1", "older than 2025.4.0"),
        ("", "must not be empty"),
    ];
    for (image, needle) in bad {
        let mut spec = base();
        spec.image = image.to_string();
        assert_one_error(&spec, "spec.image", needle);
    }
}

#[test]
fn fallback_follows_the_service_rules() {
    let mut spec = base();
    spec.fallback = "http_status:418".to_string();
    assert_eq!(errors_of(&spec), vec![]);
    spec.fallback = "http_status:42".to_string();
    assert_one_error(&spec, "spec.fallback", "from 100 to 999");
    spec.fallback = "bastion".to_string();
    assert_one_error(&spec, "spec.fallback", "defeats the egress sandbox");
}

#[test]
fn origin_request_values_have_cloudflared_types() {
    for good in [
        "30s", "1m30s", "1.5h", "500ms", "10us", "10µs", "0", "2h45m",
    ] {
        let mut spec = base();
        spec.ingress[0].origin_request = Some(Box::new(OriginRequest {
            connect_timeout: Some(good.to_string()),
            ..Default::default()
        }));
        assert_eq!(errors_of(&spec), vec![], "duration {good}");
    }
    for bad in ["30", "thirty", "30 s", "-5s", "5d", "", "1.2.3s"] {
        let mut spec = base();
        spec.ingress[0].origin_request = Some(Box::new(OriginRequest {
            tls_timeout: Some(bad.to_string()),
            ..Default::default()
        }));
        assert_one_error(
            &spec,
            "spec.ingress[0].originRequest.tlsTimeout",
            "is not a duration",
        );
    }

    let mut spec = base();
    spec.ingress[0].origin_request = Some(Box::new(OriginRequest {
        access: Some(crate::api::AccessSettings {
            required: Some(true),
            team_name: None,
            aud_tag: vec!["abc".to_string()],
        }),
        ..Default::default()
    }));
    assert_one_error(
        &spec,
        "spec.ingress[0].originRequest.access.teamName",
        "required when audTag is set",
    );

    let mut spec = base();
    spec.ingress[0].origin_request = Some(Box::new(OriginRequest {
        keep_alive_connections: Some(-1),
        ..Default::default()
    }));
    assert_one_error(
        &spec,
        "spec.ingress[0].originRequest.keepAliveConnections",
        "must not be negative",
    );
}

#[test]
fn token_reference_must_name_a_secret_and_key() {
    let mut spec = base();
    spec.token_secret_ref.name = String::new();
    assert_one_error(&spec, "spec.tokenSecretRef.name", "must not be empty");
    let mut spec = base();
    spec.token_secret_ref.key = "bad/key".to_string();
    assert_one_error(&spec, "spec.tokenSecretRef.key", "not a valid Secret key");
}

#[test]
fn egress_values_are_checked() {
    let mut spec = base();
    spec.egress.cloudflare_edge = vec!["198.41.192.0/33".to_string()].into();
    assert_one_error(&spec, "spec.egress.cloudflareEdge[0]", "is not a CIDR");
    spec.egress.cloudflare_edge = Vec::new().into();
    assert_one_error(&spec, "spec.egress.cloudflareEdge", "at least one CIDR");

    let mut spec = base();
    spec.egress.extra_origins = vec![crate::api::ExtraOrigin {
        cidr: "10.20.0.0/16".to_string(),
        ports: vec![443, 70000],
    }];
    assert_one_error(
        &spec,
        "spec.egress.extraOrigins[0].ports[1]",
        "must be 1 to 65535",
    );
    spec.egress.extra_origins[0].ports.clear();
    assert_one_error(
        &spec,
        "spec.egress.extraOrigins[0].ports",
        "at least one port",
    );
}

#[test]
fn operator_owned_pod_metadata_is_protected() {
    let mut spec = base();
    spec.pod.labels.insert(
        crate::names::INSTANCE_LABEL.to_string(),
        "other".to_string(),
    );
    assert_one_error(&spec, "spec.pod.labels", "set by the operator");
    let mut spec = base();
    spec.pod
        .annotations
        .insert("securetunnel.dev/config-hash".to_string(), "x".to_string());
    assert_one_error(&spec, "spec.pod.annotations", "set by the operator");
}

#[test]
fn long_names_are_refused() {
    let spec = base();
    let name = "n".repeat(crate::names::MAX_TUNNEL_NAME_LEN + 1);
    let errors = validate(&name, &spec).expect_err("too long").0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "metadata.name");
    assert!(validate(&"n".repeat(crate::names::MAX_TUNNEL_NAME_LEN), &spec).is_ok());
}

#[test]
fn every_problem_is_reported_at_once_in_field_order() {
    let mut spec = base();
    spec.replicas = 0;
    spec.image = "cloudflare/cloudflared:latest".to_string();
    spec.ingress = vec![
        rule(Some("a.example.com:80"), None, "http://web:80/x"),
        rule(None, None, "http_status:1"),
    ];
    let paths: Vec<String> = errors_of(&spec).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "spec.replicas",
            "spec.image",
            "spec.ingress[0].hostname",
            "spec.ingress[0].service",
            "spec.ingress[1].service",
            "spec.ingress[1]",
        ]
    );
    let summary = validate("home", &spec).expect_err("invalid").summary();
    assert!(
        summary.starts_with("spec.replicas: 0 is out of range"),
        "{summary}"
    );
}

#[test]
fn default_ports_follow_the_scheme() {
    let port = |s: &str| parse_service(s).expect("valid").port();
    assert_eq!(port("http://web"), Some(80));
    assert_eq!(port("https://web"), Some(443));
    assert_eq!(port("wss://web"), Some(443));
    assert_eq!(port("ssh://jump"), Some(22));
    assert_eq!(port("rdp://desk"), Some(3389));
    assert_eq!(port("tcp://db"), None);
    assert_eq!(port("tcp://db:5432"), Some(5432));
    assert_eq!(port("http_status:404"), None);
    assert_eq!(
        parse_service("http://[2001:db8::1]:8080"),
        Ok(Origin::Url {
            scheme: "http".into(),
            host: crate::validate::origin::Host::Ip("2001:db8::1".parse().expect("ip")),
            port: Some(8080)
        })
    );
}

#[test]
fn a_scheme_without_a_default_port_needs_one() {
    let mut spec = base();
    spec.ingress[0].service = "tcp://db.data.svc".to_string();
    assert_one_error(&spec, "spec.ingress[0].service", "needs a port");
    spec.ingress[0].service = "tcp://db.data.svc:5432".to_string();
    assert_eq!(errors_of(&spec), vec![]);
}

#[test]
fn metrics_scrapers_must_be_selected_by_some_label() {
    let mut spec = base();
    spec.metrics.allow_from = Some(crate::api::PeerSelector::default());
    assert_one_error(
        &spec,
        "spec.metrics.allowFrom",
        "empty selector would let every pod scrape",
    );
    spec.metrics.allow_from = Some(crate::api::PeerSelector {
        namespace_labels: [(
            "kubernetes.io/metadata.name".to_string(),
            "monitoring".to_string(),
        )]
        .into(),
        pod_labels: Default::default(),
    });
    assert_eq!(errors_of(&spec), vec![]);
}

#[test]
fn a_repeated_hostname_and_path_is_refused() {
    let mut spec = base();
    spec.ingress
        .push(rule(Some("APP.example.com"), None, "http://other:80"));
    assert_one_error(
        &spec,
        "spec.ingress[1]",
        "same hostname and path as spec.ingress[0]",
    );
    let mut spec = base();
    spec.ingress.push(rule(
        Some("app.example.com"),
        Some("^/api/"),
        "http://other:80",
    ));
    assert_eq!(
        errors_of(&spec),
        vec![],
        "a different path is a different rule"
    );
}
