//! An ingress rule's `service`, parsed once into what it names: a URL (scheme, host,
//! port), a fixed status, or the test server; and, for a host name, the Service it may
//! be under the pod's DNS search path. `validate` parses; render, the sandbox and the
//! controller's Service index read the parsed form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::names::{default_port, CLUSTER_DOMAIN, DNS_LABEL_MAX, DNS_NAME_MAX, MAX_SERVICE_LEN};

/// Where an ingress rule sends its traffic, as cloudflared understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `http_status:NNN`: answered by cloudflared itself.
    HttpStatus(u16),
    /// `hello_world`: cloudflared's built-in test server.
    HelloWorld,
    /// `scheme://host[:port]`.
    Url {
        scheme: String,
        host: Host,
        port: Option<u16>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Origin {
    /// The port cloudflared connects to: the explicit one or the scheme's default.
    pub fn port(&self) -> Option<u16> {
        match self {
            Origin::Url { scheme, port, .. } => port.or_else(|| default_port(scheme)),
            _ => None,
        }
    }
}

/// Parses an ingress `service` value the way cloudflared does, refusing the
/// forms this operator does not run (unix sockets, bastion, SOCKS proxy).
pub fn parse_service(service: &str) -> Result<Origin, String> {
    if service.len() > MAX_SERVICE_LEN {
        return Err(format!("is longer than {MAX_SERVICE_LEN} characters"));
    }
    if service == "hello_world" {
        return Ok(Origin::HelloWorld);
    }
    if let Some(code) = service.strip_prefix("http_status:") {
        return match code.parse::<u16>() {
            Ok(c) if (100..=999).contains(&c) => Ok(Origin::HttpStatus(c)),
            _ => Err(format!(
                "{service:?}: the status code must be a number from 100 to 999"
            )),
        };
    }
    match service {
        "bastion" => {
            return Err("bastion mode lets the connector reach any destination, which defeats the egress sandbox".into())
        }
        "socks-proxy" => {
            return Err("socks-proxy lets the connector reach any destination, which defeats the egress sandbox".into())
        }
        _ => {}
    }
    if service.starts_with("unix:") || service.starts_with("unix+tls:") {
        return Err("unix sockets cannot exist inside the connector pod; point at a Service or address instead".into());
    }
    let Some((scheme, authority)) = service.split_once("://") else {
        return Err(format!(
            "{service:?} must be scheme://host[:port] (e.g. http://web.apps.svc:8080), http_status:NNN or hello_world"
        ));
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !scheme_ok {
        return Err(format!(
            "{service:?}: the scheme must be lowercase letters, digits, '+', '-' or '.'"
        ));
    }
    if let Some(i) = authority.find(['/', '?', '#']) {
        return Err(format!(
            "{service:?} must not have a path, query or fragment ({:?}): cloudflared forwards the request's own path",
            &authority[i..]
        ));
    }
    if authority.contains('@') {
        return Err(format!("{service:?} must not contain credentials"));
    }
    let (host, port) = split_host_port(authority).map_err(|e| format!("{service:?}: {e}"))?;
    Ok(Origin::Url {
        scheme: scheme.to_string(),
        host,
        port,
    })
}

fn split_host_port(authority: &str) -> Result<(Host, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address must be closed by ']'")?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("expected ':' and a port after ']'")?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => {
                check_dns_name(host)?;
                Host::Name(host.to_ascii_lowercase())
            }
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("port {p:?} must be a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// A DNS name: dot-separated labels of 1-63 letters, digits and hyphens,
/// not starting or ending with a hyphen, 253 characters at most.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > DNS_NAME_MAX {
        return Err(format!("{name:?} is longer than {DNS_NAME_MAX} characters"));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= DNS_LABEL_MAX
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{name:?} is not a valid DNS name (labels of 1-63 letters, digits or '-', not starting or ending with '-')"
            ));
        }
    }
    Ok(())
}

/// A Service by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How a host name may refer to a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceName {
    /// `svc`, `svc.ns.svc` or `svc.ns.svc.<cluster domain>`: only a Service.
    Certain(ServiceRef),
    /// `svc.ns`: a Service if one exists, otherwise an external name such as `example.com`.
    Possible(ServiceRef),
    /// Anything else: an external host.
    NotAService,
}

/// Classifies a host name the way the pod's DNS search path resolves it.
pub fn service_name(host: &str, tunnel_namespace: &str) -> ServiceName {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let cluster_suffix = format!(".svc.{CLUSTER_DOMAIN}");
    let (stem, certain) = if let Some(stem) = host.strip_suffix(&cluster_suffix) {
        (stem, true)
    } else if let Some(stem) = host.strip_suffix(".svc") {
        (stem, true)
    } else {
        (host.as_str(), false)
    };
    let labels: Vec<&str> = stem.split('.').collect();
    let make = |name: &str, namespace: &str| ServiceRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    match (labels.as_slice(), certain) {
        ([name], false) => ServiceName::Certain(make(name, tunnel_namespace)),
        ([name, namespace], true) => ServiceName::Certain(make(name, namespace)),
        ([name, namespace], false) => ServiceName::Possible(make(name, namespace)),
        _ => ServiceName::NotAService,
    }
}
