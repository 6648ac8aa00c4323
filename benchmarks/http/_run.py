"""Server processes, counted (valgrind) runs, wrk rounds and memory: the measuring side."""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from typing import Final

import attrs

from ._client import Connection, check, load

__all__ = ["Server", "instructions", "memory_growth", "throughput_rounds"]

WRK: Final = shutil.which("wrk")
VALGRIND: Final = shutil.which("valgrind")
#: The id a client sends in the "sent" mode (a UUID4, which every variant accepts).
SENT_ID: Final = str(uuid.UUID(int=0x3F6C9A2E_0B4D_4E1F_9A2B_1C3D4E5F6071))


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@attrs.define
class Server:
    """A server process serving ``variant`` on ``stack`` from a socket bound here."""

    stack: str
    variant: str
    process: subprocess.Popen[str]
    sock: socket.socket

    @classmethod
    def start(cls, stack: str, variant: str, *, valgrind: bool = False, out: str = "") -> Server:
        """Start it (under callgrind when ``valgrind``, its counts dumped to ``out``.N);
        clients may connect at once."""
        sock = _listening()
        fd = sock.fileno()
        command = [sys.executable, "-m", "benchmarks.http._server", stack, variant, str(fd)]
        if valgrind:
            if VALGRIND is None:
                raise RuntimeError("valgrind is not installed: run with --no-valgrind")
            command = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out}", *command]
        process = subprocess.Popen(
            command,
            pass_fds=(fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        return cls(stack, variant, process, sock)

    @property
    def port(self) -> int:
        """The port it listens on."""
        port: int = self.sock.getsockname()[1]
        return port

    def stop(self) -> str:
        """Send ``GET /stop``, wait for the process to exit; its stderr."""
        try:
            conn = Connection(self.port)
            try:
                conn.get("/stop")
            finally:
                conn.close()
        finally:
            self.sock.close()
        _, err = self.process.communicate(timeout=600)
        if self.process.returncode != 0:
            raise RuntimeError(
                f"{self.stack} {self.variant} exited {self.process.returncode}:\n{err}"
            )
        return err

    def kill(self) -> None:
        """Stop it the hard way (after an error)."""
        self.sock.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()

    def rss_kib(self) -> int:
        """Its resident set size, KiB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def _dump(pid: int, conn: Connection) -> None:
    """Have callgrind write its counts so far to a new file and zero them.

    ``vgdb --max-invoke-ms=0`` leaves the command for the server to pick up when it next runs
    (the ptrace wake-up ``callgrind_control`` uses on an idle server has been seen to kill
    uvloop servers), and a request on ``conn`` makes it run: one request (rarely two) per
    dump, split between the phases, a few hundred instructions per counted request."""
    control = subprocess.Popen(
        ["vgdb", f"--pid={pid}", "--max-invoke-ms=0", "dump"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            control.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            conn.get("/")
    if control.returncode != 0:
        raise RuntimeError(f"vgdb --pid={pid} dump failed")


def _totals(path: str) -> int:
    with open(path) as file:
        for line in file:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def instructions(stack: str, variant: str, n: int, warmup: int) -> dict[str, float]:
    """The server's instructions per request, id generated and id sent: one process under
    callgrind serves ``warmup`` requests (half of each kind), then ``n`` of each on one
    keep-alive connection, counts dumped in between."""
    with tempfile.TemporaryDirectory(prefix="aiocontext-http-") as out:
        server = Server.start(stack, variant, valgrind=True, out=f"{out}/callgrind.out")
        try:
            conn = Connection(server.port)
            try:
                conn.run(warmup // 2)
                conn.run(warmup - warmup // 2, SENT_ID)
                _dump(server.process.pid, conn)
                conn.run(n)
                _dump(server.process.pid, conn)
                conn.run(n, SENT_ID)
                _dump(server.process.pid, conn)
            finally:
                conn.close()
            server.stop()
        except BaseException:
            server.kill()
            raise
        generated, sent = (_totals(f"{out}/callgrind.out.{i}") for i in (2, 3))
    return {"generated": generated / n, "sent": sent / n}


def checked(stack: str, variant: str) -> Server:
    """Start a server and check its ids; raise if they are wrong."""
    server = Server.start(stack, variant)
    problems = check(server.port, variant)
    if problems:
        server.kill()
        raise RuntimeError(f"{stack} {variant} gives wrong ids: " + "; ".join(problems))
    return server


def _wrk(port: int, seconds: float, connections: int, request_id: str | None) -> float:
    assert WRK is not None
    command = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    if request_id is not None:
        command += ["-H", f"X-Request-ID: {request_id}"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec from wrk:\n{out}")
    return float(match.group(1))


def throughput_rounds(
    servers: Sequence[Server],
    rounds: int,
    seconds: float,
    connections: int,
    request_id: str | None,
    use_wrk: bool,
) -> dict[str, list[float]]:
    """Req/s of each server per round, round-robin, the order rotating every round."""
    samples: dict[str, list[float]] = {server.variant: [] for server in servers}
    for index in range(rounds):
        shift = index % len(servers)
        for server in [*servers[shift:], *servers[:shift]]:
            if use_wrk:
                rate = _wrk(server.port, seconds, connections, request_id)
            else:
                rate = load(server.port, seconds, connections, request_id)
            samples[server.variant].append(rate)
    return samples


def ratios(samples: dict[str, list[float]], baseline: str) -> dict[str, tuple[float, float, float]]:
    """Per variant: median, p25, p75 of its per-round ratio to ``baseline``."""
    out: dict[str, tuple[float, float, float]] = {}
    for variant, values in samples.items():
        per_round = sorted(v / b for v, b in zip(values, samples[baseline], strict=True))
        if len(per_round) >= 2:
            p25, _, p75 = statistics.quantiles(per_round, n=4, method="inclusive")
        else:
            p25 = p75 = per_round[0]
        out[variant] = (statistics.median(per_round), p25, p75)
    return out


def memory_growth(server: Server, requests: int) -> tuple[int, int]:
    """RSS (KiB) after a warm-up of ``requests``, and its growth over ``requests`` more."""
    conn = Connection(server.port)
    try:
        conn.run(requests)
        before = server.rss_kib()
        conn.run(requests)
    finally:
        conn.close()
    return before, server.rss_kib() - before
