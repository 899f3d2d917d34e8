"""The steady-state figures, one function each: start-up, idle memory, CPU per tick, tick
drift, SIGTERM as PID 1 and sizes. Each runs the three workers one at a time against the
run's one private Redis and returns a table row; `method` says how each is taken."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (CLK_TCK, COMMANDS, BenchError, Procs, child_of, code_kib, cpu_seconds,
                     output, rel, rss_kib, run, runtime_by_thread)
from redis_side import Monitor, RedisServer
from report import Budget, Goal, Row, mb, mib, ms, ratio, signed_ms, us
from workers import BEFORE_TLS, VENV, Worker, Workers

IMAGE = "counter-worker:bench"  # built by this run from the measured binary; a tag of its own
STOP_CAP = 10.0  # seconds `docker stop` waits before it sends SIGKILL
TUTORIAL_INTERVAL_MS = 2000
RSS_INTERVAL_MS = 100
DRIFT_INTERVAL_MS = 50

# python:3.11-slim cannot be pulled here, so its size is the figure the Docker Official
# Images publish for linux/amd64 (image sha256:245f9d32fa…, Python 3.11.15, Debian trixie).
SLIM_ON_DISK_MB = 124.84
SLIM_ON_DISK_SOURCE = (
    "https://github.com/docker-library/repo-info/blob/"
    "33cda30be5833831143d1c93663f1ca38d85d049/repos/python/local/3.11-slim.md"
)
SLIM_COMPRESSED_MB = 45.52
SLIM_COMPRESSED_SOURCE = (
    "https://github.com/docker-library/repo-info/blob/"
    "2477d553d2fdfa57b4ec11f63c8376eca8b7a253/repos/python/remote/3.11-slim.md"
)


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to take."""

    startup_runs: int  # figure 1: runs per worker; the median is reported
    cpu_interval_ms: int  # figure 3
    cpu_window_s: float  # figure 3: how long to count CPU time
    drift_ticks: int  # figure 4
    repeats: int  # figures 5, 7 and 10: runs per worker
    short_outage_s: float  # figure 7
    long_outage_s: float  # figures 7 and 8: one run, it is long
    idle_ticks: int  # figure 9: ticks expected in the counting window


