"""Figure 11: what TLS costs counter-worker, and whether a connection that Redis drops
costs a tick over TLS any more than over TCP.

TLS is measured on the very binary of the other figures, speaking `rediss://` to a real
redis-server with `--tls-port` and certificates that `openssl` makes for the run; the
harness watches through the same server's plain port, so its view never depends on the
TLS under test. The seed has no TLS setting and the floor's hiredis (0.14) no TLS, so over
TLS only counter-worker runs, and its ratio to the floor is against the floor over TCP in
this run: what a TLS worker costs against the least the job costs at all.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from faults import Station, close_stations, open_stations
from figures import RSS_INTERVAL_MS, Bench, cpu_readings, idle_rss
from harness import WORK, BenchError, Procs, run
from redis_side import RedisServer, unused_port
from report import Budget, Row, duration, ratio, signed_ms
from workers import Worker

SECTION = "11. over TLS"
DROP_SECTION = "11c–d. connection dropped by Redis"
DROP_INTERVAL_MS = 500
NO_TLS = {"seed": "— (no TLS setting)", "floor": "— (no TLS: hiredis 0.14)"}


class Certificates:
    """A private CA and a server certificate for 127.0.0.1 signed by it (P-256), made with
    `openssl` in a directory of the run's own."""

    def __init__(self) -> None:
        self.dir = WORK / "tls"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.pem"
        self.cert = self.dir / "server.pem"
        self.key = self.dir / "server.key"
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self.openssl(["req", "-x509", "-new", *new_key, "-keyout", self.dir / "ca.key",
                      "-out", self.ca, "-subj", "/CN=counter-worker bench CA", "-days", "2"])
        self.openssl(["req", "-new", *new_key, "-keyout", self.key,
                      "-out", self.dir / "server.csr", "-subj", "/CN=127.0.0.1"])
        extensions = self.dir / "server.ext"
        extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self.openssl(["x509", "-req", "-in", self.dir / "server.csr", "-CA", self.ca,
                      "-CAkey", self.dir / "ca.key", "-CAcreateserial", "-out", self.cert,
                      "-days", "2", "-extfile", extensions])

    @staticmethod
    def openssl(args: list[object]) -> None:
        run(["openssl", *map(str, args)], section=SECTION)


class TlsRedis(RedisServer):
    """A private redis-server that serves TLS on `tls_port` with the run's certificate,
    and plain TCP on `port` for the harness."""

    def __init__(self, procs: Procs, certs: Certificates, section: str) -> None:
        super().__init__(procs, section=section)
        self.tls_port = unused_port()
        self.certs = certs

    def argv(self) -> list[str]:
        return [*super().argv(), "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.certs.cert), "--tls-key-file", str(self.certs.key),
                "--tls-ca-cert-file", str(self.certs.ca), "--tls-auth-clients", "no"]


def vs_plain(bench: Bench, figure: str, worker: Worker, over_tls: float) -> tuple[str, str]:
    """over TLS ÷ redis:// (the same binary, an earlier figure of this run), and over TLS ÷
    the floor over TCP."""
    taken = bench.taken.get(figure)
    if taken is None:
        raise BenchError(f"the TLS figures need figure {figure!r} of this run first")
    w = bench.workers
    return ratio(over_tls, taken[w.counter]), ratio(over_tls, taken[w.floor])


def tls_row(number: str, figure: str, counter: str, vs_floor: str,
            budgets: tuple[Budget, ...] = ()) -> Row:
    return Row(number, figure, NO_TLS["seed"], counter, NO_TLS["floor"], "—", vs_floor,
               budgets=budgets)


def tls_rss(bench: Bench, redis: TlsRedis, worker: Worker) -> Row:
    """Figure 11a: idle RSS of counter-worker over TLS, what TLS adds to each replica."""
    reading = idle_rss(bench, worker, SECTION, redis=redis)
    vs_tcp, vs_floor = vs_plain(bench, "rss", worker, reading.kib)
    return tls_row("11a", f"Idle RSS over TLS after 10 ticks (VmRSS, `rediss://`, "
                          f"`REDIS_TLS_CA_FILE`, {RSS_INTERVAL_MS} ms interval)",
                   f"{reading.shown()}; {vs_tcp} `redis://` (2)", vs_floor)


def tls_cpu(bench: Bench, redis: TlsRedis, worker: Worker) -> Row:
    """Figure 11b: CPU time per tick over TLS: each INCR is encrypted, its reply decrypted."""
    reading = cpu_readings(bench, [worker], SECTION, redis=redis)[worker]
    vs_tcp, vs_floor = vs_plain(bench, "cpu", worker, reading.per_tick)
    return tls_row("11b", f"CPU time per tick over TLS (time on a CPU over "
                          f"{bench.plan.cpu_window_s:g} s at {bench.plan.cpu_interval_ms} ms)",
                   f"{reading.shown()}; {vs_tcp} `redis://` (3)", vs_floor)


@dataclass(frozen=True)
class Drop:
    """One dropped connection: seconds from the drop to the next INCR, how many ticks of
    the worker's grid passed without one, and how late the next one was against its slot."""

    after_drop: float
    missed: int
    late: float


