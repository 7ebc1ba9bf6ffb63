//! The end-to-end suite, against a real control plane. `e2e/run.sh` starts one
//! (e2e/cluster.sh) or uses KUBECONFIG's cluster, and runs this once per install method:
//!
//!   cargo test --test e2e -- helm        # install by Helm, then every check
//!   cargo test --test e2e -- kustomize   # install by kustomize on a fresh control plane
//!   cargo test --test e2e -- connector   # the real cloudflared on what `render` produces,
//!                                        # and cyclonus on its NetworkPolicies
//!   cargo test --test e2e -- node-helm   # on the real node: the operator from its image,
//!                                        # connectors serving a visitor's requests
//!   cargo test --test e2e -- node-kustomize  # the same, installed by kustomize
//!
//! Each check prints `ok`, `FAIL` (with the object and what differed) or `SKIP` (with the
//! reason; under CI a skip counts as a failure), and the run ends with
//! `e2e: N passed, N failed, N skipped`.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod connector;
mod dns;
mod install;
mod lifecycle;
mod monitoring;
mod node;
mod operations;
mod remote;
mod sandbox;
mod support;

use std::process::ExitCode;
use std::time::Duration;

use install::Method;
use support::{Env, Operator, Outcome};

struct Suite {
    passed: u32,
    failed: u32,
    skipped: u32,
    ci: bool,
}

/// A check whose failure leaves nothing for the later checks to test.
struct Stop;

impl Suite {
    fn record(&mut self, name: &str, outcome: Outcome) -> bool {
        match outcome {
            Ok(()) => {
                println!("ok   {name}");
                self.passed += 1;
                true
            }
            Err(why) => {
                println!("FAIL {name}\n     {}", why.replace('\n', "\n     "));
                self.failed += 1;
                false
            }
        }
    }

    fn require(&mut self, name: &str, outcome: Outcome) -> Result<(), Stop> {
        if self.record(name, outcome) {
            Ok(())
        } else {
            println!("     (the checks after this one depend on it: stopping)");
            Err(Stop)
        }
    }

    fn skip(&mut self, name: &str, why: &str) {
        if self.ci {
            println!("FAIL {name}\n     skipped under CI, which must run everything: {why}");
            self.failed += 1;
        } else {
            println!("SKIP {name} ({why})");
            self.skipped += 1;
        }
    }
}

/// The User-Agent check: from the audit log, which only a control plane of our own writes.
fn names_itself(suite: &mut Suite, env: &Env) {
    const NAME: &str = "audit: every request of the operator names it in its User-Agent";
    if let Some(log) = &env.audit_log {
        suite.record(NAME, operations::names_itself(log, OPERATOR_USER));
    } else {
        suite.skip(
            NAME,
            "no audit log: the API server of a KUBECONFIG cluster is not ours to configure",
        );
    }
}

/// The admin client, recorded as a check the later ones depend on.
async fn admin_client(env: &Env, suite: &mut Suite) -> Result<kube::Client, Stop> {
    let client = env.client().await;
    suite.require(
        "the admin client connects",
        client.as_ref().map(|_| ()).map_err(Clone::clone),
    )?;
    client.map_err(|_| Stop)
}

const OPERATOR_USER: &str = "system:serviceaccount:securetunnel-system:securetunnel-operator";

