"""Leaks: finished tasks, closed loops and uninstalled wrappers leave nothing behind.

* Spawning and finishing many tasks with five contexts attached (the four built-in
  policies and a user policy) leaves traced memory flat.
* The data of finished tasks is freed: weak references to values they stored, and to the
  mappings themselves, die once the tasks are done (and ``gc.collect()`` has run).
* A closed, dropped loop is garbage-collected with its wrapper and its registry entries,
  on the stdlib loop and on uvloop, however it was made.
* ``TaskFactoryWrapper.uninstall`` puts back the very factory object that was there and
  leaves no trace: no registry entry, a wrapper that propagates nothing, no memory growth.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import tracemalloc
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Final

import attrs
import pytest
from helpers import traced_memory

from aiocontext import (
    Context,
    ContextRegistry,
    PropagationPolicy,
    TaskContextError,
    TaskFactoryWrapper,
    loop_factory,
)
from aiocontext.executors import CleanThreadPoolExecutor
from conftest import LOOP_FACTORIES, CoroutineLike
from stress._support import (
    FACTORIES,
    LOOP_KINDS,
    POLICIES,
    new_loop,
    size,
    skip_unless_factory_works,
)
from stress.conftest import Figures

#: Tasks spawned and finished while memory is traced.
TASKS: Final = size(ci=20_000, full=1_000_000)
#: Tasks alive at once while spawning them (one batch).
BATCH: Final = 1_000
#: Task trees whose data must be freed, and loops that must be collected.
TREES: Final = size(ci=200, full=10_000)
LOOPS: Final = size(ci=50, full=1_000)

#: How much traced memory may grow over TASKS spawns, after a warm-up: 128 KiB. Leaking
#: one object per task would exceed it several times over even at the CI size: the smallest
#: object a spawn makes (a handle, a 3-item list) takes 80 bytes, the smallest Python object
#: 28, so a leak would add at least 560 KB over 20,000 tasks (28 MB over 1,000,000). What
#: the bound leaves room for does not grow with the number of tasks: asyncio's and the
#: interpreter's caches and free lists (measured: 3 KiB on the stdlib loop, 40 KiB on
#: uvloop, the same without aiocontext).
MEMORY_BOUND: Final = 128 * 1024


class Tracked(dict[Any, Any]):
    """A task's data under :class:`TrackingPolicy`: a dict that weak references can follow."""


@attrs.frozen
class TrackingPolicy(PropagationPolicy):
    """A user policy that copies like ``Copy()`` and keeps a weak reference to each mapping
    it makes, so a test can tell when tasks' data is freed."""

    made: list[weakref.ref[Tracked]] = attrs.field(factory=list, eq=False)

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return self._track(Tracked(parent))

    def root(self) -> MutableMapping[Any, Any]:
        return self._track(Tracked())

    def _track(self, data: Tracked) -> Tracked:
        self.made.append(weakref.ref(data))
        return data


class Payload:
    """A value stored in a context: weak references tell when nothing holds it any more."""


@attrs.frozen
class UserCopy(PropagationPolicy):
    """A user policy (no fast path in the wrapper): a shallow copy."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return dict(parent)


def all_contexts(user: PropagationPolicy | None = None) -> list[Context[str, Any]]:
    """A context of each built-in policy and one of a user policy (``UserCopy()``)."""
    contexts: list[Context[str, Any]] = [
        Context(policy, name=f"leaks-{name}") for name, policy in POLICIES.items()
    ]
    contexts.append(Context(user or UserCopy(), name="leaks-user"))
    return contexts


def run(loop: asyncio.AbstractEventLoop, main: Callable[[], CoroutineLike]) -> Any:
    """Run ``main()`` on ``loop`` to completion, then shut the loop down and close it."""
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def dead(refs: list[weakref.ref[Any]]) -> list[bool]:
    """Whether each weak reference's object is gone."""
    return [ref() is None for ref in refs]


@pytest.fixture
def traced() -> Iterator[None]:
    """Trace memory allocations for the test (and stop tracing after it)."""
    tracemalloc.start()
    yield
    tracemalloc.stop()


