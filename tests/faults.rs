//! The counting loop under the faults a hostile operator or a flaky network brings: a
//! log reader that stops reading, idle connections closed by Redis, a frozen Redis,
//! `CLIENT KILL`, outages, replicas that do not acknowledge, a frozen worker, hostile
//! keys, starved resources and hang-up signals. The real binary, real `redis-server`s.

mod support;

use std::ffi::OsStr;
use std::io::{PipeReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::monitor::{Monitor, Seen, TICK};
use support::net::{CountingListener, IdleCutoff, SlowReplies};
use support::{
    PATIENCE, RedisServer, Worker, output_within, send_signal, wait_until, wait_within,
    worker_command,
};

/// A worker counting every millisecond whose stdout is a pipe; the test holds the
/// reading end and decides when, if ever, to read it.
fn fast_worker_writing_to_a_pipe(redis: &RedisServer) -> (Child, PipeReader) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let url = redis.url();
    let child = worker_command(&[], &[("REDIS_URL", &url), ("INTERVAL", "1ms")])
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .expect("start counter-worker");
    (child, reader)
}

#[test]
fn a_log_reader_that_stops_reading_costs_log_lines_never_counts() {
    let redis = RedisServer::start();
    let (mut child, mut reader) = fast_worker_writing_to_a_pipe(&redis);
    // Nobody reads: the pipe fills (64 KiB, a few hundred lines) and stays full.
    wait_until("the worker counts past a full pipe", PATIENCE, || {
        redis.counter("contador").unwrap_or(0) > 3_000
    });
    let before = redis.counter("contador").unwrap();
    thread::sleep(Duration::from_millis(500));
    let after = redis.counter("contador").unwrap();
    assert!(
        after > before + 50,
        "counting slowed to {before} -> {after}"
    );

    // The stall ends: the loss is reported once lines flow again.
    let drained = thread::spawn(move || {
        let mut output = String::new();
        let _ = reader.read_to_string(&mut output);
        output
    });
    thread::sleep(Duration::from_millis(500));
    assert_sigterm_ends_it_at_once(&mut child);
    let output = drained.join().unwrap();
    assert!(
        output.contains("standard output was not read") && output.contains("log lines dropped"),
        "no report of the dropped lines"
    );
    let last = output.lines().last().unwrap_or_default();
    assert!(last.contains("stopped on SIGTERM"), "{last}");
    let dropped: u64 = last
        .split("dropped_log_lines=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dropped_log_lines in {last}"));
    assert!(dropped > 0, "{last}");
}

#[test]
fn sigterm_ends_a_worker_whose_log_reader_never_reads() {
    let redis = RedisServer::start();
    let (mut child, reader) = fast_worker_writing_to_a_pipe(&redis);
    wait_until("the pipe is full", PATIENCE, || {
        redis.counter("contador").unwrap_or(0) > 2_000
    });
    assert_sigterm_ends_it_at_once(&mut child);
    drop(reader);
}

/// SIGTERM ends `child` with exit 0 well within a second's promise, generously bounded.
fn assert_sigterm_ends_it_at_once(child: &mut Child) {
    assert_sigterm_ends_it_within(child, Duration::from_secs(3));
}

/// SIGTERM ends `child` with exit 0 within `bound`; a child still running then is killed
/// and fails the test.
fn assert_sigterm_ends_it_within(child: &mut Child, bound: Duration) -> Duration {
    let stopping = Instant::now();
    send_signal(child.id(), libc::SIGTERM);
    let Some(status) = wait_within(child, bound) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("still running {bound:?} after SIGTERM");
    };
    let took = stopping.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took < bound, "SIGTERM took {took:?}");
    took
}

/// The bytes waiting in the pipe whose reading end is `reader`.
fn queued_bytes(reader: &PipeReader) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD on a pipe we own writes one int.
    let done = unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &raw mut queued) };
    assert_eq!(done, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    usize::try_from(queued).expect("a byte count")
}

