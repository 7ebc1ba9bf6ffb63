//! The egress sandbox: origin resolution and the NetworkPolicy built from it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::origins::{resolve, TargetPort};
use super::*;
use crate::api::SecureTunnel;
use crate::validate::origin::{service_name, ServiceName, ServiceRef};

fn tunnel(rules: &[&str]) -> SecureTunnel {
    SecureTunnel::test()
        .with_uid("uid-1")
        .with_token_secret("tok")
        .with_rules(rules)
}

fn service(namespace: &str, name: &str, spec: serde_json::Value) -> (ServiceRef, Service) {
    let s: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec
    }))
    .expect("service parses");
    (
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        },
        s,
    )
}

fn web() -> (ServiceRef, Service) {
    service(
        "apps",
        "web",
        json!({ "selector": { "app": "web" }, "ports": [ { "port": 80, "targetPort": 8080 } ] }),
    )
}

fn policy(t: &SecureTunnel, services: &[(ServiceRef, Service)]) -> (NetworkPolicy, Vec<String>) {
    let deref = Dereferenced {
        token: None,
        services: services.iter().cloned().collect(),
        ca_bundles: Default::default(),
        operator_namespace: None,
    };
    let children = desired_children(t, &deref).expect("renders");
    let unresolved = children
        .unresolved
        .iter()
        .map(ToString::to_string)
        .collect();
    (children.network_policy, unresolved)
}

/// The egress rules after DNS and the edge, as (peer JSON, ports JSON).
fn origin_rules(np: &NetworkPolicy) -> Vec<serde_json::Value> {
    let egress = np
        .spec
        .as_ref()
        .and_then(|s| s.egress.clone())
        .expect("egress");
    egress[2..]
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect()
}

#[test]
fn host_names_are_classified_like_the_pod_dns_search_path() {
    let r = |ns: &str, name: &str| ServiceRef {
        namespace: ns.into(),
        name: name.into(),
    };
    assert_eq!(
        service_name("web", "apps"),
        ServiceName::Certain(r("apps", "web"))
    );
    assert_eq!(
        service_name("web.shop", "apps"),
        ServiceName::Possible(r("shop", "web"))
    );
    assert_eq!(
        service_name("web.shop.svc", "apps"),
        ServiceName::Certain(r("shop", "web"))
    );
    assert_eq!(
        service_name("web.shop.svc.cluster.local", "apps"),
        ServiceName::Certain(r("shop", "web"))
    );
    assert_eq!(
        service_name("Web.Shop.SVC.cluster.local.", "apps"),
        ServiceName::Certain(r("shop", "web"))
    );
    assert_eq!(
        service_name("example.com", "apps"),
        ServiceName::Possible(r("com", "example"))
    );
    assert_eq!(
        service_name("api.github.com", "apps"),
        ServiceName::NotAService
    );
    assert_eq!(
        service_name("pod.web.shop.svc.cluster.local", "apps"),
        ServiceName::NotAService
    );
}

#[test]
fn every_in_cluster_name_form_reaches_the_service_pods_on_the_target_port() {
    for host in [
        "web",
        "web.apps",
        "web.apps.svc",
        "web.apps.svc.cluster.local",
    ] {
        let t = tunnel(&[&format!("http://{host}")]);
        let (np, unresolved) = policy(&t, &[web()]);
        assert_eq!(unresolved, Vec::<String>::new(), "{host}");
        assert_eq!(
            origin_rules(&np),
            vec![json!({
                "to": [ { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "apps" } },
                          "podSelector": { "matchLabels": { "app": "web" } } } ],
                "ports": [ { "protocol": "TCP", "port": 8080 } ]
            })],
            "{host}: the scheme's default port 80 is the Service port; the pods listen on 8080"
        );
    }
}

