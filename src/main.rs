//! Wiring only: read the configuration, set up logging, then run the worker until a
//! signal, or run the health check once.

use std::process::ExitCode;

use counter_worker::config::{Command, Config};
use counter_worker::worker::Worker;
use counter_worker::{health, logging, shutdown};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Exit status for a configuration that cannot be used (the usage-error convention).
const EXIT_BAD_CONFIG: u8 = 2;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("counter-worker: error: {err}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    match config.command {
        Command::Run => run(config).await,
        Command::Healthcheck => match health::check(&config.redis).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("counter-worker: unhealthy: {reason}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(config: Config) -> ExitCode {
    logging::init(config.log_format, config.log_filter);
    let shutdown = CancellationToken::new();
    let signal = match shutdown::cancel_on_signal(shutdown.clone()) {
        Ok(signal) => signal,
        Err(err) => {
            error!(error = %err, "cannot install the SIGTERM/SIGINT handlers");
            return ExitCode::FAILURE;
        }
    };
    info!(
        version = env!("CARGO_PKG_VERSION"),
        redis = %config.redis,
        key = %config.key,
        interval = %humantime::format_duration(config.interval),
        "counter-worker starting"
    );
    let worker = Worker::new(config.redis, config.key, config.interval);
    let summary = worker.run(&shutdown).await;
    let signal = signal.await.unwrap_or("a signal");
    info!(
        signal,
        increments = summary.increments,
        last_count = summary.last_count,
        "stopped on {signal}"
    );
    ExitCode::SUCCESS
}
