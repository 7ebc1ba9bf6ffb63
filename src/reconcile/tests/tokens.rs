//! The token: missing, malformed, deleted, unchanged, and never leaked.

use super::*;

#[tokio::test]
async fn a_missing_token_secret_is_reported_and_nothing_is_applied() {
    let script = vec![
        get(TOKEN_SECRET_PATH, not_found("secrets", "home-tunnel-token")),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "TokenSecretMissing", "Secret apps/home-tunnel-token not found"),
                ("False", "Blocked", "not applying the spec: TokenSecretMissing"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event(
            "Warning",
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        ),
    ];
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    // Not retried hot: the Secret watch brings it back sooner if it appears.
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn a_secret_without_the_key_or_with_a_bad_token_is_reported() {
    let mut no_key = user_secret("unused");
    no_key.data = Some([("other".to_string(), ByteString(b"x".to_vec()))].into());
    let cases = [
        (no_key, "TokenSecretMissing", "Secret apps/home-tunnel-token has no key \"token\""),
        (
            user_secret("bm90LWEtdG9rZW4="), // base64 of "not-a-token"
            "TokenInvalid",
            "Secret apps/home-tunnel-token key \"token\": the token does not decode to a JSON object with the fields a, t and s; use the output of `cloudflared tunnel token NAME`",
        ),
    ];
    for (secret, reason, message) in cases {
        let script = vec![
            get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            ),
            apply_status(json!({
                "observedGeneration": 1,
                "replicas": 0,
                "readyReplicas": 0,
                "conditions": conditions(
                    ("False", reason, message),
                    ("False", "Blocked", &format!("not applying the spec: {reason}")),
                    ("False", "AsExpected", "all connectors are available or starting"),
                ),
            })),
            event("Warning", reason, message),
        ];
        reconcile_against(tunnel(), &Caches::empty(), script)
            .await
            .expect("reconciles");
    }
}

#[tokio::test]
async fn a_deleted_token_secret_keeps_the_connectors_and_degrades_the_tunnel() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let running = |reason: &str, message: &str| {
        json!({
            "observedGeneration": 1,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": conditions(
                ("False", reason, message),
                ("False", "Blocked", &format!("not applying the spec: {reason}")),
                ("True", reason, &format!("the connectors keep running the last applied spec and token: {message}")),
            ),
        })
    };
    let script = vec![
        get(TOKEN_SECRET_PATH, not_found("secrets", "home-tunnel-token")),
        // No write to any child, and above all no DELETE: the operator's copy stays.
        apply_status(running(
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        )),
        event(
            "Warning",
            "TokenSecretMissing",
            "Secret apps/home-tunnel-token not found",
        ),
    ];
    reconcile_against(
        tunnel_in_steady_state(&children),
        &Caches::holding(&children),
        script,
    )
    .await
    .expect("reconciles");
}

std::thread_local! {
    /// Where this thread's log output goes while a test captures it.
    static CAPTURE: std::cell::RefCell<Option<Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// A `Write` into the current thread's capture buffer, if any.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buffer) = c.borrow().as_ref() {
                if let Ok(mut b) = buffer.lock() {
                    b.extend_from_slice(buf);
                }
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line (all levels, all crates) emitted on this thread
/// until the returned buffer is taken. The subscriber is global and at
/// trace level, so no callsite's cached interest can hide a line (a
/// thread-scoped subscriber proved flaky beside parallel tests).
fn capture_logs_on_this_thread() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| ThreadCapture)
            .with_ansi(false)
            .try_init();
    });
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    CAPTURE.with(|c| *c.borrow_mut() = Some(buffer.clone()));
    buffer
}