async fn cluster_checks(env: &Env, suite: &mut Suite, method: Method) -> Result<(), Stop> {
    let m = format!("{method:?}").to_lowercase();
    suite.require(
        &format!("install ({m}): applied"),
        install::install(env, method),
    )?;
    suite.require(
        &format!("install ({m}): the CRD is accepted and Established"),
        install::crd_established(env).await,
    )?;
    suite.require(
        &format!("install ({m}): every RBAC object exists with the rendered rules"),
        install::rbac_objects_exist(env, method),
    )?;
    let sa_kubeconfig = install::service_account_kubeconfig(env, &env.scratch);
    suite.require(
        &format!("install ({m}): a token of the installed ServiceAccount authenticates"),
        sa_kubeconfig.as_ref().map(|_| ()).map_err(Clone::clone),
    )?;
    let sa_kubeconfig = sa_kubeconfig.map_err(|_| Stop)?;
    let deployment_args = install::deployment_args(env);
    suite.require(
        &format!("install ({m}): the operator Deployment's flags are readable"),
        deployment_args.as_ref().map(|_| ()).map_err(Clone::clone),
    )?;
    let mut args = deployment_args.map_err(|_| Stop)?;
    if env.cluster_sh.is_none() {
        // On a cluster with real kubelets the installed Deployment would run a second
        // operator beside the local process under test.
        suite.require(
            &format!("install ({m}): the installed operator Deployment scaled to 0"),
            env.kubectl(&[
                "-n",
                install::NAMESPACE,
                "scale",
                "deployment",
                install::RELEASE,
                "--replicas=0",
            ])
            .map(|_| ()),
        )?;
    }
    args.push(format!("--lease-namespace={}", install::NAMESPACE));
    // Ask connectors often, so that the remote-management check needs no 10 minutes.
    args.push("--config-check-interval-seconds=2".to_string());
    let scratch = env.scratch.clone();
    let start = |name: &str| Operator::start(&scratch, name, &sa_kubeconfig, &args);

    let client = admin_client(env, suite).await?;
    suite.require(
        "test namespace, token Secret and web Service",
        lifecycle::setup(env),
    )?;

    let mut op = start("operator-0").map_err(|e| {
        suite.record("the operator starts", Err(e));
        Stop
    })?;
    suite.require(
        "the operator, with the ServiceAccount's token, becomes ready",
        support::wait_for(Duration::from_secs(60), "/readyz", || async {
            op.get("/readyz").await.map(|_| ())
        })
        .await,
    )?;

    if method == Method::Helm {
        suite.record(
            "admission: every bad spec of the table is refused at its field path",
            admission::bad_specs_refused(&client, lifecycle::NAMESPACE).await,
        );
        suite.record(
            "admission: every good spec of the table is accepted",
            admission::good_specs_accepted(&client, lifecycle::NAMESPACE).await,
        );
        suite.record(
            "admission: fields the spec does not have (args, env, securityContext, another metrics port) are refused",
            admission::fields_outside_the_schema_refused(env, lifecycle::NAMESPACE),
        );
    }

    suite.require(
        "lifecycle: apply a tunnel",
        lifecycle::apply_tunnel(env, "e2e", 2, &["e2e.example.com"]),
    )?;
    suite.require(
        "lifecycle: every child exists with a controller ownerReference",
        lifecycle::every_child_owned(&client, "e2e", 2, lifecycle::WAIT).await,
    )?;
    suite.require(
        "lifecycle: connector pods become Ready (kwok), then the tunnel is Ready=True",
        lifecycle::connectors_ready(&client, "e2e", 2, lifecycle::WAIT).await,
    )?;
    suite.record(
        "lifecycle: the changes of Ready are Events (events.k8s.io/v1) about the tunnel, from the operator",
        lifecycle::events_recorded(&client, "e2e").await,
    );
    suite.record(
        "lifecycle: each child was written once, by its create (the rendered objects hold every field the API server defaults)",
        lifecycle::every_child_written_once(&client, "e2e", 2).await,
    );

    if method == Method::Helm {
        suite.record(
            "lifecycle: rotating the token rolls the pods (a new ReplicaSet)",
            lifecycle::token_rotation_rolls_pods(env, &client, "e2e").await,
        );
        suite.record(
            "lifecycle: a hand-deleted child comes back",
            lifecycle::deleted_child_returns(&client, "e2e").await,
        );
        suite.record(
            "lifecycle: hand-edited children are reverted",
            lifecycle::edited_child_reverted(env, &client, "e2e").await,
        );
        suite.record(
            "lifecycle: a foreign object with a child's name gives NameConflict and is left untouched",
            lifecycle::name_conflict(env, &client).await,
        );
        dns_checks(env, suite, &client).await;
        suite.record(
            "remote management: a connector on Cloudflare's configuration (a /config stand-in) makes the tunnel Degraded=RemotelyManaged, and back",
            remote::reported(env, &client).await,
        );
        suite.record(
            "monitoring: once the PodMonitor CRD is installed, the PodMonitor passes its schema and selects the metrics port",
            monitoring::pod_monitor_applied(env, &client).await,
        );
        suite.record(
            "monitoring: without spec.metrics.allowFrom the tunnel says MetricsNotAllowed; the PodMonitor goes with the tunnel",
            monitoring::unscrapable_is_reported(env, &client).await,
        );

        let (restarted, outcome) =
            operations::restart_writes_nothing(env, op, || start("operator-1"), 1)
                .await
                .map_err(|e| {
                    suite.record("steady state: a restart writes nothing", Err(e));
                    Stop
                })?;
        op = restarted;
        suite.record(
            "steady state: a restart over converged tunnels writes nothing (apiserver_request_total)",
            outcome,
        );

        if env.cluster_sh.is_some() {
            let names: Vec<String> = (0..3).map(|i| format!("during-apiserver-{i}")).collect();
            suite.record(
                "faults: kube-apiserver stopped for 15 s mid-reconcile; the same process converges",
                operations::outage(
                    env,
                    &client,
                    &mut op,
                    "kube-apiserver",
                    Duration::from_secs(15),
                    &names,
                )
                .await,
            );
            let names: Vec<String> = (0..3).map(|i| format!("during-etcd-{i}")).collect();
            suite.record(
                "faults: etcd stopped for 15 s mid-reconcile; the same process converges",
                operations::outage(
                    env,
                    &client,
                    &mut op,
                    "etcd",
                    Duration::from_secs(15),
                    &names,
                )
                .await,
            );
        } else {
            let why = "the cluster is KUBECONFIG's, not the local control plane: its API server and etcd cannot be stopped from here";
            suite.skip("faults: kube-apiserver outage", why);
            suite.skip("faults: etcd outage", why);
        }

        let log0 = op.log.clone();
        op.stop();
        suite.record(
            "leader election: the standby takes over within the lease duration when the leader is killed",
            operations::leader_failover(env, &client, start).await,
        );
        let op = start("operator-2").map_err(|e| {
            suite.record("the operator restarts", Err(e));
            Stop
        })?;
        suite.record(
            "lifecycle: the user's token Secret is never modified",
            lifecycle::token_secret_untouched(env, &client, OPERATOR_USER).await,
        );
        suite.record(
            "lifecycle: deleting the tunnel lets the garbage collector remove every child",
            lifecycle::garbage_collected(&client, "e2e").await,
        );
        let logs: Vec<std::path::PathBuf> = std::fs::read_dir(&env.scratch)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        let _ = log0;
        let refs: Vec<&std::path::Path> = logs.iter().map(|p| p.as_path()).collect();
        suite.record(
            "RBAC: no request of the operator was refused (audit log and operator logs)",
            operations::nothing_forbidden(env, OPERATOR_USER, &refs),
        );
        names_itself(suite, env);
        op.stop();
    } else {
        suite.record(
            "dns: without the dns-endpoints integration, a tunnel with spec.dns says how to enable it and runs",
            dns::not_enabled_is_reported(env, &client).await,
        );
        suite.record(
            "lifecycle: a credentials file in the token Secret runs as the token it stands for",
            lifecycle::credentials_file_runs(env, &client).await,
        );
        suite.record(
            "lifecycle: deleting the tunnel lets the garbage collector remove every child",
            lifecycle::garbage_collected(&client, "e2e").await,
        );
        let log = op.log.clone();
        op.stop();
        suite.record(
            "RBAC: no request of the operator was refused (audit log and operator logs)",
            operations::nothing_forbidden(env, OPERATOR_USER, &[log.as_path()]),
        );
        names_itself(suite, env);
    }
    Ok(())
}

