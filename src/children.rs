//! The kinds of object a SecureTunnel becomes, declared once. This one list drives the
//! controller's watches and caches, the apply order, the kind strings, the RBAC rules
//! (src/rbac.rs) and the API paths the tests expect. Adding a child kind is one line here plus its render
//! function.

use k8s_openapi::Resource as _;
use kube::api::ApiResource;

macro_rules! child_kinds {
    ($( $(#[$doc:meta])* $variant:ident: $ty:ty $(, optional = $optional:literal)? $(, integration = $integration:ident)?; )*) => {
        /// One kind of child object.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ChildKind {
            $( $(#[$doc])* $variant, )*
        }

        impl ChildKind {
            /// Every child kind, in apply order.
            pub const ALL: &'static [ChildKind] = &[$( ChildKind::$variant, )*];

            /// The kind's group, version and plural, for dynamic API calls and watches.
            pub fn api_resource(self) -> ApiResource {
                match self { $( ChildKind::$variant => ApiResource::erase::<$ty>(&()), )* }
            }

            /// `Deployment`, `ConfigMap`, …
            pub fn kind(self) -> &'static str {
                match self { $( ChildKind::$variant => <$ty>::KIND, )* }
            }

            /// The API group (`""` for the core group).
            pub fn group(self) -> &'static str {
                match self { $( ChildKind::$variant => <$ty>::GROUP, )* }
            }

            /// The plural resource name in API paths and RBAC rules.
            pub fn plural(self) -> &'static str {
                match self { $( ChildKind::$variant => <$ty>::URL_PATH_SEGMENT, )* }
            }

            /// A child that some specs do not want (and that is then removed).
            pub fn optional(self) -> bool {
                match self { $( ChildKind::$variant => false $(|| $optional)?, )* }
            }

            /// The integration that brings this kind, for a kind of another project's API.
            pub fn integration(self) -> Option<Integration> {
                match self { $( ChildKind::$variant => None $(.or(Some(Integration::$integration)))?, )* }
            }

            /// [`ChildKind::plural`], as the one-element list an RBAC rule takes.
            pub fn resources(self) -> &'static [&'static str] {
                match self { $( ChildKind::$variant => &[<$ty>::URL_PATH_SEGMENT], )* }
            }
        }
    };
}

/// The list itself: expands `$m!` with one `Variant: Type;` per child kind, in apply
/// order, each with its Kubernetes type.
#[macro_export]
macro_rules! with_child_kinds {
    ($m:path) => {
        $m! {
            /// The egress sandbox: applied before anything that starts pods.
            NetworkPolicy: k8s_openapi::api::networking::v1::NetworkPolicy;
            /// The operator's copy of the token, mounted by the pods.
            Secret: k8s_openapi::api::core::v1::Secret;
            /// cloudflared's `config.yaml`.
            ConfigMap: k8s_openapi::api::core::v1::ConfigMap;
            ServiceAccount: k8s_openapi::api::core::v1::ServiceAccount;
            /// Only with more than one replica.
            PodDisruptionBudget: k8s_openapi::api::policy::v1::PodDisruptionBudget, optional = true;
            /// Last of the core kinds: when a name is taken, the writes stop before any
            /// connector starts.
            Deployment: k8s_openapi::api::apps::v1::Deployment;
            /// Only with `spec.dns`: after the Deployment, so that no record points at a
            /// tunnel before its connectors start.
            DnsEndpoint: $crate::external::DnsEndpoint, optional = true, integration = DnsEndpoints;
            /// Only with `spec.metrics.podMonitor`.
            PodMonitor: $crate::external::PodMonitor, optional = true, integration = PodMonitors;
        }
    };
}

with_child_kinds!(child_kinds);

/// When a kind is written, relative to the others: the kinds the pods need (and their
/// sandbox), then the Deployment, then what points at running connectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wave {
    BeforePods,
    Pods,
    AfterPods,
}

impl ChildKind {
    /// Its [`Wave`]: the kinds of one wave are written at once, each wave after the one
    /// before it has been written.
    pub fn wave(self) -> Wave {
        match self.cmp(&ChildKind::Deployment) {
            std::cmp::Ordering::Less => Wave::BeforePods,
            std::cmp::Ordering::Equal => Wave::Pods,
            std::cmp::Ordering::Greater => Wave::AfterPods,
        }
    }
}

/// A child kind of another project's API, whose CRD a cluster may not have. The
/// operator watches and writes it only when started with it (`run --integration`, which
/// the chart and the kustomize components pass with the RBAC it needs). Where it is not
/// enabled, or its CRD is missing, tunnels that want it say so in a condition, and the
/// rest of the reconcile goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Integration {
    /// external-dns's `DNSEndpoint`, for `spec.dns`.
    DnsEndpoints,
    /// The Prometheus Operator's `PodMonitor`, for `spec.metrics.podMonitor`.
    PodMonitors,
}

/// Whether a kind can be written: for the kinds of an integration, whose CRD may be
/// missing or whose RBAC may not be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Listed and watched.
    Available,
    /// This operator does not watch the kind (its integration is not enabled).
    NotEnabled,
    /// Its first listing has neither finished nor failed yet.
    Pending,
    /// The API server does not serve the kind (404): its CRD is not installed.
    NotInstalled,
    /// The operator may not list it (403).
    Forbidden,
}

