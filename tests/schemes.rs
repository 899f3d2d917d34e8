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
