"""The three workers the benchmark compares, and how each is installed, built and started.

- the seed: the tutorial's Python worker (`bench/seed_worker.py`) on CPython 3.11 with
  redis-py, the program counter-worker replaces;
- counter-worker: the static binary that the image carries, from `scripts/build-static`;
- the floor: `bench/floor_worker.c`, the same loop in C with hiredis, built statically
  with `-Os`: what the job costs at the least, so each figure shows how far from it
  counter-worker is.

Beside them, for the budgets on what features cost: counter-worker as main was just before
TLS and Cluster were merged, built from git by that tree's own `scripts/build-static` (CPU
per tick, figure 3); and the very binary measured, counting at most once (a plain `INCR`,
`--counting at-most-once`) instead of exactly once, its default (figures 3, 3b and 3c).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from harness import COMMANDS, ROOT, SETUP, WORK, BenchError, output, rel, run, say

VENV = WORK / "venv"
PYTHON = VENV / "bin" / "python"
SEED_SCRIPT = ROOT / "bench" / "seed_worker.py"
FLOOR_SOURCE = ROOT / "bench" / "floor_worker.c"
FLOOR_BIN = WORK / "floor_worker"
HEALTH_DIR = WORK / "health"
REDIS_PY = "8.1.0"  # pinned so that runs compare; the newest release when this was written
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
BEFORE_TLS = "9736d20"  # main just before TLS and Cluster were merged (ece64e2)
BEFORE_TLS_TREE = WORK / f"before-tls-{BEFORE_TLS}"


@dataclass(frozen=True)
class Worker:
    """One of the compared programs, and how to start it against a given Redis."""

    name: str  # for the table
    short: str  # for log file names
    kind: str  # "seed", "counter" or "floor"
    binary: Path  # what is started: the interpreter for the seed
    tls_ca: Path | None = None  # counter-worker only: speak TLS, trusting this CA's PEM
    at_most_once: bool = False  # counter-worker only: a plain INCR, not the exactly-once script

    def key(self, label: str) -> str:
        # The seed always counts "contador" (its key is not a setting), so the harness
        # deletes it before each seed run; the others get a fresh key every run.
        return "contador" if self.kind == "seed" else f"bench:{label}"

    def command(self, port: int, key: str, interval_ms: int) -> tuple[list[str], dict[str, str]]:
        if self.kind == "seed":
            # Unbuffered, so it prints each count as it happens, like the others.
            env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port),
                   "INTERVAL": f"{interval_ms / 1000:g}", "PYTHONUNBUFFERED": "1"}
            return [str(self.binary), str(SEED_SCRIPT)], env
        if self.kind == "floor":
            return [str(self.binary), "127.0.0.1", str(port), key, str(interval_ms)], {}
        # Each run gets a health state file of its own, so that runs and other workers on
        # this machine never share one; binaries without a health file ignore the variable.
        env = {"HEALTH_FILE": str(HEALTH_DIR / key)}
        scheme = "redis"
        if self.tls_ca is not None:
            scheme, env["REDIS_TLS_CA_FILE"] = "rediss", str(self.tls_ca)
        counting = ["--counting", "at-most-once"] if self.at_most_once else []
        return [str(self.binary), "--redis-url", f"{scheme}://127.0.0.1:{port}", "--key", key,
                "--interval", f"{interval_ms}ms", *counting], env

    def over_tls(self, ca: Path) -> Worker:
        """The same counter-worker speaking `rediss://` to a Redis whose certificate `ca`
        signed: what TLS adds is measured on the very binary of the other figures."""
        if self.kind != "counter":
            raise BenchError(f"{self.name} has no TLS")
        return replace(self, name=f"{self.name} over TLS", short=f"{self.short}-tls", tls_ca=ca)

    def counting_at_most_once(self) -> Worker:
        """The same counter-worker counting with a plain `INCR` (`--counting at-most-once`):
        what counting exactly once costs is measured on the very binary of the other
        figures."""
        if self.kind != "counter":
            raise BenchError(f"{self.name} has no counting mode")
        return replace(self, name=f"{self.name}, counting at most once",
                       short=f"{self.short}-at-most-once", at_most_once=True)


@dataclass(frozen=True)
class Workers:
    """The three compared workers, in the order of the table's columns, and counter-worker
    from before TLS and Cluster (None without the git history to build it from)."""
    seed: Worker
    counter: Worker
    floor: Worker
    before_tls: Worker | None

    def all(self) -> tuple[Worker, Worker, Worker]:
        return self.seed, self.counter, self.floor

    def cells(self, show: Callable[[Worker], str]) -> tuple[str, str, str]:
        """One table cell per worker, in the table's column order."""
        return show(self.seed), show(self.counter), show(self.floor)


