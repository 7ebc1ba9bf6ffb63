//! API failures: backoff, convergence, throttling.

use super::*;

#[tokio::test]
async fn an_api_error_is_returned_for_backoff_and_nothing_else_is_sent() {
    let script = vec![get(
        TOKEN_SECRET_PATH,
        Reply::Json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "etcd unavailable", "reason": "InternalError", "code": 500 }),
        ),
    )];
    let err = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect_err("fails");
    assert_eq!(err.metric_label(), "kube");
}

#[tokio::test]
async fn api_faults_back_off_and_the_tunnel_converges_without_deleting_anything() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    assert!(
        children.pod_disruption_budget.is_some(),
        "two replicas have a budget"
    );
    let mut cluster = MockCluster::new(&Caches::empty());
    let t = tunnel();
    let mut delays = Vec::new();

    // 1. The API server is down.
    let err = cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                api_error(500, "InternalError", "etcd unavailable"),
            )],
        )
        .await
        .expect_err("500");
    delays.push(cluster.error_policy(&t, &err));

    // 2. It comes back, then answers 503 to the policy; the rest of its wave lands.
    let err = cluster
        .reconcile(
            t.clone(),
            joined(vec![
                vec![token_lookup(&token)],
                vec![Exchange {
                    reply: api_error(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    ),
                    ..create(ChildKind::NetworkPolicy, to_json(&children.network_policy))
                }],
                creates_of(
                    &children,
                    &[
                        ChildKind::Secret,
                        ChildKind::ConfigMap,
                        ChildKind::ServiceAccount,
                        ChildKind::PodDisruptionBudget,
                    ],
                ),
            ]),
        )
        .await
        .expect_err("503");
    delays.push(cluster.error_policy(&t, &err));

    // 3. The connection drops on the policy: nothing else is sent again.
    let err = cluster
        .reconcile(
            t.clone(),
            joined(vec![
                vec![token_lookup(&token)],
                vec![Exchange {
                    reply: Reply::Cut,
                    ..create(ChildKind::NetworkPolicy, to_json(&children.network_policy))
                }],
            ]),
        )
        .await
        .expect_err("connection reset");
    delays.push(cluster.error_policy(&t, &err));

    // 4. Everything applies, but the status write meets a conflict.
    let status_after = first_status(&children);
    // What earlier attempts stored is remembered (the watch has not delivered it yet),
    // and neither read nor written again.
    let script = joined(vec![
        vec![token_lookup(&token)],
        creates_of(
            &children,
            &[ChildKind::NetworkPolicy, ChildKind::Deployment],
        ),
        vec![Exchange {
            reply: api_error(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified",
            ),
            ..apply_status(status_after.clone())
        }],
    ]);
    let err = cluster.reconcile(t.clone(), script).await.expect_err("409");
    delays.push(cluster.error_policy(&t, &err));

    // 5. It converges: every child as written, the status written, the event sent.
    let script = vec![
        token_lookup(&token),
        apply_status(status_after),
        event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
    ];
    let action = cluster
        .reconcile(t.clone(), script)
        .await
        .expect("converges");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));

    let backoff = |s| Action::requeue(Duration::from_secs(s));
    assert_eq!(
        delays,
        [backoff(5), backoff(10), backoff(20), backoff(40)],
        "exponential backoff across consecutive failures"
    );

    // Success resets the backoff.
    let err = cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                api_error(500, "InternalError", "again"),
            )],
        )
        .await
        .expect_err("500");
    assert_eq!(
        cluster.error_policy(&t, &err),
        Action::requeue(Duration::from_secs(5))
    );
    // The script never allowed a DELETE: `finish` fails on any unscripted request.
    cluster.finish().await;
}

#[tokio::test]
async fn a_throttled_request_waits_at_least_as_long_as_the_server_asks() {
    let throttled = Reply::Json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too many requests", "reason": "TooManyRequests", "code": 429,
                "details": { "retryAfterSeconds": 60 } }),
    );
    let mut cluster = MockCluster::new(&Caches::empty());
    let t = tunnel();
    let err = cluster
        .reconcile(t.clone(), vec![get(TOKEN_SECRET_PATH, throttled)])
        .await
        .expect_err("429");
    assert_eq!(
        cluster.error_policy(&t, &err),
        Action::requeue(Duration::from_secs(60))
    );
    cluster.finish().await;
}
