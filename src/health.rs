//! The health check behind `counter-worker healthcheck`: a distroless image has no shell
//! and no `redis-cli`, so the binary itself answers the container engine's question
//! "can this worker reach its Redis?".

use std::time::Duration;

use crate::connection::connect;
use crate::redis_target::RedisTarget;

/// The whole check, connection included, must finish within this time.
pub const HEALTHCHECK_DEADLINE: Duration = Duration::from_secs(2);

/// Sends one `PING` to `redis`; `Ok` on `PONG`, otherwise the reason, for a person.
pub async fn check(redis: &RedisTarget) -> Result<(), String> {
    let ping = async {
        let mut connection = connect(redis).await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    match tokio::time::timeout(HEALTHCHECK_DEADLINE, ping).await {
        Ok(Ok(reply)) if reply == "PONG" => Ok(()),
        Ok(Ok(reply)) => Err(format!("Redis at {redis} answered PING with {reply:?}")),
        Ok(Err(err)) => Err(format!("Redis at {redis} did not answer PING: {err}")),
        Err(_) => Err(format!(
            "Redis at {redis} did not answer PING within {}",
            humantime::format_duration(HEALTHCHECK_DEADLINE)
        )),
    }
}
