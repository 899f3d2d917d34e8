//! The worker's runtime contract, checked end to end: the real binary against a real
//! `redis-server`, through outages, bad replies, wrong passwords and signals.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::tls_lab::Certificates;
use support::{
    PATIENCE, RedisServer, SilentServer, Worker, fast_worker, file_with, free_port, path_str,
    worker_command,
};

#[test]
fn counts_in_redis_and_logs_each_value() {
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_count(3);
    // Redis's view of everything the worker sent: the handshake, then the script only (by
    // its hash, by its source when not cached), which reads and writes the worker's record
    // and increments the key.
    for seen in monitor.seen() {
        let allowed: &[&str] = if seen.client == "lua" {
            &["GET", "INCRBY", "SET"]
        } else {
            &["HELLO", "CLIENT", "EVALSHA", "EVAL"]
        };
        assert!(
            allowed.contains(&seen.command.as_str()),
            "the worker sent {seen:?}"
        );
    }
    assert!(monitor.named("INCRBY").len() >= 3);
    // Output flows: nothing was dropped, so nothing says so.
    assert!(!worker.output().contains("dropped"), "{}", worker.output());
    let logged = worker.counts();
    assert_eq!(logged[..3], [1, 2, 3], "the counter never jumps");
    let stored = redis
        .counter("contador")
        .expect("the default key is contador");
    assert!(stored >= 3, "Redis holds {stored}");
}

#[test]
fn the_default_interval_is_two_seconds() {
    let redis = RedisServer::start();
    let url = redis.url();
    let monitor = redis.monitor();
    let worker = Worker::start(&[("REDIS_URL", url.as_str())]);
    worker.wait_for_line(&["interval=2s"]);
    worker.wait_for_count(1);
    thread::sleep(Duration::from_millis(800));
    assert_eq!(worker.counts(), [1], "no second INCR before two seconds");
    // Redis's clock: the second increment is executed two seconds after the first, late by
    // little more than a loaded machine's scheduling.
    let incrs = monitor.wait_for("INCRBY", 2, PATIENCE);
    let gap = incrs[1].at - incrs[0].at;
    assert!((1.95..2.5).contains(&gap), "INCRs {gap:.3}s apart");
}

#[test]
fn uses_the_configured_key_and_interval() {
    let redis = RedisServer::start();
    let url = redis.url();
    let interval = Duration::from_millis(400);
    // Before the worker exists, so before the first grid point.
    let started = Instant::now();
    let worker = Worker::start(&[
        ("REDIS_URL", url.as_str()),
        ("COUNTER_KEY", "visits:home"),
        ("INTERVAL", "400ms"),
    ]);
    for count in 1..=4 {
        worker.wait_for_count(count);
        // Ticks can come late, never early: the n-th INCR sits on grid point n - 1 or a
        // later one. Two seen ticks can be closer than an interval (a late one, then an
        // on-time one), so only this bound from the start holds under any load.
        let earliest = interval * u32::try_from(count - 1).expect("small count");
        let seen = started.elapsed();
        assert!(
            seen >= earliest,
            "count {count} after {seen:?}, before {earliest:?}"
        );
    }
    assert!(redis.counter("visits:home").unwrap() >= 4);
    assert_eq!(redis.counter("contador"), None, "only the configured key");
}

#[test]
fn the_database_of_the_url_is_the_one_counted_in() {
    let redis = RedisServer::start();
    let url = format!("{}/3", redis.url());
    let worker = fast_worker(&url, &[]);
    worker.wait_for_count(2);
    let mut connection = redis.connection().unwrap();
    let () = redis::cmd("SELECT").arg(3).query(&mut connection).unwrap();
    let stored: Option<i64> = redis::cmd("GET")
        .arg("contador")
        .query(&mut connection)
        .unwrap();
    assert!(stored >= Some(2), "database 3 holds {stored:?}");
    assert_eq!(redis.counter("contador"), None, "database 0 is untouched");
}