/// On the real node: the operator from its own image, installed by `method`; a tunnel whose
/// connectors carry a visitor's requests. With Helm, also token rotation, a rule edit under
/// load, hand edits and deletes, a name conflict, a restart of the operator's pods, API server
/// and etcd outages, an upgrade that enables the integrations (DNS records through
/// external-dns, PodMonitors), a remotely-managed tunnel, and the README's first steps; with
/// kustomize, the integration not enabled and a credentials file. Every check of the kwok
/// phases that means something with the operator in a pod runs here with it in its pods.
async fn node_checks(env: &Env, suite: &mut Suite, method: Method) -> Result<(), Stop> {
    let m = format!("{method:?}").to_lowercase();
    let client = admin_client(env, suite).await?;
    suite.require(
        "node: the real node is Ready (the control plane's kubelet, containerd 2) with the suite's images",
        node::node_ready(env, &client).await,
    )?;
    let images = node::images(env).map_err(|e| {
        suite.record("node: e2e/cluster.sh images", Err(e));
        Stop
    })?;
    let cloudflared = images.get("cloudflared").cloned().unwrap_or_default();
    let origin = images.get("origin").cloned().unwrap_or_default();
    suite.require(
        &format!("install ({m}, the operator image): installs with only the image changed"),
        node::install_from_image(env, method, &images),
    )?;
    suite.require(
        &format!("install ({m}, the operator image): the CRD is accepted and Established"),
        install::crd_established(env).await,
    )?;
    suite.require(
        &format!("install ({m}, the operator image): two operator pods run on the real node, Ready through their probes"),
        node::operator_pods_ready(&client).await,
    )?;
    let failover =
        &format!("leader election ({m}): the leader pod deleted, the other pod takes the Lease");
    match node::leader_failover(&client).await {
        Ok(took) => {
            println!(
                "     the other pod holds the Lease {:.1} s after the leader pod's delete",
                took.as_secs_f64()
            );
            suite.record(failover, Ok(()));
        }
        Err(e) => {
            suite.record(failover, Err(e));
        }
    }
    suite.require(
        &format!("install ({m}, the operator image): the deleted pod's replacement is Ready"),
        node::operator_pods_ready(&client).await,
    )?;
    suite.require(
        "node: an origin Deployment and Service, and the token Secret",
        node::setup(env, &origin),
    )?;
    let hosts = ["app.e2e.example.com"];
    suite.require(
        "node: apply a tunnel of 2 connectors on the suite's cloudflared image",
        node::apply_tunnel(env, "e2e", &cloudflared, &hosts),
    )?;
    suite.require(
        "node: the connectors run the rendered pod spec on the real node, Ready through /ready, and the tunnel is Ready=True",
        node::connectors_run(&client, "e2e").await,
    )?;
    suite.record(
        "node: each connector process runs as 65532:65532 and reads a 0440 token of group 65532",
        node::connectors_run_as_65532(),
    );
    suite.require(
        "node: a visitor's request through the edge reaches an origin pod and comes back; an unrouted hostname gets the fallback's 404",
        node::request_served(&client, hosts[0]).await,
    )?;
    suite.record(
        "lifecycle (pods): the changes of Ready are Events (events.k8s.io/v1) about the tunnel, from the operator",
        lifecycle::events_recorded(&client, "e2e").await,
    );
    suite.record(
        "lifecycle (pods): each child was written once, by its create",
        lifecycle::every_child_written_once(&client, "e2e", 2).await,
    );
    if method == Method::Helm {
        suite.record(
            "node: rotating the token rolls the connectors, and the new ones connect with the new token",
            node::token_rotation(env, &client, "e2e", hosts[0]).await,
        );
        let edited = ["app.e2e.example.com", "shop.e2e.example.com"];
        suite.record(
            "node: editing the rules rolls the connectors while a visitor's requests are all answered",
            match node::rule_edit_rolls(env, &client, "e2e", &cloudflared, &edited).await {
                Ok(load) => {
                    println!(
                        "     {} requests through the rollout, {} failed",
                        load.sent, load.failed
                    );
                    if load.failed == 0 {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} of {} requests failed: {:?}",
                            load.failed, load.sent, load.failures
                        ))
                    }
                }
                Err(e) => Err(e),
            },
        );
        suite.record(
            "lifecycle (pods): a hand-deleted child comes back",
            lifecycle::deleted_child_returns(&client, "e2e").await,
        );
        suite.record(
            "lifecycle (pods): hand-edited children are reverted",
            lifecycle::edited_child_reverted(env, &client, "e2e").await,
        );
        suite.record(
            "lifecycle (pods): a foreign object with a child's name gives NameConflict and is left untouched",
            lifecycle::name_conflict(env, &client).await,
        );
        suite.record(
            "steady state (pods): a rollout restart of the operator over a converged tunnel writes nothing (audit log)",
            node::pods_restart_write_nothing(env, &client, OPERATOR_USER, &["e2e"]).await,
        );
        for component in ["kube-apiserver", "etcd"] {
            suite.record(
                &format!("faults (pods): {component} stopped for 15 s after a tunnel is applied; the operator's pods converge it, keep the other whole, and do not restart"),
                node::outage(
                    env,
                    &client,
                    component,
                    "e2e",
                    &format!("during-{component}"),
                    &cloudflared,
                    Duration::from_secs(15),
                )
                .await,
            );
        }
        // The integrations, and the connectors asked every 2 s which configuration they run
        // (so that the remote-management check needs no 10 minutes).
        let upgrade = [install::HELM_VALUES, "configCheckIntervalSeconds=2"];
        suite.require(
            "upgrade (helm): enabling the integrations rolls the operator's pods; the new ones are Ready and one leads",
            node::helm_upgrade(env, &client, &upgrade).await,
        )?;
        dns_checks(env, suite, &client).await;
        suite.record(
            "remote management (pods): the edge pushes a dashboard's configuration to the real connector, which routes by it; the tunnel is Degraded=RemotelyManaged, and back once the connector runs its local file",
            remote::pushed_by_the_edge(env, &client, &cloudflared).await,
        );
        suite.record(
            "monitoring (pods): once the PodMonitor CRD is installed, the PodMonitor passes its schema and selects the metrics port",
            monitoring::pod_monitor_applied(env, &client).await,
        );
        suite.record(
            "monitoring (pods): without spec.metrics.allowFrom the tunnel says MetricsNotAllowed; the PodMonitor goes with the tunnel",
            monitoring::unscrapable_is_reported(env, &client).await,
        );
        suite.record(
            "lifecycle (pods): the user's token Secret is never modified",
            lifecycle::token_secret_untouched(env, &client, OPERATOR_USER).await,
        );
    } else {
        suite.record(
            "dns (pods): without the dns-endpoints integration, a tunnel with spec.dns says how to enable it and runs",
            dns::not_enabled_is_reported(env, &client).await,
        );
        suite.record(
            "lifecycle (pods): a credentials file in the token Secret runs as the token it stands for",
            lifecycle::credentials_file_runs(env, &client).await,
        );
    }
    suite.record(
        "node: deleting the tunnel removes its connectors (garbage collection)",
        lifecycle::garbage_collected(&client, "e2e").await,
    );
    if method == Method::Helm {
        suite.record(
            "README: the \"Try it on a cluster\" commands, as written, give a Ready tunnel",
            node::readme_walkthrough(env).await,
        );
    }
    let logs = node::operator_logs(env, &client).await.unwrap_or_else(|e| {
        println!("     note: the operator pods' logs could not all be read: {e}");
        Vec::new()
    });
    let refs: Vec<&std::path::Path> = logs.iter().map(|p| p.as_path()).collect();
    suite.record(
        &format!("RBAC ({m}): no request of the operator in its pods was refused (audit log and the pods' logs)"),
        operations::nothing_forbidden(env, OPERATOR_USER, &refs),
    );
    names_itself(suite, env);
    Ok(())
}

