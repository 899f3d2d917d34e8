"""Figures 3b and 3c: what counting exactly once (the default: a Lua script that applies
each tick and keeps the worker's record beside the key) costs Redis and the network,
against the same binary counting at most once (`--counting at-most-once`, a plain INCR).

The two run side by side, each against a Redis of its own, so that Redis's statistics and
its MONITOR stream each belong to one of them; the CPU time the worker itself spends per
tick is figure 3, counted in that figure's window beside the other workers.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass

from figures import Bench
from harness import BenchError, runtime_by_thread
from redis_side import Monitor, RedisServer
from report import Budget, Row, us
from workers import Worker

SECTION = "3b–c. counting exactly once against at most once"
TICKS_INTERVAL_MS = 50  # figure 3c: a tick every 50 ms, so a window of ticks is short
NO_MODE = "— (one way of counting)"
# What the script runs per tick beside EVALSHA itself (Redis 7 counts each in its own
# commandstats line, and EVALSHA's time includes theirs).
SCRIPT_COMMANDS = ("get", "incrby", "set")


@dataclass
class Pair:
    """counter-worker counting exactly once and at most once, each with a Redis of its own."""

    exactly_once: Worker
    at_most_once: Worker
    redis: dict[Worker, RedisServer]

    def workers(self) -> tuple[Worker, Worker]:
        return self.exactly_once, self.at_most_once


def open_pair(bench: Bench) -> Pair:
    counter = bench.workers.counter
    pair = Pair(counter, counter.counting_at_most_once(), {})
    for worker in pair.workers():
        pair.redis[worker] = RedisServer(bench.procs, section=SECTION)
        pair.redis[worker].start()
    return pair


def close_pair(pair: Pair) -> None:
    for redis in pair.redis.values():
        if redis.proc is not None:
            redis.stop()


def command_stats(redis: RedisServer) -> dict[str, dict[str, int]]:
    """`INFO commandstats`, by command name: calls, usec and failed_calls."""
    stats = {}
    for line in redis.call("INFO", "commandstats").splitlines():
        match = re.match(r"cmdstat_([^:]+):(.*)$", line)
        if match:
            fields = dict(field.split("=") for field in match[2].split(","))
            stats[match[1]] = {k: int(float(fields.get(k, 0)))
                               for k in ("calls", "usec", "failed_calls")}
    return stats


@dataclass(frozen=True)
class RedisTime:
    """What one way of counting cost Redis per tick, in seconds."""

    ticks: int
    commands: float  # the worker's commands' own time (commandstats usec)
    script_parts: dict[str, float]  # exactly once: the script's inner commands, by name
    server_cpu: float  # the redis-server process's time on a CPU, whatever it did

    def shown(self, sent: str) -> str:
        inner = ", ".join(f"{name.upper()} {self.script_parts[name] * 1e6:.1f}"
                          for name in SCRIPT_COMMANDS if name in self.script_parts)
        inside = f"; inside it {inner} µs" if inner else ""
        return (f"{self.commands * 1e6:.1f} µs in {sent}{inside}; redis-server "
                f"{us(self.server_cpu)} on a CPU ({self.ticks} ticks)")


def redis_time(bench: Bench) -> Row:
    """Figure 3b: Redis's own time per tick, counting exactly once against at most once."""
    pair = open_pair(bench)
    try:
        launched = {w: bench.launch(w, f"redis-time-{w.short}", bench.plan.cpu_interval_ms,
                                    SECTION, redis=pair.redis[w]) for w in pair.workers()}
        for worker, (proc, key) in launched.items():
            bench.wait_count(proc, key, 20, timeout=10, redis=pair.redis[worker])
        start = {}
        for worker, redis in pair.redis.items():
            redis.call("CONFIG", "RESETSTAT")
            assert redis.proc is not None
            start[worker] = runtime_by_thread(redis.proc.pid)
        time.sleep(bench.plan.cpu_window_s)
        stats, cpu = {}, {}
        for worker, redis in pair.redis.items():
            assert redis.proc is not None
            end = runtime_by_thread(redis.proc.pid)
            cpu[worker] = sum(t - start[worker].get(tid, 0.0) for tid, t in end.items())
            stats[worker] = command_stats(redis)
        for proc, _ in launched.values():
            bench.procs.stop(proc)
    finally:
        close_pair(pair)
    eo, amo = pair.workers()
    exactly = script_time(stats[eo], cpu[eo])
    at_most = plain_time(stats[amo], cpu[amo])
    return Row("3b", f"Redis's own time per tick, counting exactly once (the default) and at "
                     f"most once (`INFO commandstats` over {bench.plan.cpu_window_s:g} s at "
                     f"{bench.plan.cpu_interval_ms} ms, each with a Redis of its own)",
               NO_MODE,
               f"exactly once: {exactly.shown('EVALSHA')}. At most once: "
               f"{at_most.shown('INCR')}. Exactly ÷ at most once: "
               f"{exactly.commands / at_most.commands:.1f}× in commands, "
               f"{exactly.server_cpu / at_most.server_cpu:.1f}× redis-server on a CPU",
               NO_MODE, "—", "—")


