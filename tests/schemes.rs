//! The URL schemes the worker accepts, each against a real `redis-server`: Valkey's names
//! for the protocol (`valkey://`) count exactly as `redis://` does.

mod support;

use support::{RedisServer, fast_worker};

#[test]
fn a_valkey_url_counts_like_a_redis_url() {
    let redis = RedisServer::start();
    let url = format!("valkey://127.0.0.1:{}", redis.port());
    let worker = fast_worker(&url, &[]);
    worker.wait_for_count(3);
    assert!(redis.counter("contador").is_some_and(|count| count >= 3));
}

/// `scripts/server-matrix` runs the suites against several servers; this makes sure the
/// harness really started the one it names (`COUNTER_WORKER_TEST_SERVER_VERSION`, a line of
/// `INFO server` such as `valkey_version:9.1.2`).
#[test]
fn the_server_under_test_is_the_one_the_matrix_names() {
    let Ok(wanted) = std::env::var("COUNTER_WORKER_TEST_SERVER_VERSION") else {
        return;
    };
    let redis = RedisServer::start();
    let info: String = redis.query(redis::cmd("INFO").arg("server"));
    assert!(
        info.lines().any(|line| line.trim() == wanted),
        "{wanted} not in INFO server:\n{info}"
    );
}
