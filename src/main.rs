//! Wiring only: read the configuration, set up logging, then run the worker until a
//! signal, run the health check once, or print the worker's ACL rule.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use counter_worker::{
    Command, Config, Escaped, FINAL_FLUSH_PATIENCE, HealthRecorder, HeldSignals, LogOutput, Worker,
    acl_rule, cancel_on_signal, check_descriptor_headroom, healthcheck, init_logging,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Exit status for a configuration that cannot be used (the usage-error convention).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    // First: a signal sent from here on waits for its handler.
    let signals = HeldSignals::hold();
    let config = match Config::load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("counter-worker: error: {err}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // Built by hand rather than by `#[tokio::main]`, so that a machine out of resources
    // (file descriptors, threads) gets one line and exit 1, not a panic.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return cannot_start("cannot start the async runtime", &err),
    };
    if let Err(reason) = check_descriptor_headroom() {
        return cannot_start("cannot start", &reason);
    }
    match config.command {
        Command::Run => runtime.block_on(run(config, signals)),
        // The other commands end by themselves; a signal may end them sooner, as always.
        Command::AclRule => {
            drop(signals);
            print_acl_rule(&config)
        }
        Command::Healthcheck => {
            drop(signals);
            let redis = &config.redis;
            let check = healthcheck(config.health_file.as_deref(), redis);
            match runtime.block_on(check) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("counter-worker: unhealthy: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints the ACL rule for `config`, or why it cannot (exit 2: a setting is the cause).
fn print_acl_rule(config: &Config) -> ExitCode {
    match acl_rule(config) {
        Ok(rule) => {
            println!("{rule}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("counter-worker: error: {err}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn cannot_start(what: &str, err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("counter-worker: error: {what}: {err}");
    ExitCode::FAILURE
}

async fn run(config: Config, signals: HeldSignals) -> ExitCode {
    let log = match init_logging(config.log_format, config.log_filter) {
        Ok(log) => log,
        Err(err) => return cannot_start("cannot start the log writer", &err),
    };
    let shutdown = CancellationToken::new();
    let signal = match cancel_on_signal(shutdown.clone(), signals) {
        Ok(signal) => signal,
        Err(err) => {
            return exit(
                &log,
                cannot_start("cannot install the signal handlers", &err),
            );
        }
    };
    info!(
        version = env!("CARGO_PKG_VERSION"),
        redis = %config.redis,
        key = %Escaped(&config.key),
        interval = %humantime::format_duration(config.interval),
        "counter-worker starting"
    );
    let health = health_recorder(config.health_file.as_deref(), config.interval);
    let mut worker = Worker::new(config.redis, config.key, config.interval)
        .with_replica_wait(config.replica_wait)
        .with_counting(config.counting)
        .with_health(health);
    let summary = worker.run(&shutdown).await;
    let signal = signal.await.unwrap_or("a signal");
    info!(
        signal,
        increments = summary.increments,
        last_count = summary.last_count,
        unknown_outcomes = summary.unknown_outcomes,
        restored = summary.restored,
        unsettled = summary.unsettled,
        dropped_log_lines = log.dropped_lines(),
        "stopped on {signal}"
    );
    exit(&log, ExitCode::SUCCESS)
}

/// Where the worker records its progress for the health check; none, with a warning, when
/// the file cannot be used: counting does not depend on it.
fn health_recorder(path: Option<&Path>, interval: Duration) -> Option<HealthRecorder> {
    HealthRecorder::create(path?, interval)
        .inspect_err(|reason| {
            warn!(%reason, "progress not recorded: `healthcheck` will only PING Redis");
        })
        .ok()
}

/// Leaves with `code` once the log is written, or after [`FINAL_FLUSH_PATIENCE`] when
/// nobody reads it: a stalled reader must not hold the process past its signal.
fn exit(log: &LogOutput, code: ExitCode) -> ExitCode {
    if !log.flush(FINAL_FLUSH_PATIENCE) {
        // The writer thread is stuck in `write`; ending the process is the only way out.
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    code
}
