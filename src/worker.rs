//! The counting loop: one `INCR` per tick on a fixed schedule, for as long as the process
//! runs, whatever Redis does.
//!
//! The promises, and how the loop keeps them:
//! - **No tick is lost to a dead connection while Redis is up.** A connection that Redis
//!   closed while idle is replaced before the tick's `INCR` is sent, on the same tick. One
//!   kept idle for [`CHECK_IDLE_AFTER`] or longer must answer a `PING` first: an idle
//!   timer (Redis's `timeout`, a proxy's) that fires as the tick begins then takes the
//!   `PING`, which is safe to lose, and not the `INCR`.
//! - **Each tick is applied once** (exactly-once counting, the default). Each tick is
//!   named by the worker's identity and a sequence number and applied by the script of
//!   `redis::record`, which keeps a record beside the counter: a tick whose reply was lost
//!   (`outcome=unknown`) is sent again on the next tick, and Redis applies it if it had not,
//!   or answers with the count it produced. Only a tick that was sent is sent again; the
//!   next tick is not sent until it is settled. Counts Redis lost after it applied them (a
//!   failover, a restart from an older file) are applied again with the next tick.
//! - **At most once, when asked** (`--counting at-most-once`): a plain `INCR`, never
//!   resent; after one of unknown outcome no `INCR` goes out until Redis has answered a
//!   `PING` on a fresh connection, and the next successful `INCR` tells whether the lost
//!   one was applied.
//! - **Recovery within one interval, without hammering.** While Redis is unreachable the
//!   loop makes one connection attempt per tick, and never more than one per
//!   [`MIN_RETRY_PERIOD`]; the first attempt that succeeds counts on that same tick.
//!
//! Nothing is ever written but the counter and, counting exactly once, the worker's record.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{Counting, ReplicaWait};
use crate::escape::Escaped;
use crate::failure_log::{FailureLog, Report};
use crate::health_state::HealthRecorder;
use crate::redirect::{Route, following_redirects};
use crate::redis::connection::{
    Connection, FailureKind, NodeAddress, describe, failure_kind, has_reply_code, is_refusal,
    is_reply_error, names_wrong_node,
};
use crate::redis::record::{self, Applied, TickRecord};
use crate::redis::{RedisTarget, Topology};
use crate::schedule::next_tick;

/// The shortest time between two connection attempts, however short the interval.
pub const MIN_RETRY_PERIOD: Duration = Duration::from_millis(100);

/// A connection kept from an earlier tick that has been idle this long answers a `PING`
/// before it carries an `INCR`; one used more recently goes straight to the `INCR`.
///
/// An idle timer can close a connection at the moment the tick sends on it, too late for
/// the close to be seen first, and an `INCR` lost that way has an unknown outcome (it costs
/// ticks). Redis counts `timeout` in whole seconds, so it never closes a connection idle
/// for less than a second; proxies and NATs wait seconds to minutes. Below this, the
/// check would only add a round trip to every tick of a fast worker.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// What a run achieved, for the line logged at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Successful `INCR`s during this run.
    pub increments: u64,
    /// The counter's value after the last successful `INCR`, if there was one.
    pub last_count: Option<i64>,
    /// Ticks that were sent but never answered: counting at most once, each may or may
    /// not have been applied; counting exactly once, each was settled when Redis answered.
    pub unknown_outcomes: u64,
    /// Counts this worker had logged that Redis lost, applied again.
    pub restored: u64,
    /// Whether the worker stopped with a tick whose outcome was still unknown: Redis may
    /// hold one count more than it logged.
    pub unsettled: bool,
}

/// Increments one key in one Redis, one tick at a time.
#[derive(Debug)]
pub struct Worker {
    redis: RedisTarget,
    key: String,
    interval: Duration,
    replica_wait: Option<ReplicaWait>,
    /// The record of each tick applied, counting exactly once; `None` for a plain `INCR`.
    record: Option<TickRecord>,
    health: Option<HealthRecorder>,
}

/// What the loop carries from one tick to the next.
#[derive(Default)]
struct LoopState {
    connection: Option<KeptConnection>,
    /// An `INCR` went unanswered: Redis must answer a `PING` before the next one.
    must_ping: bool,
    /// Unanswered ticks that no later count has accounted for yet.
    unresolved_unknowns: u64,
    /// The sequence number of the last tick Redis applied, counting exactly once; the
    /// next tick sent is this plus one, and a tick of unknown outcome is sent again.
    applied_tick: u64,
    /// The master the last connection went to under Sentinel, so a change (a failover)
    /// is logged, not every reconnect.
    last_master: Option<String>,
    /// Under Cluster, the node known to serve the key (it said so with `MOVED`, or it
    /// executed the `INCR`): the next connection tries it beside the seed nodes.
    key_owner: Option<NodeAddress>,
    failures: FailureLog<FailureKind>,
    summary: Summary,
}

