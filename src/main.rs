use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

use securetunnel_operator::api::SecureTunnel;
use securetunnel_operator::controller::{self, Settings};
use securetunnel_operator::telemetry::{self, LogFormat};
use securetunnel_operator::{offline, Error};

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
    Run {
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Maximum reconciles running at once.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "LOG_FORMAT")]
        log_format: LogFormat,
    },
    /// Print the SecureTunnel CustomResourceDefinition as YAML.
    Crd,
    /// Print the objects a SecureTunnel becomes, without a cluster.
    Render {
        /// A YAML file with one or more SecureTunnels (and optionally their token Secrets); `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// A file holding the tunnel token (`cloudflared tunnel token NAME` output).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A YAML file with the Services the rules name (e.g. `kubectl get svc -A -o yaml`
        /// split into documents), used to derive the NetworkPolicy.
        #[arg(long)]
        services: Option<PathBuf>,
        /// Print the token in the Secret child instead of a placeholder.
        #[arg(long)]
        reveal_token: bool,
    },
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
    })?;
    for note in &rendered.notes {
        eprintln!("note: {note}");
    }
    print!("{}", rendered.yaml);
    Ok(())
}

async fn run(
    namespace: Option<String>,
    concurrency: u16,
    log_format: LogFormat,
) -> Result<(), Error> {
    telemetry::init(log_format);
    let client = kube::Client::try_default().await?;
    let settings = Settings {
        namespace,
        concurrency,
        instance: std::env::var("POD_NAME").ok(),
    };
    controller::run(client, settings).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => serde_yaml::to_string(&SecureTunnel::crd())
            .map(|yaml| print!("{yaml}"))
            .map_err(Error::ConfigYaml),
        Command::Render {
            file,
            token_file,
            services,
            reveal_token,
        } => render(&file, token_file.as_ref(), services.as_ref(), reveal_token),
        Command::Run {
            namespace,
            concurrency,
            log_format,
        } => run(namespace, concurrency, log_format).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
