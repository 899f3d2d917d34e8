"""Figure 12: how long counter-worker stops counting when the primary that owns its key
dies in a Redis Cluster, and whether a count it logged is lost.

Only counter-worker speaks Cluster. Each run builds a cluster of its own on loopback
(three primaries, three replicas, joined by `redis-cli --cluster create`), SIGKILLs the
key's primary once the worker counts, and watches that primary's replica for the first
INCR it applies as the new primary.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from failover import (COUNTS_BEFORE_KILL, INTERVAL_MS, SETTLE_S, Failover, Lab,
                      failover_cell, first_incr_after_kill, logged_counts, settled)
from figures import Bench
from harness import WORK, BenchError, run
from redis_side import RedisServer, unused_port
from report import Row
from workers import HEALTH_DIR

SECTION = "12. Cluster failover → next INCR"
NODE_TIMEOUT_MS = 5000  # as tests/cluster.rs: no spurious failover on a loaded machine
NO_CLUSTER = "— (no Cluster support)"


class Cluster:
    """Six cluster nodes on loopback, joined into three primaries with a replica each."""

    def __init__(self, bench: Bench) -> None:
        base = WORK / "redis" / "cluster"  # the same paths every run, so commands repeat
        shutil.rmtree(base, ignore_errors=True)
        self.nodes = [
            RedisServer(bench.procs,
                        ("--cluster-enabled", "yes", "--cluster-port", str(unused_port()),
                         "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                         "--repl-diskless-sync-delay", "0",
                         # Stopping a primary does not wait for its replicas to catch up.
                         "--shutdown-timeout", "0"),
                        base / f"node-{n}", SECTION)
            for n in range(1, 7)]
        self.started: list[RedisServer] = []

    def open(self) -> None:
        for node in self.nodes:
            self.started.append(node)
            node.start()
        run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "1", "--cluster-yes"], section=SECTION)
        Lab.wait("the cluster did not report cluster_state:ok on every node",
                 lambda: all("cluster_state:ok" in n.call("CLUSTER", "INFO") for n in self.nodes))
        Lab.wait("the three replicas did not each link to a primary", self.replicas_linked)

    def replicas_linked(self) -> bool:
        infos = [n.call("INFO", "replication") for n in self.nodes]
        return sum("master_link_status:up" in info for info in infos) == 3 and all(
            sum("slave" in line.split()[2] for line in n.call("CLUSTER", "NODES").splitlines())
            == 3
            for n in self.nodes)

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def owner_and_replica(self, key: str) -> tuple[RedisServer, RedisServer]:
        """The primary that serves `key`'s slot and its replica, from `CLUSTER NODES`."""
        slot = self.nodes[0].call("CLUSTER", "KEYSLOT", key)
        by_port = {n.port: n for n in self.nodes}
        lines = [line.split() for line in self.nodes[0].call("CLUSTER", "NODES").splitlines()]
        port_of = {f[0]: int(f[1].split(":")[1].split("@")[0]) for f in lines}
        for fields in lines:
            ranges = [r.split("-") for r in fields[8:] if not r.startswith("[")]
            if "master" in fields[2] and any(int(r[0]) <= slot <= int(r[-1]) for r in ranges):
                replica = next(port_of[f[0]] for f in lines if f[3] == fields[0])
                return by_port[port_of[fields[0]]], by_port[replica]
        raise BenchError(f"no primary serves slot {slot}")

    def close(self) -> None:
        for node in reversed(self.started):  # the killed one too: stop() reaps it
            if node.proc is not None:
                node.stop()


def replica_count(replica: RedisServer, key: str) -> int | None:
    """`GET key` on a replica (or the primary it became): `READONLY` first, since a
    replica answers `MOVED` to a read otherwise. None while it answers `CLUSTERDOWN`
    (the primary's failure is known, the promotion not done yet)."""
    try:
        replica.call("READONLY")
        return replica.count(key)
    except BenchError as err:
        if "CLUSTERDOWN" in str(err):
            return None
        raise