/// The connection kept for the next tick, and since when it has been idle.
struct KeptConnection {
    connection: Connection,
    idle_since: Instant,
}

impl LoopState {
    /// The run's summary at the stop.
    fn stopped(&self) -> Summary {
        Summary {
            unsettled: self.unresolved_unknowns > 0,
            ..self.summary
        }
    }

    /// Keeps `connection` for the next tick; it has just had a reply.
    fn keep(&mut self, connection: Connection) {
        self.connection = Some(KeptConnection {
            connection,
            idle_since: Instant::now(),
        });
    }
}

/// How a tick ended: when the next one is due, or that shutdown came first.
enum Next {
    TickAt(Instant),
    Stopped,
}

impl Worker {
    /// A worker for `key` in `redis`, ticking every `interval` (which must be non-zero),
    /// with a plain `INCR` until [`Worker::with_counting`] says otherwise.
    pub fn new(redis: RedisTarget, key: String, interval: Duration) -> Self {
        Self {
            redis,
            key,
            interval,
            replica_wait: None,
            record: None,
            health: None,
        }
    }

    /// Counts as `counting` says; exactly once, under a new identity whose record is logged.
    pub fn with_counting(mut self, counting: Counting) -> Self {
        self.record = match counting {
            Counting::AtMostOnce => None,
            Counting::ExactlyOnce { record_lifetime } => {
                let record = TickRecord::new(&self.key, &record::identity(), record_lifetime);
                let lifetime = humantime::format_duration(record_lifetime);
                info!(record = %Escaped(record.key()), %lifetime,
                      "counting exactly once: a record of this worker's ticks is kept beside the key");
                Some(record)
            }
        };
        self
    }

    /// Sends every `INCR` together with `WAIT` for `wait.replicas` replicas.
    pub fn with_replica_wait(mut self, wait: Option<ReplicaWait>) -> Self {
        self.replica_wait = wait;
        self
    }

    /// Records progress in `recorder` for the health check.
    pub fn with_health(mut self, recorder: Option<HealthRecorder>) -> Self {
        self.health = recorder;
        self
    }

    /// Counts until `shutdown` fires, then returns at once; an `INCR` already sent is
    /// allowed to finish, which the connection's `RESPONSE_TIMEOUT` bounds.
    ///
    /// The first `INCR` happens as soon as Redis answers. Ticks then follow the grid of
    /// `next_tick`: a slow tick does not push later ones back, and missed ticks are
    /// skipped, never replayed.
    pub async fn run(&mut self, shutdown: &CancellationToken) -> Summary {
        let mut state = LoopState::default();
        let mut tick = Instant::now();
        loop {
            let wait = tokio::time::sleep_until(tick);
            if shutdown.run_until_cancelled(wait).await.is_none() {
                return state.stopped();
            }
            self.record_health(HealthRecorder::attempted);
            match self.tick(tick, &mut state, shutdown).await {
                Next::TickAt(next) => tick = next,
                Next::Stopped => return state.stopped(),
            }
        }
    }

    /// One tick scheduled at `scheduled`: get a connection, then either the `PING` that
    /// must follow an unknown outcome or the `INCR`.
    async fn tick(
        &mut self,
        scheduled: Instant,
        state: &mut LoopState,
        shutdown: &CancellationToken,
    ) -> Next {
        let connection = match shutdown.run_until_cancelled(self.connection(state)).await {
            None => return Next::Stopped,
            Some(Ok(connection)) => connection,
            Some(Err(err)) => return self.retry(scheduled, state, &err),
        };
        if state.must_ping {
            return match shutdown.run_until_cancelled(ping(connection)).await {
                None => Next::Stopped,
                Some(Ok(connection)) => {
                    state.keep(connection);
                    state.must_ping = false;
                    info!(redis = %self.redis, "Redis answers again; the next INCR comes one interval from now");
                    Next::TickAt(Instant::now() + self.interval)
                }
                Some(Err(err)) => self.retry(scheduled, state, &err),
            };
        }
        // Not cancellable: an INCR already sent finishes, bounded by its reply timeout.
        self.count(state, connection).await;
        Next::TickAt(next_tick(scheduled, self.interval, Instant::now()))
    }

