//! DNS records through external-dns, on the real control plane: a tunnel with `spec.dns`
//! says so while external-dns's CRD is missing, gets its DNSEndpoint once the CRD is
//! installed, and external-dns itself (its `crd` source, the `inmemory` provider) reads
//! the records, follows a hostname change and drops them with the tunnel. Where the
//! integration is not enabled, the tunnel says how to enable it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::Client;
use serde_json::Value;

use securetunnel_operator::children::ChildKind;
use securetunnel_operator::names::RECORD_OWNER_LABEL;

use crate::lifecycle::{
    child, delete_and_collect, wait_condition, wait_condition_within, NAMESPACE, TOKEN_SECRET, WAIT,
};
use crate::support::{dynamic_api, free_port, wait_for, Env, Outcome, TUNNEL_ID};

/// The tunnel the DNS checks use.
pub const NAME: &str = "dns";
/// Its `spec.dns.recordOwner`, which the external-dns under test filters on.
const OWNER: &str = "e2e";
const TTL: i64 = 120;
/// The inmemory provider's zone: every hostname below is inside it.
const ZONE: &str = "example.com";
/// How long the operator may take to notice a CRD installed after it started: its watch
/// retries with a backoff of up to 30 s.
pub const CRD_PICKUP: Duration = Duration::from_secs(90);

fn target() -> String {
    format!("{TUNNEL_ID}.cfargotunnel.com")
}

/// Applies the DNS tunnel with these hostnames.
pub fn apply(env: &Env, hostnames: &[&str]) -> Outcome {
    let rules: String = hostnames
        .iter()
        .map(|h| format!("  - hostname: \"{h}\"\n    service: http://web.{NAMESPACE}.svc:8080\n"))
        .collect();
    env.apply(&format!(
        "apiVersion: securetunnel.dev/v1alpha1
kind: SecureTunnel
metadata: {{ name: {NAME}, namespace: {NAMESPACE} }}
spec:
  tokenSecretRef: {{ name: {TOKEN_SECRET} }}
  replicas: 1
  dns: {{ ttl: {TTL}, recordOwner: {OWNER} }}
  ingress:
{rules}"
    ))
    .map(|_| ())
}

/// Where the integration is not enabled (the kustomize install), the tunnel says how to
/// enable it, and its connectors run.
pub async fn not_enabled_is_reported(env: &Env, client: &Client) -> Outcome {
    apply(env, &["www.e2e.example.com"])?;
    wait_condition(client, NAME, "DNSRecords", "False", "IntegrationNotEnabled").await?;
    wait_condition(client, NAME, "Ready", "True", "ConnectorsReady").await?;
    delete_and_collect(client, NAME, &[]).await
}

/// With the integration enabled and no CRD, the tunnel says the CRD is missing, and its
/// connectors run.
pub async fn missing_crd_is_reported(env: &Env, client: &Client, hostnames: &[&str]) -> Outcome {
    if env
        .kubectl(&["get", "crd", &ChildKind::DnsEndpoint.crd_name()])
        .is_ok()
    {
        return Err(format!(
            "{} is already installed: this check needs a cluster without it",
            ChildKind::DnsEndpoint.crd_name()
        ));
    }
    apply(env, hostnames)?;
    wait_condition(client, NAME, "DNSRecords", "False", "CRDNotInstalled").await?;
    wait_condition(client, NAME, "Ready", "True", "ConnectorsReady").await
}

