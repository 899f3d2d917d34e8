//! Connections to Redis: every connect and every reply is bounded by a timeout, and a
//! lost connection is re-established with capped, jittered exponential backoff for as
//! long as it takes.
//!
//! The Redis client's own reconnect logic gives up after a few attempts, so the worker
//! owns the retry loop: it drops a connection on any transport failure and asks for a
//! new one here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::redis_target::RedisTarget;

/// How long to wait for a connection (TCP, `AUTH`, `SELECT`) before giving up on it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the reply to one command, so a black-holed Redis cannot hang us.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens one connection to `target`, bounded by [`CONNECT_TIMEOUT`], whose commands are
/// bounded by [`RESPONSE_TIMEOUT`].
pub async fn connect(target: &RedisTarget) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    target.connect(&config).await
}

/// Connects to `target`, retrying with [`reconnect_backoff`] until it answers; `None`
/// when `shutdown` fires first.
///
/// Each failed attempt is logged with its cause: a warning while Redis is unreachable,
/// an error when it answers but refuses us (a wrong password), since only a person can
/// fix that.
pub async fn connect_with_retry(
    target: &RedisTarget,
    shutdown: &CancellationToken,
) -> Option<MultiplexedConnection> {
    let mut delays = reconnect_backoff().build();
    loop {
        match shutdown.run_until_cancelled(connect(target)).await? {
            Ok(connection) => {
                info!(redis = %target, "connected to Redis");
                return Some(connection);
            }
            Err(err) => {
                // The backoff has no attempt limit; the cap is only a fallback.
                let delay = delays.next().unwrap_or(MAX_RECONNECT_DELAY);
                let retry_in = humantime::format_duration(round_to_millis(delay));
                if is_reply_error(&err) || err.kind() == ErrorKind::AuthenticationFailed {
                    error!(redis = %target, error = %err, %retry_in, "Redis refused the connection; retrying");
                } else {
                    warn!(redis = %target, error = %err, %retry_in, "cannot reach Redis; retrying");
                }
                shutdown
                    .run_until_cancelled(tokio::time::sleep(delay))
                    .await?;
            }
        }
    }
}

/// The longest wait between two connection attempts.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Delays between connection attempts: about 100 ms, doubling, never more than 5 s.
///
/// backon's jitter adds a random share of up to one more delay, so the base runs from
/// 50 ms to half of [`MAX_RECONNECT_DELAY`] and the actual waits fall in [50, 100) ms,
/// [100, 200) ms, … [2.5, 5) s. Jitter keeps several workers from retrying in lockstep.
pub fn reconnect_backoff() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(MAX_RECONNECT_DELAY / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// True when Redis itself answered with an error (`WRONGTYPE`, `NOAUTH`, …): the
/// connection is fine and retrying the same command later is the right move.
///
/// Anything else (I/O, timeouts, a garbled reply) means the connection cannot be trusted
/// and must be replaced.
pub fn is_reply_error(err: &RedisError) -> bool {
    matches!(err.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

fn round_to_millis(delay: Duration) -> Duration {
    Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_about_100ms_to_a_5s_cap() {
        let delays: Vec<Duration> = reconnect_backoff().build().take(12).collect();
        assert_eq!(delays.len(), 12, "the backoff must never run out");
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] < Duration::from_millis(100));
        for delay in &delays {
            assert!(*delay < MAX_RECONNECT_DELAY, "{delay:?} is over the cap");
        }
        assert!(delays[11] >= Duration::from_millis(2_500), "{delays:?}");
    }

    #[test]
    fn backoff_is_jittered() {
        let first: Vec<Duration> = reconnect_backoff().build().take(8).collect();
        let second: Vec<Duration> = reconnect_backoff().build().take(8).collect();
        assert_ne!(first, second, "two workers must not retry in lockstep");
    }

    #[test]
    fn server_replies_keep_the_connection_and_transport_failures_drop_it() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!is_reply_error(&io));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!is_reply_error(&timeout));
    }
}
