"""The fault figures: how each worker recovers from a Redis outage, how hard it knocks on
a Redis that is down, and what an idle timeout that drops its connection costs it.

Faults take seconds to play out, so the three workers go through each one side by side,
each against a Redis of its own, and the Redis servers are stopped and restarted together.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from harness import CLK_TCK, BenchError, cpu_seconds
from figures import Bench
from redis_side import RedisServer, SynCounter
from report import Row, duration, ms, ratio
from workers import Worker

RECOVERY_CAP = 20.0  # seconds after Redis is back before a worker counts as not recovered
RECOVERY_INTERVALS_MS = (100, 2000)
ATTEMPT_INTERVALS_MS = (1, 100, 2000)
IDLE_INTERVAL_MS = 2000
IDLE_TIMEOUT_S = 1


@dataclass
class Station:
    """One worker with a Redis of its own."""

    worker: Worker
    redis: RedisServer
    proc: subprocess.Popen
    key: str


@dataclass
class Outage:
    """What one worker did in one outage."""

    down_at: float = 0.0  # when its Redis had stopped (monotonic seconds)
    back_at: float = 0.0  # when its Redis first answered PING again
    recovered: float | None = None  # seconds from `back_at` to the worker's next INCR
    exited_at: float | None = None  # seconds into the outage when the process exited
    attempts: int = 0  # connection attempts while Redis was down
    cpu: float | None = None  # CPU seconds while Redis was down; None if it exited


def open_stations(bench: Bench, label: str, interval_ms: int, section: str,
                  redis_args: tuple[str, ...] = (), mid_second: bool = False) -> list[Station]:
    """Starts one Redis and one worker per worker kind, and waits until each counts.
    `mid_second`: start each worker half-way through a wall-clock second, so that its
    ticks (at whole-second intervals) fall there too."""
    group = []
    for worker in bench.workers.all():
        redis = RedisServer(bench.procs, redis_args)
        redis.start()
        if mid_second:
            time.sleep((0.5 - time.time()) % 1)
        proc, key = bench.launch(worker, label, interval_ms, section, redis=redis)
        group.append(Station(worker, redis, proc, key))
    for station in group:  # connected and ticking
        bench.wait_count(station.proc, station.key, 2, timeout=10 + 2 * interval_ms / 1000,
                         redis=station.redis)
    return group


def close_stations(bench: Bench, group: list[Station]) -> None:
    """Stops each worker and its Redis, keeping the last line of any worker that had exited."""
    for station in group:
        if station.proc.poll() is not None:
            said = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT",
                          bench.procs.last_line(station.proc))
            bench.notes.add(f"{station.worker.name}: `{said}` (exit {station.proc.returncode})")
        bench.procs.stop(station.proc)
        station.redis.stop()


def watch(group: list[Station], done: Callable[[Station, float], bool],
          then: Callable[[Station, float], None] = lambda station, at: None) -> None:
    """Polls every station each millisecond until `done(station, now)` holds for all,
    calling `then(station, the moment it held)` for each as it does."""
    pending = list(group)
    while pending:
        for station in list(pending):
            if done(station, time.monotonic()):
                then(station, time.monotonic())
                pending.remove(station)
        time.sleep(0.001)


def outage(bench: Bench, interval_ms: int, down_for: float, label: str) -> dict[Worker, Outage]:
    """Stops every station's Redis for `down_for` seconds, counting each worker's
    connection attempts and CPU time meanwhile, then restarts it and times recovery."""
    group = open_stations(bench, label, interval_ms, "7–8. Redis outage")
    result = {s.worker: Outage() for s in group}
    counters = {s.worker: SynCounter(s.redis.port) for s in group}
    cpu_before = {}
    for station in group:
        counters[station.worker].start()
        cpu_before[station.worker] = sum(cpu_seconds(station.proc.pid))
    # Stopped together and restarted together, each timed on its own, so that every
    # worker sees an outage of the same length.
    for station in group:
        station.redis.terminate()
    watch(group, lambda s, _: s.redis.stopped(),
          lambda s, at: setattr(result[s.worker], "down_at", at))

    def restart_when_due(station: Station, now: float) -> bool:
        seen = result[station.worker]
        if seen.exited_at is None and station.proc.poll() is not None:
            seen.exited_at = now - seen.down_at
        if now < seen.down_at + down_for:
            return False
        if seen.exited_at is None:
            seen.cpu = sum(cpu_seconds(station.proc.pid)) - cpu_before[station.worker]
        seen.attempts = counters[station.worker].finish()
        station.redis.launch()
        return True

    watch(group, restart_when_due)
    watch(group, lambda s, _: s.redis.answers(),
          lambda s, at: setattr(result[s.worker], "back_at", at))

    def settled(station: Station, now: float) -> bool:
        seen = result[station.worker]
        if seen.exited_at is not None:
            return True
        # Redis came back empty, so any value under the key is a post-outage INCR.
        if station.redis.call("EXISTS", station.key):
            seen.recovered = now - seen.back_at
        elif station.proc.poll() is not None:
            seen.exited_at = now - seen.down_at
        return seen.recovered is not None or seen.exited_at is not None or (
            now >= seen.back_at + RECOVERY_CAP)

    watch(group, settled)
    close_stations(bench, group)
    return result


def recovery_cell(runs: list[Outage]) -> str:
    """One worker's recoveries: the median of those that recovered, then crashes and stalls."""
    recovered = [r.recovered for r in runs if r.recovered is not None]
    exited = [r.exited_at for r in runs if r.exited_at is not None]
    stuck = len(runs) - len(recovered) - len(exited)
    parts = []
    if recovered:
        everyone = ", no crash" if len(recovered) == len(runs) else ""
        parts.append(f"{duration(statistics.median(recovered))} "
                     f"({len(recovered)}/{len(runs)} recovered{everyone})")
    if exited:
        parts.append(f"crashed in {len(exited)}/{len(runs)}, "
                     f"{duration(statistics.median(exited))} into the outage")
    if stuck:
        parts.append(f"no INCR within {RECOVERY_CAP:g} s in {stuck}/{len(runs)}")
    return "; ".join(parts)