def script_time(stats: dict[str, dict[str, int]], cpu: float) -> RedisTime:
    """Counting exactly once: each tick is one EVALSHA; the window began after the script
    was cached, so a NOSCRIPT (a failed call) or an EVAL in it stops the run."""
    evalsha = stats.get("evalsha")
    if not evalsha or evalsha["failed_calls"] or "eval" in stats:
        raise BenchError(f"counting exactly once, the window held other than EVALSHAs of the "
                         f"cached script: {stats}")
    ticks = evalsha["calls"]
    if any(stats.get(name, {}).get("calls") != ticks for name in SCRIPT_COMMANDS):
        raise BenchError(f"the script did not run GET, INCRBY and SET once per EVALSHA: {stats}")
    return RedisTime(ticks, evalsha["usec"] / ticks / 1e6,
                     {name: stats[name]["usec"] / ticks / 1e6 for name in SCRIPT_COMMANDS},
                     cpu / ticks)


def plain_time(stats: dict[str, dict[str, int]], cpu: float) -> RedisTime:
    """Counting at most once: each tick is one INCR."""
    incr = stats.get("incr")
    if not incr or not incr["calls"]:
        raise BenchError(f"counting at most once, Redis ran no INCR in the window: {stats}")
    return RedisTime(incr["calls"], incr["usec"] / incr["calls"] / 1e6, {},
                     cpu / incr["calls"])


@dataclass(frozen=True)
class Trips:
    """The commands one way of counting sent: per tick while connected, and on a
    reconnect to a Redis without the script cached, beyond one a tick."""

    steady: int  # the worker's commands in the steady window
    steady_ticks: int
    steady_names: list[str]  # the command names sent, in order of first appearance
    reconnect: int  # the worker's commands from the connection's closing to the last tick
    reconnect_ticks: int
    reconnect_names: list[str]  # the worker's commands up to its first tick after closing

    @property
    def per_tick(self) -> float:
        return self.steady / self.steady_ticks

    @property
    def extra(self) -> int:
        """Commands on reconnecting beyond one a tick."""
        return self.reconnect - self.reconnect_ticks

    def shown(self) -> str:
        return (f"{self.per_tick:.2f} commands per tick ({', '.join(self.steady_names)}; "
                f"{self.steady_ticks} ticks); on a reconnect, {self.extra} beyond one a tick "
                f"({' → '.join(self.reconnect_names)})")


Command = tuple[str, str, str]  # client, name, first argument, as Monitor lists them


