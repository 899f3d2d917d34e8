//! Configuration: each setting comes from a flag or its environment variable (the flag
//! wins), and everything is validated before the worker opens a single connection.
//!
//! A bad value becomes one [`ConfigError`] line that names the setting the way the user
//! gave it (`--interval` or `INTERVAL`) and echoes the value, with any password masked.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::health_state::DEFAULT_HEALTH_FILE;
use crate::redis_target::{RedisTarget, redact};
use crate::secret_file;
use crate::tls::{self, TlsSettings};
use crate::worker::ReplicaWait;

/// The longest accepted interval; anything longer is almost certainly a typo.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest accepted interval: below it the worker would only load Redis.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest `WAIT` timeout: a tick must end, whatever the replicas do.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest password file read; a secret is a line, not a document.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;

const PASSWORD_FILE_ENV: &str = "REDIS_PASSWORD_FILE";
const SENTINEL_PASSWORD_FILE_ENV: &str = "REDIS_SENTINEL_PASSWORD_FILE";
const LOG_FILTER_ENV: &str = "RUST_LOG";

/// A setting that has both a flag and an environment variable.
struct Setting {
    id: &'static str,
    flag: &'static str,
    env: &'static str,
}

const REDIS_URL: Setting = Setting {
    id: "redis_url",
    flag: "--redis-url",
    env: "REDIS_URL",
};
const KEY: Setting = Setting {
    id: "key",
    flag: "--key",
    env: "COUNTER_KEY",
};
const INTERVAL: Setting = Setting {
    id: "interval",
    flag: "--interval",
    env: "INTERVAL",
};
const LOG_FORMAT: Setting = Setting {
    id: "log_format",
    flag: "--log-format",
    env: "LOG_FORMAT",
};
const WAIT_REPLICAS: Setting = Setting {
    id: "wait_replicas",
    flag: "--wait-replicas",
    env: "WAIT_REPLICAS",
};
const WAIT_TIMEOUT: Setting = Setting {
    id: "wait_timeout",
    flag: "--wait-timeout",
    env: "WAIT_TIMEOUT",
};
const HEALTH_FILE: Setting = Setting {
    id: "health_file",
    flag: "--health-file",
    env: "HEALTH_FILE",
};

const AFTER_HELP: &str = "\
Other environment variables:
  REDIS_PASSWORD_FILE  File holding the Redis password (e.g. a Docker secret); a trailing
                       newline is ignored and it overrides a password in the URL
  REDIS_SENTINEL_PASSWORD_FILE
                       File holding the sentinels' own password, for a redis+sentinel://
                       URL whose sentinels require one (same file rules)
  REDIS_TLS_CA_FILE    PEM file of the CA certificates that a rediss:// server's certificate
                       must chain to, instead of the built-in Mozilla roots
  REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE
                       PEM client certificate and its key, for Redis with tls-auth-clients
  RUST_LOG             Log filter, e.g. info, debug, counter_worker=debug,redis=warn
                       [default: info]

Exit status: 0 after SIGTERM/SIGINT/SIGHUP or a healthy check, 1 when the check fails
or the process cannot start, 2 for invalid configuration.";

// Help lists each variable by name only (`hide_env_values`): a URL may hold a password.