    /// Logs a failed connection or `PING`; the next attempt comes at the next grid point,
    /// never sooner than [`MIN_RETRY_PERIOD`].
    fn retry(&self, scheduled: Instant, state: &mut LoopState, err: &RedisError) -> Next {
        self.connect_failed(state, err);
        let period = self.interval.max(MIN_RETRY_PERIOD);
        Next::TickAt(next_tick(scheduled, period, Instant::now()))
    }

    /// The connection kept from the last tick, unless Redis has closed it or, after
    /// [`CHECK_IDLE_AFTER`] idle, it does not answer a `PING`; else a new one.
    async fn connection(&self, state: &mut LoopState) -> Result<Connection, RedisError> {
        if let Some(kept) = state.connection.take() {
            if kept.connection.is_closed() {
                debug!(redis = %self.redis, "Redis closed the idle connection; reconnecting for this tick");
            } else if kept.idle_since.elapsed() < CHECK_IDLE_AFTER {
                return Ok(kept.connection);
            } else {
                match ping(kept.connection).await {
                    Ok(connection) => return Ok(connection),
                    Err(err) => {
                        let error = Escaped(&describe(&err)).to_string();
                        debug!(redis = %self.redis, %error, "the idle connection did not answer a PING; reconnecting for this tick");
                    }
                }
            }
        }
        debug!(redis = %self.redis, "connecting to Redis");
        let key_owner = state.key_owner.as_ref();
        let connection = self
            .redis
            .connect(self.extra_reply_time(), key_owner)
            .await?;
        debug!(redis = %self.redis, "connected to Redis");
        if let Topology::Sentinel(sentinels) = self.redis.topology() {
            note_master(state, sentinels.master_name(), connection.server());
        }
        Ok(connection)
    }

    /// The tick's `INCR` on `connection`, which is kept for the next tick unless the
    /// outcome says it cannot be trusted.
    async fn count(&mut self, state: &mut LoopState, mut connection: Connection) {
        let started = Instant::now();
        let tick = state.applied_tick + 1;
        let result = self
            .increment(&mut connection, &mut state.key_owner, tick)
            .await;
        debug!(latency = ?started.elapsed(), ok = result.is_ok(), "INCR done");
        match result {
            Ok(counted) => {
                state.keep(connection);
                state.applied_tick = tick;
                self.counted(state, counted);
            }
            Err(err) => {
                if !drops_connection(&err) {
                    state.keep(connection);
                }
                self.increment_failed(state, &err);
            }
        }
    }

    /// How long Redis may take beyond the standard reply timeout: `WAIT`'s own timeout.
    fn extra_reply_time(&self) -> Duration {
        self.replica_wait
            .map_or(Duration::ZERO, |wait| wait.timeout)
    }

    /// Sends tick `tick`, following a cluster's redirects (see `redirect`).
    async fn increment(
        &self,
        connection: &mut Connection,
        key_owner: &mut Option<NodeAddress>,
        tick: u64,
    ) -> Result<Counted, RedisError> {
        let send = async |redis: &mut MultiplexedConnection, route| {
            self.send_tick(redis, tick, route).await
        };
        match self.redis.topology() {
            Topology::Cluster(cluster) => {
                let extra = self.extra_reply_time();
                following_redirects(cluster, connection, key_owner, extra, send).await
            }
            Topology::Fixed(_) | Topology::Sentinel(_) => {
                send(connection.redis(), Route::Served).await
            }
        }
    }

    /// Sends tick `tick`: the script that applies it once, by its cache (`EVALSHA`) and,
    /// should Redis not have it cached, by its source (after `ASKING` again on the
    /// [`Route::Asked`]); or, counting at most once, `INCR`.
    async fn send_tick(
        &self,
        redis: &mut MultiplexedConnection,
        tick: u64,
        route: Route,
    ) -> Result<Counted, RedisError> {
        let Some(record) = &self.record else {
            let (count, acknowledged) = self.send(redis, redis::cmd("INCR").arg(&self.key)).await?;
            let count = redis::from_redis_value(count)?;
            let applied = Applied::Now { restored: 0 };
            return Ok(Counted {
                count,
                applied,
                acknowledged,
            });
        };
        let (answer, acknowledged) = match self.send(redis, &record.command(tick, true)).await {
            Err(err) if record::is_not_cached(&err) => {
                debug!("Redis does not have the script cached; sending its source");
                if route == Route::Asked {
                    redis::cmd("ASKING").query_async::<()>(redis).await?;
                }
                self.send(redis, &record.command(tick, false)).await?
            }
            sent => sent?,
        };
        let (count, applied) = record::applied(answer)?;
        Ok(Counted {
            count,
            applied,
            acknowledged,
        })
    }

