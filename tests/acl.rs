//! `counter-worker acl-rule` against real Redis servers: a user created with exactly the
//! printed rule lets the worker count and pass its health check, Redis logs no denial
//! (`ACL LOG`) and no error reply (`INFO errorstats`), and the same user is refused
//! everything else. Plain, with `--wait-replicas`, with a database, under Sentinel, over
//! TLS, and on a Redis Cluster through a resharding of the key's slot (`ASK`, then `MOVED`).

mod support;

use std::thread;
use std::time::Duration;

use support::cluster_lab::ClusterLab;
use support::sentinel_lab::{SentinelLab, wait_until};
use support::tls_lab::{Certificates, ServerCert, TlsRedis};
use support::{PATIENCE, RedisServer, fast_worker, run_to_exit};

const USER: &str = "counter";
const PASSWORD: &str = "counter-secret";

/// What `counter-worker acl-rule` prints with `env`, checked to be one line and exit 0.
fn printed_rule(env: &[(&str, &str)]) -> String {
    let (status, stdout, stderr) = run_to_exit(&["acl-rule"], env);
    assert!(status.success(), "acl-rule failed: {status}: {stderr}");
    let rule = stdout
        .strip_suffix('\n')
        .expect("one line, newline-terminated");
    assert!(!rule.contains('\n'), "more than one line: {stdout:?}");
    rule.to_owned()
}

/// Creates the worker's user on `server` with `rule` (as `ACL SETUSER` arguments) and
/// clears the denial log and the error counters, so they show only what follows.
fn create_user(server: &RedisServer, rule: &str) {
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg(USER)
        .arg("on")
        .arg(format!(">{PASSWORD}"));
    for word in rule.split(' ') {
        setuser.arg(word);
    }
    let () = server.query(&mut setuser);
    let () = server.query(redis::cmd("ACL").arg("LOG").arg("RESET"));
    let () = server.query(redis::cmd("CONFIG").arg("RESETSTAT"));
}

/// The worker's URL on `server`, logging in as its user.
fn user_url(server: &RedisServer, database: u8) -> String {
    format!(
        "redis://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
        server.port()
    )
}

/// Fails unless `server` logged no ACL denial and answered no command with an error.
fn assert_nothing_refused(server: &RedisServer) {
    assert_refused_only(server, &[]);
}

/// Fails unless `server` logged no ACL denial and answered no command with an error
/// other than the `expected` codes (a cluster's `MOVED` and `ASK`).
fn assert_refused_only(server: &RedisServer, expected: &[&str]) {
    let denials: Vec<redis::Value> = server.query(redis::cmd("ACL").arg("LOG"));
    assert!(
        denials.is_empty(),
        "ACL LOG on {}: {denials:?}",
        server.port()
    );
    let errors: String = server.query(redis::cmd("INFO").arg("errorstats"));
    let unexpected: Vec<&str> = errors
        .lines()
        .filter_map(|line| line.trim().strip_prefix("errorstat_"))
        .filter(|stat| {
            !expected
                .iter()
                .any(|code| stat.starts_with(&format!("{code}:")))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "error replies on {}: {errors}",
        server.port()
    );
}

/// Fails unless the worker's user may do nothing on `server` but what the worker does:
/// each command here gets `NOPERM`, `INCR` of `other_key` included.
fn assert_user_refused_the_rest(server: &RedisServer, key: &str, other_key: &str) {
    let client = redis::Client::open(user_url(server, 0)).expect("the user's URL");
    let mut connection = client
        .get_connection()
        .expect("log in as the worker's user");
    let attempts: [&[&str]; 8] = [
        &["GET", key],
        &["SET", key, "0"],
        &["DEL", key],
        &["INCR", other_key],
        &["KEYS", "*"],
        &["FLUSHALL"],
        &["CONFIG", "GET", "*"],
        &["ACL", "LIST"],
    ];
    for attempt in attempts {
        let mut command = redis::cmd(attempt[0]);
        for arg in &attempt[1..] {
            command.arg(*arg);
        }
        let refused = command
            .query::<redis::Value>(&mut connection)
            .expect_err("the worker's user was allowed more than its rule");
        assert_eq!(refused.code(), Some("NOPERM"), "{attempt:?}: {refused}");
    }
}

/// Runs a worker with `env` on top of `url` until it has counted five times, and its
/// health check (no live worker: a `PING`, through the sentinels for a Sentinel URL).
fn count_and_check_health(url: &str, env: &[(&str, &str)]) {
    let worker = fast_worker(url, env);
    worker.wait_for_count(5);
    let mut check_env = vec![("REDIS_URL", url)];
    check_env.extend_from_slice(env);
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &check_env);
    assert!(
        status.success(),
        "healthcheck as the worker's user: {stderr}"
    );
}

/// Waits until `count` replicas of `master` have finished their first sync, so that they
/// acknowledge `WAIT` and count for `min-replicas-to-write`.
fn wait_for_replicas_online(master: &RedisServer, count: usize) {
    wait_until("the replicas are in sync", PATIENCE, || {
        let info = master.info("replication");
        (0..count).all(|i| {
            info.get(&format!("slave{i}"))
                .is_some_and(|replica| replica.contains("state=online"))
        })
    });
}

#[test]
fn the_plain_rule_is_enough_to_count_and_nothing_more() {
    let server = RedisServer::start();
    create_user(&server, &printed_rule(&[]));
    count_and_check_health(&user_url(&server, 0), &[]);
    assert_nothing_refused(&server);
    assert_user_refused_the_rest(&server, "contador", "other");
}

