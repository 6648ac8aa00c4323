"""Copy-on-write under threads: the interleavings that lose writes, made deterministic.

Threads that run in one task's contextvars context (``to_thread`` workers) share its handle.
A write can straddle the moment a spawn flags the data shared, or another thread's private
copy. These tests stage those interleavings with a data dict that flags its own handle in the
middle of a write, exactly what a spawn in another thread would do at that moment.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiocontext import Context, ContextRegistry, Copy


class SharedMidWrite(dict[str, Any]):
    """Data whose first mutations flag its handle shared, as concurrent spawns would (its copies
    carry on, so the repeated write is interrupted once more too)."""

    handle: list[Any]
    fires = 2  # the write and its first repetition: the retry loop must go round twice

    def _fire(self) -> None:
        if self.fires:
            self.fires -= 1
            self.handle[1] = True

    def copy(self) -> SharedMidWrite:
        twin = SharedMidWrite(self)
        twin.handle, twin.fires = self.handle, self.fires
        return twin

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._fire()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._fire()

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._fire()
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._fire()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._fire()
        return item


class FlagClearedUnderUs(list[Any]):
    """A handle whose shared flag reads True twice (the writer's checks), then False: another
    thread made the data private between this thread's checks and its taking the lock."""

    true_reads = 2

    def __getitem__(self, index: Any) -> Any:
        if index == 1 and self.true_reads:
            self.true_reads -= 1
            return True
        return super().__getitem__(index)


def staged(ctx: Context[str, Any], data: dict[str, Any]) -> tuple[list[Any], SharedMidWrite]:
    """Give the current task a handle whose data flags it shared in mid-write."""
    racy = SharedMidWrite(data)
    handle: list[Any] = [racy, False, None]
    racy.handle = handle
    ctx._var.set(handle)
    return handle, racy


OPERATIONS: dict[str, Callable[[Context[str, Any]], object]] = {
    "set": lambda ctx: ctx.__setitem__("new", 1),
    "del": lambda ctx: ctx.__delitem__("old"),
    "pop": lambda ctx: ctx.pop("old"),
    "setdefault": lambda ctx: ctx.setdefault("new", 1),
    "popitem": lambda ctx: ctx.popitem(),
    "view set": lambda ctx: ctx.data().__setitem__("new", 1),
    "view del": lambda ctx: ctx.data().__delitem__("old"),
}
EXPECTED = {
    "set": {"old": 0, "new": 1},
    "del": {},
    "pop": {},
    "setdefault": {"old": 0, "new": 1},
    "popitem": {},
    "view set": {"old": 0, "new": 1},
    "view del": {},
}


class TestCopyOnWriteRaces:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("name", list(OPERATIONS))
    async def test_write_that_straddles_a_spawn_lands_in_the_private_copy(self, name: str) -> None:
        """A mutation during which the data became shared is repeated into the task's new
        private copy: the task sees it, and the data its children share holds it too (the
        write counts as made before the spawn); nothing is lost."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        handle, racy = staged(ctx, {"old": 0})
        OPERATIONS[name](ctx)
        assert EXPECTED[name] == dict(ctx)
        assert handle[0] is not racy
        assert False is handle[1]
        assert EXPECTED[name] == dict(racy)

    @pytest.mark.asyncio
    async def test_copy_already_made_by_another_thread_is_not_made_again(self) -> None:
        """When the flag is cleared between a writer's check and its lock, the writer uses
        the data as it is instead of copying it a second time."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        data = {"old": 0}
        ctx._var.set(FlagClearedUnderUs([data, False, None]))
        ctx["new"] = 1
        assert ctx._var.get()[0] is data
        assert {"old": 0, "new": 1} == data

    @pytest.mark.asyncio
    async def test_children_spawned_meanwhile_are_unaffected(self) -> None:
        """A child spawned before the staged write keeps the data it was given."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["old"] = 0

        async def child() -> dict[str, Any]:
            await asyncio.sleep(0)
            return dict(ctx)

        task = asyncio.create_task(child())
        ctx["new"] = 1
        assert {"old": 0} == await task
