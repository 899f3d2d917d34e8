"""The benchmark's harness: the processes it starts, the commands it records, and the
readings it takes from /proc.

Everything a figure needs that is not about Redis lives here: starting a worker with a
clean environment and its own log file, stopping every process at the end however the run
ends, recording each command for results.md, and reading CPU time, RSS and how busy the
rest of the machine was.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "bench"  # venv, logs, Redis files, the floor; target/ is not committed
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A measurement could not be taken; the run stops with this message."""


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def rel(text: str) -> str:
    """`text` with this checkout's path removed, so results.md reads the same anywhere."""
    return text.replace(f"{ROOT}/", "")


class Commands:
    """The exact commands of this run, by section, for results.md."""

    def __init__(self) -> None:
        self.sections: dict[str, list[str]] = {}

    def add(self, section: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        line = rel(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()),
                             shlex.join(map(str, argv))]))
        # Runs differ only by their key (bench:start-0, bench:start-1, …) and Redis port.
        line = re.sub(r"(bench:[a-z]+)-\S+", r"\1-N", line)
        line = re.sub(r"((?:--port |--tls-port |--cluster-port |127\.0\.0\.1:|127\.0\.0\.1 "
                      r"|REDIS_PORT=))\d+", r"\1PORT", line)
        lines = self.sections.setdefault(section, [])
        if line not in lines:
            lines.append(line)


COMMANDS = Commands()
SETUP = "setup (apt-get, venv, pip and builds; apt-get and pip only when not done yet)"


def run(argv: list[str], section: str = SETUP, env: dict[str, str] | None = None) -> str:
    """Runs a setup step, its stderr going to ours with the progress messages; returns
    its stdout."""
    COMMANDS.add(section, argv, env)
    result = subprocess.run(argv, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise BenchError(f"`{rel(shlex.join(map(str, argv)))}` failed with exit {result.returncode}")
    return result.stdout


def output(argv: list[str]) -> str:
    """A version string and the like; not recorded as a command of the benchmark."""
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"`{rel(shlex.join(map(str, argv)))}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


class Procs:
    """Every process the run starts, each logging to its own file, all stopped at the end."""

    def __init__(self) -> None:
        self.logs = WORK / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.running: list[subprocess.Popen] = []
        self.extra_pids: set[int] = set()  # workers inside PID namespaces
        self.log_paths: dict[int, Path] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], section: str) -> subprocess.Popen:
        COMMANDS.add(section, argv, env)
        log = self.logs / f"{len(self.log_paths):03d}-{name}.log"
        # A clean environment: nothing from this shell (PYTHONDONTWRITEBYTECODE, RUST_LOG,
        # REDIS_URL …) changes how a worker behaves.
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **env}
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env=clean, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.running.append(proc)
        self.log_paths[proc.pid] = log
        return proc

    def log_of(self, proc: subprocess.Popen) -> str:
        return rel(str(self.log_paths[proc.pid]))

    def last_line(self, proc: subprocess.Popen) -> str:
        lines = self.log_paths[proc.pid].read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in reversed(list(self.running)):
            self.stop(proc)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of a live process, in seconds (/proc/PID/stat fields 14 and 15).
    The kernel counts them in whole clock ticks (1 / CLK_TCK s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def runtime_by_thread(pid: int) -> dict[int, float]:
    """Each live thread's time on a CPU so far, in seconds, by thread id: the scheduler's
    own count (`se.sum_exec_runtime` of /proc/PID/task/TID/sched, nanoseconds shown as
    milliseconds), which utime and stime are rounded from."""
    runtime = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "sched").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "se.sum_exec_runtime":
                runtime[int(task.name)] = float(value) / 1000
    if not runtime:
        raise BenchError(f"/proc/{pid}/task/*/sched gives no se.sum_exec_runtime")
    return runtime


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident memory of a process and the part of it that is pages of mapped files
    (VmRSS and RssFile of /proc/PID/status), in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssFile"):
            found[name] = int(value.split()[0])
    if len(found) != 2:
        raise BenchError(f"no VmRSS or RssFile for PID {pid}")
    return found["VmRSS"], found["RssFile"]


def code_kib(pid: int) -> tuple[int, int]:
    """The resident part and the size (KiB) of a process's executable mappings of its own
    program file (/proc/PID/smaps): how much of the code it maps the kernel keeps resident."""
    exe = os.readlink(f"/proc/{pid}/exe")
    resident = size = 0
    mine = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].endswith(":"):  # a mapping's header line
            mine = len(fields) >= 6 and "x" in fields[1] and fields[5] == exe
        elif mine and fields[0] in ("Size:", "Rss:"):
            if fields[0] == "Size:":
                size += int(fields[1])
            else:
                resident += int(fields[1])
    if not size:
        raise BenchError(f"no executable mapping of {exe} in PID {pid}")
    return resident, size


def child_of(pid: int) -> int:
    """The one child process of `pid` (what unshare forked), by scanning /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                return int(entry.name)
    raise BenchError(f"unshare (PID {pid}) has no child")


class OthersCpu:
    """How much of the machine other people's processes used while this run measured:
    all busy CPU time (/proc/stat) minus that of this harness and every process it started
    and waited for. Load averages cannot tell the two apart."""

    def __init__(self) -> None:
        self.start = self.sample()

    @staticmethod
    def sample() -> tuple[float, float, float]:
        jiffies = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, idle, iowait, irq, softirq = jiffies[:7]
        own = os.times()
        return ((user + nice + system + irq + softirq) / CLK_TCK, sum(jiffies) / CLK_TCK,
                own.user + own.system + own.children_user + own.children_system)

    def share(self) -> float:
        busy, total, own = (b - a for a, b in zip(self.start, self.sample()))
        return max(0.0, busy - own) / total if total else 0.0
