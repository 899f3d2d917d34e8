//! Each setting's own rule: a key, an interval, a `WAIT` count and timeout, a choice of
//! names, each turned into its value or refused for a reason that is a [`ValueError`].

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use humantime::format_duration;

/// The longest accepted interval; anything longer is almost certainly a typo.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest interval or `WAIT` timeout: below it the worker would only load Redis, and
/// `WAIT` with 0 would block forever.
const MIN_DURATION: Duration = Duration::from_millis(1);

/// The longest `WAIT` timeout: a tick must end, whatever the replicas do.
const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a setting's text is refused; `Display` is the reason a person reads after the
/// setting's name and value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// An empty key.
    #[error("the key must not be empty")]
    EmptyKey,
    /// Not a human duration; the error, and examples of the form.
    #[error("not a duration ({0}); write it like {1}")]
    NotADuration(humantime::DurationError, &'static str),
    /// An interval of zero.
    #[error("must be greater than zero")]
    Zero,
    /// Shorter than [`MIN_DURATION`].
    #[error("must be at least {}", format_duration(MIN_DURATION))]
    BelowMin,
    /// Longer than the bound, given in words.
    #[error("must be at most {0}")]
    AboveMax(&'static str),
    /// Not a whole number of replicas.
    #[error("must be a whole number of replicas, 0 or more")]
    NotAReplicaCount,
    /// None of the names clap knows for the setting's choices, quoted.
    #[error("must be {}", .0.join(" or "))]
    NotOneOf(Vec<String>),
}

/// A path, or `None` when empty (the health file switched off).
pub fn optional_path(raw: &str) -> Result<Option<PathBuf>, ValueError> {
    Ok((!raw.is_empty()).then(|| PathBuf::from(raw)))
}

/// The key to `INCR`: any text but the empty one.
pub fn key(raw: &str) -> Result<String, ValueError> {
    (!raw.is_empty())
        .then(|| raw.to_owned())
        .ok_or(ValueError::EmptyKey)
}

/// The time between ticks: from 1 ms to a day.
pub fn interval(raw: &str) -> Result<Duration, ValueError> {
    match duration(raw, "250ms, 2s or 1m")? {
        Duration::ZERO => Err(ValueError::Zero),
        interval => within(interval, (MAX_INTERVAL, "1 day")),
    }
}

/// How many replicas must acknowledge each `INCR`: 0 or more.
pub fn replicas(raw: &str) -> Result<u32, ValueError> {
    raw.trim().parse().map_err(|_| ValueError::NotAReplicaCount)
}

/// How long Redis waits for them: from 1 ms to a minute.
pub fn wait_timeout(raw: &str) -> Result<Duration, ValueError> {
    within(
        duration(raw, "500ms or 1s")?,
        (MAX_WAIT_TIMEOUT, "1 minute"),
    )
}

/// How long a worker's record outlives its last tick: up to 30 days.
pub fn record_ttl(raw: &str) -> Result<Duration, ValueError> {
    let thirty_days = Duration::from_secs(30 * 24 * 60 * 60);
    within(duration(raw, "1h or 30m")?, (thirty_days, "30 days"))
}

/// A human duration (`250ms`, `2s`, `1m`); `examples` show the form in the error.
fn duration(raw: &str, examples: &'static str) -> Result<Duration, ValueError> {
    humantime::parse_duration(raw.trim()).map_err(|err| ValueError::NotADuration(err, examples))
}

/// `duration` when it lies between [`MIN_DURATION`] and `max`, which `shown` words.
fn within(
    duration: Duration,
    (max, shown): (Duration, &'static str),
) -> Result<Duration, ValueError> {
    match duration {
        short if short < MIN_DURATION => Err(ValueError::BelowMin),
        long if long > max => Err(ValueError::AboveMax(shown)),
        fitting => Ok(fitting),
    }
}

/// One of the names clap knows for `T`'s variants (`text`, `json`).
pub fn one_of<T: ValueEnum>(raw: &str) -> Result<T, ValueError> {
    T::from_str(raw, false).map_err(|_| {
        let names = T::value_variants().iter().filter_map(T::to_possible_value);
        ValueError::NotOneOf(names.map(|name| format!("{:?}", name.get_name())).collect())
    })
}
