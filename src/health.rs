//! The health check behind `counter-worker healthcheck`: a distroless image has no shell
//! and no `redis-cli`, so the binary itself answers the container engine's question "is
//! this worker counting?".
//!
//! Beside a live worker (same container, same `HEALTH_FILE`) the answer comes from that
//! worker's own progress, so a frozen or stuck worker turns unhealthy even while Redis is
//! fine. Where no worker lives, the check falls back to asking Redis for a `PING`.

use std::path::Path;
use std::time::Duration;

use crate::escape::escaped;
use crate::health_state::{Observed, Progress, StateError, boot_clock_millis, observe};
use crate::redis::RedisTarget;

/// The whole check, connection included, must finish within this time.
pub const HEALTHCHECK_DEADLINE: Duration = Duration::from_secs(2);

/// Slack added to two intervals before a worker that has not begun a tick is frozen:
/// a tick may spend a connect timeout and a reply timeout before the next one starts.
pub const FROZEN_SLACK: Duration = Duration::from_secs(5);

/// The shortest time without a successful `INCR` that makes a worker unhealthy, so a
/// Redis restart at a short interval does not flap the check.
pub const MIN_PROGRESS_WINDOW: Duration = Duration::from_secs(30);

/// Why the check fails; `Display` is the one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// No tick begun for `since`, beyond `limit`.
    #[error(
        "the worker is frozen: no tick begun for {} (limit {})",
        shown(*.since),
        shown(*.limit)
    )]
    Frozen {
        /// Time since the last tick began.
        since: Duration,
        /// The most allowed: two intervals and `FROZEN_SLACK`.
        limit: Duration,
    },
    /// No successful `INCR` for `since`, beyond `limit`.
    #[error(
        "the worker is not counting: no successful INCR {} {} (limit {})",
        if *.never { "since it started" } else { "for" },
        shown(*.since),
        shown(*.limit)
    )]
    NotCounting {
        /// True when the worker never counted: `since` is from its start.
        never: bool,
        /// Time since the last count, or the start.
        since: Duration,
        /// The most allowed: three intervals, at least `MIN_PROGRESS_WINDOW`.
        limit: Duration,
    },
    /// The worker's state file cannot be read.
    #[error(transparent)]
    State(StateError),
    /// Redis (shown as given) answered `PING` with something else than `PONG`.
    #[error("Redis at {0} answered PING with {reply:?}", reply = escaped(.1))]
    Answered(String, String),
    /// Redis (shown as given) failed the `PING`, for the reason the target gives (its
    /// `describe_connect_failure`: with what to do where it knows).
    #[error("Redis at {0} did not answer PING: {error}", error = escaped(.1))]
    NoAnswer(String, String),
    /// Redis (shown as given) did not answer within `HEALTHCHECK_DEADLINE`.
    #[error(
        "Redis at {0} did not answer PING within {deadline}",
        deadline = shown(HEALTHCHECK_DEADLINE)
    )]
    TooSlow(String),
}

/// Checks the worker recorded in `health_file` if one lives, else `PING`s `redis`.
pub async fn check(health_file: Option<&Path>, redis: &RedisTarget) -> Result<(), Unhealthy> {
    let observed = match health_file {
        Some(path) => observe(path).map_err(Unhealthy::State)?,
        None => Observed::NoLiveWorker,
    };
    match observed {
        Observed::LiveWorker(progress) => judge(&progress, boot_clock_millis()),
        Observed::NoLiveWorker => ping(redis).await,
    }
}

/// The verdict on a live worker's `progress` at `now_ms` (boot-clock milliseconds).
pub fn judge(progress: &Progress, now_ms: u64) -> Result<(), Unhealthy> {
    let interval = progress.interval;
    let since_attempt = Duration::from_millis(now_ms.saturating_sub(progress.last_attempt_ms));
    let frozen_after = interval * 2 + FROZEN_SLACK;
    if since_attempt > frozen_after {
        return Err(Unhealthy::Frozen {
            since: since_attempt,
            limit: frozen_after,
        });
    }
    let counted_at = progress.last_success_ms.max(progress.started_ms);
    let since_success = Duration::from_millis(now_ms.saturating_sub(counted_at));
    let stalled_after = (interval * 3).max(MIN_PROGRESS_WINDOW);
    if since_success > stalled_after {
        return Err(Unhealthy::NotCounting {
            never: progress.last_success_ms == 0,
            since: since_success,
            limit: stalled_after,
        });
    }
    Ok(())
}

fn shown(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

/// Sends one `PING` to `redis`; `Ok` on `PONG`, otherwise the reason.
async fn ping(redis: &RedisTarget) -> Result<(), Unhealthy> {
    let ping = async {
        let mut connection = redis.connect(Duration::ZERO, None).await?;
        redis::cmd("PING")
            .query_async::<String>(connection.redis())
            .await
    };
    match tokio::time::timeout(HEALTHCHECK_DEADLINE, ping).await {
        Ok(Ok(reply)) if reply == "PONG" => Ok(()),
        Ok(Ok(reply)) => Err(Unhealthy::Answered(redis.to_string(), reply)),
        Ok(Err(err)) => Err(Unhealthy::NoAnswer(
            redis.to_string(),
            redis.describe_connect_failure(&err),
        )),
        Err(_) => Err(Unhealthy::TooSlow(redis.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000;

    fn progress(interval_s: u64, attempt_s: u64, success_s: u64) -> Progress {
        Progress {
            interval: Duration::from_secs(interval_s),
            started_ms: 0,
            last_attempt_ms: attempt_s * SECOND,
            last_success_ms: success_s * SECOND,
        }
    }

    #[test]
    fn a_worker_counting_on_time_is_healthy() {
        assert!(judge(&progress(2, 100, 100), 101 * SECOND).is_ok());
    }

    #[test]
    fn no_tick_for_two_intervals_and_five_seconds_is_frozen() {
        // 2 × 2 s + 5 s = 9 s.
        assert!(judge(&progress(2, 100, 100), 109 * SECOND).is_ok());
        let reason = judge(&progress(2, 100, 100), 110 * SECOND).unwrap_err();
        assert!(matches!(reason, Unhealthy::Frozen { .. }), "{reason}");
        assert!(reason.to_string().contains("limit 9s"), "{reason}");
    }

    #[test]
    fn ticking_without_counting_turns_unhealthy_after_the_progress_window() {
        // Redis is down: ticks go on, INCRs do not. max(3 × 2 s, 30 s) = 30 s.
        assert!(judge(&progress(2, 130, 100), 130 * SECOND).is_ok());
        let reason = judge(&progress(2, 131, 100), 131 * SECOND).unwrap_err();
        assert!(
            matches!(reason, Unhealthy::NotCounting { never: false, .. }),
            "{reason}"
        );
        // A long interval stretches the window: 3 × 60 s.
        assert!(judge(&progress(60, 270, 100), 270 * SECOND).is_ok());
        assert!(judge(&progress(60, 281, 100), 281 * SECOND).is_err());
    }

    #[test]
    fn a_worker_that_never_counted_is_judged_from_its_start() {
        let fresh = progress(2, 20, 0);
        assert!(judge(&fresh, 20 * SECOND).is_ok());
        let reason = judge(&progress(2, 40, 0), 40 * SECOND).unwrap_err();
        assert!(
            matches!(reason, Unhealthy::NotCounting { never: true, .. }),
            "{reason}"
        );
        assert!(reason.to_string().contains("since it started"), "{reason}");
    }
}