/// INCR a Redis key on a fixed schedule; survive Redis outages; stop at once on SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "counter-worker", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<CliCommand>,

    /// Redis server to count in: redis://host[:port][/db], or
    /// redis+sentinel://host1[:port],host2[:port],…/master-name[/db] to follow the master
    /// that Redis Sentinel names, or redis+cluster://host1[:port],host2[:port],… for Redis
    /// Cluster; rediss://, rediss+sentinel://, rediss+cluster:// for TLS
    #[arg(long, env = REDIS_URL.env, default_value = "redis://redis:6379",
          hide_env_values = true, global = true, value_parser = raw())]
    redis_url: OsString,

    /// Key to increment
    #[arg(long, env = KEY.env, default_value = "contador",
          hide_env_values = true, global = true, value_parser = raw())]
    key: OsString,

    /// Time between increments, e.g. 250ms, 2s, 1m (at least 1ms, at most 1 day)
    #[arg(long, env = INTERVAL.env, default_value = "2s",
          hide_env_values = true, global = true, allow_hyphen_values = true,
          value_parser = raw())]
    interval: OsString,

    /// Log output: text or json
    #[arg(long, env = LOG_FORMAT.env, default_value = "text",
          hide_env_values = true, global = true, value_parser = raw())]
    log_format: OsString,

    /// Replicas that must acknowledge each INCR (Redis WAIT); 0 sends no WAIT
    #[arg(long, env = WAIT_REPLICAS.env, default_value = "0",
          hide_env_values = true, global = true, allow_hyphen_values = true,
          value_parser = raw())]
    wait_replicas: OsString,

    /// How long Redis waits for those replicas, e.g. 500ms
    #[arg(long, env = WAIT_TIMEOUT.env, default_value = "500ms",
          hide_env_values = true, global = true, allow_hyphen_values = true,
          value_parser = raw())]
    wait_timeout: OsString,

    /// File where the worker records its progress for `healthcheck` (in a tmpfs); empty: none
    #[arg(long, env = HEALTH_FILE.env, default_value = DEFAULT_HEALTH_FILE,
          hide_env_values = true, global = true, value_parser = raw())]
    health_file: OsString,
}

/// Settings are taken as raw bytes and decoded by [`Config::from_sources`], so a value
/// that is not UTF-8 gets the same one-line error, naming its setting, as any other.
fn raw() -> clap::builder::OsStringValueParser {
    clap::builder::OsStringValueParser::new()
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Exit 0 when the worker beside it is counting, 1 when it is frozen or stuck; with no
    /// live worker, PING Redis (2 s deadline); for container healthchecks
    Healthcheck,
}

/// What the process was started to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Count until SIGTERM, SIGINT or SIGHUP.
    Run,
    /// Check once that the worker beside it counts (or that Redis answers), for a
    /// healthcheck in a shell-less image.
    Healthcheck,
}

/// How log lines are written: for people (`text`) or for log pipelines (`json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
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
    /// Time between ticks; from [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
    pub interval: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Which events to log (`RUST_LOG`, `info` by default).
    pub log_filter: Targets,
    /// Replica acknowledgements to wait for after each `INCR`; `None` for none.
    pub replica_wait: Option<ReplicaWait>,
    /// Where the worker records its progress and the health check reads it; `None`
    /// when switched off.
    pub health_file: Option<PathBuf>,
}

