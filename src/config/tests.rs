//! The configuration's rules, each checked through `Config::from_sources` as a user would
//! meet it: the flag, the variable, the one-line error.

use std::io::Write;

use super::*;

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, OsString)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), OsString::from(value)))
        .collect();
    let args = std::iter::once("counter-worker").chain(args.iter().copied());
    Config::from_sources(args, move |name| {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    })
}

fn rejection(args: &[&str], env: &[(&str, &str)]) -> String {
    load(args, env)
        .expect_err("the configuration should be refused")
        .to_string()
}

#[test]
fn flags_are_read_and_validated() {
    let config = load(
        &[
            "--redis-url",
            "redis://127.0.0.1:7000/3",
            "--key",
            "visits",
            "--interval",
            "250ms",
            "--log-format",
            "json",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(config.command, Command::Run);
    assert_eq!(config.redis.to_string(), "redis://127.0.0.1:7000/3");
    assert_eq!(config.key, "visits");
    assert_eq!(config.interval, Duration::from_millis(250));
    assert_eq!(config.log_format, LogFormat::Json);
}

#[test]
fn healthcheck_is_a_subcommand_that_takes_the_same_flags() {
    let config = load(&["healthcheck", "--redis-url", "redis://h:1"], &[]).unwrap();
    assert_eq!(config.command, Command::Healthcheck);
    assert_eq!(config.redis.to_string(), "redis://h:1");
}

#[test]
fn acl_rule_is_a_subcommand_that_takes_the_same_flags() {
    let config = load(&["acl-rule", "--key", "two words"], &[]).unwrap();
    assert_eq!(config.command, Command::AclRule);
    assert_eq!(config.key_setting, "--key");
    let config = load(&[], &[]).unwrap();
    assert_eq!(config.key_setting, "COUNTER_KEY");
}

#[test]
fn intervals_in_human_units() {
    for (raw, expected) in [
        ("250ms", Duration::from_millis(250)),
        ("2s", Duration::from_secs(2)),
        ("1m", Duration::from_secs(60)),
        ("1m 30s", Duration::from_secs(90)),
        ("1day", value::MAX_INTERVAL),
    ] {
        assert_eq!(value::interval(raw), Ok(expected), "{raw}");
    }
}

#[test]
fn rejects_a_zero_interval() {
    let message = rejection(&["--interval", "0s"], &[]);
    assert_eq!(
        message,
        r#"invalid --interval "0s": must be greater than zero"#
    );
}

#[test]
fn rejects_an_interval_over_a_day() {
    let message = rejection(&["--interval", "25h"], &[]);
    assert!(
        message.starts_with(r#"invalid --interval "25h": "#),
        "{message}"
    );
    assert!(message.contains("at most 1 day"), "{message}");
}

#[test]
fn the_interval_and_the_wait_timeout_share_the_1ms_floor_and_name_their_own_ceiling() {
    for (args, expected) in [
        (
            ["--interval", "500us"],
            r#"invalid --interval "500us": must be at least 1ms"#,
        ),
        (
            ["--wait-timeout", "0s"],
            r#"invalid --wait-timeout "0s": must be at least 1ms"#,
        ),
        (
            ["--wait-timeout", "61s"],
            r#"invalid --wait-timeout "61s": must be at most 1 minute"#,
        ),
    ] {
        assert_eq!(rejection(&args, &[]), expected);
    }
}

#[test]
fn each_duration_takes_its_own_edges_and_a_record_lives_at_most_30_days() {
    let config = load(&["--interval", "1ms", "--wait-timeout", "1ms"], &[]).unwrap();
    assert_eq!(config.interval, Duration::from_millis(1));
    let replicas = ["--wait-replicas", "1", "--wait-timeout"];
    let wait = load(&[&replicas[..], &["1m"]].concat(), &[])
        .unwrap()
        .replica_wait;
    assert_eq!(wait.map(|wait| wait.timeout), Some(Duration::from_secs(60)));
    let thirty_days = Duration::from_secs(30 * 24 * 60 * 60);
    let counting = load(&["--record-ttl", "30days"], &[]).unwrap().counting;
    let record_lifetime = thirty_days;
    assert_eq!(counting, Counting::ExactlyOnce { record_lifetime });
    assert_eq!(
        rejection(&["--record-ttl", "31days"], &[]),
        r#"invalid --record-ttl "31days": must be at most 30 days"#
    );
}

#[test]
fn the_health_file_is_a_path_by_default_and_none_when_empty() {
    let health_file = |args: &[&str]| load(args, &[]).unwrap().health_file;
    let default = Some(PathBuf::from("/run/counter-worker/health"));
    assert_eq!(health_file(&[]), default);
    let given = health_file(&["--health-file", "/tmp/health"]);
    assert_eq!(given, Some(PathBuf::from("/tmp/health")));
    assert_eq!(health_file(&["--health-file", ""]), None);
}

#[test]
fn rejects_an_interval_that_is_not_a_duration() {
    for raw in ["fast", "2", "-1s", ""] {
        let message = rejection(&["--interval", raw], &[]);
        assert!(message.contains("not a duration"), "{raw}: {message}");
    }
}

#[test]
fn rejects_an_empty_key() {
    let message = rejection(&["--key", ""], &[]);
    assert_eq!(message, r#"invalid --key "": the key must not be empty"#);
}

#[test]
fn rejects_an_unknown_log_format() {
    let message = rejection(&["--log-format", "xml"], &[]);
    assert_eq!(
        message,
        r#"invalid --log-format "xml": must be "text" or "json""#
    );
}

#[test]
fn rejects_a_non_redis_url() {
    let message = rejection(&["--redis-url", "http://redis:6379"], &[]);
    assert!(
        message.starts_with(r#"invalid --redis-url "http://redis:6379": "#),
        "{message}"
    );
}

#[test]
fn a_rejected_url_never_shows_its_password() {
    let message = rejection(&["--redis-url", "redis://:hunter2@redis:port"], &[]);
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("redis://:***@redis:port"), "{message}");
}

#[test]
fn tls_files_follow_the_password_file_rules_and_need_a_tls_url() {
    let dir = tempfile::tempdir().unwrap();
    let tls_url = ["--redis-url", "rediss://redis:6380"];
    let message = rejection(&tls_url, &[("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem")]);
    assert!(
        message.starts_with(r#"invalid REDIS_TLS_CA_FILE "/nonexistent/ca.pem": cannot read it"#),
        "{message}"
    );
    let path = dir.path().to_str().unwrap();
    let pair = [("REDIS_TLS_CERT_FILE", path), ("REDIS_TLS_KEY_FILE", path)];
    let message = rejection(&tls_url, &pair);
    assert!(message.contains("not a regular file"), "{message}");
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "hunter2\n").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let message = rejection(&tls_url, &[("REDIS_TLS_CA_FILE", not_pem)]);
    assert!(message.contains("holds no PEM certificate"), "{message}");
    let message = rejection(&[], &[("REDIS_TLS_KEY_FILE", not_pem)]);
    assert!(
        message.contains("REDIS_TLS_CERT_FILE is not set"),
        "{message}"
    );
    assert!(
        message.starts_with("invalid REDIS_TLS_KEY_FILE "),
        "{message}"
    );
    let message = rejection(
        &["--redis-url", "redis://redis"],
        &[("REDIS_TLS_CA_FILE", not_pem)],
    );
    assert!(
        message.starts_with("invalid REDIS_TLS_CA_FILE "),
        "{message}"
    );
    assert_eq!(load(&tls_url, &[("REDIS_TLS_CA_FILE", "")]).err(), None);
}

#[test]
fn password_file_overrides_the_url_password_and_drops_the_newline() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"s3cret\r\n").unwrap();
    let path = file.path().to_str().unwrap();
    let config = load(
        &["--redis-url", "redis://:old@redis"],
        &[("REDIS_PASSWORD_FILE", path)],
    )
    .unwrap();
    assert_eq!(config.redis.redis_settings().password(), Some("s3cret"));
}

#[test]
fn an_empty_password_file_setting_means_none() {
    let config = load(&[], &[("REDIS_PASSWORD_FILE", "")]).unwrap();
    assert_eq!(config.redis.redis_settings().password(), None);
}

#[test]
fn rejects_a_missing_password_file() {
    let message = rejection(&[], &[("REDIS_PASSWORD_FILE", "/nonexistent/pw")]);
    assert!(
        message.starts_with(r#"invalid REDIS_PASSWORD_FILE "/nonexistent/pw": cannot read it"#),
        "{message}"
    );
}

#[test]
fn rejects_an_empty_password_file() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let message = rejection(&[], &[("REDIS_PASSWORD_FILE", path)]);
    assert!(message.ends_with("the file is empty"), "{message}");
}

#[test]
fn rejects_a_password_file_larger_than_the_bound() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let too_long =
        vec![b'x'; usize::try_from(crate::setting_file::MAX_PASSWORD_FILE_BYTES).unwrap() + 1];
    std::fs::write(file.path(), too_long).unwrap();
    let path = file.path().to_str().unwrap();
    let message = rejection(&[], &[("REDIS_PASSWORD_FILE", path)]);
    assert!(message.contains("larger than 65536 bytes"), "{message}");
}

#[test]
fn a_rejected_sentinel_url_names_the_setting_and_masks_the_password() {
    let message = rejection(&["--redis-url", "redis+sentinel://:hunter2@s1,s2"], &[]);
    assert!(
        message.starts_with(r#"invalid --redis-url "redis+sentinel://:***@s1,s2": "#),
        "{message}"
    );
    assert!(message.contains("names no master"), "{message}");
}

#[test]
fn sentinel_password_file_is_read_with_the_same_rules() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let sentinels = ["--redis-url", "redis+sentinel://s1/mymaster"];
    let message = rejection(&sentinels, &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
    assert!(
        message.starts_with("invalid REDIS_SENTINEL_PASSWORD_FILE ")
            && message.ends_with("the file is empty"),
        "{message}"
    );
    std::fs::write(path, "watchers\n").unwrap();
    let config = load(&sentinels, &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
    assert!(config.is_ok(), "{config:?}");
    let message = rejection(&[], &[("REDIS_SENTINEL_PASSWORD_FILE", path)]);
    assert!(message.contains("names no sentinels"), "{message}");
}

#[test]
fn rejects_a_bad_log_filter() {
    let message = rejection(&[], &[("RUST_LOG", "counter_worker=loud")]);
    assert!(
        message.starts_with(r#"invalid RUST_LOG "counter_worker=loud": "#),
        "{message}"
    );
}

#[test]
fn rust_log_takes_what_env_filter_takes_for_targets_and_levels_and_refuses_the_rest() {
    for filter in ["info,", "info,,", "counter_worker=debug,"] {
        let config = load(&[], &[("RUST_LOG", filter)]);
        assert!(config.is_ok(), "{filter:?}: {config:?}");
    }
    for filter in ["counter_worker[span]=debug", "garbage[[[", "=info"] {
        let message = rejection(&[], &[("RUST_LOG", filter)]);
        assert!(
            message.starts_with(&format!("invalid RUST_LOG {filter:?}: not a log filter")),
            "{message}"
        );
    }
}

#[test]
fn unknown_flags_are_one_line_usage_errors() {
    let message = rejection(&["--bogus"], &[]);
    assert_eq!(message, "unexpected argument '--bogus' found");
    assert!(!message.contains('\n'));
}

#[test]
fn errors_stay_on_one_line_whatever_the_value() {
    let message = rejection(&["--interval", "2s\nINFO fake log line"], &[]);
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn counting_is_exactly_once_unless_told_and_the_record_outlives_ten_intervals() {
    let lifetime = |args: &[&str]| match load(args, &[]).unwrap().counting {
        Counting::ExactlyOnce { record_lifetime } => record_lifetime,
        Counting::AtMostOnce => panic!("{args:?} counts at most once"),
    };
    assert_eq!(lifetime(&[]), Duration::from_secs(3600));
    assert_eq!(lifetime(&["--interval", "10m"]), Duration::from_secs(6000));
    assert_eq!(lifetime(&["--record-ttl", "20s"]), Duration::from_secs(20));
    let plain = load(&["--counting", "at-most-once"], &[]).unwrap();
    assert_eq!(plain.counting, Counting::AtMostOnce);
    assert_eq!(
        rejection(&["--record-ttl", "19s"], &[]),
        "invalid --record-ttl \"19s\": must be at least 10 intervals (20s), or the record could \
         expire between ticks"
    );
    assert_eq!(
        rejection(&["--counting", "at-most-once", "--record-ttl", "2h"], &[]),
        "invalid --record-ttl \"2h\": counting at most once keeps no record; remove it, or count \
         exactly once"
    );
    assert_eq!(
        rejection(&["--counting", "twice"], &[]),
        "invalid --counting \"twice\": must be \"exactly-once\" or \"at-most-once\""
    );
}

#[test]
fn under_cluster_a_key_whose_record_cannot_share_its_slot_is_refused_unless_at_most_once() {
    let cluster = ["--redis-url", "redis+cluster://n1,n2"];
    let message = rejection(&[&cluster[..], &["--key", "a}b"]].concat(), &[]);
    assert!(
        message.starts_with("invalid --key \"a}b\": under Redis Cluster"),
        "{message}"
    );
    for key in ["{t}a}b", "contador", "a{b"] {
        assert!(
            load(&[&cluster[..], &["--key", key]].concat(), &[]).is_ok(),
            "{key}"
        );
    }
    let plain = [
        &cluster[..],
        &["--key", "a}b", "--counting", "at-most-once"],
    ]
    .concat();
    assert!(load(&plain, &[]).is_ok());
    assert!(load(&["--key", "a}b"], &[]).is_ok(), "one server: any key");
}