impl Integration {
    pub const ALL: [Integration; 2] = [Integration::DnsEndpoints, Integration::PodMonitors];

    /// Its name on the command line, in the chart's values and in the kustomize
    /// component's directory.
    pub fn name(self) -> &'static str {
        match self {
            Integration::DnsEndpoints => "dns-endpoints",
            Integration::PodMonitors => "pod-monitors",
        }
    }

    /// Its key under the chart's `integrations` value and in the RBAC rules document.
    pub fn value_name(self) -> &'static str {
        match self {
            Integration::DnsEndpoints => "dnsEndpoints",
            Integration::PodMonitors => "podMonitors",
        }
    }

    /// The child kinds it brings.
    pub fn kinds(self) -> impl Iterator<Item = ChildKind> {
        ChildKind::ALL
            .iter()
            .copied()
            .filter(move |k| k.integration() == Some(self))
    }
}

impl ChildKind {
    /// The kinds every operator watches and writes: those of no integration.
    pub fn core() -> impl Iterator<Item = ChildKind> {
        ChildKind::ALL
            .iter()
            .copied()
            .filter(|k| k.integration().is_none())
    }

    /// The kinds an operator with these integrations watches and writes.
    pub fn enabled(integrations: &[Integration]) -> Vec<ChildKind> {
        ChildKind::ALL
            .iter()
            .copied()
            .filter(|k| k.integration().is_none_or(|i| integrations.contains(&i)))
            .collect()
    }

    /// `dnsendpoints.externaldns.k8s.io`: the name of the CRD that serves this kind.
    pub fn crd_name(self) -> String {
        format!("{}.{}", self.plural(), self.group())
    }

    /// `deployments.apps`, as the API server names a kind in its messages.
    pub fn qualified_plural(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// The API path of the child `name` in `namespace`.
    pub fn path(self, namespace: &str, name: &str) -> String {
        let version = self.api_resource().version;
        let prefix = match self.group() {
            "" => format!("/api/{version}"),
            group => format!("/apis/{group}/{version}"),
        };
        format!("{prefix}/namespaces/{namespace}/{}/{name}", self.plural())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_is_a_wave_of_its_own_between_what_pods_need_and_what_points_at_them() {
        use Wave::*;
        let waves: Vec<(ChildKind, Wave)> = ChildKind::ALL.iter().map(|k| (*k, k.wave())).collect();
        assert_eq!(
            waves,
            [
                (ChildKind::NetworkPolicy, BeforePods),
                (ChildKind::Secret, BeforePods),
                (ChildKind::ConfigMap, BeforePods),
                (ChildKind::ServiceAccount, BeforePods),
                (ChildKind::PodDisruptionBudget, BeforePods),
                (ChildKind::Deployment, Pods),
                (ChildKind::DnsEndpoint, AfterPods),
                (ChildKind::PodMonitor, AfterPods),
            ]
        );
    }

    #[test]
    fn the_sandbox_is_applied_first_and_only_the_budget_and_integrations_are_optional() {
        assert_eq!(ChildKind::ALL[0], ChildKind::NetworkPolicy);
        let optional: Vec<_> = ChildKind::ALL
            .iter()
            .filter(|k| k.optional() && k.integration().is_none())
            .collect();
        assert_eq!(optional, [&ChildKind::PodDisruptionBudget]);
        assert!(ChildKind::ALL
            .iter()
            .filter(|k| k.integration().is_some())
            .all(|k| k.optional()));
        assert_eq!(ChildKind::core().last(), Some(ChildKind::Deployment));
    }

    #[test]
    fn each_integration_brings_its_kinds() {
        assert_eq!(
            Integration::DnsEndpoints.kinds().collect::<Vec<_>>(),
            [ChildKind::DnsEndpoint]
        );
        assert_eq!(
            Integration::PodMonitors.kinds().collect::<Vec<_>>(),
            [ChildKind::PodMonitor]
        );
        assert_eq!(
            ChildKind::DnsEndpoint.crd_name(),
            "dnsendpoints.externaldns.k8s.io"
        );
        assert_eq!(ChildKind::DnsEndpoint.kind(), "DNSEndpoint");
        assert!(!ChildKind::enabled(&[]).contains(&ChildKind::DnsEndpoint));
        assert!(ChildKind::enabled(&[Integration::DnsEndpoints]).contains(&ChildKind::DnsEndpoint));
    }

    #[test]
    fn paths_follow_the_group() {
        assert_eq!(
            ChildKind::Deployment.path("apps", "home-cloudflared"),
            "/apis/apps/v1/namespaces/apps/deployments/home-cloudflared"
        );
        assert_eq!(
            ChildKind::ConfigMap.path("apps", "x"),
            "/api/v1/namespaces/apps/configmaps/x"
        );
        assert_eq!(ChildKind::Deployment.qualified_plural(), "deployments.apps");
        assert_eq!(ChildKind::Secret.qualified_plural(), "secrets");
    }
}
