//! The admission table: bad specs with where admission and the operator refuse them, and
//! good specs both accept. tests/admission.rs checks it against the CRD's schema and CEL
//! rules offline; the e2e suite sends every case to a real API server.

use serde_json::{json, Value};

pub fn base() -> Value {
    json!({
        "apiVersion": "securetunnel.dev/v1alpha1",
        "kind": "SecureTunnel",
        "metadata": { "name": "home", "namespace": "apps" },
        "spec": {
            "tokenSecretRef": { "name": "home-tunnel-token" },
            "ingress": [ { "hostname": "app.example.com", "service": "http://web.apps.svc:8080" } ]
        }
    })
}

/// `spec.ingress[0].service` -> pointer into the object.
pub fn set(obj: &mut Value, path: &str, value: Value) {
    let mut pointer = String::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((name, index)) => {
                pointer.push('/');
                pointer.push_str(name);
                pointer.push('/');
                pointer.push_str(index.trim_end_matches(']'));
            }
            None => {
                pointer.push('/');
                pointer.push_str(part);
            }
        }
    }
    let (parent, key) = pointer.rsplit_once('/').expect("a path");
    let target = obj
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the base object"));
    match target {
        Value::Object(map) => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.to_string(), value);
            }
        }
        Value::Array(items) => {
            let i: usize = key.parse().expect("index");
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        other => panic!("{parent} is {other}"),
    }
}

/// What admission does with a bad case.
pub enum Admission {
    /// Refused, with an error at this field path.
    Refuses(&'static str),
    /// Accepted; the operator alone refuses it, for this reason.
    CannotExpress(&'static str),
}

/// What the operator does with a bad case.
pub enum Operator {
    /// Refused, with an error at this path whose message contains the text.
    Refuses(&'static str, &'static str),
    /// The object does not even parse (a type error admission catches first).
    CannotParse,
}

pub struct Bad {
    pub name: &'static str,
    pub edits: Vec<(&'static str, Value)>,
    pub operator: Operator,
    pub admission: Admission,
}

fn bad(
    name: &'static str,
    edits: Vec<(&'static str, Value)>,
    operator: Operator,
    admission: Admission,
) -> Bad {
    Bad {
        name,
        edits,
        operator,
        admission,
    }
}

fn op(path: &'static str, needle: &'static str) -> Operator {
    Operator::Refuses(path, needle)
}

fn one(path: &'static str, value: Value) -> Vec<(&'static str, Value)> {
    vec![(path, value)]
}

fn service(value: &str) -> Vec<(&'static str, Value)> {
    one("spec.ingress[0].service", json!(value))
}

fn hostname(value: &str) -> Vec<(&'static str, Value)> {
    one("spec.ingress[0].hostname", json!(value))
}

fn many_rules(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "hostname": format!("h{i}.example.com"), "service": "http://web:80" }))
            .collect(),
    )
}

