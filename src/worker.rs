//! The counting loop: one `INCR` per tick on a fixed schedule, for as long as the process
//! runs, whatever Redis does.
//!
//! The loop keeps at most one connection. A transport failure drops it and the next tick
//! reconnects (with backoff, for as long as it takes); an error reply from Redis keeps it
//! and the next tick simply tries again. Nothing is ever written but the `INCR`.

use std::time::Duration;

use redis::RedisError;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::connection::{connect_with_retry, is_reply_error};
use crate::redis_target::RedisTarget;
use crate::schedule::next_tick;

/// Increments one key in one Redis, one tick at a time.
#[derive(Debug)]
pub struct Worker {
    redis: RedisTarget,
    key: String,
    interval: Duration,
}

/// What a run achieved, for the line logged at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Successful `INCR`s during this run.
    pub increments: u64,
    /// The counter's value after the last successful `INCR`, if there was one.
    pub last_count: Option<i64>,
}

impl Worker {
    /// A worker for `key` in `redis`, ticking every `interval` (which must be non-zero).
    pub fn new(redis: RedisTarget, key: String, interval: Duration) -> Self {
        Self {
            redis,
            key,
            interval,
        }
    }

    /// Counts until `shutdown` fires, then returns at once; an `INCR` already sent is
    /// allowed to finish, which [`RESPONSE_TIMEOUT`](crate::connection::RESPONSE_TIMEOUT)
    /// bounds.
    ///
    /// The first `INCR` happens as soon as Redis answers. Ticks then follow the grid of
    /// [`next_tick`]; when the worker had to wait for Redis (at start or after an outage),
    /// the grid restarts at the moment Redis answered, so counting resumes at once and
    /// two `INCR`s are never less than one interval apart.
    pub async fn run(&self, shutdown: &CancellationToken) -> Summary {
        let mut summary = Summary::default();
        let mut connection: Option<MultiplexedConnection> = None;
        let mut tick = Instant::now();
        loop {
            let wait = tokio::time::sleep_until(tick);
            if shutdown.run_until_cancelled(wait).await.is_none() {
                return summary;
            }
            let (redis, anchor) = match connection.as_mut() {
                Some(redis) => (redis, tick),
                None => match connect_with_retry(&self.redis, shutdown).await {
                    Some(fresh) => (connection.insert(fresh), Instant::now()),
                    None => return summary,
                },
            };
            match self.increment(redis).await {
                Ok(count) => {
                    info!(count, key = %self.key, "Contador atual: {count}");
                    summary.increments += 1;
                    summary.last_count = Some(count);
                }
                Err(err) if is_reply_error(&err) => {
                    error!(key = %self.key, error = %err, "Redis refused INCR; retrying next tick");
                }
                Err(err) => {
                    warn!(key = %self.key, redis = %self.redis, error = %err,
                          "lost the connection to Redis; reconnecting");
                    connection = None;
                }
            }
            tick = next_tick(anchor, self.interval, Instant::now());
        }
    }

    async fn increment(&self, redis: &mut MultiplexedConnection) -> Result<i64, RedisError> {
        redis::cmd("INCR")
            .arg(&self.key)
            .query_async::<i64>(redis)
            .await
    }
}