#[test]
fn a_flag_wins_over_its_variable() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dead = support::loopback_url(support::free_port());
    let flags = [
        "--redis-url",
        url.as_str(),
        "--key",
        "from-flag",
        "--interval",
        "100ms",
        "--log-format",
        "json",
    ];
    let env = [
        ("REDIS_URL", dead.as_str()),
        ("COUNTER_KEY", "from-variable"),
        ("INTERVAL", "1m"),
        ("LOG_FORMAT", "text"),
    ];
    let worker = Worker::spawn(worker_command(&flags, &env));
    // Three counts within PATIENCE: 100 ms apart, not a minute.
    let line = worker.wait_for_line(&["Contador atual: 3"]);
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON, as the flag says");
    assert_eq!(event["key"], "from-flag");
    assert!(redis.counter("from-flag") >= Some(3));
    assert_eq!(redis.counter("from-variable"), None);
    // A bad flag is named as the flag, even when its variable is fine.
    let (status, _, stderr) =
        support::run_to_exit(&["--wait-timeout", "2m"], &[("WAIT_TIMEOUT", "1s")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"invalid --wait-timeout "2m""#),
        "{stderr}"
    );
}

#[test]
fn a_wait_timeout_of_one_minute_is_accepted() {
    let redis = RedisServer::start();
    let worker = fast_worker(&redis.url(), &[("WAIT_TIMEOUT", "1m")]);
    worker.wait_for_count(1);
}

#[test]
fn an_empty_health_file_records_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let mut command = worker_command(&[], &[("REDIS_URL", &url), ("INTERVAL", "100ms")]);
    command.env("HEALTH_FILE", "").current_dir(dir.path());
    let worker = Worker::spawn(command);
    worker.wait_for_count(3);
    let output = worker.output();
    // Neither a file here nor an attempt anywhere else (the default path included).
    assert!(!output.contains("progress not recorded"), "{output}");
    assert!(!output.contains("cannot record progress"), "{output}");
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn json_logs_carry_the_count_and_key_as_fields() {
    let redis = RedisServer::start();
    let worker = fast_worker(
        &redis.url(),
        &[("LOG_FORMAT", "json"), ("COUNTER_KEY", "k")],
    );
    let line = worker.wait_for_line(&["Contador atual: 2"]);
    let event: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
    assert_eq!(event["count"], 2);
    assert_eq!(event["key"], "k");
    assert_eq!(event["level"], "INFO");
    for line in worker.output().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
    }
}

#[test]
fn waits_for_a_redis_that_is_absent_at_start() {
    let mut redis = RedisServer::not_started(None);
    let mut worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_line(&["cannot reach Redis", "retrying"]);
    assert!(worker.is_running());
    redis.launch();
    worker.wait_for_count(1);
    assert_eq!(redis.counter("contador"), Some(worker.counts()[0]));
}

#[test]
fn survives_redis_being_killed_and_restarted() {
    let mut redis = RedisServer::start();
    let mut worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_count(3);
    redis.kill();
    let (outage, _) = worker.wait_for_line_after(0, &["cannot reach Redis"]);
    let last_before = *worker.counts().last().unwrap();
    assert!(worker.is_running(), "Redis down must not stop the worker");
    redis.launch();
    let (_, line) = worker.wait_for_line_after(outage, &["Contador atual: "]);
    let first_after = support::logged_count(&line).unwrap();
    // Redis persists every write, so counting continues rather than starting over.
    assert!(
        first_after > last_before,
        "{first_after} after {last_before}"
    );
    worker.wait_for_count(first_after + 1);
}

