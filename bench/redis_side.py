"""Redis as the benchmark sees it: private servers it can stop and restart, a client of
its own, Redis's own clock for when each INCR ran, and a count of connection attempts
made while no Redis listens.

The harness talks to Redis with a few lines of RESP rather than redis-py, so the library
under test is not also the measuring instrument.
"""

from __future__ import annotations

import ctypes
import random
import re
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from harness import WORK, BenchError, Procs


class Resp:
    """Just enough of the Redis protocol (RESP2) to send commands and read replies."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def call(self, *args: object):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self.reply()

    def reply(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"Redis replied with an error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise BenchError(f"unexpected reply from Redis: {line!r}")

    def close(self) -> None:
        self.sock.close()


class Monitor(threading.Thread):
    """Redis MONITOR: each command Redis ran, by Redis's own clock, with the client that
    sent it (`lua` for a command a script ran); and so the time at which it ran each INCR."""

    # The time, the client, the command's name and its first argument, if any.
    LINE = re.compile(rb'^\+(\d+\.\d+) \[\d+ ([^\]]*)\] "([^"]*)"(?: "([^"]*)")?')
    # redis-py's incr() sends INCRBY key 1; counter-worker and the floor send INCR key, and
    # counter-worker's script, counting exactly once, INCRBY key 1 from client `lua`.
    INCRS = ("incr", "incrby")

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = Resp(port)
        if self.conn.call("MONITOR") != "OK":
            raise BenchError("Redis refused MONITOR")
        self.conn.sock.settimeout(None)
        self.incrs: list[tuple[float, str]] = []
        # Client, command name (lower case) and first argument ("" if none), in order.
        self.commands: list[tuple[str, str, str]] = []

    def run(self) -> None:
        for line in self.conn.reader:
            match = self.LINE.match(line)
            if not match:
                continue
            name, first = match[3].decode().lower(), (match[4] or b"").decode()
            self.commands.append((match[2].decode(), name, first))
            if name in self.INCRS and match[4] is not None:
                self.incrs.append((float(match[1]), first))

    def ticks(self, key: str) -> list[float]:
        return [at for at, k in list(self.incrs) if k == key]

    def close(self) -> None:
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.join(5)
        self.conn.close()


def unused_port() -> int:
    """A free loopback port below the kernel's ephemeral range, so that while a server is
    down for an outage no outgoing connection of another program is given its port."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise BenchError("found no free loopback port in 20000–32000")


