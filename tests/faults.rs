//! The counting loop under the faults a hostile operator or a flaky network brings: a
//! log reader that stops reading, idle connections closed by Redis, a frozen Redis,
//! `CLIENT KILL`, outages, replicas that do not acknowledge, a frozen worker, hostile
//! keys, starved resources and hang-up signals. The real binary, real `redis-server`s.

mod support;

use std::ffi::OsStr;
use std::io::{PipeReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{PATIENCE, RedisServer, Worker, send_signal, worker_command};

/// Waits until `condition` holds, at most [`PATIENCE`]; panics with `what` otherwise.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

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
    eventually("the worker counts past a full pipe", || {
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
    eventually("the pipe is full", || {
        redis.counter("contador").unwrap_or(0) > 2_000
    });
    assert_sigterm_ends_it_at_once(&mut child);
    drop(reader);
}

/// SIGTERM ends `child` with exit 0 well within a second's promise, generously bounded.
fn assert_sigterm_ends_it_at_once(child: &mut Child) {
    let stopping = Instant::now();
    send_signal(child.id(), libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
}

#[test]
fn an_idle_timeout_shorter_than_the_interval_costs_no_tick() {
    // Redis closes every connection idle for 1 s; the worker is idle 2 s between ticks.
    let redis = RedisServer::start_with_args(&["--timeout", "1"]);
    let url = redis.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "2s")]);
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
fn recovery_after_an_outage_comes_within_one_interval() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[("REDIS_URL", &url), ("INTERVAL", "2s")]);
    worker.wait_for_count(1);
    redis.kill();
    let (outage, _) = worker.wait_for_line_after(0, &["cannot reach Redis"]);
    thread::sleep(Duration::from_secs(3));
    redis.launch();
    let back = Instant::now();
    worker.wait_for_line_after(outage, &["Contador atual: "]);
    let took = back.elapsed();
    assert!(
        took < Duration::from_millis(3_500),
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
fn a_frozen_redis_leaves_at_most_one_incr_of_unknown_outcome_and_says_what_became_of_it() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("LOG_FORMAT", "json"),
    ]);
    worker.wait_for_line(&[r#""count":3,"#]);
    redis.signal(libc::SIGSTOP);
    worker.wait_for_line(&[r#""outcome":"unknown""#]);
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

#[test]
fn wait_reports_counts_that_fewer_replicas_acknowledged() {
    // A Redis without replicas: WAIT 1 can only time out with 0 acknowledgements.
    let redis = RedisServer::start();
    let url = redis.url();
    let worker = Worker::start(&[
        ("REDIS_URL", &url),
        ("INTERVAL", "100ms"),
        ("WAIT_REPLICAS", "1"),
        ("WAIT_TIMEOUT", "20ms"),
    ]);
    let line = worker.wait_for_line(&["WARN", "acknowledged by 0 of 1 replicas"]);
    assert!(line.contains("count="), "{line}");
    worker.wait_for_count(2);
    assert!(
        redis.counter("contador").unwrap() >= 2,
        "the increments stand"
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
    replica.query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
    worker.wait_for_count(1);
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
    let output = command.output().expect("run");
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
            let output = command.output().expect("run");
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
    eventually("healthy again after thawing", || {
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
    eventually("the state file exists", || {
        std::path::Path::new(health).exists()
    });
    assert_eq!(healthcheck(health, &url).0, Some(0), "young and ticking");
    thread::sleep(Duration::from_secs(31));
    let (code, reason) = healthcheck(health, &url);
    assert_eq!(code, Some(1), "{reason}");
    assert!(reason.contains("not counting"), "{reason}");
}
