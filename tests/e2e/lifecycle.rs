//! A tunnel's life on a real control plane: children with controller ownerReferences,
//! connectors Ready (kwok), token rotation, hand deletes and edits, a foreign object in
//! the way, the user's Secret left alone, and garbage collection.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};

use securetunnel_operator::api::SecureTunnel;
use securetunnel_operator::children::ChildKind;
use securetunnel_operator::names::FIELD_MANAGER;

use crate::support::{child_kinds, describe, dynamic_api, wait_for, Env, Outcome};

pub const NAMESPACE: &str = "e2e-apps";
pub const TOKEN_SECRET: &str = "e2e-token";
use crate::support::TUNNEL_ID;
pub const WAIT: Duration = Duration::from_secs(120);

pub use securetunnel_operator::names::child_name as child;

/// A syntactically valid token for a tunnel that does not exist.
pub fn token(secret: &str) -> String {
    token_of(TUNNEL_ID, secret)
}

/// A token for the tunnel `tunnel_id` with `secret`.
pub fn token_of(tunnel_id: &str, secret: &str) -> String {
    let json = format!(
        r#"{{"a":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","t":"{tunnel_id}","s":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    base64::engine::general_purpose::STANDARD.encode(json)
}

pub fn set_token(env: &Env, secret: &str) -> Outcome {
    env.apply(&format!(
        "apiVersion: v1
kind: Secret
metadata: {{ name: {TOKEN_SECRET}, namespace: {NAMESPACE} }}
stringData:
  token: {}
",
        token(secret)
    ))
    .map(|_| ())
}

/// The namespace, the token Secret, and a web Deployment + Service for the rules to name.
pub fn setup(env: &Env) -> Outcome {
    setup_origin(env, "registry.k8s.io/pause:3.10", 1, false)
}

/// The namespace, the token Secret, and a Deployment `web` of `replicas` pods of `image`
/// behind the Service `web` on 8080; with `serves`, the pods answer HTTP on 8080 and are
/// Ready once they do.
pub fn setup_origin(env: &Env, image: &str, replicas: u32, serves: bool) -> Outcome {
    let probe = if serves {
        "\n        readinessProbe: { httpGet: { path: /, port: http }, periodSeconds: 2 }"
    } else {
        ""
    };
    env.apply(&format!(
        "apiVersion: v1
kind: Namespace
metadata: {{ name: {NAMESPACE} }}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: web, namespace: {NAMESPACE} }}
spec:
  replicas: {replicas}
  selector: {{ matchLabels: {{ app: web }} }}
  template:
    metadata: {{ labels: {{ app: web }} }}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [ {{ name: http, containerPort: 8080 }} ]{probe}
---
apiVersion: v1
kind: Service
metadata: {{ name: web, namespace: {NAMESPACE} }}
spec:
  selector: {{ app: web }}
  ports: [ {{ port: 8080, targetPort: http }} ]
"
    ))?;
    set_token(env, "first-secret")
}

pub fn apply_tunnel(env: &Env, name: &str, replicas: u32, hostnames: &[&str]) -> Outcome {
    apply_tunnel_on(env, name, replicas, None, hostnames)
}

/// A tunnel routing each hostname to the Service web, on `image` (else the default image).
pub fn apply_tunnel_on(
    env: &Env,
    name: &str,
    replicas: u32,
    image: Option<&str>,
    hostnames: &[&str],
) -> Outcome {
    let rules: String = hostnames
        .iter()
        .map(|h| format!("  - hostname: {h}\n    service: http://web.{NAMESPACE}.svc:8080\n"))
        .collect();
    let image = image.map(|i| format!("  image: {i}\n")).unwrap_or_default();
    env.apply(&format!(
        "apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: {name}, namespace: {NAMESPACE} }}
spec:
  tokenSecretRef: {{ name: {TOKEN_SECRET} }}
  replicas: {replicas}
{image}  ingress:
{rules}"
    ))
    .map(|_| ())
}