#[test]
fn a_database_and_a_key_with_glob_characters_are_granted_and_nothing_more() {
    let server = RedisServer::start();
    let key = "visits*";
    let url = user_url(&server, 2);
    let env = [("COUNTER_KEY", key)];
    let rule = printed_rule(&[("REDIS_URL", &url), ("COUNTER_KEY", key)]);
    create_user(&server, &rule);
    count_and_check_health(&url, &env);
    assert_nothing_refused(&server);
    // `visits*` as a pattern would also match `visitsX`.
    assert_user_refused_the_rest(&server, key, "visitsX");
    let database_2 = redis::Client::open(format!("{}/2", server.url())).unwrap();
    let stored: Option<i64> = redis::cmd("GET")
        .arg(key)
        .query(&mut database_2.get_connection().unwrap())
        .unwrap();
    assert!(stored >= Some(5), "database 2 holds {stored:?}");
    assert_eq!(
        server.counter(key),
        None,
        "the worker counted in database 0"
    );
}

#[test]
fn the_wait_replicas_rule_is_enough_to_count_with_a_replica() {
    let server = RedisServer::start();
    let port = server.port().to_string();
    let _replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &port]);
    wait_for_replicas_online(&server, 1);
    // A generous timeout: a replica that just came online can miss a short first one.
    let env = [("WAIT_REPLICAS", "1"), ("WAIT_TIMEOUT", "5s")];
    create_user(&server, &printed_rule(&env));
    let worker = fast_worker(&user_url(&server, 0), &env);
    worker.wait_for_count(5);
    assert!(
        !worker.output().contains("acknowledged by 0"),
        "WAIT did not hear from the replica: {}",
        worker.output()
    );
    assert_nothing_refused(&server);
    assert_user_refused_the_rest(&server, "contador", "other");
}

#[test]
fn the_sentinel_rule_is_enough_to_count_through_the_sentinels() {
    let lab = SentinelLab::start();
    let env = [("WAIT_REPLICAS", "1")];
    let url = lab
        .url()
        .replacen("://", &format!("://{USER}:{PASSWORD}@"), 1);
    let rule = printed_rule(&[("REDIS_URL", &url), ("WAIT_REPLICAS", "1")]);
    // ACLs are not replicated: every data node that may become master needs the user.
    let mut nodes = vec![lab.master_port()];
    nodes.extend(lab.replica_ports());
    for port in &nodes {
        create_user(lab.data_node(*port), &rule);
    }
    // Until then the master answers NOREPLICAS (`min-replicas-to-write 1`).
    wait_for_replicas_online(lab.data_node(lab.master_port()), 2);
    count_and_check_health(&url, &env);
    let master = lab.data_node(lab.master_port());
    assert_nothing_refused(master);
    assert_nothing_refused(lab.sentinel());
    assert_user_refused_the_rest(master, "contador", "other");
}

#[test]
fn the_plain_rule_is_enough_over_tls() {
    let certificates = Certificates::make();
    let tls = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    let url = tls
        .url("127.0.0.1")
        .replacen("://", &format!("://{USER}:{PASSWORD}@"), 1);
    let (ca_setting, ca) = certificates.trust_lab_ca();
    let env = [(ca_setting, ca.as_str())];
    let rule = printed_rule(&[("REDIS_URL", &url)]);
    create_user(&tls.redis, &rule);
    count_and_check_health(&url, &env);
    assert_nothing_refused(&tls.redis);
}

#[test]
fn the_cluster_rule_is_enough_to_count_through_redirects_and_a_resharding() {
    let lab = ClusterLab::start();
    let env = [("WAIT_REPLICAS", "1"), ("WAIT_TIMEOUT", "5s")];
    let url = lab
        .url()
        .replacen("://", &format!("://{USER}:{PASSWORD}@"), 1);
    let rule = printed_rule(&[("REDIS_URL", &url), ("WAIT_REPLICAS", "1")]);
    assert_eq!(
        rule,
        "resetkeys ~contador resetchannels -@all +incr +ping +asking +wait"
    );
    // ACLs are not shared by a cluster's nodes: each one needs the user.
    for node in &lab.nodes {
        create_user(node, &rule);
    }
    let worker = fast_worker(
        &url,
        &[env[0], env[1], ("RUST_LOG", "counter_worker=debug")],
    );
    worker.wait_for_count(3);
    // While the key is on the new primary and the slot still the old one's, every INCR
    // goes through ASK, so the worker sends ASKING as its user.
    let to = lab.migrate_slot_of("contador", || thread::sleep(Duration::from_secs(1)));
    let served = format!("the key's slot is served by 127.0.0.1:{to} (MOVED)");
    let (moved, _) = worker.wait_for_line_after(0, &[&served]);
    worker.wait_for_line_after(moved, &["Contador atual: "]);
    let output = worker.output();
    assert!(
        output.contains("(ASK)"),
        "no INCR went through ASK:\n{output}"
    );
    assert!(!output.contains("did not take ASKING"), "{output}");
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert!(
        status.success(),
        "healthcheck as the worker's user: {stderr}"
    );
    for node in &lab.nodes {
        assert_refused_only(node, &["MOVED", "ASK"]);
    }
    assert_user_refused_the_rest(lab.node(to), "contador", "other");
}
