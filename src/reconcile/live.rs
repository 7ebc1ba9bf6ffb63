//! A child as the API server sends it: its JSON, parsed once, with its metadata read from
//! that JSON. The summary of a child ([`super::cache::ChildSummary`]) reads both: the
//! metadata for identity and ownership, the JSON for the fields our manager owns.
//!
//! Why not `DynamicObject`: its flattened `data` makes serde buffer every object before
//! decoding it, and the summary then had to serialize it back to JSON. Decoding the
//! children's watch events and write responses that way was the largest CPU cost of
//! creating tunnels (a third of the operator's samples under `perf`, at 2,000 tunnels).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use kube::core::DynamicResourceScope;
use kube::Resource;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct LiveObject {
    /// Read from `json`'s `metadata`.
    pub metadata: ObjectMeta,
    /// The whole object, `metadata` included.
    pub json: Value,
}

impl LiveObject {
    /// The object `json` describes; an error when its `metadata` is malformed.
    pub fn from_json(json: Value) -> Result<Self, serde_json::Error> {
        let metadata = match json.get("metadata") {
            Some(meta) => ObjectMeta::deserialize(meta)?,
            None => ObjectMeta::default(),
        };
        Ok(LiveObject { metadata, json })
    }
}

impl<'de> Deserialize<'de> for LiveObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Value::deserialize(deserializer)?;
        LiveObject::from_json(json).map_err(serde::de::Error::custom)
    }
}

impl Serialize for LiveObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl Resource for LiveObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// A change made here is not written back to `json`, which is what is sent.
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_metadata_is_read_from_the_json_and_the_json_is_sent_as_it_is() {
        let json = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "a", "namespace": "n", "uid": "u", "labels": { "k": "v" } },
            "data": { "x": "1" }
        });
        let obj: LiveObject = serde_json::from_value(json.clone()).expect("object");
        assert_eq!(obj.metadata.name.as_deref(), Some("a"));
        assert_eq!(obj.metadata.uid.as_deref(), Some("u"));
        assert_eq!(obj.json, json);
        assert_eq!(serde_json::to_value(&obj).expect("json"), json);
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        let bad = json!({ "metadata": { "name": 5 } });
        assert!(serde_json::from_value::<LiveObject>(bad).is_err());
    }
}
