"""Tests for scoped values and snapshots: ``Context.bound()`` (``Binding``),
``Context.snapshot()`` and ``Context.restore()`` (``Restoring``)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import gc
import multiprocessing
import pickle
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, MutableMapping
from typing import Any

import attrs
import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    Key,
    PropagationPolicy,
    Share,
    TaskContextError,
)
from aiocontext._scoped import RequestScope
from aiocontext.executors import CleanThreadPoolExecutor

#: The context of the process pool test. A worker process imports it from this module, so
#: it must be a module-level global; in the worker it has no data until a restore() block.
PROCESS_CTX: Context[str, Any] = Context(name="process", registry=ContextRegistry())


def request_id_in_restored_snapshot(snapshot: Mapping[str, Any]) -> str:
    """A process pool worker: read ``request_id`` from a restored snapshot."""
    with PROCESS_CTX.restore(snapshot):
        request_id: str = PROCESS_CTX["request_id"]
        return request_id


@pytest.fixture(scope="module")
def process_pool() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """One worker process for the module, started with 'spawn' (fork is unsafe in a
    multi-threaded process and warns from Python 3.12)."""
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        yield pool


def attached(policy: PropagationPolicy = Copy()) -> Context[str, Any]:
    """A new context, with its own registry, attached to the running loop."""
    return Context(policy, registry=ContextRegistry()).attach()


def unattached() -> Context[str, Any]:
    """A new context, with its own registry, attached nowhere."""
    return Context(registry=ContextRegistry())


#: Calls of ``bound()`` with arguments that fit none of its forms, by test id.
WRONG_BOUND_CALLS: dict[str, Callable[[Context[str, Any]], object]] = {
    "str-and-value": lambda ctx: ctx.bound("a", 1),  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    "key-alone": lambda ctx: ctx.bound(Key[int]("a")),  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    "key-and-two-values": lambda ctx: ctx.bound(Key[int]("a"), 1, 2),  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportUnknownLambdaType]
    "key-and-keywords": lambda ctx: ctx.bound(Key[int]("a"), 1, b=2),  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportUnknownLambdaType]
    "non-mapping": lambda ctx: ctx.bound(1),  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    "pairs": lambda ctx: ctx.bound([("a", 1)]),  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    "two-mappings": lambda ctx: ctx.bound({"a": 1}, {"b": 2}),  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
}


class TestBound:
    @pytest.mark.asyncio
    async def test_with_sets_keywords_and_removes_them_after(self) -> None:
        """``with ctx.bound(a=1, b=2)`` sets the keys inside the block and removes them on
        exit, as the task did not have them."""
        ctx = attached()
        with ctx.bound(a=1, b=2):
            inside = dict(ctx)
        assert ({"a": 1, "b": 2}, {}) == (inside, dict(ctx))

    @pytest.mark.asyncio
    async def test_async_with(self) -> None:
        """``async with ctx.bound(...)`` does the same as ``with``."""
        ctx = attached()
        ctx["a"] = 0
        async with ctx.bound(a=1, b=2):
            inside = dict(ctx)
        assert ({"a": 1, "b": 2}, {"a": 0}) == (inside, dict(ctx))

    @pytest.mark.asyncio
    async def test_mapping_argument(self) -> None:
        """``ctx.bound({key: value})`` binds the mapping's items, whatever their key type."""
        ctx = attached()
        with ctx.bound({"a": 1, "b": 2}):
            inside = dict(ctx)
        assert ({"a": 1, "b": 2}, {}) == (inside, dict(ctx))

    @pytest.mark.asyncio
    async def test_key_and_value(self) -> None:
        """``ctx.bound(KEY, value)`` binds a typed key; on exit the key is gone again and
        reads fall back on the key's default."""
        ctx = attached()
        key = Key[str]("request_id", default="-")
        with ctx.bound(key, "r-1"):
            inside = ctx[key]
        assert ("r-1", "-", {}) == (inside, ctx[key], dict(ctx))

    @pytest.mark.asyncio
    async def test_restores_previous_values_and_removes_absent_keys(self) -> None:
        """On exit keys the task had get their previous values back (None and falsy values
        included) and keys it did not have are removed."""
        ctx = attached()
        ctx.update(a="before", b=None, c=0)
        with ctx.bound(a="bound", b="bound", c="bound", d="bound"):
            inside = dict(ctx)
        assert {"a": "bound", "b": "bound", "c": "bound", "d": "bound"} == inside
        assert {"a": "before", "b": None, "c": 0} == dict(ctx)

    @pytest.mark.asyncio
    async def test_other_writes_in_the_block_are_kept(self) -> None:
        """Only the bound keys are restored: other keys written inside the block stay."""
        ctx = attached()
        with ctx.bound(a=1):
            ctx["other"] = "kept"
        assert {"other": "kept"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_bound_key_deleted_in_the_block(self) -> None:
        """A bound key the block deleted is put back (if the task had it) or left absent,
        without an error on exit."""
        ctx = attached()
        ctx["had"] = "before"
        with ctx.bound(had="bound", new="bound"):
            del ctx["had"], ctx["new"]
        assert {"had": "before"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_restores_when_the_block_raises(self) -> None:
        """An exception in the block propagates unchanged and the values are restored."""
        ctx = attached()
        ctx["a"] = "before"
        with pytest.raises(ValueError, match="boom"), ctx.bound(a="bound", b="bound"):
            raise ValueError("boom")
        assert {"a": "before"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_restores_when_the_async_block_raises(self) -> None:
        """``async with``: an exception in the block propagates and the values are restored."""
        ctx = attached()
        ctx["a"] = "before"
        with pytest.raises(ValueError, match="boom"):
            async with ctx.bound(a="bound", b="bound"):
                raise ValueError("boom")
        assert {"a": "before"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_restores_when_cancelled_in_the_block(self) -> None:
        """A task cancelled while awaiting inside a ``with`` block has its values restored
        when the cancellation leaves the block."""
        ctx = attached()
        entered = asyncio.Event()
        after_exit: dict[str, Any] = {}

        async def worker() -> None:
            ctx["a"] = "before"
            try:
                with ctx.bound(a="bound", b="bound"):
                    entered.set()
                    await asyncio.Event().wait()
            finally:
                after_exit.update(ctx)

        task = asyncio.create_task(worker())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert {"a": "before"} == after_exit

    @pytest.mark.asyncio
    async def test_restores_when_cancelled_in_the_async_block(self) -> None:
        """A task cancelled while awaiting inside an ``async with`` block has its values
        restored when the cancellation leaves the block."""
        ctx = attached()
        entered = asyncio.Event()
        after_exit: dict[str, Any] = {}

        async def worker() -> None:
            ctx["a"] = "before"
            try:
                async with ctx.bound(a="bound", b="bound"):
                    entered.set()
                    await asyncio.sleep(3600)
            finally:
                after_exit.update(ctx)

        task = asyncio.create_task(worker())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert {"a": "before"} == after_exit

    @pytest.mark.asyncio
    async def test_nested(self) -> None:
        """Nested binds of the same key unwind one level at a time."""
        ctx = attached()
        seen: list[dict[str, Any]] = []
        with ctx.bound(a="outer"):
            seen.append(dict(ctx))
            with ctx.bound(a="inner", b="inner"):
                seen.append(dict(ctx))
            seen.append(dict(ctx))
        seen.append(dict(ctx))
        assert [
            {"a": "outer"},
            {"a": "inner", "b": "inner"},
            {"a": "outer"},
            {},
        ] == seen

    @pytest.mark.asyncio
    async def test_entering_the_same_binding_twice_raises(self) -> None:
        """Entering a Binding that is already in use raises RuntimeError, and the failed
        entry does not spoil the outer block's restore."""
        ctx = attached()
        ctx["a"] = "before"
        binding = ctx.bound(a="bound")
        with binding:
            with pytest.raises(RuntimeError, match="already in use"), binding:
                pass
            inside = dict(ctx)
        assert ({"a": "bound"}, {"a": "before"}) == (inside, dict(ctx))

    @pytest.mark.asyncio
    async def test_entering_the_same_binding_twice_with_async_with_raises(self) -> None:
        """``async with`` of a Binding already in use raises RuntimeError too."""
        ctx = attached()
        binding = ctx.bound(a="bound")
        async with binding:
            with pytest.raises(RuntimeError, match="already in use"):
                async with binding:
                    pass
        assert {} == dict(ctx)

    @pytest.mark.parametrize(
        "call", [pytest.param(call, id=name) for name, call in WRONG_BOUND_CALLS.items()]
    )
    def test_wrong_arguments_raise_type_error(
        self, call: Callable[[Context[str, Any]], object]
    ) -> None:
        """Arguments that are not ``(KEY, value)``, one mapping or keywords raise TypeError
        naming the three forms, when ``bound()`` is called (no data needed)."""
        with pytest.raises(TypeError, match=r"ctx\.bound\(KEY, value\)"):
            call(unattached())

    @pytest.mark.asyncio
    async def test_exit_without_enter_changes_nothing(self) -> None:
        """A Binding whose exit runs without its entry (``ExitStack.push``) neither sets nor
        removes anything."""
        ctx = attached()
        ctx["a"] = "before"
        with contextlib.ExitStack() as stack:
            stack.push(ctx.bound(a="bound", b="bound"))
        assert {"a": "before"} == dict(ctx)

    def test_repr(self) -> None:
        """A Binding's repr shows what it binds and in which context."""
        ctx = Context(Share(), name="log", registry=ContextRegistry())
        assert "<binding of {'a': 1} in Context(policy=Share(), name='log')>" == repr(
            ctx.bound(a=1)
        )

    def test_in_a_restore_block_without_a_loop(self) -> None:
        """Outside any event loop, ``bound()`` works on data given by ``restore()``."""
        ctx = unattached()
        with ctx.restore({"a": "restored"}):
            with ctx.bound(a="bound", b="bound"):
                inside = dict(ctx)
            after = dict(ctx)
        assert ({"a": "bound", "b": "bound"}, {"a": "restored"}) == (inside, after)

    @pytest.mark.asyncio
    async def test_chainmap_child_unshadows_parent_key_on_exit(self) -> None:
        """Under ChainMap(), a child binding a key only its parent holds shadows it in the
        block; on exit the child's own layer no longer holds the key, so the parent's later
        writes show through again (restoring by writing the old value into the child's
        layer would freeze it)."""
        ctx = attached(ChainMap())
        ctx["a"] = "parent"
        block_done, parent_wrote = asyncio.Event(), asyncio.Event()

        async def child() -> tuple[str, str, str, dict[str, Any]]:
            with ctx.bound(a="child"):
                inside = ctx["a"]
            after_exit = ctx["a"]
            data = ctx.data()
            assert isinstance(data, collections.ChainMap)
            own_layer = dict(data.maps[0])
            block_done.set()
            await parent_wrote.wait()
            return inside, after_exit, ctx["a"], own_layer

        task = asyncio.create_task(child())
        await block_done.wait()
        ctx["a"] = "parent, later"
        parent_wrote.set()
        assert ("child", "parent", "parent, later", {}) == await task

    @pytest.mark.asyncio
    async def test_chainmap_child_restores_its_own_value(self) -> None:
        """Under ChainMap(), a key in the child's own layer gets the child's value back on
        exit, and the parent's value is never touched."""
        ctx = attached(ChainMap())
        ctx["a"] = "parent"

        async def child() -> tuple[str, str]:
            ctx["a"] = "child"
            with ctx.bound(a="bound"):
                inside = ctx["a"]
            return inside, ctx["a"]

        assert ("bound", "child") == await asyncio.create_task(child())
        assert {"a": "parent"} == dict(ctx)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), ChainMap()])
    async def test_bind_in_child_never_reaches_parent(self, policy: PropagationPolicy) -> None:
        """Under Copy() (and ChainMap()), a child's bind is invisible to the parent, during
        the block and after it."""
        ctx = attached(policy)
        ctx["a"] = "parent"
        in_block, parent_looked = asyncio.Event(), asyncio.Event()

        async def child() -> None:
            with ctx.bound(a="child", b="child"):
                in_block.set()
                await parent_looked.wait()

        task = asyncio.create_task(child())
        await in_block.wait()
        during = dict(ctx)
        parent_looked.set()
        await task
        assert ({"a": "parent"}, {"a": "parent"}) == (during, dict(ctx))

    @pytest.mark.asyncio
    async def test_bind_in_child_is_seen_by_parent_under_share(self) -> None:
        """Under Share() a child's bind writes the shared mapping, so the parent sees the
        bound value during the block and the previous state after it."""
        ctx = attached(Share())
        ctx["a"] = "parent"
        in_block, parent_looked = asyncio.Event(), asyncio.Event()

        async def child() -> None:
            with ctx.bound(a="child", b="child"):
                in_block.set()
                await parent_looked.wait()

        task = asyncio.create_task(child())
        await in_block.wait()
        during = dict(ctx)
        parent_looked.set()
        await task
        assert ({"a": "child", "b": "child"}, {"a": "parent"}) == (during, dict(ctx))

    @pytest.mark.asyncio
    async def test_child_spawned_in_block_keeps_bound_value(self) -> None:
        """Under Copy() a child spawned inside the block inherits the bound value and keeps
        it after the parent's block has exited; the parent's exit only changes the
        parent's data."""
        ctx = attached(Copy())
        ctx["a"] = "before"
        block_exited = asyncio.Event()

        async def child() -> dict[str, Any]:
            await block_exited.wait()
            return dict(ctx)

        with ctx.bound(a="bound", b="bound"):
            task = asyncio.create_task(child())
            await asyncio.sleep(0)  # the child starts inside the block
        block_exited.set()
        assert {"a": "bound", "b": "bound"} == await task
        assert {"a": "before"} == dict(ctx)


class TestSnapshot:
    @pytest.mark.asyncio
    async def test_plain_dict_equal_to_data(self) -> None:
        """``snapshot()`` returns a plain ``dict`` with the current task's items."""
        ctx = attached()
        ctx.update(a=1, b=[2])
        snapshot = ctx.snapshot()
        assert (dict, {"a": 1, "b": [2]}) == (type(snapshot), snapshot)

    @pytest.mark.asyncio
    async def test_changing_the_snapshot_leaves_the_context(self) -> None:
        """Writes to the snapshot do not reach the context."""
        ctx = attached()
        ctx["a"] = 1
        snapshot = ctx.snapshot()
        snapshot["a"] = 2
        snapshot["b"] = 2
        assert {"a": 1} == dict(ctx)

    @pytest.mark.asyncio
    async def test_changing_the_context_leaves_the_snapshot(self) -> None:
        """Writes to the context after ``snapshot()`` do not reach the snapshot."""
        ctx = attached()
        ctx["a"] = 1
        snapshot = ctx.snapshot()
        ctx["a"] = 2
        ctx["b"] = 2
        assert {"a": 1} == snapshot

    @pytest.mark.asyncio
    async def test_snapshot_of_a_copy_child(self) -> None:
        """In a Copy() child whose data is still its parent's (copy-on-write), the snapshot
        is the child's data and is independent of both tasks."""
        ctx = attached(Copy())
        ctx["a"] = "parent"

        async def child() -> dict[str, Any]:
            return ctx.snapshot()

        snapshot = await asyncio.create_task(child())
        snapshot["a"] = "changed"
        assert ({"a": "changed"}, {"a": "parent"}) == (snapshot, dict(ctx))

    @pytest.mark.asyncio
    async def test_flattens_chainmap_layers(self) -> None:
        """Under ChainMap() the snapshot is one plain dict of what the task sees: the
        parent's keys, shadowed by the child's own."""
        ctx = attached(ChainMap())
        ctx.update(a="parent", b="parent")

        async def child() -> dict[str, Any]:
            ctx.update(b="child", c="child")
            return ctx.snapshot()

        snapshot = await asyncio.create_task(child())
        assert (dict, {"a": "parent", "b": "child", "c": "child"}) == (type(snapshot), snapshot)

    @pytest.mark.asyncio
    async def test_picklable_for_plain_data(self) -> None:
        """A snapshot of plain data survives a pickle round trip (with every protocol), so it
        can be sent to a process pool."""
        ctx = attached()
        ctx.update(request_id="r-1", tags=["a", "b"], depth=3)
        snapshot = ctx.snapshot()
        assert [snapshot] * (pickle.HIGHEST_PROTOCOL + 1) == [
            pickle.loads(pickle.dumps(snapshot, protocol=protocol))
            for protocol in range(pickle.HIGHEST_PROTOCOL + 1)
        ]

    def test_without_loop_raises_event_loop_error(self) -> None:
        """With no data and no running loop, ``snapshot()`` raises EventLoopError."""
        with pytest.raises(EventLoopError):
            unattached().snapshot()

    @pytest.mark.asyncio
    async def test_unattached_raises_task_context_error(self) -> None:
        """On a running loop the context is not attached to, ``snapshot()`` raises
        TaskContextError rather than returning an empty dict."""
        with pytest.raises(TaskContextError):
            unattached().snapshot()


@attrs.frozen
class Trimmed(PropagationPolicy):
    """A custom policy: children keep only ``request_id``."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return {key: value for key, value in parent.items() if key == "request_id"}


class TestRestore:
    @pytest.mark.parametrize(
        "policy", [Share(), Copy(), DeepCopy(), ChainMap(), Trimmed()], ids=repr
    )
    def test_every_policy_without_event_loop(self, policy: PropagationPolicy) -> None:
        """``restore()`` works under every policy, a custom one included: the block's data is
        the snapshot, its writes are its own, and the previous data comes back."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry())
        with ctx.restore({"request_id": "r-1", "user": "ann"}) as data:
            ctx["extra"] = 1
            inside = dict(ctx), dict(data)
        assert ({"request_id": "r-1", "user": "ann", "extra": 1},) * 2 == inside

    def test_without_event_loop(self) -> None:
        """With no event loop at all, ``restore()`` makes the snapshot the data of the
        block: reads, writes and the mapping API work."""
        ctx = unattached()
        with ctx.restore({"request_id": "r-1"}):
            ctx["user"] = "ann"
            inside = (ctx["request_id"], dict(ctx), len(ctx))
        assert ("r-1", {"request_id": "r-1", "user": "ann"}, 2) == inside

    def test_gives_the_data(self) -> None:
        """``with ctx.restore(s) as data`` gives the block's live data, the mapping
        ``ctx.data()`` returns there: writes through it are seen by the context and the
        other way round."""
        ctx = unattached()
        with ctx.restore({"a": 1}) as data:
            data["b"] = 2
            ctx["c"] = 3
            assert ({"a": 1, "b": 2, "c": 3},) * 3 == (dict(data), dict(ctx), dict(ctx.data()))

    @pytest.mark.asyncio
    async def test_given_data_stays_live_after_a_spawn(self) -> None:
        """The mapping ``restore()`` gives stays the block's data after a child task was
        spawned in the block (Copy() makes parent and child share the dict copy-on-write;
        the parent's next write must show in the mapping, as it does in ``ctx.data()``)."""
        ctx = attached(Copy())
        with ctx.restore({"a": 1}) as data:
            await asyncio.create_task(asyncio.sleep(0))
            ctx["b"] = 2
            assert {"a": 1, "b": 2} == dict(data)

    def test_no_data_after_the_block_without_loop(self) -> None:
        """After the block, code with no event loop has no data again: access raises
        EventLoopError as before the block."""
        ctx = unattached()
        with ctx.restore({"a": 1}):
            pass
        with pytest.raises(EventLoopError):
            ctx["a"]

    @pytest.mark.asyncio
    async def test_no_data_after_the_block_on_unattached_loop(self) -> None:
        """On a loop the context is not attached to, ``restore()`` gives the task data for
        the block, and afterwards access raises TaskContextError as before."""
        ctx = unattached()
        with pytest.raises(TaskContextError):
            ctx["a"]
        with ctx.restore({"a": 1}):
            inside = ctx["a"]
        assert 1 == inside
        with pytest.raises(TaskContextError):
            ctx["a"]

    @pytest.mark.asyncio
    async def test_previous_data_comes_back(self) -> None:
        """A task's own data, untouched by the block's writes, comes back after it."""
        ctx = attached()
        ctx["a"] = "task"
        with ctx.restore({"a": "restored", "b": "restored"}):
            ctx["c"] = "written in the block"
            inside = dict(ctx)
        assert {"a": "restored", "b": "restored", "c": "written in the block"} == inside
        assert {"a": "task"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_previous_data_comes_back_when_the_block_raises(self) -> None:
        """The task's data comes back also when the block raises; the exception propagates."""
        ctx = attached()
        ctx["a"] = "task"
        with pytest.raises(ValueError, match="boom"), ctx.restore({"a": "restored"}):
            raise ValueError("boom")
        assert {"a": "task"} == dict(ctx)

    def test_nested(self) -> None:
        """Nested restores unwind one level at a time."""
        ctx = unattached()
        with ctx.restore({"a": "outer"}):
            with ctx.restore({"a": "inner"}):
                inner = dict(ctx)
            outer = dict(ctx)
        assert ({"a": "inner"}, {"a": "outer"}) == (inner, outer)

    def test_writes_go_to_a_private_copy(self) -> None:
        """Writes and deletions in the block never change the snapshot passed in."""
        ctx = unattached()
        snapshot = {"a": 1, "b": 2}
        with ctx.restore(snapshot):
            ctx["a"] = 10
            ctx["c"] = 30
            del ctx["b"]
            inside = dict(ctx)
        assert ({"a": 10, "c": 30}, {"a": 1, "b": 2}) == (inside, snapshot)

    def test_snapshot_can_be_restored_twice(self) -> None:
        """One snapshot restored by two blocks gives each block the snapshot's data, not
        what the first block wrote."""
        ctx = unattached()
        snapshot = {"a": 1}
        with ctx.restore(snapshot):
            ctx["a"] = 2
        with ctx.restore(snapshot):
            again = dict(ctx)
        assert {"a": 1} == again

    def test_chainmap_context_restores_a_chainmap(self) -> None:
        """A ChainMap context restores into layers whose mapping API works as usual; outside
        any task the mapping given is the context itself (no layer is written in place
        there), so it stays live across writes."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry())
        with ctx.restore({"a": 1}) as data:
            ctx["b"] = 2
            del ctx["a"]
            data["c"] = 3
            data["d"] = 4
            del data["d"]
            inside = (dict(data), dict(ctx), repr(data), len(data))
        assert ({"b": 2, "c": 3}, {"b": 2, "c": 3}, "{'b': 2, 'c': 3}", 2) == inside

    @pytest.mark.asyncio
    async def test_chainmap_context_restores_a_chainmap_in_a_task(self) -> None:
        """In a task the restored data is the policy's root type, a ChainMap, the task's own."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry())
        with ctx.restore({"a": 1}) as data:
            ctx["b"] = 2
            assert (True, {"a": 1, "b": 2}) == (isinstance(data, collections.ChainMap), dict(data))

    def test_entering_the_same_restoring_twice_raises(self) -> None:
        """Entering a restore() block that is already in use raises RuntimeError, and the
        failed entry does not spoil the outer block."""
        ctx = unattached()
        restoring = ctx.restore({"a": 1})
        with restoring:
            with pytest.raises(RuntimeError, match="already in use"), restoring:
                pass
            inside = dict(ctx)
        assert {"a": 1} == inside
        with pytest.raises(EventLoopError):
            ctx["a"]

    def test_exit_without_enter_changes_nothing(self) -> None:
        """A restore() block whose exit runs without its entry (``ExitStack.push``) leaves
        the current data alone: here, still none."""
        ctx = unattached()
        with contextlib.ExitStack() as stack:
            stack.push(ctx.restore({"a": 1}))
        with pytest.raises(EventLoopError):
            ctx["a"]

    @pytest.mark.parametrize(
        "snapshot", [[("a", 1)], None, "ab", 1], ids=["pairs", "None", "str", "int"]
    )
    def test_non_mapping_raises_type_error(self, snapshot: object) -> None:
        """``restore()`` of anything but a mapping raises TypeError when called."""
        with pytest.raises(TypeError, match="restore\\(\\) takes a mapping"):
            unattached().restore(snapshot)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    @pytest.mark.asyncio
    async def test_tasks_spawned_in_the_block_inherit_the_restored_data(self) -> None:
        """On an attached loop, a child created inside the block starts from the restored
        data (by the policy), not from the task's own data."""
        ctx = attached()
        ctx["a"] = "task"

        async def child() -> dict[str, Any]:
            return dict(ctx)

        with ctx.restore({"a": "restored"}):
            inherited = await asyncio.create_task(child())
        assert {"a": "restored"} == inherited

    @pytest.mark.asyncio
    async def test_in_thread_pool_worker(self) -> None:
        """A thread pool worker with no loop and no data (a CleanThreadPoolExecutor's, on
        every setting of thread_inherit_context) restores a task's snapshot and reads it;
        after the block the thread has no data again, so the next job run by that thread
        does not see it."""
        ctx = attached()
        ctx["request_id"] = "r-1"

        def worker(snapshot: Mapping[str, Any]) -> tuple[str, str]:
            with ctx.restore(snapshot):
                request_id: str = ctx["request_id"]
            try:
                ctx["request_id"]
            except EventLoopError as exc:
                return request_id, type(exc).__name__
            return request_id, "data left behind"

        with CleanThreadPoolExecutor(max_workers=1) as pool:
            first = await asyncio.wrap_future(pool.submit(worker, ctx.snapshot()))
            ctx["request_id"] = "r-2"
            second = await asyncio.wrap_future(pool.submit(worker, ctx.snapshot()))
        assert [("r-1", "EventLoopError"), ("r-2", "EventLoopError")] == [first, second]

    @pytest.mark.asyncio
    async def test_in_process_pool_worker(
        self, process_pool: concurrent.futures.ProcessPoolExecutor
    ) -> None:
        """A task's snapshot sent to a ``ProcessPoolExecutor`` worker is restored there, so
        code in the other process reads the task's values."""
        PROCESS_CTX.attach()
        PROCESS_CTX["request_id"] = "r-1"
        request_id = await asyncio.get_running_loop().run_in_executor(
            process_pool, request_id_in_restored_snapshot, PROCESS_CTX.snapshot()
        )
        assert "r-1" == request_id


POLICIES = [Copy(), DeepCopy(), Share(), ChainMap(), Trimmed()]


class TestScopesEndedElsewhere:
    """``bound()`` and ``restore()`` blocks inside an async generator that another task
    closes: they never write that task's data, and never raise."""

    @staticmethod
    async def _advance_then_close(ctx: Context[str, Any], way: str, scope: str) -> object:
        async def gen() -> AsyncGenerator[Any, None]:
            if scope == "bound":
                with ctx.bound(k="gen"):
                    yield ctx["k"]
            else:
                with ctx.restore({"k": "gen"}):
                    yield ctx["k"]

        agen = gen()

        async def advance() -> object:
            return await agen.__anext__()

        first = await asyncio.create_task(advance())  # advanced by task A

        async def closer() -> dict[str, Any]:  # task B, with data of its own
            ctx["k"] = "b"
            if way == "aclose":
                await agen.aclose()
            else:
                with pytest.raises(RuntimeError):
                    await agen.athrow(RuntimeError("closed"))
            return dict(ctx)

        assert "gen" == first
        return await asyncio.create_task(closer())

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", POLICIES)
    @pytest.mark.parametrize("scope", ["bound", "restore"])
    @pytest.mark.parametrize("way", ["aclose", "athrow"])
    async def test_closing_task_keeps_its_data(
        self, policy: PropagationPolicy, scope: str, way: str
    ) -> None:
        """The closing task's data is untouched, and nothing is reported to the loop."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, info: reported.append(info))
        seen = await self._advance_then_close(ctx, way, scope)
        # Share()'s one mapping is the whole tree's: the bound() block restored it (k was
        # absent before it). Everywhere else the closing task's write stands.
        expected = {} if policy == Share() and scope == "bound" else {"k": "b"}
        assert ([], expected) == (reported, seen)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", POLICIES)
    async def test_finalised_by_the_loop_after_the_task_ended(
        self, policy: PropagationPolicy
    ) -> None:
        """A generator left open and finalised by the loop's async-generator hook: no
        error reaches the loop's exception handler."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
        reported: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, info: reported.append(info))

        async def gen() -> AsyncGenerator[Any, None]:
            with ctx.restore({"k": "gen"}), ctx.bound(j="gen"):
                yield 1

        async def request() -> None:
            agen = gen()
            await agen.__anext__()  # left suspended inside both blocks

        await asyncio.create_task(request())
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        assert [] == reported


class TestRequestScope:
    """The middlewares' ``restore()``: the same scoping, holding the caller's dict."""

    @pytest.mark.parametrize("policy", POLICIES, ids=repr)
    def test_every_policy_scopes_the_given_data(self, policy: PropagationPolicy) -> None:
        """Under every policy the entered dict is the data until ``leave()``, writes in the
        scope are its own, and the previous data comes back."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry())
        scope = RequestScope(ctx)
        with ctx.restore({"request_id": "outer"}):
            token = scope.enter({"request_id": "r-1"})
            ctx["extra"] = 1
            inside = dict(ctx)
            scope.leave(token)
            after = dict(ctx)
        assert ({"request_id": "r-1", "extra": 1}, {"request_id": "outer"}) == (inside, after)

    def test_copy_holds_the_dict_itself(self) -> None:
        """Under ``Copy()`` the caller's dict is held as it is: no copy is made."""
        ctx = unattached()
        scope = RequestScope(ctx)
        values = {"request_id": "r-1"}
        token = scope.enter(values)
        held = ctx._var.get()  # pyright: ignore[reportPrivateUsage]
        scope.leave(token)
        assert values is held

    def test_deepcopy_holds_a_deep_copy(self) -> None:
        """Under ``DeepCopy()`` the data is a deep copy, as ``restore()`` makes: a value the
        caller still holds and changes is not seen."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry())
        shared = ["a"]
        scope = RequestScope(ctx)
        token = scope.enter({"list": shared})
        shared.append("changed later")
        inside = ctx["list"]
        scope.leave(token)
        assert ["a"] == inside

    def test_leave_in_another_context_leaves_it_alone(self) -> None:
        """``leave()`` run in another ``contextvars`` context changes nothing there and
        raises nothing; the entering context keeps the scoped data."""
        ctx = unattached()
        scope = RequestScope(ctx)
        token = scope.enter({"request_id": "r-1"})
        elsewhere = contextvars.Context()
        elsewhere.run(scope.leave, token)
        assert ("r-1", 0) == (ctx["request_id"], len(elsewhere))
        scope.leave(token)
        with pytest.raises(EventLoopError):
            ctx["request_id"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", POLICIES, ids=repr)
    async def test_over_scopes_a_private_copy_with_the_key(self, policy: PropagationPolicy) -> None:
        """``over(key, value)`` scopes a copy of the running code's data with the key set:
        writes in the scope stay there, and the previous data comes back."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
        ctx["a"] = 1
        scope = RequestScope(ctx)
        token = scope.over("request_id", "r-1")
        ctx["b"] = 2
        inside = dict(ctx)
        scope.leave(token)
        assert ({"a": 1, "request_id": "r-1", "b": 2}, {"a": 1}) == (inside, dict(ctx))

    @pytest.mark.asyncio
    async def test_over_gives_code_without_data_its_root_first(self) -> None:
        """Code with no data on an attached loop gets its root data, then the scope."""
        ctx = attached()
        scope = RequestScope(ctx)

        async def without_data() -> tuple[dict[str, Any], dict[str, Any]]:
            token = scope.over("request_id", "r-1")
            inside = dict(ctx)
            scope.leave(token)
            return inside, dict(ctx)

        task = asyncio.get_running_loop().create_task(without_data(), context=contextvars.Context())
        assert ({"request_id": "r-1"}, {}) == await task

    def test_over_without_data_raises(self) -> None:
        """With no data and no loop, ``over()`` raises as ``ctx.snapshot()`` does."""
        with pytest.raises(EventLoopError):
            RequestScope(unattached()).over("request_id", "r-1")

    def test_repr(self) -> None:
        """The repr names the context's variable."""
        ctx: Context[str, Any] = Context(name="request", registry=ContextRegistry())
        assert "<request scope of aiocontext.Context('request')>" == repr(RequestScope(ctx))
