"""Tests for the ``Copy()``/``DeepCopy()`` data model (``_copy_model``): writes through
``data()`` from anywhere, and restored snapshots under ``DeepCopy()``."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import attrs
import pytest

from aiocontext import Context, ContextRegistry, Copy, DeepCopy, PropagationPolicy, TaskContextError

needs_312 = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="another task's data needs Task.get_context() (3.12+)"
)
COPIES = [Copy(), DeepCopy()]


class TestCopyView:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", COPIES)
    async def test_writes_from_a_thread_while_the_task_runs_are_refused(
        self, policy: PropagationPolicy
    ) -> None:
        """A worker thread writing through the task's ``data()`` while the task runs gets
        a ``TaskContextError`` saying what to do, every time; it never breaks the task's
        context, and none of the task's own writes is lost (defect 3)."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        view = ctx.data()
        stop = threading.Event()
        outcomes: list[str] = []

        def worker() -> None:
            for i in range(500):
                try:
                    view[f"w{i}"] = i
                except TaskContextError as error:
                    outcomes.append(("call_soon_threadsafe" in str(error) and "refused") or "?")
            stop.set()

        thread = threading.Thread(target=worker)
        thread.start()
        written = 0
        while not stop.is_set():
            ctx[f"t{written}"] = written
            written += 1
            await asyncio.sleep(0)
        thread.join()
        assert (["refused"] * 500, written) == (outcomes, len(ctx))

    @needs_312
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", COPIES)
    async def test_writes_from_the_loop_thread_reach_the_task(
        self, policy: PropagationPolicy
    ) -> None:
        """Code on the task's loop (a callback, another task) writes the task's data through
        its ``data()`` view (3.12+: Python 3.11 cannot reach another task's context)."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        ctx["own"] = 0
        view = ctx.data()
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def callback() -> None:
            view["callback"] = 1
            view.update(a=2, b=3)
            done.set_result(None)

        loop.call_soon(callback)
        await asyncio.wait_for(done, 60)

        async def other() -> None:  # and from another task
            view["other"] = 4

        await asyncio.create_task(other())
        assert {"own": 0, "callback": 1, "a": 2, "b": 3, "other": 4} == dict(ctx)

    @needs_312
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", COPIES)
    async def test_an_eager_child_writing_its_parent_gets_a_typed_error(
        self, policy: PropagationPolicy
    ) -> None:
        """An eager child's first step runs inside its parent's ``create_task``: writing the
        parent's data then is refused with ``TaskContextError`` (the parent's context is
        entered), not ``RuntimeError: cannot enter context`` (defect 3)."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry())
        loop = asyncio.get_running_loop()
        if type(loop).__module__.startswith("uvloop"):
            pytest.skip("uvloop passes eager_start=None: eager tasks on the stdlib loop only")
        previous = loop.get_task_factory()
        if sys.version_info >= (3, 12):  # true where the test runs (mypy ignores skipif)
            loop.set_task_factory(asyncio.eager_task_factory)
        try:
            ctx.attach()
            parent = asyncio.current_task()
            assert parent is not None
            errors: list[type[BaseException]] = []

            async def child() -> None:
                try:
                    ctx.data(parent)["k"] = 1
                except TaskContextError as error:
                    errors.append(type(error))

            await asyncio.create_task(child())
            assert ([TaskContextError], {}) == (errors, dict(ctx))
        finally:
            ctx.detach()
            loop.set_task_factory(previous)

    @needs_312
    @pytest.mark.asyncio
    async def test_a_thread_reads_another_tasks_data(self) -> None:
        """Reading through a task's view from a thread works (reads enter nothing)."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = 1
        view = ctx.data()
        assert (1, {"k": 1}) == await asyncio.to_thread(lambda: (view["k"], dict(view)))


class TestDeepCopyRestore:
    @pytest.mark.asyncio
    async def test_restored_snapshots_share_no_mutable_value(self) -> None:
        """``restore()`` under ``DeepCopy()`` makes a deep copy, so requests restored from
        one server snapshot never see each other's appends (defect 2)."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        ctx["trail"] = []
        seen: list[list[str]] = []

        async def request(name: str) -> None:
            with ctx.restore({**ctx.snapshot(), "name": name}):
                ctx["trail"].append(name)
                await asyncio.sleep(0)
                seen.append(list(ctx["trail"]))

        await asyncio.gather(*(request(f"r{i}") for i in range(3)))
        assert ([["r0"], ["r1"], ["r2"]], []) == (sorted(seen), ctx["trail"])


