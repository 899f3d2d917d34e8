"""The benchmark's report: how figures are written, the table, the goals counter-worker is
held to against the floor, and results.md around them (method, machine, versions and the
exact commands of the run)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import COMMANDS, output
from workers import PYTHON, installed_redis_py

BUSY = 0.10  # share of the machine's CPU used by others above which results.md says so


@dataclass(frozen=True)
class Goal:
    """A bound on counter-worker ÷ floor that one figure is held to, and why it is missed
    when it is (shown only then)."""

    name: str
    limit: float
    value: float | None
    why: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


@dataclass(frozen=True)
class Budget:
    """An absolute bound that a feature (TLS and Cluster, counting exactly once) must stay
    within, what was measured against it, and a one-line reason either way."""

    name: str
    measured: str
    met: bool | None  # None: the reading is too coarse to tell
    why: str


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, one cell per worker, and both ratios."""
    number: str
    figure: str
    seed: str
    counter: str
    floor: str
    vs_seed: str  # seed ÷ counter-worker
    vs_floor: str  # counter-worker ÷ floor
    goal: Goal | None = None
    budgets: tuple[Budget, ...] = ()


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.1f} s"


def signed_ms(s: float) -> str:
    return f"{s * 1000:+.2f} ms"


def us(s: float) -> str:
    return f"{s * 1e6:.0f} µs"


def seconds(s: float) -> str:
    return f"{s:.2f} s"


def duration(s: float) -> str:
    """Milliseconds below a second, seconds above: a recovery of 3 ms and one of 2 s both
    read at a glance."""
    return f"{s * 1000:.0f} ms" if s < 1 else seconds(s)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def mb(size: int | float) -> str:
    return f"{size / 1e6:.2f} MB"


def ratio(a: float | None, b: float | None, bound: str = "") -> str:
    """a ÷ b, or `—` when either is missing or b is not positive. `bound` ("≥" or "≤")
    marks a ratio that is only a bound, because one side was capped or read as zero."""
    if a is None or b is None or b <= 0:
        return "—"
    value = a / b
    if value >= 10 or value == 0:
        shown = f"{value:.0f}×"
    else:
        shown = f"{value:.1f}×" if value >= 0.1 else f"{value:.2f}×"
    return f"{bound} {shown}" if bound else shown


def machine() -> dict[str, str]:
    """The machine the figures belong to."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "CPU": f"{model[1] if model else platform.machine()}, {os.cpu_count()} cores",
        "Memory": f"{int(mem[1]) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "Kernel": f"Linux {platform.release()}",
    }


def versions() -> dict[str, str]:
    """Versions of everything measured or measuring, so a later run can be compared."""
    python = str(PYTHON)
    found = {
        "rustc": output(["rustc", "-V"]),
        "cargo": output(["cargo", "-V"]),
        "Python (seed)": output([python, "-c", "import platform; print("
                                 "platform.python_implementation(), platform.python_version())"]),
        "redis-py": installed_redis_py() or "?",
        # Why the seed may survive an outage: redis-py retries on its own unless told not to.
        "redis-py default retry (read from the package)": output([python, "-c", (
            "import redis.client as c; "
            "print(f'{c.DEFAULT_RETRY_COUNT} retries, jittered backoff from "
            "{c.DEFAULT_RETRY_BASE} s doubling, capped at {c.DEFAULT_RETRY_CAP} s')")]),
        "gcc (floor)": output(["gcc", "--version"]).splitlines()[0],
        "libhiredis-dev (floor)": output(["dpkg-query", "-W", "-f", "${Version}",
                                          "libhiredis-dev"]),
        "redis-server": output(["redis-server", "--version"]),
        "unshare": output(["unshare", "--version"]),
        "harness Python": platform.python_version(),
    }
    if shutil.which("docker"):
        docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                capture_output=True, text=True)
        found["Docker server"] = docker.stdout.strip() if docker.returncode == 0 else "not running"
    return found


def table(rows: list[Row]) -> list[str]:
    """The figures as a Markdown table, as README's Performance section shows them."""
    lines = ["| # | Figure | seed (Python) | counter-worker | floor (C, hiredis) "
             "| seed ÷ counter-worker | counter-worker ÷ floor |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.number} | {r.figure} | {r.seed} | {r.counter} | {r.floor} | {r.vs_seed} "
              f"| {r.vs_floor} |" for r in rows]
    return lines