#[test]
fn sigterm_with_a_stalled_reader_waits_at_most_a_moment_for_the_last_lines() {
    // The stall of a real log driver: a small pipe (one page), a worker at a normal pace
    // filling it in a few seconds, then nobody reading. The queue stays far from full, so
    // the final flush really waits, and must give up after its 0.3 s.
    let redis = RedisServer::start();
    let (reader, writer) = std::io::pipe().expect("pipe");
    // SAFETY: F_SETPIPE_SZ on a pipe we own; the kernel rounds up to one page.
    let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert_eq!(
        size,
        4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    let url = redis.url();
    let mut child = worker_command(&[], &[("REDIS_URL", &url), ("INTERVAL", "100ms")])
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .expect("start counter-worker");
    // Full: no room for one more line (a line is written whole, or waits), so nothing
    // more arrives over five ticks.
    wait_until("the pipe is full", PATIENCE, || {
        let before = queued_bytes(&reader);
        thread::sleep(Duration::from_millis(500));
        before > 4096 - 512 && queued_bytes(&reader) == before
    });
    let full = queued_bytes(&reader);
    // Lines queue up behind the full pipe, a few dozen.
    thread::sleep(Duration::from_secs(3));
    assert_eq!(queued_bytes(&reader), full, "the pipe was not full");
    assert!(
        redis.counter("contador").unwrap_or(0) > 30,
        "the worker went on counting"
    );
    let took = assert_sigterm_ends_it_within(&mut child, Duration::from_millis(1_500));
    assert!(
        took >= Duration::from_millis(250),
        "exited after {took:?}: the final flush did not wait at all"
    );
    drop(reader);
}

#[test]
fn an_idle_timeout_shorter_than_the_interval_costs_no_tick() {
    // Redis closes every connection idle for 1 s; the worker is idle 2 s between ticks.
    let redis = RedisServer::start_with_args(&["--timeout", "1"]);
    let url = redis.url();
    let worker = Worker::start_mid_second(&[("REDIS_URL", &url), ("INTERVAL", "2s")]);
    worker.wait_for_count(1);
    let first = Instant::now();
    worker.wait_for_count(5);
    let took = first.elapsed();
    // Four ticks take 8 s; losing every other tick would take 16 s.
    assert!(
        took < Duration::from_secs(12),
        "counts 1 to 5 took {took:?}"
    );
    assert_eq!(worker.counts()[..5], [1, 2, 3, 4, 5]);
    assert!(!worker.output().contains("outcome unknown"));
    // Redis closed the worker's idle connection before each of the four ticks, and the
    // worker opened a new one for it: five, besides the test's own two (the start's PING,
    // this INFO).
    let mut connection = redis.connection().expect("connect for INFO");
    let accepted = RedisServer::stat(&mut connection, "total_connections_received");
    assert!(accepted >= 7, "Redis accepted only {accepted} connections");
}

#[test]
fn an_idle_timer_firing_as_the_tick_begins_costs_the_ping_not_the_incr() {
    // The proxy closes a connection idle for 600 ms when the next request arrives, so the
    // close is never seen before the tick sends: only a PING sent first can take the loss.
    let redis = RedisServer::start();
    let proxy = IdleCutoff::start(redis.port(), Duration::from_millis(600));
    let url = proxy.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "1s")]);
    worker.wait_for_count(1);
    let first = Instant::now();
    worker.wait_for_count(6);
    let took = first.elapsed();
    // Five ticks take 5 s; an INCR lost to the cut, then the PING and an interval, 7 s more.
    assert!(took < Duration::from_secs(8), "counts 1 to 6 took {took:?}");
    assert_eq!(worker.counts()[..6], [1, 2, 3, 4, 5, 6]);
    assert!(
        !worker.output().contains("outcome unknown"),
        "{}",
        worker.output()
    );
    assert!(
        proxy.cut() >= 4,
        "the proxy cut only {} connections",
        proxy.cut()
    );
}

#[test]
fn a_connection_used_within_half_a_second_goes_straight_to_the_incr() {
    let redis = RedisServer::start();
    let url = redis.url();
    // 250 ms apart: a tick late by 250 ms (a loaded machine) would still go straight out.
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "250ms")]);
    worker.wait_for_count(1);
    let monitor = redis.monitor();
    let incrs = monitor.wait_for(TICK, 5, PATIENCE);
    let pings = monitor.named("PING");
    assert!(
        pings.is_empty(),
        "PINGs between INCRs 250 ms apart: {pings:#?}"
    );
    assert!(incrs.iter().all(|incr| incr.client == incrs[0].client));
}