def cluster_once(bench: Bench, run_no: int) -> Failover:
    """One run: seconds from the kill to the promoted replica's first INCR, and the logged
    counts it did not hold, restored and lost for good."""
    cluster = Cluster(bench)
    proc: subprocess.Popen | None = None
    try:
        cluster.open()
        key = f"bench:cluster-{run_no}"
        primary, replica = cluster.owner_and_replica(key)
        env = {"REDIS_URL": cluster.url(), "COUNTER_KEY": key, "INTERVAL": f"{INTERVAL_MS}ms",
               "WAIT_REPLICAS": "1", "HEALTH_FILE": str(HEALTH_DIR / key)}
        proc = bench.procs.start(f"counter-worker-cluster-{run_no}",
                                 [str(bench.workers.counter.binary)], env, SECTION)
        bench.wait_count(proc, key, COUNTS_BEFORE_KILL, timeout=10, redis=primary)
        assert primary.proc is not None
        primary.disconnect()
        killed_at = time.monotonic()
        primary.proc.kill()
        time.sleep(SETTLE_S)  # well within the node timeout: no failover yet
        logged = logged_counts(bench.procs.log_paths[proc.pid])
        held = replica_count(replica, key)
        if held is None:
            raise BenchError(f"the cluster was down {SETTLE_S:g} s after the kill, before the "
                             f"node timeout ({NODE_TIMEOUT_MS} ms)")
        now = first_incr_after_kill(bench, proc, killed_at,
                                    lambda: (replica_count(replica, key) or 0) > held,
                                    "the promoted replica")
        if "role:master" not in replica.call("INFO", "replication"):
            raise BenchError("the replica's value grew, but it is not a primary")
        return settled(bench, proc, now - killed_at, logged, held)
    finally:
        if proc is not None:
            bench.procs.stop(proc)
        cluster.close()


def cluster_failover(bench: Bench) -> Row:
    """Figure 12: the key's primary SIGKILLed in a Redis Cluster → counter-worker's next
    INCR."""
    runs = [cluster_once(bench, n) for n in range(bench.plan.repeats)]
    many = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
    return Row("12", f"Redis Cluster: the key's primary SIGKILLed → first INCR on the promoted "
                     f"replica ({many}; 3 primaries + 3 replicas, node timeout "
                     f"{NODE_TIMEOUT_MS / 1000:g} s, `WAIT_REPLICAS=1`, {INTERVAL_MS} ms interval)",
               NO_CLUSTER, failover_cell(runs), NO_CLUSTER, "—", "—")


def method(repeats: int) -> list[str]:
    """How figure 12 is taken, for results.md."""
    return [
        "12. counter-worker only. Each run starts six `redis-server --cluster-enabled yes` "
        f"nodes (`--cluster-node-timeout {NODE_TIMEOUT_MS}`, AOF) and joins them with "
        "`redis-cli --cluster create … --cluster-replicas 1`; once every node reports "
        "`cluster_state:ok`, the worker starts with `REDIS_URL=redis+cluster://` and all six "
        f"nodes as seeds, `INTERVAL={INTERVAL_MS}ms`, `WAIT_REPLICAS=1`. The key's primary "
        "and its replica come from `CLUSTER KEYSLOT` and `CLUSTER NODES`; after the worker's "
        f"{COUNTS_BEFORE_KILL}th INCR the primary is SIGKILLed. {SETTLE_S:g} s later (before "
        "the node timeout, so no failover yet) the replica's value is read (`READONLY`, "
        "`GET`), then polled every millisecond until it grows; the replica must then report "
        "`role:master`. Logged counts lost by Redis, restored and lost in the end as in "
        "10. "
        f"{repeats} run{'s' if repeats > 1 else ''}"
        f"{', median with min–max' if repeats > 1 else ''}.",
    ]
