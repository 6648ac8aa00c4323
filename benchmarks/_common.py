"""Data shared by the cases: what a parent holds and what its children read."""

from __future__ import annotations

from typing import Any

__all__ = ["KEYS", "READ_KEY", "VALUE", "WRITE_KEY", "big_keys"]

READ_KEY = "request_id"
VALUE = "r-1"
WRITE_KEY = "n"
KEYS: dict[str, Any] = {READ_KEY: VALUE, "user": "ann", "trace_id": "t-1"}
"""The three keys a parent holds in most cases."""


def big_keys(n: int) -> dict[str, Any]:
    """``KEYS`` plus more keys, ``n`` in all."""
    data = dict(KEYS)
    data.update((f"key{i}", i) for i in range(n - len(KEYS)))
    return data
