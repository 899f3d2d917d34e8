//! Counting exactly once, the default: a tick whose reply was lost is sent again and
//! applied once, counts Redis lost come back, a reset does not. Each test ends with what
//! the promise is: the counts logged are 1, 2, 3, … each once, and Redis holds the last of
//! them (several workers: the number they logged together). Real `redis-server`s.

mod support;

use std::thread;
use std::time::Duration;

use support::monitor::TICK;
use support::net::LostReplies;
use support::{PATIENCE, RedisServer, Worker, assert_each_count_once, server_binary, wait_until};

/// A worker counting every 100 ms in the Redis at `url`.
fn counting(url: &str) -> Worker {
    Worker::start(&[("REDIS_URL", url), ("INTERVAL", "100ms")])
}

/// Stops `worker` and checks what it logged: every count once, in order, from 1, and Redis
/// holding the last. Returns the worker's output.
fn stop_and_check(mut worker: Worker, redis: &RedisServer) -> String {
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    let output = worker.output();
    let last = assert_each_count_once(&worker.counts(), 1, &output);
    assert_eq!(redis.counter("contador"), Some(last), "{output}");
    let final_line = output.lines().last().unwrap_or_default();
    assert!(final_line.contains("unsettled=false"), "{final_line}");
    // Counting exactly once, one record beside the key, the one the worker named at start,
    // set to expire within the record's lifetime (1 h by default); at most once, none.
    let named: Vec<&str> = output
        .split(" record=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .into_iter()
        .collect();
    let records: Vec<String> = redis.query(redis::cmd("KEYS").arg("{contador}:worker:*"));
    assert_eq!(records, named, "{output}");
    for record in &records {
        let expires_in: i64 = redis.query(redis::cmd("PTTL").arg(record));
        assert!((1..=3_600_000).contains(&expires_in), "{expires_in} ms");
    }
    output
}

/// Freezes the worker's Redis through `freeze` until the worker has logged an unknown
/// outcome, then waits for the line that says how Redis settled it, before the next count.
fn settles_after(worker: &Worker, freeze: impl FnOnce()) -> String {
    worker.wait_for_count(3);
    freeze();
    let (lost, _) = worker.wait_for_line_after(0, &[r#"outcome="unknown""#]);
    let (settled, line) = worker.wait_for_line_after(lost, &["the tick of unknown outcome had"]);
    let (counted, _) = worker.wait_for_line_after(lost, &["Contador atual: "]);
    assert!(settled < counted, "settled before the next count: {line}");
    line
}

#[test]
fn a_frozen_redis_settles_the_tick_and_logs_each_count_once() {
    let redis = RedisServer::start();
    let worker = counting(&redis.url());
    settles_after(&worker, || {
        redis.signal(libc::SIGSTOP);
        thread::sleep(Duration::from_secs(3));
        redis.signal(libc::SIGCONT);
    });
    worker.wait_for_line_after(0, &["Contador atual: 40"]);
    let output = stop_and_check(worker, &redis);
    let final_line = output.lines().last().unwrap_or_default();
    assert!(final_line.contains("unknown_outcomes=1 "), "{final_line}");
}

#[test]
fn a_redis_paused_for_writes_settles_the_tick_once_and_logs_each_count_once() {
    let redis = RedisServer::start();
    let worker = counting(&redis.url());
    // Writes wait out the pause: the tick and each resend of it go unanswered for 9 s.
    settles_after(&worker, || {
        redis.query::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(9_000).arg("WRITE"));
    });
    worker.wait_for_line_after(0, &["Contador atual: 20"]);
    let output = stop_and_check(worker, &redis);
    assert_eq!(
        output.matches("tick sent but not answered").count(),
        1,
        "{output}"
    );
    let final_line = output.lines().last().unwrap_or_default();
    assert!(final_line.contains("unknown_outcomes=1 "), "{final_line}");
}

/// `DEBUG SLEEP` on Redis 7 and newer only from a local connection it was told to allow.
fn debug_allowed() -> Vec<&'static str> {
    let version = std::process::Command::new(server_binary())
        .arg("--version")
        .output()
        .expect("the server's version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    if version.contains("v=6.") {
        Vec::new()
    } else {
        vec!["--enable-debug-command", "local"]
    }
}

#[test]
fn a_redis_busy_in_debug_sleep_settles_the_tick_and_logs_each_count_once() {
    let redis = RedisServer::start_with_args(&debug_allowed());
    let worker = counting(&redis.url());
    settles_after(&worker, || {
        let mut connection = redis.connection().expect("a connection for DEBUG SLEEP");
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query::<()>(&mut connection)
            .expect("DEBUG SLEEP");
    });
    worker.wait_for_line_after(0, &["Contador atual: 40"]);
    stop_and_check(worker, &redis);
}

#[test]
fn a_lost_reply_is_sent_again_and_redis_answers_with_the_count_it_produced() {
    let redis = RedisServer::start();
    let proxy = LostReplies::start(redis.port());
    let worker = counting(&proxy.url());
    let monitor = redis.monitor();
    let settled = settles_after(&worker, || proxy.lose_replies());
    // Redis executed the tick whose reply was lost: the resend is answered, not applied.
    assert!(settled.contains(r#"settled="applied before""#), "{settled}");
    worker.wait_for_line_after(0, &["Contador atual: 20"]);
    // The tick number is the script's first argument after its two keys.
    let ticks: Vec<String> = monitor
        .named("EVALSHA")
        .into_iter()
        .map(|seen| seen.args[4].clone())
        .collect();
    let sent_twice = ticks.windows(2).filter(|pair| pair[0] == pair[1]).count();
    assert_eq!(sent_twice, 1, "one tick sent twice: {ticks:?}");
    stop_and_check(worker, &redis);
}

#[test]
fn flushall_while_counting_resurrects_nothing_and_says_so_once() {
    let redis = RedisServer::start();
    let mut worker = counting(&redis.url());
    worker.wait_for_count(5);
    redis.query::<()>(&mut redis::cmd("FLUSHALL"));
    let (reset, _) = worker.wait_for_line_after(0, &["holds no record of this worker"]);
    worker.wait_for_line_after(reset, &["Contador atual: 5"]);
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    let output = worker.output();
    assert_eq!(output.matches("holds no record").count(), 1, "{output}");
    assert!(!output.contains("lost"), "{output}");
    let counts = worker.counts();
    let restart = counts
        .windows(2)
        .position(|pair| pair[1] <= pair[0])
        .unwrap()
        + 1;
    assert_each_count_once(&counts[..restart], 1, &output);
    let last = assert_each_count_once(&counts[restart..], 1, &output);
    assert_eq!(redis.counter("contador"), Some(last), "{output}");
}

/// Writes a snapshot of `redis` to disk and returns the counter it holds. `BGSAVE` forks
/// as the transaction runs, so no tick lands between the value read and the one saved
/// (`SAVE` is refused in a transaction; read after it, a tick could come in between).
fn snapshot(redis: &RedisServer) -> i64 {
    let mut connection = redis.connection().expect("a connection for BGSAVE");
    let (saved, _): (i64, ()) = redis::pipe()
        .atomic()
        .get("contador")
        .cmd("BGSAVE")
        .query(&mut connection)
        .expect("GET and BGSAVE in one transaction");
    wait_until("the snapshot written", PATIENCE, || {
        redis.info("persistence")["rdb_bgsave_in_progress"] == "0"
    });
    let persistence = redis.info("persistence");
    assert_eq!(
        persistence["rdb_last_bgsave_status"], "ok",
        "{persistence:?}"
    );
    saved
}

#[test]
fn a_redis_restarted_from_an_older_file_gets_the_lost_counts_back() {
    // A snapshot only, taken by hand: what a restart loses is what came after it.
    let mut redis = RedisServer::start_with_args(&["--appendonly", "no"]);
    let worker = counting(&redis.url());
    worker.wait_for_count(5);
    let saved = snapshot(&redis);
    worker.wait_for_count(saved + 10);
    redis.kill();
    redis.launch();
    let (restored, line) = worker.wait_for_line_after(0, &["counts this worker logged"]);
    let lost: i64 = line
        .split_once(" restored=")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no restored field: {line}"));
    assert!(lost >= 10, "{line}");
    let (_, next) = worker.wait_for_line_after(restored, &["Contador atual: "]);
    assert!(
        next.contains(&format!("Contador atual: {} ", saved + lost + 1)),
        "{next}"
    );
    worker.wait_for_line_after(restored, &["Contador atual: "]);
    stop_and_check(worker, &redis);
}

#[test]
fn three_workers_on_one_key_under_faults_hold_what_they_logged_together() {
    let redis = RedisServer::start();
    let proxy = LostReplies::start(redis.port());
    let mut workers: Vec<Worker> = (0..3).map(|_| counting(&proxy.url())).collect();
    workers[2].wait_for_line(&["Contador atual: "]);
    thread::sleep(Duration::from_secs(1));
    proxy.lose_replies();
    thread::sleep(Duration::from_secs(1));
    redis.signal(libc::SIGSTOP);
    thread::sleep(Duration::from_secs(3));
    redis.signal(libc::SIGCONT);
    for worker in &workers {
        worker.wait_for_line(&["the tick of unknown outcome had"]);
    }
    thread::sleep(Duration::from_secs(1));
    let mut logged = 0;
    for worker in &mut workers {
        worker.signal(libc::SIGTERM);
        assert_eq!(worker.wait_for_exit().code(), Some(0));
        let counts = worker.counts();
        assert!(
            counts.windows(2).all(|pair| pair[0] < pair[1]),
            "{counts:?}"
        );
        logged += counts.len();
    }
    let logged = i64::try_from(logged).unwrap();
    assert_eq!(redis.counter("contador"), Some(logged));
}

#[test]
fn a_flushed_script_cache_costs_no_tick_and_the_script_is_sent_once_a_server() {
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let worker = Worker::start(&[("REDIS_URL", &redis.url()), ("INTERVAL", "250ms")]);
    worker.wait_for_count(3);
    redis.query::<()>(redis::cmd("SCRIPT").arg("FLUSH"));
    let flushed = monitor.wait_for("SCRIPT", 1, PATIENCE)[0].at;
    let ticks = monitor.wait_for(TICK, 8, PATIENCE);
    // Each tick is one EVALSHA; the script's source goes at the first tick and after the
    // flush, each time after a NOSCRIPT, on the same tick.
    let sources: Vec<f64> = ticks
        .iter()
        .filter(|t| t.command == "EVAL")
        .map(|t| t.at)
        .collect();
    assert_eq!(sources.len(), 2, "{ticks:#?}");
    assert!(sources[1] > flushed, "{ticks:#?}");
    let evalshas = ticks.iter().filter(|t| t.command == "EVALSHA").count();
    assert_eq!(evalshas, ticks.len() - 2, "{ticks:#?}");
    // The flush costs no tick: counts stay 250 ms apart.
    let applied: Vec<f64> = monitor.named("INCRBY").iter().map(|t| t.at).collect();
    for pair in applied.windows(2) {
        assert!(pair[1] - pair[0] < 0.45, "ticks {applied:?}");
    }
    stop_and_check(worker, &redis);
}

#[test]
fn counting_at_most_once_sends_a_plain_incr_and_keeps_no_record() {
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let worker = Worker::start(&[
        ("REDIS_URL", &redis.url()),
        ("INTERVAL", "100ms"),
        ("COUNTING", "at-most-once"),
    ]);
    worker.wait_for_count(3);
    let commands: Vec<String> = monitor
        .seen()
        .into_iter()
        .map(|seen| seen.command)
        .collect();
    assert!(
        commands.iter().all(|c| c != "EVALSHA" && c != "EVAL"),
        "{commands:?}"
    );
    assert!(commands.iter().any(|c| c == "INCR"), "{commands:?}");
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("*"));
    assert_eq!(keys, ["contador"]);
    stop_and_check(worker, &redis);
}

#[test]
fn a_user_set_up_for_a_plain_incr_is_told_what_to_grant_and_counts_once_granted() {
    let redis = RedisServer::start();
    let setuser = |rule: &str| {
        let mut command = redis::cmd("ACL");
        command
            .arg("SETUSER")
            .arg("counter")
            .arg("reset")
            .arg("on")
            .arg(">pw");
        command.arg(rule.split(' ').collect::<Vec<_>>());
        redis.query::<()>(&mut command);
    };
    setuser("resetkeys ~contador resetchannels -@all +incr +ping");
    let url = format!("redis://counter:pw@127.0.0.1:{}", redis.port());
    let worker = counting(&url);
    worker.wait_for_line(&["grant the rule `counter-worker acl-rule` prints"]);
    let (status, rule, _) = support::run_to_exit(&["acl-rule"], &[]);
    assert!(status.success());
    setuser(rule.trim());
    worker.wait_for_count(5);
    stop_and_check(worker, &redis);
}

#[test]
fn a_worker_stopped_before_its_tick_of_unknown_outcome_is_settled_says_so() {
    let redis = RedisServer::start();
    let mut worker = counting(&redis.url());
    worker.wait_for_count(3);
    redis.signal(libc::SIGSTOP);
    worker.wait_for_line(&[r#"outcome="unknown""#]);
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    redis.signal(libc::SIGCONT);
    let final_line = worker.wait_for_line(&["stopped on SIGTERM"]);
    assert!(final_line.contains("unsettled=true"), "{final_line}");
    // Nobody sends that tick again: Redis holds the last count logged, or one more.
    let last = *worker.counts().last().unwrap();
    let stored = redis.counter("contador").unwrap();
    assert!((last..=last + 1).contains(&stored), "{stored} after {last}");
}
