//! Following Redis Sentinel, end to end: the real binary against a real master, two
//! replicas and three sentinels on loopback, through a master crash, a planned switchover
//! and a stale master coming back.
//!
//! What every scenario checks is the worker's promise under failover: the logged counts only
//! go up (a count logged again or going back would mean an acknowledged increment was lost)
//! and the current master holds at least every logged count.

mod support;

use std::thread;
use std::time::Duration;

use support::monitor::Seen;
use support::sentinel_lab::{FAILOVER_PATIENCE, MASTER_NAME, SentinelLab};
use support::{
    RedisServer, SilentServer, Worker, fast_worker, file_with, path_str, run_to_exit, wait_until,
};

/// The key the worker counts in by default.
const KEY: &str = "contador";

/// The commands that write the counter, as `MONITOR` names them: the worker's script by
/// its cache or its source, the script's own `INCRBY` (from client `lua`), and the plain
/// `INCR` of counting at most once.
const WRITES: [&str; 4] = ["EVALSHA", "EVAL", "INCRBY", "INCR"];

/// The commands in `seen` that write the counter.
fn writes(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|seen| WRITES.contains(&seen.command.as_str()))
        .collect()
}

/// A lab without passwords and a worker, counting as `counting` says, that has counted a
/// few times through it.
fn counting_lab(counting: &str) -> (SentinelLab, Worker) {
    let lab = SentinelLab::start();
    // Debug lines name the master of every connection, not only a new one.
    let env = [("RUST_LOG", "counter_worker=debug"), ("COUNTING", counting)];
    let worker = fast_worker(&lab.url(), &env);
    worker.wait_for_count(5);
    (lab, worker)
}

/// The text in the worker's log when a connection goes to the master on `port`.
fn master_line(port: u16) -> String {
    format!("master=127.0.0.1:{port}")
}

/// How the run broke the promise, if it did: a logged count not above the one before it
/// (an acknowledged increment was lost), or `lab`'s master on `port` holding less than the
/// last logged count.
fn lost_count(worker: &Worker, lab: &SentinelLab, port: u16) -> Option<String> {
    let counts = worker.counts();
    if let Some(pair) = counts.windows(2).find(|pair| pair[1] <= pair[0]) {
        return Some(format!("count {} logged after {}", pair[1], pair[0]));
    }
    let stored = lab.data_node(port).counter(KEY).unwrap_or_default();
    let last = *counts.last().expect("the worker logged counts");
    (stored < last).then(|| format!("the master holds {stored}, {last} was logged"))
}

fn assert_no_logged_count_lost(worker: &Worker, lab: &SentinelLab, port: u16) {
    if let Some(loss) = lost_count(worker, lab, port) {
        panic!(
            "{loss}: an increment was lost; output:\n{}",
            worker.output()
        );
    }
}

/// Hands the master role to a replica with `SENTINEL FAILOVER` while `worker` counts; with
/// `pause_first`, the master's writes are paused before and released once it is demoted
/// (the README's procedure). Returns the new master's port once the worker counts there.
fn planned_switchover(lab: &SentinelLab, worker: &Worker, pause_first: bool) -> u16 {
    let old = lab.master_port();
    let client = |command: &str| {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg(command);
        cmd
    };
    if pause_first {
        // Longer than the whole switchover: the old master is demoted seconds after the
        // promotion, and must not take writes in between.
        let _: () = lab
            .data_node(old)
            .query(client("PAUSE").arg(30_000).arg("WRITE"));
    }
    let asked_at = worker.line_count();
    let _: () = lab
        .sentinel()
        .query(redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME));
    let new = lab.wait_for_failover_from(old);
    let (resumed, _) =
        worker.wait_for_line_within(FAILOVER_PATIENCE, asked_at, &[&master_line(new)]);
    worker.wait_for_line_after(resumed, &["Contador atual"]);
    wait_until("the old master's demotion", FAILOVER_PATIENCE, || {
        lab.data_node(old).role().as_deref() == Some("slave")
    });
    if pause_first {
        let _: () = lab.data_node(old).query(&mut client("UNPAUSE"));
    }
    let mark = worker.line_count();
    worker.wait_for_line_after(mark, &["Contador atual"]);
    new
}

