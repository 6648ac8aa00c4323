"""The in-repo HTTP/1.1 client: correctness checks, counted runs, and load when wrk is missing.

Requests are minimal ``GET``s on keep-alive connections; responses are read by their
``Content-Length`` (every server here sets it for these small bodies).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Final

__all__ = ["HEADER", "Connection", "check", "load"]

HEADER: Final = "x-request-id"
_HOSTILE: Final = ("bad id", "x" * 129, "-leading-dash", "quote'd")


def _request(path: str, request_id: str | None) -> bytes:
    extra = "" if request_id is None else f"X-Request-ID: {request_id}\r\n"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode("latin-1")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return status, headers


class Connection:
    """One blocking keep-alive connection to ``127.0.0.1:port``."""

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def _read_until(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer += chunk

    def get(
        self, path: str = "/", request_id: str | None = None
    ) -> tuple[int, dict[str, str], str]:
        """Send ``GET path`` (with ``X-Request-ID`` when given); the status, headers, body."""
        self._sock.sendall(_request(path, request_id))
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer += chunk
        status, headers = _parse_head(self._buffer[:end])
        size = end + 4 + int(headers.get("content-length", "0"))
        self._read_until(size)
        body, self._buffer = self._buffer[end + 4 : size], self._buffer[size:]
        return status, headers, body.decode("latin-1")

    def run(self, n: int, request_id: str | None = None) -> None:
        """Send ``n`` requests, one after another, each answered 200."""
        for _ in range(n):
            status, _, _ = self.get("/", request_id)
            if status != 200:
                raise RuntimeError(f"status {status}")


def check(port: int, variant: str) -> list[str]:
    """Problems with the ids the server at ``port`` gives (an empty list when it is right)."""
    problems: list[str] = []
    conn = Connection(port, timeout=30.0)
    try:
        seen: set[str] = set()
        for sent in [None, None, str(uuid.uuid4()), uuid.uuid4().hex, *_HOSTILE]:
            status, headers, body = conn.get("/", sent)
            echoed = headers.get(HEADER)
            if sent in _HOSTILE and status == 400 and echoed != sent and sent not in body:
                continue  # refused, not echoed: starlette-context's way
            if status != 200:
                problems.append(f"status {status} for id {sent!r}")
            elif variant == "bare":
                if body != "-":
                    problems.append(f"bare answered {body!r}")
            elif echoed != body or not body:
                problems.append(f"header {echoed!r} but the handler saw {body!r} (sent {sent!r})")
            elif sent in _HOSTILE and body == sent:
                problems.append(f"hostile id {sent!r} used")
            elif sent is not None and sent not in _HOSTILE and body != sent:
                problems.append(f"sent {sent!r}, handler saw {body!r}")
            elif sent is None and body in seen:
                problems.append(f"id {body!r} given twice on one keep-alive connection")
            seen.add(body)
    finally:
        conn.close()
    return problems


async def _worker(port: int, deadline: float, request_id: str | None, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request("/", request_id)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            _, headers = _parse_head(head[:-4])
            await reader.readexactly(int(headers.get("content-length", "0")))
            done += 1
    finally:
        counts.append(done)
        writer.close()


def load(port: int, seconds: float, connections: int, request_id: str | None = None) -> float:
    """Requests per second over ``connections`` keep-alive connections for ``seconds``
    (the fallback when ``wrk`` is missing: this client, not the server, is often the limit)."""

    async def main() -> float:
        counts: list[int] = []
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(
            *(_worker(port, deadline, request_id, counts) for _ in range(connections))
        )
        return sum(counts) / (time.perf_counter() - start)

    return asyncio.run(main())
