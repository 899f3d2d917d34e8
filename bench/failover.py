"""Figure 10: how long counter-worker stops counting when the Redis master dies under
Sentinel, and whether a count it logged is lost in the failover.

Only counter-worker follows Sentinel; the seed and the floor count at one fixed address.
Each run builds a lab of its own on loopback (a master, two replicas, three sentinels),
SIGKILLs the master once the worker counts, and watches the replicas for the first INCR
that one of them applies as the new master.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from figures import Bench
from harness import WORK, BenchError
from redis_side import RedisServer, Sentinel
from report import Row, seconds
from workers import HEALTH_DIR

SECTION = "10. Sentinel failover → next INCR"
MASTER_NAME = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 5000  # what the Compose override and the README recommend
FAILOVER_TIMEOUT_MS = 30000
INTERVAL_MS = 100
COUNTS_BEFORE_KILL = 10
# After the kill: time for the replicas to apply what the dead master had sent. No
# failover can begin before down-after, so nothing else can change a replica meanwhile.
SETTLE_S = 1.0
LAB_READY_S = 30.0  # sentinels exchange hellos every 2 s; this allows for a loaded machine
FAILOVER_CAP_S = 40.0  # from the kill: down-after, an election and a retry or two
COUNT_LINE = re.compile(r"Contador atual: (\d+)")
# counter-worker's warning when its script added back counts Redis had lost.
RESTORED_LINE = re.compile(r"Redis had lost (\d+) counts this worker logged")
FIRST_COUNT_CAP_S = 10.0  # from the new master's first INCR to the worker logging it
NO_SENTINEL = "— (no Sentinel support)"


@dataclass(frozen=True)
class Failover:
    """One run: seconds from the kill to the new master's first INCR, the logged counts
    the new master had lost, how many the worker restored, and how many stayed lost."""

    took: float
    logged: int  # the last count the worker had logged from the old master
    lost: int  # how many of those the new master did not hold
    restored: int  # counts the worker's next tick added back (its `restored` warnings)
    lost_in_end: int  # logged counts missing from the first count it logged afterwards


class Lab:
    """A master, two replicas and three sentinels on loopback, all stopped by `close`."""

    def __init__(self, bench: Bench) -> None:
        base = WORK / "redis" / "failover"  # the same paths every run, so commands repeat
        shutil.rmtree(base, ignore_errors=True)
        data = ("--min-replicas-to-write", "1")
        self.master = RedisServer(bench.procs, data, base / "master", SECTION)
        self.replicas = [
            RedisServer(bench.procs,
                        ("--replicaof", "127.0.0.1", str(self.master.port), *data),
                        base / f"replica-{n}", SECTION)
            for n in (1, 2)]
        config = [f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} {QUORUM}",
                  f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                  f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}"]
        self.sentinels = [Sentinel(bench.procs, base / f"sentinel-{n}.conf", config, SECTION)
                          for n in (1, 2, 3)]
        self.started: list[RedisServer] = []

    def open(self) -> None:
        """Starts every node and waits until each sentinel knows the whole lab."""
        for server in [self.master, *self.replicas]:
            self.started.append(server)
            server.start()
        # Sentinel learns the replicas from the master's INFO, which it reads as soon as it
        # connects and then every 10 s: the replicas are linked first.
        self.wait("the replicas did not link to the master", self.replicas_linked)
        for sentinel in self.sentinels:
            self.started.append(sentinel)
            sentinel.start()
        self.wait("the sentinels did not each see 2 replicas and 2 other sentinels",
                  self.sentinels_ready)

    def replicas_linked(self) -> bool:
        return all(r.call("ROLE")[3] == "connected" for r in self.replicas)

    def sentinels_ready(self) -> bool:
        def ready(sentinel: Sentinel) -> bool:
            seen = sentinel.master(MASTER_NAME)
            return seen["num-slaves"] == "2" and seen["num-other-sentinels"] == "2"
        return all(ready(s) for s in self.sentinels)

    @staticmethod
    def wait(failure: str, done) -> None:
        deadline = time.monotonic() + LAB_READY_S
        while not done():
            if time.monotonic() > deadline:
                raise BenchError(f"{failure} within {LAB_READY_S:g} s")
            time.sleep(0.05)

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def close(self) -> None:
        for server in reversed(self.started):
            if server.proc is not None:
                server.stop()


def logged_counts(log: Path) -> list[int]:
    return [int(m[1]) for m in COUNT_LINE.finditer(log.read_text(errors="replace"))]


def settled(bench: Bench, proc: subprocess.Popen, took: float, logged: list[int],
            held: int) -> Failover:
    """Waits for the worker to log its first count after the failover and reads its log:
    with nothing logged lost for good, that count is the last logged before plus one
    (restored counts included), so Redis holds every count the worker logged."""
    log = bench.procs.log_paths[proc.pid]
    deadline = time.monotonic() + FIRST_COUNT_CAP_S
    while len(after := logged_counts(log)) <= len(logged):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"counter-worker logged no count after the failover; see "
                             f"{bench.procs.log_of(proc)}")
        time.sleep(0.01)
    restored = sum(int(m[1]) for m in RESTORED_LINE.finditer(log.read_text(errors="replace")))
    last = logged[-1] if logged else 0
    return Failover(took, last, max(0, last - held), restored,
                    max(0, last + 1 - after[len(logged)]))


def failover_cell(runs: list[Failover]) -> str:
    """Figures 10 and 12: the median time, and the logged counts lost, restored and lost
    for good, summed over the runs."""
    took = [r.took for r in runs]
    spread = f" ({seconds(min(took))}–{seconds(max(took))})" if len(took) > 1 else ""
    logged = sum(r.logged for r in runs)
    return (f"{seconds(statistics.median(took))}{spread}; {sum(r.lost for r in runs)} of "
            f"{logged} logged counts lost by Redis, {sum(r.restored for r in runs)} restored, "
            f"{sum(r.lost_in_end for r in runs)} lost in the end")


def first_incr_after_kill(bench: Bench, proc: subprocess.Popen, killed_at: float,
                          grown: Callable[[], bool], where: str) -> float:
    """Polls `grown` every millisecond until it holds; returns that moment. Stops the run
    if the worker exits or nothing grows within the cap from the kill."""
    while True:
        now = time.monotonic()
        if grown():
            return now
        if proc.poll() is not None:
            raise BenchError(f"counter-worker exited ({proc.returncode}) during the "
                             f"failover; see {bench.procs.log_of(proc)}")
        if now > killed_at + FAILOVER_CAP_S:
            raise BenchError(f"no INCR on {where} within {FAILOVER_CAP_S:g} s of the "
                             f"kill; see {bench.procs.log_of(proc)}")
        time.sleep(0.001)


def failover_once(bench: Bench, run_no: int) -> Failover:
    lab = Lab(bench)
    proc: subprocess.Popen | None = None
    try:
        lab.open()
        key = f"bench:failover-{run_no}"
        env = {"REDIS_URL": lab.url(), "COUNTER_KEY": key, "INTERVAL": f"{INTERVAL_MS}ms",
               "WAIT_REPLICAS": "1", "HEALTH_FILE": str(HEALTH_DIR / key)}
        proc = bench.procs.start(f"counter-worker-failover-{run_no}",
                                 [str(bench.workers.counter.binary)], env, SECTION)
        bench.wait_count(proc, key, COUNTS_BEFORE_KILL, timeout=10, redis=lab.master)

        assert lab.master.proc is not None
        lab.master.disconnect()
        killed_at = time.monotonic()
        lab.master.proc.kill()
        time.sleep(SETTLE_S)
        logged = logged_counts(bench.procs.log_paths[proc.pid])
        held = {}
        for replica in lab.replicas:
            if replica.call("ROLE")[0] != "slave":
                raise BenchError(f"a replica was promoted within {SETTLE_S:g} s of the kill, "
                                 f"before down-after ({DOWN_AFTER_MS} ms)")
            held[replica.port] = replica.count(key)

        # The first INCR on the new master may reach the other replica, which replicates
        # from it, before this loop reads the new master: either one's growth times it.
        # Past the most either held, as a replica that lagged catches up when it resyncs;
        # Sentinel promotes the replica that has the most of the master's data.
        before = max(held.values())
        now = first_incr_after_kill(
            bench, proc, killed_at, lambda: any(r.count(key) > before for r in lab.replicas),
            "a new master")
        promoted = [r for r in lab.replicas if r.call("ROLE")[0] == "master"]
        if len(promoted) != 1 or promoted[0].count(key) <= held[promoted[0].port]:
            raise BenchError("a replica's value grew, but no single new master holds it")
        return settled(bench, proc, now - killed_at, logged, held[promoted[0].port])
    finally:
        if proc is not None:
            bench.procs.stop(proc)
        lab.close()


def failover(bench: Bench) -> Row:
    """Figure 10: the master SIGKILLed under Sentinel → counter-worker's next INCR."""
    runs = [failover_once(bench, n) for n in range(bench.plan.repeats)]
    many = f"median of {len(runs)}" if len(runs) > 1 else "1 run"
    return Row("10", f"Sentinel failover: master SIGKILLed → first INCR on the new master "
                     f"({many}; 2 replicas, 3 sentinels, down-after {DOWN_AFTER_MS / 1000:g} s, "
                     f"`WAIT_REPLICAS=1`, {INTERVAL_MS} ms interval)",
               NO_SENTINEL, failover_cell(runs), NO_SENTINEL, "—", "—")


