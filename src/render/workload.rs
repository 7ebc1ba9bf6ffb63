//! The connector Deployment and its PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, KeyToPath,
    LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Sysctl, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::SecureTunnel;
use crate::names::{
    metrics_address, selector_labels, CA_HASH_ANNOTATION, CONFIG_HASH_ANNOTATION, METRICS_PORT,
    METRICS_PORT_NAME, TOKEN_HASH_ANNOTATION,
};
use crate::validate::ValidatedSpec;

/// The non-root user and group of the distroless cloudflared image.
pub const CONNECTOR_UID: i64 = 65532;
pub const CONFIG_DIR: &str = "/etc/cloudflared/config";
pub const TOKEN_DIR: &str = "/etc/cloudflared/token";
pub const CONFIG_KEY: &str = "config.yaml";
pub const TOKEN_KEY: &str = "token";
const CONTAINER_NAME: &str = "cloudflared";
/// Lets unprivileged processes in the pod's group open ICMP sockets.
const PING_GROUP_RANGE: &str = "net.ipv4.ping_group_range";

/// Requests and limits used unless `spec.pod.resources` is set: enough for a
/// connector serving a few hundred requests per second.
pub fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q("50m")),
            ("memory".to_string(), q("64Mi")),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), q("1")),
            ("memory".to_string(), q("256Mi")),
        ])),
        ..Default::default()
    }
}

/// The hashes that, when they change, roll the connector pods.
pub struct PodHashes<'a> {
    pub config: &'a str,
    /// `None` only offline, when no token was given.
    pub token: Option<&'a str>,
    /// The CA bundles' hash, when the rules use any.
    pub ca: Option<&'a str>,
}

use super::pod_settings::{ca_volume, connector_flags, termination_grace_seconds, topology_spread};