#[test]
fn client_kill_costs_no_tick() {
    let redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "2s")]);
    worker.wait_for_count(2);
    let counted = Instant::now();
    thread::sleep(Duration::from_millis(300));
    let killed: i64 = redis.query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"));
    assert!(killed >= 1, "the worker's connection was not killed");
    worker.wait_for_count(3);
    let gap = counted.elapsed();
    // The next tick is 2 s after the last; a lost tick would make it 4 s.
    assert!(
        gap < Duration::from_millis(3_500),
        "count 3 came {gap:?} after 2"
    );
    assert!(!worker.output().contains("outcome unknown"));
}

#[test]
fn client_kill_costs_no_tick_below_the_idle_ping() {
    // At 250 ms no PING goes first: only Redis's close, seen as it happens, saves the tick.
    let redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "250ms")]);
    worker.wait_for_count(2);
    let monitor = redis.monitor();
    let last = monitor.wait_for(TICK, 1, PATIENCE).remove(0);
    let counted = last.at;
    // By address: a TYPE normal kill would take the MONITOR connection with it.
    let killed: i64 = redis.query(
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ADDR")
            .arg(&last.client),
    );
    assert_eq!(killed, 1, "the worker's connection was not killed");
    let next = monitor.wait_for(TICK, 2, PATIENCE)[1].at;
    // The next tick is 250 ms after the last; a lost one (an INCR of unknown outcome, then
    // a PING and an interval) would make it 750 ms or more.
    let gap = next - counted;
    assert!(gap < 0.6, "the next INCR came {gap:.3}s after the last");
    assert!(
        !worker.output().contains("outcome unknown"),
        "{}",
        worker.output()
    );
    assert!(monitor.named("PING").is_empty(), "{:#?}", monitor.seen());
}

#[test]
fn recovery_after_an_outage_comes_within_one_interval() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "2s"),
        ("RUST_LOG", "counter_worker=debug"),
    ]);
    worker.wait_for_count(1);
    redis.kill();
    let (outage, _) = worker.wait_for_line_after(0, &["cannot reach Redis"]);
    thread::sleep(Duration::from_secs(3));
    // Back just after a failed attempt: the worst moment, a whole interval before the
    // next one. A retry slower than the interval shows here.
    let mark = worker.line_count();
    worker.wait_for_line_after(mark, &["connecting to Redis"]);
    redis.launch();
    let back = Instant::now();
    let (resumed, _) = worker.wait_for_line_after(outage, &["Contador atual: "]);
    let took = back.elapsed();
    assert!(
        took < Duration::from_millis(3_500),
        "resumed {took:?} after Redis came back"
    );
    assert!(
        took < Duration::from_millis(2_500),
        "resumed {took:?} after Redis came back; the interval is 2s"
    );
    // The recovery says how many attempts failed, before the count it made.
    let (said, line) = worker.wait_for_line_after(outage, &["counting again; "]);
    assert!(said < resumed, "after the count: {line}");
    let output = worker.output();
    let attempts = output.matches("connecting to Redis").count();
    let failed: usize = line
        .split("failed_attempts=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed_attempts in {line}"));
    assert!(
        line.contains(&format!(
            "counting again; {failed} earlier attempts had failed"
        )),
        "{line}"
    );
    // At least the attempts of the 3 s outage (one every 2 s), and never more than were made.
    assert!(
        (2..attempts).contains(&failed),
        "{failed} failed of {attempts} attempts: {output}"
    );
    // Debug lines: each attempt's outcome, each tick's INCR latency.
    worker.wait_for_line_after(outage, &["INCR done", "latency=", "ok=true"]);
    assert!(output.contains("connected to Redis"), "{output}");
}

#[test]
fn recovery_at_a_short_interval_comes_within_about_100ms() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "1ms")]);
    worker.wait_for_count(1);
    redis.kill();
    let (outage, _) = worker.wait_for_line_after(0, &["cannot reach Redis"]);
    thread::sleep(Duration::from_secs(1));
    redis.launch();
    let back = Instant::now();
    worker.wait_for_line_after(outage, &["Contador atual: "]);
    let took = back.elapsed();
    // One attempt per 100 ms: at most 100 ms to wait, and a generous margin for load.
    assert!(
        took < Duration::from_millis(600),
        "resumed {took:?} after Redis came back"
    );
}

