//! Server-side apply's record of which fields each manager owns (`managedFields`,
//! in the `FieldsV1` format), and the one canonical form of a child's content that
//! drift detection hashes.
//!
//! A child is intact when the fields our manager owns in the live object hash to the
//! applied-hash annotation that render stamped from the desired object. Kubernetes
//! moves ownership of a field to whoever changes it (`kubectl scale`, `kubectl edit`),
//! so a hand edit of one of our fields takes it out of our set and the hashes differ;
//! fields others add (defaults, other controllers) are not ours and do not count.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::names::APPLIED_HASH_ANNOTATION;

/// What an apply of `obj` sets, in the canonical form both sides are hashed in: no
/// `apiVersion`, `kind`, `metadata.name` or `metadata.namespace` (they identify the
/// object; `managedFields` never list them), no applied-hash annotation (it holds the
/// hash), and no nulls, empty lists or empty maps (the API server omits them).
pub fn content(obj: &Value) -> Value {
    prune(obj, Level::Top).unwrap_or(Value::Null)
}

/// The value at `level` without the members [`content`] leaves out, and without nulls,
/// empty lists and empty maps, at every depth.
fn prune(value: &Value, level: Level) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => {
            let items: Vec<Value> = items
                .iter()
                .filter_map(|v| prune(v, Level::Below))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(fields) => {
            let fields: Map<String, Value> = fields
                .iter()
                .filter(|(k, _)| !level.skips(k))
                .filter_map(|(k, v)| prune(v, level.child(k)).map(|v| (k.clone(), v)))
                .collect();
            (!fields.is_empty()).then_some(Value::Object(fields))
        }
        scalar => Some(scalar.clone()),
    }
}

/// The SHA-256 of `obj`'s canonical [`content`], as `sha256:<hex>` (the applied-hash
/// value): the bytes `serde_json` writes for `content(obj)` (its maps are ordered by
/// key), streamed into the hasher without building the content first.
pub fn content_hash(obj: &Value) -> String {
    let mut hasher = HashWriter(Sha256::new());
    if vanishes(obj, Level::Top) {
        hasher.0.update(b"null");
    } else {
        write_canonical(&mut hasher, obj, Level::Top);
    }
    crate::token::hex_digest(&hasher.0.finalize())
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a value sits, for the members [`content`] leaves out: the one place that says
/// which they are, for both [`content`] and [`content_hash`].
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Top,
    Metadata,
    Annotations,
    Below,
}

impl Level {
    fn skips(self, key: &str) -> bool {
        match self {
            Level::Top => key == "apiVersion" || key == "kind",
            Level::Metadata => matches!(key, "name" | "namespace" | "managedFields"),
            Level::Annotations => key == APPLIED_HASH_ANNOTATION,
            Level::Below => false,
        }
    }

    fn child(self, key: &str) -> Level {
        match (self, key) {
            (Level::Top, "metadata") => Level::Metadata,
            (Level::Metadata, "annotations") => Level::Annotations,
            _ => Level::Below,
        }
    }
}

/// Whether `value` prunes to nothing (`prune(value, level)` is `None`), without building it.
fn vanishes(value: &Value, level: Level) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().all(|v| vanishes(v, Level::Below)),
        Value::Object(fields) => fields
            .iter()
            .all(|(k, v)| level.skips(k) || vanishes(v, level.child(k))),
        _ => false,
    }
}