pub fn deployment(
    tunnel: &SecureTunnel,
    validated: &ValidatedSpec,
    tunnel_name: &str,
    meta: ObjectMeta,
    hashes: &PodHashes<'_>,
) -> Deployment {
    let spec = &tunnel.spec;
    let child = meta.name.clone().unwrap_or_default();

    let mut pod_labels = spec.pod.labels.clone();
    pod_labels.extend(meta.labels.clone().unwrap_or_default());
    let mut pod_annotations = spec.pod.annotations.clone();
    pod_annotations.insert(
        CONFIG_HASH_ANNOTATION.to_string(),
        hashes.config.to_string(),
    );
    if let Some(token) = hashes.token {
        pod_annotations.insert(TOKEN_HASH_ANNOTATION.to_string(), token.to_string());
    }
    if let Some(ca) = hashes.ca {
        pod_annotations.insert(CA_HASH_ANNOTATION.to_string(), ca.to_string());
    }

    // The Deployment spells out every field the API server would default in it (the
    // scheme, thresholds and timeouts here; terminationMessage*, dnsPolicy, restartPolicy,
    // schedulerName, serviceAccount, progressDeadlineSeconds, a volume's defaultMode below),
    // with the API server's own values. A create (POST) records the defaulted fields as the
    // creator's: spelled out, they are part of the applied hash, so a created Deployment is
    // intact as it is, without the adopting patch and apply that would follow otherwise.
    let probe = |failure_threshold: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ready".to_string()),
            port: IntOrString::Int(i32::from(METRICS_PORT)),
            scheme: Some("HTTP".to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        timeout_seconds: Some(1),
        success_threshold: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    };

    let mut args: Vec<String> = [
        "tunnel",
        "--config",
        &format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        "--metrics",
        &metrics_address(),
        "--protocol",
        spec.protocol.as_str(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(connector_flags(&spec.connector));
    args.extend([
        "run".to_string(),
        "--token-file".to_string(),
        format!("{TOKEN_DIR}/{TOKEN_KEY}"),
    ]);

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(args),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.to_string()),
            container_port: i32::from(METRICS_PORT),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        liveness_probe: Some(probe(1)),
        readiness_probe: Some(probe(3)),
        termination_message_path: Some("/dev/termination-log".to_string()),
        termination_message_policy: Some("File".to_string()),
        resources: Some(
            spec.pod
                .resources
                .as_deref()
                .cloned()
                .unwrap_or_else(default_resources),
        ),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(CONNECTOR_UID),
            run_as_group: Some(CONNECTOR_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..Default::default()
        }),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "config".to_string(),
                    mount_path: CONFIG_DIR.to_string(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "token".to_string(),
                    mount_path: TOKEN_DIR.to_string(),
                    read_only: Some(true),
                    ..Default::default()
                },
            ]
            .into_iter()
            .chain(validated.ca_sources.0.iter().map(|s| VolumeMount {
                name: s.volume.clone(),
                mount_path: s.mount_path.clone(),
                read_only: Some(true),
                ..Default::default()
            }))
            .collect(),
        ),
        ..Default::default()
    };

    let sysctls = spec.sandbox.allow_icmp.then(|| {
        vec![Sysctl {
            name: PING_GROUP_RANGE.to_string(),
            value: format!("{CONNECTOR_UID} {CONNECTOR_UID}"),
        }]
    });

    let pod_spec = PodSpec {
        service_account_name: Some(child.clone()),
        // The deprecated alias of serviceAccountName, which the API server fills in.
        service_account: Some(child.clone()),
        automount_service_account_token: Some(false),
        dns_policy: Some("ClusterFirst".to_string()),
        restart_policy: Some("Always".to_string()),
        scheduler_name: Some("default-scheduler".to_string()),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(termination_grace_seconds(validated.grace_period)),
        image_pull_secrets: (!spec.pod.image_pull_secrets.is_empty()).then(|| {
            spec.pod
                .image_pull_secrets
                .iter()
                .map(|s| LocalObjectReference {
                    name: s.name.clone(),
                })
                .collect()
        }),
        runtime_class_name: spec.sandbox.runtime_class_name.clone(),
        priority_class_name: spec
            .pod
            .priority_class_name
            .clone()
            .filter(|p| !p.is_empty()),
        node_selector: non_empty_map(spec.pod.node_selector.clone()),
        tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
        affinity: spec.pod.affinity.as_deref().cloned(),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(CONNECTOR_UID),
            run_as_group: Some(CONNECTOR_UID),
            fs_group: Some(CONNECTOR_UID),
            seccomp_profile: Some(runtime_default_seccomp()),
            sysctls,
            ..Default::default()
        }),
        topology_spread_constraints: Some(topology_spread(tunnel, tunnel_name)),
        containers: vec![container],
        volumes: Some(
            [
                Volume {
                    name: "config".to_string(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: child.clone(),
                        default_mode: Some(0o644),
                        items: Some(vec![KeyToPath {
                            key: CONFIG_KEY.to_string(),
                            path: CONFIG_KEY.to_string(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "token".to_string(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(child.clone()),
                        // Readable by the connector's group (fsGroup) only.
                        default_mode: Some(0o440),
                        items: Some(vec![KeyToPath {
                            key: TOKEN_KEY.to_string(),
                            path: TOKEN_KEY.to_string(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]
            .into_iter()
            .chain(validated.ca_sources.0.iter().map(ca_volume))
            .collect(),
        ),
        ..Default::default()
    };

    Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            revision_history_limit: Some(3),
            progress_deadline_seconds: Some(600),
            selector: LabelSelector {
                match_labels: Some(selector_labels(tunnel_name)),
                ..Default::default()
            },
            // Surge first: a rollout never drops below the desired connector count.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// One voluntary disruption at a time, only when there is more than one connector.
pub fn pod_disruption_budget(
    tunnel: &SecureTunnel,
    tunnel_name: &str,
    meta: ObjectMeta,
) -> Option<PodDisruptionBudget> {
    (tunnel.spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(tunnel_name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        ..Default::default()
    }
}

fn non_empty_map(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}
