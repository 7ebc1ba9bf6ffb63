//! Arbitrary SecureTunnel objects: mostly plausible, often subtly wrong.

use proptest::prelude::*;
use serde_json::{json, Value};

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn dns_name() -> impl Strategy<Value = String> {
    prop::collection::vec(dns_label(), 1..4).prop_map(|labels| labels.join("."))
}

fn hostname() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => dns_name().prop_map(Some),
        2 => dns_name().prop_map(|n| Some(format!("*.{n}"))),
        1 => Just(None),
        1 => Just(Some(String::new())),
        1 => Just(Some("*".to_string())),
        2 => "[a-zA-Z0-9.*:_-]{0,24}".prop_map(Some),
        1 => dns_name().prop_map(|n| Some(format!("{n}:443"))),
    ]
}

fn path() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        2 => "[a-z]{1,8}".prop_map(|p| Some(format!("^/{p}/"))),
        2 => r"[\^$()|a-z/.*+?\[\]\\{}0-9]{0,12}".prop_map(Some),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => dns_name(),
        1 => (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
        1 => Just("[2001:db8::1]".to_string()),
        1 => "[a-zA-Z0-9_@:\\[\\]-]{0,10}",
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        3 => (1u32..=65535).prop_map(|p| format!(":{p}")),
        1 => Just(":0".to_string()),
        1 => Just(":65536".to_string()),
        1 => Just(":http".to_string()),
    ]
}

fn service() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec![
        "http", "https", "ws", "wss", "tcp", "ssh", "rdp", "smb", "HTTP", "unix", "",
    ]);
    let suffix = prop::sample::select(vec!["", "", "", "/", "/api", "?x=1", "#f"]);
    prop_oneof![
        6 => (scheme, host(), port(), suffix).prop_map(|(s, h, p, x)| format!("{s}://{h}{p}{x}")),
        1 => (0u32..1200).prop_map(|c| format!("http_status:{c}")),
        1 => prop::sample::select(vec!["hello_world", "bastion", "socks-proxy", "unix:/run/app.sock", "web:80"]).prop_map(String::from),
        1 => "[ -~]{0,20}",
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "30s", "1m30s", "500ms", "0", ".5s", "1.5h", "30", "5d", "-1s", "s", ""
        ])
        .prop_map(String::from),
        "[0-9.a-z]{0,6}",
    ]
}

fn origin_request() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => (duration(), prop::option::of(-2i32..5), any::<bool>(), prop::option::of("[a-z]{0,6}"))
            .prop_map(|(d, n, verify, team)| {
                let mut o = json!({ "connectTimeout": d, "noTLSVerify": verify });
                if let Some(n) = n {
                    o["keepAliveConnections"] = json!(n);
                }
                if let Some(team) = team {
                    o["access"] = json!({ "required": true, "teamName": team, "audTag": ["aud"] });
                }
                Some(o)
            }),
    ]
}

/// An ingress rule as a user writes it, leaving out what is `None`.
fn rule_json(
    hostname: Option<String>,
    path: Option<String>,
    service: String,
    origin: Option<Value>,
) -> Value {
    let mut r = json!({ "service": service });
    if let Some(h) = hostname {
        r["hostname"] = json!(h);
    }
    if let Some(p) = path {
        r["path"] = json!(p);
    }
    if let Some(o) = origin {
        r["originRequest"] = o;
    }
    r
}

fn rule() -> impl Strategy<Value = Value> {
    (hostname(), path(), service(), origin_request()).prop_map(|(h, p, s, o)| rule_json(h, p, s, o))
}

fn image() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(vec![
            "docker.io/cloudflare/cloudflared:2026.8.2",
            "cloudflare/cloudflared:2025.4.0",
            "cloudflare/cloudflared:2025.2.1",
            "cloudflare/cloudflared:latest",
            "cloudflare/cloudflared",
            "registry.local:5000/cloudflared:2025.11.1",
            "registry.local:5000/cloudflared",
            "cloudflare/cloudflared@sha256:0a0b",
            "",
        ])
        .prop_map(String::from),
    )
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..=255, 0u8..=40).prop_map(|(a, p)| format!("10.{a}.0.0/{p}")),
        Just("2606:4700:a0::/48".to_string()),
        Just("2606:4700:a0::/129".to_string()),
        "[0-9./a-f:]{0,12}",
    ]
}

