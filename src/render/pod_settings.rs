//! The connector pod's settings that come from the spec's platform fields: cloudflared's
//! flags, the termination grace period, the topology spread, the CA bundles' volumes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, KeyToPath, SecretVolumeSource, TopologySpreadConstraint, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::{Connector, SecureTunnel};
use crate::names::{selector_labels, TERMINATION_GRACE_MARGIN_SECONDS};
use crate::validate::{CaKind, CaSource};

/// cloudflared drains connections for its grace period on SIGTERM; the pod must outlive
/// that.
pub fn termination_grace_seconds(grace_period: Duration) -> i64 {
    let seconds = grace_period.as_secs() + u64::from(grace_period.subsec_nanos() > 0);
    i64::try_from(seconds + TERMINATION_GRACE_MARGIN_SECONDS).unwrap_or(i64::MAX)
}

/// `spec.connector`'s flags, each only when set: between `tunnel` and `run`, like
/// `--protocol`.
pub fn connector_flags(c: &Connector) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(level) = c.log_level {
        flags.extend(["--loglevel".to_string(), level.as_str().to_string()]);
    }
    if let Some(version) = c.edge_ip_version {
        flags.extend([
            "--edge-ip-version".to_string(),
            version.as_str().to_string(),
        ]);
    }
    if let Some(region) = c.region {
        flags.extend(["--region".to_string(), region.as_str().to_string()]);
    }
    if c.post_quantum {
        flags.push("--post-quantum".to_string());
    }
    if let Some(grace) = &c.grace_period {
        flags.extend(["--grace-period".to_string(), grace.clone()]);
    }
    flags
}

/// A CA source as a read-only volume of just the keys the rules use (bundles are
/// public: readable by all).
pub fn ca_volume(source: &CaSource) -> Volume {
    let items = Some(
        source
            .keys
            .iter()
            .map(|k| KeyToPath {
                key: k.clone(),
                path: k.clone(),
                ..Default::default()
            })
            .collect(),
    );
    let mut volume = Volume {
        name: source.volume.clone(),
        ..Default::default()
    };
    match source.kind {
        CaKind::ConfigMap => {
            volume.config_map = Some(ConfigMapVolumeSource {
                name: source.name.clone(),
                items,
                default_mode: Some(0o444),
                ..Default::default()
            })
        }
        CaKind::Secret => {
            volume.secret = Some(SecretVolumeSource {
                secret_name: Some(source.name.clone()),
                items,
                default_mode: Some(0o444),
                ..Default::default()
            })
        }
    }
    volume
}

/// `spec.pod.topologySpreadConstraints`, each with this tunnel's pod selector where it
/// names none; unset: one connector per node where the nodes allow it.
pub fn topology_spread(tunnel: &SecureTunnel, tunnel_name: &str) -> Vec<TopologySpreadConstraint> {
    let selector = || LabelSelector {
        match_labels: Some(selector_labels(tunnel_name)),
        ..Default::default()
    };
    let given = &tunnel.spec.pod.topology_spread_constraints;
    if given.is_empty() {
        return vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".to_string(),
            // ScheduleAnyway: a single-node cluster must still run every replica.
            when_unsatisfiable: "ScheduleAnyway".to_string(),
            label_selector: Some(selector()),
            ..Default::default()
        }];
    }
    given
        .iter()
        .map(|c| TopologySpreadConstraint {
            label_selector: c.label_selector.clone().or_else(|| Some(selector())),
            ..c.clone()
        })
        .collect()
}