async fn tunnel(client: &Client, name: &str) -> Result<SecureTunnel, String> {
    Api::<SecureTunnel>::namespaced(client.clone(), NAMESPACE)
        .get(name)
        .await
        .map_err(|e| format!("SecureTunnel {NAMESPACE}/{name}: {e}"))
}

/// (status, reason, message) of a condition, or an error naming the tunnel.
pub async fn condition(
    client: &Client,
    name: &str,
    type_: &str,
) -> Result<(String, String, String), String> {
    let t = tunnel(client, name).await?;
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .ok_or_else(|| format!("SecureTunnel {NAMESPACE}/{name} has no {type_} condition yet"))
}

pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Outcome {
    wait_condition_within(client, name, type_, status, reason, WAIT).await
}

pub async fn wait_condition_within(
    client: &Client,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    within: Duration,
) -> Outcome {
    wait_for(
        within,
        &format!("SecureTunnel {NAMESPACE}/{name} {type_}={status} {reason}"),
        || async {
            let (s, r, m) = condition(client, name, type_).await?;
            if s == status && r == reason {
                Ok(())
            } else {
                Err(format!("{type_}={s} reason={r}: {m}"))
            }
        },
    )
    .await
}

/// Every child exists with a controller ownerReference to the tunnel (the
/// PodDisruptionBudget only with more than one replica).
pub async fn every_child_owned(
    client: &Client,
    name: &str,
    replicas: i32,
    wait: Duration,
) -> Outcome {
    let owner = tunnel(client, name).await?;
    let uid = owner.uid().unwrap_or_default();
    for (kind, resource) in child_kinds() {
        let api = dynamic_api(client, NAMESPACE, &resource);
        let what = describe(kind, NAMESPACE, &child(name));
        if kind == "PodDisruptionBudget" && replicas < 2 {
            if api
                .get_opt(&child(name))
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!("{what} exists for a single replica"));
            }
            continue;
        }
        wait_for(wait, &format!("{what} to exist"), || async {
            api.get(&child(name))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
        let obj = api
            .get(&child(name))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let controller = obj
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
            .cloned();
        match controller {
            Some(r) if r.kind == "SecureTunnel" && r.name == name && r.uid == uid => {}
            other => {
                return Err(format!(
                    "{what}: controller ownerReference is {other:?}, expected SecureTunnel {name} uid {uid}"
                ))
            }
        }
    }
    Ok(())
}

/// Each child was written once, by its create: the operator's only entry in its
/// `managedFields` is the create's (`Update`). A rendered object that left out a field the
/// API server defaults would have its create entry own that field too, not hash to the
/// applied hash, and be adopted and applied again: an `Apply` entry.
pub async fn every_child_written_once(client: &Client, name: &str, replicas: i32) -> Outcome {
    for (kind, resource) in child_kinds() {
        if kind == "PodDisruptionBudget" && replicas < 2 {
            continue;
        }
        let api = dynamic_api(client, NAMESPACE, &resource);
        let what = describe(kind, NAMESPACE, &child(name));
        let obj = api
            .get(&child(name))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let ours: Vec<(Option<&str>, Option<&str>)> = obj
            .managed_fields()
            .iter()
            .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
            .map(|e| (e.operation.as_deref(), e.subresource.as_deref()))
            .collect();
        if ours != [(Some("Update"), None)] {
            return Err(format!(
                "{what}: the operator's managedFields entries are {ours:?}, expected its create's alone"
            ));
        }
    }
    Ok(())
}

pub async fn connectors_ready(
    client: &Client,
    name: &str,
    replicas: i32,
    wait: Duration,
) -> Outcome {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(
        wait,
        &format!(
            "Deployment {NAMESPACE}/{} to have {replicas} ready pods",
            child(name)
        ),
        || async {
            let d = deployments
                .get(&child(name))
                .await
                .map_err(|e| e.to_string())?;
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            if ready == replicas {
                Ok(())
            } else {
                Err(format!("{ready} ready"))
            }
        },
    )
    .await?;
    // The caller's wait for the tunnel's status too: after an outage it may be longer.
    wait_condition_within(client, name, "Ready", "True", "ConnectorsReady", wait).await
}