/// The DNS records of a tunnel, through external-dns (the chart is installed with the
/// dns-endpoints integration, and the cluster starts without external-dns's CRD).
async fn dns_checks(env: &Env, suite: &mut Suite, client: &kube::Client) {
    let first = ["www.e2e.example.com", "*.e2e.example.com"];
    let second = ["shop.e2e.example.com", "*.e2e.example.com"];
    if !suite.record(
        "dns: without external-dns's CRD, a tunnel with spec.dns says CRDNotInstalled and runs",
        dns::missing_crd_is_reported(env, client, &first).await,
    ) {
        return;
    }
    if !suite.record(
        "dns: once the CRD is installed, the DNSEndpoint lists one proxied CNAME per hostname",
        async {
            dns::install_crd(env).await?;
            dns::records_match(client, &first, dns::CRD_PICKUP).await
        }
        .await,
    ) {
        return;
    }
    let mut external_dns = match dns::ExternalDns::start(env) {
        Ok(e) => e,
        Err(e) => {
            suite.record("dns: external-dns starts", Err(e));
            return;
        }
    };
    suite.record(
        "dns: external-dns (crd source, inmemory provider, label filter) reads the records",
        async {
            external_dns.logged("CREATE", &first).await?;
            dns::observed_by_external_dns(client).await
        }
        .await,
    );
    suite.record(
        "dns: the records follow a hostname change",
        async {
            dns::apply(env, &second)?;
            dns::records_match(client, &second, lifecycle::WAIT).await?;
            external_dns
                .logged("CREATE", &["shop.e2e.example.com"])
                .await?;
            external_dns
                .logged("DELETE", &["www.e2e.example.com"])
                .await
        }
        .await,
    );
    suite.record(
        "dns: deleting the tunnel removes its DNSEndpoint, and external-dns its records",
        async {
            dns::deleted_with_the_tunnel(client).await?;
            external_dns.logged("DELETE", &second).await
        }
        .await,
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let phase = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let env = Env::from_environment();
    let mut suite = Suite {
        passed: 0,
        failed: 0,
        skipped: 0,
        ci: env.ci,
    };
    match (phase.as_str(), Method::parse(&phase)) {
        ("connector", _) => {
            connector::checks(&env, &mut suite);
            let name = "sandbox: cyclonus decides every connection from and to each sample's and fixture's connector as expected (tests/fixtures/sandbox/expected.yaml)";
            match &env.cyclonus {
                Some(cyclonus) => {
                    suite.record(name, sandbox::matrix(&env, cyclonus));
                }
                None => suite.skip(name, "E2E_CYCLONUS is not set (e2e/run.sh builds it)"),
            }
        }
        (node, _) if node.starts_with("node-") => {
            let Some(method) = Method::parse(&node["node-".len()..]) else {
                eprintln!("usage: cargo test --test e2e -- node-helm|node-kustomize");
                return ExitCode::FAILURE;
            };
            if env.kubeconfig.as_os_str().is_empty() || env.cluster_sh.is_none() {
                eprintln!(
                    "the node phases need the local cluster with its real node: run e2e/run.sh"
                );
                return ExitCode::FAILURE;
            }
            let _ = node_checks(&env, &mut suite, method).await;
            if suite.failed > 0 {
                // What the pods said, for the failure's reader: the cluster goes with the phase.
                node::keep_logs(&env).await;
            }
        }
        (_, Some(method)) => {
            if env.kubeconfig.as_os_str().is_empty() {
                eprintln!(
                    "E2E_KUBECONFIG is not set: run e2e/run.sh, which sets up the control plane"
                );
                return ExitCode::FAILURE;
            }
            let _ = cluster_checks(&env, &mut suite, method).await;
        }
        _ => {
            eprintln!(
                "usage: cargo test --test e2e -- helm|kustomize|connector|node-helm|node-kustomize"
            );
            return ExitCode::FAILURE;
        }
    }
    println!("e2e phase {phase} done");
    println!(
        "e2e: {} passed, {} failed, {} skipped",
        suite.passed, suite.failed, suite.skipped
    );
    if suite.failed == 0 && suite.passed > 0 {
        let _ = std::fs::remove_dir_all(&env.scratch);
        ExitCode::SUCCESS
    } else {
        eprintln!("logs kept in {}", env.scratch.display());
        ExitCode::FAILURE
    }
}
