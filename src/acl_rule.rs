//! The Redis ACL rule that is exactly enough for the worker, derived from its settings, so
//! that Redis can be set up to let this worker `INCR` its key and do nothing else.
//!
//! A password alone lets anyone who learns it (a neighbour container, a leaked secret)
//! `FLUSHALL` or rewrite Redis's configuration. An ACL user limited to the worker's own
//! commands and key cannot, but only if the rule is right: one grant too few and the
//! worker cannot count, one too many and least privilege is lost. The worker knows which
//! commands its settings make it send, so it states the rule itself
//! (`counter-worker acl-rule`) and every deployment loads what it prints. `HELLO`/`AUTH`
//! need no grant; `CLIENT SETINFO` is never sent (see `connection`), so no grant is
//! needed for it either, which Redis 7.0 could not even parse.

use crate::config::{Config, ConfigError, Counting};
use crate::redis::Topology;
use crate::redis::record::record_key;

/// A key that no ACL rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The empty key.
    #[error("the key must not be empty")]
    Empty,
    /// A key with spaces or control characters, which an ACL file splits or cannot hold.
    #[error(
        "an ACL rule cannot name a key holding spaces or control characters (ACL files split \
         at spaces); choose another key"
    )]
    Unwritable,
}

/// What the worker's validated settings make it do on a Redis data node.
#[derive(Clone, Copy)]
pub struct WorkerAccess<'a> {
    /// The key the worker `INCR`s.
    pub key: &'a str,
    /// How the server is found: under Sentinel the worker asks the master `ROLE` before
    /// writing to it; under Cluster it sends `ASKING` before an `INCR` that `ASK`
    /// redirects (it learns the key's node from `MOVED` and `ASK` alone, see `cluster`).
    pub topology: &'a Topology,
    /// Whether each tick is applied by the script, which reads and writes the worker's
    /// record beside the key (`--counting exactly-once`), rather than by a plain `INCR`.
    pub exactly_once: bool,
    /// Whether each `INCR` goes with a `WAIT` (`--wait-replicas` above 0).
    pub waits_for_replicas: bool,
    /// The database selected on connect; anything but 0 sends `SELECT`.
    pub database: i64,
}

/// The ACL rule the worker with `config` needs; refused, naming the key's setting as the
/// user gave it, for a key that an ACL rule cannot hold.
pub fn for_config(config: &Config) -> Result<String, ConfigError> {
    let access = WorkerAccess {
        key: &config.key,
        topology: config.redis.topology(),
        exactly_once: matches!(config.counting, Counting::ExactlyOnce { .. }),
        waits_for_replicas: config.replica_wait.is_some(),
        database: config.redis.redis_settings().db(),
    };
    rule(&access).map_err(|reason| ConfigError::Invalid {
        setting: config.key_setting.clone(),
        value: config.key.clone(),
        reason: reason.to_string(),
    })
}

/// The ACL rule for `access`, as `ACL SETUSER` arguments and ACL file words separated by
/// single spaces, without the user name, `on` or a password, e.g.
/// `resetkeys ~contador resetchannels -@all +incr +ping`.
///
/// Refused (with the reason, for a person) when the key cannot be written as an ACL key
/// pattern: an ACL file splits its lines at spaces and has no quoting.
pub fn rule(access: &WorkerAccess<'_>) -> Result<String, KeyError> {
    let mut words = vec![
        "resetkeys".to_owned(),
        format!("~{}", key_pattern(access.key)?),
    ];
    if access.exactly_once {
        // Every worker's record, whatever its identity: `{contador}:worker:*`.
        words.push(format!("~{}*", key_pattern(&record_key(access.key, ""))?));
    }
    words.extend(["resetchannels".to_owned(), "-@all".to_owned()]);
    words.extend(commands(access).iter().map(|command| format!("+{command}")));
    Ok(words.join(" "))
}