#[test]
fn a_down_redis_gets_at_most_one_attempt_per_100ms_and_repeats_are_summarised() {
    let redis = RedisServer::not_started(None);
    let url = redis.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "1ms"),
        ("RUST_LOG", "counter_worker=debug"),
    ]);
    worker.wait_for_line(&["cannot reach Redis"]);
    let started = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let output = worker.output();
    let elapsed = started.elapsed();
    let attempts = output.matches("connecting to Redis").count() as u128;
    let allowed = elapsed.as_millis() / 100 + 5;
    assert!(attempts <= allowed, "{attempts} attempts in {elapsed:?}");
    assert!(attempts >= 5, "only {attempts} attempts in {elapsed:?}");
    // One full warning; the repeats are counted, not logged one by one.
    assert_eq!(output.matches("cannot reach Redis").count(), 1, "{output}");
}

#[test]
fn a_down_redis_gets_at_most_one_connection_per_100ms() {
    // Redis down behind a load balancer: every connection is accepted and closed at once.
    // Count what reaches the port, not what the worker logs.
    let listener = CountingListener::start();
    let url = listener.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "1ms")]);
    worker.wait_for_line(&["cannot reach Redis"]);
    let before = listener.accepted();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let connections = listener.accepted() - before;
    let elapsed = started.elapsed();
    let allowed = elapsed.as_millis() / 100 + 2;
    assert!(
        connections as u128 <= allowed,
        "{connections} connections in {elapsed:?}"
    );
    // One a tick, never more than one per 100 ms: about 30, however loaded the machine.
    assert!(
        connections >= 15,
        "only {connections} connections in {elapsed:?}"
    );
}

/// Redis's view of what followed an `INCR` of unknown outcome: the first `INCR` on any
/// connection but the one that went unanswered comes after a `PING` answered on that same
/// fresh connection, and at least one `interval` after it.
fn assert_ping_came_first(monitor: &Monitor, interval: Duration) {
    let seen: Vec<Seen> = monitor
        .seen()
        .into_iter()
        .filter(|seen| seen.command == "INCR" || seen.command == "PING")
        .collect();
    let frozen = &seen.first().expect("an INCR before the freeze").client;
    let next = seen
        .iter()
        .position(|seen| seen.command == "INCR" && &seen.client != frozen)
        .unwrap_or_else(|| panic!("no INCR on a fresh connection: {seen:#?}"));
    let incr = &seen[next];
    let Some(ping) = seen[..next]
        .iter()
        .rev()
        .find(|seen| seen.command == "PING" && seen.client == incr.client)
    else {
        panic!("an INCR on a fresh connection without a PING before it: {seen:#?}");
    };
    let gap = incr.at - ping.at;
    assert!(
        gap >= interval.as_secs_f64() * 0.9,
        "the INCR came {gap:.3}s after the PING, not an interval: {seen:#?}"
    );
}

#[test]
fn counting_at_most_once_a_freeze_shorter_than_the_reply_timeout_is_followed_by_a_ping_first() {
    // Redis resumes the moment the worker gives up on the INCR: the new connection's
    // handshake succeeds, and only the PING stands between it and a second INCR.
    let redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("COUNTING", "at-most-once"),
    ]);
    worker.wait_for_count(2);
    let monitor = redis.monitor();
    monitor.wait_for("INCR", 1, PATIENCE);
    redis.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    let (lost, _) = worker.wait_for_line_after(0, &["outcome unknown"]);
    redis.signal(libc::SIGCONT);
    // The next tick's INCR (within 100 ms) waits its 2 s reply timeout, no longer.
    let waited = frozen.elapsed();
    assert!(
        waited < Duration::from_millis(3_500),
        "the unanswered INCR was given up after {waited:?}"
    );
    let (counted, _) = worker.wait_for_line_after(lost, &["Contador atual: "]);
    assert_ping_came_first(&monitor, Duration::from_millis(100));
    let (answered, _) = worker.wait_for_line_after(lost, &["Redis answers again"]);
    assert!(answered < counted, "the log says so before the count");
}

