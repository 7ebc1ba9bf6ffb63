//! Apply: for each desired child (in apply order), what exists; refuse to touch an object
//! this tunnel does not control; skip a child whose cached copy already holds every field
//! we set; server-side apply the rest; remove the optional children no longer wanted.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::Client;
use serde_json::Value;
use tracing::{debug, info, warn};

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::context::{ChildObject, Stores};
use crate::children::ChildKind;
use crate::names::{child_name, APPLIED_HASH_ANNOTATION, FIELD_MANAGER, INSTANCE_LABEL};
use crate::{Error, Result};

/// One child: what we want and what exists, as JSON (one serialization each).
struct Planned {
    kind: ChildKind,
    desired: Value,
    current: Option<Arc<dyn ChildObject>>,
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn describe(kind: ChildKind, obj: &Value) -> String {
    format!(
        "{} {}/{}",
        kind.kind(),
        text(obj, "/metadata/namespace"),
        text(obj, "/metadata/name")
    )
}

fn api(client: &Client, kind: ChildKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &kind.api_resource())
}

fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn describe_meta(kind: ChildKind, meta: &ObjectMeta) -> String {
    format!(
        "{} {}/{}",
        kind.kind(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The existing object: from the cache, or (when the cache has not seen it, e.g. an
/// object made by someone else, which our label-filtered watches skip) from the API
/// server.
async fn plan(
    client: &Client,
    stores: &Stores,
    kind: ChildKind,
    desired: Value,
) -> Result<Planned> {
    let namespace = text(&desired, "/metadata/namespace").to_string();
    let name = text(&desired, "/metadata/name").to_string();
    if namespace.is_empty() {
        return Err(Error::MissingObjectKey("metadata.namespace"));
    }
    let current = match stores.child(kind, &namespace, &name) {
        Some(obj) => Some(obj),
        None => api(client, kind, &namespace)
            .get_opt(&name)
            .await
            .map_err(|source| Error::Apply {
                object: describe(kind, &desired),
                source,
            })?
            .map(|obj| Arc::new(obj) as Arc<dyn ChildObject>),
    };
    Ok(Planned {
        kind,
        desired,
        current,
    })
}

/// Whether `current` holds every field of `desired` with the same value. Arrays must
/// match element by element; an empty array or map in `desired` is also satisfied by an
/// absent field (the API server omits empty lists).
pub fn contains(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(cur), Value::Object(want)) => {
            want.iter().all(|(key, want)| match cur.get(key) {
                Some(cur) => contains(cur, want),
                None => is_empty_collection(want),
            })
        }
        (Value::Array(cur), Value::Array(want)) => {
            cur.len() == want.len() && cur.iter().zip(want).all(|(c, w)| contains(c, w))
        }
        (Value::Null, want) => is_empty_collection(want),
        (cur, want) => cur == want,
    }
}

fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

impl Planned {
    /// The existing object, when it is not ours to write.
    fn conflict(&self, uid: &str) -> Option<String> {
        let current = self.current.as_ref()?.meta();
        (!is_controlled_by(current, uid)).then(|| describe_meta(self.kind, current))
    }

    /// True when the existing object already has every field we set: our hash
    /// annotation (the desired state did not change) and the content (nobody edited it
    /// by hand). Fields others added (defaults, other managers) do not count.
    fn up_to_date(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        let hash = current
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH_ANNOTATION));
        if hash.is_none()
            || hash.map(String::as_str)
                != self.desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION].as_str()
        {
            return false;
        }
        // Only now, with the same hash, is the content compared (for hand edits).
        let Some(current) = current.json() else {
            return false;
        };
        // Items of a list carry no apiVersion and kind: the kind is the cache's.
        let Value::Object(fields) = &self.desired else {
            return false;
        };
        fields
            .iter()
            .filter(|(key, _)| *key != "apiVersion" && *key != "kind")
            .all(|(key, want)| match current.get(key) {
                Some(cur) => contains(cur, want),
                None => is_empty_collection(want),
            })
    }

    /// Applies the desired object unless it is up to date; returns what the API server
    /// answered, when something was written.
    async fn apply(&self, client: &Client) -> Result<Option<DynamicObject>> {
        let what = describe(self.kind, &self.desired);
        if self.up_to_date() {
            debug!(object = %what, "up to date");
            return Ok(None);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let stored = api(
            client,
            self.kind,
            text(&self.desired, "/metadata/namespace"),
        )
        .patch(
            text(&self.desired, "/metadata/name"),
            &params,
            &Patch::Apply(&self.desired),
        )
        .await
        .map_err(|source| Error::Apply {
            object: what.clone(),
            source,
        })?;
        info!(object = %what, "applied");
        Ok(Some(stored))
    }
}