class RedisServer:
    """A private redis-server without persistence, so a restart comes back empty; or, given
    a directory of its own (`aof_dir`), with an append-only file, as a Sentinel lab's data
    nodes run.

    `call` goes through one harness connection that is reopened when Redis closed it
    (after a restart, or an idle timeout set with `extra_args`); it only sends commands
    that are safe to repeat. Starting and stopping come in two halves (`launch` and
    `answers`, `terminate` and `stopped`) so that several servers can go down and come
    back together, each timed on its own."""

    def __init__(self, procs: Procs, extra_args: tuple[str, ...] = (),
                 aof_dir: Path | None = None, section: str = "Redis") -> None:
        self.procs = procs
        self.section = section  # where results.md lists the command that starts it
        self.port = unused_port()
        self.tls_port: int | None = None  # a port serving TLS besides `port`, if any
        self.extra_args = extra_args
        self.aof = aof_dir is not None
        self.dir = aof_dir or WORK / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.conn: Resp | None = None
        self.deadline = 0.0  # for the start or stop under way

    def start(self) -> float:
        """Starts it; returns the moment it first answered PING."""
        self.launch()
        while not self.answers():
            time.sleep(0.001)
        return time.monotonic()

    def launch(self) -> None:
        """Starts it without waiting; `answers` tells when it is up."""
        self.proc = self.procs.start(f"redis-{self.port}", self.argv(), {}, section=self.section)
        self.deadline = time.monotonic() + 10

    def argv(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.aof else "no", "--dir", str(self.dir),
                *self.extra_args]

    def answers(self) -> bool:
        """Whether it answers PING now; an error if it died or never came up."""
        assert self.proc is not None
        try:
            if self.call("PING") == "PONG":
                return True
        except OSError:
            pass
        if self.proc.poll() is not None or time.monotonic() > self.deadline:
            raise BenchError(f"redis-server did not start; see {self.procs.log_of(self.proc)}")
        return False

    def terminate(self) -> None:
        """Asks it to stop (SIGTERM; nothing is saved); `stopped` tells when it has."""
        assert self.proc is not None
        self.disconnect()
        self.proc.terminate()
        self.deadline = time.monotonic() + 10

    def stopped(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is None:
            if time.monotonic() > self.deadline:
                raise BenchError("redis-server did not stop within 10 s")
            return False
        self.procs.stop(self.proc)
        return True

    def stop(self) -> float:
        """Stops it; returns the moment it had exited."""
        self.terminate()
        while not self.stopped():
            time.sleep(0.001)
        return time.monotonic()

    def call(self, *args: object):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = Resp(self.port)
                return self.conn.call(*args)
            except (ConnectionError, OSError):
                self.disconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def count(self, key: str) -> int:
        return int(self.call("GET", key) or 0)

    def disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Sentinel(RedisServer):
    """A Redis Sentinel watching one master, started from a configuration file of its own,
    which Sentinel rewrites as it learns the other sentinels and replicas."""

    def __init__(self, procs: Procs, conf: Path, config: list[str], section: str) -> None:
        super().__init__(procs, section=section)
        self.conf = conf
        conf.write_text("".join(f"{line}\n" for line in config))

    def argv(self) -> list[str]:
        return ["redis-server", str(self.conf), "--sentinel", "--port", str(self.port),
                "--bind", "127.0.0.1"]

    def master(self, name: str) -> dict[str, str]:
        """What this sentinel knows of master `name` (`SENTINEL MASTER`), field by field."""
        reply = self.call("SENTINEL", "MASTER", name)
        return dict(zip(reply[::2], reply[1::2]))


class SynCounter(threading.Thread):
    """Counts TCP connection attempts (SYN without ACK) to one loopback port, as the
    kernel delivers them, with a packet socket on `lo` and a BPF filter that passes only
    those. It sees attempts whether or not anything listens, and changes nothing for the
    program that makes them: no ptrace, no listener that would answer. Needs root."""

    ETH_P_ALL = 0x0003
    SO_ATTACH_FILTER = 26
    SOL_PACKET = 263
    PACKET_STATISTICS = 6
    PACKET_HOST = 0  # each loopback packet is seen twice: outgoing, then as received

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.count = 0
        self.stopping = False
        # Protocol 0 receives nothing until bind, so no packet slips past the filter.
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        program = [  # classic BPF, offsets into an Ethernet frame (lo has a zero header)
            (0x28, 0, 0, 12),        # ldh [12]           EtherType
            (0x15, 0, 11, 0x0800),   # jeq IPv4, else drop
            (0x30, 0, 0, 23),        # ldb [23]           IP protocol
            (0x15, 0, 9, 6),         # jeq TCP, else drop
            (0x28, 0, 0, 20),        # ldh [20]           fragment offset
            (0x45, 7, 0, 0x1FFF),    # jset: a fragment, drop
            (0xB1, 0, 0, 14),        # ldxb 4*([14]&0xf)  IP header length
            (0x48, 0, 0, 16),        # ldh [x+16]         TCP destination port
            (0x15, 0, 4, port),      # jeq port, else drop
            (0x50, 0, 0, 27),        # ldb [x+27]         TCP flags
            (0x54, 0, 0, 0x12),      # and SYN|ACK
            (0x15, 0, 1, 0x02),      # jeq SYN alone, else drop
            (0x06, 0, 0, 96),        # accept (96 bytes are plenty)
            (0x06, 0, 0, 0),         # drop
        ]
        self.filter = ctypes.create_string_buffer(
            b"".join(struct.pack("HBBI", *op) for op in program))
        self.sock.setsockopt(socket.SOL_SOCKET, self.SO_ATTACH_FILTER,
                             struct.pack("HL", len(program), ctypes.addressof(self.filter)))
        self.sock.bind(("lo", self.ETH_P_ALL))
        self.sock.settimeout(0.05)

    def run(self) -> None:
        while not self.stopping:
            try:
                _, address = self.sock.recvfrom(128)
            except socket.timeout:
                continue
            self.count += address[2] == self.PACKET_HOST

    def finish(self) -> int:
        """Stops counting; returns the attempts seen. A packet the kernel had to drop
        would make the count a lower bound, so that stops the run instead."""
        self.stopping = True
        self.join(5)
        # A SYN sent before now is already queued (loopback delivers it within connect()).
        self.sock.setblocking(False)
        while True:
            try:
                _, address = self.sock.recvfrom(128)
            except BlockingIOError:
                break
            self.count += address[2] == self.PACKET_HOST
        _, drops = struct.unpack("II", self.sock.getsockopt(
            self.SOL_PACKET, self.PACKET_STATISTICS, 8))
        self.sock.close()
        if drops:
            raise BenchError(f"the packet socket dropped {drops} packets to port {self.port}")
        return self.count
