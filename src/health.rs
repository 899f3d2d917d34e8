//! The health check behind `counter-worker healthcheck`: a distroless image has no shell
//! and no `redis-cli`, so the binary itself answers the container engine's question "is
//! this worker counting?".
//!
//! Beside a live worker (same container, same `HEALTH_FILE`) the answer comes from that
//! worker's own progress, so a frozen or stuck worker turns unhealthy even while Redis is
//! fine. Where no worker lives, the check falls back to asking Redis for a `PING`.

use std::path::Path;
use std::time::Duration;

use crate::connection::describe;
use crate::escape::escaped;
use crate::health_state::{Observed, Progress, boot_clock_millis, observe};
use crate::redis_target::RedisTarget;

/// The whole check, connection included, must finish within this time.
pub const HEALTHCHECK_DEADLINE: Duration = Duration::from_secs(2);

/// Slack added to two intervals before a worker that has not begun a tick is frozen:
/// a tick may spend a connect timeout and a reply timeout before the next one starts.
pub const FROZEN_SLACK: Duration = Duration::from_secs(5);

/// The shortest time without a successful `INCR` that makes a worker unhealthy, so a
/// Redis restart at a short interval does not flap the check.
pub const MIN_PROGRESS_WINDOW: Duration = Duration::from_secs(30);

/// Checks the worker recorded in `health_file` if one lives, else `PING`s `redis`;
/// `Ok` when healthy, otherwise the reason, on one line, for a person.
pub async fn check(health_file: Option<&Path>, redis: &RedisTarget) -> Result<(), String> {
    let observed = match health_file {
        Some(path) => observe(path)?,
        None => Observed::NoLiveWorker,
    };
    match observed {
        Observed::LiveWorker(progress) => judge(&progress, boot_clock_millis()),
        Observed::NoLiveWorker => ping(redis).await,
    }
}

/// The verdict on a live worker's `progress` at `now_ms` (boot-clock milliseconds).
pub fn judge(progress: &Progress, now_ms: u64) -> Result<(), String> {
    let interval = progress.interval;
    let since_attempt = Duration::from_millis(now_ms.saturating_sub(progress.last_attempt_ms));
    let frozen_after = interval * 2 + FROZEN_SLACK;
    if since_attempt > frozen_after {
        return Err(format!(
            "the worker is frozen: no tick begun for {} (limit {})",
            shown(since_attempt),
            shown(frozen_after)
        ));
    }
    let counted_at = progress.last_success_ms.max(progress.started_ms);
    let since_success = Duration::from_millis(now_ms.saturating_sub(counted_at));
    let stalled_after = (interval * 3).max(MIN_PROGRESS_WINDOW);
    if since_success > stalled_after {
        let what = if progress.last_success_ms == 0 {
            "since it started"
        } else {
            "for"
        };
        return Err(format!(
            "the worker is not counting: no successful INCR {what} {} (limit {})",
            shown(since_success),
            shown(stalled_after)
        ));
    }
    Ok(())
}

fn shown(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

/// Sends one `PING` to `redis`; `Ok` on `PONG`, otherwise the reason.
async fn ping(redis: &RedisTarget) -> Result<(), String> {
    let ping = async {
        let mut connection = redis.connect(Duration::ZERO, None).await?;
        redis::cmd("PING")
            .query_async::<String>(connection.redis())
            .await
    };
    match tokio::time::timeout(HEALTHCHECK_DEADLINE, ping).await {
        Ok(Ok(reply)) if reply == "PONG" => Ok(()),
        Ok(Ok(reply)) => Err(format!(
            "Redis at {redis} answered PING with {:?}",
            escaped(&reply)
        )),
        Ok(Err(err)) => Err(format!(
            "Redis at {redis} did not answer PING: {}",
            escaped(&describe(&err))
        )),
        Err(_) => Err(format!(
            "Redis at {redis} did not answer PING within {}",
            shown(HEALTHCHECK_DEADLINE)
        )),
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
        assert_eq!(judge(&progress(2, 100, 100), 101 * SECOND), Ok(()));
    }

    #[test]
    fn no_tick_for_two_intervals_and_five_seconds_is_frozen() {
        // 2 × 2 s + 5 s = 9 s.
        assert_eq!(judge(&progress(2, 100, 100), 109 * SECOND), Ok(()));
        let reason = judge(&progress(2, 100, 100), 110 * SECOND).unwrap_err();
        assert!(reason.contains("frozen"), "{reason}");
        assert!(reason.contains("limit 9s"), "{reason}");
    }

    #[test]
    fn ticking_without_counting_turns_unhealthy_after_the_progress_window() {
        // Redis is down: ticks go on, INCRs do not. max(3 × 2 s, 30 s) = 30 s.
        assert_eq!(judge(&progress(2, 130, 100), 130 * SECOND), Ok(()));
        let reason = judge(&progress(2, 131, 100), 131 * SECOND).unwrap_err();
        assert!(reason.contains("not counting"), "{reason}");
        // A long interval stretches the window: 3 × 60 s.
        assert_eq!(judge(&progress(60, 270, 100), 270 * SECOND), Ok(()));
        assert!(judge(&progress(60, 281, 100), 281 * SECOND).is_err());
    }

    #[test]
    fn a_worker_that_never_counted_is_judged_from_its_start() {
        let fresh = progress(2, 20, 0);
        assert_eq!(judge(&fresh, 20 * SECOND), Ok(()));
        let reason = judge(&progress(2, 40, 0), 40 * SECOND).unwrap_err();
        assert!(reason.contains("since it started"), "{reason}");
    }
}