@dataclass
class Bench:
    """What every figure works with."""

    plan: Plan
    procs: Procs
    redis: RedisServer  # the one Redis of the steady-state figures
    workers: Workers
    notes: set[str] = field(default_factory=set)  # the last line of each crashed worker
    # Readings later figures compare with (e.g. over TLS against redis://), by figure.
    taken: dict[str, dict[Worker, float]] = field(default_factory=dict)

    def launch(self, worker: Worker, label: str, interval_ms: int, section: str,
               redis: RedisServer | None = None,
               wrapper: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
        redis = redis or self.redis
        key = worker.key(label)
        redis.call("DEL", key)
        port = redis.port if worker.tls_ca is None else redis.tls_port
        if port is None:
            raise BenchError(f"{worker.name} needs a Redis with a TLS port")
        argv, env = worker.command(port, key, interval_ms)
        return self.procs.start(f"{worker.short}-{label}", [*wrapper, *argv], env, section), key

    def wait_count(self, proc: subprocess.Popen, key: str, at_least: int, timeout: float,
                   redis: RedisServer | None = None) -> None:
        redis = redis or self.redis
        deadline = time.monotonic() + timeout
        while redis.count(key) < at_least:
            if proc.poll() is not None:
                raise BenchError(f"the worker exited ({proc.returncode}) before {at_least} INCRs; "
                                 f"see {self.procs.log_of(proc)}")
            if time.monotonic() > deadline:
                raise BenchError(f"no {at_least} INCRs of {key} within {timeout:g} s; "
                                 f"see {self.procs.log_of(proc)}")
            time.sleep(0.0005)


def both_ratios(bench: Bench, value: dict[Worker, float]) -> tuple[str, str]:
    """seed ÷ counter-worker and counter-worker ÷ floor of a figure where less is better."""
    w = bench.workers
    return ratio(value[w.seed], value[w.counter]), ratio(value[w.counter], value[w.floor])


def goal(name: str, limit: float, bench: Bench, value: dict[Worker, float], why: str,
         exact: bool = True) -> Goal:
    """The goal on counter-worker ÷ floor; not measured when either value is only a bound
    (`exact` false) or the floor's is zero."""
    w = bench.workers
    measured = exact and value[w.floor] > 0
    return Goal(name, limit, value[w.counter] / value[w.floor] if measured else None, why)


# 1 ------------------------------------------------------------------------------
def startup_once(bench: Bench, worker: Worker, label: str) -> float:
    """Seconds from spawning the worker to its first INCR being visible in Redis."""
    key = worker.key(label)
    bench.redis.call("DEL", key)
    argv, env = worker.command(bench.redis.port, key, TUTORIAL_INTERVAL_MS)
    started = time.monotonic()
    proc = bench.procs.start(f"{worker.short}-{label}", argv, env, section="1. start → first INCR")
    bench.wait_count(proc, key, 1, timeout=10)
    elapsed = time.monotonic() - started
    bench.procs.stop(proc)
    return elapsed


def startup(bench: Bench) -> Row:
    """Figure 1: how long until a new worker has counted once, the wait a container restart
    costs."""
    workers = bench.workers.all()
    for worker in workers:  # untimed: warms the page cache and writes the seed's .pyc
        startup_once(bench, worker, "start-warmup")
    times: dict[Worker, list[float]] = {w: [] for w in workers}
    for run_no in range(bench.plan.startup_runs):
        shift = run_no % len(workers)  # no worker always goes first
        for worker in workers[shift:] + workers[:shift]:
            times[worker].append(startup_once(bench, worker, f"start-{run_no}"))
    medians = {w: statistics.median(t) for w, t in times.items()}

    def shown(w: Worker) -> str:
        t = times[w]
        spread = f" ({ms(min(t))}–{ms(max(t))})" if len(t) > 1 else ""
        return f"{ms(medians[w])}{spread}"

    w = bench.workers
    return Row("1", f"Start → first INCR seen in Redis (median of {bench.plan.startup_runs})",
               *w.cells(shown), *both_ratios(bench, medians),
               goal("start", 2, bench, medians,
                    "counter-worker does more before its first connect: a larger binary to "
                    "map (6a), a tokio runtime, clap's parser, a log thread, the health "
                    "state file and a start line, where the floor reads four arguments"))


# 2 ------------------------------------------------------------------------------
def rss(bench: Bench) -> Row:
    """Figure 2: resident memory of an idle worker, what each replica costs a node."""
    w = bench.workers
    at_most_once = w.counter.counting_at_most_once()
    taken = {worker: idle_rss(bench, worker, "2. idle RSS")
             for worker in [*w.all(), at_most_once]}
    kib = {worker: r.kib for worker, r in taken.items()}
    bench.taken["rss"] = kib

    def shown(worker: Worker) -> str:
        if worker != w.counter:
            return taken[worker].shown()
        return f"{taken[worker].shown()}; counting at most once {mib(kib[at_most_once])}"

    return Row("2", f"Idle RSS after 10 ticks (VmRSS, {RSS_INTERVAL_MS} ms interval)",
               *w.cells(shown), *both_ratios(bench, kib),
               goal("idle RSS", 2.5, bench, kib,
                    "most of counter-worker's idle RSS is its binary's own pages mapped from "
                    "the file (2), so RSS follows the binary's size (6a)"),
               (rss_budget(taken[w.counter], taken[at_most_once]),))


@dataclass(frozen=True)
class RssReading:
    """An idle worker's memory, in KiB."""

    kib: int  # VmRSS
    file_kib: int  # RssFile: resident pages of mapped files
    code_kib: int  # the resident part of its program's executable mapping
    code_size_kib: int  # that mapping's size

    def shown(self) -> str:
        return f"{mib(self.kib)} ({self.file_kib / self.kib:.0%} file pages)"


def idle_rss(bench: Bench, worker: Worker, section: str,
             redis: RedisServer | None = None) -> RssReading:
    """The memory of `worker` halfway between its 10th and 11th tick."""
    proc, key = bench.launch(worker, "rss", RSS_INTERVAL_MS, section, redis=redis)
    bench.wait_count(proc, key, 10, timeout=10, redis=redis)
    time.sleep(RSS_INTERVAL_MS / 2000)  # halfway to the next tick: idle
    reading = RssReading(*rss_kib(proc.pid), *code_kib(proc.pid))
    bench.procs.stop(proc)
    return reading


RSS_BUDGET_MIB = 2.7  # a plain redis:// worker, TLS and Cluster built in, counting exactly once


def rss_budget(reading: RssReading, at_most_once: RssReading) -> Budget:
    """A plain `redis://` worker's idle RSS, with TLS and Cluster compiled in and counting
    exactly once, ≤ 2.7 MiB; beside it, the same binary counting at most once tells the
    binary's share from the way of counting's."""
    met = reading.kib / 1024 <= RSS_BUDGET_MIB
    return Budget(f"plain `redis://` idle RSS, counting exactly once, ≤ {RSS_BUDGET_MIB:g} MiB",
                  mib(reading.kib), met,
                  f"{mib(reading.file_kib)} of it is pages of the binary's file: its code "
                  f"({mib(reading.code_size_kib)}, TLS and Cluster code included) is "
                  f"{reading.code_kib / reading.code_size_kib:.0%} resident, so RSS tracks "
                  "the code's size and how much of it the kernel maps (6a); the same binary "
                  f"counting at most once needs {mib(at_most_once.kib)}")


# 3 ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuReading:
    """CPU time per tick of one worker, and the share of it spent in the kernel."""
    per_tick: float  # seconds
    kernel_share: float  # from whole clock ticks: a rough share
    ticks: int

    def shown(self) -> str:
        return f"{us(self.per_tick)} ({self.kernel_share:.0%} in the kernel; {self.ticks} ticks)"


def cpu(bench: Bench) -> Row:
    """Figure 3: CPU time per tick, what a short interval costs."""
    interval = bench.plan.cpu_interval_ms
    w = bench.workers
    before_tls = w.before_tls
    at_most_once = w.counter.counting_at_most_once()
    measured = [*w.all(), at_most_once, *([before_tls] if before_tls else [])]
    reading = cpu_readings(bench, measured, "3. CPU per tick")
    per_tick = {worker: r.per_tick for worker, r in reading.items()}
    bench.taken["cpu"] = per_tick
    seed, counter, floor = reading[w.seed], reading[w.counter], reading[w.floor]
    vs_seed = ratio(seed.per_tick, counter.per_tick)
    vs_floor = ratio(counter.per_tick, floor.per_tick)
    plain = reading[at_most_once].per_tick

    def shown(worker: Worker) -> str:
        if worker != w.counter:
            return reading[worker].shown()
        return (f"{counter.shown()}; counting at most once {us(plain)}, so exactly once "
                f"{ratio(counter.per_tick, plain)} that")

    return Row("3", f"CPU time per tick (time on a CPU over {bench.plan.cpu_window_s:g} s "
                    f"at {interval} ms)",
               *w.cells(shown), vs_seed, vs_floor,
               goal("CPU per tick", 2, bench, per_tick,
                    "each tick goes through tokio's timer and epoll reactor and a formatted "
                    "tracing event, where the floor makes one ppoll, one write and one read"),
               (exactly_once_cpu_budget(counter, reading[at_most_once]),
                cpu_budget(reading[at_most_once], reading.get(before_tls))))


def cpu_readings(bench: Bench, workers: list[Worker], section: str,
                 redis: RedisServer | None = None) -> dict[Worker, CpuReading]:
    """CPU time per tick of `workers`, counted side by side over the same window (so
    whatever else the machine does weighs on each alike), after 20 warm-up ticks each."""
    redis = redis or bench.redis
    launched = {worker: bench.launch(worker, f"cpu-{worker.short}", bench.plan.cpu_interval_ms,
                                     section, redis=redis)
                for worker in workers}
    for proc, key in launched.values():
        bench.wait_count(proc, key, 20, timeout=10, redis=redis)  # start-up is not a tick's cost
    start = {worker: cpu_sample(proc.pid, key, redis) for worker, (proc, key) in launched.items()}
    time.sleep(bench.plan.cpu_window_s)
    end = {worker: cpu_sample(proc.pid, key, redis) for worker, (proc, key) in launched.items()}
    for proc, _ in launched.values():
        bench.procs.stop(proc)
    return {worker: cpu_between(worker, start[worker], end[worker]) for worker in workers}


@dataclass(frozen=True)
class CpuSample:
    """What one worker had used, and counted, at one moment."""
    clock_ticks: tuple[float, float]  # utime, stime in seconds, whole clock ticks
    runtime: dict[int, float]  # seconds on a CPU, by thread id
    count: int  # the worker's INCRs as Redis counted them


def cpu_sample(pid: int, key: str, redis: RedisServer) -> CpuSample:
    return CpuSample(cpu_seconds(pid), runtime_by_thread(pid), redis.count(key))


def cpu_between(worker: Worker, start: CpuSample, end: CpuSample) -> CpuReading:
    ticks = end.count - start.count
    if ticks <= 0:
        raise BenchError(f"{worker.name} made no INCR while its CPU time was counted")
    if gone := start.runtime.keys() - end.runtime.keys():
        raise BenchError(f"{worker.name}: threads {sorted(gone)} ended while its CPU time "
                         "was counted, taking their time with them")
    used = sum(run - start.runtime.get(tid, 0.0) for tid, run in end.runtime.items())
    (user0, sys0), (user1, sys1) = start.clock_ticks, end.clock_ticks
    clock_ticks = user1 - user0 + sys1 - sys0
    return CpuReading(used / ticks, (sys1 - sys0) / clock_ticks if clock_ticks else 0.0, ticks)


EXACTLY_ONCE_CPU_BUDGET = 1.15  # CPU per tick counting exactly once ÷ at most once


def exactly_once_cpu_budget(exactly_once: CpuReading, at_most_once: CpuReading) -> Budget:
    """Counting exactly once (the script and the record, the default) costs at most 15 %
    more CPU per tick than a plain `INCR`, the same binary counted side by side."""
    now = exactly_once.per_tick / at_most_once.per_tick
    met = now <= EXACTLY_ONCE_CPU_BUDGET
    return Budget(
        f"CPU per tick counting exactly once ≤ {EXACTLY_ONCE_CPU_BUDGET:g}× the same binary "
        "counting at most once (`--counting at-most-once`, a plain INCR)",
        f"{now:.2f}× ({us(exactly_once.per_tick)} against {us(at_most_once.per_tick)})", met,
        "a tick is still one command and one reply, only longer ones (EVALSHA with two keys "
        "and two arguments, a three-element answer), and the worker's own work per tick is "
        "the same timer, reactor and log line" if met else
        "side by side in one window, the script's longer command and answer and the "
        "settling of its answer cost the worker more than the budget")


CPU_TOLERANCE = 0.10


def cpu_budget(counter: CpuReading, before_tls: CpuReading | None) -> Budget:
    """A plain worker's CPU per tick no worse than before TLS and Cluster (± 10 %), against
    counter-worker as it was then, counted side by side in the same window. Both count with
    a plain `INCR` (the measured binary with `--counting at-most-once`), so the budget
    weighs TLS and Cluster, not counting exactly once, which has a budget of its own."""
    name = (f"plain `redis://` CPU per tick, counting at most once (a plain INCR, as then), "
            f"≤ {1 + CPU_TOLERANCE:g}× counter-worker at {BEFORE_TLS}, before TLS and Cluster")
    if before_tls is None:
        return Budget(name, "—", None,
                      f"without git history, {BEFORE_TLS} cannot be built")
    now = counter.per_tick / before_tls.per_tick
    met = now <= 1 + CPU_TOLERANCE
    return Budget(
        name, f"{now:.2f}× ({us(counter.per_tick)} against {us(before_tls.per_tick)})", met,
        "side by side in one window, a redis:// tick costs what it did before TLS and Cluster"
        if met else
        "side by side in one window, a redis:// tick costs more than before TLS and Cluster")


# 4 ------------------------------------------------------------------------------
def drift(bench: Bench) -> Row:
    """Figure 4: how far tick N lands from N intervals after tick 0, by Redis's clock."""
    n = bench.plan.drift_ticks
    interval = DRIFT_INTERVAL_MS / 1000
    late = {}
    for worker in bench.workers.all():
        monitor = Monitor(bench.redis.port)
        monitor.start()
        proc, key = bench.launch(worker, "drift", DRIFT_INTERVAL_MS, "4. tick drift")
        deadline = time.monotonic() + n * interval * 2 + 10
        while len(monitor.ticks(key)) < n + 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{worker.name} did not make {n + 1} INCRs; "
                                 f"see {bench.procs.log_of(proc)}")
            time.sleep(0.01)
        bench.procs.stop(proc)
        monitor.close()
        at = monitor.ticks(key)
        # Tick 0 is the first INCR; tick n should land n intervals after it.
        late[worker] = at[n] - at[0] - n * interval
    w = bench.workers
    return Row("4", f"Drift of tick {n} from {n} × {DRIFT_INTERVAL_MS} ms (Redis MONITOR times)",
               *w.cells(lambda worker: signed_ms(late[worker])),
               *both_ratios(bench, {worker: abs(t) for worker, t in late.items()}))