class TestTaskMemory:
    """Spawning and finishing tasks leaves memory flat and frees every task's data."""

    @pytest.mark.usefixtures("without_coverage")  # the code is covered elsewhere
    @pytest.mark.parametrize("factory", FACTORIES)
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_memory_is_flat_over_many_spawns(
        self, kind: str, factory: str, figures: Figures
    ) -> None:
        """Traced memory grows by less than MEMORY_BOUND over TASKS spawns with five contexts
        attached, each task reading its inherited data and writing its own."""
        skip_unless_factory_works(kind, factory)
        contexts = all_contexts()
        loop = new_loop(kind, factory)
        for ctx in contexts:
            ctx.attach(loop)

        async def child(index: int) -> None:
            for ctx in contexts:
                assert "parent" == ctx["from"]
                ctx["index"] = index
            if index % 2:
                await asyncio.sleep(0)  # half of them finish at once (eagerly, if eager)

        async def spawn(tasks: int) -> None:
            for start in range(0, tasks, BATCH):
                await asyncio.gather(*(child(i) for i in range(start, start + BATCH)))

        async def main() -> tuple[int, int]:
            for ctx in contexts:
                ctx["from"] = "parent"
            await spawn(10 * BATCH)  # warm-up: caches, free lists, coverage's arcs
            tracemalloc.start()
            try:
                before = traced_memory()
                await spawn(TASKS)
                # Let go of the last batch: main is resumed by a call that holds it.
                await asyncio.sleep(0)
                return before, traced_memory()
            finally:
                tracemalloc.stop()

        before, after = run(loop, main)
        assert after - before < MEMORY_BOUND
        figures.add(
            f"{TASKS:,} tasks x {len(contexts)} contexts: traced memory {before:,} B before, "
            f"{after:,} B after ({after - before:+,} B; bound {MEMORY_BOUND:,} B)"
        )

    @pytest.mark.parametrize("factory", FACTORIES)
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_finished_tasks_data_is_freed(self, kind: str, factory: str) -> None:
        """Once task trees finish (roots, children, a callback and a to_thread worker each
        storing a value), every value they stored and every mapping a policy made for them
        is freed, while the loop and its main task live on. (The loop's default executor is
        a CleanThreadPoolExecutor, as docs/threads.md says: where threads inherit context, a
        standard one's worker keeps a copy of the first tree's context.)"""
        skip_unless_factory_works(kind, factory)
        tracking = TrackingPolicy()
        contexts = all_contexts(tracking)
        payloads: list[weakref.ref[Payload]] = []
        loop = new_loop(kind, factory)
        loop.set_default_executor(CleanThreadPoolExecutor())
        for ctx in contexts:
            ctx.attach(loop)

        in_tasks: list[weakref.ref[Payload]] = []  # stored by tasks: alive while they run

        def store(by_task: bool = False) -> None:
            for ctx in contexts:
                payload = Payload()
                payloads.append(weakref.ref(payload))
                if by_task:
                    in_tasks.append(payloads[-1])
                ctx[f"payload-{len(payloads)}"] = payload

        async def child() -> None:
            store(by_task=True)
            await asyncio.sleep(0)
            for ctx in contexts:
                ctx.data()  # under Copy(), a view the context caches for the task

        async def tree() -> None:
            store(by_task=True)
            asyncio.get_running_loop().call_soon(store)
            await asyncio.to_thread(store)
            async with asyncio.TaskGroup() as group:
                for _ in range(3):
                    group.create_task(child())

        async def main() -> tuple[list[bool], list[bool], list[bool]]:
            own = len(tracking.made)  # main's own data, alive while main runs
            trees = [
                asyncio.create_task(tree(), context=contextvars.Context()) for _ in range(TREES)
            ]
            await asyncio.sleep(0)
            gc.collect()
            # (A callback's or a worker's writes are its own under most policies: what it
            # stored may be gone already.)
            alive_while_running = dead(in_tasks)
            await asyncio.gather(*trees)
            del trees
            await asyncio.sleep(0)  # main was resumed by a call that holds the trees: drop it
            gc.collect()
            return alive_while_running, dead(payloads), dead(tracking.made[own:])

        while_running, payloads_dead, data_dead = run(loop, main)
        assert not any(while_running)  # the references do follow the values
        assert TREES * 6 * len(contexts) == len(payloads_dead)  # root, callback, thread, 3 children
        assert [True] * len(payloads_dead) == payloads_dead
        assert TREES * 4 == len(data_dead)  # each root and its 3 children
        assert [True] * len(data_dead) == data_dead


