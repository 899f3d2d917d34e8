//! Configuration: each setting comes from a flag or its environment variable (the flag
//! wins), and everything is validated before the worker opens a single connection.
//!
//! clap owns the names, the variables, the help and the subcommand; each flag's rule is its
//! `value_parser`. A bad value becomes one [`ConfigError`] line naming the setting as the
//! user gave it, password masked. A setting only the environment holds (a file with a
//! secret, `RUST_LOG`) is read by `from_env` and listed in `AFTER_HELP`: a line in each.

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::Targets;

use crate::logging::{self, LogFormat};
use crate::redis::tls::{self, TlsSettings};
use crate::redis::{RedisTarget, TargetSettings, Topology, record, redact};
use crate::setting_file;

mod source;
mod value;

pub use source::ConfigError;
use source::{Checked, Rule, from_env};

/// Where the worker records its progress unless `HEALTH_FILE` says otherwise.
const DEFAULT_HEALTH_FILE: &str = "/run/counter-worker/health";

/// How long a worker's record outlives its last tick unless `RECORD_TTL` says otherwise.
const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(60 * 60);

/// The settings that have no flag, for `--help`.
const AFTER_HELP: &str = "\
Other environment variables:
  REDIS_PASSWORD_FILE  File holding the Redis password (e.g. a Docker secret); a trailing
                       newline is ignored and it overrides a password in the URL
  REDIS_SENTINEL_PASSWORD_FILE
                       File holding the sentinels' own password, for a redis+sentinel://
                       URL whose sentinels require one (same file rules)
  REDIS_TLS_CA_FILE    PEM file of the CA certificates that a TLS server's certificate must
                       chain to, instead of the built-in Mozilla roots (same file rules)
  REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE
                       PEM client certificate and its key, for Redis with tls-auth-clients
  RUST_LOG             Log filter, e.g. info, debug, counter_worker=debug,redis=warn
                       [default: info]

Exit status: 0 after SIGTERM/SIGINT/SIGHUP or a healthy check, 1 when the check fails
or the process cannot start, 2 for invalid configuration.";

/// INCR a Redis key on a fixed schedule; survive Redis outages; stop at once on SIGTERM.
// Each flag's rule is its `value_parser` (see `source::Rule`); every setting is global and
// hides its environment value in `--help`.
#[derive(Debug, Parser)]
#[command(name = "counter-worker", version, after_help = AFTER_HELP)]
#[command(mut_args = |arg| arg.global(true).hide_env_values(true))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Redis server to count in: redis://host[:port][/db], or
    /// redis+sentinel://host1[:port],host2[:port],…/master-name[/db] to follow the master
    /// that Redis Sentinel names, or redis+cluster://host1[:port],host2[:port],… for Redis
    /// Cluster; rediss://, rediss+sentinel://, rediss+cluster:// for TLS (valkey:// and
    /// valkeys:// are synonyms of redis:// and rediss://)
    #[arg(long, env = "REDIS_URL", default_value = "redis://redis:6379")]
    // Only decoded here: the URL's rule is `RedisTarget::new`, with what is given beside it.
    #[arg(value_parser = Rule(|url| Ok(url.to_owned()), redact))]
    redis_url: Checked<String>,

    /// Key to increment
    #[arg(long, env = "COUNTER_KEY", default_value = "contador")]
    #[arg(value_parser = Rule(value::key, str::to_owned))]
    key: Checked<String>,

    /// Time between increments, e.g. 250ms, 2s, 1m (at least 1ms, at most 1 day)
    #[arg(long, env = "INTERVAL", default_value = "2s")]
    #[arg(allow_hyphen_values = true, value_parser = Rule(value::interval, str::to_owned))]
    interval: Checked<Duration>,

    /// Log output: text or json
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    #[arg(value_parser = Rule(value::one_of::<LogFormat>, str::to_owned))]
    log_format: Checked<LogFormat>,

    /// Replicas that must acknowledge each INCR (Redis WAIT); 0 sends no WAIT
    #[arg(long, env = "WAIT_REPLICAS", default_value = "0")]
    #[arg(allow_hyphen_values = true, value_parser = Rule(value::replicas, str::to_owned))]
    wait_replicas: Checked<u32>,

    /// How long Redis waits for those replicas, e.g. 500ms
    #[arg(long, env = "WAIT_TIMEOUT", default_value = "500ms")]
    #[arg(allow_hyphen_values = true, value_parser = Rule(value::wait_timeout, str::to_owned))]
    wait_timeout: Checked<Duration>,

    /// How each tick is applied: exactly-once (a script and a record beside the key let a
    /// tick of unknown outcome be sent again and counts Redis lost be restored) or
    /// at-most-once (a plain INCR, for a Redis that forbids scripts)
    #[arg(long, env = "COUNTING", default_value = "exactly-once")]
    #[arg(value_parser = Rule(value::one_of::<CountingMode>, str::to_owned))]
    counting: Checked<CountingMode>,

    /// How long a worker's record outlives its last tick, e.g. 1h; at least 10 intervals;
    /// by default 1h, or 10 intervals if longer
    #[arg(long, env = "RECORD_TTL")]
    #[arg(allow_hyphen_values = true, value_parser = Rule(value::record_ttl, str::to_owned))]
    record_ttl: Option<Checked<Duration>>,

    /// File where the worker records its progress for `healthcheck` (in a tmpfs); empty: none
    #[arg(long, env = "HEALTH_FILE", default_value = DEFAULT_HEALTH_FILE)]
    #[arg(value_parser = Rule(value::optional_path, str::to_owned))]
    health_file: Checked<Option<PathBuf>>,
}

