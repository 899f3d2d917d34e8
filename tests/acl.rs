//! `counter-worker acl-rule` against real Redis servers: a user created with exactly the
//! printed rule lets the worker count and pass its health check, Redis logs no denial
//! (`ACL LOG`) and no error reply (`INFO errorstats`) but the `NOSCRIPT` that sends the
//! script's source, and the same user is refused everything else, in a script too. Plain,
//! with `--wait-replicas`, with a database, under Sentinel, over TLS, on a Redis Cluster
//! through a resharding of the key's slot (`ASK`, then `MOVED`), exactly once through a
//! frozen Redis, `SCRIPT FLUSH` and a restart, and at most once with the old rule.

mod support;

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use support::cluster_lab::ClusterLab;
use support::sentinel_lab::SentinelLab;
use support::tls_lab::{Certificates, ServerCert, TlsRedis};
use support::{PATIENCE, RedisServer, fast_worker, file_with, path_str, run_to_exit, wait_until};

const USER: &str = "counter";
const PASSWORD: &str = "counter-secret";
/// Where the `default` user is off, as deployments have it, the operator who reads the
/// ACL log.
const OPERATOR: &str = "admin";
const OPERATOR_PASSWORD: &str = "admin-secret";
/// The one error reply a worker counting exactly once meets on its way: the first
/// `EVALSHA` on a server that has not cached the script (new, restarted, `SCRIPT FLUSH`ed),
/// answered by sending its source.
const NOSCRIPT: &str = "NOSCRIPT";
/// The rule `acl-rule` prints for the plain worker counting exactly once.
const EXACTLY_ONCE_RULE: &str = "resetkeys ~contador ~{contador}:worker:* resetchannels -@all +evalsha +eval +get +incrby +set +ping";
/// The rule it prints for the same worker counting at most once, with a plain `INCR`.
const AT_MOST_ONCE_RULE: &str = "resetkeys ~contador resetchannels -@all +incr +ping";

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

/// Fails unless `server` logged no ACL denial and answered no command with an error but
/// the `NOSCRIPT` of a worker counting exactly once.
fn assert_nothing_refused(server: &RedisServer) {
    assert_refused_only(server, &[NOSCRIPT]);
}

/// Fails unless `server` logged no ACL denial and answered no command with an error
/// other than the `expected` codes (a cluster's `MOVED` and `ASK`, `NOSCRIPT`).
fn assert_refused_only(server: &RedisServer, expected: &[&str]) {
    let mut operator = server.connection().expect("the default user's connection");
    assert_refused_only_on(&mut operator, expected);
}