/// The DNSEndpoint's records as (name, type, targets, TTL, proxied), sorted.
fn records(endpoint: &Value) -> Vec<(String, String, Vec<String>, i64, bool)> {
    let mut out: Vec<_> = endpoint["spec"]["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let proxied = e["providerSpecific"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|p| p["name"] == "cloudflare/proxied" && p["value"] == "true")
            });
            (
                e["dnsName"].as_str().unwrap_or_default().to_string(),
                e["recordType"].as_str().unwrap_or_default().to_string(),
                e["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                e["recordTTL"].as_i64().unwrap_or_default(),
                proxied,
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until the tunnel's DNSEndpoint holds one proxied CNAME per hostname, carries the
/// record-owner label, and the tunnel says `DNSRecords=True`.
pub async fn records_match(client: &Client, hostnames: &[&str], within: Duration) -> Outcome {
    let api = dynamic_api(client, NAMESPACE, &ChildKind::DnsEndpoint.api_resource());
    let mut want: Vec<_> = hostnames
        .iter()
        .map(|h| {
            (
                h.to_string(),
                "CNAME".to_string(),
                vec![target()],
                TTL,
                true,
            )
        })
        .collect();
    want.sort();
    wait_for(
        within,
        &format!(
            "DNSEndpoint {NAMESPACE}/{} to list {hostnames:?}",
            child(NAME)
        ),
        || async {
            let obj = api
                .get_opt(&child(NAME))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("not created yet")?;
            let json = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
            let got = records(&json);
            if got != want {
                return Err(format!("records {got:?}"));
            }
            match json["metadata"]["labels"][RECORD_OWNER_LABEL].as_str() {
                Some(OWNER) => Ok(()),
                other => Err(format!("record-owner label {other:?}")),
            }
        },
    )
    .await?;
    wait_condition_within(client, NAME, "DNSRecords", "True", "Applied", within).await
}

/// Installs external-dns's DNSEndpoint CRD and waits until it is Established.
pub async fn install_crd(env: &Env) -> Outcome {
    let crd = env
        .dnsendpoint_crd
        .as_ref()
        .ok_or("E2E_DNSENDPOINT_CRD is not set")?;
    env.kubectl(&["apply", "-f", &crd.display().to_string()])?;
    crate::install::established(env, &ChildKind::DnsEndpoint.crd_name()).await
}

/// external-dns with its CRD source and inmemory provider, reading only the DNSEndpoints
/// labelled with our record owner, syncing every second.
pub struct ExternalDns {
    child: Child,
    log: PathBuf,
}

impl ExternalDns {
    pub fn start(env: &Env) -> Result<ExternalDns, String> {
        let binary = env
            .external_dns
            .as_ref()
            .ok_or("E2E_EXTERNAL_DNS is not set")?;
        let log = env.scratch.join("external-dns.log");
        let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .args([
                "--source=crd",
                "--crd-source-apiversion=externaldns.k8s.io/v1alpha1",
                "--crd-source-kind=DNSEndpoint",
                &format!("--label-filter={RECORD_OWNER_LABEL}={OWNER}"),
                &format!("--namespace={NAMESPACE}"),
                "--provider=inmemory",
                &format!("--inmemory-zone={ZONE}"),
                &format!("--domain-filter={ZONE}"),
                "--policy=sync",
                "--registry=noop",
                "--interval=1s",
                &format!("--metrics-address=127.0.0.1:{}", free_port()),
            ])
            .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("starting external-dns: {e}"))?;
        Ok(ExternalDns { child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until external-dns has logged `verb` ("CREATE", "DELETE") for each name, as a
    /// CNAME to the tunnel.
    pub async fn logged(&mut self, verb: &str, names: &[&str]) -> Outcome {
        let log_path: &Path = &self.log;
        let waited = wait_for(
            WAIT,
            &format!(
                "external-dns to log {verb} for {names:?} ({})",
                log_path.display()
            ),
            || async {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                let missing: Vec<&&str> = names
                    .iter()
                    .filter(|name| {
                        !log.lines().any(|l| {
                            l.contains(&format!("{verb}: {name} {TTL} IN CNAME"))
                                && l.contains(&target())
                        })
                    })
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not yet for {missing:?}"))
                }
            },
        )
        .await;
        match (waited, self.child.try_wait()) {
            (Err(e), Ok(Some(status))) => Err(format!(
                "{e}\nexternal-dns exited ({status}):\n{}",
                self.log()
            )),
            (result, _) => result,
        }
    }
}

impl Drop for ExternalDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// external-dns recorded that it processed the current generation of our DNSEndpoint.
pub async fn observed_by_external_dns(client: &Client) -> Outcome {
    let api = dynamic_api(client, NAMESPACE, &ChildKind::DnsEndpoint.api_resource());
    wait_for(
        WAIT,
        "external-dns to set the DNSEndpoint's status.observedGeneration",
        || async {
            let obj = api.get(&child(NAME)).await.map_err(|e| e.to_string())?;
            let json = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
            let generation = json["metadata"]["generation"].as_i64();
            let observed = json["status"]["observedGeneration"].as_i64();
            if generation.is_some() && generation == observed {
                Ok(())
            } else {
                Err(format!("generation {generation:?}, observed {observed:?}"))
            }
        },
    )
    .await
}

/// Deleting the tunnel lets the garbage collector remove its DNSEndpoint.
pub async fn deleted_with_the_tunnel(client: &Client) -> Outcome {
    delete_and_collect(client, NAME, &[ChildKind::DnsEndpoint]).await
}