#[test]
fn a_named_target_port_becomes_a_named_policy_port() {
    let api = service(
        "shop",
        "api",
        json!({ "selector": { "app": "api" }, "ports": [ { "name": "http", "port": 443, "targetPort": "https-web", "protocol": "TCP" } ] }),
    );
    let t = tunnel(&["https://api.shop.svc"]);
    let (np, unresolved) = policy(&t, &[api]);
    assert!(unresolved.is_empty());
    assert_eq!(
        origin_rules(&np)[0]["ports"],
        json!([ { "protocol": "TCP", "port": "https-web" } ])
    );
}

#[test]
fn a_service_without_target_port_uses_its_port() {
    let db = service(
        "data",
        "db",
        json!({ "selector": { "app": "db" }, "ports": [ { "port": 5432 } ] }),
    );
    let t = tunnel(&["tcp://db.data.svc:5432"]);
    let (np, _) = policy(&t, &[db]);
    assert_eq!(
        origin_rules(&np)[0]["ports"],
        json!([ { "protocol": "TCP", "port": 5432 } ])
    );
    let validated = crate::validate::validate("home", &t.spec).expect("valid");
    let resolution = resolve(
        &validated,
        &t.spec,
        "apps",
        &BTreeMap::from([service(
            "data",
            "db",
            json!({ "selector": { "app": "db" }, "ports": [ { "port": 5432, "targetPort": "5433" } ] }),
        )]),
    );
    let ports: Vec<_> = resolution.pods.values().flatten().cloned().collect();
    assert_eq!(
        ports,
        [("TCP".to_string(), TargetPort::Number(5433))],
        "a numeric string is a number"
    );
}

#[test]
fn ip_literals_become_host_blocks() {
    let t = tunnel(&[
        "tcp://10.20.0.15:5432",
        "https://[2001:db8::10]:8443",
        "http://10.20.0.15:8080",
    ]);
    let (np, unresolved) = policy(&t, &[]);
    assert!(unresolved.is_empty());
    assert_eq!(
        origin_rules(&np),
        vec![
            json!({ "to": [ { "ipBlock": { "cidr": "10.20.0.15/32" } } ], "ports": [ { "protocol": "TCP", "port": 5432 }, { "protocol": "TCP", "port": 8080 } ] }),
            json!({ "to": [ { "ipBlock": { "cidr": "2001:db8::10/128" } } ], "ports": [ { "protocol": "TCP", "port": 8443 } ] }),
        ]
    );
}