    /// Sends `command`, with `WAIT` in the same round trip when asked for; its answer, and
    /// how many replicas acknowledged it.
    async fn send(
        &self,
        redis: &mut MultiplexedConnection,
        command: &Cmd,
    ) -> RedisResult<(Value, Option<i64>)> {
        let Some(wait) = self.replica_wait else {
            return Ok((command.query_async(redis).await?, None));
        };
        let timeout = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let (answer, acknowledged) = redis::pipe()
            .add_command(command.clone())
            .cmd("WAIT")
            .arg(wait.replicas)
            .arg(timeout)
            .query_async::<(Value, i64)>(redis)
            .await?;
        Ok((answer, Some(acknowledged)))
    }

    fn counted(&mut self, state: &mut LoopState, counted: Counted) {
        let Counted {
            count,
            applied,
            acknowledged,
        } = counted;
        let key = Escaped(&self.key);
        if let Some(failed) = state.failures.recovered() {
            info!(redis = %self.redis, failed_attempts = failed, "counting again; {failed} earlier attempts had failed");
        }
        if let (Some(wait), Some(acknowledged)) = (self.replica_wait, acknowledged)
            && acknowledged < i64::from(wait.replicas)
        {
            warn!(count, key = %key, acknowledged, wanted = wait.replicas,
                  "count {count} acknowledged by {acknowledged} of {} replicas; it stands on the master only",
                  wait.replicas);
        }
        if self.record.is_some() {
            self.note_applied(state, count, applied);
        } else if state.unresolved_unknowns > 0
            && let Some(last) = state.summary.last_count
        {
            let unknowns = state.unresolved_unknowns;
            let unlogged = count.saturating_sub(last).saturating_sub(1);
            let verdict = resolution(unknowns, unlogged);
            warn!(count, key = %key, last_logged = last, unlogged, unknown = unknowns, "{verdict}");
        }
        state.unresolved_unknowns = 0;
        info!(count, key = %key, "Contador atual: {count}");
        state.summary.increments += 1;
        state.summary.last_count = Some(count);
        self.record_health(HealthRecorder::succeeded);
    }

    /// Logs what the script's answer says beyond the count: how a tick of unknown outcome
    /// was settled, counts Redis had lost and got back, a record Redis no longer held.
    fn note_applied(&self, state: &mut LoopState, count: i64, applied: Applied) {
        let key = Escaped(&self.key);
        let tick = state.applied_tick;
        match applied {
            Applied::Before => {
                info!(count, key = %key, tick, settled = "applied before",
                      "the tick of unknown outcome had been applied; Redis answered with the count it produced");
            }
            Applied::Now { .. } if state.unresolved_unknowns > 0 => {
                info!(count, key = %key, tick, settled = "applied now",
                      "the tick of unknown outcome had not been applied; it is applied now");
            }
            _ => {}
        }
        match applied {
            Applied::Now { restored } if restored > 0 => {
                state.summary.restored += restored;
                warn!(count, key = %key, restored,
                      "Redis had lost {restored} counts this worker logged (a failover, or a restart from an older file); restored with this tick");
            }
            Applied::WithoutRecord => {
                warn!(count, key = %key, record = %self.record.as_ref().map_or("", TickRecord::key),
                      "Redis holds no record of this worker's earlier ticks (emptied, reset or expired): nothing restored, counting on from its value");
            }
            _ => {}
        }
    }

    fn increment_failed(&mut self, state: &mut LoopState, err: &RedisError) {
        let key = Escaped(&self.key);
        let error = Escaped(&describe(err)).to_string();
        if names_wrong_node(err) {
            self.log_failure(state, err, &error, || {
                warn!(key = %key, redis = %self.redis, %error,
                      "Redis cannot take writes here; INCR refused, reconnecting next tick");
            });
        } else if self.record.is_some() && has_reply_code(err, &["NOPERM"]) {
            // The usual cause: a user set up for a plain INCR (an older rule).
            self.log_failure(state, err, &error, || {
                error!(key = %key, %error, "Redis refused the tick's script: this user lacks a command or key it needs; grant the rule `counter-worker acl-rule` prints, or count at most once (COUNTING=at-most-once); retrying next tick");
            });
        } else if is_reply_error(err) {
            self.log_failure(state, err, &error, || {
                error!(key = %key, %error, "Redis refused INCR; retrying next tick");
            });
        } else if self.record.is_some() && state.unresolved_unknowns > 0 {
            // The tick sent again, and again no reply (a Redis paused for writes, still
            // frozen): one more try of the same tick, summarised as any repeated failure.
            state.unresolved_unknowns += 1;
            self.log_failure(state, err, &error, || {
                warn!(key = %key, redis = %self.redis, %error, outcome = "unknown",
                      "the tick of unknown outcome was sent again and not answered either; it is sent again");
            });
        } else {
            state.unresolved_unknowns += 1;
            state.summary.unknown_outcomes += 1;
            if self.record.is_some() {
                // Sent, and no reply: the same tick goes again, and Redis applies it once.
                let tick = state.applied_tick + 1;
                warn!(key = %key, redis = %self.redis, %error, outcome = "unknown", tick,
                      "tick sent but not answered: outcome unknown; it is sent again, and Redis applies it at most once");
            } else {
                // Sent, and no reply: Redis may or may not have applied it. Never resend.
                state.must_ping = true;
                warn!(key = %key, redis = %self.redis, %error, outcome = "unknown",
                      "INCR sent but not answered: outcome unknown; no INCR until Redis answers a PING");
            }
        }
    }