def drop_once(bench: Bench, station: Station) -> Drop:
    """Waits for an INCR, has Redis close the worker's connection half an interval later
    (`CLIENT KILL`, every client but the harness's own), and times the next INCR."""
    redis, key, interval = station.redis, station.key, DROP_INTERVAL_MS / 1000

    def next_incr(after: int) -> tuple[float, int]:
        bench.wait_count(station.proc, key, after + 1, 3 * interval + 5, redis=redis)
        return time.monotonic(), redis.count(key)

    ticked, count = next_incr(redis.count(key))
    time.sleep(max(0.0, ticked + interval / 2 - time.monotonic()))
    dropped_at = time.monotonic()
    killed = redis.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    if not killed:
        raise BenchError(f"{station.worker.name} had no connection to Redis to drop")
    seen, _ = next_incr(count)
    slots = round((seen - ticked) / interval)
    return Drop(seen - dropped_at, slots - 1, seen - ticked - slots * interval)


def drop_cell(drops: list[Drop]) -> str:
    after = statistics.median(d.after_drop for d in drops)
    missed = sum(d.missed for d in drops)
    late = statistics.median(d.late for d in drops)
    return (f"{duration(after)} after the drop ({signed_ms(late)} against its tick); "
            f"{missed} of {len(drops)} ticks missed")


def drop_value(drops: list[Drop]) -> float | None:
    """How late the next INCR was against its tick (median, absolute), or None when a
    tick was missed: a ratio of lateness then means nothing."""
    if any(d.missed for d in drops):
        return None
    return abs(statistics.median(d.late for d in drops))


def dropped(bench: Bench, redis: TlsRedis, worker: Worker) -> list[Row]:
    """Figures 11c and 11d: Redis closes the worker's connection between two ticks → the
    next INCR, over TCP (the three workers) and over TLS (counter-worker)."""
    repeats = bench.plan.repeats
    group = open_stations(bench, "drop", DROP_INTERVAL_MS, DROP_SECTION)
    try:
        tcp = {s.worker: [drop_once(bench, s) for _ in range(repeats)] for s in group}
    finally:
        close_stations(bench, group)
    proc, key = bench.launch(worker, "drop-tls", DROP_INTERVAL_MS, DROP_SECTION, redis=redis)
    try:
        tls = [drop_once(bench, Station(worker, redis, proc, key)) for _ in range(repeats)]
    finally:
        bench.procs.stop(proc)
    w = bench.workers
    value = {wk: drop_value(d) for wk, d in tcp.items()}
    many = f"median of {repeats}" if repeats > 1 else "1 run"
    what = (f"Connection closed by Redis (`CLIENT KILL`) half-way between ticks → next INCR "
            f"({many}, {DROP_INTERVAL_MS} ms interval)")
    missed_tls = sum(d.missed for d in tls)
    missed_tcp = sum(d.missed for d in tcp[w.counter])
    budget = Budget(
        "over TLS: a connection Redis dropped costs no tick, as over TCP",
        f"{missed_tls} of {len(tls)} ticks missed (TCP: {missed_tcp} of {len(tcp[w.counter])})",
        missed_tls == 0,
        "the closed connection is replaced before the tick's INCR, over TLS as over TCP"
        if missed_tls == 0 else "after the drop, the next INCR came a tick or more late")
    return [
        Row("11c", f"{what}, over TCP", *w.cells(lambda wk: drop_cell(tcp[wk])),
            ratio(value[w.seed], value[w.counter]), ratio(value[w.counter], value[w.floor])),
        tls_row("11d", f"{what}, over TLS", drop_cell(tls),
                ratio(drop_value(tls), value[w.floor]), (budget,)),
    ]


def over_tls(bench: Bench) -> list[Row]:
    """Figure 11: idle RSS, CPU per tick and a dropped connection over TLS."""
    certs = Certificates()
    redis = TlsRedis(bench.procs, certs, SECTION)
    redis.start()
    try:
        worker = bench.workers.counter.over_tls(certs.ca)
        return [tls_rss(bench, redis, worker), tls_cpu(bench, redis, worker),
                *dropped(bench, redis, worker)]
    finally:
        redis.stop()


def method(repeats: int) -> list[str]:
    """How figure 11 is taken, for results.md."""
    return [
        "11. Over TLS: the same counter-worker binary with `--redis-url rediss://127.0.0.1:PORT` "
        "and `REDIS_TLS_CA_FILE` naming a private CA that `openssl` makes for the run (P-256; "
        "the server's certificate is for IP 127.0.0.1, so the name is verified too), against "
        "a redis-server with `--tls-port` that also serves plain TCP on another port, through "
        "which the harness reads. The seed has no TLS setting and the floor's hiredis 0.14 "
        "no TLS, so over TLS counter-worker ÷ floor is against the floor over TCP in this "
        "run; `× redis://` in the cell is against the same binary over TCP in figure 2 or 3. "
        "11a and 11b are taken as 2 and 3.",
        f"11c–d. Each worker counts every {DROP_INTERVAL_MS} ms (11c: the three, each against "
        "a Redis of its own; 11d: counter-worker over TLS). Once the harness sees an INCR "
        "(polling `GET` every 0.5 ms), it waits half an interval and has Redis close every "
        "connection but its own (`CLIENT KILL TYPE normal SKIPME yes`, which must close at "
        "least one), then times the next INCR: from the drop, and against the tick it should "
        "have landed on (the seen INCR plus whole intervals; ticks missed, the whole "
        f"intervals beyond the first). {repeats} drop{'s' if repeats > 1 else ''} per worker"
        f"{', median' if repeats > 1 else ''}. The ratios are of the lateness against the "
        "tick; none when a tick was missed.",
    ]