/// Why the configuration was refused; its `Display` is the single line the user sees.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The command line is malformed (unknown flag, missing value); clap's own words.
    Usage(String),
    /// A setting holds a value the worker cannot use.
    Invalid {
        /// The flag or environment variable, as the user gave it.
        setting: &'static str,
        /// The value, with credentials masked.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Invalid {
                setting,
                value,
                reason,
            } => write!(f, "invalid {setting} {value:?}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process's command line and environment.
    ///
    /// `--help` and `--version` print and exit here, as every CLI does.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(std::env::args_os(), |name| std::env::var_os(name))
    }

    /// Builds the configuration from `args` and, for the settings that have no flag,
    /// from `env` (flag-backed variables are read by clap from the process environment).
    pub fn from_sources(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let matches = match Cli::command().try_get_matches_from(args) {
            Ok(matches) => matches,
            Err(err) if !err.use_stderr() => err.exit(),
            Err(err) => return Err(usage_error(&err)),
        };
        let cli = Cli::from_arg_matches(&matches).map_err(|err| usage_error(&err))?;
        let given = |setting: &Setting| name_as_given(&matches, setting);
        let text = |setting: &Setting, raw: &OsStr| -> Result<String, ConfigError> {
            utf8(given(setting), raw)
        };

        let password = password_from_file(&env, PASSWORD_FILE_ENV)?;
        let redis_url = text(&REDIS_URL, &cli.redis_url)?;
        let mut redis = RedisTarget::new(&redis_url, password.as_deref())
            .map_err(invalid(given(&REDIS_URL), &redact(&redis_url)))?;
        if let Some(password) = password_from_file(&env, SENTINEL_PASSWORD_FILE_ENV)? {
            redis = redis
                .with_sentinel_password(&password)
                .map_err(invalid(given(&REDIS_URL), &redact(&redis_url)))?;
        }
        if let Some(tls) = tls_settings(&env)? {
            redis = redis
                .with_tls(&tls)
                .map_err(invalid(given(&REDIS_URL), &redact(&redis_url)))?;
        }
        let key = text(&KEY, &cli.key)?;
        let key = parse_key(&key).map_err(invalid(given(&KEY), &key))?;
        let interval = text(&INTERVAL, &cli.interval)?;
        let interval = parse_interval(&interval).map_err(invalid(given(&INTERVAL), &interval))?;
        let log_format = text(&LOG_FORMAT, &cli.log_format)?;
        let log_format =
            parse_log_format(&log_format).map_err(invalid(given(&LOG_FORMAT), &log_format))?;
        let log_filter = env_text(&env, LOG_FILTER_ENV)?.unwrap_or_default();
        let log_filter =
            parse_log_filter(&log_filter).map_err(invalid(LOG_FILTER_ENV, &log_filter))?;
        let replicas = text(&WAIT_REPLICAS, &cli.wait_replicas)?;
        let replicas =
            parse_replicas(&replicas).map_err(invalid(given(&WAIT_REPLICAS), &replicas))?;
        let wait_timeout = text(&WAIT_TIMEOUT, &cli.wait_timeout)?;
        let wait_timeout = parse_wait_timeout(&wait_timeout)
            .map_err(invalid(given(&WAIT_TIMEOUT), &wait_timeout))?;
        let health_file = text(&HEALTH_FILE, &cli.health_file)?;

        Ok(Self {
            command: match cli.command {
                None => Command::Run,
                Some(CliCommand::Healthcheck) => Command::Healthcheck,
            },
            redis,
            key,
            interval,
            log_format,
            log_filter,
            replica_wait: (replicas > 0).then_some(ReplicaWait {
                replicas,
                timeout: wait_timeout,
            }),
            health_file: (!health_file.is_empty()).then(|| PathBuf::from(health_file)),
        })
    }
}

/// The flag if the value came from the command line, else the environment variable.
fn name_as_given(matches: &ArgMatches, setting: &Setting) -> &'static str {
    match matches.value_source(setting.id) {
        Some(ValueSource::CommandLine) => setting.flag,
        _ => setting.env,
    }
}

/// Turns a reason into the error for `setting` holding `value` (already redacted).
fn invalid(setting: &'static str, value: &str) -> impl FnOnce(String) -> ConfigError + use<> {
    let value = value.to_owned();
    move |reason| ConfigError::Invalid {
        setting,
        value,
        reason,
    }
}

/// Keeps the first line of clap's message ("unexpected argument '--x' found"), without
/// its "error: " prefix and usage block, so every configuration error is one line.
fn usage_error(err: &clap::Error) -> ConfigError {
    let rendered = err.render().to_string();
    let first_line = rendered.lines().next().unwrap_or_default();
    ConfigError::Usage(
        first_line
            .strip_prefix("error: ")
            .unwrap_or(first_line)
            .to_owned(),
    )
}

/// `raw` as text, or the error naming `setting`.
fn utf8(setting: &'static str, raw: &OsStr) -> Result<String, ConfigError> {
    raw.to_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(setting, &raw.to_string_lossy())("not valid UTF-8".to_owned()))
}