#[test]
fn a_key_of_the_wrong_type_is_reported_and_left_untouched() {
    let redis = RedisServer::start();
    redis.query::<()>(redis::cmd("RPUSH").arg("jobs").arg("keep-me"));
    let mut worker = fast_worker(&redis.url(), &[("COUNTER_KEY", "jobs")]);
    let (first, line) = worker.wait_for_line_after(0, &["ERROR", "WRONGTYPE", "key=jobs"]);
    assert!(line.contains("Redis refused INCR"), "{line}");
    // Every tick tries again; the repeats are summarised, not logged one by one.
    let (_, summary) = worker.wait_for_line_after(first + 1, &["WRONGTYPE"]);
    assert!(
        summary.contains("more attempts failed the same way"),
        "{summary}"
    );
    assert!(worker.is_running());
    let kept: Vec<String> = redis.query(redis::cmd("LRANGE").arg("jobs").arg(0).arg(-1));
    assert_eq!(kept, ["keep-me"], "the worker never overwrites a key");

    // Once someone fixes the key, the next tick counts.
    redis.query::<()>(redis::cmd("DEL").arg("jobs"));
    worker.wait_for_count(1);
}

#[test]
fn authenticates_with_the_password_file_over_the_url_password() {
    let redis = RedisServer::start_with_password(Some("s3cret-from-file"));
    let password = file_with("s3cret-from-file\n");
    let url = format!("redis://:stale-url-password@127.0.0.1:{}", redis.port());
    let worker = fast_worker(&url, &[("REDIS_PASSWORD_FILE", path_str(password.path()))]);
    worker.wait_for_count(2);
    assert!(redis.counter("contador").unwrap() >= 2);
    let output = worker.output();
    assert!(!output.contains("s3cret-from-file"), "{output}");
    assert!(!output.contains("stale-url-password"), "{output}");
}

#[test]
fn the_password_file_may_be_a_chain_of_symlinks_as_kubernetes_mounts_secrets() {
    // Kubernetes: password -> ..data/password, ..data -> ..2026_12_01_00_00_00.1/.
    let redis = RedisServer::start_with_password(Some("mounted-secret"));
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("..2026_12_01_00_00_00.1");
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("password"), "mounted-secret\n").unwrap();
    std::os::unix::fs::symlink(&version, dir.path().join("..data")).unwrap();
    let password = dir.path().join("password");
    std::os::unix::fs::symlink("..data/password", &password).unwrap();
    let worker = fast_worker(
        &redis.url(),
        &[("REDIS_PASSWORD_FILE", path_str(&password))],
    );
    worker.wait_for_count(2);
    assert!(!worker.output().contains("mounted-secret"));
}

#[test]
fn a_wrong_password_is_a_clear_error_not_a_crash() {
    let redis = RedisServer::start_with_password(Some("right-password"));
    let password = file_with("wrong-password-value\n");
    let mut worker = fast_worker(
        &redis.url(),
        &[("REDIS_PASSWORD_FILE", path_str(password.path()))],
    );
    let (first, line) = worker.wait_for_line_after(0, &["ERROR", "Redis refused the connection"]);
    assert!(line.contains("WRONGPASS"), "{line}");
    worker.wait_for_line_after(first + 1, &["more attempts failed the same way"]);
    assert!(worker.is_running());
    assert_eq!(redis.counter("contador"), None);
    assert!(!worker.output().contains("wrong-password-value"));
}

#[test]
fn no_password_for_a_redis_that_wants_one_is_a_clear_error_not_a_crash() {
    let redis = RedisServer::start_with_password(Some("needed"));
    let mut worker = fast_worker(&redis.url(), &[]);
    let (first, line) = worker.wait_for_line_after(0, &["ERROR", "Redis refused the connection"]);
    assert!(line.contains("NOAUTH"), "{line}");
    worker.wait_for_line_after(first + 1, &["more attempts failed the same way", "NOAUTH"]);
    assert!(worker.is_running());
}

#[test]
fn a_black_holed_redis_cannot_hang_the_worker() {
    let silent = SilentServer::start();
    let started = Instant::now();
    let mut worker = fast_worker(&silent.url(), &[]);
    let (first, line) = worker.wait_for_line_after(0, &["cannot reach Redis"]);
    assert!(line.contains("timed out"), "{line}");
    // Connecting is bounded by 2 s.
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3_500),
        "gave up on the connection after {took:?}"
    );
    worker.wait_for_line_after(
        first + 1,
        &["more attempts failed the same way", "timed out"],
    );
    assert!(worker.is_running());
}