/// The same, read on `operator`, a connection allowed `ACL LOG` and `INFO`.
fn assert_refused_only_on(operator: &mut redis::Connection, expected: &[&str]) {
    let denials = acl_log(operator);
    assert!(denials.is_empty(), "ACL LOG: {denials:?}");
    let unexpected: Vec<String> = error_replies(operator)
        .into_keys()
        .filter(|code| !expected.contains(&code.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "error replies: {unexpected:?}");
}

/// How many error replies `server` gave since its start or `CONFIG RESETSTAT`, by code
/// (`INFO errorstats`: `errorstat_NOSCRIPT:count=2`).
fn error_replies(operator: &mut redis::Connection) -> HashMap<String, u64> {
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(operator)
        .expect("INFO errorstats");
    errors
        .lines()
        .filter_map(|line| line.trim().strip_prefix("errorstat_"))
        .map(|stat| {
            let (code, count) = stat.split_once(":count=").expect("CODE:count=N");
            (code.to_owned(), count.parse().expect("a count"))
        })
        .collect()
}

/// One `ACL LOG` entry: what was denied, where (`toplevel`, or `lua` in a script) and to
/// whom.
#[derive(Debug)]
struct Denial {
    context: String,
    object: String,
    username: String,
}

/// `server`'s `ACL LOG`, newest first.
fn acl_log(operator: &mut redis::Connection) -> Vec<Denial> {
    let entries: Vec<HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query(operator)
        .expect("ACL LOG");
    let field = |entry: &HashMap<String, redis::Value>, name: &str| -> String {
        let value = entry
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {entry:?}"));
        redis::from_redis_value(value.clone()).expect("a string")
    };
    entries
        .iter()
        .map(|entry| Denial {
            context: field(entry, "context"),
            object: field(entry, "object"),
            username: field(entry, "username"),
        })
        .collect()
}

/// What the worker's user tries beyond its rule, and how Redis must refuse it.
enum Attempt {
    /// A command Redis refuses before it runs, `NOPERM`.
    Command(Vec<String>),
    /// A script (`EVAL source 0`) whose call of a command or key outside the rule Redis
    /// refuses (with an `ERR` each server words its own way, so not read), logged as denied
    /// in context `lua`, naming this command or key.
    Script { source: String, denied: String },
}

impl Attempt {
    fn command(words: &[&str]) -> Self {
        Self::Command(words.iter().map(|word| (*word).to_owned()).collect())
    }

    /// A script that calls `call` (Lua arguments of `redis.call`), denied `denied`.
    fn script(call: &str, denied: &str) -> Self {
        Self::Script {
            source: format!("return redis.call({call})"),
            denied: denied.to_owned(),
        }
    }

    /// The command that makes the attempt, and where and what `ACL LOG` names it.
    fn command_and_denial(&self) -> (Vec<String>, &'static str, Option<&str>) {
        match self {
            Self::Command(words) => (words.clone(), "toplevel", None),
            Self::Script { source, denied } => (
                vec!["EVAL".to_owned(), source.clone(), "0".to_owned()],
                "lua",
                Some(denied),
            ),
        }
    }
}

/// Fails unless the worker's user may do nothing on `server` but what its rule grants,
/// from a script neither: each attempt in `beyond` is refused and lands in `ACL LOG`,
/// named and as the user's. Leaves the log empty again.
fn assert_user_refused(server: &RedisServer, beyond: &[Attempt]) {
    let client = redis::Client::open(user_url(server, 0)).expect("the user's URL");
    let mut connection = client
        .get_connection()
        .expect("log in as the worker's user");
    for attempt in beyond {
        let () = server.query(redis::cmd("ACL").arg("LOG").arg("RESET"));
        let (words, context, denied) = attempt.command_and_denial();
        let mut command = redis::cmd(&words[0]);
        for arg in &words[1..] {
            command.arg(arg);
        }
        let refused = command
            .query::<redis::Value>(&mut connection)
            .map(|reply| panic!("{words:?}: the worker's user may run it: {reply:?}"))
            .unwrap_err();
        if context == "toplevel" {
            assert_eq!(refused.code(), Some("NOPERM"), "{words:?}: {refused}");
        }
        let denials = acl_log(&mut server.connection().expect("the default user"));
        assert!(
            matches!(&denials[..], [denial] if denial.context == context
                && denial.username == USER
                && denied.is_none_or(|denied| denial.object == denied)),
            "{words:?}: refused with {refused}, but ACL LOG holds {denials:?}"
        );
    }
    let () = server.query(redis::cmd("ACL").arg("LOG").arg("RESET"));
}

/// What no worker's user may do, whatever it counts with: another key, the keyspace, the
/// server's configuration, the ACL, the script cache.
fn refused_to_every_worker(key: &str, other_key: &str) -> Vec<Attempt> {
    [
        &["DEL", key][..],
        &["INCR", other_key],
        &["GET", other_key],
        &["SET", other_key, "0"],
        &["KEYS", "*"],
        &["FLUSHALL"],
        &["CONFIG", "GET", "*"],
        &["ACL", "LIST"],
        &["SCRIPT", "FLUSH"],
    ]
    .into_iter()
    .map(Attempt::command)
    .collect()
}

/// Fails unless the user of a worker counting exactly once, which may read, set and add
/// to `key` and the workers' records, by itself or by a script, is refused everything
/// else: `other_key`, and what a script could try on its behalf.
fn assert_user_refused_the_rest(server: &RedisServer, key: &str, other_key: &str) {
    let mut beyond = refused_to_every_worker(key, other_key);
    // Lua string literals: the keys here hold no quote or backslash.
    let quoted = |key: &str| format!("'{key}'");
    beyond.extend([
        // The script's commands, not their neighbours; no key a script declares.
        Attempt::command(&["INCR", key]),
        Attempt::command(&["EVAL", "return 1", "1", other_key]),
        // A script runs with its caller's ACL: its calls are refused as the caller's are.
        Attempt::script(&format!("'GET',{}", quoted(other_key)), other_key),
        Attempt::script(&format!("'SET',{},'1'", quoted(other_key)), other_key),
        Attempt::script(&format!("'DEL',{}", quoted(key)), "del"),
        Attempt::script("'FLUSHALL'", "flushall"),
    ]);
    assert_user_refused(server, &beyond);
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
    let rule = printed_rule(&[]);
    assert_eq!(rule, EXACTLY_ONCE_RULE);
    create_user(&server, &rule);
    count_and_check_health(&user_url(&server, 0), &[]);
    assert_nothing_refused(&server);
    assert_user_refused_the_rest(&server, "contador", "other");
}

#[test]
fn the_at_most_once_rule_is_enough_to_count_with_incr_and_nothing_more() {
    let server = RedisServer::start();
    let env = [("COUNTING", "at-most-once")];
    let rule = printed_rule(&env);
    assert_eq!(rule, AT_MOST_ONCE_RULE);
    create_user(&server, &rule);
    count_and_check_health(&user_url(&server, 0), &env);
    // A plain INCR: not even a NOSCRIPT.
    assert_refused_only(&server, &[]);
    let mut beyond = refused_to_every_worker("contador", "other");
    beyond.extend(
        [
            &["GET", "contador"][..],
            &["SET", "contador", "0"],
            &["INCRBY", "contador", "2"],
            &["GET", "{contador}:worker:0"],
            &["EVAL", "return 1", "0"],
            &["EVALSHA", "187b944fe868e13933e4c020962fada1a5ec46dc", "0"],
        ]
        .into_iter()
        .map(Attempt::command),
    );
    assert_user_refused(&server, &beyond);
}

/// Fails unless `worker` logged each count once, one more than the one before, from 1,
/// with no tick lost or counted twice.
fn assert_counted_once_each(worker: &support::Worker) {
    let counts = worker.counts();
    let expected: Vec<i64> = (1..=counts.len() as i64).collect();
    assert_eq!(counts, expected, "{}", worker.output());
}

#[test]
fn counting_exactly_once_needs_nothing_beyond_the_rule_through_a_freeze_a_script_flush_and_a_restart()
 {
    // The ACL as deployments have it, in a file that outlives the restart: `default` off
    // (no one logs in as it) with the worker's rule and SELECT, which Redis 7.0 to 8.0,
    // Valkey 8 and Redict check each replayed transaction (a script's writes) against,
    // the worker's user, an operator. With `-@all` on `default`, this test fails there:
    // ACL LOG holds the replay's denials and the restarted Redis has lost the counts.
    let acl = file_with(&format!(
        "user default off resetpass {0} +select\n\
         user {USER} on >{PASSWORD} {0}\n\
         user {OPERATOR} on >{OPERATOR_PASSWORD} ~* &* +@all\n",
        printed_rule(&[])
    ));
    let mut server = RedisServer::start_with_args(&["--aclfile", path_str(acl.path())]);
    // The harness asks whether Redis has loaded with a PING of no user, answered NOAUTH.
    const HARNESS_PING: &str = "NOAUTH";
    let port = server.port();
    let operator = || {
        let url = format!("redis://{OPERATOR}:{OPERATOR_PASSWORD}@127.0.0.1:{port}");
        let info = redis::IntoConnectionInfo::into_connection_info(url).expect("a URL");
        // No `CLIENT SETINFO`, which Redis 7.0 answers with an error, as the harness.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        redis::Client::open(info.set_redis_settings(settings))
            .and_then(|client| client.get_connection())
            .expect("log in as the operator")
    };
    let url = user_url(&server, 0);
    let mut worker = fast_worker(&url, &[("RUST_LOG", "counter_worker=debug")]);
    let sent_source = "sending its source";
    worker.wait_for_line(&[sent_source]);
    worker.wait_for_count(3);

    // The cache emptied: the next EVALSHA is answered NOSCRIPT and the tick is sent as EVAL.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut operator())
        .expect("SCRIPT FLUSH");
    let flushed = worker.line_count();
    let (resent, _) = worker.wait_for_line_after(flushed, &[sent_source]);
    worker.wait_for_line_after(resent, &["Contador atual: "]);
    assert_eq!(error_replies(&mut operator()).get(NOSCRIPT), Some(&2));

    // Frozen past the reply timeout: the tick of unknown outcome is sent again.
    server.signal(libc::SIGSTOP);
    let (unknown, _) = worker.wait_for_line_after(0, &["outcome unknown"]);
    thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGCONT);
    let (settled, _) = worker.wait_for_line_after(unknown, &["the tick of unknown outcome had"]);
    worker.wait_for_line_after(settled, &["Contador atual: "]);
    assert_refused_only_on(&mut operator(), &[NOSCRIPT, HARNESS_PING]);

    // Restarted from its append-only file (its ACL log and error counts start empty): the
    // script is sent again, and the counts Redis replays are all there.
    server.kill();
    server.launch();
    let restarted = worker.line_count();
    let (resent, _) = worker.wait_for_line_after(restarted, &[sent_source]);
    let (counted, _) = worker.wait_for_line_after(resent, &["Contador atual: "]);
    worker.wait_for_line_after(counted, &["Contador atual: "]);
    assert_refused_only_on(&mut operator(), &[NOSCRIPT, HARNESS_PING]);

    worker.signal(libc::SIGTERM);
    assert!(worker.wait_for_exit().success(), "{}", worker.output());
    assert_counted_once_each(&worker);
    let last = *worker.counts().last().expect("counts");
    let stored: Option<i64> = redis::cmd("GET")
        .arg("contador")
        .query(&mut operator())
        .expect("GET");
    assert_eq!(stored, Some(last), "{}", worker.output());
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

/// Moves the keys `slot` still holds on primary `from` (the workers' records, after the
/// counter alone was migrated) to the primary the counter went to, as a reshard moves every
/// key of a slot.
fn migrate_what_the_slot_still_holds(lab: &ClusterLab, from: u16, slot: u16) {
    let source = lab.node(from);
    let left: Vec<String> = source.query(
        redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100),
    );
    if left.is_empty() {
        return;
    }
    let holds_keys = |port: u16| lab.node(port).query::<u64>(&mut redis::cmd("DBSIZE")) > 0;
    let to = lab
        .topology()
        .into_iter()
        .find(|node| node.primary && !node.failed && node.port != from && holds_keys(node.port))
        .expect("the primary the counter went to")
        .port;
    let () = source.query(
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&left),
    );
}