/// The tunnel's Events, as the API server stored them: one per change of Ready (from
/// `ConnectorsNotReady` to `ConnectorsReady` at least), each naming the tunnel and this
/// operator as its reporting controller.
pub async fn events_recorded(client: &Client, name: &str) -> Outcome {
    let api: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let events = api
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mine: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("SecureTunnel") && r.name.as_deref() == Some(name)
            })
        })
        .collect();
    let reasons: BTreeSet<&str> = mine.iter().filter_map(|e| e.reason.as_deref()).collect();
    if !reasons.contains("ConnectorsReady") {
        return Err(format!(
            "no Event with reason ConnectorsReady about SecureTunnel {NAMESPACE}/{name}; reasons: {reasons:?}"
        ));
    }
    for e in &mine {
        let controller = e.reporting_controller.as_deref();
        if controller != Some(securetunnel_operator::names::MANAGED_BY)
            || e.event_time.is_none()
            || e.action.as_deref() != Some("Reconcile")
        {
            return Err(format!(
                "Event {} has reportingController {controller:?}, eventTime {:?}, action {:?}",
                e.name_any(),
                e.event_time,
                e.action
            ));
        }
    }
    Ok(())
}

async fn replica_sets(client: &Client, name: &str) -> Result<BTreeSet<String>, String> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    let list = api
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={name}")))
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.items.iter().map(|rs| rs.name_any()).collect())
}

