//! TLS against a real `redis-server --tls-port` with certificates made by `openssl`: the
//! server's certificate and name are verified, a private CA and a client certificate are
//! used when given, a failed handshake is refused once with its reason, and the worker's
//! promises under faults (idle drops, a frozen Redis) hold over TLS as over TCP.

mod support;

use std::thread;
use std::time::Duration;

use support::sentinel_lab::FAILOVER_PATIENCE;
use support::tls_lab::{Certificates, ServerCert, TlsRedis, TlsSentinelLab};
use support::{FAST, Worker, fast_worker, run_to_exit, wait_until};

/// The settings as `(&str, &str)` pairs, the form the harness takes.
fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[test]
fn counts_over_tls_verified_against_a_private_ca() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    for url in [
        redis.url("127.0.0.1"),
        redis.url("localhost").replace("rediss", "valkeys"),
    ] {
        let settings = [certificates.trust_lab_ca()];
        let worker = fast_worker(&url, &env(&settings));
        let first = support::logged_count(&worker.wait_for_line(&["Contador atual: "])).unwrap();
        worker.wait_for_count(first + 2);
        assert!(
            redis.tls_clients() >= 1,
            "the worker is not on the TLS port"
        );
    }
}

/// Waits until `worker` logs a refused connection whose line names `reason`, lets it
/// retry for a while, and checks that the refusal was logged once and nothing counted;
/// the line.
fn refused_once_for(worker: &Worker, reason: &str) -> String {
    let line = worker.wait_for_line(&["Redis refused the connection", reason]);
    assert!(line.contains("ERROR"), "a refusal is an error: {line}");
    // About 15 attempts at 100 ms; repeats are summarised every 10 s, not logged.
    thread::sleep(Duration::from_millis(1_500));
    let output = worker.output();
    assert_eq!(output.matches(reason).count(), 1, "{output}");
    assert!(worker.counts().is_empty(), "{output}");
    line
}

#[test]
fn a_server_it_cannot_verify_is_refused_with_the_reason() {
    let certificates = Certificates::make();
    let trusted = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    let elsewhere = TlsRedis::start(&certificates, ServerCert::OtherName, false, &[]);
    let expired = TlsRedis::start(&certificates, ServerCert::Expired, false, &[]);
    let lab_ca = [certificates.trust_lab_ca()];
    let untrusted = [("REDIS_TLS_CA_FILE", certificates.path("untrusted-ca.pem"))];
    let cases = [
        // The built-in roots do not know a private CA: verification is on by default.
        (fast_worker(&trusted.url("127.0.0.1"), &[]), "UnknownIssuer"),
        (
            fast_worker(&trusted.url("127.0.0.1"), &env(&untrusted)),
            "UnknownIssuer",
        ),
        (
            fast_worker(&elsewhere.url("127.0.0.1"), &env(&lab_ca)),
            "not valid for name",
        ),
        (
            fast_worker(&expired.url("127.0.0.1"), &env(&lab_ca)),
            "Expired",
        ),
    ];
    for (worker, reason) in &cases {
        refused_once_for(worker, reason);
    }
    for redis in [&trusted, &elsewhere, &expired] {
        assert_eq!(redis.redis.counter("contador"), None);
    }
}

/// rustls writes the time of each handshake into an expired certificate's refusal: the
/// failure log must still know every attempt for the same failure, log it once, then only
/// a count every 10 s.
#[test]
fn a_certificate_expired_long_ago_is_logged_once_then_summarised() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::LongExpired, false, &[]);
    let worker = fast_worker(
        &redis.url("127.0.0.1"),
        &env(&[certificates.trust_lab_ca()]),
    );
    let refused = worker.wait_for_line(&["Redis refused the connection", "expired"]);
    assert!(refused.contains("ERROR"), "{refused}");
    worker.wait_for_line_within(
        Duration::from_secs(15),
        0,
        &["more attempts failed the same way"],
    );
    let output = worker.output();
    assert_eq!(
        output.matches("Redis refused the connection").count(),
        1,
        "{output}"
    );
    assert_eq!(redis.redis.counter("contador"), None);
}

