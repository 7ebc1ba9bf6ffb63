//! A rule's private CA: its bundle is read from the ConfigMap it names and hashed into
//! the pods; a missing one blocks the tunnel with the object named.

use super::*;
use crate::api::{CaPool, KeyRef};
use crate::validate::CaKind;

fn ca_tunnel() -> SecureTunnel {
    let mut t = tunnel();
    t.spec.ingress[0]
        .origin_request
        .get_or_insert_with(Default::default)
        .ca_pool = Some(CaPool {
        config_map_key_ref: Some(KeyRef {
            name: "internal-ca".into(),
            key: "ca.crt".into(),
        }),
        ..Default::default()
    });
    t
}

const CA_PATH: &str = "/api/v1/namespaces/apps/configmaps/internal-ca";

#[tokio::test]
async fn the_bundle_is_read_and_its_hash_rolls_the_pods() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let tunnel = ca_tunnel();
    let children = render::desired_children(
        &tunnel,
        &Dereferenced {
            token: Some(TunnelToken::parse(token.as_bytes()).expect("token")),
            services: [(
                crate::validate::origin::ServiceRef {
                    namespace: "apps".into(),
                    name: "web".into(),
                },
                web_service("web"),
            )]
            .into(),
            ca_bundles: [(
                (
                    CaKind::ConfigMap,
                    "internal-ca".to_string(),
                    "ca.crt".to_string(),
                ),
                b"-----BEGIN CERTIFICATE-----".to_vec(),
            )]
            .into(),
            operator_namespace: None,
        },
    )
    .expect("renders");
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "internal-ca", "namespace": "apps", "resourceVersion": "7" },
        "data": { "ca.crt": "-----BEGIN CERTIFICATE-----", "unrelated": "x" }
    });
    let script = joined(vec![
        vec![
            token_lookup(&token),
            get(CA_PATH, Reply::Json(StatusCode::OK, config_map)),
        ],
        child_creates(&children, 0),
        vec![
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    reconcile_against(tunnel, &Caches::empty(), script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn a_missing_bundle_blocks_the_tunnel_and_names_it() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let message = "ConfigMap apps/internal-ca (a caPool) not found";
    let script = vec![
        token_lookup(&token),
        get(CA_PATH, not_found("configmaps", "internal-ca")),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "CAPoolMissing", message),
                ("False", "Blocked", "not applying the spec: CAPoolMissing"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event("Warning", "CAPoolMissing", message),
    ];
    let action = reconcile_against(ca_tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}