    fn connect_failed(&self, state: &mut LoopState, err: &RedisError) {
        let error = Escaped(&self.redis.describe_connect_failure(err)).to_string();
        let retry_every = humantime::format_duration(self.interval.max(MIN_RETRY_PERIOD));
        let refused = is_refusal(err);
        self.log_failure(state, err, &error, || {
            if refused {
                error!(redis = %self.redis, %error, %retry_every,
                       "Redis refused the connection; retrying");
            } else {
                warn!(redis = %self.redis, %error, %retry_every,
                      "cannot reach Redis; retrying");
            }
        });
    }

    /// Logs `err`, shown as `error`, through the state's [`FailureLog`]: `log_first` for a
    /// new kind of failure, a periodic count for repeats of the same kind.
    fn log_failure(
        &self,
        state: &mut LoopState,
        err: &RedisError,
        error: &str,
        log_first: impl FnOnce(),
    ) {
        match state.failures.failed(failure_kind(err), Instant::now()) {
            Report::New => log_first(),
            Report::Repeated(repeats) => {
                warn!(redis = %self.redis, %error, repeats, "{repeats} more attempts failed the same way");
            }
            Report::Quiet => debug!(%error, "attempt failed again"),
        }
    }

    fn record_health(&mut self, record: fn(&mut HealthRecorder) -> Option<std::io::Error>) {
        if let Some(err) = self.health.as_mut().and_then(record) {
            warn!(error = %err, "cannot record progress for the health check");
        }
    }
}

/// A tick Redis answered: the count, what was applied, and the replicas that acknowledged
/// it when `WAIT` went with it.
struct Counted {
    count: i64,
    applied: Applied,
    acknowledged: Option<i64>,
}

/// Logs which server the sentinels named as master `name`: at `info` when it changed
/// (a failover), else at `debug`.
fn note_master(state: &mut LoopState, name: &str, master: &str) {
    if state.last_master.as_deref() == Some(master) {
        debug!(%master, %name, "the sentinels name the same master");
    } else {
        info!(%master, %name, "found the Redis master through Sentinel");
        state.last_master = Some(master.to_owned());
    }
}

/// Sends one `PING` on `connection`; the connection back once Redis answers.
async fn ping(mut connection: Connection) -> Result<Connection, RedisError> {
    redis::cmd("PING")
        .query_async::<String>(connection.redis())
        .await?;
    Ok(connection)
}

/// True when a failed `INCR` leaves its connection untrustworthy: no reply came (the
/// outcome is unknown), or the node cannot take writes (with Sentinel, the master is
/// looked up again). A plain refusal (`WRONGTYPE`) keeps it.
fn drops_connection(err: &RedisError) -> bool {
    names_wrong_node(err) || !is_reply_error(err)
}

/// What a count that follows unanswered `INCR`s says about them: `unlogged` is how far
/// the counter moved beyond this worker's last logged count and this `INCR`.
fn resolution(unknowns: u64, unlogged: i64) -> &'static str {
    match unlogged {
        0 => "the INCR of unknown outcome was not applied",
        n if u64::try_from(n).is_ok_and(|n| n <= unknowns) => {
            "the INCR of unknown outcome was applied: the counter moved past the last logged count"
        }
        _ => {
            "the counter moved past the last logged count: the INCR of unknown outcome, other clients, or both"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_after_an_unanswered_incr_says_whether_it_was_applied() {
        assert_eq!(
            resolution(1, 0),
            "the INCR of unknown outcome was not applied"
        );
        assert!(resolution(1, 1).contains("was applied"));
        assert!(resolution(1, 5).contains("other clients"));
    }
}
