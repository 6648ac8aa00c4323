"""Real services for the propagation tests: a Redis server, and processes started and stopped.

``redis_url`` is ``$AIOCONTEXT_REDIS_URL`` (``redis://host:port``, no database) when set
(``.ci/run`` starts one Redis for the whole run), else the URL of a ``redis-server`` this
session starts on a free loopback port and stops at the end. Tests needing Redis are
skipped, saying why, only where no ``redis-server`` can be found. Each test module uses a
database number of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
import redis

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_client(url: str) -> Any:
    """A synchronous Redis client (redis-py's types are partly unknown to pyright)."""
    return cast(Any, redis.Redis).from_url(url)


def wait_for_redis(url: str, timeout: float = 10) -> None:
    """Return once the Redis at ``url`` answers PING; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    client = redis_client(url)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The base URL (no database number) of a running Redis server."""
    given = os.environ.get("AIOCONTEXT_REDIS_URL")
    if given:
        wait_for_redis(given)
        yield given.rstrip("/")
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "needs a Redis server: install redis-server (apt-get install redis-server) or set "
            "AIOCONTEXT_REDIS_URL=redis://127.0.0.1:6379"
        )
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}"
            wait_for_redis(url)
            yield url
        finally:
            server.terminate()
            server.wait(10)


def flush(url: str) -> None:
    """Empty the Redis database at ``url``."""
    client = redis_client(url)
    try:
        client.flushdb()
    finally:
        client.close()


def take_records(url: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The first ``count`` JSON records jobs pushed to the list ``seen``, once there are
    that many (taken out of the list)."""
    client = redis_client(url)
    deadline = time.monotonic() + timeout
    try:
        while (done := int(client.llen("seen"))) < count:
            assert time.monotonic() < deadline, f"only {done} of {count} jobs ran"
            time.sleep(0.02)
        raw: list[bytes] = client.lpop("seen", count)
        return [json.loads(item) for item in raw]
    finally:
        client.close()


class Process:
    """A subprocess of this Python, its output kept in a file, stopped by :meth:`stop`."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path = TESTS) -> None:
        self.output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by stop()
        self.popen = subprocess.Popen(
            list(args),
            env={**os.environ, **env},
            cwd=cwd,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def text(self) -> str:
        """What the process printed so far."""
        self.output.seek(0)
        return self.output.read()

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL after 20 s); return its output."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:  # pragma: no cover - only if a worker hangs
                self.popen.kill()
                self.popen.wait(10)
        text = self.text()
        self.output.close()
        return text