#[test]
fn counting_at_most_once_a_frozen_redis_leaves_one_incr_of_unknown_outcome_never_resent() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("LOG_FORMAT", "json"),
        ("COUNTING", "at-most-once"),
    ]);
    worker.wait_for_line(&[r#""count":3,"#]);
    let monitor = redis.monitor();
    monitor.wait_for("INCR", 1, PATIENCE);
    redis.signal(libc::SIGSTOP);
    let (lost, _) = worker.wait_for_line_after(0, &[r#""outcome":"unknown""#]);
    thread::sleep(Duration::from_secs(4));
    redis.signal(libc::SIGCONT);
    let (resolved, line) = worker.wait_for_line_after(0, &["the INCR of unknown outcome"]);
    let (_, next) = worker.wait_for_line_after(resolved, &["Contador atual: "]);
    assert!(
        next.contains(r#""count":"#),
        "the resolution comes before a count: {line}"
    );
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    let output = worker.output();
    assert_eq!(
        output.matches(r#""outcome":"unknown""#).count(),
        1,
        "one pause, one unknown: {output}"
    );
    let final_line = worker.wait_for_line(&["stopped on SIGTERM"]);
    assert!(
        final_line.contains(r#""unknown_outcomes":1"#),
        "{final_line}"
    );
    // Redis's value = logged successes + applied unknowns.
    let counts = json_counts(&output);
    let stored = redis.counter("contador").unwrap();
    let applied = i64::from(line.contains("was applied"));
    assert_eq!(stored, counts.len() as i64 + applied, "{output}");
    assert_eq!(stored, *counts.last().unwrap());
    for pair in counts.windows(2) {
        assert!(pair[1] > pair[0] && pair[1] - pair[0] <= 2, "{pair:?}");
    }
    assert_ping_came_first(&monitor, Duration::from_millis(100));
    let (answered, _) = worker.wait_for_line_after(lost, &["Redis answers again"]);
    assert!(
        answered < resolved,
        "the PING is answered before the next count"
    );
}

fn json_counts(output: &str) -> Vec<i64> {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            event["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Contador atual"))
        })
        .filter_map(|event| event["count"].as_i64())
        .collect()
}

/// A worker on `redis`, which has no replicas, asking for one with `WAIT_TIMEOUT`
/// `timeout`: WAIT 1 can only time out with 0 acknowledgements. Returns the worker and its
/// first warning saying so.
fn waiting_for_a_replica_in_vain(redis: &RedisServer, timeout: &str) -> (Worker, String) {
    let url = redis.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("WAIT_REPLICAS", "1"),
        ("WAIT_TIMEOUT", timeout),
    ]);
    let line = worker.wait_for_line(&["WARN", "acknowledged by 0 of 1 replicas"]);
    (worker, line)
}

#[test]
fn wait_reports_counts_that_fewer_replicas_acknowledged() {
    let redis = RedisServer::start();
    let (worker, line) = waiting_for_a_replica_in_vain(&redis, "20ms");
    assert!(line.contains("count="), "{line}");
    worker.wait_for_count(2);
    assert!(
        redis.counter("contador").unwrap() >= 2,
        "the increments stand"
    );
}

#[test]
fn counts_every_replica_acknowledged_carry_no_warning() {
    // One replica, and WAIT for one: each count is acknowledged by all that were asked for.
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &port]);
    wait_until("the replica is in sync", PATIENCE, || {
        replica.info("replication").get("master_link_status") == Some(&"up".to_owned())
    });
    let url = primary.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("WAIT_REPLICAS", "1"),
        ("WAIT_TIMEOUT", "1s"),
    ]);
    worker.wait_for_count(5);
    assert!(
        !worker.output().contains("acknowledged by"),
        "{}",
        worker.output()
    );
    assert!(
        replica.counter("contador") >= Some(1),
        "the replica has the counts"
    );
}

#[test]
fn a_wait_longer_than_the_reply_timeout_is_waited_for() {
    // WAIT_TIMEOUT may be up to a minute: the reply to INCR + WAIT is given that much more
    // than the usual 2 s, so a WAIT that times out is a count, not an unknown outcome.
    let redis = RedisServer::start();
    let (worker, line) = waiting_for_a_replica_in_vain(&redis, "2500ms");
    assert!(line.contains("count=1"), "{line}");
    worker.wait_for_count(1);
    assert!(
        !worker.output().contains("outcome unknown"),
        "{}",
        worker.output()
    );
}

