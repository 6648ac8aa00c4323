"""The examples in ``examples/`` run: each one's ``--self-test`` serves on a random loopback
port, sends real requests with its own client and exits 0 only if every id matched.

One test function per example; each runs the example in a subprocess with a timeout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"
TIMEOUT = 120


def self_test(example: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<example> --self-test`` with this Python; return the finished process."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example), "--self-test"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=EXAMPLES.parent,
    )


def test_aiohttp_request_id() -> None:
    """``aiohttp_request_id.py``: each request's id (sent, missing or invalid) is the one
    its handler, create_task, gather, TaskGroup and to_thread saw, and the response header."""
    result = self_test("aiohttp_request_id.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 7 requests, every id matched" == lines[-1]
    checks = [line for line in lines if line.startswith("sent ")]
    assert 7 == len(checks)
    assert all(line.endswith(": OK") for line in checks)
    assert all(f"'self-test-{n}'   -> 'self-test-{n}' " in result.stdout for n in range(1, 6))
    fresh = re.findall(r"-> '([0-9a-f-]{36})'", result.stdout)
    assert 2 == len(set(fresh))  # the request without an id and the one with a bad id


def test_request_id_logging() -> None:
    """``request_id_logging.py``: every log line of a request, from the handler, its
    sub-tasks, a thread and the access log, carries that request's id; a line logged
    outside any request carries ``-``."""
    result = self_test("request_id_logging.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 5 requests, every line carried its id" == lines[-1]
    for n in range(1, 5):
        assert f"self-test: order {n}: 7 lines, ids ['order-{n}']: OK" in lines
        assert 7 == sum(f"[order-{n}]" in line for line in lines)
    for n in range(1, 5):
        thread_line = f"[order-{n}] shop: order {n}: card charged (in a thread)"
        assert any(thread_line in line for line in lines)
    assert any("[order-1] aiohttp.access: GET /order/1 200" in line for line in lines)
    assert any("[-] shop: self-test: starting" in line for line in lines)


def test_fastapi_request_id() -> None:
    """``fastapi_request_id.py``: each request's id (sent, missing or invalid) is the one
    its endpoint, ``request.state``, a dependency, create_task, gather, TaskGroup and
    to_thread saw, and the response header; each request's 7 log lines carry it."""
    result = self_test("fastapi_request_id.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 7 requests, every id matched" == lines[-1]
    assert "self-test: 49 log lines, 7 per request, each with its request's id: OK" in lines
    checks = [line for line in lines if line.startswith("sent ")]
    assert 7 == len(checks)
    assert all(line.endswith(": OK") for line in checks)
    assert all(f"'self-test-{n}'   -> 'self-test-{n}' " in result.stdout for n in range(1, 6))
    assert all(7 == sum(f"[self-test-{n}] orders:" in line for line in lines) for n in range(1, 6))
    fresh = re.findall(r"-> '([0-9a-f-]{36})'", result.stdout)
    assert 2 == len(set(fresh))  # the request without an id and the one with a bad id


def test_grpc_request_id() -> None:
    """``grpc_request_id.py``: each call's id and tenant (sent by the client interceptors in
    baggage) is what the unary and streaming handlers and their sub-tasks saw; a plain call
    with a bad id gets a fresh UUID4, never echoed."""
    result = self_test("grpc_request_id.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 6 calls, every id matched" == lines[-1]
    for n in range(1, 6):
        expected = f"sent 'self-test-{n}/tenant-{n}'       seen 'self-test-{n}/tenant-{n}' x5: OK"
        assert expected in lines
    fresh = re.findall(r"seen '([0-9a-f-]{36})/-' x2: OK", result.stdout)
    assert 1 == len(fresh)
