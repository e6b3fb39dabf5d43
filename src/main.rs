//! The `rabbitmq-watch` binary: parse the command line, set up logging, load and validate the
//! configuration, bind the listener, run until SIGTERM or Ctrl-C. `probe` is the container
//! health check (GET `/-/ready`), `check-config` validates the configuration.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rabbitmq_watch::config::{self, Config, LogFormat};
use rabbitmq_watch::util::error_chain;
use tokio_util::sync::CancellationToken;

/// Prometheus exporter and alerting sidecar for RabbitMQ.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// YAML configuration file. Environment variables RABBITMQ_WATCH__SECTION__KEY override it.
    #[arg(long, short = 'c', global = true, env = "RABBITMQ_WATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overrides `listen` (e.g. 127.0.0.1:9419).
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Management API URL, overrides `rabbitmq.url`.
    #[arg(long, global = true)]
    rabbitmq_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar (the default).
    Run,
    /// Validate the configuration and print it, secrets redacted; exit 2 if it is invalid.
    CheckConfig,
    /// Health check for containers: GET the sidecar's `/-/ready`; exit 0 when it answers 200,
    /// 1 otherwise (not ready, unreachable, timeout, invalid configuration).
    Probe(ProbeArgs),
}

/// Arguments of `probe`.
#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// URL to GET. Default: `/-/ready` at the effective `listen` address of the configuration,
    /// with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
    #[arg(long, env = "RABBITMQ_WATCH_PROBE_URL")]
    url: Option<String>,
    /// Timeout of the whole request (humantime, e.g. `2s`, `500ms`).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

fn load_config(cli: &Cli) -> Result<Config, config::ConfigError> {
    let mut overrides = Vec::new();
    if let Some(listen) = &cli.listen {
        overrides.push(("listen", listen.clone()));
    }
    if let Some(url) = &cli.rabbitmq_url {
        overrides.push(("rabbitmq.url", url.clone()));
    }
    // Variables that are not valid UTF-8 cannot be ours; skip them rather than panic.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    config::load(cli.config.as_deref(), env, &overrides)
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Probe(args)) = &cli.command {
        return probe(&cli, args);
    }
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rabbitmq-watch: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        // Building the client also validates the TLS setup (rabbitmq.ca_file).
        rabbitmq_watch::install_crypto_provider();
        if let Err(e) = rabbitmq_watch::rabbitmq::Client::new(&config.rabbitmq) {
            eprintln!("rabbitmq-watch: {e}");
            return ExitCode::from(2);
        }
        for warning in config.warnings() {
            eprintln!("warning: {warning}");
        }
        println!("{}", config.to_redacted_json());
        return ExitCode::SUCCESS;
    }
    init_tracing(&config);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %config.listen, error = %e, "cannot bind the listen address");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match rabbitmq_watch::run(config, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped on error");
                ExitCode::FAILURE
            }
        }
    })
}

/// `probe`: GET the readiness URL; 0 when it answers 200, else 1 with the reason on stderr.
/// Every failure is 1 (not 2), as Docker's `HEALTHCHECK` reserves other exit codes.
fn probe(cli: &Cli, args: &ProbeArgs) -> ExitCode {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => match load_config(cli) {
            Ok(config) => {
                let mut addr = config.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr.ip() {
                        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                format!("http://{addr}/-/ready")
            }
            Err(e) => {
                eprintln!("rabbitmq-watch probe: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    rabbitmq_watch::install_crypto_provider();
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                // No proxy: the probe talks to the sidecar next to it, whatever HTTP_PROXY says.
                let client = reqwest::Client::builder()
                    .timeout(args.timeout)
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())?;
                let response = client.get(&url).send().await.map_err(|e| error_chain(&e))?;
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                Ok((status, body))
            })
        });
    match outcome {
        Ok((status, _)) if status == reqwest::StatusCode::OK => {
            println!("ready: {url}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "rabbitmq-watch probe: {url}: HTTP {status}: {}",
                body.trim()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("rabbitmq-watch probe: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C (SIGINT).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