# 5 ------------------------------------------------------------------------------
def sigterm_once(bench: Bench, worker: Worker, label: str) -> tuple[float | None, int]:
    """Seconds from SIGTERM to exit, or None when the cap was reached; and the exit status."""
    proc, key = bench.launch(worker, label, TUTORIAL_INTERVAL_MS, "5. SIGTERM → exit as PID 1",
                             wrapper=("unshare", "-fp", "--mount-proc"))
    bench.wait_count(proc, key, 1, timeout=10)  # running, and between two ticks
    pid = child_of(proc.pid)
    bench.procs.extra_pids.add(pid)
    nspid = re.search(r"^NSpid:(.*)$", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if not nspid or nspid[1].split()[-1] != "1":
        raise BenchError(f"{worker.name} is not PID 1 in its namespace")
    exited = os.pidfd_open(pid)
    sent = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    ready, _, _ = select.select([exited], [], [], STOP_CAP)
    took = time.monotonic() - sent if ready else None
    if not ready:
        os.kill(pid, signal.SIGKILL)  # what Docker does when the cap is reached
    os.close(exited)
    status = proc.wait(10)  # unshare -f passes on the worker's exit status
    bench.procs.stop(proc)
    bench.procs.extra_pids.discard(pid)
    return took, status


def sigterm(bench: Bench) -> Row:
    """Figure 5: SIGTERM to exit as a container's PID 1, the time `docker stop` takes."""
    results = {w: [sigterm_once(bench, w, f"sigterm-{i}") for i in range(bench.plan.repeats)]
               for w in bench.workers.all()}

    def shown(w: Worker) -> str:
        runs = results[w]
        capped = sum(took is None for took, _ in runs)
        stopped = [took for took, _ in runs if took is not None]
        statuses = sorted({status for took, status in runs if took is not None})
        parts = []
        if stopped:
            exits = ", ".join(f"exit {s}" for s in statuses)
            parts.append(f"{ms(statistics.median(stopped))} ({exits})")
        if capped:
            parts.append(f"cap of {STOP_CAP:g} s reached in {capped}/{len(runs)}: SIGKILLed")
        return "; ".join(parts)

    # A capped run is only known to take at least the cap.
    typical = {w: statistics.median(STOP_CAP if took is None else took for took, _ in runs)
               for w, runs in results.items()}
    capped = {w: any(took is None for took, _ in runs) for w, runs in results.items()}
    w = bench.workers
    vs_seed = "—" if capped[w.counter] else ratio(typical[w.seed], typical[w.counter],
                                                  "≥" if capped[w.seed] else "")
    vs_floor = "—" if capped[w.counter] or capped[w.floor] else ratio(
        typical[w.counter], typical[w.floor])
    return Row("5", f"SIGTERM → exit as PID 1 (`unshare -fp --mount-proc`, median of "
                    f"{bench.plan.repeats})",
               *w.cells(shown), vs_seed, vs_floor,
               goal("SIGTERM → exit", 1.5, bench, typical,
                    "the signal reaches the loop through tokio's signal pipe and reactor, and "
                    "the final line goes through the log thread and is written before exit; "
                    "the floor's ppoll returns and it exits",
                    exact=not (capped[w.counter] or capped[w.floor])))


# 6 ------------------------------------------------------------------------------
def check_static_and_stripped(binary: Path) -> None:
    """Stops the run unless `binary` is what ships: static, with no symbol table."""
    argv = ["readelf", "--program-headers", "--section-headers", "--dynamic", str(binary)]
    COMMANDS.add("6. sizes", argv)
    headers = output(argv)
    if "INTERP" in headers or "(NEEDED)" in headers:
        raise BenchError(f"{rel(str(binary))} is not statically linked")
    if ".symtab" in headers:
        raise BenchError(f"{rel(str(binary))} is not stripped")


def redis_py_bytes() -> int:
    """The installed redis-py package on disk, the part of the seed's stack beyond Python."""
    site = next((VENV / "lib").glob("python3*/site-packages"))
    paths = [site / "redis", *site.glob("redis-*.dist-info")]
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())