/// What the process was started to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Count until SIGTERM, SIGINT or SIGHUP: what runs without a subcommand.
    #[command(skip)]
    Run,
    /// Exit 0 when the worker beside it is counting, 1 when it is frozen or stuck; with no
    /// live worker, PING Redis (2 s deadline); for container healthchecks
    Healthcheck,
    /// Print the ACL rule Redis must grant this worker (help in `about`, without code spans)
    #[command(
        about = "Print the ACL rule Redis must grant this worker with these settings, for ACL \
                 SETUSER or an ACL file: ACL SETUSER counter on >PASSWORD <rule>"
    )]
    AclRule,
}

/// The two ways of counting, as `--counting` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CountingMode {
    ExactlyOnce,
    AtMostOnce,
}

/// How each tick is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Each tick applied once by a script, with the worker's record beside the key.
    ExactlyOnce {
        /// How long the record outlives the worker's last tick.
        record_lifetime: Duration,
    },
    /// A plain `INCR`, never resent: for a Redis that forbids scripts.
    AtMostOnce,
}

/// The validated configuration; holding one means every setting is usable.
#[derive(Debug)]
pub struct Config {
    /// Run the loop or check health.
    pub command: Command,
    /// The Redis server, with credentials.
    pub redis: RedisTarget,
    /// The key to `INCR`; never empty.
    pub key: String,
    /// Time between ticks; from 1 ms to a day.
    pub interval: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Which events to log (`RUST_LOG`, `info` by default).
    pub log_filter: Targets,
    /// Replica acknowledgements to wait for after each `INCR`; `None` for none.
    pub replica_wait: Option<ReplicaWait>,
    /// Exactly once, with the record's lifetime, or at most once.
    pub counting: Counting,
    /// Where the worker records its progress for the health check; `None` when off.
    pub health_file: Option<PathBuf>,
    /// The key's setting as given (`--key` or `COUNTER_KEY`), for `acl-rule`'s refusal.
    pub key_setting: String,
}

/// Asking Redis to confirm each `INCR` on replicas before the worker logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    /// How many replicas must acknowledge the write (`WAIT`'s first argument).
    pub replicas: u32,
    /// How long Redis waits for them (`WAIT`'s second argument).
    pub timeout: Duration,
}