fn env_text(
    env: &impl Fn(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    env(name).map(|value| utf8(name, &value)).transpose()
}

/// The password in the file that the variable `name` points to; none when it is unset or
/// empty.
fn password_from_file(
    env: &impl Fn(&str) -> Option<OsString>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    env_text(env, name)?
        .filter(|path| !path.is_empty())
        .map(|path| read_password_file(name, Path::new(&path)))
        .transpose()
}

/// The TLS files' settings, read and checked; `None` when none is set.
fn tls_settings(
    env: &impl Fn(&str) -> Option<OsString>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let mut paths = Vec::new();
    for name in [tls::CA_FILE_ENV, tls::CERT_FILE_ENV, tls::KEY_FILE_ENV] {
        paths.push((name, env_text(env, name)?));
    }
    let path_of = |name| paths.iter().find(|(given, _)| *given == name)?.1.clone();
    TlsSettings::from_files(path_of).map_err(|err| invalid(err.setting, &err.path)(err.reason))
}

fn read_password_file(name: &'static str, path: &Path) -> Result<String, ConfigError> {
    let invalid = |reason: &str| invalid(name, &path.display().to_string())(reason.to_owned());
    let bytes =
        secret_file::read(path, MAX_PASSWORD_FILE_BYTES).map_err(|reason| invalid(&reason))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("the file is not UTF-8 text"))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(invalid("the file is empty"));
    }
    Ok(password.to_owned())
}

fn parse_key(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("the key must not be empty".to_owned());
    }
    Ok(raw.to_owned())
}

fn parse_interval(raw: &str) -> Result<Duration, String> {
    let interval = parse_duration(raw, "250ms, 2s or 1m")?;
    if interval.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    within(interval, (MIN_INTERVAL, "1ms"), (MAX_INTERVAL, "1 day"))
}

fn parse_wait_timeout(raw: &str) -> Result<Duration, String> {
    // WAIT with a timeout of 0 would block forever.
    let timeout = parse_duration(raw, "500ms or 1s")?;
    within(
        timeout,
        (MIN_INTERVAL, "1ms"),
        (MAX_WAIT_TIMEOUT, "1 minute"),
    )
}

/// A human duration (`250ms`, `2s`, `1m`); `examples` show the form in the error.
fn parse_duration(raw: &str, examples: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|err| format!("not a duration ({err}); write it like {examples}"))
}

/// `duration` when it lies between the bounds, each given with its words for a person.
fn within(
    duration: Duration,
    (min, min_shown): (Duration, &str),
    (max, max_shown): (Duration, &str),
) -> Result<Duration, String> {
    if duration < min {
        return Err(format!("must be at least {min_shown}"));
    }
    if duration > max {
        return Err(format!("must be at most {max_shown}"));
    }
    Ok(duration)
}

fn parse_log_format(raw: &str) -> Result<LogFormat, String> {
    match raw {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be \"text\" or \"json\"".to_owned()),
    }
}

/// `RUST_LOG` in its usual `target=level,…` form (a bare level sets the default).
/// Targets not named log at `info` unless a bare level says otherwise.
fn parse_log_filter(raw: &str) -> Result<Targets, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Targets::new().with_default(LevelFilter::INFO));
    }
    let targets: Targets = raw.parse().map_err(|err| {
        format!("not a log filter ({err}); try info or counter_worker=debug,redis=warn")
    })?;
    Ok(match targets.default_level() {
        Some(_) => targets,
        None => targets.with_default(LevelFilter::INFO),
    })
}

