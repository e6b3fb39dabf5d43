//! The `rabbitmq-watch` binary: parse the command line, set up logging, load and validate the
//! configuration, bind the listener, run until SIGTERM or Ctrl-C, reloading the configuration
//! on SIGHUP. `probe` is the container
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
    /// Prometheus exporter-toolkit web configuration file (TLS, basic auth, response
    /// headers), overrides `web.config_file`.
    #[arg(long = "web.config.file", global = true, value_name = "FILE")]
    web_config_file: Option<PathBuf>,
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
    /// 1 otherwise (not ready, unreachable, timeout, invalid configuration). Speaks TLS and
    /// basic auth as the web configuration asks; the password comes from
    /// RABBITMQ_WATCH_PROBE_PASSWORD or --password-file, never from the command line.
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
    /// PEM CA bundle to verify an https server against. Default: trust exactly the certificate
    /// of the web configuration (`tls_server_config`), whatever the host name.
    #[arg(long, env = "RABBITMQ_WATCH_PROBE_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// PEM client certificate, for a server whose `client_auth_type` requires one.
    #[arg(
        long,
        env = "RABBITMQ_WATCH_PROBE_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// PEM private key of `--client-cert`.
    #[arg(
        long,
        env = "RABBITMQ_WATCH_PROBE_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// Basic-auth user name. Its password: RABBITMQ_WATCH_PROBE_PASSWORD or --password-file.
    #[arg(long, env = "RABBITMQ_WATCH_PROBE_USERNAME")]
    username: Option<String>,
    /// File whose first line is the basic-auth password (RABBITMQ_WATCH_PROBE_PASSWORD wins).
    #[arg(long, env = "RABBITMQ_WATCH_PROBE_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
}

fn load_config(cli: &Cli) -> Result<Config, config::ConfigError> {
    let mut overrides = Vec::new();
    if let Some(listen) = &cli.listen {
        overrides.push(("listen", listen.clone()));
    }
    if let Some(url) = &cli.rabbitmq_url {
        overrides.push(("rabbitmq.url", url.clone()));
    }
    if let Some(path) = &cli.web_config_file {
        overrides.push(("web.config_file", path.display().to_string()));
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
    let cli = std::sync::Arc::new(Cli::parse());
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
        if let Some(path) = &config.web.config_file {
            match rabbitmq_watch::web::WebFile::load(path) {
                Ok(web) => {
                    for warning in &web.warnings {
                        eprintln!("warning: {warning}");
                    }
                }
                Err(e) => {
                    eprintln!("rabbitmq-watch: {e}");
                    return ExitCode::from(2);
                }
            }
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
        // SIGHUP and POST /-/reload read the same file, environment and flags again.
        let reload_cli = cli.clone();
        let loader: rabbitmq_watch::reload::Loader =
            std::sync::Arc::new(move || load_config(&reload_cli));
        match rabbitmq_watch::run_reloadable(config, loader, listener, shutdown).await {
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
    match probe_outcome(cli, args) {
        Ok(url) => {
            println!("ready: {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rabbitmq-watch probe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The probed URL when it answered 200; else why not (prefixed by the URL once known).
fn probe_outcome(cli: &Cli, args: &ProbeArgs) -> Result<String, String> {
    use rabbitmq_watch::web::{WebFile, probe};
    // The configuration gives the default URL and the web config (TLS, auth). With --url it is
    // still read for the web config, but a configuration that does not load is then no error.
    let config = match (&args.url, load_config(cli)) {
        (_, Ok(c)) => Some(c),
        (None, Err(e)) => return Err(e.to_string()),
        (Some(_), Err(_)) => None,
    };
    let web_path = cli
        .web_config_file
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.web.config_file.clone()));
    let web = web_path
        .as_deref()
        .map(WebFile::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let url = match (&args.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{addr}/-/ready")
        }
        (None, None) => return Err("no URL and no configuration".to_owned()),
    };
    let password = probe::password(
        std::env::var("RABBITMQ_WATCH_PROBE_PASSWORD").ok(),
        args.password_file.as_deref(),
    )?;
    let credentials = match (&args.username, password) {
        (Some(user), Some(password)) => Some((user.clone(), password)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(
                "--username needs a password: RABBITMQ_WATCH_PROBE_PASSWORD or --password-file"
                    .to_owned(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "a probe password is set but no --username (RABBITMQ_WATCH_PROBE_USERNAME)"
                    .to_owned(),
            );
        }
    };
    rabbitmq_watch::install_crypto_provider();
    // No proxy: the probe talks to the sidecar next to it, whatever HTTP_PROXY says.
    let mut builder = reqwest::Client::builder().timeout(args.timeout).no_proxy();
    if url.starts_with("https:") {
        let tls = probe::ProbeTls {
            ca_file: args.ca_file.as_deref(),
            client_cert: args.client_cert.as_deref().zip(args.client_key.as_deref()),
        };
        let tls = probe::client_config(&tls, web.as_ref()).map_err(|e| format!("{url}: {e}"))?;
        builder = builder.use_preconfigured_tls(tls);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (status, body) = runtime
        .block_on(async {
            let client = builder.build().map_err(|e| error_chain(&e))?;
            let mut request = client.get(&url);
            if let Some((user, password)) = &credentials {
                request = request.basic_auth(user, Some(password));
            }
            let response = request.send().await.map_err(|e| error_chain(&e))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Ok::<_, String>((status, body))
        })
        .map_err(|e| format!("{url}: {e}"))?;
    if status == reqwest::StatusCode::OK {
        Ok(url)
    } else {
        Err(format!("{url}: HTTP {status}: {}", body.trim()))
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