#[test]
fn counts_and_checks_health_through_sentinels_with_passwords() {
    let lab = SentinelLab::start_with_passwords(Some("data-secret"), Some("sentinel-secret"));
    // First in the list, a sentinel that never answers: the sentinels are asked at once, so
    // it must not delay anything (the health check has 2 s in all).
    let silent = SilentServer::start();
    let silent = silent.url().replace("redis://", "");
    let url = lab.url().replace(
        "redis+sentinel://",
        &format!("redis+sentinel://:data-secret@{silent},"),
    );
    let sentinel_password = file_with("sentinel-secret\n");
    let env = [
        ("REDIS_URL", url.as_str()),
        (
            "REDIS_SENTINEL_PASSWORD_FILE",
            path_str(sentinel_password.path()),
        ),
    ];
    let worker = fast_worker(&url, &env[1..]);
    worker.wait_for_count(3);
    let master = lab.master_port();
    worker.wait_for_line(&[&master_line(master)]);
    assert!(lab.data_node(master).counter(KEY).unwrap() >= 3);
    assert!(
        !worker.output().contains("data-secret"),
        "{}",
        worker.output()
    );

    let (status, _, stderr) = run_to_exit(&["healthcheck"], &env);
    assert!(status.success(), "healthcheck failed: {stderr}");

    // Without the sentinels' own password the worker logs their refusal, not the silent
    // sentinel's timeout that comes after it: the one says what to fix.
    let refused = fast_worker(&url, &[]);
    let line = refused.wait_for_line(&["no sentinel named the master"]);
    assert!(line.contains("ERROR") && line.contains("refused"), "{line}");

    // Without the sentinels' own password no sentinel answers, and the check says so. The
    // silent sentinel stays out of this URL: its own 2 s timeout would race the check's
    // 2 s deadline, and either line may come first.
    let refusing = lab
        .url()
        .replace("redis+sentinel://", "redis+sentinel://:data-secret@");
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &[("REDIS_URL", &refusing)]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no sentinel named the master"), "{stderr}");
    assert!(!stderr.contains("data-secret"), "{stderr}");
}

#[test]
fn a_killed_master_is_replaced_and_a_stale_one_never_written() {
    let (mut lab, worker) = counting_lab("exactly-once");

    let old = lab.master_port();
    lab.data_node_mut(old).kill();
    let killed_at = worker.line_count();
    let new = lab.wait_for_failover_from(old);
    let (resumed, _) =
        worker.wait_for_line_within(FAILOVER_PATIENCE, killed_at, &[&master_line(new)]);
    worker.wait_for_line_after(resumed, &["Contador atual"]);
    assert_no_logged_count_lost(&worker, &lab, new);

    // The old master comes back with its old data and, for a few seconds, still calls
    // itself master. Make the worker reconnect during that time: the sentinels, not the
    // stale server, must decide where it writes.
    lab.data_node_mut(old).launch();
    let watched = lab.data_node(old).monitor();
    let stale = lab.data_node(old).counter(KEY);
    let mut reconnections = 0;
    let still_master = || lab.data_node(old).role().as_deref() == Some("master");
    while reconnections < 3 && still_master() {
        let mark = worker.line_count();
        let _: i64 = lab
            .data_node(new)
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"));
        let (found, _) = worker.wait_for_line_after(mark, &[&master_line(new)]);
        worker.wait_for_line_after(found, &["Contador atual"]);
        reconnections += 1;
    }
    assert!(
        reconnections > 0,
        "the old master was demoted before the worker could reconnect; nothing was tested"
    );
    // Read before ROLE: a server still master after the read was master during it.
    let now = lab.data_node(old).connection().and_then(|mut connection| {
        redis::cmd("GET")
            .arg(KEY)
            .query::<Option<i64>>(&mut connection)
    });
    if still_master() {
        assert_eq!(now.ok(), Some(stale), "the stale master was written");
    }
    assert_no_logged_count_lost(&worker, &lab, new);
    // Redis's own view, whatever the role is by now: every write the old master executed
    // came over its replication link from the new master, none from a client or a script.
    let link = format!("127.0.0.1:{new}");
    let seen = watched.seen();
    let written: Vec<_> = writes(&seen)
        .into_iter()
        .filter(|seen| seen.client != link)
        .collect();
    assert!(
        written.is_empty(),
        "the stale master was written: {written:#?}"
    );
}

#[test]
fn a_planned_switchover_with_the_master_paused_first_loses_no_count() {
    let (lab, worker) = counting_lab("exactly-once");
    let new = planned_switchover(&lab, &worker, true);
    assert_no_logged_count_lost(&worker, &lab, new);
}

/// Why the README asks for the pause when counting at most once: without it the old
/// master goes on acknowledging increments after the promotion, and the new master never
/// sees them.
#[test]
fn a_planned_switchover_without_the_pause_loses_counts_counting_at_most_once() {
    let (lab, worker) = counting_lab("at-most-once");
    let new = planned_switchover(&lab, &worker, false);
    assert!(
        lost_count(&worker, &lab, new).is_some(),
        "no count was lost; output:\n{}",
        worker.output()
    );
}