#[test]
fn a_paused_redis_times_out_then_counting_resumes() {
    let redis = RedisServer::start();
    let worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_count(2);
    // Hold every write for 4 s: longer than the response timeout.
    redis.query::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(4_000).arg("WRITE"));
    let (lost, line) = worker.wait_for_line_after(0, &["outcome unknown"]);
    assert!(line.contains("timed out"), "{line}");
    worker.wait_for_line_after(lost, &["Contador atual: "]);
}

#[test]
fn healthcheck_exit_codes_follow_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (status, _, stderr) = support::run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert_eq!(status.code(), Some(0), "{stderr}");

    let dead = support::loopback_url(support::free_port());
    let (status, _, stderr) = support::run_to_exit(&["healthcheck", "--redis-url", &dead], &[]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("did not answer PING"), "{stderr}");

    let locked = RedisServer::start_with_password(Some("pw-needed"));
    let url = locked.url();
    let (status, _, stderr) = support::run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert_eq!(
        status.code(),
        Some(1),
        "PING without the password: {stderr}"
    );
}

#[test]
fn healthcheck_gives_up_on_a_black_holed_redis() {
    let silent = SilentServer::start();
    let url = silent.url();
    let started = Instant::now();
    let (status, _, stderr) = support::run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < PATIENCE);
    // Its deadline is 2 s, and Compose kills a check at 3 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    assert!(stderr.contains("did not answer PING"), "{stderr}");
}

fn assert_stops_cleanly(worker: &mut Worker, signal: libc::c_int, name: &str) {
    worker.signal(signal);
    assert_stopped_cleanly(worker, name);
}

/// The worker, sent the signal `name`, exits 0 with its final line.
fn assert_stopped_cleanly(worker: &mut Worker, name: &str) {
    let status = worker.wait_for_exit();
    assert_eq!(status.code(), Some(0), "{name} must exit 0");
    worker.wait_for_line(&[&format!("stopped on {name}")]);
}