#[test]
fn the_cluster_rule_is_enough_to_count_through_redirects_and_a_resharding() {
    let lab = ClusterLab::start();
    let env = [("WAIT_REPLICAS", "1"), ("WAIT_TIMEOUT", "5s")];
    let url = lab
        .url()
        .replacen("://", &format!("://{USER}:{PASSWORD}@"), 1);
    let rule = printed_rule(&[("REDIS_URL", &url), ("WAIT_REPLICAS", "1")]);
    assert_eq!(rule, format!("{EXACTLY_ONCE_RULE} +asking +wait"));
    // ACLs are not shared by a cluster's nodes: each one needs the user.
    for node in &lab.nodes {
        create_user(node, &rule);
    }
    let worker = fast_worker(
        &url,
        &[env[0], env[1], ("RUST_LOG", "counter_worker=debug")],
    );
    worker.wait_for_count(3);
    // While the key and the record are on the new primary and the slot still the old
    // one's, every tick goes through ASK, so the worker sends ASKING as its user.
    let (from, slot) = (lab.owner_of("contador"), lab.slot_of("contador"));
    let to = lab.migrate_slot_of("contador", || {
        migrate_what_the_slot_still_holds(&lab, from, slot);
        thread::sleep(Duration::from_secs(1));
    });
    let served = format!("the key's slot is served by 127.0.0.1:{to} (MOVED)");
    let (moved, _) = worker.wait_for_line_after(0, &[&served]);
    worker.wait_for_line_after(moved, &["Contador atual: "]);
    let output = worker.output();
    assert!(
        output.contains("(ASK)"),
        "no INCR went through ASK:\n{output}"
    );
    assert!(!output.contains("did not take ASKING"), "{output}");
    assert!(
        !output.contains("holds no record"),
        "the record stayed behind: {output}"
    );
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert!(
        status.success(),
        "healthcheck as the worker's user: {stderr}"
    );
    // TRYAGAIN: a tick between the two MIGRATEs, while the key and the record were apart.
    for node in &lab.nodes {
        assert_refused_only(node, &["MOVED", "ASK", "TRYAGAIN", NOSCRIPT]);
    }
    assert_user_refused_the_rest(lab.node(to), "contador", "other");
}
