//! The render memo: a reconcile whose inputs did not change, over children that still
//! hold what the last render asked for, neither renders nor applies; a hand edit, a
//! deleted child or a changed Service is seen all the same.

use super::*;

#[tokio::test]
async fn an_unchanged_tunnel_is_not_rendered_again_and_writes_nothing() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut cluster = MockCluster::new(&Caches::holding(&children));
    // The memo now holds this tunnel's render.
    cluster.reconcile_steady(&children, &token).await;
    for _ in 0..3 {
        cluster.reconcile_steady(&children, &token).await;
    }
    cluster.finish().await;
}

#[tokio::test]
async fn a_hand_edit_after_the_memo_is_still_reverted() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut cluster = MockCluster::new(&caches);
    // The memo now holds this tunnel's render.
    cluster.reconcile_steady(&children, &token).await;

    let mut edited = rolled_out(children.deployment.clone(), 2);
    if let Some(spec) = edited.spec.as_mut() {
        spec.replicas = Some(7);
    }
    caches.put(ChildKind::Deployment, &edited);
    caches.remove(ChildKind::ConfigMap, &children.config_map);
    cluster
        .reconcile(
            tunnel_in_steady_state(&children),
            vec![
                token_lookup(&token),
                create(ChildKind::ConfigMap, to_json(&children.config_map)),
                apply_existing_deployment(to_json(&children.deployment)),
            ],
        )
        .await
        .expect("reconciles");
    assert_eq!(
        cluster.ctx.memo.hits(),
        0,
        "the edit is seen: rendered and applied"
    );
    cluster.finish().await;
}

#[tokio::test]
async fn a_changed_service_renders_again() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut cluster = MockCluster::new(&caches);
    // The memo now holds this tunnel's render.
    cluster.reconcile_steady(&children, &token).await;

    // The Service now selects other pods: a new NetworkPolicy.
    let mut moved = web_service("api");
    moved.metadata.resource_version = Some("2".into());
    caches.services = listed(Writer::default(), &[moved.clone()]);
    let mut cluster = {
        // Same memo, new Service cache: a new cluster sharing the context's memo.
        let memo = cluster.ctx.memo.clone();
        cluster.finish().await;
        let mut next = MockCluster::new(&caches);
        Arc::get_mut(&mut next.ctx).expect("one owner").memo = memo;
        next
    };
    let moved_children = children_with(&tunnel(), &token, &[moved]);
    cluster
        .reconcile(
            tunnel_in_steady_state(&children),
            vec![
                token_lookup(&token),
                apply(
                    &path(ChildKind::NetworkPolicy),
                    to_json(&moved_children.network_policy),
                ),
            ],
        )
        .await
        .expect("reconciles");
    cluster.finish().await;
}
