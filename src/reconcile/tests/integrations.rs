//! Children of integrations' kinds (a DNSEndpoint for `spec.dns`): written only where the
//! integration is enabled and its CRD served; elsewhere the tunnel says why, and the rest
//! of the reconcile goes on.

use kube::runtime::watcher;

use super::*;
use crate::api::Dns;
use crate::children::Integration;

fn dns_tunnel() -> SecureTunnel {
    let mut t = tunnel();
    t.spec.dns = Some(Dns {
        ttl: 300,
        record_owner: None,
    });
    t
}

/// A tunnel with `spec.dns` whose status already holds the steady core conditions.
fn steady_dns_tunnel(children: &Children) -> SecureTunnel {
    let mut t = tunnel_in_steady_state(children);
    t.spec.dns = dns_tunnel().spec.dns;
    t
}

/// The steady status, plus a DNSRecords condition.
fn status_with_dns(children: &Children, status: &str, reason: &str, message: &str) -> Value {
    let mut s = steady_status(children);
    s["conditions"]
        .as_array_mut()
        .expect("conditions")
        .push(json!({ "type": "DNSRecords", "status": status, "reason": reason, "message": message, "observedGeneration": 1 }));
    s
}

fn dns_endpoint_json(children: &Children) -> Value {
    children
        .objects()
        .expect("objects")
        .into_iter()
        .find(|(k, _)| *k == ChildKind::DnsEndpoint)
        .expect("a DNSEndpoint")
        .1
}

#[tokio::test]
async fn without_the_integration_the_tunnel_says_how_to_enable_it_and_works_on() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&dns_tunnel(), &token);
    assert!(children.dns_endpoint.is_some());
    // The default caches: core kinds only, as `run` without --integration.
    let caches = Caches::holding(&children);
    let script = vec![
        token_lookup(&token),
        apply_status(status_with_dns(
            &children,
            "False",
            "IntegrationNotEnabled",
            "this operator does not manage DNSEndpoints: enable the dns-endpoints integration (Helm: integrations.dnsEndpoints=true; kustomize: the component config/components/dns-endpoints)",
        )),
    ];
    let action = reconcile_against(steady_dns_tunnel(&children), &caches, script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn with_the_integration_the_records_are_created_after_the_connectors() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&dns_tunnel(), &token);
    let caches = Caches::holding_with(&children, &ChildKind::enabled(&[Integration::DnsEndpoints]));
    let applied = format!(
        "DNSEndpoint apps/home-cloudflared: 1 CNAME record to {TUNNEL_ID}.cfargotunnel.com"
    );
    let script = vec![
        token_lookup(&token),
        create(ChildKind::DnsEndpoint, dns_endpoint_json(&children)),
        apply_status(status_with_dns(&children, "True", "Applied", &applied)),
    ];
    let mut cluster = MockCluster::new(&caches);
    let action = cluster
        .reconcile(steady_dns_tunnel(&children), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));

    // The next reconcile, before the watch delivers the DNSEndpoint, writes nothing.
    let mut t = steady_dns_tunnel(&children);
    let mut status = status_with_dns(&children, "True", "Applied", &applied);
    for c in status["conditions"].as_array_mut().expect("conditions") {
        c["lastTransitionTime"] = json!("2026-11-01T00:00:00Z");
    }
    t.status = Some(serde_json::from_value(status).expect("status"));
    cluster
        .reconcile(t, vec![token_lookup(&token)])
        .await
        .expect("reconciles");
    cluster.finish().await;
}

#[tokio::test]
async fn a_missing_crd_is_reported_and_nothing_is_sent_for_it() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&dns_tunnel(), &token);
    let caches = Caches::holding_with(&children, &ChildKind::enabled(&[Integration::DnsEndpoints]));
    let not_found: kube::core::Status = serde_json::from_value(json!({
        "status": "Failure", "message": "the server could not find the requested resource",
        "reason": "NotFound", "code": 404
    }))
    .expect("status");
    caches.children.watch_failed(
        ChildKind::DnsEndpoint,
        &watcher::Error::InitialListFailed(kube::Error::Api(Box::new(not_found))),
    );
    let script = vec![
        token_lookup(&token),
        apply_status(status_with_dns(
            &children,
            "False",
            "CRDNotInstalled",
            "the DNSEndpoint CRD (dnsendpoints.externaldns.k8s.io) is not installed in this cluster",
        )),
    ];
    let action = reconcile_against(steady_dns_tunnel(&children), &caches, script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn records_no_longer_wanted_are_deleted_by_uid() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let with_dns = children_for(&dns_tunnel(), &token);
    let children = children_for(&tunnel(), &token);
    let mut caches =
        Caches::holding_with(&children, &ChildKind::enabled(&[Integration::DnsEndpoints]));
    let mut live = dns_endpoint_json(&with_dns);
    live["metadata"]["uid"] = json!("dns-uid");
    caches.put(ChildKind::DnsEndpoint, &live);
    let script = vec![
        token_lookup(&token),
        Exchange {
            method: Method::DELETE,
            path: path(ChildKind::DnsEndpoint),
            query: vec![],
            body: Some(json!({ "preconditions": { "uid": "dns-uid" } })),
            normalize: no_normalize,
            reply: Reply::Json(
                StatusCode::OK,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" }),
            ),
        },
    ];
    reconcile_against(tunnel_in_steady_state(&children), &caches, script)
        .await
        .expect("reconciles");
}
