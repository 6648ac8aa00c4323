"""``examples/three_services.py --self-test``: A (ASGI) calls B (aiohttp) and enqueues a
Celery job; A's, B's and the worker's log lines all carry the same request id.

Three real processes on loopback and a real Redis (``$AIOCONTEXT_REDIS_URL``, or a
``redis-server`` the example starts itself).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "three_services.py"


@pytest.mark.skipif(
    not os.environ.get("AIOCONTEXT_REDIS_URL") and shutil.which("redis-server") is None,
    reason="needs a Redis server: install redis-server or set AIOCONTEXT_REDIS_URL",
)
def test_three_services_self_test() -> None:
    """Every request's id (four sent, one made by A) is in A's three log lines, B's one and
    the worker's one, and the worker also got the request's user."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--self-test"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "self-test: 5 requests, the same id in A, B and the worker" == lines[-1]
    for n in range(1, 5):
        assert f"self-test: self-test-{n}: log lines A=3 B=1 worker=1: OK" in lines
        assert any(
            line.startswith(f"worker [self-test-{n}] shop: confirmation of order-")
            and line.endswith(f"sent to user-{n - 1}")
            for line in lines
        )
    fresh = re.findall(
        r"^self-test: ([0-9a-f-]{36}): log lines A=3 B=1 worker=1: OK$", result.stdout, re.M
    )
    assert 1 == len(fresh)
