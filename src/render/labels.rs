//! Names, labels and annotations shared by every child object.

use std::collections::BTreeMap;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const APP_NAME: &str = "cloudflared";
pub const MANAGED_BY: &str = "securetunnel-operator";

/// Label selector matching every object this operator creates; the
/// controller's child watches use it so that they cache nothing else.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=securetunnel-operator";

/// Hash of the rendered cloudflared config, on the pod template.
pub const CONFIG_HASH_ANNOTATION: &str = "securetunnel.dev/config-hash";
/// Hash of the tunnel token, on the pod template: rotating the token rolls the pods.
pub const TOKEN_HASH_ANNOTATION: &str = "securetunnel.dev/token-hash";
/// Hash of the whole desired child; a cached child carrying the same hash
/// is not written again.
pub const APPLIED_HASH_ANNOTATION: &str = "securetunnel.dev/applied-hash";

/// Every child of a SecureTunnel is called `<name>-cloudflared`.
pub fn child_name(tunnel_name: &str) -> String {
    format!("{tunnel_name}-cloudflared")
}

/// The labels that select one tunnel's connector pods (immutable in a Deployment).
pub fn selector_labels(tunnel_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), APP_NAME.to_string()),
        (INSTANCE_LABEL.to_string(), tunnel_name.to_string()),
    ])
}

/// The labels on every child object.
pub fn child_labels(tunnel_name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tunnel_name);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}