/// Counting exactly once, the counts the old master acknowledged after the promotion are
/// restored on the new master with the worker's first tick there: each count is logged
/// once, in order, and the new master holds the last.
#[test]
fn a_planned_switchover_without_the_pause_loses_no_count_counting_exactly_once() {
    let (lab, mut worker) = counting_lab("exactly-once");
    let new = planned_switchover(&lab, &worker, false);
    assert_each_count_once_and_held(&mut worker, &lab, new);
}

#[test]
fn bad_sentinel_urls_exit_2_naming_the_setting_and_masking_the_password() {
    let cases = [
        ("redis+sentinel://:hunter2@/mymaster", "no sentinel host"),
        ("redis+sentinel://:hunter2@s1,s2", "names no master"),
        (
            "redis+sentinel://:hunter2@s1:99999/mymaster",
            "invalid port",
        ),
        ("redis+sentinel://:hunter2@s1/mymaster/x", "database"),
    ];
    for (url, reason) in cases {
        let (status, stdout, stderr) = run_to_exit(&[], &[("REDIS_URL", url)]);
        assert_eq!(status.code(), Some(2), "{url}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let line = stderr.trim_end();
        assert!(
            line.starts_with("counter-worker: error: invalid REDIS_URL \"redis+sentinel://:***@"),
            "{line}"
        );
        assert!(line.contains(reason), "{url}: {line}");
        assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");
    }

    let (status, _, stderr) = run_to_exit(
        &["--redis-url", "redis+sentinel://s1/mymaster"],
        &[("REDIS_SENTINEL_PASSWORD_FILE", "/nonexistent/pw")],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("counter-worker: error: invalid REDIS_SENTINEL_PASSWORD_FILE"),
        "{stderr}"
    );
}

#[test]
fn wait_names_counts_no_replica_acknowledged_and_noreplicas_sends_the_worker_back() {
    let lab = SentinelLab::start();
    let worker = fast_worker(&lab.url(), &[("WAIT_REPLICAS", "1")]);
    worker.wait_for_count(3);
    let before = worker_connections(lab.data_node(lab.master_port()));
    let replicas = lab.replica_ports();
    for port in &replicas {
        lab.data_node(*port).signal(libc::SIGSTOP);
    }
    // Each count now stands on the master alone, and the log says so.
    let (unacknowledged, line) =
        worker.wait_for_line_after(0, &["WARN", "acknowledged by 0 of 1 replicas"]);
    assert!(line.contains("count="), "{line}");
    // Once the replicas lag past min-replicas-max-lag (10 s), the master refuses writes:
    // the worker drops the connection and asks the sentinels again.
    let (refused, line) =
        worker.wait_for_line_within(FAILOVER_PATIENCE, unacknowledged, &["NOREPLICAS"]);
    assert!(line.contains("cannot take writes here"), "{line}");
    for port in &replicas {
        lab.data_node(*port).signal(libc::SIGCONT);
    }
    let (_, line) = worker.wait_for_line_within(FAILOVER_PATIENCE, refused, &["Contador atual"]);
    let resumed = support::logged_count(&line).unwrap();
    assert_no_logged_count_lost(&worker, &lab, lab.master_port());
    assert!(resumed > 3);
    // Counting resumes past the last count logged before the master refused.
    let last_before = worker
        .output()
        .lines()
        .take(refused)
        .filter_map(support::logged_count)
        .max()
        .expect("counts before the refusal");
    assert!(resumed > last_before, "{resumed} after {last_before}");
    // Redis's view: the worker counts on another connection than before the refusal.
    let now = worker_connections(lab.data_node(lab.master_port()));
    assert!(
        now.iter().all(|id| !before.contains(id)),
        "still on connection {now:?} of {before:?}"
    );
}

/// The ids of the connections on `node` whose last command was the worker's `INCR` or
/// `WAIT` (Redis 7.0's `CLIENT LIST` names no client library).
fn worker_connections(node: &RedisServer) -> Vec<u64> {
    let list: String = node.query(redis::cmd("CLIENT").arg("LIST"));
    let ids: Vec<u64> = list
        .lines()
        .filter(|line| line.contains(" cmd=incr ") || line.contains(" cmd=wait "))
        .filter_map(|line| line.strip_prefix("id="))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!ids.is_empty(), "no worker connection in:\n{list}");
    ids
}

