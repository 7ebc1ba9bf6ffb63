//! Kinds that other projects define and that a SecureTunnel may also become, with only
//! the fields the operator sets: external-dns's `DNSEndpoint` and the Prometheus
//! Operator's `PodMonitor`. Their CRDs may be missing from a cluster; see
//! [`crate::children::Integration`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// Declares an object type of another project's API: its metadata and spec, the
/// `k8s_openapi` traits (so that kube's `Api` and `ApiResource` take it), and JSON that
/// carries `apiVersion` and `kind` like every Kubernetes object.
macro_rules! external_kind {
    ($(#[$doc:meta])* $name:ident($spec:ty): $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            pub metadata: ObjectMeta,
            pub spec: $spec,
        }

        impl k8s_openapi::Resource for $name {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $name {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Wire<'a> {
                    api_version: &'static str,
                    kind: &'static str,
                    metadata: &'a ObjectMeta,
                    spec: &'a $spec,
                }
                Wire {
                    api_version: <$name as k8s_openapi::Resource>::API_VERSION,
                    kind: $kind,
                    metadata: &self.metadata,
                    spec: &self.spec,
                }
                .serialize(serializer)
            }
        }
    };
}

external_kind!(
    /// external-dns's record set (`sigs.k8s.io/external-dns/endpoint`), read by its
    /// `crd` source.
    DnsEndpoint(DnsEndpointSpec): "externaldns.k8s.io", "v1alpha1", "DNSEndpoint", "dnsendpoints"
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsEndpointSpec {
    pub endpoints: Vec<Endpoint>,
}

/// One record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub dns_name: String,
    pub targets: Vec<String>,
    pub record_type: String,
    #[serde(rename = "recordTTL")]
    pub record_ttl: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_specific: Vec<ProviderSpecificProperty>,
}

/// A provider's own setting on a record, such as Cloudflare's proxying.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpecificProperty {
    pub name: String,
    pub value: String,
}

external_kind!(
    /// The Prometheus Operator's scrape configuration for pods
    /// (`monitoring.coreos.com/v1`).
    PodMonitor(PodMonitorSpec): "monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    /// Pods in the PodMonitor's own namespace with these labels.
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
    /// Pod labels copied onto the scraped series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_target_labels: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    /// The container port's name.
    pub port: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}
