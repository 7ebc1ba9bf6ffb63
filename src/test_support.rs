//! Fixtures shared by the unit tests.

use base64::Engine;

use crate::api::{IngressRule, SecureTunnel};
use crate::token::TunnelToken;

pub const TUNNEL_ID: &str = "6ff42ae2-765d-4adf-8112-31c55c1551ef";
pub const TUNNEL_UID: &str = "0b7f5b8e-9d55-4a8e-9d43-3c8f0f6f7f01";

/// A syntactically real token string with a made-up secret part.
pub fn token_string(secret: &str) -> String {
    let json =
        format!(r#"{{"a":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","t":"{TUNNEL_ID}","s":"{secret}"}}"#);
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// [`token_string`], parsed.
pub fn test_token(secret: &str) -> TunnelToken {
    TunnelToken::parse(token_string(secret).as_bytes()).expect("test token parses")
}

/// Test tunnels in the kube-rs controller-rs style:
/// `SecureTunnel::test().named("ops", "edge").with_rules(&["http://web:80"])`.
impl SecureTunnel {
    /// The README's example: `apps/home`, one rule to `web`, generation 1, a uid.
    pub fn test() -> SecureTunnel {
        let mut t: SecureTunnel = serde_norway::from_str(
            r#"
apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: { name: home, namespace: apps, generation: 1, resourceVersion: "100" }
spec:
  tokenSecretRef: { name: home-tunnel-token }
  ingress:
    - hostname: app.example.com
      service: http://web.apps.svc.cluster.local:8080
"#,
        )
        .expect("the example tunnel parses");
        t.metadata.uid = Some(TUNNEL_UID.to_string());
        t
    }

    /// Another name and namespace (and a uid of its own).
    pub fn named(mut self, namespace: &str, name: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_string());
        self.metadata.name = Some(name.to_string());
        self.metadata.uid = Some(format!("uid-{namespace}-{name}"));
        self
    }

    pub fn with_uid(mut self, uid: &str) -> Self {
        self.metadata.uid = Some(uid.to_string());
        self
    }

    pub fn with_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    pub fn with_token_secret(mut self, name: &str) -> Self {
        self.spec.token_secret_ref.name = name.to_string();
        self
    }

    /// Replaces the rules: one per service, with hostnames `h0.example.com`, `h1.…`.
    pub fn with_rules(mut self, services: &[&str]) -> Self {
        self.spec.ingress = services
            .iter()
            .enumerate()
            .map(|(i, service)| IngressRule {
                hostname: Some(format!("h{i}.example.com")),
                service: service.to_string(),
                ..Default::default()
            })
            .collect();
        self
    }

    /// Adds a rule after the others.
    pub fn with_rule(mut self, hostname: &str, service: &str) -> Self {
        self.spec.ingress.push(IngressRule {
            hostname: Some(hostname.to_string()),
            service: service.to_string(),
            ..Default::default()
        });
        self
    }

    /// A status whose Ready condition has this status.
    pub fn with_ready(mut self, status: &str) -> Self {
        self.status = Some(
            serde_json::from_value(serde_json::json!({ "conditions": [ {
                "type": "Ready", "status": status, "reason": "R", "message": "m",
                "lastTransitionTime": "2026-11-01T00:00:00Z" } ] }))
            .expect("status"),
        );
        self
    }
}
