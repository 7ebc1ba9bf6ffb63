//! Fixtures shared by the unit tests.

use base64::Engine;

use crate::api::SecureTunnel;
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

/// The README's example tunnel, as the API server would hand it over.
pub fn example_tunnel() -> SecureTunnel {
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
