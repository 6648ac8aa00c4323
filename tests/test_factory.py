"""Tests for the spawn plan of ``TaskFactoryWrapper`` (``_factory``): attach and detach from
other threads, detached contexts, re-attaching after a library chained its factory, and
the fast path on every loop."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import MutableMapping
from typing import Any

import attrs
import pytest

from aiocontext import (
    AioContextError,
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    TaskContextError,
    TaskFactoryWrapper,
)
from aiocontext._factory import SpawnPlan

from conftest import CoroutineLike


@attrs.frozen
class Counting(PropagationPolicy):
    """A custom policy that counts its ``inherit`` calls."""

    calls: list[int] = attrs.field(factory=lambda: list[int](), eq=False)

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        self.calls.append(1)
        return dict(parent)


POLICIES = [Copy(), DeepCopy(), Share(), ChainMap()]


class TestPlanAcrossThreads:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", POLICIES)
    async def test_toggling_in_another_thread_never_fails_a_correct_spawn(
        self, policy: PropagationPolicy
    ) -> None:
        """Another thread attaches and detaches an unrelated context while the loop makes
        tasks: no task gets a false ``TaskFactoryError`` (defect 6)."""
        registry = ContextRegistry()
        ctx: Context[str, int] = Context(policy, registry=registry).attach()
        other: Context[str, int] = Context(policy, registry=registry)
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def toggle() -> None:
            while not stop.is_set():
                other.attach(loop)
                other.detach(loop)

        async def child(i: int) -> int:
            ctx["i"] = i
            return ctx["i"]

        thread = threading.Thread(target=toggle)
        thread.start()
        errors: list[BaseException] = []
        try:
            for round_ in range(30):
                results = await asyncio.gather(
                    *(child(i) for i in range(50)), return_exceptions=True
                )
                errors += [r for r in results if isinstance(r, BaseException)]
                await asyncio.sleep(0)
                assert round_ >= 0
        finally:
            stop.set()
            thread.join()
        assert [] == errors


class TestDetached:
    @pytest.mark.asyncio
    async def test_a_dropped_detached_context_is_not_kept_alive(self) -> None:
        """A context detached from the loop and then dropped is garbage: the wrapper
        remembers detached contexts weakly (defect 4)."""
        registry = ContextRegistry()
        keep: Context[str, int] = Context(registry=registry).attach()
        gone: Context[str, int] = Context(registry=registry).attach()
        ref = weakref.ref(gone)
        gone.detach()
        del gone
        gc.collect()
        keep.detach()  # the next refresh forgets what no longer exists
        keep.attach()
        wrapper = TaskFactoryWrapper.of(asyncio.get_running_loop())
        assert wrapper is not None
        assert (None, 0) == (ref(), len(wrapper._plan.detached))  # pyright: ignore[reportPrivateUsage]

    @pytest.mark.asyncio
    async def test_detached_contexts_keep_the_fast_path(self) -> None:
        """With contexts detached, a spawn whose creator has no data for them still needs
        nothing: the plan's fast checks hold (defect 4)."""
        registry = ContextRegistry()
        ctx: Context[str, int] = Context(registry=registry).attach()
        others = [Context(registry=registry).attach() for _ in range(50)]
        for other in others:
            other.detach()
        wrapper = TaskFactoryWrapper.of(asyncio.get_running_loop())
        assert wrapper is not None
        plan: SpawnPlan = wrapper._plan  # pyright: ignore[reportPrivateUsage]
        assert (True, 50) == (plan.direct, len(plan.fast))
        ctx["k"] = 1

        async def child() -> int:
            return ctx["k"]

        assert 1 == await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_rule_7_holds_for_detached_contexts(self) -> None:
        """A context detached from the loop: tasks made afterwards by a creator that has
        data start without it."""
        registry = ContextRegistry()
        ctx: Context[str, int] = Context(registry=registry).attach()
        ctx["k"] = 1
        ctx.detach()

        async def child() -> object:
            try:
                return ctx["k"]
            except TaskContextError as error:
                return type(error)

        assert TaskContextError is await asyncio.create_task(child())


def _chaining(inner: Any) -> Any:
    """A library's factory chained in front of whatever the loop had."""

    def factory(loop: asyncio.AbstractEventLoop, coro: CoroutineLike, **kwargs: Any) -> Any:
        return inner(loop, coro, **kwargs)

    return factory


class TestReattach:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Share(), ChainMap(), DeepCopy(), Counting()])
    async def test_reattach_after_a_chained_factory_propagates_once(
        self, policy: PropagationPolicy
    ) -> None:
        """A library chains its factory in front of the wrapper; ``ctx.attach(loop)`` again
        wraps it: every context is then propagated once, and after ``detach`` new tasks
        have no data (rule 7) (defect 5)."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(policy, registry=registry).attach()
        ctx["k"] = []
        loop.set_task_factory(_chaining(loop.get_task_factory()))
        ctx.attach(loop)
        if isinstance(policy, Counting):
            policy.calls.clear()

        async def read() -> object:
            try:
                return ctx["k"]
            except AioContextError as error:
                return type(error)

        assert [] == await asyncio.create_task(read())
        if isinstance(policy, Counting):
            assert [1] == policy.calls
        ctx.detach(loop)
        assert TaskContextError is await asyncio.create_task(read())


class TestFastPath:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), Share(), ChainMap()])
    async def test_a_creator_with_data_needs_no_spawn_work_on_every_loop(
        self, policy: PropagationPolicy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With one context and a creator that has (owns) its data, the wrapper creates the
        task directly, also on uvloop, which passes ``context=None`` to every factory
        (defect 13)."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        ctx["k"] = 1

        def fail(*args: object) -> None:
            raise AssertionError("the slow path ran")

        async def child() -> int:
            return ctx["k"]

        with monkeypatch.context() as patch:
            patch.setattr(TaskFactoryWrapper, "_spawn", fail)
            tasks = [
                asyncio.create_task(child()),
                asyncio.get_running_loop().create_task(child()),
            ]
        assert [1, 1] == [await task for task in tasks]
