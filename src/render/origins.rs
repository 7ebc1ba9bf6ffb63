//! Which destinations each ingress rule needs: the pods behind an
//! in-cluster Service, an IP address, or an external host that an
//! `egress.extraOrigins` entry must cover. Pure: the Services come from the
//! dereference step (the controller's cache, or a file offline).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::SecureTunnelSpec;
use crate::validate::origin::{service_name, Host, Origin, ServiceName, ServiceRef};
use crate::validate::ValidatedSpec;

/// A port on a destination pod: a number, or a container port name (a
/// Service's named `targetPort`, matched by the policy against the pods'
/// own port names).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetPort {
    Number(i32),
    Name(String),
}

impl From<TargetPort> for IntOrString {
    fn from(p: TargetPort) -> Self {
        match p {
            TargetPort::Number(n) => IntOrString::Int(n),
            TargetPort::Name(n) => IntOrString::String(n),
        }
    }
}

/// (protocol, port) on a destination.
pub type PortKey = (String, TargetPort);

/// Everything the egress sandbox must allow for the ingress rules.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolution {
    /// Pods behind Services: (namespace, selector) -> (protocol, port) set.
    pub pods: BTreeMap<(String, BTreeMap<String, String>), BTreeSet<PortKey>>,
    /// IP literals: CIDR (/32 or /128) -> TCP ports.
    pub addresses: BTreeMap<String, BTreeSet<u16>>,
    /// Rules whose destination could not be determined; nothing was opened for them.
    pub unresolved: Vec<Unresolved>,
}

/// One rule the sandbox could not open, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// e.g. `spec.ingress[2]`
    pub rule: String,
    pub service: String,
    pub reason: String,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.rule, self.service, self.reason)
    }
}

fn port_key(protocol: Option<&str>, port: TargetPort) -> PortKey {
    (protocol.unwrap_or("TCP").to_string(), port)
}

/// Works out the destinations of every rule. `services` holds the Services
/// the dereference step found (keyed by namespace/name).
pub fn resolve(
    validated: &ValidatedSpec,
    spec: &SecureTunnelSpec,
    tunnel_namespace: &str,
    services: &BTreeMap<ServiceRef, Service>,
) -> Resolution {
    let mut out = Resolution::default();
    let extra_ports: BTreeSet<i32> = spec
        .egress
        .extra_origins
        .iter()
        .flat_map(|o| o.ports.iter().copied())
        .collect();

    for rule in &validated.rules {
        let origin = &rule.origin;
        let Origin::Url { host, .. } = origin else {
            continue; // http_status and hello_world are answered by cloudflared itself
        };
        let unresolved = |reason: String| Unresolved {
            rule: rule.field_path(),
            service: spec.ingress[rule.index].service.clone(),
            reason,
        };
        let Some(port) = origin.port() else {
            out.unresolved.push(unresolved(
                "no port is given and the scheme has no default".into(),
            ));
            continue;
        };
        // External destinations are allowed only through extraOrigins.
        let external = |why: String| {
            if extra_ports.contains(&i32::from(port)) {
                None
            } else {
                Some(unresolved(format!(
                    "{why}: add a spec.egress.extraOrigins entry with its address and port {port}"
                )))
            }
        };

        let name = match host {
            Host::Ip(ip) => {
                let cidr = if ip.is_ipv4() {
                    format!("{ip}/32")
                } else {
                    format!("{ip}/128")
                };
                out.addresses.entry(cidr).or_default().insert(port);
                continue;
            }
            Host::Name(name) => name,
        };
        let (reference, certain) = match service_name(name, tunnel_namespace) {
            ServiceName::Certain(r) => (r, true),
            ServiceName::Possible(r) => (r, false),
            ServiceName::NotAService => {
                out.unresolved
                    .extend(external(format!("{name} is outside the cluster")));
                continue;
            }
        };
        let Some(service) = services.get(&reference) else {
            if certain {
                out.unresolved
                    .push(unresolved(format!("no Service {reference}")));
            } else {
                out.unresolved.extend(external(format!(
                    "no Service {reference}, so {name} is outside the cluster"
                )));
            }
            continue;
        };
        let spec_ = service.spec.clone().unwrap_or_default();
        let selector = spec_.selector.clone().unwrap_or_default();
        if spec_.type_.as_deref() == Some("ExternalName") || selector.is_empty() {
            out.unresolved.extend(external(format!(
                "Service {reference} has no pod selector, so its endpoints are unknown"
            )));
            continue;
        }
        let Some(service_port) = spec_
            .ports
            .iter()
            .flatten()
            .find(|p| p.port == i32::from(port))
        else {
            out.unresolved.push(unresolved(format!(
                "Service {reference} has no port {port}"
            )));
            continue;
        };
        // The policy applies to the pods, after the Service's translation: use the target port.
        let target = match &service_port.target_port {
            Some(IntOrString::Int(n)) => TargetPort::Number(*n),
            Some(IntOrString::String(name)) => match name.parse::<i32>() {
                Ok(n) => TargetPort::Number(n),
                Err(_) => TargetPort::Name(name.clone()),
            },
            None => TargetPort::Number(service_port.port),
        };
        out.pods
            .entry((reference.namespace.clone(), selector))
            .or_default()
            .insert(port_key(service_port.protocol.as_deref(), target));
    }
    out
}
