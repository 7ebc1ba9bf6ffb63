//! A tunnel's life against the mock API: creation, steady state, rollouts, drift,
//! conflicts, scale changes, spec changes.

use super::*;

#[tokio::test]
async fn a_new_tunnel_gets_every_child_then_a_status_and_an_event() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    assert!(
        children.pod_disruption_budget.is_some(),
        "two replicas have a budget"
    );
    let script = joined(vec![
        vec![token_lookup(&token)],
        // Nothing cached: each child is created, the sandbox first (so no connector
        // ever runs without it) and the Deployment last. No read before a create.
        child_creates(&children, 0),
        vec![
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn steady_state_resync_reads_the_token_and_writes_nothing() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let script = vec![token_lookup(&token)];
    let action = reconcile_against(
        tunnel_in_steady_state(&children),
        &Caches::holding(&children),
        script,
    )
    .await
    .expect("reconciles");
    assert_eq!(action, Action::requeue(RESYNC_INTERVAL));
}

#[tokio::test]
async fn connectors_becoming_ready_update_the_status_and_emit_an_event() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    // The status still says what the first reconcile wrote.
    let mut t = tunnel();
    t.status = Some(crate::api::SecureTunnelStatus {
        observed_generation: Some(1),
        tunnel_id: Some(TUNNEL_ID.into()),
        config_hash: Some(children.config_hash.clone()),
        conditions: crate::api::conditions::merge(
            &[],
            &[crate::api::conditions::DesiredCondition::new(
                "Ready",
                false,
                "ConnectorsNotReady",
                "0/2 connectors ready",
            )],
            Some(1),
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        ..Default::default()
    });
    let script = vec![
        token_lookup(&token),
        apply_status(steady_status(&children)),
        event("Normal", "ConnectorsReady", "2/2 connectors ready"),
    ];
    reconcile_against(t, &Caches::holding(&children), script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn a_rotated_token_updates_the_secret_and_rolls_the_deployment_only() {
    let old_token = token_string("b2xkLXNlY3JldA==");
    let new_token = token_string("bmV3LXNlY3JldA==");
    let old_children = children_for(&tunnel(), &old_token);
    let new_children = children_for(&tunnel(), &new_token);
    let token_hash = |c: &Children| {
        c.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(crate::names::TOKEN_HASH_ANNOTATION))
            .cloned()
    };
    assert_ne!(token_hash(&old_children), token_hash(&new_children));

    let script = vec![
        get(
            TOKEN_SECRET_PATH,
            Reply::Json(StatusCode::OK, to_json(&user_secret(&new_token))),
        ),
        apply(&path(ChildKind::Secret), to_json(&new_children.secret)),
        apply_existing_deployment(to_json(&new_children.deployment)),
        // Same tunnel, same config: the status does not change.
    ];
    reconcile_against(
        tunnel_in_steady_state(&old_children),
        &Caches::holding(&old_children),
        script,
    )
    .await
    .expect("reconciles");
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_waits_for_a_change() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let mut t = tunnel();
    t.spec.replicas = 50;
    t.spec.ingress[0].service = "bastion".into();
    let message = "spec.replicas: 50 is out of range: must be 1 to 20; spec.ingress[0].service: bastion mode lets the connector reach any destination, which defeats the egress sandbox";
    let script = vec![
        token_lookup(&token),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "InvalidSpec", message),
                ("False", "Blocked", "not applying the spec: InvalidSpec"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event("Warning", "InvalidSpec", message),
    ];
    let action = reconcile_against(t, &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_foreign_object_with_a_child_name_is_never_written() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let foreign = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "home-cloudflared", "namespace": "apps", "uid": "someone-else" },
        "data": { "config.yaml": "mine" }
    });
    let message = "ConfigMap apps/home-cloudflared already exists and is not controlled by this SecureTunnel; rename or delete it";
    let children = children_for(&tunnel(), &token);
    let objects = children.objects().expect("objects");
    let body = |kind: ChildKind| {
        objects
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, o)| o.clone())
            .expect("a child of that kind")
    };
    let script = vec![
        token_lookup(&token),
        create(ChildKind::NetworkPolicy, body(ChildKind::NetworkPolicy)),
        create(ChildKind::Secret, body(ChildKind::Secret)),
        // The name is taken: one read shows whose it is. The rest of its wave is
        // written, and nothing after it: the Deployment's wave never starts, so no
        // connector runs.
        Exchange {
            reply: already_exists("configmaps", "home-cloudflared"),
            ..create(ChildKind::ConfigMap, body(ChildKind::ConfigMap))
        },
        get(
            &path(ChildKind::ConfigMap),
            Reply::Json(StatusCode::OK, foreign.clone()),
        ),
        create(ChildKind::ServiceAccount, body(ChildKind::ServiceAccount)),
        create(
            ChildKind::PodDisruptionBudget,
            body(ChildKind::PodDisruptionBudget),
        ),
        apply_status(json!({
            "observedGeneration": 1,
            "replicas": 0,
            "readyReplicas": 0,
            "conditions": conditions(
                ("False", "NameConflict", message),
                ("False", "Blocked", "not applying the spec: NameConflict"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
        event("Warning", "NameConflict", message),
    ];
    let action = reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
    assert_eq!(action, Action::requeue(BLOCKED_RECHECK));
}

#[tokio::test]
async fn scaling_to_one_replica_removes_our_disruption_budget() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut cached_pdb = children.pod_disruption_budget.clone().expect("pdb");
    cached_pdb.metadata.uid = Some("pdb-uid".into());
    caches.put(ChildKind::PodDisruptionBudget, &cached_pdb);

    let mut t = tunnel_in_steady_state(&children);
    t.spec.replicas = 1;
    let scaled = children_for(&t, &token);
    assert!(scaled.pod_disruption_budget.is_none());
    let script = vec![
        token_lookup(&token),
        apply_existing_deployment(to_json(&scaled.deployment)),
        Exchange {
            method: Method::DELETE,
            path: path(ChildKind::PodDisruptionBudget),
            query: vec![],
            body: Some(json!({ "preconditions": { "uid": "pdb-uid" } })),
            normalize: no_normalize,
            reply: Reply::Json(
                StatusCode::OK,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" }),
            ),
        },
        // The cached Deployment still runs 2 of 2; the status only moves its message.
        apply_status(json!({
            "observedGeneration": 1,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": conditions(
                ("True", "ConnectorsReady", "2/1 connectors ready"),
                ("False", "RolloutComplete", "the connectors run the current spec"),
                ("False", "AsExpected", "all connectors are available or starting"),
            ),
        })),
    ];
    reconcile_against(t, &caches, script)
        .await
        .expect("reconciles");
}

#[test]
fn the_mock_tunnel_is_namespaced_and_owned_by_uid() {
    let t = tunnel();
    assert_eq!(t.meta().namespace.as_deref(), Some("apps"));
    assert_eq!(reflector::ObjectRef::from_obj(&t).name, "home");
}

#[tokio::test]
async fn a_hand_edited_child_is_reverted_and_a_deleted_one_recreated() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);

    // Someone scaled the Deployment and added an argument; the hash annotation is untouched.
    let mut edited = rolled_out(children.deployment.clone(), 2);
    if let Some(spec) = edited.spec.as_mut() {
        spec.replicas = Some(7);
        if let Some(pod) = spec.template.spec.as_mut() {
            pod.containers[0]
                .args
                .get_or_insert_with(Vec::new)
                .push("--loglevel=debug".into());
        }
    }
    caches.put(ChildKind::Deployment, &edited);
    // Someone deleted the ConfigMap; the watch removed it from the cache.
    caches.remove(ChildKind::ConfigMap, &children.config_map);

    let script = vec![
        token_lookup(&token),
        create(ChildKind::ConfigMap, to_json(&children.config_map)),
        apply_existing_deployment(to_json(&children.deployment)),
    ];
    reconcile_against(tunnel_in_steady_state(&children), &caches, script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn defaults_added_by_the_api_server_are_not_drift() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut caches = Caches::holding(&children);
    let mut defaulted = to_json(&rolled_out(children.deployment.clone(), 2));
    defaulted["spec"]["progressDeadlineSeconds"] = json!(600);
    defaulted["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
    defaulted["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
        json!("/dev/termination-log");
    // The defaults are not in our manager's field set.
    let defaulted = applied_as(defaulted, &to_json(&children.deployment));
    let defaulted: Deployment = serde_json::from_value(defaulted).expect("deployment parses");
    caches.put(ChildKind::Deployment, &defaulted);
    let mut np = to_json(&children.network_policy);
    np["spec"].as_object_mut().expect("spec").remove("ingress"); // the API server omits the empty list
    let np: NetworkPolicy = serde_json::from_value(np).expect("policy parses");
    caches.put(ChildKind::NetworkPolicy, &np);

    let script = vec![token_lookup(&token)];
    reconcile_against(tunnel_in_steady_state(&children), &caches, script)
        .await
        .expect("reconciles");
}

#[tokio::test]
async fn a_spec_that_becomes_invalid_leaves_the_running_connector_alone() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    let mut t = tunnel_in_steady_state(&children);
    t.spec.ingress[0].hostname = Some("app.example.com:443".into());
    t.metadata.generation = Some(2);
    let message = "spec.ingress[0].hostname: \"app.example.com:443\" must not include a port";
    let c = |ty: &str, status: &str, reason: &str, msg: &str| json!({ "type": ty, "status": status, "reason": reason, "message": msg, "observedGeneration": 2 });
    let script = vec![
        token_lookup(&token),
        apply_status(json!({
            "observedGeneration": 2,
            "tunnelID": TUNNEL_ID,
            "replicas": 2,
            "readyReplicas": 2,
            "configHash": children.config_hash,
            "conditions": [
                c("Ready", "False", "InvalidSpec", message),
                c("Progressing", "False", "Blocked", "not applying the spec: InvalidSpec"),
                c("Degraded", "True", "InvalidSpec", &format!("the connectors keep running the last applied spec and token: {message}")),
            ],
        })),
        event("Warning", "InvalidSpec", message),
    ];
    let action = reconcile_against(t, &Caches::holding(&children), script)
        .await
        .expect("reconciles");
    assert_eq!(
        action,
        Action::await_change(),
        "no retry loop: the next edit brings it back"
    );
}

/// The JSON patch that turns our create entry at `index` of the Secret child's
/// `managedFields` into an apply entry.
fn adopt_secret_entry(index: usize, reply: Reply) -> Exchange {
    let at = format!("/metadata/managedFields/{index}");
    Exchange {
        method: Method::PATCH,
        path: path(ChildKind::Secret),
        query: vec![],
        body: Some(json!([
            { "op": "test", "path": format!("{at}/manager"), "value": "securetunnel-operator" },
            { "op": "test", "path": format!("{at}/operation"), "value": "Update" },
            { "op": "replace", "path": format!("{at}/operation"), "value": "Apply" },
        ])),
        normalize: no_normalize,
        reply,
    }
}

/// A token rotation over a steady tunnel whose Secret child was created (POST) and not
/// applied since: our manager's entry in its managedFields is an Update entry, which would
/// keep any field the next apply stops setting, so the Secret is adopted before it is
/// applied. `adoption` gives the exchanges that adopt it, from the Secret as created and
/// the answer to a successful adopting patch.
async fn rotate_token_over_a_created_secret(adoption: fn(&Value, Value) -> Vec<Exchange>) {
    let old_token = token_string("b2xkLXNlY3JldA==");
    let new_token = token_string("bmV3LXNlY3JldA==");
    let old_children = children_for(&tunnel(), &old_token);
    let new_children = children_for(&tunnel(), &new_token);
    let mut caches = Caches::holding(&old_children);
    let secret = to_json(&old_children.secret);
    let mut created = applied_as(secret.clone(), &secret);
    created["metadata"]["managedFields"][0]["operation"] = json!("Update");
    caches.put(ChildKind::Secret, &created);
    let script = joined(vec![
        vec![get(
            TOKEN_SECRET_PATH,
            Reply::Json(StatusCode::OK, to_json(&user_secret(&new_token))),
        )],
        adoption(&created, applied_as(secret.clone(), &secret)),
        vec![
            apply(&path(ChildKind::Secret), to_json(&new_children.secret)),
            apply_existing_deployment(to_json(&new_children.deployment)),
        ],
    ]);
    reconcile_against(tunnel_in_steady_state(&old_children), &caches, script)
        .await
        .expect("reconciles without an error");
}

#[tokio::test]
async fn a_child_we_created_becomes_ours_by_apply_before_it_changes() {
    rotate_token_over_a_created_secret(|_, adopted| {
        vec![adopt_secret_entry(0, Reply::Json(StatusCode::OK, adopted))]
    })
    .await;
}

#[tokio::test]
async fn a_create_entry_moved_by_another_writer_is_read_again_and_adopted_where_it_is() {
    rotate_token_over_a_created_secret(|created, adopted| {
        // Meanwhile another manager's entry came first: ours is at index 1 now.
        let mut moved = created.clone();
        moved["metadata"]["managedFields"] = json!([
            { "manager": "someone-else", "operation": "Update", "apiVersion": "v1",
              "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": { "f:labels": { "f:team": {} } } } },
            created["metadata"]["managedFields"][0],
        ]);
        let test_failed = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
            "reason": "Invalid",
            "message": "the server rejected our request due to an error in our request",
        });
        vec![
            adopt_secret_entry(0, Reply::Json(StatusCode::UNPROCESSABLE_ENTITY, test_failed)),
            get(&path(ChildKind::Secret), Reply::Json(StatusCode::OK, moved)),
            adopt_secret_entry(1, Reply::Json(StatusCode::OK, adopted)),
        ]
    })
    .await;
}

#[tokio::test]
async fn an_existing_child_of_ours_the_cache_missed_is_read_once_and_left_alone() {
    let token = token_string("Zmlyc3Qtc2VjcmV0");
    let children = children_for(&tunnel(), &token);
    // The watch has not delivered anything yet; every child exists, as applied before.
    let script = joined(vec![
        vec![token_lookup(&token)],
        child_creates(&children, children.objects().expect("objects").len()),
        vec![
            apply_status(first_status(&children)),
            event("Normal", "ConnectorsNotReady", "0/2 connectors ready"),
        ],
    ]);
    reconcile_against(tunnel(), &Caches::empty(), script)
        .await
        .expect("reconciles");
}
