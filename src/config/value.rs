//! Each setting's own rule: the text of a key, an interval, a `WAIT` count and timeout, a
//! choice among names, each turned into its value or refused for a reason that is a
//! variant of [`ValueError`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

/// The longest accepted interval; anything longer is almost certainly a typo.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest accepted interval: below it the worker would only load Redis.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest `WAIT` timeout: a tick must end, whatever the replicas do.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a setting's text is refused; `Display` is the reason a person reads after the
/// setting's name and value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueError {
    /// An empty key.
    EmptyKey,
    /// Not a human duration; the error, and examples of the form.
    NotADuration(humantime::DurationError, &'static str),
    /// An interval of zero.
    Zero,
    /// Shorter than the bound, given in words.
    BelowMin(&'static str),
    /// Longer than the bound, given in words.
    AboveMax(&'static str),
    /// Not a whole number of replicas.
    NotAReplicaCount,
    /// None of the names clap knows for the setting's choices, quoted.
    NotOneOf(Vec<String>),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => f.write_str("the key must not be empty"),
            Self::NotADuration(err, examples) => {
                write!(f, "not a duration ({err}); write it like {examples}")
            }
            Self::Zero => f.write_str("must be greater than zero"),
            Self::BelowMin(min) => write!(f, "must be at least {min}"),
            Self::AboveMax(max) => write!(f, "must be at most {max}"),
            Self::NotAReplicaCount => f.write_str("must be a whole number of replicas, 0 or more"),
            Self::NotOneOf(names) => write!(f, "must be {}", names.join(" or ")),
        }
    }
}

impl std::error::Error for ValueError {}

/// A path, or `None` when empty (the health file switched off).
pub fn optional_path(raw: &str) -> Result<Option<PathBuf>, ValueError> {
    Ok((!raw.is_empty()).then(|| PathBuf::from(raw)))
}

/// The key to `INCR`: any text but the empty one.
pub fn key(raw: &str) -> Result<String, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::EmptyKey);
    }
    Ok(raw.to_owned())
}

/// The time between ticks: from 1 ms to a day.
pub fn interval(raw: &str) -> Result<Duration, ValueError> {
    let interval = duration(raw, "250ms, 2s or 1m")?;
    if interval.is_zero() {
        return Err(ValueError::Zero);
    }
    within(interval, (MIN_INTERVAL, "1ms"), (MAX_INTERVAL, "1 day"))
}

/// How many replicas must acknowledge each `INCR`: 0 or more.
pub fn replicas(raw: &str) -> Result<u32, ValueError> {
    raw.trim().parse().map_err(|_| ValueError::NotAReplicaCount)
}

/// How long Redis waits for them: from 1 ms (`WAIT` with 0 would block forever) to a
/// minute.
pub fn wait_timeout(raw: &str) -> Result<Duration, ValueError> {
    let timeout = duration(raw, "500ms or 1s")?;
    within(
        timeout,
        (MIN_INTERVAL, "1ms"),
        (MAX_WAIT_TIMEOUT, "1 minute"),
    )
}

/// How long a worker's record outlives its last tick: from 1 s to 30 days.
pub fn record_ttl(raw: &str) -> Result<Duration, ValueError> {
    let ttl = duration(raw, "1h or 30m")?;
    within(
        ttl,
        (Duration::from_secs(1), "1s"),
        (Duration::from_secs(30 * 24 * 60 * 60), "30 days"),
    )
}

/// A human duration (`250ms`, `2s`, `1m`); `examples` show the form in the error.
fn duration(raw: &str, examples: &'static str) -> Result<Duration, ValueError> {
    humantime::parse_duration(raw.trim()).map_err(|err| ValueError::NotADuration(err, examples))
}

/// `duration` when it lies between the bounds, each given with its words for a person.
fn within(
    duration: Duration,
    (min, min_shown): (Duration, &'static str),
    (max, max_shown): (Duration, &'static str),
) -> Result<Duration, ValueError> {
    if duration < min {
        return Err(ValueError::BelowMin(min_shown));
    }
    if duration > max {
        return Err(ValueError::AboveMax(max_shown));
    }
    Ok(duration)
}

/// One of the names clap knows for `T`'s variants (`text`, `json`).
pub fn one_of<T: ValueEnum>(raw: &str) -> Result<T, ValueError> {
    T::from_str(raw, false).map_err(|_| {
        let names = T::value_variants()
            .iter()
            .filter_map(ValueEnum::to_possible_value)
            .map(|value| format!("{:?}", value.get_name()))
            .collect();
        ValueError::NotOneOf(names)
    })
}