def image_bytes() -> tuple[int | None, str]:
    """The image's size on disk, or why it was not measured."""
    if not shutil.which("docker"):
        return None, "not measured (Docker not installed)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None, "not measured (Docker not running)"
    run(["scripts/build-image", IMAGE], section="6. sizes")
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", IMAGE],
                   section="6. sizes").strip()), ""


def sizes(bench: Bench) -> list[Row]:
    """Figure 6: the binaries and the image, what a node pulls and keeps."""
    w = bench.workers
    for worker in (w.counter, w.floor):
        check_static_and_stripped(worker.binary)
    size = {worker: worker.binary.stat().st_size for worker in (w.counter, w.floor)}
    seed_stack = SLIM_ON_DISK_MB * 1e6 + redis_py_bytes()
    size[w.seed] = seed_stack
    seed_text = (f"{SLIM_ON_DISK_MB:.2f} MB python:3.11-slim (published, not measured [1]) "
                 f"+ {mb(redis_py_bytes())} redis-py (measured)")
    image, why = image_bytes()
    return [
        Row("6a", "Size: stripped static binary vs the seed's stack on disk", seed_text,
            mb(size[w.counter]), mb(size[w.floor]), *both_ratios(bench, size),
            goal("binary size", 2.5, bench, size,
                 "beside the static glibc both carry, counter-worker links Rust's std (its "
                 "panic and backtrace machinery included), tokio, redis-rs with its URL "
                 "parser, clap and tracing-subscriber with JSON output"),
            (size_budget(size[w.counter]),)),
        Row("6b", f"Size: image `{IMAGE}` (`docker image inspect`) vs the seed's stack",
            seed_text, mb(image) if image else why, "— (no image)",
            ratio(seed_stack, image) if image else "—", "—"),
    ]