#[test]
fn a_read_only_replica_is_left_and_tried_again() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &port]);
    let url = replica.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "100ms")]);
    let line = worker.wait_for_line(&["READONLY"]);
    assert!(line.contains("cannot take writes here"), "{line}");
    assert_each_refusal_costs_the_connection(&replica);
    replica.query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
    worker.wait_for_count(1);
}

/// A worker refused by `redis` every 100 ms tick opens a new connection for each tick,
/// as Redis's own count of the connections it received shows.
fn assert_each_refusal_costs_the_connection(redis: &RedisServer) {
    let mut observer = redis.connection().expect("observer connection");
    let before = RedisServer::stat(&mut observer, "total_connections_received");
    let started = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let connections = RedisServer::stat(&mut observer, "total_connections_received") - before;
    // Ten ticks a second; a worker that kept its connection would open none.
    assert!(
        connections >= 5,
        "{connections} new connections in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_replica_cut_off_from_its_master_says_masterdown_and_is_left() {
    // A writable replica that serves no stale data: INCR gets MASTERDOWN, not READONLY.
    let replica = RedisServer::orphan_replica(&[
        "--replica-read-only",
        "no",
        "--replica-serve-stale-data",
        "no",
    ]);
    let url = replica.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "100ms")]);
    let line = worker.wait_for_line(&["MASTERDOWN"]);
    assert!(line.contains("cannot take writes here"), "{line}");
    assert_each_refusal_costs_the_connection(&replica);
    replica.query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
    worker.wait_for_count(1);
}

/// The first `count` INCRs, as Redis executed them, of a worker ticking every `interval`
/// whose every reply is held back `delay_ms` by a proxy.
fn incrs_behind_slow_replies(delay_ms: u64, interval: &str, count: usize) -> Vec<Seen> {
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let proxy = SlowReplies::start(redis.port(), Duration::from_millis(delay_ms));
    let url = proxy.url();
    let _worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", interval)]);
    monitor.wait_for(TICK, count, PATIENCE)
}

#[test]
fn ticks_missed_behind_a_slow_reply_are_skipped_not_replayed() {
    // Each reply takes 1.1 s, longer than the 1 s interval: the grid point it covers is
    // skipped, so the next INCR waits for the one after; a replayed tick would follow the
    // reply at once.
    let incrs = incrs_behind_slow_replies(1_100, "1s", 4);
    // The first INCR follows the slow handshake, off the grid; from the second on, two
    // intervals apart (a replayed tick: 1.1 s).
    for pair in incrs[1..].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= 1.9, "INCRs {gap:.3}s apart: {incrs:#?}");
    }
}

#[test]
fn a_slow_incr_does_not_push_later_ticks_back() {
    // Every reply takes 200 ms; Redis executes each INCR the moment it arrives.
    let incrs = incrs_behind_slow_replies(200, "500ms", 9);
    // From the second INCR on, the ticks sit on the grid: seven intervals, 3.5 s. Each
    // tick pushed back by its reply would take 7 × 700 ms = 4.9 s.
    let span = incrs[8].at - incrs[1].at;
    assert!(
        (3.4..4.1).contains(&span),
        "INCRs 2 to 9 took {span:.3}s: {incrs:#?}"
    );
}

#[test]
fn sighup_stops_gracefully() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "100ms")]);
    worker.wait_for_count(1);
    worker.signal(libc::SIGHUP);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    worker.wait_for_line(&["stopped on SIGHUP"]);
}

#[test]
fn a_hostile_key_cannot_forge_or_split_log_lines() {
    let redis = RedisServer::start();
    let url = redis.url();
    let key = "k\nContador atual: 999999\r\u{1b}[2J";
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("COUNTER_KEY", key),
    ]);
    worker.wait_for_count(2);
    let output = worker.output();
    for line in output.lines() {
        assert!(
            line.starts_with("20"),
            "a line without a timestamp: {line:?}"
        );
        assert!(!line.contains('\u{1b}'), "a raw escape: {line:?}");
    }
    assert!(
        output.contains(r"key=k\nContador atual: 999999\r\u{1b}[2J"),
        "{output}"
    );
    assert_eq!(
        redis.counter(key),
        Some(worker.counts().last().copied().unwrap())
    );
}