pub async fn token_rotation_rolls_pods(env: &Env, client: &Client, name: &str) -> Outcome {
    let before = replica_sets(client, name).await?;
    if before.is_empty() {
        return Err(format!(
            "Deployment {NAMESPACE}/{} has no ReplicaSet yet",
            child(name)
        ));
    }
    set_token(env, "second-secret")?;
    wait_for(
        WAIT,
        &format!("a new ReplicaSet of Deployment {NAMESPACE}/{}", child(name)),
        || async {
            let now = replica_sets(client, name).await?;
            let new: Vec<&String> = now.difference(&before).collect();
            if new.is_empty() {
                Err(format!("still only {before:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await?;
    connectors_ready(client, name, 2, WAIT).await
}

pub async fn deleted_child_returns(client: &Client, name: &str) -> Outcome {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let old = api.get(&child(name)).await.map_err(|e| e.to_string())?;
    let old_uid = old.uid().unwrap_or_default();
    api.delete(&child(name), &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    wait_for(
        WAIT,
        &format!("ConfigMap {NAMESPACE}/{} to be recreated", child(name)),
        || async {
            match api.get_opt(&child(name)).await.map_err(|e| e.to_string())? {
                Some(cm) if cm.uid().unwrap_or_default() != old_uid => {
                    if cm.data == old.data {
                        Ok(())
                    } else {
                        Err(format!("recreated with other data: {:?}", cm.data))
                    }
                }
                Some(_) => Err("the old object is still there".into()),
                None => Err("absent".into()),
            }
        },
    )
    .await
}

pub async fn edited_child_reverted(env: &Env, client: &Client, name: &str) -> Outcome {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    env.kubectl(&[
        "-n",
        NAMESPACE,
        "scale",
        "deployment",
        &child(name),
        "--replicas=5",
    ])?;
    env.kubectl(&[
        "-n",
        NAMESPACE,
        "patch",
        "configmap",
        &child(name),
        "--type=merge",
        "-p",
        r#"{"data":{"config.yaml":"ingress:\n- service: http_status:200\n"}}"#,
    ])?;
    wait_for(
        WAIT,
        &format!("Deployment {NAMESPACE}/{} back at 2 replicas", child(name)),
        || async {
            let d = deployments
                .get(&child(name))
                .await
                .map_err(|e| e.to_string())?;
            match d.spec.and_then(|s| s.replicas) {
                Some(2) => Ok(()),
                other => Err(format!("spec.replicas is {other:?}")),
            }
        },
    )
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(
        WAIT,
        &format!("ConfigMap {NAMESPACE}/{} restored", child(name)),
        || async {
            let cm = config_maps
                .get(&child(name))
                .await
                .map_err(|e| e.to_string())?;
            let config = cm
                .data
                .unwrap_or_default()
                .remove("config.yaml")
                .unwrap_or_default();
            if config.contains("e2e.example.com") && config.contains("http_status:404") {
                Ok(())
            } else {
                Err(format!("config.yaml is {config:?}"))
            }
        },
    )
    .await
}

pub async fn name_conflict(env: &Env, client: &Client) -> Outcome {
    let name = "conflict";
    env.apply(&format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{ name: {}, namespace: {NAMESPACE} }}
data: {{ owner: someone-else }}
",
        child(name)
    ))?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let before = api.get(&child(name)).await.map_err(|e| e.to_string())?;
    apply_tunnel(env, name, 1, &["conflict.example.com"])?;
    wait_condition(client, name, "Ready", "False", "NameConflict").await?;
    let (_, _, message) = condition(client, name, "Ready").await?;
    if !message.contains(&child(name)) || !message.contains("ConfigMap") {
        return Err(format!(
            "the NameConflict message does not name ConfigMap {}: {message}",
            child(name)
        ));
    }
    // Give the operator time to do anything it would do, then check nothing was written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = api.get(&child(name)).await.map_err(|e| e.to_string())?;
    if after.resource_version() != before.resource_version() {
        return Err(format!(
            "ConfigMap {NAMESPACE}/{} was written: resourceVersion {:?} -> {:?}, managers {:?}",
            child(name),
            before.resource_version(),
            after.resource_version(),
            after
                .managed_fields()
                .iter()
                .map(|m| m.manager.clone())
                .collect::<Vec<_>>()
        ));
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    if deployments
        .get_opt(&child(name))
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!(
            "Deployment {NAMESPACE}/{} was created despite the conflict",
            child(name)
        ));
    }
    // The foreign ConfigMap first: the garbage collector leaves it alone.
    api.delete(&child(name), &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    delete_and_collect(client, name, &[]).await
}

/// The user's token Secret carries no trace of the operator: no field manager, no owner,
/// and (where the audit log is available) no write request from it.
pub async fn token_secret_untouched(env: &Env, client: &Client, operator_user: &str) -> Outcome {
    let api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let secret = api.get(TOKEN_SECRET).await.map_err(|e| e.to_string())?;
    let managers: Vec<String> = secret
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    if managers
        .iter()
        .any(|m| m == securetunnel_operator::names::FIELD_MANAGER)
    {
        return Err(format!(
            "Secret {NAMESPACE}/{TOKEN_SECRET} has fields managed by the operator: {managers:?}"
        ));
    }
    if !secret.owner_references().is_empty() {
        return Err(format!(
            "Secret {NAMESPACE}/{TOKEN_SECRET} gained owners: {:?}",
            secret.owner_references()
        ));
    }
    if let Some(log) = &env.audit_log {
        let writes: Vec<String> = crate::support::audit_events(log)?
            .into_iter()
            .filter(|e| {
                e.user == operator_user
                    && e.resource == "secrets"
                    && e.namespace == NAMESPACE
                    && e.name == TOKEN_SECRET
            })
            .filter(|e| !matches!(e.verb.as_str(), "get" | "list" | "watch"))
            .map(|e| format!("{} {}", e.verb, e.uri))
            .collect();
        if !writes.is_empty() {
            return Err(format!(
                "the operator wrote Secret {NAMESPACE}/{TOKEN_SECRET}: {writes:?}"
            ));
        }
    }
    Ok(())
}

pub async fn garbage_collected(client: &Client, name: &str) -> Outcome {
    delete_and_collect(client, name, &[]).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    if secrets
        .get_opt(TOKEN_SECRET)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!(
            "Secret {NAMESPACE}/{TOKEN_SECRET} (the user's) was deleted with the tunnel"
        ));
    }
    Ok(())
}

/// Deletes the tunnel `name`.
pub async fn delete_tunnel(client: &Client, name: &str) -> Outcome {
    Api::<SecureTunnel>::namespaced(client.clone(), NAMESPACE)
        .delete(name, &DeleteParams::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Deletes the tunnel `name` and waits until the garbage collector has removed every child
/// of it, those of the integrations' kinds in `also` included: later checks count writes,
/// and must not count the collector's.
pub async fn delete_and_collect(client: &Client, name: &str, also: &[ChildKind]) -> Outcome {
    delete_tunnel(client, name).await?;
    let extra = also.iter().map(|k| (k.kind(), k.api_resource()));
    for (kind, resource) in child_kinds().into_iter().chain(extra) {
        let api = dynamic_api(client, NAMESPACE, &resource);
        wait_for(
            WAIT,
            &format!(
                "the garbage collector to remove {}",
                describe(kind, NAMESPACE, &child(name))
            ),
            || async {
                match api.get_opt(&child(name)).await.map_err(|e| e.to_string())? {
                    None => Ok(()),
                    Some(obj) => Err(format!(
                        "still there (deletionTimestamp {:?})",
                        obj.metadata.deletion_timestamp
                    )),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Every child of every tunnel in `names` exists and each tunnel is Ready.
pub async fn all_converged(
    client: &Client,
    names: &[String],
    replicas: i32,
    wait: Duration,
) -> Outcome {
    for name in names {
        every_child_owned(client, name, replicas, wait).await?;
        connectors_ready(client, name, replicas, wait).await?;
    }
    Ok(())
}

/// A Secret holding a credentials file (`cloudflared tunnel create`): the tunnel runs, its
/// status shows the tunnel ID, and the child Secret holds the token the file stands for.
pub async fn credentials_file_runs(env: &Env, client: &Client) -> Outcome {
    let name = "creds";
    let credentials = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/example-credentials.json"),
    )
    .map_err(|e| e.to_string())?;
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "creds-file", "namespace": NAMESPACE },
        "stringData": { "credentials.json": credentials.trim() }
    });
    env.apply(&serde_json::to_string(&secret).map_err(|e| e.to_string())?)?;
    env.apply(&format!(
        "apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: {name}, namespace: {NAMESPACE} }}
spec:
  tokenSecretRef: {{ name: creds-file, key: credentials.json }}
  replicas: 1
  ingress: [ {{ hostname: creds.example.com, service: \"http://web.{NAMESPACE}.svc:8080\" }} ]
"
    ))?;
    wait_condition(client, name, "Ready", "True", "ConnectorsReady").await?;
    let t = tunnel(client, name).await?;
    let reported = t.status.and_then(|s| s.tunnel_id);
    if reported.as_deref() != Some(TUNNEL_ID) {
        return Err(format!(
            "status.tunnelID {reported:?}, expected {TUNNEL_ID}"
        ));
    }
    let child_secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get(&child(name))
        .await
        .map_err(|e| e.to_string())?;
    let stored = child_secret
        .data
        .and_then(|d| d.get("token").map(|b| b.0.clone()))
        .ok_or("the child Secret has no token")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&stored)
        .map_err(|_| "the child Secret's token is not base64: it holds the file, not a token")?;
    let fields: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("token JSON: {e}"))?;
    if fields["t"] != TUNNEL_ID {
        return Err(format!("the token's tunnel ID is {}", fields["t"]));
    }
    delete_and_collect(client, name, &[]).await?;
    env.kubectl(&["-n", NAMESPACE, "delete", "secret", "creds-file"])
        .map(|_| ())
}