/// What applying the children came to.
pub enum Applied {
    /// Every child is as desired; the objects the API server answered for the ones
    /// written, by kind.
    Written(Vec<(ChildKind, DynamicObject)>),
    /// An object with a child's name exists and is not controlled by this tunnel:
    /// nothing was written.
    Conflict(String),
}

/// Applies every child that differs from the cache. Returns the conflict, and writes
/// nothing, when any existing object with a child's name is not ours.
pub async fn apply_children(
    client: &Client,
    stores: &Stores,
    tunnel_name: &str,
    namespace: &str,
    uid: &str,
    desired: Vec<(ChildKind, Value)>,
) -> Result<Applied> {
    let mut planned = Vec::with_capacity(desired.len());
    for (kind, obj) in desired {
        planned.push(plan(client, stores, kind, obj).await?);
    }
    if let Some(object) = planned.iter().find_map(|p| p.conflict(uid)) {
        warn!(%object, "name taken by an object this tunnel does not control");
        return Ok(Applied::Conflict(format!(
            "{object} already exists and is not controlled by this SecureTunnel; rename or delete it"
        )));
    }
    let mut written = Vec::new();
    for p in &planned {
        if let Some(stored) = p.apply(client).await? {
            written.push((p.kind, stored));
        }
    }
    let wanted: Vec<ChildKind> = planned.iter().map(|p| p.kind).collect();
    for kind in ChildKind::ALL
        .iter()
        .filter(|k| k.optional() && !wanted.contains(k))
    {
        remove_unwanted(client, stores, *kind, tunnel_name, namespace, uid).await?;
    }
    Ok(Applied::Written(written))
}

/// Removes this tunnel's child of an optional kind the spec no longer wants (a
/// disruption budget after a scale-down to one replica): if, and only if, the cached
/// object carries the tunnel's instance label and is controlled by it. The delete is
/// guarded by the object's uid.
async fn remove_unwanted(
    client: &Client,
    stores: &Stores,
    kind: ChildKind,
    tunnel_name: &str,
    namespace: &str,
    uid: &str,
) -> Result<()> {
    let name = child_name(tunnel_name);
    let Some(stale) = stores.child(kind, namespace, &name) else {
        return Ok(());
    };
    let meta = stale.meta();
    let ours = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(INSTANCE_LABEL))
        .map(String::as_str)
        == Some(tunnel_name)
        && is_controlled_by(meta, uid);
    if !ours {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api(client, kind, namespace).delete(&name, &params).await {
        Ok(_) => {
            info!(object = %describe_meta(kind, meta), "deleted: no longer wanted");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            object: describe_meta(kind, meta),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contains_ignores_fields_others_added_but_not_changed_ones() {
        let desired = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] }, "ingress": [] } });
        let defaulted = json!({ "spec": { "replicas": 2, "progressDeadlineSeconds": 600,
            "template": { "containers": [ { "name": "c", "args": ["a", "b"], "terminationMessagePath": "/dev/termination-log" } ] } },
            "status": { "readyReplicas": 2 } });
        assert!(
            contains(&defaulted, &desired),
            "defaults and an omitted empty list are fine"
        );
        let scaled = json!({ "spec": { "replicas": 5, "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] } } });
        assert!(!contains(&scaled, &desired), "a changed field is drift");
        let extra_arg = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b", "--evil"] } ] } } });
        assert!(
            !contains(&extra_arg, &desired),
            "an added list element is drift"
        );
        let second_container = json!({ "spec": { "replicas": 2, "template": { "containers": [ { "name": "c", "args": ["a", "b"] }, { "name": "sidecar" } ] } } });
        assert!(
            !contains(&second_container, &desired),
            "an added container is drift"
        );
        let removed = json!({ "spec": { "template": { "containers": [ { "name": "c", "args": ["a", "b"] } ] } } });
        assert!(!contains(&removed, &desired), "a removed field is drift");
    }
}