#[test]
fn a_setting_that_is_not_utf8_is_named() {
    let mut command = worker_command(&[], &[]);
    command.env("COUNTER_KEY", OsStr::from_bytes(b"bad\xff"));
    let output = output_within(command, PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid COUNTER_KEY") && stderr.contains("not valid UTF-8"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_fifo_as_password_file_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("password");
    let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    let (status, _, stderr) =
        support::run_to_exit(&[], &[("REDIS_PASSWORD_FILE", fifo.to_str().unwrap())]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn too_few_file_descriptors_exit_1_with_one_line() {
    let redis = RedisServer::start();
    let url = redis.url();
    for args in [&[][..], &["healthcheck"][..]] {
        for limit in [8, 10] {
            let mut command = worker_command(args, &[("REDIS_URL", &url)]);
            // SAFETY: setrlimit is async-signal-safe; it only lowers this child's limit.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let output = output_within(command, PATIENCE);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{args:?} at {limit}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains("Too many open files"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// The health check as the container engine runs it: beside the worker, same settings.
fn healthcheck(health_file: &str, url: &str) -> (Option<i32>, String) {
    let (status, _, stderr) = support::run_to_exit(
        &["healthcheck"],
        &[("HEALTH_FILE", health_file), ("REDIS_URL", url)],
    );
    (status.code(), stderr)
}

#[test]
fn healthcheck_turns_unhealthy_when_the_worker_freezes_and_healthy_when_it_thaws() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("health");
    let health = health.to_str().unwrap();
    let mut worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("HEALTH_FILE", health),
    ]);
    worker.wait_for_count(2);
    assert_eq!(healthcheck(health, &url).0, Some(0));

    // Frozen: no tick for 2 × 100 ms + 5 s. Redis itself is fine all along.
    worker.signal(libc::SIGSTOP);
    thread::sleep(Duration::from_millis(5_500));
    let (code, reason) = healthcheck(health, &url);
    assert_eq!(code, Some(1), "{reason}");
    assert!(reason.contains("frozen"), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason}");

    worker.signal(libc::SIGCONT);
    wait_until("healthy again after thawing", PATIENCE, || {
        healthcheck(health, &url).0 == Some(0)
    });

    // Killed: the state file stays, but no live worker holds it; the check PINGs Redis.
    worker.signal(libc::SIGKILL);
    worker.wait_for_exit();
    assert!(std::path::Path::new(health).exists());
    assert_eq!(
        healthcheck(health, &url).0,
        Some(0),
        "a stale file is no frozen worker"
    );
    let dead = support::loopback_url(support::free_port());
    let (code, reason) = healthcheck(health, &dead);
    assert_eq!(code, Some(1));
    assert!(reason.contains("did not answer PING"), "{reason}");
}

#[test]
fn healthcheck_with_a_state_file_it_cannot_open_says_so_instead_of_pinging() {
    // Only a missing file means "no worker here"; a path it cannot open (its parent is a
    // file) is a broken setup, reported, even while Redis answers PING.
    let redis = RedisServer::start();
    let url = redis.url();
    let parent = support::file_with("not a directory");
    let health = parent.path().join("health");
    let (code, reason) = healthcheck(health.to_str().unwrap(), &url);
    assert_eq!(code, Some(1), "{reason}");
    assert!(reason.contains("cannot open"), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason}");
}

#[test]
fn healthcheck_turns_unhealthy_when_the_worker_cannot_count_for_30s() {
    let redis = RedisServer::not_started(None);
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let health = dir.path().join("health");
    let health = health.to_str().unwrap();
    let _worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "1s"),
        ("HEALTH_FILE", health),
    ]);
    wait_until("the state file exists", PATIENCE, || {
        std::path::Path::new(health).exists()
    });
    assert_eq!(healthcheck(health, &url).0, Some(0), "young and ticking");
    thread::sleep(Duration::from_secs(31));
    let (code, reason) = healthcheck(health, &url);
    assert_eq!(code, Some(1), "{reason}");
    assert!(reason.contains("not counting"), "{reason}");
}
