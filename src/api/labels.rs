//! Labels as the spec holds them where almost every tunnel keeps the default:
//! `egress.dns.podLabels` (`k8s-app: kube-dns`). The tunnels that keep it share one copy
//! in the operator's memory (a map of one entry costs a whole B-tree node, about 600
//! bytes, in each cached tunnel otherwise). It reads, writes and describes itself in the
//! schema exactly as a map of strings.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(Arc<BTreeMap<String, String>>);

/// The labels of the cluster DNS pods in most distributions.
static KUBE_DNS: LazyLock<Labels> = LazyLock::new(|| {
    Labels(Arc::new(BTreeMap::from([(
        "k8s-app".to_string(),
        "kube-dns".to_string(),
    )])))
});

/// The default of `egress.dns.podLabels`.
pub fn default_dns_pod_labels() -> Labels {
    KUBE_DNS.clone()
}

impl Labels {
    /// The labels, shared with the default when they equal it.
    pub fn new(labels: BTreeMap<String, String>) -> Self {
        if *KUBE_DNS.0 == labels {
            KUBE_DNS.clone()
        } else {
            Labels(Arc::new(labels))
        }
    }

    /// Whether these labels are the default's shared copy.
    pub fn is_shared_default(&self) -> bool {
        Arc::ptr_eq(&self.0, &KUBE_DNS.0)
    }
}

impl Deref for Labels {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(labels: BTreeMap<String, String>) -> Self {
        Labels::new(labels)
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Labels::new)
    }
}

impl JsonSchema for Labels {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        BTreeMap::<String, String>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        BTreeMap::<String, String>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_shared_and_any_other_labels_are_kept_as_given() {
        let kept: Labels =
            serde_json::from_value(serde_json::json!({ "k8s-app": "kube-dns" })).expect("map");
        assert!(kept.is_shared_default());
        assert_eq!(kept, default_dns_pod_labels());

        let own: Labels =
            serde_json::from_value(serde_json::json!({ "app": "coredns" })).expect("map");
        assert!(!own.is_shared_default());
        assert_eq!(own.get("app").map(String::as_str), Some("coredns"));
        assert_eq!(
            serde_json::to_value(&own).expect("json"),
            serde_json::json!({ "app": "coredns" })
        );
    }
}