/// Every log line (at trace level, ours and the client libraries'), every
/// Event, the status and every request other than the Secret child's apply:
/// none may contain the token or any piece of it.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_reaches_logs_events_or_the_status() {
    let secret_part = "bGVhay1jYW5hcnktc2VjcmV0"; // base64 of "leak-canary-secret"
    let token = token_string(secret_part);
    let secret_child_encoding = base64::engine::general_purpose::STANDARD.encode(&token);
    let needles = [
        token.as_str(),
        secret_part,
        "leak-canary-secret",
        secret_child_encoding.as_str(),
    ];

    // The runtime is current-thread: every task of the reconcile logs on this thread.
    let captured = capture_logs_on_this_thread();

    let children = children_for(&tunnel(), &token);
    assert!(
        children.pod_disruption_budget.is_some(),
        "two replicas have a budget"
    );
    let mut cluster = MockCluster::new(&Caches::empty());
    let script = vec![
        token_lookup(&token),
        create(ChildKind::NetworkPolicy, to_json(&children.network_policy)),
        create(ChildKind::Secret, to_json(&children.secret)),
        // The ConfigMap create fails once, so error paths are logged too; the rest of
        // its wave is written.
        Exchange {
            reply: api_error(500, "InternalError", "boom"),
            ..create(ChildKind::ConfigMap, to_json(&children.config_map))
        },
        create(
            ChildKind::ServiceAccount,
            to_json(&children.service_account),
        ),
        create(
            ChildKind::PodDisruptionBudget,
            to_json(&children.pod_disruption_budget),
        ),
    ];
    let t = tunnel();
    let err = cluster.reconcile(t.clone(), script).await.expect_err("500");
    tracing::error!(error = %err, debug = ?err, "as the controller logs it");
    cluster.error_policy(&t, &err);

    let script = joined(vec![
        vec![token_lookup(&token)],
        creates_of(&children, &[ChildKind::ConfigMap, ChildKind::Deployment]),
        vec![
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    cluster.reconcile(t, script).await.expect("converges");
    let sent = cluster.sent.lock().map(|s| s.clone()).unwrap_or_default();
    cluster.finish().await;
    CAPTURE.with(|c| c.borrow_mut().take());

    let logs = String::from_utf8_lossy(&captured.lock().map(|b| b.clone()).unwrap_or_default())
        .into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture saw the detailed levels:\n{logs}"
    );
    assert!(
        logs.contains("created"),
        "the capture saw the reconciler's own lines"
    );
    for needle in needles {
        assert!(
            !logs.contains(needle),
            "the token leaked into the logs ({needle}):\n{logs}"
        );
    }
    let mut checked = 0;
    for (request, body) in &sent {
        let writes_our_secret = (request.contains("PATCH")
            && request.contains("/secrets/home-cloudflared"))
            || (request.contains("POST") && request.contains("/namespaces/apps/secrets?"));
        if writes_our_secret && request.starts_with("request") {
            continue; // the one place the token belongs
        }
        for needle in needles {
            assert!(!body.contains(needle), "the token leaked into {request}");
        }
        checked += 1;
    }
    assert!(
        sent.iter().any(|(r, _)| r.contains("/events")),
        "an Event was checked"
    );
    assert!(
        sent.iter().any(|(r, _)| r.contains("/status")),
        "the status was checked"
    );
    assert_eq!(
        (checked, sent.len()),
        (10, 11),
        "every request but the one write of our Secret was checked"
    );
}

#[tokio::test]
async fn an_unchanged_token_secret_is_not_read_again() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut secret = user_secret(&token);
    secret.metadata.resource_version = Some("5".into());
    let metadata = |rv: &str| kube::core::PartialObjectMeta::<Secret> {
        metadata: kube::api::ObjectMeta {
            name: Some("home-tunnel-token".into()),
            namespace: Some("apps".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut caches = Caches::holding(&children);
    caches
        .token_secrets
        .apply_watcher_event(&watcher::Event::Apply(metadata("5")));
    let mut cluster = MockCluster::new(&caches);
    let t = tunnel_in_steady_state(&children);

    // First reconcile: the token is read once.
    cluster
        .reconcile(
            t.clone(),
            vec![get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            )],
        )
        .await
        .expect("reconciles");
    // Same resourceVersion: a resync sends nothing at all.
    cluster
        .reconcile(t.clone(), vec![])
        .await
        .expect("reconciles");
    // The Secret changed: read again.
    caches
        .token_secrets
        .apply_watcher_event(&watcher::Event::Apply(metadata("6")));
    secret.metadata.resource_version = Some("6".into());
    cluster
        .reconcile(
            t,
            vec![get(
                TOKEN_SECRET_PATH,
                Reply::Json(StatusCode::OK, to_json(&secret)),
            )],
        )
        .await
        .expect("reconciles");
    cluster.finish().await;
}

/// A credentials file (`cloudflared tunnel create`) in the user's Secret: the child Secret
/// holds the token it stands for, which the pods read as usual, and the status reports
/// the tunnel ID.
#[tokio::test]
async fn a_credentials_file_is_applied_as_the_token_it_stands_for() {
    let credentials = format!(
        r#"{{"AccountTag":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","TunnelSecret":"Zmlyc3Qtc2VjcmV0","TunnelID":"{TUNNEL_ID}","Endpoint":""}}"#
    );
    let token = TunnelToken::parse(credentials.as_bytes()).expect("credentials parse");
    let children = children_for(&tunnel(), token.expose_secret());
    let stored = children
        .secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .expect("token key");
    assert_eq!(
        stored.0,
        token.expose_secret().as_bytes(),
        "the child holds the token, not the file"
    );
    let script = joined(vec![
        vec![get(
            TOKEN_SECRET_PATH,
            Reply::Json(StatusCode::OK, to_json(&user_secret(&credentials))),
        )],
        child_creates(&children, 0),
        vec![
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
}
