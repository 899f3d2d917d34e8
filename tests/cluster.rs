//! Redis Cluster: three primaries and three replicas on loopback, real processes joined by
//! `redis-cli --cluster create`. The worker finds the key's primary through the cluster's
//! redirects and rides a failover and a resharding of the key's slot. Counting exactly
//! once (the default), its record moves with the counter and each tick is applied once,
//! also after a failover to a replica that missed the last ones; counting at most once,
//! an `INCR` is never sent twice: Redis's value is the logged counts plus the applied
//! unknowns.

mod support;

use std::thread;
use std::time::Duration;

use support::cluster_lab::{CLUSTER_PATIENCE, ClusterLab};
use support::tls_lab::Certificates;
use support::{Worker, fast_worker, restored_counts, run_to_exit};

const KEY: &str = "contador";

/// Stops `worker` and returns its logged counts, checked to rise by one each time when
/// `consecutive`, else only to rise.
fn stop_and_count(worker: &mut Worker, consecutive: bool) -> Vec<i64> {
    worker.signal(libc::SIGTERM);
    assert_eq!(
        worker.wait_for_exit().code(),
        Some(0),
        "{}",
        worker.output()
    );
    let counts = worker.counts();
    let output = worker.output();
    for pair in counts.windows(2) {
        let step = pair[1] - pair[0];
        let ok = if consecutive { step == 1 } else { step >= 1 };
        assert!(ok, "counts {pair:?} in {counts:?}:\n{output}");
    }
    counts
}