def apt_install(package: str, present: bool) -> None:
    """Installs a Debian package unless `present`; the steps are listed either way, for a
    new machine."""
    update, install = ["apt-get", "update"], ["apt-get", "install", "-y", package]
    if present:
        COMMANDS.add(SETUP, update, APT_ENV)
        COMMANDS.add(SETUP, install, APT_ENV)
    else:
        say(f"installing {package}")
        run(update, env=APT_ENV)
        run(install, env=APT_ENV)


def static_hiredis() -> Path | None:
    """Where gcc finds libhiredis.a, or None: the floor must link hiredis statically."""
    found = Path(output(["gcc", "-print-file-name=libhiredis.a"]))
    return found if found.is_absolute() and found.exists() else None


def install_and_build() -> Workers:
    """Installs what is missing and builds counter-worker and the floor; returns the three
    workers."""
    if os.geteuid() != 0:
        raise BenchError("run as root: SIGTERM is measured in a new PID namespace, and "
                         "connection attempts with a packet socket")
    apt_install("redis-server", shutil.which("redis-server") is not None)
    for tool in ("unshare", "readelf", "gcc", "openssl", "redis-cli"):
        if not shutil.which(tool):
            raise BenchError(f"`{tool}` is missing (Debian: util-linux, binutils, gcc, "
                             "openssl, redis-tools)")
    apt_install("libhiredis-dev", static_hiredis() is not None)
    if static_hiredis() is None:
        raise BenchError("libhiredis-dev is installed but has no static libhiredis.a")

    make_venv = [sys.executable, "-m", "venv", str(VENV)]
    if PYTHON.exists():
        COMMANDS.add(SETUP, make_venv)
    else:
        say("creating the seed's venv")
        run(make_venv)
    version = output([str(PYTHON), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if version != "3.11":
        raise BenchError(f"the seed must run on CPython 3.11, but {rel(str(PYTHON))} is {version}; "
                         f"run bench/run with a python3.11 (and remove {rel(str(VENV))})")
    pip_install = [str(PYTHON), "-m", "pip", "install", "--quiet", f"redis=={REDIS_PY}"]
    if installed_redis_py() == REDIS_PY:
        COMMANDS.add(SETUP, pip_install)
    else:
        run(pip_install)

    HEALTH_DIR.mkdir(parents=True, exist_ok=True)
    say("building counter-worker's static binary and the floor")
    counter_bin = build_static(Path("scripts/build-static"))
    # -s strips it, as counter-worker's release profile does; static hiredis calls
    # getaddrinfo, whose link-time warning does not apply to numeric addresses.
    run(["gcc", "-Os", "-s", "-static", "-o", str(FLOOR_BIN), str(FLOOR_SOURCE),
         "-l:libhiredis.a"])
    return Workers(seed=Worker("seed (Python)", "seed", "seed", PYTHON),
                   counter=Worker("counter-worker", "counter-worker", "counter", counter_bin),
                   floor=Worker("floor (C, hiredis)", "floor", "floor", FLOOR_BIN),
                   before_tls=build_before_tls())


def build_before_tls() -> Worker | None:
    """counter-worker at BEFORE_TLS, extracted with `git archive` and built by its own
    scripts/build-static; None when this tree has no git history to take it from."""
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        say(f"no git history: counter-worker at {BEFORE_TLS} is not built, and the CPU "
            "budget against it is not measured")
        return None
    if not (BEFORE_TLS_TREE / "Cargo.toml").exists():
        say(f"extracting counter-worker at {BEFORE_TLS}")
        BEFORE_TLS_TREE.mkdir(parents=True, exist_ok=True)
        archive = WORK / f"before-tls-{BEFORE_TLS}.tar"
        run(["git", "archive", f"--output={archive}", BEFORE_TLS])
        run(["tar", "-xf", str(archive), "-C", str(BEFORE_TLS_TREE)])
    say(f"building counter-worker at {BEFORE_TLS}")
    binary = build_static(BEFORE_TLS_TREE / "scripts" / "build-static",
                          "--target-dir", str(WORK / "before-tls-target"))
    return Worker(f"counter-worker at {BEFORE_TLS}", "counter-worker-before-tls", "counter",
                  binary)


def build_static(script: Path, *args: str) -> Path:
    """Runs a tree's `scripts/build-static`; the binary it names on its last line."""
    built = run([str(script), *args]).strip().splitlines()
    binary = Path(built[-1]) if built else Path()
    if not binary.is_file():
        raise BenchError(f"{rel(str(script))} did not name a binary (it printed {built[-1:]})")
    return binary


def installed_redis_py() -> str | None:
    """The redis-py version in the seed's venv, or None when there is none."""
    try:
        return output([str(PYTHON), "-c", "import redis; print(redis.__version__)"])
    except BenchError:
        return None