/// A URL and a port that disagree on TLS: a handshake to a plain port gets no answer, a
/// plain command to a TLS port gets the connection closed; either way the line says that
/// TLS is on one side only, and which scheme the other side needs.
#[test]
fn tls_on_one_side_only_is_named_both_ways() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    let tls_to_plain = format!("rediss://127.0.0.1:{}", redis.redis.port());
    let worker = fast_worker(&tls_to_plain, &env(&[certificates.trust_lab_ca()]));
    worker.wait_for_line(&["cannot reach Redis", "TLS on one side only", "use redis://"]);
    drop(worker);
    let plain_to_tls = format!("redis://127.0.0.1:{}", redis.tls_port);
    let worker = fast_worker(&plain_to_tls, &[]);
    worker.wait_for_line(&[
        "cannot reach Redis",
        "TLS on one side only",
        "use rediss://",
    ]);
    assert_eq!(redis.redis.counter("contador"), None);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, true, &[]);
    let url = redis.url("127.0.0.1");
    let without = fast_worker(&url, &env(&[certificates.trust_lab_ca()]));
    let line = refused_once_for(&without, "CertificateRequired");
    assert!(line.contains("give it in REDIS_TLS_CERT_FILE"), "{line}");
    drop(without);

    let mut with = vec![certificates.trust_lab_ca()];
    with.extend(certificates.client_identity("client"));
    let worker = fast_worker(&url, &env(&with));
    worker.wait_for_count(3);
    assert!(
        redis
            .redis
            .counter("contador")
            .is_some_and(|count| count >= 3)
    );
}

/// Redis checks the client certificate after the handshake the worker sees complete, and
/// says why it refuses it in an alert: the worker's line and the health check's name the
/// file and what to do about it.
#[test]
fn a_client_certificate_redis_refuses_is_named_with_what_to_do() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, true, &[]);
    let url = redis.url("127.0.0.1");
    let expired = ("CertificateExpired", "has expired: issue a new one");
    let for_servers = ("UnsupportedCertificate", "issued for client authentication");
    for (name, (alert, hint)) in [("client-expired", expired), ("elsewhere", for_servers)] {
        let mut settings = vec![certificates.trust_lab_ca()];
        settings.extend(certificates.client_identity(name));
        let worker = fast_worker(&url, &env(&settings));
        let line = refused_once_for(&worker, alert);
        assert!(
            line.contains("REDIS_TLS_CERT_FILE") && line.contains(hint),
            "{line}"
        );

        settings.push(("REDIS_URL", url.clone()));
        let (status, _, stderr) = run_to_exit(&["healthcheck"], &env(&settings));
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(alert) && stderr.contains(hint), "{stderr}");
    }
}

#[test]
fn idle_connections_dropped_by_redis_cost_no_tick_over_tls() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, false, &["--timeout", "1"]);
    let settings = [
        ("REDIS_URL", redis.url("127.0.0.1")),
        ("INTERVAL", "2s".to_owned()),
        certificates.trust_lab_ca(),
    ];
    let worker = Worker::start_mid_second(&env(&settings));
    let (first, _) = worker.wait_for_line_after(0, &["Contador atual: 1 "]);
    // Four ticks take 8 s; losing every other tick to a dead connection would take 16 s.
    worker.wait_for_line_within(Duration::from_secs(12), first, &["Contador atual: 5 "]);
    assert_eq!(worker.counts()[..5], [1, 2, 3, 4, 5]);
    let stats = redis.redis.info("stats");
    let accepted: u32 = stats["total_connections_received"].parse().unwrap();
    // Redis closed the idle connection before each of the four ticks, so the worker opened
    // five, besides the test's own two (the start's PING, this INFO).
    assert!(accepted >= 7, "Redis accepted only {accepted} connections");
    let output = worker.output();
    assert!(!output.contains("unknown"), "{output}");
    assert!(!output.contains("cannot reach Redis"), "{output}");
}