#[test]
fn sigterm_stops_at_once_mid_interval() {
    let redis = RedisServer::start();
    let url = redis.url();
    // With a one-minute interval, only an immediate stop returns within PATIENCE.
    let mut worker = Worker::start(&[("REDIS_URL", url.as_str()), ("INTERVAL", "1m")]);
    worker.wait_for_count(1);
    assert_stops_cleanly(&mut worker, libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigterm_lets_an_incr_already_sent_finish() {
    let redis = RedisServer::start();
    let mut worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_count(2);
    // Hold writes for 1.5 s: the next tick's INCR is sent and waits in Redis.
    redis.query::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("WRITE"));
    thread::sleep(Duration::from_millis(400));
    let mark = worker.line_count();
    let last_before = *worker.counts().last().unwrap();
    worker.signal(libc::SIGTERM);
    // The reply timeout (2 s) bounds the wait; the pause ends before it.
    let status = worker.wait_for_exit_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let (counted, line) = worker.wait_for_line_after(mark, &["Contador atual: "]);
    let held = support::logged_count(&line).unwrap();
    assert_eq!(
        held,
        last_before + 1,
        "the held INCR was answered and logged"
    );
    let (stopped, last) = worker.wait_for_line_after(mark, &["stopped on SIGTERM"]);
    assert!(counted < stopped, "the count comes before the final line");
    assert!(last.contains(&format!("last_count={held}")), "{last}");
    let logged = worker.counts().len();
    assert!(last.contains(&format!("increments={logged} ")), "{last}");
    assert_eq!(
        redis.counter("contador"),
        Some(held),
        "Redis holds what was logged"
    );
    assert!(
        !worker.output().contains("outcome unknown"),
        "{}",
        worker.output()
    );
}

#[test]
fn sigint_stops_like_sigterm() {
    let redis = RedisServer::start();
    let mut worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_count(1);
    assert_stops_cleanly(&mut worker, libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_stops_a_worker_still_waiting_for_redis() {
    let redis = RedisServer::not_started(None);
    let mut worker = fast_worker(&redis.url(), &[]);
    worker.wait_for_line(&["cannot reach Redis"]);
    assert_stops_cleanly(&mut worker, libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigterm_while_the_worker_starts_waits_for_its_handler() {
    // Sent while the worker still reads its settings, before its handlers exist, the
    // signal must wait for them: not kill the worker without its final line or, sent to a
    // PID 1 in a container, be lost. A CA bundle near the 1 MiB it takes makes that start
    // last tens of milliseconds; the worker is frozen inside it to be sent the signal.
    let certificates = Certificates::make();
    let ca = std::fs::read_to_string(certificates.file("ca.pem")).expect("the lab's CA");
    let bundle = file_with(&ca.repeat(1_000_000 / ca.len()));
    let url = format!("rediss://127.0.0.1:{}", free_port());
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_TLS_CA_FILE", path_str(bundle.path())),
        ("INTERVAL", "1m"),
    ];
    // Stepping through the start can still miss it under load: a fresh try then.
    let mut worker = (0..10)
        .map(|_| Worker::start(&env))
        .find(Worker::stop_before_its_handlers)
        .expect("the worker holds SIGTERM from its start until its handler is installed");
    worker.signal(libc::SIGTERM);
    worker.signal(libc::SIGCONT);
    assert_stopped_cleanly(&mut worker, "SIGTERM");
}

/// A command line and environment that must be refused, and what the message must say.
struct BadSetting {
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    says: &'static str,
}

const BAD_SETTINGS: &[BadSetting] = &[
    BadSetting {
        args: &[],
        env: &[("INTERVAL", "0s")],
        says: r#"invalid INTERVAL "0s""#,
    },
    BadSetting {
        args: &[],
        env: &[("INTERVAL", "2 days")],
        says: r#"invalid INTERVAL "2 days""#,
    },
    BadSetting {
        args: &[],
        env: &[("INTERVAL", "soon")],
        says: r#"invalid INTERVAL "soon""#,
    },
    BadSetting {
        args: &["--interval", "-1s"],
        env: &[],
        says: r#"invalid --interval "-1s""#,
    },
    BadSetting {
        args: &[],
        env: &[("COUNTER_KEY", "")],
        says: r#"invalid COUNTER_KEY """#,
    },
    BadSetting {
        args: &[],
        env: &[("LOG_FORMAT", "xml")],
        says: r#"invalid LOG_FORMAT "xml""#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_URL", "http://redis")],
        says: r#"invalid REDIS_URL "http://redis""#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_URL", "rediss://redis/#insecure")],
        says: r#"invalid REDIS_URL "rediss://redis/#insecure": #insecure would turn off"#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")],
        says: r#"invalid REDIS_TLS_CA_FILE "/nonexistent/ca.pem": cannot read it"#,
    },
    BadSetting {
        args: &["--redis-url", "redis://redis"],
        env: &[("REDIS_TLS_CA_FILE", "/dev/null")],
        says: r#"invalid REDIS_TLS_CA_FILE "/dev/null": not a regular file"#,
    },
    BadSetting {
        args: &["--redis-url", "redis//x"],
        env: &[],
        says: r#"invalid --redis-url "redis//x""#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_PASSWORD_FILE", "/no/such/file")],
        says: r#"invalid REDIS_PASSWORD_FILE "/no/such/file""#,
    },
    BadSetting {
        args: &[],
        env: &[("RUST_LOG", "=^=")],
        says: r#"invalid RUST_LOG "=^=""#,
    },
    BadSetting {
        args: &[],
        env: &[("INTERVAL", "500us")],
        says: r#"invalid INTERVAL "500us": must be at least 1ms"#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_URL", "redis://redis/-1")],
        says: r#"invalid REDIS_URL "redis://redis/-1": the database index must be a non-negative"#,
    },
    BadSetting {
        args: &[],
        env: &[("REDIS_PASSWORD_FILE", "/")],
        says: r#"invalid REDIS_PASSWORD_FILE "/": not a regular file"#,
    },
    BadSetting {
        args: &[],
        env: &[("WAIT_REPLICAS", "-1")],
        says: r#"invalid WAIT_REPLICAS "-1""#,
    },
    BadSetting {
        args: &["--wait-timeout", "0ms"],
        env: &[],
        says: r#"invalid --wait-timeout "0ms": must be at least 1ms"#,
    },
    BadSetting {
        args: &[],
        env: &[("RUST_LOG", "counter_worker=loud")],
        says: r#"invalid RUST_LOG "counter_worker=loud""#,
    },
    BadSetting {
        args: &[],
        env: &[("WAIT_TIMEOUT", "61s")],
        says: r#"invalid WAIT_TIMEOUT "61s": must be at most 1 minute"#,
    },
    BadSetting {
        args: &["--no-such-flag"],
        env: &[],
        says: "'--no-such-flag'",
    },
];

#[test]
fn bad_settings_exit_2_with_one_line_naming_the_setting() {
    for BadSetting { args, env, says } in BAD_SETTINGS {
        let (status, stdout, stderr) = support::run_to_exit(args, env);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    }
}

#[test]
fn a_bad_setting_stops_the_worker_before_it_connects() {
    let redis = RedisServer::start();
    let mut observer = redis.connection().unwrap();
    let connections = |observer: &mut redis::Connection| -> String {
        let info: String = redis::cmd("INFO").arg("stats").query(observer).unwrap();
        info.lines()
            .find(|line| line.starts_with("total_connections_received:"))
            .unwrap()
            .to_owned()
    };
    let before = connections(&mut observer);
    let url = redis.url();
    let (status, _, _) = support::run_to_exit(&[], &[("REDIS_URL", &url), ("INTERVAL", "never")]);
    assert_eq!(status.code(), Some(2));
    // A setting the worker cannot honour: a record's lifetime, counting without a record.
    let no_record = [
        ("REDIS_URL", url.as_str()),
        ("COUNTING", "at-most-once"),
        ("RECORD_TTL", "2h"),
    ];
    let (status, _, stderr) = support::run_to_exit(&[], &no_record);
    assert_eq!(status.code(), Some(2));
    assert_eq!(
        stderr,
        "counter-worker: error: invalid RECORD_TTL \"2h\": counting at most once keeps no \
         record; remove it, or count exactly once\n"
    );
    assert_eq!(connections(&mut observer), before, "no connection attempt");
}

#[test]
fn a_rejected_url_never_echoes_its_password() {
    let (status, _, stderr) =
        support::run_to_exit(&[], &[("REDIS_URL", "redis://admin:topsecret@redis:port")]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("redis://admin:***@redis:port"), "{stderr}");
    assert!(!stderr.contains("topsecret"), "{stderr}");
}

#[test]
fn help_and_version_work() {
    let (status, stdout, _) = support::run_to_exit(&["--help"], &[]);
    assert_eq!(status.code(), Some(0));
    for setting in [
        "--redis-url",
        "REDIS_URL",
        "COUNTER_KEY",
        "INTERVAL",
        "LOG_FORMAT",
        "WAIT_REPLICAS",
        "WAIT_TIMEOUT",
        "HEALTH_FILE",
    ] {
        assert!(stdout.contains(setting), "--help lists {setting}");
    }
    assert!(stdout.contains("REDIS_PASSWORD_FILE") && stdout.contains("healthcheck"));
    let (status, stdout, _) = support::run_to_exit(&["--version"], &[]);
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stdout.trim(),
        format!("counter-worker {}", env!("CARGO_PKG_VERSION"))
    );
}
