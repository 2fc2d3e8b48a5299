//! The `ltigate` binary: parse the command line, set up logging, load the
//! config once, run the command (implemented in the library's `cli`).
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
    /// Revoke learners' sessions (asks the running gateway).
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Revoke every session of one learner, or of every learner of a registration.
    #[command(group = clap::ArgGroup::new("whose").required(true))]
    Revoke {
        /// One learner: the platform's issuer, the registration's client_id, the learner's LTI `sub`.
        #[arg(long, num_args = 3, value_names = ["ISSUER", "CLIENT_ID", "SUB"], group = "whose")]
        user: Option<Vec<String>>,
        /// Every learner of a registration: its issuer and client_id.
        #[arg(long, num_args = 2, value_names = ["ISSUER", "CLIENT_ID"], group = "whose")]
        registration: Option<Vec<String>>,
    },
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
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Keygen { out, kid } = &command {
        return match ltigate::cli::keygen::run(out, kid) {
            Ok(done) => {
                print!("{}", done.instructions);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ltigate keygen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match load_config(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ltigate: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match command {
        Command::Check => {
            print!("{}", ltigate::cli::check::report(&config));
            ExitCode::SUCCESS
        }
        Command::Serve => serve(config),
        Command::Grades(cmd) => on_runtime(async {
            match cmd {
                GradesCommand::List { failed } => ltigate::cli::grades::list(&config, failed).await,
                GradesCommand::Retry { id, .. } => {
                    ltigate::cli::grades::retry(&config, id.as_deref()).await
                }
            }
            .map(|text| print!("{text}"))
            .map_err(|e| format!("ltigate grades: {e}"))
        }),
        Command::Sessions(SessionsCommand::Revoke { user, registration }) => on_runtime(async {
            use ltigate::cli::sessions::Target;
            let target = match (user.as_deref(), registration.as_deref()) {
                (Some([issuer, client_id, sub]), _) => Target::User {
                    issuer,
                    client_id,
                    sub,
                },
                (None, Some([issuer, client_id])) => Target::Registration { issuer, client_id },
                // clap requires one of them, with exactly this many values.
                _ => {
                    return Err("ltigate sessions revoke: give --user or --registration".to_owned());
                }
            };
            ltigate::cli::sessions::revoke(&config, target)
                .await
                .map(|text| print!("{text}"))
                .map_err(|e| format!("ltigate sessions revoke: {e}"))
        }),
        Command::Health => on_runtime(async {
            ltigate::cli::health::probe(&config)
                .await
                .map_err(|e| format!("ltigate health: {e}"))
        }),
        // Handled above: it needs no config.
        Command::Keygen { .. } => ExitCode::SUCCESS,
    }
}

/// The one way the binary reads its config: key files that
/// `generate_if_missing` asks for are created first, then the file is
/// validated.
fn load_config(path: &std::path::Path) -> Result<ltigate::Config, ltigate::ConfigError> {
    let raw = ltigate::RawConfig::load(path)?;
    ltigate::cli::keygen::generate_missing(&raw, path)?;
    ltigate::Config::from_raw(raw, path, &ltigate::ProcessEnv)
}

/// Runs a short command on a single-threaded runtime.
fn on_runtime(task: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
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
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: ltigate::Config) -> ExitCode {
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
    let code = runtime.block_on(async move {
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ltigate: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    // Dropping a runtime waits for its blocking tasks however long they
    // take (an embedded-store commit on a stalled disk): bound the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run(config: ltigate::Config) -> anyhow::Result<()> {
    let public = config.server.public_origin();
    let app = ltigate::Gateway::build(config, Arc::new(ltigate::SystemClock))?;
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "the store is not reachable yet; requests get 503 until it is");
    }
    if app.lti.registry().is_empty() {
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