#[test]
fn dns_and_the_edge_are_always_allowed_and_nothing_else_for_local_answers() {
    let t = tunnel(&["http_status:404", "hello_world"]);
    let (np, unresolved) = policy(&t, &[]);
    assert!(unresolved.is_empty());
    let spec = serde_json::to_value(np.spec.expect("spec")).expect("json");
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["podSelector"],
        json!({ "matchLabels": { "app.kubernetes.io/instance": "home", "app.kubernetes.io/name": "cloudflared" } })
    );
    assert_eq!(
        spec["egress"],
        json!([
            {
                "to": [ { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                          "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } } ],
                "ports": [ { "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 } ]
            },
            {
                "to": [
                    { "ipBlock": { "cidr": "198.41.192.0/24" } }, { "ipBlock": { "cidr": "198.41.200.0/24" } },
                    { "ipBlock": { "cidr": "2606:4700:a0::/48" } }, { "ipBlock": { "cidr": "2606:4700:a8::/48" } }
                ],
                "ports": [ { "protocol": "TCP", "port": 7844 }, { "protocol": "UDP", "port": 7844 } ]
            }
        ])
    );
    assert_eq!(
        spec["ingress"],
        json!([]),
        "no metrics scrapers by default: nothing may connect"
    );
}

#[test]
fn metrics_scrapers_get_port_2000_only() {
    let mut t = tunnel(&["http_status:404"]);
    t.spec.metrics.allow_from = Some(crate::api::PeerSelector {
        namespace_labels: BTreeMap::from([(
            "kubernetes.io/metadata.name".into(),
            "monitoring".into(),
        )]),
        pod_labels: BTreeMap::new(),
    });
    let (np, _) = policy(&t, &[]);
    let spec = serde_json::to_value(np.spec.expect("spec")).expect("json");
    assert_eq!(
        spec["ingress"],
        json!([ { "from": [ { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } } ],
                  "ports": [ { "protocol": "TCP", "port": 2000 } ] } ])
    );
}

#[test]
fn extra_origins_are_allowed_as_given_and_merged_by_cidr() {
    let mut t = tunnel(&["https://api.github.com"]);
    t.spec.egress.extra_origins = vec![
        crate::api::ExtraOrigin {
            cidr: "140.82.112.0/20".into(),
            ports: vec![443],
        },
        crate::api::ExtraOrigin {
            cidr: "140.82.112.0/20".into(),
            ports: vec![22, 443],
        },
    ];
    let (np, unresolved) = policy(&t, &[]);
    assert!(
        unresolved.is_empty(),
        "the external host is covered: {unresolved:?}"
    );
    assert_eq!(
        origin_rules(&np),
        vec![
            json!({ "to": [ { "ipBlock": { "cidr": "140.82.112.0/20" } } ], "ports": [ { "protocol": "TCP", "port": 22 }, { "protocol": "TCP", "port": 443 } ] })
        ]
    );
}

#[test]
fn unresolvable_origins_are_reported_and_never_opened() {
    let selectorless = service("apps", "manual", json!({ "ports": [ { "port": 80 } ] }));
    let external_name = service(
        "apps",
        "ext",
        json!({ "type": "ExternalName", "externalName": "db.example.net" }),
    );
    let t = tunnel(&[
        "http://missing",                // certain Service name, no such Service
        "http://missing.other.svc:8080", // same, in another namespace
        "http://manual",                 // Service without a selector
        "https://ext:443",               // ExternalName Service
        "http://web:9090",               // Service exists, port does not
        "https://api.github.com",        // external host, no extraOrigins
        "https://example.com",           // could be Service example/com; is not
    ]);
    let (np, unresolved) = policy(&t, &[web(), selectorless, external_name]);
    assert_eq!(
        unresolved,
        [
            "spec.ingress[0] (http://missing): no Service apps/missing",
            "spec.ingress[1] (http://missing.other.svc:8080): no Service other/missing",
            "spec.ingress[2] (http://manual): Service apps/manual has no pod selector, so its endpoints are unknown: add a spec.egress.extraOrigins entry with its address and port 80",
            "spec.ingress[3] (https://ext:443): Service apps/ext has no pod selector, so its endpoints are unknown: add a spec.egress.extraOrigins entry with its address and port 443",
            "spec.ingress[4] (http://web:9090): Service apps/web has no port 9090",
            "spec.ingress[5] (https://api.github.com): api.github.com is outside the cluster: add a spec.egress.extraOrigins entry with its address and port 443",
            "spec.ingress[6] (https://example.com): no Service com/example, so example.com is outside the cluster: add a spec.egress.extraOrigins entry with its address and port 443",
        ]
    );
    assert!(
        origin_rules(&np).is_empty(),
        "nothing was opened: {:?}",
        origin_rules(&np)
    );
}

#[test]
fn a_resolvable_rule_still_applies_beside_an_unresolved_one() {
    let t = tunnel(&["http://missing", "http://web"]);
    let (np, unresolved) = policy(&t, &[web()]);
    assert_eq!(unresolved.len(), 1);
    assert_eq!(origin_rules(&np).len(), 1);
}

fn assert_peer_is_bounded(peer: &NetworkPolicyPeer, context: &str) {
    let selects = |s: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
        s.as_ref()
            .is_some_and(|s| s.match_labels.as_ref().is_some_and(|m| !m.is_empty()))
    };
    let bounded =
        peer.ip_block.is_some() || selects(&peer.namespace_selector) || selects(&peer.pod_selector);
    assert!(bounded, "{context}: peer {peer:?} selects everything");
    if let Some(pod_selector) = &peer.pod_selector {
        assert!(
            pod_selector
                .match_labels
                .as_ref()
                .is_some_and(|m| !m.is_empty()),
            "{context}: an empty podSelector selects every pod"
        );
    }
}

/// An egress rule with an empty or absent `to` allows every destination.
#[test]
fn no_rule_ever_allows_any_destination_or_any_source() {
    let selectorless = service("apps", "manual", json!({ "ports": [ { "port": 80 } ] }));
    let empty_selector = service(
        "apps",
        "blank",
        json!({ "selector": {}, "ports": [ { "port": 80 } ] }),
    );
    let specs = [
        tunnel(&["http_status:404"]),
        tunnel(&["http://web", "tcp://10.0.0.1:22", "https://[::1]:443"]),
        tunnel(&[
            "http://manual",
            "http://blank",
            "http://missing",
            "https://api.github.com",
        ]),
    ];
    for (i, mut t) in specs.into_iter().enumerate() {
        t.spec.metrics.allow_from = Some(crate::api::PeerSelector {
            namespace_labels: BTreeMap::new(),
            pod_labels: BTreeMap::from([("app".into(), "prometheus".into())]),
        });
        let (np, _) = policy(&t, &[web(), selectorless.clone(), empty_selector.clone()]);
        let spec = np.spec.expect("spec");
        for (j, rule) in spec.egress.iter().flatten().enumerate() {
            let to = rule.to.as_ref().expect("egress rule has `to`");
            assert!(
                !to.is_empty(),
                "case {i} egress[{j}]: empty `to` allows every destination"
            );
            for peer in to {
                assert_peer_is_bounded(peer, &format!("case {i} egress[{j}]"));
            }
            assert!(
                rule.ports.as_ref().is_some_and(|p| !p.is_empty()),
                "case {i} egress[{j}]: every port"
            );
        }
        for (j, rule) in spec.ingress.iter().flatten().enumerate() {
            let from = rule.from.as_ref().expect("ingress rule has `from`");
            assert!(
                !from.is_empty(),
                "case {i} ingress[{j}]: empty `from` allows every source"
            );
            for peer in from {
                assert_peer_is_bounded(peer, &format!("case {i} ingress[{j}]"));
            }
            let ports = serde_json::to_value(&rule.ports).expect("json");
            assert_eq!(ports, json!([ { "protocol": "TCP", "port": 2000 } ]));
        }
    }
}

#[test]
fn the_services_to_read_are_the_ones_the_rules_may_name() {
    let t = tunnel(&[
        "http://web",
        "http://api.shop",
        "https://api.github.com",
        "tcp://10.0.0.1:22",
        "http://db.data.svc.cluster.local:80",
        "http_status:404",
    ]);
    let validated = crate::validate::validate("home", &t.spec).expect("valid");
    let names: Vec<String> = validated
        .referenced_services("apps")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["apps/web", "data/db", "shop/api"]);
}

