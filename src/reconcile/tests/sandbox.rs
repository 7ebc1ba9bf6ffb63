//! The sandbox follows the Services the rules name.

use super::*;

#[tokio::test]
async fn a_changed_service_selector_updates_only_the_network_policy() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let before = children_for(&tunnel(), &token);
    let moved = web_service("web-v2");
    let after = children_with(&tunnel(), &token, std::slice::from_ref(&moved));
    assert_ne!(before.network_policy, after.network_policy);

    let mut caches = Caches::holding(&before);
    caches
        .services
        .apply_watcher_event(&watcher::Event::Apply(moved));
    let script = vec![
        token_lookup(&token),
        apply(
            &path(ChildKind::NetworkPolicy),
            to_json(&after.network_policy),
        ),
    ];
    reconcile_against(tunnel_in_steady_state(&before), &caches, script)
        .await
        .expect("reconciles");
    let peer = &to_json(&after.network_policy)["spec"]["egress"][2]["to"][0];
    assert_eq!(
        peer["podSelector"],
        json!({ "matchLabels": { "app": "web-v2" } })
    );
}

#[tokio::test]
async fn a_vanished_service_closes_its_origin_and_degrades_the_tunnel() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let before = children_for(&tunnel(), &token);
    let after = children_with(&tunnel(), &token, &[]);
    assert_eq!(
        to_json(&after.network_policy)["spec"]["egress"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    let mut caches = Caches::holding(&before);
    caches
        .services
        .apply_watcher_event(&watcher::Event::Delete(web_service("web")));
    let mut degraded_status = steady_status(&before);
    degraded_status["conditions"][2] = json!({
        "type": "Degraded", "status": "True", "reason": "UnresolvedOrigin", "observedGeneration": 1,
        "message": "not reachable through the sandbox: spec.ingress[0] (http://web.apps.svc.cluster.local:8080): no Service apps/web"
    });
    let script = vec![
        token_lookup(&token),
        apply(
            &path(ChildKind::NetworkPolicy),
            to_json(&after.network_policy),
        ),
        // Ready is unchanged (the connectors run), so no Event.
        apply_status(degraded_status),
    ];
    let action = reconcile_against(tunnel_in_steady_state(&before), &caches, script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn a_service_cache_that_never_lists_fails_the_reconcile_instead_of_closing_origins() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    caches.services = Writer::default(); // never sees its first listing
    tokio::time::pause(); // the 30 s wait passes instantly
                          // Nothing is read or written before every cache has listed.
    let err = reconcile_against(tunnel_in_steady_state(&children), &caches, vec![])
        .await
        .expect_err("waits, then fails");
    assert_eq!(err.metric_label(), "cache_not_ready");
}
