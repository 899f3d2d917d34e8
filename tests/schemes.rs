//! The URL schemes the worker accepts, each against a real `redis-server`: Valkey's names
//! for the protocol (`valkey://`) count exactly as `redis://` does.

mod support;

use support::{RedisServer, fast_worker, server_binary};

#[test]
fn a_valkey_url_counts_like_a_redis_url() {
    let redis = RedisServer::start();
    let url = format!("valkey://127.0.0.1:{}", redis.port());
    let worker = fast_worker(&url, &[]);
    worker.wait_for_count(3);
    assert!(redis.counter("contador").is_some_and(|count| count >= 3));
}

/// The suites run against the server the harness starts: `redis-server` from `PATH`, or the
/// one `scripts/server-matrix` names. This checks that the server answering is that one:
/// the line of `INFO server` the matrix names (`COUNTER_WORKER_TEST_SERVER_VERSION`, such as
/// `valkey_version:9.1.2`), else the version the binary itself reports with `--version`.
#[test]
fn the_server_under_test_is_the_one_the_harness_names() {
    let wanted = std::env::var("COUNTER_WORKER_TEST_SERVER_VERSION")
        .unwrap_or_else(|_| format!("_version:{}", version_of(&server_binary())));
    let redis = RedisServer::start();
    let info: String = redis.query(redis::cmd("INFO").arg("server"));
    assert!(
        info.lines().any(|line| line.trim().ends_with(&wanted)),
        "{wanted} not in INFO server:\n{info}"
    );
}

/// The `v=` field of `binary --version` ("Redis server v=7.0.15 sha=…").
fn version_of(binary: &str) -> String {
    let output = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {binary} --version: {err}"));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .unwrap_or_else(|| panic!("no v= in {binary} --version: {said}"))
        .to_owned()
}