def median_recovery(runs: list[Outage]) -> float | None:
    """The median recovery, or None unless every run recovered (no ratio then)."""
    times = [r.recovered for r in runs if r.recovered is not None]
    return statistics.median(times) if len(times) == len(runs) else None


def recovery_row(bench: Bench, number: str, down_for: float, interval_ms: int,
                 runs: dict[Worker, list[Outage]]) -> Row:
    """A row of figure 7: recovery after one outage length at one interval."""
    w = bench.workers
    typical = {worker: median_recovery(r) for worker, r in runs.items()}
    count = len(runs[w.counter])
    how_many = f"median of {count}" if count > 1 else "1 run"
    return Row(number, f"Redis down {down_for:g} s, then back → next INCR ({how_many}, "
                       f"{interval_ms / 1000:g} s interval)",
               *w.cells(lambda worker: recovery_cell(runs[worker])),
               ratio(typical[w.seed], typical[w.counter]),
               ratio(typical[w.counter], typical[w.floor]))


def attempts_row(bench: Bench, number: str, down_for: float, interval_ms: int,
                 runs: dict[Worker, Outage]) -> Row:
    """A row of figure 8: connection attempts during the long outage at one interval."""
    def cell(r: Outage) -> str:
        shown = f"{r.attempts} ({r.attempts / down_for:.1f}/s)"
        return shown if r.exited_at is None else (
            f"{r.attempts}, then crashed {duration(r.exited_at)} into the outage")

    def value(r: Outage) -> float | None:
        return None if r.exited_at is not None else r.attempts

    w = bench.workers
    return Row(number, f"Connection attempts while Redis is down {down_for:g} s "
                       f"({interval_ms:g} ms interval)",
               *w.cells(lambda worker: cell(runs[worker])),
               ratio(value(runs[w.seed]), value(runs[w.counter])),
               ratio(value(runs[w.counter]), value(runs[w.floor])))


def cpu_row(bench: Bench, number: str, down_for: float, interval_ms: int,
            runs: dict[Worker, Outage]) -> Row:
    """A row of figure 8: CPU time during the long outage at one interval."""
    tick = 1 / CLK_TCK

    def cell(r: Outage) -> str:
        if r.cpu is None:
            return f"crashed {duration(r.exited_at or 0)} into the outage"
        return f"< {ms(tick)}" if r.cpu == 0 else ms(r.cpu)

    def value(r: Outage) -> float | None:
        return None if r.cpu is None else max(r.cpu, tick)

    def share(a: Outage, b: Outage) -> str:
        if a.cpu is None or b.cpu is None or a.cpu == 0:
            return "—"  # crashed, or a zero reading has no size to compare
        return ratio(value(a), value(b), "≥" if b.cpu == 0 else "")

    w = bench.workers
    return Row(number, f"CPU time while Redis is down {down_for:g} s "
                       f"({interval_ms:g} ms interval)",
               *w.cells(lambda worker: cell(runs[worker])),
               share(runs[w.seed], runs[w.counter]), share(runs[w.counter], runs[w.floor]))


def outages(bench: Bench) -> list[Row]:
    """Figures 7 (recovery) and 8 (attempts and CPU while down). The long outage at
    100 ms and 2 s gives both its recovery and its attempts; the one at 1 ms only
    attempts."""
    plan = bench.plan
    short = {interval: [outage(bench, interval, plan.short_outage_s, f"outage-{interval}ms-{i}")
                        for i in range(plan.repeats)]
             for interval in RECOVERY_INTERVALS_MS}
    long = {interval: outage(bench, interval, plan.long_outage_s, f"long-outage-{interval}ms")
            for interval in ATTEMPT_INTERVALS_MS}
    rows = []
    for interval, letter in zip(RECOVERY_INTERVALS_MS, "ab"):
        runs = {w: [run[w] for run in short[interval]] for w in bench.workers.all()}
        rows.append(recovery_row(bench, f"7{letter}", plan.short_outage_s, interval, runs))
    for interval, letter in zip(RECOVERY_INTERVALS_MS, "cd"):
        runs = {w: [long[interval][w]] for w in bench.workers.all()}
        rows.append(recovery_row(bench, f"7{letter}", plan.long_outage_s, interval, runs))
    for interval, letter in zip(ATTEMPT_INTERVALS_MS, "abc"):
        rows.append(attempts_row(bench, f"8{letter}", plan.long_outage_s, interval, long[interval]))
    for interval, letter in zip(ATTEMPT_INTERVALS_MS, "def"):
        rows.append(cpu_row(bench, f"8{letter}", plan.long_outage_s, interval, long[interval]))
    return rows