/// A whole SecureTunnel object as a user might write it.
pub fn tunnel() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?",
        prop::option::of(-2i32..25),
        image(),
        prop::option::of(prop::sample::select(vec!["auto", "quic", "http2"])),
        prop::collection::vec(rule(), 0..7),
        prop::option::of(service()),
        prop::option::of(prop::collection::vec((cidr(), prop::collection::vec(0i32..70000, 0..3)), 0..3)),
        prop::option::of(prop::collection::vec(cidr(), 0..3)),
        any::<bool>(),
    )
        .prop_map(|(name, replicas, image, protocol, ingress, fallback, extra, edge, icmp)| {
            let mut spec = json!({ "tokenSecretRef": { "name": "tok" }, "ingress": ingress });
            if let Some(r) = replicas {
                spec["replicas"] = json!(r);
            }
            if let Some(i) = image {
                spec["image"] = json!(i);
            }
            if let Some(p) = protocol {
                spec["protocol"] = json!(p);
            }
            if let Some(f) = fallback {
                spec["fallback"] = json!(f);
            }
            if let Some(extra) = extra {
                let origins: Vec<Value> = extra.into_iter().map(|(c, ports)| json!({ "cidr": c, "ports": ports })).collect();
                spec["egress"] = json!({ "extraOrigins": origins });
            }
            if let Some(edge) = edge {
                spec["egress"]["cloudflareEdge"] = json!(edge);
            }
            spec["sandbox"] = json!({ "allowICMP": icmp });
            json!({
                "apiVersion": "securetunnel.dev/v1alpha1",
                "kind": "SecureTunnel",
                "metadata": { "name": name, "namespace": "apps", "uid": "0b7f5b8e-9d55-4a8e-9d43-3c8f0f6f7f01" },
                "spec": spec
            })
        })
}

fn valid_service() -> impl Strategy<Value = String> {
    let web_scheme = prop::sample::select(vec!["http", "https", "ws", "wss", "ssh", "rdp", "smb"]);
    let valid_port = prop_oneof![
        Just(String::new()),
        (1u32..=65535).prop_map(|p| format!(":{p}"))
    ];
    let valid_host = prop_oneof![
        4 => dns_name(),
        1 => (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
        1 => Just("[2001:db8::1]".to_string()),
    ];
    prop_oneof![
        6 => (web_scheme, valid_host.clone(), valid_port).prop_map(|(s, h, p)| format!("{s}://{h}{p}")),
        1 => (valid_host, 1u32..=65535).prop_map(|(h, p)| format!("tcp://{h}:{p}")),
        1 => (100u32..=999).prop_map(|c| format!("http_status:{c}")),
        1 => Just("hello_world".to_string()),
    ]
}

fn valid_rule(index: usize) -> impl Strategy<Value = Value> {
    let host = prop_oneof![
        3 => dns_name().prop_map(move |n| Some(format!("h{index}.{n}"))),
        1 => dns_name().prop_map(move |n| Some(format!("*.h{index}.{n}"))),
        1 => Just(None),
    ];
    let path = prop_oneof![
        2 => Just(None),
        1 => "[a-z]{1,8}".prop_map(move |p| Some(format!("^/{index}/{p}(/|$)"))),
    ];
    let origin = prop_oneof![
        2 => Just(None),
        1 => (prop::sample::select(vec!["30s", "1m30s", "500ms", "0", ".5s", "1.5h"]), 0i32..100, "[a-z]{1,8}")
            .prop_map(|(d, n, team)| Some(json!({ "connectTimeout": d, "keepAliveConnections": n,
                "access": { "required": true, "teamName": team, "audTag": ["aud"] } }))),
    ];
    (host, path, valid_service(), origin).prop_map(move |(h, p, s, o)| {
        // A rule needs a hostname or a path; the index keeps pairs unique.
        let p = if h.is_none() && p.is_none() {
            Some(format!("^/{index}/"))
        } else {
            p
        };
        rule_json(h, p, s, o)
    })
}

fn valid_rules() -> impl Strategy<Value = Vec<Value>> {
    (1usize..7).prop_flat_map(|n| (0..n).map(valid_rule).collect::<Vec<_>>())
}

/// A SecureTunnel the operator should accept: every part drawn from valid
/// values, combined at random.
pub fn valid_tunnel() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?",
        1i32..=20,
        prop::sample::select(vec![
            "docker.io/cloudflare/cloudflared:2026.8.2",
            "cloudflare/cloudflared:2025.4.0",
            "registry.local:5000/cloudflared:2025.11.1",
            "cloudflare/cloudflared@sha256:0a0b",
        ]),
        prop::sample::select(vec!["auto", "quic", "http2"]),
        valid_rules(),
        prop_oneof![(100u32..=999).prop_map(|c| format!("http_status:{c}")), Just("hello_world".to_string())],
        prop::collection::vec(((0u8..=255), 8u8..=32, prop::collection::vec(1i32..=65535, 1..3)), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, replicas, image, protocol, ingress, fallback, extra, icmp)| {
            let origins: Vec<Value> = extra
                .into_iter()
                .map(|(a, prefix, ports)| json!({ "cidr": format!("10.{a}.0.0/{prefix}"), "ports": ports }))
                .collect();
            json!({
                "apiVersion": "securetunnel.dev/v1alpha1",
                "kind": "SecureTunnel",
                "metadata": { "name": name, "namespace": "apps", "uid": "0b7f5b8e-9d55-4a8e-9d43-3c8f0f6f7f01" },
                "spec": {
                    "tokenSecretRef": { "name": "tok" },
                    "replicas": replicas, "image": image, "protocol": protocol,
                    "ingress": ingress, "fallback": fallback,
                    "egress": { "extraOrigins": origins },
                    "sandbox": { "allowICMP": icmp }
                }
            })
        })
}

/// Valid and noisy specs, mixed.
pub fn any_tunnel() -> impl Strategy<Value = Value> {
    prop_oneof![valid_tunnel(), tunnel()]
}