/// Every command the worker sends with these settings.
fn commands(access: &WorkerAccess<'_>) -> Vec<&'static str> {
    // Exactly once, the script counts: EVALSHA, EVAL when Redis has not cached it, and the
    // commands it calls; else INCR. PING answers the health check and checks an idle
    // connection.
    let mut commands = if access.exactly_once {
        vec!["evalsha", "eval", "get", "incrby", "set", "ping"]
    } else {
        vec!["incr", "ping"]
    };
    match access.topology {
        Topology::Fixed(_) => {}
        Topology::Sentinel(_) => commands.push("role"),
        Topology::Cluster(_) => commands.push("asking"),
    }
    if access.waits_for_replicas {
        commands.push("wait");
    }
    if access.database != 0 {
        commands.push("select");
    }
    commands
}

/// `key` as a Redis glob pattern that matches it and nothing else: the glob's special
/// characters are escaped with a backslash.
fn key_pattern(key: &str) -> Result<String, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(KeyError::Unwritable);
    }
    let mut pattern = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::redis::{RedisTarget, TargetSettings};

    const FIXED: &str = "redis://h";
    const SENTINEL: &str = "redis+sentinel://s/mymaster";
    const CLUSTER: &str = "redis+cluster://n1,n2";

    /// The access of a worker counting in the topology `url` names.
    fn access(url: &str, waits_for_replicas: bool, database: i64) -> WorkerAccess<'static> {
        let target = RedisTarget::new(url, &TargetSettings::default()).unwrap();
        WorkerAccess {
            key: "contador",
            topology: Box::leak(Box::new(target)).topology(),
            exactly_once: false,
            waits_for_replicas,
            database,
        }
    }

    fn rule_for(args: &[&str]) -> Result<String, ConfigError> {
        let args = std::iter::once("counter-worker").chain(args.iter().copied());
        for_config(&Config::from_sources(args, |_| None)?)
    }

    #[test]
    fn the_rule_follows_the_settings_and_names_the_key_as_given() {
        let url = "redis+sentinel://s1/mymaster/2";
        assert_eq!(
            rule_for(&["acl-rule", "--redis-url", url, "--wait-replicas", "1"]).unwrap(),
            "resetkeys ~contador ~{contador}:worker:* resetchannels -@all \
             +evalsha +eval +get +incrby +set +ping +role +wait +select"
        );
        assert_eq!(
            rule_for(&["acl-rule", "--redis-url", "rediss+cluster://n1,n2"]).unwrap(),
            "resetkeys ~contador ~{contador}:worker:* resetchannels -@all \
             +evalsha +eval +get +incrby +set +ping +asking"
        );
        assert_eq!(
            rule_for(&["acl-rule", "--counting", "at-most-once", "--key", "a{t}b"]).unwrap(),
            "resetkeys ~a{t}b resetchannels -@all +incr +ping"
        );
        let message = rule_for(&["acl-rule", "--key", "two words"])
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(r#"invalid --key "two words": "#),
            "{message}"
        );
    }

    #[test]
    fn a_fixed_server_needs_incr_and_ping_on_the_key_alone() {
        assert_eq!(
            rule(&access(FIXED, false, 0)).unwrap(),
            "resetkeys ~contador resetchannels -@all +incr +ping"
        );
    }

    #[test]
    fn sentinel_adds_role_cluster_asking_wait_wait_a_database_select() {
        assert_eq!(
            rule(&access(SENTINEL, false, 0)).unwrap(),
            "resetkeys ~contador resetchannels -@all +incr +ping +role"
        );
        assert_eq!(
            rule(&access(FIXED, true, 0)).unwrap(),
            "resetkeys ~contador resetchannels -@all +incr +ping +wait"
        );
        assert_eq!(
            rule(&access(SENTINEL, true, 3)).unwrap(),
            "resetkeys ~contador resetchannels -@all +incr +ping +role +wait +select"
        );
        assert_eq!(
            rule(&access(CLUSTER, true, 0)).unwrap(),
            "resetkeys ~contador resetchannels -@all +incr +ping +asking +wait"
        );
    }

    #[test]
    fn counting_exactly_once_grants_the_script_and_every_record_beside_the_key() {
        let exactly_once = |key| {
            rule(&WorkerAccess {
                key,
                exactly_once: true,
                ..access(FIXED, false, 0)
            })
            .unwrap()
        };
        assert_eq!(
            exactly_once("a{t}*b"),
            r"resetkeys ~a{t}\*b ~a{t}\*b:worker:* resetchannels -@all +evalsha +eval +get +incrby +set +ping"
        );
    }

    #[test]
    fn glob_characters_in_the_key_match_only_themselves() {
        let rule = rule(&WorkerAccess {
            key: r"a*b?[c]\d",
            ..access(FIXED, false, 0)
        })
        .unwrap();
        assert!(
            rule.starts_with(r"resetkeys ~a\*b\?\[c\]\\d resetchannels "),
            "{rule}"
        );
    }

    #[test]
    fn a_key_an_acl_file_cannot_hold_is_refused() {
        for (key, reason) in [
            ("two words", KeyError::Unwritable),
            ("tab\there", KeyError::Unwritable),
            ("line\nbreak", KeyError::Unwritable),
            ("", KeyError::Empty),
        ] {
            let refused = rule(&WorkerAccess {
                key,
                ..access(FIXED, false, 0)
            });
            assert_eq!(refused, Err(reason), "{key:?}");
        }
    }
}
