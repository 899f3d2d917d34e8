//! Applying a tick exactly once: a Lua script that increments the counter and, in the same
//! atomic step, writes this worker's record of the last tick it applied and the count that
//! tick produced.
//!
//! A plain `INCR` whose reply is lost cannot be sent again: it may count twice. With the
//! record beside the counter, a tick is named (the worker's identity in the record's key, a
//! sequence number in the call) and the script applies it only if the record does not show
//! it applied already, otherwise it answers with the count that tick produced, so a tick of
//! unknown outcome can be resent. The same record tells the worker when Redis lost ticks it
//! had applied (a failover to a replica that missed them, a restart from an older file):
//! the record shows an older tick than the one before this, and the script adds the
//! missing counts back with this tick, in one step. A missing record (an emptied Redis, a
//! `FLUSHALL`, a record left to expire) restores nothing.
//!
//! Scripts run with the caller's ACL: the script calls `GET` and `SET` on the record and
//! `INCRBY` on the counter, nothing else, and the record's key hashes to the counter's
//! Cluster slot (see [`record_key`]), so a slot migration moves both together.

use std::time::Duration;

use redis::{Cmd, RedisError, RedisResult, Value};

use super::connection::has_reply_code;

/// The script, as Redis caches it under [`SCRIPT_SHA1`]. `KEYS[1]` is the counter,
/// `KEYS[2]` the worker's record (`TICK:COUNT`); `ARGV[1]` the tick, `ARGV[2]` the record's
/// lifetime in milliseconds. It answers `{state, count, restored}`: state 0 for a tick
/// applied before, 1 for one applied now, 2 for one applied now on a Redis that had no
/// record of the worker's earlier ticks. An error of `INCRBY` (`READONLY` on a replica,
/// `WRONGTYPE`) is answered as Redis gave it, code first, before anything is written: Redis
/// 6.2 puts where a script's command failed before its error (`@user_script: 8: -READONLY
/// …`), which is taken off, so that the code is read on every server version.
pub const SCRIPT: &str = "\
local record = redis.call('GET', KEYS[2])
local lost, state = 0, 1
if record then
  local applied, count = string.match(record, '^(%d+):(-?%d+)$')
  if applied and tonumber(applied) >= tonumber(ARGV[1]) then return {0, count, 0} end
  if applied then lost = tonumber(ARGV[1]) - 1 - tonumber(applied) end
elseif ARGV[1] ~= '1' then state = 2 end
local count = redis.pcall('INCRBY', KEYS[1], lost + 1)
if type(count) == 'table' then
  return redis.error_reply((string.gsub(count.err, '^@user_script: %d+: %-', '')))
end
redis.call('SET', KEYS[2], ARGV[1] .. ':' .. string.format('%d', count), 'PX', ARGV[2])
return {state, count, lost}";

/// The SHA-1 of [`SCRIPT`], as `EVALSHA` names it; a test checks it against Redis's own.
pub const SCRIPT_SHA1: &str = "968ad13b9dbe1b29aa04a46dc753ff622c29c813";

/// The counter's key and this worker's record beside it.
#[derive(Debug, Clone)]
pub struct TickRecord {
    counter: String,
    record: String,
    lifetime_ms: u64,
}

/// What Redis did with a tick, by the script's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied now; `restored` counts lost by Redis were added back with it.
    Now {
        /// Earlier ticks of this worker that Redis no longer held, applied again.
        restored: u64,
    },
    /// Applied by an earlier send of the same tick; the count is the one it produced.
    Before,
    /// Applied now, on a Redis that held no record of this worker's earlier ticks: an
    /// emptied Redis or a reset, from which nothing is restored.
    WithoutRecord,
}