pub fn bad_cases() -> Vec<Bad> {
    const S: &str = "spec.ingress[0].service";
    const H: &str = "spec.ingress[0].hostname";
    const OR: &str = "spec.ingress[0].originRequest";
    let cost =
        "comparing every pair of up to 256 rules would exceed the API server's CEL cost limits";
    vec![
        bad("replicas zero", one("spec.replicas", json!(0)), op("spec.replicas", "must be 1 to 20"), Admission::Refuses("spec.replicas")),
        bad("replicas above 20", one("spec.replicas", json!(21)), op("spec.replicas", "must be 1 to 20"), Admission::Refuses("spec.replicas")),
        bad("replicas negative", one("spec.replicas", json!(-1)), op("spec.replicas", "out of range"), Admission::Refuses("spec.replicas")),
        bad("replicas as text", one("spec.replicas", json!("two")), Operator::CannotParse, Admission::Refuses("spec.replicas")),
        bad("image latest", one("spec.image", json!("cloudflare/cloudflared:latest")), op("spec.image", "not \"latest\""), Admission::Refuses("spec.image")),
        bad("image latest with digest", one("spec.image", json!("cloudflare/cloudflared:latest@sha256:00")), op("spec.image", "not \"latest\""), Admission::Refuses("spec.image")),
        bad("image without tag", one("spec.image", json!("cloudflare/cloudflared")), op("spec.image", "has no tag"), Admission::Refuses("spec.image")),
        bad("image with registry port, no tag", one("spec.image", json!("registry.local:5000/cloudflared")), op("spec.image", "has no tag"), Admission::Refuses("spec.image")),
        bad("image empty", one("spec.image", json!("")), op("spec.image", "must not be empty"), Admission::Refuses("spec.image")),
        bad("image too long", one("spec.image", json!(format!("r/{}:2026.8.2", "a".repeat(600)))), op("spec.image", "longer than 512"), Admission::Refuses("spec.image")),
        bad("image older than --token-file", one("spec.image", json!("cloudflare/cloudflared:2025.2.1")), op("spec.image", "older than 2025.4.0"), Admission::CannotExpress("comparing calendar versions needs numeric parsing of the tag")),
        bad("token secret name empty", one("spec.tokenSecretRef.name", json!("")), op("spec.tokenSecretRef.name", "must not be empty"), Admission::Refuses("spec.tokenSecretRef.name")),
        bad("token secret name uppercase", one("spec.tokenSecretRef.name", json!("Home-Token")), op("spec.tokenSecretRef.name", "not a valid object name"), Admission::Refuses("spec.tokenSecretRef.name")),
        bad("token secret name underscore", one("spec.tokenSecretRef.name", json!("home_token")), op("spec.tokenSecretRef.name", "not a valid DNS name"), Admission::Refuses("spec.tokenSecretRef.name")),
        bad("token key with slash", one("spec.tokenSecretRef.key", json!("a/b")), op("spec.tokenSecretRef.key", "not a valid Secret key"), Admission::Refuses("spec.tokenSecretRef.key")),
        bad("token ref missing", one("spec.tokenSecretRef", Value::Null), Operator::CannotParse, Admission::Refuses("spec.tokenSecretRef")),
        bad("unknown protocol", one("spec.protocol", json!("udp")), Operator::CannotParse, Admission::Refuses("spec.protocol")),
        bad("no rules", one("spec.ingress", json!([])), op("spec.ingress", "has 0 rules"), Admission::Refuses("spec.ingress")),
        bad("257 rules", one("spec.ingress", many_rules(257)), op("spec.ingress", "has 257 rules"), Admission::Refuses("spec.ingress")),
        bad("ingress missing", one("spec.ingress", Value::Null), Operator::CannotParse, Admission::Refuses("spec.ingress")),
        bad("hostname with port", hostname("app.example.com:8443"), op(H, "must not include a port"), Admission::Refuses(H)),
        bad("two wildcards", hostname("*.*.example.com"), op(H, "wildcard"), Admission::Refuses(H)),
        bad("inner wildcard", hostname("app.*.example.com"), op(H, "wildcard"), Admission::Refuses(H)),
        bad("wildcard without dot", hostname("*example.com"), op(H, "wildcard"), Admission::Refuses(H)),
        bad("hostname leading hyphen", hostname("-app.example.com"), op(H, "not a valid DNS name"), Admission::Refuses(H)),
        bad("hostname underscore", hostname("app_1.example.com"), op(H, "not a valid DNS name"), Admission::Refuses(H)),
        bad("hostname empty label", hostname("app..example.com"), op(H, "not a valid DNS name"), Admission::Refuses(H)),
        bad("hostname 64-char label", hostname(&format!("{}.example.com", "a".repeat(64))), op(H, "not a valid DNS name"), Admission::Refuses(H)),
        bad("hostname too long", hostname(&format!("{}.example.com", vec!["a".repeat(60); 5].join("."))), op(H, "longer than 253"), Admission::Refuses(H)),
        bad("path not a regex", one("spec.ingress[0].path", json!("^/api/(v1")), op("spec.ingress[0].path", "not a valid regular expression"), Admission::CannotExpress("CEL cannot compile a regular expression held in a field")),
        bad("path with backreference", one("spec.ingress[0].path", json!(r"(a)\1")), op("spec.ingress[0].path", "not a valid regular expression"), Admission::CannotExpress("CEL cannot compile a regular expression held in a field")),
        bad("path too long", one("spec.ingress[0].path", json!(format!("^/{}", "a".repeat(1100)))), op("spec.ingress[0].path", "at most 1024"), Admission::Refuses("spec.ingress[0].path")),
        bad("service without scheme", service("web.apps.svc:8080"), op(S, "must be scheme://host[:port]"), Admission::Refuses(S)),
        bad("service with path", service("http://web.apps.svc:8080/api"), op(S, "must not have a path"), Admission::Refuses(S)),
        bad("service with trailing slash", service("http://web.apps.svc/"), op(S, "must not have a path"), Admission::Refuses(S)),
        bad("service with query", service("http://web?x=1"), op(S, "must not have a path"), Admission::Refuses(S)),
        bad("service with credentials", service("http://user:pw@web"), op(S, "must not contain credentials"), Admission::Refuses(S)),
        bad("service without host", service("http://"), op(S, "the host is empty"), Admission::Refuses(S)),
        bad("service with port only", service("http://:8080"), op(S, "the host is empty"), Admission::Refuses(S)),
        bad("service port zero", service("http://web:0"), op(S, "from 1 to 65535"), Admission::Refuses(S)),
        bad("service port too big", service("http://web:65536"), op(S, "from 1 to 65535"), Admission::CannotExpress("a five-digit pattern cannot bound the number at 65535 readably; the operator parses it")),
        bad("service named port", service("http://web:http"), op(S, "from 1 to 65535"), Admission::Refuses(S)),
        bad("service uppercase scheme", service("HTTP://web"), op(S, "scheme must be lowercase"), Admission::Refuses(S)),
        bad("service unclosed IPv6", service("http://[::1"), op(S, "closed by ']'"), Admission::Refuses(S)),
        bad("service underscore host", service("http://web_app:80"), op(S, "not a valid DNS name"), Admission::Refuses(S)),
        bad("unix socket", service("unix:/var/run/app.sock"), op(S, "unix sockets"), Admission::Refuses(S)),
        bad("unix tls socket", service("unix+tls:/var/run/app.sock"), op(S, "unix sockets"), Admission::Refuses(S)),
        bad("bastion", service("bastion"), op(S, "defeats the egress sandbox"), Admission::Refuses(S)),
        bad("socks proxy", service("socks-proxy"), op(S, "defeats the egress sandbox"), Admission::Refuses(S)),
        bad("status code too small", service("http_status:99"), op(S, "from 100 to 999"), Admission::Refuses(S)),
        bad("status code too big", service("http_status:1000"), op(S, "from 100 to 999"), Admission::Refuses(S)),
        bad("status code not a number", service("http_status:abc"), op(S, "from 100 to 999"), Admission::Refuses(S)),
        bad("tcp without port", service("tcp://db.data.svc"), op(S, "needs a port"), Admission::Refuses(S)),
        bad("catch-all rule", vec![("spec.ingress[1]", json!({ "service": "http://web:80" }))], op("spec.ingress[1]", "matches every request"), Admission::Refuses("spec.ingress")),
        bad("star catch-all first", vec![("spec.ingress[0]", json!({ "hostname": "*", "service": "http://web:80" }))], op("spec.ingress[0]", "matches every request"), Admission::Refuses("spec.ingress")),
        bad("empty hostname and path", vec![("spec.ingress[1]", json!({ "hostname": "", "path": "", "service": "http://web:80" }))], op("spec.ingress[1]", "set spec.fallback"), Admission::Refuses("spec.ingress")),
        bad("repeated hostname", vec![("spec.ingress[1]", json!({ "hostname": "app.example.com", "service": "http://other:80" }))], op("spec.ingress[1]", "same hostname and path as spec.ingress[0]"), Admission::CannotExpress(cost)),
        bad("repeated hostname in other case", vec![("spec.ingress[1]", json!({ "hostname": "APP.example.com", "service": "http://other:80" }))], op("spec.ingress[1]", "same hostname and path"), Admission::CannotExpress(cost)),
        bad("timeout without unit", one("spec.ingress[0].originRequest", json!({ "connectTimeout": "30" })), op("spec.ingress[0].originRequest.connectTimeout", "is not a duration"), Admission::Refuses("spec.ingress[0].originRequest.connectTimeout")),
        bad("timeout in words", one(OR, json!({ "tlsTimeout": "thirty" })), op("spec.ingress[0].originRequest.tlsTimeout", "is not a duration"), Admission::Refuses("spec.ingress[0].originRequest.tlsTimeout")),
        bad("negative keep-alive", one(OR, json!({ "tcpKeepAlive": "-5s" })), op("spec.ingress[0].originRequest.tcpKeepAlive", "is not a duration"), Admission::Refuses("spec.ingress[0].originRequest.tcpKeepAlive")),
        bad("days are not a Go unit", one(OR, json!({ "keepAliveTimeout": "5d" })), op("spec.ingress[0].originRequest.keepAliveTimeout", "is not a duration"), Admission::Refuses("spec.ingress[0].originRequest.keepAliveTimeout")),
        bad("negative connection count", one(OR, json!({ "keepAliveConnections": -1 })), op("spec.ingress[0].originRequest.keepAliveConnections", "must not be negative"), Admission::Refuses("spec.ingress[0].originRequest.keepAliveConnections")),
        bad("keep-alive count as text", one(OR, json!({ "keepAliveConnections": "ten" })), Operator::CannotParse, Admission::Refuses("spec.ingress[0].originRequest.keepAliveConnections")),
        bad("audTag without teamName", one(OR, json!({ "access": { "required": true, "audTag": ["abc"] } })), op("spec.ingress[0].originRequest.access.teamName", "required when audTag is set"), Admission::Refuses("spec.ingress[0].originRequest.access")),
        bad("Access required without teamName", one(OR, json!({ "access": { "required": true } })), op("spec.ingress[0].originRequest.access.teamName", "is required when access.required is true"), Admission::Refuses("spec.ingress[0].originRequest.access")),
        bad("Access ranges not CIDRs", one("spec.egress", json!({ "cloudflareAccess": ["cloudflare.com"] })), op("spec.egress.cloudflareAccess[0]", "is not a CIDR"), Admission::Refuses("spec.egress.cloudflareAccess")),
        bad("Access required with no range to fetch its keys from", vec![("spec.ingress[0].originRequest", json!({ "access": { "required": true, "teamName": "example", "audTag": ["a"] } })), ("spec.egress", json!({ "cloudflareAccess": [] }))], op("spec.egress.cloudflareAccess", "must list at least one CIDR"), Admission::CannotExpress("an empty list is wrong only together with a rule that requires Access, across two fields; the operator checks the pair")),
        bad("caPool naming nothing", one(OR, json!({ "caPool": {} })), op("spec.ingress[0].originRequest.caPool", "exactly one of configMapKeyRef and secretKeyRef"), Admission::Refuses("spec.ingress[0].originRequest.caPool")),
        bad("caPool naming two sources", one(OR, json!({ "caPool": { "configMapKeyRef": { "name": "ca", "key": "ca.crt" }, "secretKeyRef": { "name": "ca", "key": "ca.crt" } } })), op("spec.ingress[0].originRequest.caPool", "exactly one of"), Admission::Refuses("spec.ingress[0].originRequest.caPool")),
        bad("caPool key with a slash", one(OR, json!({ "caPool": { "configMapKeyRef": { "name": "ca", "key": "certs/ca.crt" } } })), op("spec.ingress[0].originRequest.caPool.configMapKeyRef.key", "not a valid key"), Admission::Refuses("spec.ingress[0].originRequest.caPool.configMapKeyRef.key")),
        bad("caPool with an empty name", one(OR, json!({ "caPool": { "secretKeyRef": { "name": "", "key": "ca.crt" } } })), op("spec.ingress[0].originRequest.caPool.secretKeyRef.name", "must name a ConfigMap or Secret"), Admission::Refuses("spec.ingress[0].originRequest.caPool.secretKeyRef.name")),
        bad("origin server name with underscore", one(OR, json!({ "originServerName": "bad_name.example" })), op("spec.ingress[0].originRequest.originServerName", "not a valid DNS name"), Admission::Refuses("spec.ingress[0].originRequest.originServerName")),
        bad("noTLSVerify as text", one(OR, json!({ "noTLSVerify": "yes" })), Operator::CannotParse, Admission::Refuses("spec.ingress[0].originRequest.noTLSVerify")),
        bad("fallback status out of range", one("spec.fallback", json!("http_status:42")), op("spec.fallback", "from 100 to 999"), Admission::Refuses("spec.fallback")),
        bad("fallback bastion", one("spec.fallback", json!("bastion")), op("spec.fallback", "defeats the egress sandbox"), Admission::Refuses("spec.fallback")),
        bad("edge CIDR prefix too long", one("spec.egress", json!({ "cloudflareEdge": ["198.41.192.0/33"] })), op("spec.egress.cloudflareEdge[0]", "is not a CIDR"), Admission::Refuses("spec.egress.cloudflareEdge")),
        bad("edge entry not a CIDR", one("spec.egress", json!({ "cloudflareEdge": ["cloudflare"] })), op("spec.egress.cloudflareEdge[0]", "is not a CIDR"), Admission::Refuses("spec.egress.cloudflareEdge")),
        bad("no edge at all", one("spec.egress", json!({ "cloudflareEdge": [] })), op("spec.egress.cloudflareEdge", "at least one CIDR"), Admission::Refuses("spec.egress.cloudflareEdge")),
        bad("extra origin without prefix", one("spec.egress", json!({ "extraOrigins": [ { "cidr": "10.0.0.1", "ports": [443] } ] })), op("spec.egress.extraOrigins[0].cidr", "is not a CIDR"), Admission::Refuses("spec.egress.extraOrigins[0].cidr")),
        bad("extra origin without ports", one("spec.egress", json!({ "extraOrigins": [ { "cidr": "10.0.0.0/8", "ports": [] } ] })), op("spec.egress.extraOrigins[0].ports", "at least one port"), Admission::Refuses("spec.egress.extraOrigins[0].ports")),
        bad("extra origin port too big", one("spec.egress", json!({ "extraOrigins": [ { "cidr": "10.0.0.0/8", "ports": [70000] } ] })), op("spec.egress.extraOrigins[0].ports[0]", "must be 1 to 65535"), Admission::Refuses("spec.egress.extraOrigins[0].ports[0]")),
        bad("DNS namespace not a name", one("spec.egress", json!({ "dns": { "namespace": "Kube_System" } })), op("spec.egress.dns.namespace", "not a valid"), Admission::Refuses("spec.egress.dns.namespace")),
        bad("metrics open to everyone", one("spec.metrics", json!({ "allowFrom": {} })), op("spec.metrics.allowFrom", "empty selector"), Admission::Refuses("spec.metrics.allowFrom")),
        bad("runtime class uppercase", one("spec.sandbox", json!({ "runtimeClassName": "GVisor" })), op("spec.sandbox.runtimeClassName", "not a valid object name"), Admission::Refuses("spec.sandbox.runtimeClassName")),
        bad("pod label steals the selector", one("spec.pod", json!({ "labels": { "app.kubernetes.io/instance": "other" } })), op("spec.pod.labels", "set by the operator"), Admission::Refuses("spec.pod.labels")),
        bad("pod annotation under our prefix", one("spec.pod", json!({ "annotations": { "securetunnel.dev/token-hash": "x" } })), op("spec.pod.annotations", "set by the operator"), Admission::Refuses("spec.pod.annotations")),
        bad("unknown log level", one("spec.connector", json!({ "logLevel": "verbose" })), Operator::CannotParse, Admission::Refuses("spec.connector.logLevel")),
        bad("edge IP version as a number", one("spec.connector", json!({ "edgeIPVersion": 6 })), Operator::CannotParse, Admission::Refuses("spec.connector.edgeIPVersion")),
        bad("edge IP version 5", one("spec.connector", json!({ "edgeIPVersion": "5" })), Operator::CannotParse, Admission::Refuses("spec.connector.edgeIPVersion")),
        bad("region eu", one("spec.connector", json!({ "region": "eu" })), Operator::CannotParse, Admission::Refuses("spec.connector.region")),
        bad("grace period in words", one("spec.connector", json!({ "gracePeriod": "soon" })), op("spec.connector.gracePeriod", "is not a duration"), Admission::Refuses("spec.connector.gracePeriod")),
        bad("grace period above 3m", one("spec.connector", json!({ "gracePeriod": "3m1s" })), op("spec.connector.gracePeriod", "longer than cloudflared allows"), Admission::Refuses("spec.connector.gracePeriod")),
        bad("DNS TTL zero", one("spec.dns", json!({ "ttl": 0 })), op("spec.dns.ttl", "must be 1 to 86400"), Admission::Refuses("spec.dns.ttl")),
        bad("DNS record owner not a label value", one("spec.dns", json!({ "recordOwner": "-public" })), op("spec.dns.recordOwner", "not a valid label value"), Admission::Refuses("spec.dns.recordOwner")),
        bad("PodMonitor interval without unit", one("spec.metrics", json!({ "podMonitor": { "interval": "30" } })), op("spec.metrics.podMonitor.interval", "is not a duration"), Admission::Refuses("spec.metrics.podMonitor.interval")),
        bad("PodMonitor label key with spaces", one("spec.metrics", json!({ "podMonitor": { "labels": { "my label": "x" } } })), op("spec.metrics.podMonitor.labels", "not a valid label key"), Admission::CannotExpress("label keys are map keys, which the schema does not pattern-check; the API server checks them on the PodMonitor")),
        bad("pull secret without a name", one("spec.pod", json!({ "imagePullSecrets": [ {} ] })), Operator::CannotParse, Admission::Refuses("spec.pod.imagePullSecrets[0].name")),
        bad("pull secret with an empty name", one("spec.pod", json!({ "imagePullSecrets": [ { "name": "" } ] })), op("spec.pod.imagePullSecrets[0].name", "must name a Secret"), Admission::Refuses("spec.pod.imagePullSecrets[0].name")),
        bad("pull secret name uppercase", one("spec.pod", json!({ "imagePullSecrets": [ { "name": "Mirror" } ] })), op("spec.pod.imagePullSecrets[0].name", "not a valid object name"), Admission::Refuses("spec.pod.imagePullSecrets[0].name")),
        bad("spread with skew 0", one("spec.pod", json!({ "topologySpreadConstraints": [ { "maxSkew": 0, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule" } ] })), op("spec.pod.topologySpreadConstraints[0].maxSkew", "at least 1"), Admission::Refuses("spec.pod.topologySpreadConstraints")),
        bad("spread with an unknown policy", one("spec.pod", json!({ "topologySpreadConstraints": [ { "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "Maybe" } ] })), op("spec.pod.topologySpreadConstraints[0].whenUnsatisfiable", "must be one of"), Admission::Refuses("spec.pod.topologySpreadConstraints")),
        bad("name too long", one("metadata.name", json!("n".repeat(52))), op("metadata.name", "at most 51 characters"), Admission::Refuses("")),
    ]
}

pub fn good_cases() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        ("the base spec", vec![]),
        ("one replica", one("spec.replicas", json!(1))),
        ("twenty replicas", one("spec.replicas", json!(20))),
        ("image by digest", one("spec.image", json!("cloudflare/cloudflared@sha256:0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b0c0d0e0f0a0b"))),
        ("mirror with port and release tag", one("spec.image", json!("registry.local:5000/mirror/cloudflared:2025.11.1"))),
        ("quic", one("spec.protocol", json!("quic"))),
        ("http2", one("spec.protocol", json!("http2"))),
        ("wildcard hostname", hostname("*.example.com")),
        ("hostname and path", vec![("spec.ingress[1]", json!({ "hostname": "app.example.com", "path": "^/api/(v1|v2)/", "service": "http://api:8080" }))]),
        ("path-only rule", vec![("spec.ingress[1]", json!({ "path": "^/static/", "service": "http://static:80" }))]),
        ("star hostname with path", vec![("spec.ingress[1]", json!({ "hostname": "*", "path": "/health", "service": "http_status:200" }))]),
        ("IPv6 origin", service("https://[2001:db8::1]:8443")),
        ("IPv4 origin", service("http://10.0.0.1:8080")),
        ("ssh default port", service("ssh://jump.ops.svc")),
        ("tcp with port", service("tcp://db.data.svc.cluster.local:5432")),
        ("hello world", service("hello_world")),
        ("a fixed status", service("http_status:503")),
        ("every origin setting", one("spec.ingress[0].originRequest", json!({
            "connectTimeout": "10s", "tlsTimeout": "1m30s", "tcpKeepAlive": "500ms", "keepAliveTimeout": "1.5h",
            "keepAliveConnections": 10, "noHappyEyeballs": true, "httpHostHeader": "app.internal",
            "originServerName": "app.internal", "matchSNItoHost": true, "noTLSVerify": false,
            "disableChunkedEncoding": false, "http2Origin": true,
            "access": { "required": true, "teamName": "example", "audTag": ["aud1"] }
        }))),
        ("fallback 503", one("spec.fallback", json!("http_status:503"))),
        ("a private CA from a ConfigMap", one("spec.ingress[0].originRequest", json!({ "caPool": { "configMapKeyRef": { "name": "internal-ca", "key": "ca.crt" } }, "originServerName": "web.internal" }))),
        ("a private CA from a Secret", one("spec.ingress[0].originRequest", json!({ "caPool": { "secretKeyRef": { "name": "internal-ca", "key": "tls.crt" } } }))),
        ("Access with Cloudflare's ranges narrowed", vec![("spec.ingress[0].originRequest", json!({ "access": { "required": true, "teamName": "example", "audTag": ["a"] } })), ("spec.egress", json!({ "cloudflareAccess": ["104.16.0.0/13", "2606:4700::/32"] }))]),
        ("extra origins v4 and v6", one("spec.egress", json!({ "extraOrigins": [ { "cidr": "10.20.0.0/16", "ports": [443, 8443] }, { "cidr": "2606:50c0::/32", "ports": [443] } ] }))),
        ("custom DNS", one("spec.egress", json!({ "dns": { "namespace": "dns-system", "podLabels": { "app.kubernetes.io/name": "coredns" } } }))),
        ("metrics from monitoring", one("spec.metrics", json!({ "allowFrom": { "namespaceLabels": { "kubernetes.io/metadata.name": "monitoring" } } }))),
        ("gVisor with ICMP", one("spec.sandbox", json!({ "runtimeClassName": "gvisor", "allowICMP": true }))),
        ("pod overrides", one("spec.pod", json!({
            "labels": { "team": "edge" }, "annotations": { "example.com/owner": "edge" },
            "nodeSelector": { "kubernetes.io/os": "linux" },
            "tolerations": [ { "key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule" } ],
            "priorityClassName": "system-cluster-critical",
            "resources": { "requests": { "cpu": "100m", "memory": "128Mi" } }
        }))),
        ("every connector setting", one("spec.connector", json!({ "logLevel": "debug", "edgeIPVersion": "auto", "region": "us", "postQuantum": true, "gracePeriod": "2m30s" }))),
        ("the longest grace period", one("spec.connector", json!({ "gracePeriod": "3m" }))),
        ("IPv4 to the edge", one("spec.connector", json!({ "edgeIPVersion": "4" }))),
        ("DNS records with defaults", one("spec.dns", json!({}))),
        ("DNS records for one external-dns", one("spec.dns", json!({ "ttl": 60, "recordOwner": "public" }))),
        ("a PodMonitor", one("spec.metrics", json!({ "allowFrom": { "namespaceLabels": { "kubernetes.io/metadata.name": "monitoring" } }, "podMonitor": { "labels": { "release": "prometheus" }, "interval": "15s" } }))),
        ("pull secrets and a zone spread", one("spec.pod", json!({
            "imagePullSecrets": [ { "name": "corp-mirror" } ],
            "topologySpreadConstraints": [ { "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule" } ],
            "affinity": { "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [ { "weight": 100, "podAffinityTerm": { "topologyKey": "kubernetes.io/hostname", "labelSelector": { "matchLabels": { "app.kubernetes.io/instance": "home" } } } } ] } }
        }))),
        ("256 rules", one("spec.ingress", many_rules(256))),
        ("51-character name", one("metadata.name", json!("n".repeat(51)))),
    ]
}

pub fn apply_edits(edits: &[(&'static str, Value)]) -> Value {
    let mut obj = base();
    for (path, value) in edits {
        set(&mut obj, path, value.clone());
    }
    obj
}