/// A worker counting `counting` in a TLS Redis frozen for 4 s (SIGSTOP) after count 3,
/// stopped once the line with `settled` and the next count are logged; its output, counts
/// and what Redis holds.
fn through_a_frozen_tls_redis(counting: &str, settled: &str) -> (String, String, Vec<i64>, i64) {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    let settings = [
        ("REDIS_URL", redis.url("127.0.0.1")),
        ("INTERVAL", FAST.to_owned()),
        ("COUNTING", counting.to_owned()),
        certificates.trust_lab_ca(),
    ];
    let mut worker = Worker::start(&env(&settings));
    worker.wait_for_count(3);
    redis.redis.signal(libc::SIGSTOP);
    worker.wait_for_line(&[r#"outcome="unknown""#]);
    thread::sleep(Duration::from_secs(4));
    redis.redis.signal(libc::SIGCONT);
    let (resolved, verdict) = worker.wait_for_line_after(0, &[settled]);
    worker.wait_for_line_after(resolved, &["Contador atual: "]);
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_for_exit().code(), Some(0));
    let output = worker.output();
    assert_eq!(
        output.matches(r#"outcome="unknown""#).count(),
        1,
        "one freeze, one unknown: {output}"
    );
    let stored = redis.redis.counter("contador").unwrap();
    (output, verdict, worker.counts(), stored)
}

#[test]
fn counting_at_most_once_a_frozen_tls_redis_costs_one_unknown_outcome_never_resent() {
    let (output, verdict, counts, stored) =
        through_a_frozen_tls_redis("at-most-once", "the INCR of unknown outcome");
    let applied = i64::from(verdict.contains("was applied"));
    // Redis's value = logged successes + the applied unknown; nothing was sent twice.
    assert_eq!(stored, counts.len() as i64 + applied, "{output}");
    assert_eq!(stored, *counts.last().unwrap(), "{output}");
}

#[test]
fn a_frozen_tls_redis_settles_the_tick_and_each_count_is_logged_once() {
    let (output, _, counts, stored) =
        through_a_frozen_tls_redis("exactly-once", "the tick of unknown outcome had");
    let last = support::assert_each_count_once(&counts, 1, &output);
    assert_eq!(stored, last, "{output}");
}

#[test]
fn the_health_check_speaks_tls_and_names_a_certificate_it_refuses() {
    let certificates = Certificates::make();
    let redis = TlsRedis::start(&certificates, ServerCert::Valid, false, &[]);
    let url = redis.url("127.0.0.1");
    let ca = certificates.path("ca.pem");
    let (status, _, stderr) = run_to_exit(
        &["healthcheck"],
        &[("REDIS_URL", &url), ("REDIS_TLS_CA_FILE", &ca)],
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &[("REDIS_URL", &url)]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn tls_files_that_cannot_be_used_stop_the_start_naming_the_setting() {
    let certificates = Certificates::make();
    let ca = certificates.path("ca.pem");
    let client = certificates.path("client.pem");
    let wrong_key = certificates.path("server.key");
    let (client_v1, client_v1_key) = (
        certificates.path("client-v1.pem"),
        certificates.path("client-v1.key"),
    );
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:1"),
                ("REDIS_TLS_CA_FILE", &ca),
            ],
            r#"invalid REDIS_URL "redis://127.0.0.1:1": TLS files are set"#,
        ),
        (
            &[
                ("REDIS_URL", "rediss://127.0.0.1:1"),
                ("REDIS_TLS_CERT_FILE", &client),
                ("REDIS_TLS_KEY_FILE", &wrong_key),
            ],
            "invalid REDIS_TLS_KEY_FILE ",
        ),
        (
            &[
                ("REDIS_URL", "rediss://127.0.0.1:1"),
                ("REDIS_TLS_CERT_FILE", &client_v1),
                ("REDIS_TLS_KEY_FILE", &client_v1_key),
            ],
            "an X.509 version 1 certificate (issued without extensions)",
        ),
        (
            &[("REDIS_URL", "rediss://127.0.0.1:1/#insecure")],
            "turn off certificate verification",
        ),
    ];
    for (settings, wanted) in cases {
        let (status, stdout, stderr) = run_to_exit(&[], settings);
        assert_eq!(status.code(), Some(2), "{settings:?}: {stderr}");
        assert!(stderr.contains(wanted), "{settings:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
}

#[test]
fn follows_the_master_through_a_sentinel_over_tls() {
    let certificates = Certificates::make();
    let mut lab = TlsSentinelLab::start(&certificates);
    let settings = [certificates.trust_lab_ca()];
    let worker = fast_worker(&lab.url(), &env(&settings));
    worker.wait_for_count(3);
    assert_eq!(lab.master_tls_port(), lab.data[0].tls_port);
    assert!(
        lab.data[0].tls_clients() >= 1,
        "the worker is not on the master's TLS port"
    );

    // Replicated (over TLS) before the master dies, so the promoted replica holds it.
    let written = lab.data[0].redis.counter("contador");
    wait_until("the replica has the count", FAILOVER_PATIENCE, || {
        lab.data[1].redis.counter("contador") >= written
    });
    let before = worker.line_count();
    lab.data[0].redis.kill();
    let (_, line) = worker.wait_for_line_within(
        FAILOVER_PATIENCE,
        before,
        &["found the Redis master through Sentinel"],
    );
    assert!(line.contains(&lab.data[1].tls_port.to_string()), "{line}");
    let resumed = worker.line_count();
    worker.wait_for_line_after(resumed, &["Contador atual: "]);
    assert!(
        lab.data[1].tls_clients() >= 1,
        "the worker is not on the new master's TLS port"
    );
    let counts = worker.counts();
    let rising = counts.windows(2).all(|pair| pair[1] > pair[0]);
    assert!(rising, "{counts:?}: {}", worker.output());
}