impl Config {
    /// Reads the process's command line and environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(std::env::args_os(), |name| std::env::var_os(name))
    }

    /// Builds the configuration from `args` and, for the settings that have no flag,
    /// from `env` (flag-backed variables are read by clap from the process environment).
    /// Settings are checked in this order, the first refusal reported.
    pub fn from_sources(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let cli = Cli::try_parse_from(args).map_err(ConfigError::usage)?;
        let interval = cli.interval.value?;
        let config = Self {
            redis: redis_target(cli.redis_url, &env)?,
            key: cli.key.value?,
            interval,
            log_format: cli.log_format.value?,
            log_filter: from_env(&env, "RUST_LOG", logging::parse_filter)?,
            replica_wait: match (cli.wait_replicas.value?, cli.wait_timeout.value?) {
                (0, _) => None,
                (replicas, timeout) => Some(ReplicaWait { replicas, timeout }),
            },
            counting: counting(cli.counting.value?, cli.record_ttl, interval)?,
            health_file: cli.health_file.value?,
            key_setting: cli.key.setting,
            command: cli.command.unwrap_or(Command::Run),
        };
        config.record_shares_the_key_slot()?;
        Ok(config)
    }

    /// Under Redis Cluster the script's two keys must share a slot, which the record's key
    /// cannot for a key holding `}` without a `{…}` hash tag (see `redis::record`).
    fn record_shares_the_key_slot(&self) -> Result<(), ConfigError> {
        let cluster = matches!(self.redis.topology(), Topology::Cluster(_));
        if !cluster || self.counting == Counting::AtMostOnce || record::shares_slot(&self.key) {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            setting: self.key_setting.clone(),
            value: self.key.clone(),
            reason: "under Redis Cluster the worker's record must share the key's slot, which a \
                     key holding } without a {…} hash tag rules out: add a hash tag, e.g. \
                     {counter}, or count at most once"
                .to_owned(),
        })
    }
}

/// How each tick is applied: a record's lifetime is refused below ten intervals, where the
/// record could expire between two ticks, and refused outright counting at most once,
/// which keeps no record.
fn counting(
    mode: CountingMode,
    ttl: Option<Checked<Duration>>,
    interval: Duration,
) -> Result<Counting, ConfigError> {
    let shortest = interval.saturating_mul(10);
    let Some(ttl) = ttl else {
        return Ok(match mode {
            CountingMode::AtMostOnce => Counting::AtMostOnce,
            CountingMode::ExactlyOnce => Counting::ExactlyOnce {
                record_lifetime: DEFAULT_RECORD_TTL.max(shortest),
            },
        });
    };
    let record_lifetime = ttl.value?;
    let reason = match mode {
        CountingMode::ExactlyOnce if record_lifetime >= shortest => {
            return Ok(Counting::ExactlyOnce { record_lifetime });
        }
        CountingMode::ExactlyOnce => format!(
            "must be at least 10 intervals ({}), or the record could expire between ticks",
            humantime::format_duration(shortest)
        ),
        CountingMode::AtMostOnce => {
            "counting at most once keeps no record; remove it, or count exactly once".to_owned()
        }
    };
    Err(ConfigError::Invalid {
        setting: ttl.setting,
        value: humantime::format_duration(record_lifetime).to_string(),
        reason,
    })
}

/// The Redis target `--redis-url` names, with the password and TLS files that only the
/// environment gives, each read and checked before the URL; a file that cannot be used
/// names its own setting.
fn redis_target(
    url: Checked<String>,
    env: &impl Fn(&str) -> Option<OsString>,
) -> Result<RedisTarget, ConfigError> {
    let password_file = |name| from_env(env, name, setting_file::read_password);
    let password = password_file("REDIS_PASSWORD_FILE")?;
    let sentinel_password = password_file("REDIS_SENTINEL_PASSWORD_FILE")?;
    let path = |name| from_env(env, name, String::from_str);
    let [ca, cert, key] = [tls::CA_FILE_ENV, tls::CERT_FILE_ENV, tls::KEY_FILE_ENV].map(path);
    let tls = TlsSettings::from_files(&ca?, &cert?, &key?).map_err(|err| ConfigError::Invalid {
        setting: err.setting.to_owned(),
        reason: err.to_string(),
        value: err.path,
    })?;
    let settings = TargetSettings {
        password: password.as_deref(),
        sentinel_password: sentinel_password.as_deref(),
        tls: tls.as_ref(),
    };
    let text = url.value?;
    RedisTarget::new(&text, &settings).map_err(|err| ConfigError::Invalid {
        setting: url.setting,
        value: redact(&text),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests;