class TestLoopCollection:
    """Closed, dropped loops are collected with the wrapper installed and contexts attached."""

    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_closed_loops_are_collected(self, kind: str, figures: Figures) -> None:
        """LOOPS loops, each with contexts of two registries attached and tasks run, are
        garbage-collected once closed and dropped, with their wrappers; no registry keeps
        an entry for any of them."""
        contexts = all_contexts()
        own = Context(registry=ContextRegistry(), name="leaks-own-registry")
        loop_refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []
        wrapper_refs: list[weakref.ref[TaskFactoryWrapper]] = []

        async def main() -> None:
            for ctx in (*contexts, own):
                ctx["key"] = "value"
            await asyncio.gather(asyncio.sleep(0), asyncio.to_thread(own.get, "key"))

        for _ in range(LOOPS):
            loop = new_loop(kind)
            for ctx in (*contexts, own):
                ctx.attach(loop)
            wrapper = TaskFactoryWrapper.of(loop)
            assert wrapper is not None
            loop_refs.append(weakref.ref(loop))
            wrapper_refs.append(weakref.ref(wrapper))
            run(loop, main)
            del loop, wrapper
        gc.collect()

        assert [True] * LOOPS == dead(loop_refs)
        assert [True] * LOOPS == dead(wrapper_refs)
        assert [()] * len(contexts) == [ctx.registry.loops(ctx) for ctx in contexts]
        assert () == own.registry.loops(own)
        figures.add(f"{LOOPS:,} {kind} loops closed and dropped: all collected")

    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_runner_loop_with_pending_tasks_is_collected(self, kind: str) -> None:
        """A loop made by ``loop_factory`` for ``asyncio.Runner`` is collected after the
        runner closes, even though tasks were still pending when main returned."""
        contexts = all_contexts()

        async def main() -> asyncio.AbstractEventLoop:
            for ctx in contexts:
                ctx["key"] = "value"
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for _ in range(10):
                asyncio.create_task(asyncio.wait_for(never, None))
            return asyncio.get_running_loop()

        factory = loop_factory(*contexts, base=LOOP_FACTORIES[kind])
        with asyncio.Runner(loop_factory=factory) as runner:
            loop_ref = weakref.ref(runner.run(main()))
        del runner
        gc.collect()

        assert None is loop_ref()
        assert [()] * len(contexts) == [ctx.registry.loops(ctx) for ctx in contexts]


def custom_factory(
    loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
) -> asyncio.Task[Any]:
    """A user's task factory, to be wrapped and then put back."""
    return asyncio.Task(coro, loop=loop, **kwargs)


class TestUninstall:
    """``TaskFactoryWrapper.uninstall`` restores the original factory and leaves nothing."""

    @pytest.mark.parametrize("original", ["none", "custom", "eager"])
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_uninstall_restores_the_factory_object(self, kind: str, original: str) -> None:
        """After attaching contexts of two registries and running tasks, ``uninstall`` puts
        back the very factory object the loop had; no registry has an entry for the loop;
        the wrapper propagates nothing and is freed; new tasks get no data."""
        skip_unless_factory_works(kind, "eager" if original == "eager" else "lazy")
        loop = new_loop(kind, "eager" if original == "eager" else "lazy")
        if original == "custom":
            loop.set_task_factory(custom_factory)
        factory = loop.get_task_factory()
        contexts = all_contexts()
        contexts.append(Context(registry=ContextRegistry(), name="leaks-own-registry"))
        for ctx in contexts:
            ctx.attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        assert factory is wrapper.inner

        async def use() -> None:
            for ctx in contexts:
                ctx["key"] = "value"
            await asyncio.create_task(asyncio.sleep(0))

        try:
            loop.run_until_complete(use())
            TaskFactoryWrapper.uninstall(loop)
        except BaseException:
            loop.close()
            raise

        assert factory is loop.get_task_factory()
        assert None is TaskFactoryWrapper.of(loop)
        assert [()] * len(contexts) == [ctx.registry.contexts(loop) for ctx in contexts]
        assert [()] * len(contexts) == [ctx.registry.loops(ctx) for ctx in contexts]
        assert [False] * len(contexts) == [ctx.is_attached(loop) for ctx in contexts]
        assert [False] * len(contexts) == [wrapper.propagates(ctx) for ctx in contexts]
        wrapper_ref = weakref.ref(wrapper)
        del wrapper
        gc.collect()
        assert None is wrapper_ref()

        async def read() -> str:
            return str(contexts[0]["key"])

        with pytest.raises(TaskContextError, match="not attached"):
            run(loop, read)

    @pytest.mark.usefixtures("without_coverage", "traced")
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_install_uninstall_cycles_leave_nothing(self, kind: str) -> None:
        """Attaching contexts and uninstalling the wrapper 1,000 times over on one loop leaves
        the original factory in place, no registry entry, and memory flat."""
        contexts = all_contexts()
        loop = new_loop(kind)
        loop.set_task_factory(custom_factory)

        def cycle(times: int) -> None:
            for _ in range(times):
                for ctx in contexts:
                    ctx.attach(loop)
                TaskFactoryWrapper.uninstall(loop)

        try:
            cycle(100)  # warm-up
            before = traced_memory()
            cycle(1_000)
            after = traced_memory()
            assert custom_factory is loop.get_task_factory()
            assert [()] * len(contexts) == [ctx.registry.loops(ctx) for ctx in contexts]
            assert after - before < MEMORY_BOUND
        finally:
            loop.close()