class TestCopyOnWrite:
    """Under Copy() parent and children share one dict until either writes; nothing of that
    is observable: every task sees exactly a shallow copy."""

    @pytest.mark.asyncio
    async def test_large_context_is_copied_exactly(self) -> None:
        """A child of a 1,000-key context reads every key; neither side sees the other's
        writes, deletions or clear()."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update({f"k{i}": i for i in range(1000)})
        child_may_write = asyncio.Event()

        async def child() -> tuple[int, int, dict[str, int]]:
            total = sum(ctx[f"k{i}"] for i in range(1000))
            await child_may_write.wait()
            seen_parent_write = ctx.get("parent", -1)
            ctx["k0"] = -1
            del ctx["k1"]
            ctx.clear()
            ctx["child"] = 1
            return total, seen_parent_write, dict(ctx)

        task = asyncio.create_task(child())
        await asyncio.sleep(0)
        ctx["parent"] = 1
        child_may_write.set()
        assert (sum(range(1000)), -1, {"child": 1}) == await task
        assert 1001 == len(ctx)
        assert (0, 1, 1) == (ctx["k0"], ctx["k1"], ctx["parent"])

    @pytest.mark.asyncio
    async def test_siblings_share_until_one_writes(self) -> None:
        """Two children of one parent see the parent's data; one child's write reaches
        neither its sibling nor the parent."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"
        first_wrote = asyncio.Event()

        async def first() -> str:
            ctx["who"] = "first"
            first_wrote.set()
            return ctx["who"]

        async def second() -> str:
            await first_wrote.wait()
            return ctx["who"]

        assert ["first", "parent"] == list(await asyncio.gather(first(), second()))
        assert "parent" == ctx["who"]

    @pytest.mark.asyncio
    async def test_clear_of_shared_data_leaves_the_other_side(self) -> None:
        """clear() in a parent whose data a child still shares empties only the parent."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = "x"
        cleared = asyncio.Event()

        async def child() -> dict[str, str]:
            await cleared.wait()
            return dict(ctx)

        task = asyncio.create_task(child())
        await asyncio.sleep(0)
        ctx.clear()
        cleared.set()
        assert {"a": "x"} == await task
        assert {} == dict(ctx)

    @pytest.mark.asyncio
    async def test_data_view_is_live_stable_and_isolated(self) -> None:
        """data() is a live view of the task's data: writes through it after a spawn stay
        the parent's; it compares and prints like the dict it shows."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        view = ctx.data()
        view["a"] = "parent"
        assert {"a": "parent"} == ctx.data()

        async def child() -> tuple[str, str]:
            await asyncio.sleep(0)
            return ctx["a"], repr(ctx.data())

        task = asyncio.create_task(child())
        view["a"] = "changed after spawn"
        del view["a"]
        view["b"] = "b"
        assert ("parent", "{'a': 'parent'}") == await task
        assert {"b": "b"} == view
        assert ["b"] == list(view)
        assert 1 == len(view)
        assert "{'b': 'b'}" == repr(view)

    @pytest.mark.asyncio
    async def test_copy_policy_subclass_gets_real_copies(self) -> None:
        """A subclass of Copy (not Copy itself) is called for every spawn: its inherit()
        sees and returns real, separate mappings."""

        @attrs.frozen
        class Tagged(Copy):
            def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
                child = super().inherit(parent)
                child["tag"] = "child"
                return child

        ctx: Context[str, str] = Context(Tagged(), registry=ContextRegistry()).attach()
        ctx["tag"] = "parent"

        async def child() -> str:
            return ctx["tag"]

        assert "child" == await asyncio.create_task(child())
        assert "parent" == ctx["tag"]

    def test_unbound_marker_repr_names_the_context(self) -> None:
        """The marker held where there is no data names its context."""
        ctx: Context[str, str] = Context(name="request", registry=ContextRegistry())
        assert f"<no data for {ctx!r}>" == repr(ctx.unbound)


class TestViewOfAnotherTask:
    @needs_312
    @pytest.mark.asyncio
    async def test_a_task_without_data_reads_as_empty_and_is_written_once(self) -> None:
        """``data(task)`` of a suspended task that has no data reads as empty without
        storing anything; ``in``, ``update`` and ``clear`` through the view are single
        writes in that task."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        release = asyncio.Event()

        async def other() -> dict[str, int]:
            await release.wait()
            return dict(ctx)

        task = asyncio.Task(other(), context=contextvars.Context())
        await asyncio.sleep(0)
        view = ctx.data(task)
        empty = (dict(view), "a" in view)
        view.update(a=1, b=2)
        has = "a" in view
        view.clear()
        view["c"] = 3
        release.set()
        assert (({}, False), True, {"c": 3}) == (empty, has, await task)