def goals(rows: list[Row]) -> list[str]:
    """The goals table: each goal, the ratio measured, and met or why not."""
    lines = ["| Goal | counter-worker ÷ floor | |", "|---|---|---|"]
    for row in rows:
        goal = row.goal
        if goal is None:
            continue
        if goal.met is None:
            verdict = "not measured: a reading was only a bound (a cap, or zero clock ticks)"
        else:
            verdict = "met" if goal.met else f"**not met**: {goal.why}"
        lines.append(f"| {goal.name} ≤ {goal.limit:g}× the floor ({row.number}) "
                     f"| {row.vs_floor} | {verdict} |")
    return lines


def budgets(rows: list[Row]) -> list[str]:
    """What TLS, Cluster and counting exactly once cost: each budget, what was measured,
    met or not and why."""
    lines = ["| Goal | measured | |", "|---|---|---|"]
    for row in rows:
        for budget in row.budgets:
            verdict = {True: "met", False: "**not met**", None: "not measured"}[budget.met]
            lines.append(f"| {budget.name} ({row.number}) | {budget.measured} "
                         f"| {verdict}: {budget.why} |")
    return lines


@dataclass(frozen=True)
class RunInfo:
    """When and under what load the run was taken, for results.md."""
    plan_name: str
    started: datetime.datetime
    took: float
    load_start: tuple[float, ...]
    load_end: tuple[float, ...]
    others: float  # share of the CPU that other people's processes used


def fmt_load(load: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def render(rows: list[Row], info: RunInfo, method: list[str], notes: list[str]) -> str:
    """results.md: the table, the goals, how each figure is taken (`method`, one item a
    figure), `notes` (footnotes and what crashed workers said), machine, versions and
    commands."""
    invocation = f"bench/run{' --smoke' if info.plan_name == 'smoke' else ''}"
    lines = [
        "# counter-worker vs the tutorial's Python worker and the floor",
        "",
        f"Produced by `{invocation}` on {info.started:%Y-%m-%d %H:%M} UTC in {info.took:.0f} s "
        f"({info.plan_name} run). Every number below was measured in that run, except the "
        "one marked published.",
        "",
        *table(rows),
        "",
        "seed ÷ counter-worker above 1 means counter-worker is that many times faster, "
        "smaller, closer to its schedule or quieter; counter-worker ÷ floor is how many "
        "times the floor's figure counter-worker needs (1× is the floor itself). `≥`/`≤` "
        "mark a ratio that a cap or the clock-tick resolution bounds; `—`, that no ratio "
        "can be formed (a worker crashed, or a figure is zero).",
        "",
        "## Goals against the floor",
        "",
        *goals(rows),
        "",
        "## The cost of TLS, Cluster and counting exactly once",
        "",
        *budgets(rows),
        "",
        "## How each figure is taken",
        "",
        *method,
        "",
        *notes,
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine().items()),
        f"- Other processes used {info.others:.0%} of the machine's CPU time while the "
        "figures were measured"
        + (" — **the machine was busy; figures may be noisier than usual**"
           if info.others > BUSY else ""),
        f"- Load average (1, 5, 15 min) before the run: {fmt_load(info.load_start)}; "
        f"after it, including its own processes: {fmt_load(info.load_end)}",
        "",
        "## Versions",
        "",
        *(f"- {k}: {v}" for k, v in versions().items()),
        "",
        "## Commands",
        "",
        "`N` is the run number where a figure is taken more than once; `PORT`, the port "
        "of the private Redis of that run.",
        "",
        "```sh",
        invocation,
    ]
    for section, commands in COMMANDS.sections.items():
        lines += ["", f"# {section}", *commands]
    lines += ["```", ""]
    return "\n".join(lines)