fn parse_replicas(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse()
        .map_err(|_| "must be a whole number of replicas, 0 or more".to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), OsString::from(value)))
            .collect();
        let args = std::iter::once("counter-worker").chain(args.iter().copied());
        Config::from_sources(args, move |name| {
            env.iter()
                .find(|(n, _)| n == name)
                .map(|(_, value)| value.clone())
        })
    }

    fn rejection(args: &[&str], env: &[(&str, &str)]) -> String {
        load(args, env)
            .expect_err("the configuration should be refused")
            .to_string()
    }

    #[test]
    fn flags_are_read_and_validated() {
        let config = load(
            &[
                "--redis-url",
                "redis://127.0.0.1:7000/3",
                "--key",
                "visits",
                "--interval",
                "250ms",
                "--log-format",
                "json",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.command, Command::Run);
        assert_eq!(config.redis.to_string(), "redis://127.0.0.1:7000/3");
        assert_eq!(config.key, "visits");
        assert_eq!(config.interval, Duration::from_millis(250));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn healthcheck_is_a_subcommand_that_takes_the_same_flags() {
        let config = load(&["healthcheck", "--redis-url", "redis://h:1"], &[]).unwrap();
        assert_eq!(config.command, Command::Healthcheck);
        assert_eq!(config.redis.to_string(), "redis://h:1");
    }

    #[test]
    fn intervals_in_human_units() {
        for (raw, expected) in [
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("1m 30s", Duration::from_secs(90)),
            ("1day", MAX_INTERVAL),
        ] {
            assert_eq!(parse_interval(raw), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn rejects_a_zero_interval() {
        let message = rejection(&["--interval", "0s"], &[]);
        assert_eq!(
            message,
            r#"invalid --interval "0s": must be greater than zero"#
        );
    }

    #[test]
    fn rejects_an_interval_over_a_day() {
        let message = rejection(&["--interval", "25h"], &[]);
        assert!(
            message.starts_with(r#"invalid --interval "25h": "#),
            "{message}"
        );
        assert!(message.contains("at most 1 day"), "{message}");
    }

    #[test]
    fn rejects_an_interval_that_is_not_a_duration() {
        for raw in ["fast", "2", "-1s", ""] {
            let message = rejection(&["--interval", raw], &[]);
            assert!(message.contains("not a duration"), "{raw}: {message}");
        }
    }

    #[test]
    fn rejects_an_empty_key() {
        let message = rejection(&["--key", ""], &[]);
        assert_eq!(message, r#"invalid --key "": the key must not be empty"#);
    }

    #[test]
    fn rejects_an_unknown_log_format() {
        let message = rejection(&["--log-format", "xml"], &[]);
        assert_eq!(
            message,
            r#"invalid --log-format "xml": must be "text" or "json""#
        );
    }

    #[test]
    fn rejects_a_non_redis_url() {
        let message = rejection(&["--redis-url", "http://redis:6379"], &[]);
        assert!(
            message.starts_with(r#"invalid --redis-url "http://redis:6379": "#),
            "{message}"
        );
    }

    #[test]
    fn a_rejected_url_never_shows_its_password() {
        let message = rejection(&["--redis-url", "redis://:hunter2@redis:port"], &[]);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("redis://:***@redis:port"), "{message}");
    }

    #[test]
    fn tls_files_follow_the_password_file_rules_and_need_a_tls_url() {
        let dir = tempfile::tempdir().unwrap();
        let tls_url = ["--redis-url", "rediss://redis:6380"];
        let message = rejection(&tls_url, &[("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")]);
        assert!(
            message
                .starts_with(r#"invalid REDIS_TLS_CA_FILE "/nonexistent/ca.pem": cannot read it"#),
            "{message}"
        );
        let path = dir.path().to_str().unwrap();
        let pair = [("REDIS_TLS_CERT_FILE", path), ("REDIS_TLS_KEY_FILE", path)];
        let message = rejection(&tls_url, &pair);
        assert!(message.contains("not a regular file"), "{message}");
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hunter2\n").unwrap();
        let not_pem = not_pem.to_str().unwrap();
        let message = rejection(&tls_url, &[("REDIS_TLS_CA_FILE", not_pem)]);
        assert!(message.contains("holds no PEM certificate"), "{message}");
        let message = rejection(&[], &[("REDIS_TLS_KEY_FILE", not_pem)]);
        assert!(
            message.contains("REDIS_TLS_CERT_FILE is not set"),
            "{message}"
        );
        assert!(
            message.starts_with("invalid REDIS_TLS_KEY_FILE "),
            "{message}"
        );
        assert_eq!(load(&tls_url, &[("REDIS_TLS_CA_FILE", "")]).err(), None);
    }

    #[test]
    fn password_file_overrides_the_url_password_and_drops_the_newline() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"s3cret\r\n").unwrap();
        let path = file.path().to_str().unwrap();
        let config = load(
            &["--redis-url", "redis://:old@redis"],
            &[("REDIS_PASSWORD_FILE", path)],
        )
        .unwrap();
        assert_eq!(config.redis.redis_settings().password(), Some("s3cret"));
    }

    #[test]
    fn an_empty_password_file_setting_means_none() {
        let config = load(&[], &[("REDIS_PASSWORD_FILE", "")]).unwrap();
        assert_eq!(config.redis.redis_settings().password(), None);
    }

    #[test]
    fn rejects_a_missing_password_file() {
        let message = rejection(&[], &[("REDIS_PASSWORD_FILE", "/nonexistent/pw")]);
        assert!(
            message.starts_with(r#"invalid REDIS_PASSWORD_FILE "/nonexistent/pw": cannot read it"#),
            "{message}"
        );
    }

    #[test]
    fn rejects_an_empty_password_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let message = rejection(&[], &[("REDIS_PASSWORD_FILE", path)]);
        assert!(message.ends_with("the file is empty"), "{message}");
    }

    #[test]
    fn rejects_a_password_file_larger_than_the_bound() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let too_long = vec![b'x'; usize::try_from(MAX_PASSWORD_FILE_BYTES).unwrap() + 1];
        std::fs::write(file.path(), too_long).unwrap();
        let path = file.path().to_str().unwrap();
        let message = rejection(&[], &[("REDIS_PASSWORD_FILE", path)]);
        assert!(message.contains("larger than 65536 bytes"), "{message}");
    }

    #[test]
    fn a_rejected_sentinel_url_names_the_setting_and_masks_the_password() {
        let message = rejection(&["--redis-url", "redis+sentinel://:hunter2@s1,s2"], &[]);
        assert!(
            message.starts_with(r#"invalid --redis-url "redis+sentinel://:***@s1,s2": "#),
            "{message}"
        );
        assert!(message.contains("names no master"), "{message}");
    }

    #[test]
    fn sentinel_password_file_is_read_with_the_same_rules() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let sentinels = ["--redis-url", "redis+sentinel://s1/mymaster"];
        let message = rejection(&sentinels, &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
        assert!(
            message.starts_with("invalid REDIS_SENTINEL_PASSWORD_FILE ")
                && message.ends_with("the file is empty"),
            "{message}"
        );
        std::fs::write(path, "watchers\n").unwrap();
        let config = load(&sentinels, &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
        assert!(config.is_ok(), "{config:?}");
        let message = rejection(&[], &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
        assert!(message.contains("names no sentinels"), "{message}");
    }

    #[test]
    fn rejects_a_bad_log_filter() {
        let message = rejection(&[], &[("RUST_LOG", "counter_worker=loud")]);
        assert!(
            message.starts_with(r#"invalid RUST_LOG "counter_worker=loud": "#),
            "{message}"
        );
    }

    #[test]
    fn accepts_common_log_filters() {
        for filter in ["", "info", "debug", "counter_worker=debug,redis=warn"] {
            assert!(parse_log_filter(filter).is_ok(), "{filter:?}");
        }
    }

    #[test]
    fn unknown_flags_are_one_line_usage_errors() {
        let message = rejection(&["--bogus"], &[]);
        assert_eq!(message, "unexpected argument '--bogus' found");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn errors_stay_on_one_line_whatever_the_value() {
        let message = rejection(&["--interval", "2s\nINFO fake log line"], &[]);
        assert!(!message.contains('\n'), "{message}");
    }
}