SIZE_BUDGET_MB = 3.4  # the static stripped binary with TLS, Cluster and exactly-once counting
SIZE_BEFORE = 2_324_312  # bytes, before TLS and Cluster (the full run of 2026-11-26)


def size_budget(size: float) -> Budget:
    """The static stripped binary, TLS, Cluster and exactly-once counting included,
    ≤ 3.4 MB."""
    return Budget(f"binary with TLS, Cluster and exactly-once counting ≤ {SIZE_BUDGET_MB:g} MB",
                  mb(size), size <= SIZE_BUDGET_MB * 1e6,
                  f"TLS (rustls, ring, Mozilla's roots), Cluster and exactly-once counting add "
                  f"{mb(size - SIZE_BEFORE)} to the {mb(SIZE_BEFORE)} of before TLS and Cluster")


def method(plan: Plan) -> list[str]:
    """How figures 1–6 are taken, for results.md."""
    return [
        "counter-worker counts exactly once, its default, in every figure but where "
        "`--counting at-most-once` is named.",
        "",
        "1. Time from just before spawning the worker (interval 2 s, as in the tutorial) until "
        "`GET key` returns a value, polled every 0.5 ms; one untimed warm-up run each first "
        "(page cache, the seed's `.pyc`), then runs rotating which worker goes first. "
        "Median, with min–max.",
        "2. `VmRSS` from `/proc/PID/status`, read halfway between tick 10 and tick 11; the "
        "share in brackets is `RssFile`, the resident pages of mapped files (for a static "
        "binary, its own code and data). counter-worker is also read counting at most "
        "once, on its own after the others.",
        "3. Time on a CPU over the window, which the three workers share (they run side by "
        "side, each on its own key, after 20 warm-up ticks each, and beside them, for the "
        "budgets, the same counter-worker binary with `--counting at-most-once` (a plain "
        f"INCR) and counter-worker at {BEFORE_TLS}, main just "
        "before TLS and Cluster were merged, built by that tree's own "
        "`scripts/build-static`), divided by the counts Redis made in that window: the "
        "scheduler's own count for each thread (`se.sum_exec_runtime` of "
        "`/proc/PID/task/TID/sched`, in nanoseconds; a thread that ended in the window "
        "stops the run), of which `utime + stime` in "
        "`/proc/PID/stat` are a rounding to whole clock ticks "
        f"({1000 / CLK_TCK:g} ms). The share spent in the kernel (stime of that same "
        "window, so only as fine as clock ticks) is shown because each wake-up from sleep "
        "costs kernel time of its own.",
        "4. Redis `MONITOR` timestamps each command with Redis's clock when it runs it; the "
        "harness keeps the worker's INCRs (redis-py sends them as `INCRBY key 1`; "
        "counter-worker's script runs `INCRBY key 1`, which MONITOR shows from client "
        "`lua`). Tick 0 is "
        "the first INCR; the figure is time(tick N) − time(tick 0) − N × interval. A `sleep` "
        "after each INCR adds the INCR's own latency to every period; a fixed grid does not.",
        "5. Each worker runs as PID 1 of a new PID namespace (`unshare -fp --mount-proc`), as "
        "in a container; after its first INCR the harness sends SIGTERM to it from outside and "
        f"waits for it to exit (pidfd), at most {STOP_CAP:g} s, like `docker stop`, then "
        "SIGKILLs it. PID 1 ignores signals it has no handler for.",
        "6. Sizes in MB (10⁶ bytes). counter-worker is the binary `scripts/build-static` "
        "prints, the one the cargo-built image carries; the floor is built here with "
        "`gcc -Os -s -static` against Debian's `libhiredis.a`. Both are checked with "
        "`readelf` (no interpreter, no `NEEDED`, no `.symtab`). redis-py is the installed "
        "package directory plus its dist-info in the venv. The image is built by "
        "`scripts/build-image` from that same binary (an empty image with only "
        "`/bin/counter-worker`); `docker image inspect` reports its uncompressed size on "
        "disk, comparable with the published on-disk size below. The floor has no image.",
    ]


def footnote() -> list[str]:
    """The source of the one figure not measured here."""
    return [
        f"[1] python:3.11-slim (linux/amd64, Python 3.11.15, Debian trixie, image "
        f"sha256:245f9d32fa…): virtual size ~{SLIM_ON_DISK_MB} MB on disk, published by the "
        f"Docker Official Images at {SLIM_ON_DISK_SOURCE}; compressed transfer size "
        f"{SLIM_COMPRESSED_MB} MB per {SLIM_COMPRESSED_SOURCE}. Published, not measured: the "
        "image cannot be pulled on this machine.",
        "",
    ]
