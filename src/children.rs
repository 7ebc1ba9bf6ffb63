//! The kinds of object a SecureTunnel becomes, declared once. This one list drives the
//! controller's watches and caches, the apply order, the kind strings, the RBAC rules
//! (src/rbac.rs) and the API paths the tests expect. Adding a child kind is one line here plus its render
//! function.

use k8s_openapi::Resource as _;
use kube::api::ApiResource;

macro_rules! child_kinds {
    ($( $(#[$doc:meta])* $variant:ident: $ty:ty $(, optional = $optional:literal)?; )*) => {
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
            /// Last: when a name is taken, the writes stop before any connector starts.
            Deployment: k8s_openapi::api::apps::v1::Deployment;
        }
    };
}

with_child_kinds!(child_kinds);

impl ChildKind {
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
    fn the_sandbox_is_applied_first_and_only_the_budget_is_optional() {
        assert_eq!(ChildKind::ALL[0], ChildKind::NetworkPolicy);
        let optional: Vec<_> = ChildKind::ALL.iter().filter(|k| k.optional()).collect();
        assert_eq!(optional, [&ChildKind::PodDisruptionBudget]);
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