#[test]
fn named_ports_convert_to_int_or_string() {
    assert_eq!(
        IntOrString::from(TargetPort::Name("http".into())),
        IntOrString::String("http".into())
    );
    assert_eq!(
        IntOrString::from(TargetPort::Number(80)),
        IntOrString::Int(80)
    );
}

/// Every (port, protocol, peer CIDRs) egress rule that opens `port`.
fn egress_on(np: &NetworkPolicy, port: i32) -> Vec<(String, Vec<String>)> {
    np.spec
        .as_ref()
        .and_then(|s| s.egress.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|rule| {
            let ports = rule.ports.clone().unwrap_or_default();
            let p = ports
                .iter()
                .find(|p| p.port == Some(IntOrString::Int(port)))?;
            let cidrs = rule
                .to
                .unwrap_or_default()
                .into_iter()
                .filter_map(|peer| peer.ip_block.map(|b| b.cidr))
                .collect();
            Some((p.protocol.clone().unwrap_or_default(), cidrs))
        })
        .collect()
}

#[test]
fn only_a_tunnel_that_requires_access_may_reach_cloudflare_on_443() {
    let mut t = tunnel(&["http://web.apps.svc:80"]);
    let (np, _) = policy(&t, &[web()]);
    assert_eq!(egress_on(&np, 443), vec![], "no Access, no 443 at all");

    // Access configured but not required: cloudflared builds no validator, fetches nothing.
    t.spec.ingress[0].origin_request = Some(Box::new(crate::api::OriginRequest {
        access: Some(crate::api::AccessSettings {
            required: Some(false),
            team_name: Some("example".into()),
            aud_tag: vec!["aud".into()],
        }),
        ..Default::default()
    }));
    let (np, _) = policy(&t, &[web()]);
    assert_eq!(egress_on(&np, 443), vec![]);

    if let Some(access) = t.spec.ingress[0]
        .origin_request
        .as_mut()
        .and_then(|o| o.access.as_mut())
    {
        access.required = Some(true);
    }
    let (np, _) = policy(&t, &[web()]);
    assert_eq!(
        egress_on(&np, 443),
        vec![(
            "TCP".to_string(),
            crate::api::default_cloudflare_access().to_vec()
        )],
        "TCP 443 to Cloudflare's published ranges, and nowhere else"
    );
    assert!(
        crate::api::default_cloudflare_access()
            .iter()
            .any(|c| c.contains(':')),
        "IPv6 too"
    );

    t.spec.egress.cloudflare_access = vec!["104.16.0.0/13".to_string()].into();
    let (np, _) = policy(&t, &[web()]);
    assert_eq!(
        egress_on(&np, 443),
        vec![("TCP".to_string(), vec!["104.16.0.0/13".to_string()])]
    );
}