fn write_canonical(out: &mut HashWriter, value: &Value, level: Level) {
    use std::io::Write;
    // Writing into a hasher cannot fail.
    match value {
        Value::Array(items) => {
            let _ = out.write_all(b"[");
            let mut first = true;
            for item in items.iter().filter(|v| !vanishes(v, Level::Below)) {
                if !std::mem::take(&mut first) {
                    let _ = out.write_all(b",");
                }
                write_canonical(out, item, Level::Below);
            }
            let _ = out.write_all(b"]");
        }
        Value::Object(fields) => {
            let _ = out.write_all(b"{");
            let mut first = true;
            for (key, item) in fields {
                let child = level.child(key);
                if level.skips(key) || vanishes(item, child) {
                    continue;
                }
                if !std::mem::take(&mut first) {
                    let _ = out.write_all(b",");
                }
                let _ = serde_json::to_writer(&mut *out, key);
                let _ = out.write_all(b":");
                write_canonical(out, item, child);
            }
            let _ = out.write_all(b"}");
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The `fieldsV1` sets of `manager`'s entries in an object's `managedFields` (an apply,
/// and the create that may have made the object).
pub fn sets_of<'a>(entries: &'a [ManagedFieldsEntry], manager: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|entry| entry.manager.as_deref() == Some(manager))
        .filter_map(|entry| entry.fields_v1.as_ref().map(|f| &f.0))
        .collect()
}

/// The part of `live` that the union of `sets` covers. A set that names no member
/// (`{}`, or only `"."`) takes the whole value: a scalar, or an atomic list or map.
pub fn owned(live: &Value, sets: &[&Value]) -> Value {
    let maps: Vec<&Map<String, Value>> = sets.iter().filter_map(|s| s.as_object()).collect();
    // One set (an apply entry alone, the usual case) is read in place; several are united.
    let merged = match maps.as_slice() {
        [one] => Cow::Borrowed(*one),
        many => Cow::Owned(many.iter().fold(Map::new(), |mut acc, set| {
            merge(&mut acc, set);
            acc
        })),
    };
    if merged.is_empty() {
        return Value::Null;
    }
    project(live, &merged).unwrap_or(Value::Null)
}

fn is_leaf(set: &Map<String, Value>) -> bool {
    set.keys().all(|k| k == ".")
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, sub) in from {
        let sub = sub.as_object().cloned().unwrap_or_default();
        match into.get_mut(key).and_then(Value::as_object_mut) {
            // A leaf on either side owns the whole value.
            Some(existing) if is_leaf(existing) => {}
            Some(_) if is_leaf(&sub) => {
                into.insert(key.clone(), Value::Object(sub));
            }
            Some(existing) => merge(existing, &sub),
            None => {
                into.insert(key.clone(), Value::Object(sub));
            }
        }
    }
}

/// One member key of a list's set: `k:{…}` (the element with these key fields),
/// `v:…` (the element equal to this value) or `i:N` (the element at this index).
enum Member {
    Keys(Map<String, Value>),
    Value(Value),
    Index(usize),
}

impl Member {
    fn parse(key: &str) -> Option<Member> {
        if let Some(json) = key.strip_prefix("k:") {
            serde_json::from_str(json).ok().map(Member::Keys)
        } else if let Some(json) = key.strip_prefix("v:") {
            serde_json::from_str(json).ok().map(Member::Value)
        } else {
            key.strip_prefix("i:")?.parse().ok().map(Member::Index)
        }
    }

    fn matches(&self, index: usize, item: &Value) -> bool {
        match self {
            Member::Keys(keys) => keys.iter().all(|(k, v)| item.get(k) == Some(v)),
            Member::Value(v) => item == v,
            Member::Index(i) => *i == index,
        }
    }
}

/// The members of a set (an empty set, `leaf`, for a malformed one).
fn members_of<'a>(set: &'a Value, leaf: &'a Map<String, Value>) -> &'a Map<String, Value> {
    set.as_object().unwrap_or(leaf)
}

fn project(live: &Value, set: &Map<String, Value>) -> Option<Value> {
    if is_leaf(set) {
        return Some(live.clone());
    }
    let leaf = Map::new();
    let sub = |v| members_of(v, &leaf);
    match live {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, child) in set {
                let Some(field) = key.strip_prefix("f:") else {
                    continue;
                };
                if let Some(value) = fields.get(field) {
                    if let Some(p) = project(value, sub(child)) {
                        out.insert(field.to_string(), p);
                    }
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            let members: Vec<(Member, &Map<String, Value>)> = set
                .iter()
                .filter_map(|(key, child)| Member::parse(key).map(|m| (m, sub(child))))
                .collect();
            let out = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let (_, child) = members.iter().find(|(m, _)| m.matches(i, item))?;
                    project(item, child)
                })
                .collect();
            Some(Value::Array(out))
        }
        scalar => Some(scalar.clone()),
    }
}

/// The keys of the associative lists in the kinds this operator writes, as the
/// Kubernetes API schemas declare them (`x-kubernetes-list-map-keys`); other lists are
/// atomic. Only [`fieldset`] needs them: the API server computes the real sets.
const LIST_KEYS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ports", &["containerPort", "protocol"]),
    ("volumeMounts", &["mountPath"]),
    ("volumes", &["name"]),
    ("env", &["name"]),
    ("imagePullSecrets", &["name"]),
    ("ownerReferences", &["uid"]),
    (
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    ("conditions", &["type"]),
];

/// Maps the schemas mark atomic (label selectors): owned as a whole.
const ATOMIC_MAPS: &[&str] = &[
    "selector",
    "podSelector",
    "namespaceSelector",
    "labelSelector",
];

/// The set an apply of `obj` gives its manager, as the API server records it for the
/// fields our children use: what test doubles of the API server write into
/// `managedFields`.
pub fn fieldset(obj: &Value) -> Value {
    set_of("", &content(obj))
}