#[test]
fn a_server_the_sentinels_name_that_is_not_master_is_never_written() {
    // A sentinel that monitors a writable replica (its master long gone): for the 60 s of
    // its down-after it names the replica as master. Only the worker's ROLE check stands
    // between the replica and an INCR.
    let replica = RedisServer::orphan_replica(&["--replica-read-only", "no"]);
    let config = format!(
        "sentinel monitor {MASTER_NAME} 127.0.0.1 {} 1\n\
         sentinel down-after-milliseconds {MASTER_NAME} 60000\n",
        replica.port()
    );
    let mut sentinel = RedisServer::sentinel_not_started(&config, None);
    sentinel.launch();
    let (_, named): (String, u16) = sentinel.query(
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME),
    );
    assert_eq!(named, replica.port(), "the sentinel names the replica");
    let watched = replica.monitor();
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/{MASTER_NAME}",
        sentinel.port()
    );
    let worker = fast_worker(&url, &[]);
    // Ten ticks, each asking the sentinel, then the replica its role; or a write.
    let roles = |seen: &[Seen]| seen.iter().filter(|s| s.command == "ROLE").count();
    let seen = watched.wait_until("10 ROLE or a write", support::PATIENCE, |seen| {
        roles(seen) >= 10 || !writes(seen).is_empty()
    });
    assert!(
        writes(&seen).is_empty(),
        "the replica was written: {seen:#?}"
    );
    assert_eq!(replica.counter(KEY), None);
    assert!(worker.counts().is_empty(), "{}", worker.output());
    let (_, line) = worker.wait_for_line_after(0, &["not a master"]);
    assert!(line.contains("answers ROLE as replica"), "{line}");
}

/// A failover to a replica that missed the last counts: the replicas replicate through a
/// proxy, which is cut while the master goes on counting alone for 2 s (each count
/// acknowledged by 0 of 1 replicas), and then the master is killed. Returns the lab, the
/// worker (counting as `counting` says) once it has counted twice on the promoted replica,
/// and the new master's port.
fn failover_to_a_replica_that_missed_counts(counting: &str) -> (SentinelLab, Worker, u16) {
    let mut lab = SentinelLab::start_with_replication_through_proxy();
    let worker = fast_worker(
        &lab.url(),
        &[("WAIT_REPLICAS", "1"), ("COUNTING", counting)],
    );
    worker.wait_for_count(5);
    lab.cut_replication();
    let cut_at = worker.line_count();
    worker.wait_for_line_after(cut_at, &["acknowledged by 0 of 1 replicas"]);
    thread::sleep(Duration::from_secs(2));
    let old = lab.master_port();
    let on_master = lab.data_node(old).counter(KEY).unwrap_or_default();
    for replica in lab.replica_ports() {
        let on_replica = lab.data_node(replica).counter(KEY).unwrap_or_default();
        assert!(
            on_replica < on_master,
            "the replica on {replica} holds {on_replica}, the master {on_master}: nothing was missed"
        );
    }
    lab.data_node_mut(old).kill();
    let killed_at = worker.line_count();
    let new = lab.wait_for_failover_from(old);
    let (resumed, _) =
        worker.wait_for_line_within(FAILOVER_PATIENCE, killed_at, &[&master_line(new)]);
    let (counted, _) = worker.wait_for_line_after(resumed, &["Contador atual"]);
    worker.wait_for_line_after(counted, &["Contador atual"]);
    (lab, worker, new)
}

#[test]
fn a_failover_to_a_replica_that_missed_counts_restores_them_each_logged_once() {
    let (lab, mut worker, new) = failover_to_a_replica_that_missed_counts("exactly-once");
    let output = worker.output();
    let restored = support::restored_counts(&output);
    assert!(
        restored.len() == 1 && restored[0] > 0,
        "not one restoration of lost counts: {restored:?}\n{output}"
    );
    assert_each_count_once_and_held(&mut worker, &lab, new);
}

/// Stops `worker` and checks that it logged 1, 2, 3, … each once, in order, and that the
/// master on `port` holds the last of them.
fn assert_each_count_once_and_held(worker: &mut Worker, lab: &SentinelLab, port: u16) {
    worker.signal(libc::SIGTERM);
    let status = worker.wait_for_exit();
    let output = worker.output();
    assert_eq!(status.code(), Some(0), "{output}");
    let counts = worker.counts();
    let expected: Vec<i64> = (1..=counts.len() as i64).collect();
    assert_eq!(counts, expected, "not each count once, in order:\n{output}");
    assert_eq!(
        lab.data_node(port).counter(KEY),
        counts.last().copied(),
        "the master holds another count than the last logged:\n{output}"
    );
}

/// The same failover with a plain `INCR`: the promoted replica counts on from the value it
/// had, and counts already logged are logged again. What the test above rules out.
#[test]
fn a_failover_to_a_replica_that_missed_counts_repeats_them_counting_at_most_once() {
    let (lab, worker, new) = failover_to_a_replica_that_missed_counts("at-most-once");
    assert!(
        lost_count(&worker, &lab, new).is_some(),
        "no count was logged again; output:\n{}",
        worker.output()
    );
}