#[test]
fn the_config_has_no_top_level_origin_request_which_cloudflared_would_not_enforce() {
    let mut t = tunnel(&["http://web.apps.svc:80"]);
    t.spec.ingress[0].origin_request = Some(Box::new(crate::api::OriginRequest {
        access: Some(crate::api::AccessSettings {
            required: Some(true),
            team_name: Some("example".into()),
            aud_tag: vec!["aud".into()],
        }),
        ..Default::default()
    }));
    let validated = crate::validate::validate("home", &t.spec).expect("valid");
    let yaml = config::render_config(&t.spec, &validated).expect("config");
    let doc: serde_json::Value = serde_norway::from_str(&yaml).expect("yaml");
    assert!(doc.get("originRequest").is_none(), "{yaml}");
    assert_eq!(
        doc["ingress"][0]["originRequest"]["access"]["required"],
        true
    );
    assert_eq!(
        doc["ingress"][0]["originRequest"]["access"]["teamName"],
        "example"
    );
}

#[test]
fn the_operators_pods_and_only_they_may_read_the_connectors_config() {
    let t = tunnel(&["http://web.apps.svc:80"]);
    let validated = crate::validate::validate("home", &t.spec).expect("valid");
    let deref = Dereferenced {
        operator_namespace: Some("securetunnel-system".into()),
        ..Default::default()
    };
    let np = render(&t, &validated, &deref)
        .expect("renders")
        .network_policy;
    let ingress = serde_json::to_value(np.spec.and_then(|s| s.ingress)).expect("json");
    assert_eq!(
        ingress,
        json!([{
            "from": [{
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "securetunnel-system" } },
                "podSelector": { "matchLabels": { "app.kubernetes.io/name": "securetunnel-operator" } }
            }],
            "ports": [{ "port": 2000, "protocol": "TCP" }]
        }]),
        "no allowFrom: the operator alone"
    );
}