impl TickRecord {
    /// The record of worker `identity` counting in `counter`, kept `lifetime` after its
    /// last tick (at least a millisecond).
    pub fn new(counter: &str, identity: &str, lifetime: Duration) -> Self {
        Self {
            counter: counter.to_owned(),
            record: record_key(counter, identity),
            lifetime_ms: u64::try_from(lifetime.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        }
    }

    /// The record's key, for the log.
    pub fn key(&self) -> &str {
        &self.record
    }

    /// Tick `tick` by the cached script (`EVALSHA`), or, when `cached` is false, by its
    /// source (`EVAL`, which also caches it).
    pub fn command(&self, tick: u64, cached: bool) -> Cmd {
        let mut cmd = if cached {
            redis::cmd("EVALSHA").arg(SCRIPT_SHA1).to_owned()
        } else {
            redis::cmd("EVAL").arg(SCRIPT).to_owned()
        };
        cmd.arg(2)
            .arg(&self.counter)
            .arg(&self.record)
            .arg(tick)
            .arg(self.lifetime_ms);
        cmd
    }
}

/// True when Redis does not have the script cached (a restart, a failover, `SCRIPT
/// FLUSH`): nothing ran, and the tick is sent again with [`TickRecord::command`]'s source.
pub fn is_not_cached(err: &RedisError) -> bool {
    has_reply_code(err, &["NOSCRIPT"])
}

/// The script's answer read: the count and what was applied.
pub fn applied(reply: Value) -> RedisResult<(i64, Applied)> {
    let (state, count, restored): (u8, i64, u64) = redis::from_redis_value(reply)?;
    let applied = match state {
        0 => Applied::Before,
        1 => Applied::Now { restored },
        _ => Applied::WithoutRecord,
    };
    Ok((count, applied))
}

/// A new worker's identity: 64 random bits in hex, from the standard library's randomly
/// seeded hasher, so that two workers, or two runs of one, never share a record.
pub fn identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// The key of worker `identity`'s record for `counter`, in `counter`'s Cluster slot: a key
/// with a non-empty `{…}` hash tag keeps it first (`a{t}b:worker:ID`), any other is
/// wrapped in braces (`{contador}:worker:ID` hashes like `contador`).
pub fn record_key(counter: &str, identity: &str) -> String {
    if has_hash_tag(counter) {
        format!("{counter}:worker:{identity}")
    } else {
        format!("{{{counter}}}:worker:{identity}")
    }
}

/// True when Redis Cluster hashes `key` by a `{…}` tag: the first `{` has a `}` after it,
/// with something between.
fn has_hash_tag(key: &str) -> bool {
    key.split_once('{')
        .and_then(|(_, rest)| rest.find('}'))
        .is_some_and(|end| end > 0)
}

/// True when the record's key hashes to `counter`'s slot, which only a key holding `}`
/// without a hash tag prevents (wrapping it in braces would cut the tag at its `}`).
pub fn shares_slot(counter: &str) -> bool {
    has_hash_tag(counter) || !counter.contains('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_hashes_like_the_counter() {
        assert_eq!(record_key("contador", "ab"), "{contador}:worker:ab");
        assert_eq!(record_key("a{t}b", "ab"), "a{t}b:worker:ab");
        // An empty tag is no tag: the whole key is hashed, so it is wrapped.
        assert_eq!(record_key("a{}b", "ab"), "{a{}b}:worker:ab");
        assert!(shares_slot("contador") && shares_slot("a{t}b") && shares_slot("a{b"));
        assert!(!shares_slot("a}b") && !shares_slot("a{}b"));
    }

    #[test]
    fn the_answer_says_what_was_applied() {
        let answer = |state: i64, count: i64, restored: i64| {
            Value::Array(vec![
                Value::Int(state),
                Value::Int(count),
                Value::Int(restored),
            ])
        };
        assert_eq!(
            applied(answer(1, 7, 0)).unwrap(),
            (7, Applied::Now { restored: 0 })
        );
        assert_eq!(
            applied(answer(1, 9, 2)).unwrap(),
            (9, Applied::Now { restored: 2 })
        );
        assert_eq!(applied(answer(0, 7, 0)).unwrap(), (7, Applied::Before));
        assert_eq!(
            applied(answer(2, 1, 0)).unwrap(),
            (1, Applied::WithoutRecord)
        );
        let stored = Value::BulkString(b"41".to_vec());
        let before = Value::Array(vec![Value::Int(0), stored, Value::Int(0)]);
        assert_eq!(applied(before).unwrap(), (41, Applied::Before));
    }
}
