"""How users' code type-checks with typed keys, scoped binds and snapshots (checked by mypy,
never run)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, assert_type

from aiocontext import Context, Key

REQUEST_ID = Key[str]("request_id")


def keys_on_a_default_context() -> None:
    ctx = Context()
    ctx[REQUEST_ID] = "r-1"
    assert_type(ctx[REQUEST_ID], str)
    assert_type(ctx.get(REQUEST_ID), str | None)
    assert_type(ctx.get(REQUEST_ID, "x"), str)
    assert_type(ctx.get(REQUEST_ID, 0), str | int)
    assert_type(ctx.pop(REQUEST_ID), str)
    assert_type(ctx.setdefault(REQUEST_ID, "r-2"), str)
    ctx[REQUEST_ID] = 3  # type: ignore[misc]  # pyright: ignore[reportArgumentType, reportCallIssue]
    ctx.setdefault(REQUEST_ID, 3)  # type: ignore[misc]  # pyright: ignore[reportArgumentType, reportCallIssue]
    del ctx[REQUEST_ID]


def keys_on_a_typed_context() -> None:
    counts = Context[str, int]()
    counts[REQUEST_ID] = "r-1"
    counts["hits"] = 1
    assert_type(counts[REQUEST_ID], str)
    assert_type(counts["hits"], int)
    assert_type(counts.get(REQUEST_ID), str | None)
    assert_type(counts.pop(REQUEST_ID), str)
    counts[REQUEST_ID] = 3  # type: ignore[misc]  # pyright: ignore[reportArgumentType, reportCallIssue]


def key_construction() -> None:
    assert_type(Key[list[int]]("x", default_factory=list), Key[list[int]])
    assert_type(Key[str]("x", default="-"), Key[str])
    assert_type(REQUEST_ID.name, str)
    assert_type(REQUEST_ID.has_default, bool)
    Key[int]("x", default="no")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    Key[int]("x", default_factory=str)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def scoped_binds() -> None:
    ctx = Context()
    with ctx.bound(REQUEST_ID, "r"):
        pass
    with ctx.bound({"user": "ann"}), ctx.bound(user="ann"):
        pass
    ctx.bound(REQUEST_ID, 3)  # type: ignore[misc]  # pyright: ignore[reportArgumentType]
    counts = Context[str, int]()
    with counts.bound(a=1):
        pass
    counts.bound(a="x")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


async def async_scoped_binds() -> None:
    async with Context().bound(REQUEST_ID, "r"):
        pass


def snapshots() -> None:
    ctx = Context()
    assert_type(ctx.snapshot(), dict[str, Any])
    with ctx.restore(ctx.snapshot()) as data:
        assert_type(data, MutableMapping[str, Any])
    counts = Context[str, int]()
    with counts.restore({"hits": 1}) as hits:
        assert_type(hits, MutableMapping[str, int])
    counts.restore({"hits": "many"})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
    ctx.restore([("a", 1)])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