def method(repeats: int) -> list[str]:
    """How figure 10 is taken, for results.md."""
    return [
        "10. counter-worker only: the seed and the floor count at one fixed address and "
        "cannot follow Sentinel. Each run builds a lab on loopback: a master and two "
        "replicas (`--replicaof`, `--min-replicas-to-write 1`, AOF) and three sentinels "
        f"(`redis-server sentinel.conf --sentinel`, quorum {QUORUM}, "
        f"`down-after-milliseconds {DOWN_AFTER_MS}`, `failover-timeout "
        f"{FAILOVER_TIMEOUT_MS}`). The worker starts once every sentinel reports 2 replicas "
        "and 2 other sentinels (`SENTINEL MASTER`), with "
        f"`REDIS_URL=redis+sentinel://…/{MASTER_NAME}`, `INTERVAL={INTERVAL_MS}ms` and "
        f"`WAIT_REPLICAS=1`; after its {COUNTS_BEFORE_KILL}th INCR the master is SIGKILLed. "
        "The figure is the time from the kill to the first INCR applied on the new master: "
        f"{SETTLE_S:g} s after the kill (the replicas have applied all the dead master sent, "
        "and no failover can begin before down-after) each replica's `GET key` is read, "
        "then both are polled every millisecond until either holds more than both did (the "
        "new master, or the other replica once it replicates from it); exactly one must "
        "then report `ROLE` master and hold more than it did. Watching the data times the INCR where Redis applies it, "
        "with no reply, log queue or log write of the worker in between, to a millisecond "
        "plus a round trip. The kill comes within a millisecond of a tick and the worker "
        "retries on its interval's grid, so the figure falls close to a multiple of "
        f"{INTERVAL_MS} ms. Logged counts lost by Redis: the last `Contador atual` the "
        f"worker had logged {SETTLE_S:g} s after the kill (its master dead, no later count "
        "can come from it) minus what the new master held before its first INCR, never "
        "below 0. Restored: the N of the worker's warnings `Redis had lost N counts this "
        "worker logged`, which its next tick, counting exactly once, adds back. Lost in the "
        "end: that last logged count plus one minus the first count the worker logs after "
        "the failover, never below 0: 0 when Redis holds every count the worker logged. "
        "Each summed over the runs, as are the logged counts (each run counts a fresh key "
        f"from 1). {repeats} run{'s' if repeats > 1 else ''}"
        f"{', median with min–max' if repeats > 1 else ''}.",
    ]