fn set_of(field: &str, value: &Value) -> Value {
    match value {
        Value::Object(fields) if !ATOMIC_MAPS.contains(&field) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (format!("f:{k}"), set_of(k, v)))
                .collect(),
        ),
        Value::Array(items) => {
            let Some((_, keys)) = LIST_KEYS.iter().find(|(name, _)| *name == field) else {
                return Value::Object(Map::new());
            };
            let mut out = Map::new();
            for item in items {
                let key: Map<String, Value> = keys
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                let mut member = match set_of("", item) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                member.insert(".".into(), Value::Object(Map::new()));
                out.insert(format!("k:{}", Value::Object(key)), Value::Object(member));
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(obj: &Value) -> Value {
        let mut live = obj.clone();
        live["metadata"]["managedFields"] = json!([
            { "manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fieldset(obj) }
        ]);
        live
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "d", "namespace": "n", "labels": { "a": "b" },
                "annotations": { APPLIED_HASH_ANNOTATION: "sha256:x" } },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "a": "b" } },
                "template": { "spec": {
                    "containers": [ { "name": "c", "args": ["x"], "ports": [ { "containerPort": 2000, "protocol": "TCP" } ] } ],
                    "volumes": [] } } }
        })
    }

    /// What manager `m` owns of the live object, by its `managedFields`.
    fn owned_by_m(live: &Value) -> Value {
        let entries: Vec<ManagedFieldsEntry> =
            serde_json::from_value(live["metadata"]["managedFields"].clone()).expect("entries");
        owned(live, &sets_of(&entries, "m"))
    }

    fn owned_content(live: &Value) -> Value {
        content(&owned_by_m(live))
    }

    #[test]
    fn a_fresh_apply_owns_exactly_its_content() {
        let desired = deployment();
        let mut live = applied(&desired);
        // Defaults and other managers' fields are not ours.
        live["spec"]["progressDeadlineSeconds"] = json!(600);
        live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
            json!("/dev/t");
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("list")
            .push(json!({ "name": "sidecar" }));
        live["status"] = json!({ "readyReplicas": 2 });
        live["metadata"]["uid"] = json!("u");
        assert_eq!(owned_content(&live), content(&desired));
        assert_eq!(content_hash(&owned_by_m(&live)), content_hash(&desired));
    }

    #[test]
    fn a_changed_or_removed_owned_field_is_seen() {
        let desired = deployment();
        let mut scaled = applied(&desired);
        scaled["spec"]["replicas"] = json!(7);
        assert_ne!(owned_content(&scaled), content(&desired));
        let mut edited = applied(&desired);
        edited["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["x", "--evil"]);
        assert_ne!(owned_content(&edited), content(&desired));
        // Ownership moved to whoever scaled it: the field leaves our set.
        let mut taken = applied(&desired);
        taken["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
            .as_object_mut()
            .expect("spec set")
            .remove("f:replicas");
        assert_ne!(owned_content(&taken), content(&desired));
    }

    #[test]
    fn sets_of_a_create_and_an_apply_are_united() {
        let live = json!({
            "metadata": { "managedFields": [
                { "manager": "m", "operation": "Update", "fieldsV1": { "f:data": { ".": {}, "f:x": {} } } },
                { "manager": "other", "operation": "Update", "fieldsV1": { "f:data": { "f:z": {} } } },
                { "manager": "m", "operation": "Apply", "fieldsV1": { "f:data": { "f:y": {} } } }
            ] },
            "data": { "x": "1", "y": "2", "z": "3" }
        });
        assert_eq!(owned_by_m(&live), json!({ "data": { "x": "1", "y": "2" } }));
    }

    #[test]
    fn list_members_by_value_and_index() {
        let live = json!({ "l": ["a", "b", "c"], "m": [1, 2, 3] });
        let set = json!({ "f:l": { "v:\"b\"": {} }, "f:m": { "i:2": {} } });
        assert_eq!(owned(&live, &[&set]), json!({ "l": ["b"], "m": [3] }));
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_content() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "x", "namespace": "y", "labels": {}, "annotations": { APPLIED_HASH_ANNOTATION: "h", "a\"b": "ü\n" } },
            "data": { "k": "v", "n": [1, -2.5, null, [], {}, { "z": [] }], "t": true }, "empty": { "e": [] }
        });
        let bytes = serde_json::to_vec(&content(&obj)).expect("serializes");
        assert_eq!(content_hash(&obj), crate::token::sha256_hex(&bytes));
        assert_eq!(
            content_hash(&json!({ "kind": "X" })),
            crate::token::sha256_hex(b"null")
        );
    }

    #[test]
    fn content_leaves_out_identity_the_hash_and_empties() {
        let c = content(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "x", "namespace": "y", "annotations": { APPLIED_HASH_ANNOTATION: "h" }, "labels": {} },
            "data": { "k": "v" }, "binaryData": null, "list": []
        }));
        assert_eq!(c, json!({ "data": { "k": "v" } }));
    }
}
