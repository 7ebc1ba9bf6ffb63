//! A list of CIDRs as the spec holds it. The tunnels that keep `egress.cloudflareEdge` or
//! `egress.cloudflareAccess` at its default (26 strings between them) share one copy of
//! that default in the operator's memory, instead of each cached tunnel holding its own.
//! It reads, writes and describes itself in the schema exactly as a list of strings.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidrs(Arc<[String]>);

/// The documented region1/region2 ranges of the Cloudflare edge.
static CLOUDFLARE_EDGE: LazyLock<Cidrs> = LazyLock::new(|| {
    Cidrs(
        [
            "198.41.192.0/24",
            "198.41.200.0/24",
            "2606:4700:a0::/48",
            "2606:4700:a8::/48",
        ]
        .map(String::from)
        .into(),
    )
});

/// Cloudflare's published IP ranges (cloudflare.com/ips-v4 and ips-v6), where
/// `<team>.cloudflareaccess.com` answers.
static CLOUDFLARE_ACCESS: LazyLock<Cidrs> = LazyLock::new(|| {
    Cidrs(
        [
            "173.245.48.0/20",
            "103.21.244.0/22",
            "103.22.200.0/22",
            "103.31.4.0/22",
            "141.101.64.0/18",
            "108.162.192.0/18",
            "190.93.240.0/20",
            "188.114.96.0/20",
            "197.234.240.0/22",
            "198.41.128.0/17",
            "162.158.0.0/15",
            "104.16.0.0/13",
            "104.24.0.0/14",
            "172.64.0.0/13",
            "131.0.72.0/22",
            "2400:cb00::/32",
            "2606:4700::/32",
            "2803:f800::/32",
            "2405:b500::/32",
            "2405:8100::/32",
            "2a06:98c0::/29",
            "2c0f:f248::/32",
        ]
        .map(String::from)
        .into(),
    )
});

/// The default of `egress.cloudflareEdge`.
pub fn default_cloudflare_edge() -> Cidrs {
    CLOUDFLARE_EDGE.clone()
}

/// The default of `egress.cloudflareAccess`.
pub fn default_cloudflare_access() -> Cidrs {
    CLOUDFLARE_ACCESS.clone()
}

impl Cidrs {
    /// The list, shared with a default it equals.
    pub fn new(list: Vec<String>) -> Self {
        [&*CLOUDFLARE_EDGE, &*CLOUDFLARE_ACCESS]
            .into_iter()
            .find(|default| *default.0 == list[..])
            .cloned()
            .unwrap_or_else(|| Cidrs(list.into()))
    }

    /// Whether this list is a default's shared copy.
    pub fn is_shared_default(&self) -> bool {
        Arc::ptr_eq(&self.0, &CLOUDFLARE_EDGE.0) || Arc::ptr_eq(&self.0, &CLOUDFLARE_ACCESS.0)
    }
}

impl Deref for Cidrs {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for Cidrs {
    fn from(list: Vec<String>) -> Self {
        Cidrs::new(list)
    }
}

impl Serialize for Cidrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Cidrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(Cidrs::new)
    }
}

impl JsonSchema for Cidrs {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        Vec::<String>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Vec::<String>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_is_shared_and_any_other_list_is_kept_as_given() {
        let edge: Cidrs = serde_json::from_value(serde_json::json!([
            "198.41.192.0/24",
            "198.41.200.0/24",
            "2606:4700:a0::/48",
            "2606:4700:a8::/48"
        ]))
        .expect("list");
        assert!(edge.is_shared_default());
        assert_eq!(edge, default_cloudflare_edge());
        let access = Cidrs::new(default_cloudflare_access().to_vec());
        assert!(access.is_shared_default());

        let own = Cidrs::new(vec!["104.16.0.0/13".into()]);
        assert!(!own.is_shared_default());
        assert_eq!(&own[..], ["104.16.0.0/13"]);
        assert_eq!(
            serde_json::to_value(&own).expect("json"),
            serde_json::json!(["104.16.0.0/13"])
        );
    }
}