def trips_of(stream: list[Command], key: str, harness: str) -> Trips:
    """Reads one worker's MONITOR stream: the harness's `SCRIPT FLUSH` divides the steady
    window from the reconnect. Each part ends at its last INCR of `key` (for exactly once,
    the script's INCRBY, which follows its EVALSHA), so it holds whole ticks; the steady
    window also starts just after its first, as MONITOR began mid-tick."""
    def is_tick(command: Command) -> bool:
        return command[1] in Monitor.INCRS and command[2] == key

    def by_worker(part: list[Command]) -> list[str]:
        return [name for client, name, _ in part if client not in (harness, "lua")]

    marker = next((i for i, (client, name, _) in enumerate(stream)
                   if client == harness and name == "script"), None)
    if marker is None:
        raise BenchError("MONITOR did not show the harness's SCRIPT FLUSH")
    ticks_before = [i for i, c in enumerate(stream[:marker]) if is_tick(c)]
    ticks_after = [marker + i for i, c in enumerate(stream[marker:]) if is_tick(c)]
    if len(ticks_before) < 2 or not ticks_after:
        raise BenchError(f"MONITOR showed too few ticks of {key}")
    steady = by_worker(stream[ticks_before[0] + 1:ticks_before[-1] + 1])
    reconnect = by_worker(stream[marker:ticks_after[-1] + 1])
    first_tick = by_worker(stream[marker:ticks_after[0] + 1])
    return Trips(len(steady), len(ticks_before) - 1, [n.upper() for n in dict.fromkeys(steady)],
                 len(reconnect), len(ticks_after), [n.upper() for n in first_tick])


def wait_ticks(bench: Bench, monitors: dict[Worker, Monitor], keys: dict[Worker, str],
               procs: dict[Worker, subprocess.Popen], ticks: int) -> None:
    """Waits until each worker's key has had `ticks` more INCRs in MONITOR."""
    since = {w: len(m.ticks(keys[w])) for w, m in monitors.items()}
    deadline = time.monotonic() + 3 * ticks * TICKS_INTERVAL_MS / 1000 + 10
    while any(len(m.ticks(keys[w])) < since[w] + ticks for w, m in monitors.items()):
        for worker, proc in procs.items():
            if proc.poll() is not None:
                raise BenchError(f"{worker.name} exited ({proc.returncode}); "
                                 f"see {bench.procs.log_of(proc)}")
        if time.monotonic() > deadline:
            raise BenchError(f"not {ticks} ticks of each worker in MONITOR within the deadline")
        time.sleep(0.005)


def harness_address(redis: RedisServer) -> str:
    """The harness's own connection as MONITOR names its client."""
    redis.call("PING")  # connected
    assert redis.conn is not None
    host, port = redis.conn.sock.getsockname()[:2]
    return f"{host}:{port}"


