"""Tests for the data model (``_data``): what a context's variable holds, and its edge cases
as users reach them: the no-data marker, custom policies' owned data, ChainMap() layers of
tasks that never wrote, and reading other tasks' data."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import attrs
import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    EventLoopError,
    PropagationPolicy,
    TaskContextError,
)

needs_312 = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="reading another task's data needs Python 3.12+"
)


@attrs.frozen
class Copying(PropagationPolicy):
    """A custom policy: a shallow copy made by the policy."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return dict(parent)


class TestUnbound:
    @pytest.mark.asyncio
    async def test_every_read_of_the_marker_resolves_it(self) -> None:
        """Where a task has no data, ``get``, ``in``, ``len`` and iteration all first give it
        root data on an attached loop, and all raise where the context is not attached."""
        registry = ContextRegistry()
        attached: Context[str, int] = Context(registry=registry).attach()
        detached: Context[str, int] = Context(registry=registry)
        reads: list[Callable[[Context[str, int]], object]] = [
            lambda ctx: ctx.get("k", 0),
            lambda ctx: "k" in ctx,
            len,
            list,
            lambda ctx: ctx.unbound.get("k"),
        ]
        assert [0, False, 0, [], None] == [read(attached) for read in reads]
        for read in reads:
            with pytest.raises(TaskContextError):
                read(detached)


class TestOwned:
    """The data of a custom policy's context."""

    @pytest.mark.asyncio
    async def test_mapping_api_of_a_task_made_without_the_factory(self) -> None:
        """A task made with ``asyncio.Task`` gets its own copy on first access: its writes,
        deletions and length are its own."""
        ctx: Context[str, int] = Context(Copying(), name="owned", registry=ContextRegistry())
        ctx.attach()
        ctx.update(a=1, b=2)

        async def child() -> tuple[int, dict[str, int]]:
            data = ctx.data()
            data["c"] = 3
            del data["a"]
            return len(data), dict(data)

        result = await asyncio.Task(child(), loop=asyncio.get_running_loop())
        assert 2 == len(ctx)
        assert ((2, {"b": 2, "c": 3}), {"a": 1, "b": 2}) == (result, dict(ctx))
        held = [
            value
            for var, value in contextvars.copy_context().items()
            if var.name == "aiocontext.Context('owned')"
        ]
        assert ["{'a': 1, 'b': 2}"] == [repr(value) for value in held]  # shows its data


class TestChainMapOwnership:
    @pytest.mark.asyncio
    async def test_factory_child_of_a_task_that_never_wrote_sees_its_later_writes(self) -> None:
        """A task made without the factory inherits its creator's layers; when it then spawns
        through the factory before writing, it gets a layer of its own first, so the child
        sees the writes it makes afterwards."""
        ctx: Context[str, str] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["root"] = "r"
        go = asyncio.Event()

        async def grandchild() -> dict[str, str]:
            await go.wait()
            return dict(ctx)

        async def child() -> tuple[dict[str, str], dict[str, str]]:
            task = asyncio.create_task(grandchild())
            ctx["later"] = "child"
            go.set()
            return await task, dict(ctx)

        seen, own = await asyncio.Task(child(), loop=asyncio.get_running_loop())
        assert ({"root": "r", "later": "child"},) * 2 == (seen, own)
        assert {"root": "r"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_spawning_from_a_copy_inside_the_task_claims_nothing(self) -> None:
        """A spawn from code run in a copy of the task's context does not give the task a
        layer from inside the copy: the task's own layer stays where it was."""
        ctx: Context[str, str] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["a"] = "task"

        async def child() -> dict[str, str]:
            return dict(ctx)

        async def inherits() -> tuple[dict[str, str], dict[str, str]]:
            task = contextvars.copy_context().run(asyncio.create_task, child())
            ctx["b"] = "inherits"
            return await task, dict(ctx)

        result = await asyncio.Task(inherits(), loop=asyncio.get_running_loop())
        assert ({"a": "task"}, {"a": "task", "b": "inherits"}) == result


class TestTwoChainMapContexts:
    @pytest.mark.asyncio
    async def test_a_spawn_gives_the_creator_a_layer_in_each(self) -> None:
        """A task made without the factory that spawns through it gets a layer of its own
        in every ChainMap() context at once, and its child sees its later writes in each."""
        registry = ContextRegistry()
        first: Context[str, str] = Context(ChainMap(), registry=registry).attach()
        second: Context[str, str] = Context(ChainMap(), registry=registry).attach()
        first["a"] = second["a"] = "root"
        go = asyncio.Event()

        async def grandchild() -> tuple[dict[str, str], dict[str, str]]:
            await go.wait()
            return dict(first), dict(second)

        async def child() -> tuple[dict[str, str], dict[str, str]]:
            task = asyncio.create_task(grandchild())
            first["b"] = second["b"] = "child"
            go.set()
            return await task

        seen = await asyncio.Task(child(), loop=asyncio.get_running_loop())
        assert ({"a": "root", "b": "child"},) * 2 == seen


@needs_312
class TestDataOfAnotherTask:
    """``ctx.data(task)`` for a task that holds data it did not make (3.12+)."""

    @pytest.mark.parametrize("policy", [ChainMap(), Copying()], ids=repr)
    @pytest.mark.asyncio
    async def test_writes_are_that_tasks_own(self, policy: PropagationPolicy) -> None:
        """Writing another task's data through ``data(task)`` gives that task data of its
        own first (a layer, or its policy's copy): the creator is not changed."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        ctx["a"] = "creator"
        go = asyncio.Event()

        async def child() -> dict[str, str]:
            await go.wait()
            return dict(ctx)

        task = asyncio.Task(child(), loop=asyncio.get_running_loop())
        await asyncio.sleep(0)
        ctx.data(task)["b"] = "written from outside"
        go.set()
        assert {"a": "creator", "b": "written from outside"} == await task
        assert {"a": "creator"} == dict(ctx)
        assert {"a": "creator", "b": "written from outside"} == ctx.data(task)


WRITES: list[Callable[[Any], object]] = [
    lambda marker: marker.__setitem__("user", "ghost"),
    lambda marker: marker.update(user="ghost"),
    lambda marker: marker.setdefault("user", "ghost"),
    lambda marker: marker.pop("user"),
    lambda marker: marker.popitem(),
    lambda marker: marker.clear(),
    lambda marker: marker.__delitem__("user"),
    lambda marker: marker.__ior__({"user": "ghost"}),
]


class TestUnboundIsReadOnly:
    @pytest.mark.parametrize("write", WRITES)
    def test_the_no_data_marker_refuses_writes(self, write: Callable[[Any], object]) -> None:
        """The marker is shared by all code without data: writing it raises a
        ``TypeError`` and leaves it empty, so ``ctx["user"]`` outside any loop still raises
        ``EventLoopError`` (defect 10)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        with pytest.raises(TypeError, match="no-data marker"):
            write(ctx.unbound)
        with pytest.raises(EventLoopError):
            ctx["user"]


class TestOwnedMembership:
    @pytest.mark.asyncio
    async def test_in_reads_the_running_tasks_own_mapping(self) -> None:
        """``key in ctx`` under a custom policy looks in the running task's own mapping."""
        ctx: Context[str, int] = Context(Copying(), registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert (True, False) == ("a" in ctx, "b" in ctx)
