"""Tests for the ``Copy()``/``DeepCopy()`` data model (``_copy_model``): writes through
``data()`` from anywhere, and restored snapshots under ``DeepCopy()``."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

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
                    outcomes.append("call_soon_threadsafe" in str(error) and "refused" or "?")
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

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", COPIES)
    async def test_writes_from_the_loop_thread_reach_the_task(
        self, policy: PropagationPolicy
    ) -> None:
        """Code on the task's loop (a callback, another task on 3.12+) writes the task's
        data through its ``data()`` view."""
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
        await done
        if sys.version_info >= (3, 12):  # and from another task

            async def other() -> None:
                view["other"] = 4

            await asyncio.create_task(other())
        expected = {"own": 0, "callback": 1, "a": 2, "b": 3}
        if sys.version_info >= (3, 12):
            expected["other"] = 4
        assert expected == dict(ctx)

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
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
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
