use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, CustomResourceExt};
use tracing::{error, info};

use securetunnel_operator::api::SecureTunnel;
use securetunnel_operator::children::Integration;
use securetunnel_operator::controller::{self, Settings};
use securetunnel_operator::http::{self, Health};
use securetunnel_operator::leader::{LeaderElection, LeaseSettings};
use securetunnel_operator::metrics::Metrics;
use securetunnel_operator::names::USER_AGENT;
use securetunnel_operator::reconcile::remote;
use securetunnel_operator::telemetry::{self, LogFormat};
use securetunnel_operator::{offline, rbac, Error};

/// jemalloc: less CPU and a lower peak than the C library's allocator at scale (see
/// BENCHMARKS.md); the container image is built against musl, whose allocator is slower.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs hardened, egress-sandboxed Cloudflare Tunnel connectors from SecureTunnel objects.
#[derive(Parser)]
#[command(name = "securetunnel-operator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster from KUBECONFIG or the pod's service account.
    Run(RunArgs),
    /// Print the SecureTunnel CustomResourceDefinition as YAML.
    Crd,
    /// Print the RBAC rules the operator needs (the chart and kustomize are built from them).
    Rbac,
    /// Print the objects a SecureTunnel becomes, without a cluster.
    Render {
        /// A YAML file with one or more SecureTunnels (and optionally their token Secrets
        /// and the Services their rules name); `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// A file holding the tunnel token (`cloudflared tunnel token NAME` output).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A YAML file with the Services the rules name, used to derive the NetworkPolicy.
        #[arg(long)]
        services: Option<PathBuf>,
        /// Print the token in the Secret child instead of a placeholder.
        #[arg(long)]
        reveal_token: bool,
        /// The namespace the operator runs in: the connectors' sandbox lets its pods read
        /// their /config on the metrics port.
        #[arg(long, default_value = offline::DEFAULT_OPERATOR_NAMESPACE)]
        operator_namespace: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only these namespaces (repeat, or comma-separate); default: all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Maximum reconciles running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Log format on stderr (levels come from RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
    log_format: LogFormat,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_address: SocketAddr,
    /// Hold a Lease so that only one replica reconciles at a time.
    #[arg(long)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "securetunnel-operator")]
    lease_name: String,
    /// This replica's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Also watch and write the kinds of these integrations (repeat, or comma-separate):
    /// dns-endpoints (external-dns's DNSEndpoint, for spec.dns), pod-monitors (the
    /// Prometheus Operator's PodMonitor, for spec.metrics.podMonitor). Each needs its RBAC.
    #[arg(
        long = "integration",
        value_enum,
        value_delimiter = ',',
        env = "INTEGRATIONS"
    )]
    integrations: Vec<Integration>,
    /// How often, in seconds, each Ready tunnel's connector is asked which configuration
    /// it runs (a remotely-managed tunnel is reported Degraded); 0: never.
    #[arg(long, default_value_t = remote::CHECK_INTERVAL.as_secs())]
    config_check_interval_seconds: u64,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    let result = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    };
    result.map_err(|source| Error::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

fn read_text(path: &PathBuf) -> Result<String, Error> {
    String::from_utf8(read(path)?).map_err(|_| Error::Input {
        path: path.display().to_string(),
        message: "is not UTF-8 text".to_string(),
    })
}

fn render(
    file: &PathBuf,
    token_file: Option<&PathBuf>,
    services: Option<&PathBuf>,
    reveal_token: bool,
    operator_namespace: &str,
) -> Result<(), Error> {
    let input = read_text(file)?;
    let source = file.display().to_string();
    let services = match services {
        Some(path) => Some((path.display().to_string(), read_text(path)?)),
        None => None,
    };
    let token = token_file.map(read).transpose()?;
    let rendered = offline::render_file(offline::RenderInput {
        source: &source,
        input: &input,
        services: services
            .as_ref()
            .map(|(name, text)| (name.as_str(), text.as_str())),
        token: token.as_deref(),
        reveal_token,
        operator_namespace,
    })?;
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    print!("{}", rendered.yaml);
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The client of the cluster from KUBECONFIG or the pod's service account, naming itself
/// in every request ([`USER_AGENT`]).
async fn client() -> Result<kube::Client, Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        hyper::header::USER_AGENT,
        hyper::header::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(kube::Client::try_from(config)?)
}

async fn run(args: RunArgs) -> Result<(), Error> {
    telemetry::init(args.log_format);
    let client = client().await?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let server = tokio::spawn(http::serve(
        args.http_address,
        metrics.clone(),
        health.clone(),
    ));

    // Starting before the CRD is established would only fill the log with watch errors.
    let crd_name = SecureTunnel::crd_name();
    info!(crd = crd_name, "waiting for the CRD to be established");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    tokio::select! {
        result = await_condition(crds, crd_name, conditions::is_crd_established()) => {
            result.map_err(|e| Error::Input { path: crd_name.to_string(), message: e.to_string() })?;
        }
        () = shutdown_signal() => return Ok(()),
    }
    health.set_ready(true);

    let settings = Settings {
        namespaces: args.namespaces,
        concurrency: args.concurrency,
        instance: args.identity.clone(),
        integrations: args.integrations,
        operator_namespace: args.lease_namespace.clone(),
        config_check_interval: (args.config_check_interval_seconds > 0)
            .then(|| std::time::Duration::from_secs(args.config_check_interval_seconds)),
    };
    let controllers = || controller::run(client.clone(), settings.clone(), metrics.clone());
    let result = if args.leader_elect {
        let identity = args
            .identity
            .unwrap_or_else(|| format!("securetunnel-operator-{}", std::process::id()));
        let election = LeaderElection::new(
            client.clone(),
            LeaseSettings::new(args.lease_namespace, args.lease_name, identity),
        );
        // A standby stops on SIGTERM at once; a leader's controller drains first.
        election.run(controllers, shutdown_signal()).await
    } else {
        controllers().await;
        Ok(())
    };
    server.abort();
    result
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => serde_norway::to_string(&SecureTunnel::crd())
            .map(|yaml| print!("{yaml}"))
            .map_err(Error::ConfigYaml),
        Command::Rbac => serde_norway::to_string(&rbac::rules_document())
            .map(|yaml| print!("{yaml}"))
            .map_err(Error::ConfigYaml),
        Command::Render {
            file,
            token_file,
            services,
            reveal_token,
            operator_namespace,
        } => render(
            &file,
            token_file.as_ref(),
            services.as_ref(),
            reveal_token,
            &operator_namespace,
        ),
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "stopping");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
