"""The examples in ``examples/`` run: each one's ``--self-test`` serves on a random loopback
port, sends real requests with its own client and exits 0 only if every id matched.

One test function per example; each runs the example in a subprocess with a timeout.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_opentelemetry_trace_ids() -> None:
    """``opentelemetry_trace_ids.py``: with a traceparent the request id is its trace id, and
    every line of a request carries its request id and its trace id; without one, the trace
    OpenTelemetry started; the in-memory exporter holds the four traces."""
    result = self_test("opentelemetry_trace_ids.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 4 requests, 4 traces, every id matched" == lines[-1]
    for n in range(1, 4):
        trace_id = f"{n:032x}"
        assert f"[{trace_id} trace={trace_id} span=" in result.stdout
        assert sum(f"] order {n}:" in line and trace_id in line for line in lines) == 2
    checks = [line for line in lines if line.startswith("self-test: order ")]
    assert 4 == len(checks)
    assert all(line.endswith(": OK") for line in checks)


def test_sentry_tags() -> None:
    """``sentry_tags.py``: 20 concurrent requests, 40 events, each tagged with its request."""
    result = self_test("sentry_tags.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "self-test: 40 events, each with its request" == result.stdout.splitlines()[-1]


def test_loguru_request_id() -> None:
    """``loguru_request_id.py``: every loguru line of a request, from the handler, a sub-task
    and a thread, through an enqueued sink, carries its id; a line outside any request ``-``."""
    result = self_test("loguru_request_id.py")
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 5 requests, every line carried its id" == lines[-1]
    assert "[-] self-test: starting" in lines
    for n in range(1, 6):
        assert f"[order-{n}] order {n}: charged (in a thread)" in lines
        assert f"self-test: order {n}: 3 lines: OK" in lines


@pytest.mark.skipif(
    importlib.util.find_spec("grpc") is None,
    reason="grpcio is not installed (it has no wheel for free-threaded CPython)",
)
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