#[test]
fn counts_on_the_primary_that_serves_the_key_and_checks_health() {
    let lab = ClusterLab::start();
    let mut worker = fast_worker(&lab.url(), &[]);
    worker.wait_for_count(5);
    let (status, _, stderr) = run_to_exit(&["healthcheck"], &[("REDIS_URL", &lab.url())]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let counts = stop_and_count(&mut worker, true);
    assert_eq!(lab.counter(KEY), counts.last().copied());
    assert_eq!(counts[0], 1);
}

#[test]
fn names_the_node_that_serves_the_key_whether_a_seed_or_a_redirect_led_there() {
    let lab = ClusterLab::start();
    let owner = lab.owner_of(KEY);
    let other = lab
        .topology()
        .into_iter()
        .find(|node| node.primary && !node.failed && node.port != owner)
        .expect("a primary that does not serve the key")
        .port;
    // The only seed serves the key: it takes the first INCR, and no MOVED names it.
    let direct = fast_worker(&format!("redis+cluster://127.0.0.1:{owner}"), &[]);
    direct.wait_for_line(&[&format!(
        "the key's slot is served by 127.0.0.1:{owner}, which took the INCR"
    )]);
    drop(direct);
    // The only seed serves another slot: its MOVED names the key's primary.
    let redirected = fast_worker(&format!("redis+cluster://127.0.0.1:{other}"), &[]);
    let (moved, _) = redirected.wait_for_line_after(
        0,
        &[&format!(
            "the key's slot is served by 127.0.0.1:{owner} (MOVED)"
        )],
    );
    // A few INCRs executed on the key's primary since: none of them may name it again.
    redirected.wait_for_line_after(moved + 2, &["Contador atual: "]);
    assert!(
        !redirected.output().contains("which took the INCR"),
        "a MOVED node named twice:\n{}",
        redirected.output()
    );
}

#[test]
fn a_node_that_answers_ask_is_not_taken_for_the_key_owner() {
    let lab = ClusterLab::start();
    let from = lab.owner_of(KEY);
    let seed = format!("redis+cluster://127.0.0.1:{from}");
    fast_worker(&seed, &[]).wait_for_count(1);
    let mut late = None;
    let to = lab.migrate_slot_of(KEY, || {
        // Started with the key migrated and the slot not: its only seed answers ASK. With
        // a plain INCR: a new worker's record exists nowhere yet, and the node importing
        // the slot refuses a script on keys it holds only some of (TRYAGAIN) until the
        // migration ends, so only one key can go through the ASK.
        let worker = fast_worker(
            &seed,
            &[
                ("RUST_LOG", "counter_worker=debug"),
                ("COUNTING", "at-most-once"),
            ],
        );
        worker.wait_for_line(&["(ASK)"]);
        worker.wait_for_line(&["Contador atual: "]);
        // Counting exactly once, the same ASK leads to TRYAGAIN, and nothing is counted.
        let exactly_once = fast_worker(&seed, &[("RUST_LOG", "counter_worker=debug")]);
        exactly_once.wait_for_line(&["(ASK)"]);
        exactly_once.wait_for_line(&["TRYAGAIN"]);
        assert!(
            exactly_once.counts().is_empty(),
            "{}",
            exactly_once.output()
        );
        late = Some((worker, exactly_once));
    });
    let (late, exactly_once) = late.expect("the workers started during the migration");
    // Once the slot is settled, the script runs on its new node.
    exactly_once.wait_for_line(&[&format!(
        "the key's slot is served by 127.0.0.1:{to} (MOVED)"
    )]);
    exactly_once.wait_for_line(&["Contador atual: "]);
    late.wait_for_line(&[&format!(
        "the key's slot is served by 127.0.0.1:{to} (MOVED)"
    )]);
    let output = late.output();
    assert!(
        !output.contains(&format!("served by 127.0.0.1:{from}")),
        "the node that answered ASK was named as the key's:\n{output}"
    );
}

#[test]
fn a_killed_primary_is_replaced_and_no_acknowledged_count_is_lost() {
    let mut lab = ClusterLab::start();
    let mut worker = fast_worker(&lab.url(), &[("WAIT_REPLICAS", "1")]);
    worker.wait_for_count(5);
    let owner = lab.owner_of(KEY);
    lab.node_mut(owner).kill();
    let promoted = lab.wait_for_new_owner(KEY, owner);
    let served = format!("the key's slot is served by 127.0.0.1:{promoted}");
    let (after, _) = worker.wait_for_line_within(CLUSTER_PATIENCE, 0, &[&served]);
    worker.wait_for_line_after(after, &["Contador atual: "]);
    // Only rising: a count lost on the way would make the promoted replica count lower.
    let counts = stop_and_count(&mut worker, false);
    let output = worker.output();
    let unknowns = output.matches(r#"outcome="unknown""#).count() as i64;
    let stored = lab
        .counter(KEY)
        .expect("the counter on the promoted replica");
    let last = *counts.last().unwrap();
    assert!(
        stored - last <= unknowns && stored >= last,
        "{stored} vs {last}:\n{output}"
    );
    assert!(unknowns <= 1, "one kill, at most one unknown:\n{output}");
}

#[test]
fn a_slot_migrated_while_counting_loses_and_doubles_nothing() {
    let lab = ClusterLab::start();
    let mut worker = fast_worker(&lab.url(), &[("RUST_LOG", "counter_worker=debug")]);
    worker.wait_for_count(5);
    let from = lab.owner_of(KEY);
    // While the key is on the new node and the slot still the old one's, the old node
    // answers ASK: counting goes on through the new node.
    let mut counted_meanwhile = 0;
    let to = lab.migrate_slot_of(KEY, || {
        let before = worker.counts().len();
        thread::sleep(Duration::from_secs(1));
        counted_meanwhile = worker.counts().len() - before;
    });
    assert!(
        counted_meanwhile >= 3,
        "{counted_meanwhile} counts in 1 s of migration:\n{}",
        worker.output()
    );
    assert_ne!(from, to);
    assert_migrated_each_count_once(&lab, &mut worker, from, to);
}

/// Once `worker` counts on the node on `to` (a `MOVED` named it), stops it and checks the
/// migration from the node on `from`: counts one apart, a tick through `ASK`, no unknown
/// outcome, Redis's value the last count, and the record moved with the counter.
fn assert_migrated_each_count_once(lab: &ClusterLab, worker: &mut Worker, from: u16, to: u16) {
    let served = format!("the key's slot is served by 127.0.0.1:{to} (MOVED)");
    let (moved, _) = worker.wait_for_line_after(0, &[&served]);
    worker.wait_for_line_after(moved, &["Contador atual: "]);
    let counts = stop_and_count(worker, true);
    let output = worker.output();
    assert!(
        output.contains("(ASK)"),
        "no tick went through ASK:\n{output}"
    );
    assert!(!output.contains(r#"outcome="unknown""#), "{output}");
    assert_eq!(lab.counter(KEY), counts.last().copied(), "{output}");
    assert_record_moved(lab, &output, from, to);
}

/// The key of the worker's record, as its first line names it.
fn record_of(output: &str) -> String {
    output
        .split(" record=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no record named:\n{output}"))
        .to_owned()
}

/// Checks that the worker's record left the node on `from` for the one on `to`, with
/// the counter: the node on `to` holds it, and the one on `from` no key of its slot.
fn assert_record_moved(lab: &ClusterLab, output: &str, from: u16, to: u16) {
    let record = record_of(output);
    let slot = lab.slot_of(&record);
    assert_eq!(
        slot,
        lab.slot_of(KEY),
        "the record {record} hashes elsewhere"
    );
    let held: bool = lab.node(to).query(redis::cmd("EXISTS").arg(&record));
    let left: u64 = lab
        .node(from)
        .query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot));
    assert!(
        held && left == 0,
        "the record {record} did not move with the counter"
    );
}

/// `redis-cli --cluster reshard --cluster-pipeline 1`: the counter moves first, its record
/// after. While only the counter has moved, the old node answers the script `TRYAGAIN`
/// (it holds one of its keys only): nothing is applied and the worker tries again on the
/// next tick. Once both have moved it counts through `ASK`, then `MOVED`, each tick once.
#[test]
fn a_slot_migrated_one_key_at_a_time_pauses_counting_and_loses_and_doubles_nothing() {
    let lab = ClusterLab::start();
    let mut worker = fast_worker(&lab.url(), &[("RUST_LOG", "counter_worker=debug")]);
    worker.wait_for_count(5);
    let from = lab.owner_of(KEY);
    let mut counted_split = usize::MAX;
    let mut counted_moved = 0;
    let to = lab.migrate_slot_in_batches(KEY, 1, |all_moved| {
        if !all_moved {
            // From the first refusal on, no tick of before the move is still in flight.
            let mark = worker.line_count();
            worker.wait_for_line_after(mark, &["TRYAGAIN"]);
        }
        let before = worker.counts().len();
        thread::sleep(Duration::from_secs(1));
        let counted = worker.counts().len() - before;
        if all_moved {
            counted_moved = counted;
        } else {
            counted_split = counted;
        }
    });
    assert_eq!(counted_split, 0, "counted with the keys split");
    assert!(
        counted_moved >= 3,
        "{counted_moved} counts in 1 s with both keys moved:\n{}",
        worker.output()
    );
    assert_migrated_each_count_once(&lab, &mut worker, from, to);
}

/// The key's primary fails over to its replica after the replica missed the last counts:
/// its replication goes through a partition, cut while the primary counts alone for 2 s
/// (each count acknowledged by 0 of 1 replicas), and then the primary is killed. The
/// promoted replica gets the lost counts back with the worker's next tick, and each count
/// is logged once.
#[test]
fn a_failover_to_a_replica_that_missed_counts_restores_them_each_logged_once() {
    let mut lab = ClusterLab::start();
    let primary = lab.owner_of(KEY);
    let replica = lab.replica_of(primary);
    let partition = lab.replication_through_partition(primary);
    let mut worker = fast_worker(&lab.url(), &[("WAIT_REPLICAS", "1")]);
    worker.wait_for_count(5);
    partition.cut();
    let cut_at = worker.line_count();
    worker.wait_for_line_after(cut_at, &["acknowledged by 0 of 1 replicas"]);
    thread::sleep(Duration::from_secs(2));
    let on_primary = lab.node(primary).counter(KEY).unwrap_or_default();
    let on_replica = lab.counter_on_replica(replica, KEY).unwrap_or_default();
    assert!(
        on_replica < on_primary,
        "the replica holds {on_replica}, the primary {on_primary}: nothing was missed"
    );
    lab.node_mut(primary).kill();
    let promoted = lab.wait_for_new_owner(KEY, partition.port());
    assert_eq!(promoted, replica);
    let served = format!("the key's slot is served by 127.0.0.1:{promoted}");
    let (after, _) = worker.wait_for_line_within(CLUSTER_PATIENCE, cut_at, &[&served]);
    let (counted, _) = worker.wait_for_line_after(after, &["Contador atual: "]);
    worker.wait_for_line_after(counted, &["Contador atual: "]);
    let counts = stop_and_count(&mut worker, true);
    let output = worker.output();
    assert_eq!(counts[0], 1, "{output}");
    let restored = restored_counts(&output);
    assert!(
        restored.len() == 1 && restored[0] > 0,
        "not one restoration of lost counts: {restored:?}\n{output}"
    );
    assert_eq!(lab.counter(KEY), counts.last().copied(), "{output}");
}

#[test]
fn a_frozen_primary_costs_one_unknown_outcome_never_resent() {
    let lab = ClusterLab::start();
    // A plain INCR: never resent. Counting exactly once, the tick would be sent again.
    let mut worker = fast_worker(&lab.url(), &[("COUNTING", "at-most-once")]);
    worker.wait_for_count(3);
    let owner = lab.owner_of(KEY);
    // Longer than the worker's 2 s reply timeout, shorter than the 5 s node timeout.
    lab.node(owner).signal(libc::SIGSTOP);
    worker.wait_for_line(&[r#"outcome="unknown""#]);
    thread::sleep(Duration::from_millis(1_500));
    lab.node(owner).signal(libc::SIGCONT);
    let (resolved, verdict) = worker.wait_for_line_after(0, &["the INCR of unknown outcome"]);
    worker.wait_for_line_after(resolved, &["Contador atual: "]);
    let counts = stop_and_count(&mut worker, false);
    let output = worker.output();
    assert_eq!(
        output.matches(r#"outcome="unknown""#).count(),
        1,
        "{output}"
    );
    let applied = i64::from(verdict.contains("was applied"));
    let stored = lab.counter(KEY).unwrap();
    assert_eq!(stored, counts.len() as i64 + applied, "{output}");
    assert_eq!(stored, *counts.last().unwrap(), "{output}");
}

#[test]
fn counts_over_tls_on_every_node_and_follows_redirects_to_tls_ports() {
    let certificates = Certificates::make();
    let lab = ClusterLab::start_over_tls(&certificates);
    let ca = certificates.path("ca.pem");
    let mut worker = fast_worker(&lab.tls_url(), &[("REDIS_TLS_CA_FILE", &ca)]);
    worker.wait_for_count(5);
    let to = lab.migrate_slot_of(KEY, || thread::sleep(Duration::from_millis(500)));
    let (moved, line) =
        worker.wait_for_line_after(0, &["the key's slot is served by 127.0.0.1:", "(MOVED)"]);
    let node = line
        .split("served by ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next());
    // The redirect named the node's TLS port, as Redis does for a TLS client.
    assert!(
        node.is_some_and(|node| lab.tls_url().contains(node)),
        "{line}"
    );
    worker.wait_for_line_after(moved, &["Contador atual: "]);
    let counts = stop_and_count(&mut worker, true);
    assert_eq!(lab.node(to).counter(KEY), counts.last().copied(), "{line}");
}
