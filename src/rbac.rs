//! Every Kubernetes API the operator calls, in one place. The Helm chart's
//! and kustomize's RBAC are generated from this list (`securetunnel-operator
//! rbac`), tests check that the generated files match it, and the mock API
//! server checks every request the reconciler sends against it.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::children::{ChildKind, Integration};

/// Access to one group's resources with some verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// What the controller needs for one child kind: watched (the cache), looked up before
/// the first apply, applied (server-side apply of a new object is authorized as
/// `create`); an optional kind is also deleted when no longer wanted.
fn child_access(kind: ChildKind) -> Access {
    Access {
        group: kind.group(),
        resources: kind.resources(),
        verbs: if kind.optional() {
            &["get", "list", "watch", "create", "patch", "delete"]
        } else {
            &["get", "list", "watch", "create", "patch"]
        },
    }
}

/// What the controller needs wherever it watches SecureTunnels (cluster-wide, or in
/// each watched namespace): the SecureTunnels, each child kind (see
/// [`child_access`]), the user's token Secrets, the Services the rules name, Events.
pub fn controller() -> Vec<Access> {
    let mut access = vec![
        // The SecureTunnels themselves: watched, and their status applied.
        Access {
            group: "securetunnel.dev",
            resources: &["securetunnels"],
            verbs: &["list", "watch"],
        },
        Access {
            group: "securetunnel.dev",
            resources: &["securetunnels/status"],
            verbs: &["patch"],
        },
    ];
    access.extend(ChildKind::core().map(child_access));
    access.extend([
        // The user's token: read; the metadata of Secrets watched to notice a rotation.
        Access {
            group: "",
            resources: &["secrets"],
            verbs: &["get", "list", "watch"],
        },
        // A tunnel's connector pods, listed (by label, in its namespace) to ask one of them
        // which configuration it runs: never watched, never read otherwise.
        Access {
            group: "",
            resources: &["pods"],
            verbs: &["list"],
        },
        // Services the ingress rules name: read to derive the NetworkPolicy.
        Access {
            group: "",
            resources: &["services"],
            verbs: &["list", "watch"],
        },
        // Events on SecureTunnels (a repeated Event is patched as a series).
        Access {
            group: "events.k8s.io",
            resources: &["events"],
            verbs: &["create", "patch"],
        },
    ]);
    access
}

/// What one integration adds to [`controller`]: access to its kinds.
pub fn integration(integration: Integration) -> Vec<Access> {
    integration.kinds().map(child_access).collect()
}

/// Cluster-scoped: waiting for the CRD to be established before starting.
pub const CLUSTER: &[Access] = &[Access {
    group: "apiextensions.k8s.io",
    resources: &["customresourcedefinitions"],
    verbs: &["get", "list", "watch"],
}];

/// In the operator's own namespace: the leader election Lease.
pub const LEADER_ELECTION: &[Access] = &[Access {
    group: "coordination.k8s.io",
    resources: &["leases"],
    verbs: &["get", "create", "update"],
}];

/// The list as RBAC rules.
pub fn policy_rules(access: &[Access]) -> Vec<PolicyRule> {
    access
        .iter()
        .map(|a| PolicyRule {
            api_groups: Some(vec![a.group.to_string()]),
            resources: Some(a.resources.iter().map(|r| r.to_string()).collect()),
            verbs: a.verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

/// The rule sets as one YAML document, as the chart and kustomize use them: under
/// `integrations`, by chart value name, each integration's `run --integration` value and
/// its rules.
pub fn rules_document() -> serde_json::Value {
    let integrations: serde_json::Map<String, serde_json::Value> = Integration::ALL
        .iter()
        .map(|i| {
            (
                i.value_name().to_string(),
                serde_json::json!({
                    "flag": i.name(),
                    "rules": policy_rules(&integration(*i)),
                }),
            )
        })
        .collect();
    serde_json::json!({
        "controller": policy_rules(&controller()),
        "cluster": policy_rules(CLUSTER),
        "leaderElection": policy_rules(LEADER_ELECTION),
        "integrations": integrations,
    })
}

/// The (group, resource, verb) an API request needs, from its method and path.
pub fn request_needs(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    Some((group.to_string(), resource, verb.to_string()))
}

/// Whether `access` grants a request.
pub fn allows(access: &[Access], method: &str, path: &str, query: &str) -> bool {
    let Some((group, resource, verb)) = request_needs(method, path, query) else {
        return false;
    };
    access.iter().any(|a| {
        a.group == group
            && a.resources.contains(&resource.as_str())
            && a.verbs.contains(&verb.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_rbac_verbs() {
        let n = |m, p, q| request_needs(m, p, q).map(|(g, r, v)| format!("{g}/{r}:{v}"));
        assert_eq!(
            n("GET", "/api/v1/namespaces/apps/secrets/tok", ""),
            Some("/secrets:get".into())
        );
        assert_eq!(
            n("GET", "/api/v1/services", ""),
            Some("/services:list".into())
        );
        assert_eq!(
            n(
                "GET",
                "/api/v1/namespaces/apps/services",
                "watch=true&resourceVersion=1"
            ),
            Some("/services:watch".into())
        );
        assert_eq!(
            n(
                "PATCH",
                "/apis/securetunnel.dev/v1alpha1/namespaces/apps/securetunnels/home/status",
                ""
            ),
            Some("securetunnel.dev/securetunnels/status:patch".into())
        );
        assert_eq!(
            n("POST", "/apis/events.k8s.io/v1/namespaces/apps/events", ""),
            Some("events.k8s.io/events:create".into())
        );
        assert_eq!(
            n(
                "GET",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                "fieldSelector=metadata.name%3Dx"
            ),
            Some("apiextensions.k8s.io/customresourcedefinitions:list".into())
        );
        assert_eq!(
            n(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/l",
                ""
            ),
            Some("coordination.k8s.io/leases:update".into())
        );
        assert_eq!(n("GET", "/version", ""), None);
    }

    #[test]
    fn nothing_is_granted_by_wildcard_and_writes_stay_on_our_kinds() {
        let controller = controller();
        for a in controller.iter().chain(CLUSTER).chain(LEADER_ELECTION) {
            assert!(
                !a.group.contains('*')
                    && a.resources.iter().chain(a.verbs).all(|x| !x.contains('*')),
                "{a:?}"
            );
        }
        assert!(!allows(
            &controller,
            "PATCH",
            "/apis/apps/v1/namespaces/a/statefulsets/x",
            ""
        ));
        assert!(
            !allows(&controller, "DELETE", "/api/v1/namespaces/a/secrets/x", ""),
            "never delete a Secret"
        );
        assert!(
            !allows(&controller, "PATCH", "/api/v1/namespaces/a/services/x", ""),
            "Services are only read"
        );
        assert!(
            !allows(
                &controller,
                "PATCH",
                "/apis/securetunnel.dev/v1alpha1/namespaces/a/securetunnels/x",
                ""
            ),
            "only the status"
        );
        assert!(allows(
            &controller,
            "DELETE",
            "/apis/policy/v1/namespaces/a/poddisruptionbudgets/x",
            ""
        ));
    }
}