def close_worker_connections(redis: RedisServer) -> int:
    """`SCRIPT FLUSH`, then closes every connection but the harness's and MONITOR's
    (`CLIENT KILL ID`): the worker's next tick reaches a Redis without the script, as
    after a failover or a restart. Returns how many were closed."""
    redis.call("SCRIPT", "FLUSH")
    mine = redis.call("CLIENT", "ID")
    closed = 0
    for line in redis.call("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if int(fields["id"]) != mine and "O" not in fields["flags"]:
            closed += redis.call("CLIENT", "KILL", "ID", fields["id"])
    return closed


def round_trips(bench: Bench) -> Row:
    """Figure 3c: the commands each way of counting sends per tick, and on a reconnect to a
    Redis without the script cached."""
    ticks = bench.plan.drift_ticks // 2
    pair = open_pair(bench)
    monitors: dict[Worker, Monitor] = {}
    try:
        launched = {w: bench.launch(w, f"trips-{w.short}", TICKS_INTERVAL_MS, SECTION,
                                    redis=pair.redis[w]) for w in pair.workers()}
        procs = {w: proc for w, (proc, _) in launched.items()}
        keys = {w: key for w, (_, key) in launched.items()}
        for worker, (proc, key) in launched.items():
            bench.wait_count(proc, key, 2, timeout=10, redis=pair.redis[worker])
        harness = {w: harness_address(r) for w, r in pair.redis.items()}
        for worker, redis in pair.redis.items():
            monitors[worker] = Monitor(redis.port)
            monitors[worker].start()
        wait_ticks(bench, monitors, keys, procs, ticks + 1)
        for worker, redis in pair.redis.items():
            if not close_worker_connections(redis):
                raise BenchError(f"{worker.name} had no connection to Redis to close")
        wait_ticks(bench, monitors, keys, procs, ticks)
        trips = {w: trips_of(list(m.commands), keys[w], harness[w])
                 for w, m in monitors.items()}
        for proc in procs.values():
            bench.procs.stop(proc)
    finally:
        for monitor in monitors.values():
            monitor.close()
        close_pair(pair)
    eo, amo = pair.workers()
    return Row("3c", f"Commands sent per tick, each waited for (Redis MONITOR, {ticks} ticks "
                     f"at {TICKS_INTERVAL_MS} ms), and beyond one a tick on a reconnect to a "
                     "Redis without the script cached (`SCRIPT FLUSH`, `CLIENT KILL ID`)",
               NO_MODE, f"exactly once: {trips[eo].shown()}. At most once: {trips[amo].shown()}",
               NO_MODE, "—", "—", budgets=trips_budgets(trips[eo], trips[amo]))


def trips_budgets(exactly: Trips, at_most: Trips) -> tuple[Budget, Budget]:
    """No round trip more per tick than a plain INCR; at most one more per reconnect."""
    per_tick = Budget(
        "counting exactly once: no round trip per tick beyond at most once's",
        f"{exactly.per_tick:.2f} commands per tick against {at_most.per_tick:.2f}",
        exactly.per_tick <= at_most.per_tick,
        "each tick is one EVALSHA, as it was one INCR; the script's GET, INCRBY and SET run "
        "inside Redis" if exactly.per_tick <= at_most.per_tick else
        "the worker sent more commands per tick than the ticks Redis counted")
    extra = exactly.extra - at_most.extra
    on_reconnect = Budget(
        "counting exactly once: at most one round trip more per reconnect",
        f"{extra} more ({exactly.extra} against {at_most.extra} beyond one a tick)",
        extra <= 1,
        "the first EVALSHA on a Redis without the script is answered NOSCRIPT and the same "
        "tick is sent again as EVAL, which caches it" if extra <= 1 else
        "a reconnect cost more than the one EVAL after NOSCRIPT")
    return per_tick, on_reconnect


def method(plan_window_s: float, interval_ms: int) -> list[str]:
    """How figures 3b and 3c are taken, for results.md."""
    return [
        "3b. counter-worker counting exactly once (the default) and the same binary with "
        "`--counting at-most-once` run side by side, each against a redis-server of its own "
        f"(interval {interval_ms} ms). After 20 ticks each, `CONFIG RESETSTAT` on both; "
        f"{plan_window_s:g} s later, `INFO commandstats`. Per tick: the usec of EVALSHA "
        "(Redis 7 times a script's call as a whole, the commands it runs included, and also "
        "lists those commands, GET, INCRBY and SET, on lines of their own, shown here as the "
        "part of it they took) or of INCR, divided by their calls; the window must hold only "
        "EVALSHAs of the cached script (no NOSCRIPT, no EVAL), each with one GET, INCRBY and "
        "SET, or only INCRs. `redis-server on a CPU` is the Redis process's time on a CPU "
        "over the same window (`se.sum_exec_runtime` of each of its threads) per tick: "
        "reading the command, running it and writing the reply, and its own timers "
        "(`hz 10`), which weigh the same on both.",
        "3c. The same two, each against a redis-server of its own, counting every "
        f"{TICKS_INTERVAL_MS} ms; Redis `MONITOR` lists every command with the client that "
        "sent it (`lua` for the commands a script runs, left out: they are no round trip). "
        "Without `WAIT_REPLICAS` each command waits for its reply before the next is sent, "
        "so commands are round trips. The steady window runs from just after one tick's "
        "INCR to the last tick's before the harness's `SCRIPT FLUSH`: commands per tick is "
        "the worker's commands in it over the INCRs Redis ran in it (for exactly once, the "
        "INCRBY the script runs, which follows its EVALSHA). Then `SCRIPT FLUSH` and `CLIENT KILL ID` of every connection but the "
        "harness's and MONITOR's: the worker's next tick reconnects to a Redis without the "
        "script, as after a failover or a restart. Over as many ticks again, the worker's "
        "commands beyond one a tick are what reconnecting cost; the commands up to the "
        "reconnect's first tick are listed. The budget compares the two ways of counting: "
        "both reconnect alike, and the script costs exactly once at most one command more.",
    ]
