"""Tests for the spawn plan of ``TaskFactoryWrapper`` (``_factory``): where a task's data
comes from (rules 1-7) through every asyncio API, attach and detach from other threads,
detached contexts, re-attaching after a library chained its factory, and the fast path on
every loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
import weakref
from collections.abc import MutableMapping
from typing import Any

import attrs
import pytest
from helpers import Generations, LoopFactory, needs_312, nothing, restoring_task_factory, run

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
from conftest import CoroutineLike, skip_if_eager_factory_broken


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


class TestNoCyclicGarbage:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [*POLICIES, Counting()], ids=repr)
    @pytest.mark.parametrize("creator", ["with data", "without data", "context="])
    async def test_spawns_leave_nothing_for_the_garbage_collector(
        self, policy: PropagationPolicy, creator: str
    ) -> None:
        """What a spawn makes is freed by reference counting as soon as the task is done:
        no reference cycle per spawn (the spawn's record once pointed to itself), which
        would hold memory until a collection and make collections more frequent."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
        ctx["a"] = [1]

        async def child() -> object:
            return ctx.get("a")

        async def spawns_first() -> None:
            await asyncio.create_task(nothing())

        async def spawn_one() -> None:
            if creator == "without data":  # a task with no data spawns before any access
                await asyncio.create_task(spawns_first(), context=contextvars.Context())
            elif creator == "context=":
                await asyncio.create_task(child(), context=contextvars.copy_context())
            else:
                await asyncio.create_task(child())

        for _ in range(3):  # warm up: caches, first-time imports
            await asyncio.create_task(spawn_one())
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                await asyncio.create_task(spawn_one())
            unreachable = gc.collect()
        finally:
            gc.enable()
        assert 0 == unreachable


class TestWhereDataComesFrom:
    # -- rule 1: inherit(parent) or root(), in place before the first step -----------------

    @pytest.mark.asyncio
    async def test_child_starts_with_inherit_of_parent_data(self) -> None:
        """A child starts with ``policy.inherit(parent's data)``, a grandchild with the
        inherit of the child's (rule 1)."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()

        async def grandchild() -> int:
            generation: int = ctx["generation"]
            return generation

        async def child() -> tuple[int, int]:
            return ctx["generation"], await asyncio.create_task(grandchild())

        assert 0 == ctx["generation"]
        assert (1, 2) == await asyncio.create_task(child())

    def test_main_task_from_loop_factory_starts_with_root(self, new_loop: LoopFactory) -> None:
        """The main task of a loop made by ``loop_factory`` (created by no task) starts with
        ``policy.root()`` (rule 1)."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry())

        async def main() -> dict[str, Any]:
            return dict(ctx)

        assert {"generation": 0} == run(main(), ctx, base=new_loop)

    def test_main_task_data_in_place_before_first_step(self, new_loop: LoopFactory) -> None:
        """The main task of a ``loop_factory`` loop has its data before its first step, so a
        ``to_thread`` worker it starts before touching the context has data (no loop runs in
        its thread), and under Share() shares it."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry())

        def worker() -> None:
            ctx["from"] = "thread"

        async def main() -> dict[str, str]:
            await asyncio.to_thread(worker)
            return dict(ctx)

        assert {"from": "thread"} == run(main(), ctx, base=new_loop)

    @needs_312
    @pytest.mark.asyncio
    async def test_child_data_in_place_before_first_step(self) -> None:
        """A new task holds its own data as soon as it is created, before its first step."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        started: list[bool] = []

        async def child() -> None:
            started.append(True)

        task = asyncio.create_task(child())
        data = ctx.data(task)
        assert ([], {"a": 1}) == (started, data)
        assert data is not ctx.data()
        await task

    @needs_312
    @pytest.mark.asyncio
    async def test_eager_task_sees_data_in_its_first_step(self) -> None:
        """With ``eager_task_factory`` installed before ``attach`` (so wrapped), a child's
        eager first step already sees its data, and its writes stay its own (Copy)."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_task_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
            ctx["a"] = 1
            seen: list[int | None] = []

            async def child() -> None:
                seen.append(ctx.get("a"))
                ctx["a"] = 2

            task = asyncio.create_task(child())
            assert [1] == seen  # ran eagerly, before create_task returned
            await task
            assert 1 == ctx["a"]

    @needs_312
    @pytest.mark.asyncio
    async def test_eager_task_with_explicit_context_starts_with_root(self) -> None:
        """An eager task given ``context=contextvars.Context()`` sees root data in its first
        step."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_task_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()
            ctx["parent"] = True
            seen: list[dict[str, Any]] = []

            async def child() -> None:
                seen.append(dict(ctx))

            task = asyncio.create_task(child(), context=contextvars.Context())
            assert [{"generation": 0}] == seen
            await task

    @pytest.mark.skipif(sys.version_info < (3, 14), reason="create_task(eager_start=) is 3.14+")
    @pytest.mark.asyncio
    async def test_eager_start_task_sees_data_in_its_first_step(self) -> None:
        """A task created with ``eager_start=True`` sees its data in its eager first step."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        seen: list[int | None] = []

        async def child() -> None:
            seen.append(ctx.get("a"))

        eager: dict[str, Any] = {"eager_start": True}
        task = asyncio.create_task(child(), **eager)
        assert [1] == seen
        await task

    @needs_312
    def test_eager_main_task_from_loop_factory(self, new_loop: LoopFactory) -> None:
        """On a ``loop_factory`` loop whose base installs ``eager_task_factory``, the main
        task and its eager children have their data from the first step."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry())

        probe = new_loop()
        probe.close()
        skip_if_eager_factory_broken(probe)

        def eager_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop()
            if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            return loop

        async def child(seen: list[int]) -> None:
            seen.append(ctx["generation"])

        async def main() -> tuple[int, list[int]]:
            seen: list[int] = []
            task = asyncio.create_task(child(seen))
            eager_seen = list(seen)
            await task
            return ctx["generation"], eager_seen

        assert (0, [1]) == run(main(), ctx, base=eager_loop)

    # -- rule 2: the creator is the contextvars context the task will run in ---------------

    @pytest.mark.asyncio
    async def test_explicit_copy_of_current_context_is_the_creator(self) -> None:
        """``create_task(coro, context=copy_context())`` inherits from the current task's
        data (Copy: child sees it, its writes stay its own)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> str:
            seen = ctx["who"]
            ctx["who"] = "child"
            return seen

        task = asyncio.create_task(child(), context=contextvars.copy_context())
        assert "parent" == await task
        assert "parent" == ctx["who"]

    @pytest.mark.asyncio
    async def test_context_copied_from_another_task_is_the_creator(self) -> None:
        """A task given a ``contextvars`` context copied inside another task inherits that
        task's data, not the data of the task that calls ``create_task``."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "main"

        async def other() -> contextvars.Context:
            ctx["who"] = "other"
            return contextvars.copy_context()

        captured = await asyncio.create_task(other())

        async def child() -> str:
            return ctx["who"]

        assert "other" == await asyncio.create_task(child(), context=captured)
        assert "main" == ctx["who"]

    @needs_312
    @pytest.mark.asyncio
    async def test_creators_own_running_context_is_shared(self) -> None:
        """A task given the creator's own running ``contextvars`` context (which is then
        shared by both) runs with the creator's data."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"
        current = asyncio.current_task()
        assert current is not None

        async def child() -> str:
            return ctx["who"]

        if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
            task = asyncio.create_task(child(), context=current.get_context())
            assert "parent" == await task

    @pytest.mark.asyncio
    async def test_empty_explicit_context_gives_root(self) -> None:
        """A task given a ``contextvars`` context without data starts with ``policy.root()``
        even though the calling task has data."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()
        ctx["parent"] = True

        async def child() -> dict[str, Any]:
            return dict(ctx)

        task = asyncio.create_task(child(), context=contextvars.Context())
        assert {"generation": 0} == await task

    @pytest.mark.asyncio
    async def test_explicit_context_under_share_shares(self) -> None:
        """Under Share(), a task given a copy of the current ``contextvars`` context shares
        the current task's mapping."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> None:
            ctx["who"] = "child"

        await asyncio.create_task(child(), context=contextvars.copy_context())
        assert "child" == ctx["who"]

    # -- rule 3: a running creator that never touched the context ---------------------------

    @pytest.mark.asyncio
    async def test_share_holds_when_parent_spawns_before_touching(self) -> None:
        """Under Share(), a task that spawns children before ever reading or writing the
        context still shares one mapping with them (rule 3)."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

        async def child(name: str) -> None:
            ctx[name] = name

        first = asyncio.create_task(child("one"))
        second = asyncio.create_task(child("two"))
        await asyncio.gather(first, second)
        assert {"one": "one", "two": "two"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_share_parent_writes_seen_when_spawned_before_touching(self) -> None:
        """Under Share(), a child spawned before the parent touched the context sees the
        parent's later writes (rule 3)."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        go = asyncio.Event()

        async def child() -> str | None:
            await go.wait()
            return ctx.get("late")

        task = asyncio.create_task(child())
        ctx["late"] = "parent"
        go.set()
        assert "parent" == await task

    @pytest.mark.asyncio
    async def test_copy_when_parent_spawns_before_touching(self) -> None:
        """Under Copy(), a parent that spawns before touching the context and its child end
        up with separate data (rule 3)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        go = asyncio.Event()

        async def child() -> str | None:
            ctx["child"] = "c"
            await go.wait()
            return ctx.get("parent")

        task = asyncio.create_task(child())
        ctx["parent"] = "p"
        go.set()
        assert None is await task
        assert {"parent": "p"} == dict(ctx)

    @needs_312
    @pytest.mark.asyncio
    async def test_share_holds_for_eager_child_spawned_before_touching(self) -> None:
        """Under Share() an eager child's first-step writes reach a parent that had not
        touched the context (rule 3 with eager tasks)."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_task_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

            async def child() -> None:
                ctx["eager"] = "child"

            task = asyncio.create_task(child())
            assert {"eager": "child"} == dict(ctx)
            await task

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("policy", "expected"),
        [(Share(), {"child": "c"}), (Copy(), {}), (ChainMap(), {}), (DeepCopy(), {})],
        ids=repr,
    )
    async def test_task_created_before_attach_gets_root_when_it_spawns(
        self, policy: PropagationPolicy, expected: dict[str, str]
    ) -> None:
        """A task created before attach() has no data; when it spawns before touching the
        context it gets its root at that moment and the child derives from it (rule 3)."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry())
        attached = asyncio.Event()

        async def child() -> None:
            ctx["child"] = "c"

        async def early() -> dict[str, str]:
            await attached.wait()
            await asyncio.create_task(child())
            return dict(ctx)

        task = asyncio.create_task(early())
        await asyncio.sleep(0)
        ctx.attach()
        attached.set()
        assert expected == await task

    # -- rule 4: a task without data gets root() on first access ---------------------------

    @pytest.mark.asyncio
    async def test_main_task_created_before_attach_gets_root(self) -> None:
        """The running (test) task, created before ``attach``, gets ``policy.root()`` on
        first access, and keeps that mapping."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()
        assert {"generation": 0} == ctx
        ctx["written"] = True
        assert {"generation": 0, "written": True} == ctx.data()

    @pytest.mark.asyncio
    async def test_each_task_without_data_gets_its_own_root(self) -> None:
        """Two tasks created before ``attach`` each get a new root on first access, even
        under Share(): roots are never shared."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry())
        go = asyncio.Event()

        async def worker(name: str) -> dict[str, str]:
            await go.wait()
            ctx["name"] = name
            await asyncio.sleep(0)
            return dict(ctx)

        first = asyncio.create_task(worker("first"))
        second = asyncio.create_task(worker("second"))
        ctx.attach()
        go.set()
        assert [{"name": "first"}, {"name": "second"}] == list(await asyncio.gather(first, second))

    # -- rule 5: callbacks and to_thread workers run in copies of the task's context -------
    # They see the task's data; under Copy() their writes stay theirs (contextvars
    # semantics), under Share() they reach the task.

    @pytest.mark.parametrize(
        ("policy", "reaches_task"), [(Copy(), False), (Share(), True)], ids=repr
    )
    @pytest.mark.asyncio
    async def test_call_soon_callback_sees_task_data(
        self, policy: PropagationPolicy, reaches_task: bool
    ) -> None:
        """A ``loop.call_soon`` callback scheduled by a task reads that task's data; its
        write reaches the task only under Share()."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        ctx["task"] = "t"
        loop = asyncio.get_running_loop()
        seen = loop.create_future()

        def callback() -> None:
            ctx["callback"] = "c"
            seen.set_result(dict(ctx))

        loop.call_soon(callback)
        assert {"task": "t", "callback": "c"} == await seen
        expected = {"task": "t", "callback": "c"} if reaches_task else {"task": "t"}
        assert expected == dict(ctx)

    @pytest.mark.parametrize(
        ("policy", "reaches_task"), [(Copy(), False), (Share(), True)], ids=repr
    )
    @pytest.mark.asyncio
    async def test_to_thread_worker_sees_task_data(
        self, policy: PropagationPolicy, reaches_task: bool
    ) -> None:
        """An ``asyncio.to_thread`` worker (no loop in its thread) reads the data of the task
        that started it; its write reaches the task only under Share()."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        ctx["task"] = "t"

        def worker() -> dict[str, str]:
            ctx["thread"] = "w"
            return dict(ctx)

        assert {"task": "t", "thread": "w"} == await asyncio.to_thread(worker)
        expected = {"task": "t", "thread": "w"} if reaches_task else {"task": "t"}
        assert expected == dict(ctx)

    @pytest.mark.asyncio
    async def test_callback_sees_the_data_as_it_was_when_scheduled(self) -> None:
        """Under Copy() a callback runs with the task's data as it was when the callback was
        scheduled: the task's later writes are not in it (the callback's context is a copy)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["task"] = "t"
        loop = asyncio.get_running_loop()
        seen = loop.create_future()
        loop.call_soon(lambda: seen.set_result(dict(ctx)))
        ctx["late"] = "written after call_soon"
        assert {"task": "t"} == await seen

    @pytest.mark.asyncio
    async def test_share_callback_sees_task_writes_made_after_scheduling(self) -> None:
        """Under Share() a callback reads the one mapping as it is when it runs, including
        writes the task made after scheduling it and after spawning a child."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        ctx["task"] = "t"
        await asyncio.create_task(nothing())
        loop = asyncio.get_running_loop()
        seen = loop.create_future()
        loop.call_soon(lambda: seen.set_result(ctx.get("late")))
        ctx["late"] = "written after call_soon"
        assert "written after call_soon" == await seen


class TestAsyncioAPIs:
    """Children made by asyncio's task-creating APIs get their data like ``create_task``."""

    @pytest.mark.asyncio
    async def test_task_group(self) -> None:
        """TaskGroup children see the parent's data; their writes stay their own (Copy)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child(name: str) -> str:
            seen = ctx["who"]
            ctx["who"] = name
            return seen

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(child(name)) for name in ("a", "b")]
        assert (["parent", "parent"], "parent") == ([t.result() for t in tasks], ctx["who"])

    @pytest.mark.asyncio
    async def test_task_group_under_share(self) -> None:
        """TaskGroup children under Share() write into the parent's mapping."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

        async def child(name: str) -> None:
            ctx[name] = name

        async with asyncio.TaskGroup() as group:
            group.create_task(child("a"))
            group.create_task(child("b"))
        assert {"a": "a", "b": "b"} == ctx

    @pytest.mark.asyncio
    async def test_gather(self) -> None:
        """Coroutines passed to ``gather`` run as children with their own copies."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child(name: str) -> str:
            seen = ctx["who"]
            ctx["who"] = name
            return seen

        assert ["parent", "parent"] == list(await asyncio.gather(child("a"), child("b")))
        assert "parent" == ctx["who"]

    @pytest.mark.asyncio
    async def test_ensure_future(self) -> None:
        """A coroutine passed to ``ensure_future`` runs as a child with its own copy."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> str:
            seen = ctx["who"]
            ctx["who"] = "child"
            return seen

        assert "parent" == await asyncio.ensure_future(child())
        assert "parent" == ctx["who"]

    @pytest.mark.asyncio
    async def test_shield(self) -> None:
        """A coroutine passed to ``shield`` runs as a child with its own copy."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> str:
            seen = ctx["who"]
            ctx["who"] = "child"
            return seen

        assert "parent" == await asyncio.shield(child())
        assert "parent" == ctx["who"]

    @pytest.mark.asyncio
    async def test_wait_for(self) -> None:
        """A coroutine passed to ``wait_for`` sees the caller's data."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> str:
            return ctx["who"]

        assert "parent" == await asyncio.wait_for(child(), timeout=60)

    @pytest.mark.asyncio
    async def test_several_contexts_with_different_policies(self) -> None:
        """Contexts with different policies on one loop each propagate by their own policy."""
        registry = ContextRegistry()
        shared: Context[str, str] = Context(Share(), registry=registry).attach()
        copied: Context[str, str] = Context(Copy(), registry=registry).attach()
        layered: Context[str, str] = Context(ChainMap(), registry=registry).attach()
        other_registry: Context[str, str] = Context(DeepCopy(), registry=ContextRegistry())
        other_registry.attach()
        contexts = (shared, copied, layered, other_registry)
        for ctx in contexts:
            ctx["k"] = "parent"

        async def child() -> None:
            for ctx in contexts:
                ctx["k"] = "child"

        await asyncio.create_task(child())
        assert ["child", "parent", "parent", "parent"] == [ctx["k"] for ctx in contexts]

    def test_same_context_in_several_threads_is_isolated(self, new_loop: LoopFactory) -> None:
        """One context used by loops in two threads at once keeps each loop's data apart."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        both_written = threading.Barrier(2, timeout=60)
        results: dict[str, dict[str, str]] = {}

        async def main(name: str) -> dict[str, str]:
            ctx["thread"] = name
            both_written.wait()

            async def child() -> dict[str, str]:
                return dict(ctx)

            return await asyncio.create_task(child())

        def thread(name: str) -> None:
            results[name] = run(main(name), ctx, base=new_loop)

        threads = [threading.Thread(target=thread, args=(name,)) for name in ("one", "two")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert {"one": {"thread": "one"}, "two": {"thread": "two"}} == results


class TestGivenContext:
    """``create_task(coro, context=...)``: the child's data is put in the given context."""

    @pytest.mark.asyncio
    async def test_a_deep_copy_goes_into_the_given_context(self) -> None:
        """Under ``DeepCopy()`` the child of an explicit context gets a deep copy of that
        context's data."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        ctx["tags"] = ["a"]
        given = contextvars.copy_context()

        async def child() -> list[str]:
            ctx["tags"].append("child")
            return list(ctx["tags"])

        assert ["a", "child"] == await asyncio.create_task(child(), context=given)
        assert ["a"] == ctx["tags"]

    @needs_312
    @pytest.mark.asyncio
    async def test_the_creators_own_running_context_is_shared(self) -> None:
        """Given the creator's own (entered) context, the child shares it, data included:
        nothing can be put in place."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"
        task = asyncio.current_task()
        assert task is not None

        async def child() -> None:
            ctx["k"] = "child"

        if sys.version_info >= (3, 12):  # true under needs_312 (mypy ignores skipif)
            await asyncio.create_task(child(), context=task.get_context())
            assert "child" == ctx["k"]

    @pytest.mark.asyncio
    async def test_a_failing_inner_factory_leaves_the_given_context_as_it_was(self) -> None:
        """If the inner factory raises, what was put in the given context is taken out."""
        loop = asyncio.get_running_loop()
        with restoring_task_factory(loop):

            def failing(loop: asyncio.AbstractEventLoop, coro: CoroutineLike, **kw: Any) -> Any:
                coro.close()
                raise LookupError("inner failed")

            loop.set_task_factory(failing)
            ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
            ctx["k"] = ["v"]
            given = contextvars.copy_context()
            before = given[ctx._var]  # pyright: ignore[reportPrivateUsage]
            with pytest.raises(LookupError, match="inner failed"):
                loop.create_task(nothing(), context=given)
            assert before is given[ctx._var]  # pyright: ignore[reportPrivateUsage]


class TestCustomPolicyRoots:
    @pytest.mark.asyncio
    async def test_a_creator_without_data_adopts_its_root(self) -> None:
        """Rule 3 under a custom policy: a task that spawns before touching the context gets
        its root then, and the child inherits from it."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()

        async def child() -> int:
            return int(ctx["generation"])

        async def parent() -> tuple[int, int]:
            spawned = asyncio.create_task(child())
            return ctx["generation"], await spawned

        assert (0, 1) == await asyncio.Task(parent(), context=contextvars.Context())