def idle_timeout(bench: Bench) -> Row:
    """Figure 9: INCRs counted over a window of whole ticks against a Redis that closes
    connections idle for more than a second, at an interval longer than that."""
    ticks, interval = bench.plan.idle_ticks, IDLE_INTERVAL_MS / 1000
    group = open_stations(bench, "idle", IDLE_INTERVAL_MS, "9. idle timeout",
                          ("--timeout", str(IDLE_TIMEOUT_S)), mid_second=True)
    # Each window starts just after one of the worker's INCRs and spans `ticks` more
    # grid points, with half an interval of slack at the end.
    first = {s.worker: s.redis.count(s.key) for s in group}
    start: dict[Worker, tuple[float, int]] = {}
    deadline = time.monotonic() + 3 * interval + 5
    while len(start) < len(group):
        for station in group:
            count = station.redis.count(station.key)
            if station.worker not in start and count > first[station.worker]:
                start[station.worker] = (time.monotonic(), count)
        if time.monotonic() > deadline:
            raise BenchError("a worker made no INCR against the Redis with an idle timeout")
        time.sleep(0.001)
    counted = {}
    for station in sorted(group, key=lambda s: start[s.worker][0]):
        began, before = start[station.worker]
        time.sleep(max(0.0, began + (ticks + 0.5) * interval - time.monotonic()))
        counted[station.worker] = station.redis.count(station.key) - before
    close_stations(bench, group)

    def cell(worker: Worker) -> str:
        got = counted[worker]
        return f"{got} of {ticks} ({ticks - got} lost)"

    lost = {worker: ticks - got for worker, got in counted.items()}
    w = bench.workers
    return Row("9", f"Ticks counted in {ticks} intervals of {interval:g} s, Redis "
                    f"`--timeout {IDLE_TIMEOUT_S}` (idle connections dropped)",
               *w.cells(cell),
               ratio(lost[w.seed], lost[w.counter]), ratio(lost[w.counter], lost[w.floor]))


def method(short_outage_s: float, long_outage_s: float, repeats: int) -> list[str]:
    """How figures 7–9 are taken, for results.md."""
    return [
        "7–9. The three workers run side by side, each against a Redis of its own on a "
        "loopback port below the kernel's ephemeral range (so no other program's "
        "connection takes the port while Redis is down); a fault is applied to the three "
        "Redis servers together. Each worker has made 2 INCRs before a fault starts.",
        f"7. Redis is stopped (SIGTERM, no persistence) and restarted on the same port, empty, "
        f"{short_outage_s:g} s later ({repeats} run{'s' if repeats > 1 else ''}) or "
        f"{long_outage_s:g} s later (1 run, to keep the full run short; the same run gives "
        "figure 8); the figure is the time "
        "from its first PONG until the worker's key exists again, polled every millisecond. "
        "A worker whose process exits is reported as crashed; one with no INCR "
        f"{RECOVERY_CAP:g} s after Redis is back, as stuck.",
        f"8. During the {long_outage_s:g} s outage: connection attempts are TCP SYNs to the "
        "worker's Redis port, counted by the kernel's packet socket on `lo` through a BPF "
        "filter (SYN set, ACK clear, that port; each SYN counted once, as received), so "
        "nothing changes for the worker: no tracer, no listener; the port is refused "
        "(RST) each time, as for a Redis that is down. The harness stops the run if the "
        "socket dropped a packet. CPU time is `utime + stime` from `/proc/PID/stat` from "
        f"the moment Redis had stopped until it is restarted, in clock ticks ({1000 / CLK_TCK:g} "
        "ms). The floor's rule (one attempt per max(interval, 100 ms) while down) is the "
        "most counter-worker is meant to make.",
        f"9. Redis runs with `--timeout {IDLE_TIMEOUT_S}`, so it closes a connection idle for "
        f"more than {IDLE_TIMEOUT_S} s, as a NAT or load balancer idle timer would, and the "
        f"interval is {IDLE_INTERVAL_MS / 1000:g} s. Redis checks for idle clients ten times "
        "a second and counts idleness in whole seconds of its wall clock, so a tick just "
        "after a second begins can slip through before the check closes the connection; "
        "each worker is therefore started half-way through a second, its ticks land there, "
        "and every connection idle for one interval is closed before the next tick. "
        "The window starts just after one of the "
        "worker's INCRs and lasts the given number of intervals plus half of one; every "
        "tick in it should count.",
    ]
