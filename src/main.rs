//! The `ltigate` binary: parse the command line, set up logging, run.
//!
//! Exit codes: 0 on a clean stop, 64 on a bad config or usage, 1 on any
//! other start-up failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

const EX_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "ltigate",
    version,
    about = "An LTI 1.3 gateway in front of Open edX"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The config file (for `serve`, the default command).
    #[arg(
        long,
        global = true,
        env = "LTIGATE_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve,
    /// Validate the config and print what a platform must be given.
    Check,
    /// Write a new RSA-2048 tool key pair and print its [[keys]] entry.
    Keygen {
        /// Directory for the key files.
        #[arg(long)]
        out: PathBuf,
        /// Key id.
        #[arg(long, default_value = "ltigate-1")]
        kid: String,
    },
    /// Probe the running gateway's /healthz (for container health checks).
    Health,
    /// Inspect and retry grade deliveries (asks the running gateway).
    #[command(subcommand)]
    Grades(GradesCommand),
}

#[derive(Subcommand)]
enum GradesCommand {
    /// List pending and failed deliveries.
    List {
        /// Only the failed ones.
        #[arg(long)]
        failed: bool,
    },
    /// Re-queue a delivery, or every failed one.
    Retry {
        /// The delivery id (from `grades list`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<String>,
        /// Re-queue every failed delivery.
        #[arg(long)]
        all_failed: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The guard flushes buffered log lines when main returns.
    let _log_guard = ltigate::logging::init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen { out, kid } => match ltigate::keygen::run(&out, &kid) {
            Ok(done) => {
                print!("{}", done.instructions);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ltigate keygen: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check => match ltigate::Config::load(&cli.config) {
            Ok(config) => {
                print!("{}", ltigate::check::report(&config));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ltigate: invalid configuration: {e}");
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Serve => serve(&cli.config),
        Command::Grades(cmd) => grades(&cli.config, cmd),
        Command::Health => health(&cli.config),
    }
}

/// Exits 0 when the gateway configured in `path` answers `/healthz` with 200.
fn health(path: &std::path::Path) -> ExitCode {
    use std::io::{Read as _, Write as _};
    let config = match ltigate::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ltigate: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    if config.server.tls.is_some() {
        // A TLS listener: a completed TCP connect is the best a probe without
        // the certificate's trust can check.
        return match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
        {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ltigate health: {addr}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("ltigate health: {addr}/healthz did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ltigate health: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn grades(path: &std::path::Path, cmd: GradesCommand) -> ExitCode {
    let config = match ltigate::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ltigate: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ltigate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cmd {
            GradesCommand::List { failed } => ltigate::grades::cli::list(&config, failed).await,
            GradesCommand::Retry { id, .. } => {
                ltigate::grades::cli::retry(&config, id.as_deref()).await
            }
        }
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ltigate grades: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match ltigate::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ltigate: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // The blocking pool runs the embedded store's transactions. A few threads
    // are plenty (its writes are serialised anyway), and fewer threads keep
    // the allocator's per-thread arenas, and so memory, small.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ltigate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ltigate: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: ltigate::Config) -> anyhow::Result<()> {
    let public = config.server.public_origin();
    let app = ltigate::AppState::build(config, Arc::new(ltigate::SystemClock))?;
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "the store is not reachable yet; requests get 503 until it is");
    }
    if app.registry.is_empty() {
        tracing::warn!("no [[platforms]] are configured: every login will be refused");
    }
    let running = ltigate::start(app).await?;
    tracing::info!(addr = %running.local_addr(), public_url = %public, "ltigate listening");
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop signal received");
        stop.cancel();
    });
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
