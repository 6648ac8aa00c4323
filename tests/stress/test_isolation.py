"""Isolation under load, without HTTP: many concurrent task trees on loops in 8 threads.

Four contexts, one per built-in policy, are attached to every loop; the same ``Context``
objects serve all 8 threads at once. Each thread runs a loop (stdlib or uvloop, with or
without ``asyncio.eager_task_factory`` under the wrapper) and starts its share of the trees
all together: every root task sets its own id in the four contexts, waits until every
root of its loop has done so, then fans out through each way asyncio makes work:
``loop.call_soon`` callbacks, ``asyncio.to_thread``, ``gather``, ``TaskGroup``, a nested
``create_task`` two levels deep, ``shield``, and a child spawned before the root's last
write. Every leaf reads the ids (before its first ``await``, which eager tasks run inside
``create_task``, and after one) and reports what it saw; then writes its own key.

The root checks: every leaf reported (none lost) and saw exactly its root's id in every
context (no cross-talk, between trees of one loop or between threads); leaf writes reached
the root's data under ``Share()`` only, those of callbacks and ``to_thread`` workers (which
run in copies of the root's ``contextvars`` context) included; the write the root made after
spawning reached the child under ``Share()`` and ``ChainMap()`` only.

Roots start with no data to inherit, as request handlers do: half are created with
``create_task(..., context=contextvars.Context())``, half from ``call_soon`` callbacks
running in an empty ``contextvars`` context.

``TestThreadsSharingOneTask`` is the other side of threads: several threads running in
copies of one task's ``contextvars`` context (``to_thread`` workers,
``run_in_executor(None, ctx.run, ...)``) write at once while the task spawns children. Under
``Share()`` every write lands in the task's data, as with a plain dict; under the other
policies each thread keeps all of its own writes and the task sees none; no spawn fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import sys
import threading
import time
from collections.abc import Iterator
from typing import Final

import attrs
import pytest

from aiocontext import Context, loop_factory
from conftest import LOOP_FACTORIES
from stress._support import (
    FACTORIES,
    LOOP_KINDS,
    POLICIES,
    new_loop,
    size,
    skip_unless_factory_works,
)
from stress.conftest import Figures

THREADS: Final = 8
#: Task trees per test, over all threads (each tree makes 8 tasks, 2 callbacks, 2 threads).
TREES: Final = size(ci=2_000, full=100_000)
#: Writes by each of the threads that run in copies of one task's context (under the
#: copying policies each write copies the thread's data: fewer there).
WRITES: Final = size(ci=10_000, full=50_000)
COPYING_WRITES: Final = size(ci=1_000, full=5_000)
#: Threads writing one task's data at once, and how many times they do it at most.
WRITERS: Final = ("a", "b", "c", "d")
ROUNDS: Final = size(ci=3, full=20)
NO_PROBLEMS: Final[dict[str, object]] = {
    "writes lost": 0,
    "first lost": [],
    "failed spawns": 0,
    "first failure": [],
}

#: Where the leaves run: tasks, callbacks and to_thread workers.
TASK_LEAVES: Final = frozenset(
    {"gather-a", "gather-b", "group", "nested", "nested-deep", "shield", "late"}
)
ROOT_CONTEXT_LEAVES: Final = frozenset({"callback", "thread"})  # in the root's contextvars
NESTED_CONTEXT_LEAVES: Final = frozenset({"nested-callback", "nested-thread"})  # in nested's
LEAVES: Final = TASK_LEAVES | ROOT_CONTEXT_LEAVES | NESTED_CONTEXT_LEAVES

#: What a leaf reports for a context it has no value in.
ABSENT: Final = "<absent>"


@attrs.frozen
class Sight:
    """What a leaf saw: its name, the ids it read (one per context, read once or twice) and,
    for the ``late`` leaf, the root's write made after the leaf was spawned."""

    name: str
    ids: tuple[object, ...]
    after_spawn: tuple[object, ...] = ()


@attrs.frozen
class ThreadReport:
    """What one thread's loop saw: how many trees and leaves it checked, and what was wrong."""

    trees: int
    sights: int
    problems: list[str]


class Gate:
    """Holds every root of a loop until all of them have set their id."""

    def __init__(self, roots: int) -> None:
        self._roots = roots
        self._parked = 0
        self.all_parked = asyncio.Event()
        self._open = asyncio.Event()

    async def park(self) -> None:
        """Count this root in and wait until the gate opens."""
        self._parked += 1
        if self._parked == self._roots:
            self.all_parked.set()
        await self._open.wait()

    def open(self) -> None:
        """Let every root go on."""
        self._open.set()


class Forest:
    """The task trees of one test, on the shared contexts (one per built-in policy)."""

    def __init__(self) -> None:
        self.contexts: dict[str, Context[str, str]] = {
            name: Context(policy, name=f"stress-{name}") for name, policy in POLICIES.items()
        }

    # -- what leaves do ------------------------------------------------------------------

    def _ids(self) -> tuple[object, ...]:
        return tuple(ctx.get("id", ABSENT) for ctx in self.contexts.values())

    def _write(self, key: str, tree_id: str) -> None:
        for ctx in self.contexts.values():
            ctx[key] = tree_id

    def _sync_leaf(self, name: str, tree_id: str) -> Sight:
        """A leaf that is not a task: a callback or a ``to_thread`` worker."""
        sight = Sight(name, self._ids())
        self._write(name, tree_id)
        return sight

    def _callback(self, name: str, tree_id: str, done: asyncio.Future[Sight]) -> None:
        done.set_result(self._sync_leaf(name, tree_id))

    async def _leaf(self, name: str, tree_id: str) -> Sight:
        first = self._ids()  # an eager task reads this inside create_task
        await asyncio.sleep(0)
        sight = Sight(name, first + self._ids())
        self._write(name, tree_id)
        return sight

    async def _late(self, tree_id: str, go: asyncio.Event) -> Sight:
        first = self._ids()
        await go.wait()  # the root writes "after-spawn" meanwhile
        after = tuple(ctx.get("after-spawn", ABSENT) for ctx in self.contexts.values())
        self._write("late", tree_id)
        return Sight("late", first + self._ids(), after)

    async def _nested(self, tree_id: str) -> list[Sight]:
        first = Sight("nested", self._ids())
        self._write("nested", tree_id)
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deep = asyncio.create_task(self._leaf("nested-deep", tree_id))
        called: asyncio.Future[Sight] = loop.create_future()
        loop.call_soon(self._callback, "nested-callback", tree_id, called)
        thread = await asyncio.to_thread(self._sync_leaf, "nested-thread", tree_id)
        return [first, await deep, await called, thread]

    # -- a tree ----------------------------------------------------------------------------

    async def tree(self, tree_id: str, gate: Gate) -> tuple[list[str], int]:
        """One root task and its fan-out; returns what was wrong (nothing, we hope) and how
        many leaves reported."""
        for ctx in self.contexts.values():
            ctx["id"] = tree_id
        await gate.park()
        loop = asyncio.get_running_loop()
        go = asyncio.Event()
        late = asyncio.create_task(self._late(tree_id, go))
        for ctx in self.contexts.values():
            ctx["after-spawn"] = tree_id
        go.set()
        called: asyncio.Future[Sight] = loop.create_future()
        loop.call_soon(self._callback, "callback", tree_id, called)
        sights = [await called, await asyncio.to_thread(self._sync_leaf, "thread", tree_id)]
        sights += await asyncio.gather(
            self._leaf("gather-a", tree_id), self._leaf("gather-b", tree_id)
        )
        async with asyncio.TaskGroup() as group:
            in_group = group.create_task(self._leaf("group", tree_id))
            nested = group.create_task(self._nested(tree_id))
        sights += [in_group.result(), *nested.result()]
        sights.append(await asyncio.shield(self._leaf("shield", tree_id)))
        sights.append(await late)
        return self._check(tree_id, sights), len(sights)

    def _check(self, tree_id: str, sights: list[Sight]) -> list[str]:
        problems: list[str] = []
        names = sorted(sight.name for sight in sights)
        if sorted(LEAVES) != names:
            problems.append(f"tree {tree_id}: leaves {names}, expected {sorted(LEAVES)}")
        for sight in sights:
            if any(tree_id != seen for seen in sight.ids):
                policies = list(self.contexts) * 2
                wrong = {
                    p: seen for p, seen in zip(policies, sight.ids, strict=False) if tree_id != seen
                }
                problems.append(f"tree {tree_id}: leaf {sight.name} saw ids {wrong}")
            for policy, seen in zip(self.contexts, sight.after_spawn, strict=False):
                expected = tree_id if policy in ("Share", "ChainMap") else ABSENT
                if expected != seen:
                    problems.append(
                        f"tree {tree_id}: {policy}: the late child saw the root's write "
                        f"made after the spawn as {seen!r}, expected {expected!r}"
                    )
        for policy, ctx in self.contexts.items():
            keys = {"id", "after-spawn"}
            if policy == "Share":
                keys |= LEAVES
            expected_data = dict.fromkeys(keys, tree_id)
            if expected_data != dict(ctx):
                problems.append(f"tree {tree_id}: {policy}: root data {dict(ctx)}")
        return problems

    # -- a loop's share of the trees ---------------------------------------------------------

    async def grow(self, thread: int, trees: int) -> ThreadReport:
        """The main task of one thread's loop: start ``trees`` trees at once, check them."""
        loop = asyncio.get_running_loop()
        gate = Gate(trees)
        roots: list[asyncio.Task[tuple[list[str], int]]] = []

        def plant(tree_id: str) -> None:
            roots.append(loop.create_task(self.tree(tree_id, gate)))

        for index in range(trees):
            tree_id = f"t{thread}-{index}"
            if index % 2:  # from a task, in a new, empty contextvars context
                roots.append(
                    asyncio.create_task(self.tree(tree_id, gate), context=contextvars.Context())
                )
            else:  # from a callback that runs outside any task, with no data
                loop.call_soon(plant, tree_id, context=contextvars.Context())
        await gate.all_parked.wait()
        gate.open()
        results = await asyncio.gather(*roots)
        problems = [problem for result, _ in results for problem in result]
        return ThreadReport(len(roots), sum(sights for _, sights in results), problems)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads every 100 µs (not 5 ms) so the loops interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
class TestIsolation:
    """Concurrent task trees in 8 threads never see one another's data."""

    @pytest.mark.parametrize("factory", FACTORIES)
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_task_trees_in_threads_are_isolated(
        self, kind: str, factory: str, figures: Figures
    ) -> None:
        """Every leaf of every tree sees its root's id under every policy (zero cross-talk,
        zero lost), leaf writes reach the root under Share() only, and the parent's write
        after a spawn reaches the child under Share() and ChainMap() only."""
        skip_unless_factory_works(kind, factory)
        forest = Forest()
        contexts = list(forest.contexts.values())
        start = threading.Barrier(THREADS)

        def make_loop() -> asyncio.AbstractEventLoop:
            return new_loop(kind, factory)

        def run_thread(thread: int) -> ThreadReport:
            start.wait()
            with asyncio.Runner(loop_factory=loop_factory(*contexts, base=make_loop)) as runner:
                return runner.run(forest.grow(thread, TREES // THREADS))

        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            reports = list(pool.map(run_thread, range(THREADS)))
        elapsed = time.perf_counter() - began

        problems = [problem for report in reports for problem in report.problems]
        assert [] == problems[:20]
        assert [TREES // THREADS] * THREADS == [report.trees for report in reports]
        assert TREES // THREADS * THREADS * len(LEAVES) == sum(r.sights for r in reports)
        figures.add(
            f"{TREES // THREADS * THREADS:,} trees ({8 * TREES:,} tasks, {2 * TREES:,} "
            f"callbacks, {2 * TREES:,} to_thread calls) in {THREADS} threads x "
            f"{len(contexts)} contexts: 0 cross-talk, 0 lost, {elapsed:.1f} s"
        )


@pytest.fixture
def constant_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond: races show at once."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("constant_thread_switches")
class TestThreadsSharingOneTask:
    """Threads running in one task's contextvars context share its data safely."""

    @pytest.mark.parametrize("policy", list(POLICIES))
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_concurrent_writers_lose_nothing(self, kind: str, policy: str) -> None:
        """Four threads running in copies of a task's contextvars context (as ``to_thread``
        workers and ``run_in_executor(None, ctx.run, ...)`` do) write keys each while the
        task keeps spawning children: under Share() every write lands in the task's data, as
        it would in a plain dict; under the others each thread ends with all of its own
        writes and the task with none; every spawn succeeds. (A race shows in some rounds
        only: the test runs up to ROUNDS rounds and stops at the first one that goes wrong.)"""
        ctx: Context[str, int] = Context(POLICIES[policy], name=f"writers-{policy}")
        shared = policy == "Share"
        writes = WRITES if shared else COPYING_WRITES

        async def child() -> None:
            pass

        async def one_round(number: int) -> dict[str, object]:
            loop = asyncio.get_running_loop()
            start = threading.Barrier(len(WRITERS))

            def write(prefix: str) -> list[str]:
                start.wait()
                for index in range(writes):
                    ctx[f"{prefix}{index}"] = index
                return [key for key in keys(prefix) if key not in ctx]  # its own, lost

            def keys(prefix: str) -> Iterator[str]:
                return (f"{prefix}{index}" for index in range(writes))

            prefixes = [f"{writer}{number}-" for writer in WRITERS]
            writers = [
                loop.run_in_executor(None, contextvars.copy_context().run, write, prefix)
                for prefix in prefixes
            ]
            spawned = 0
            failed_spawns: list[str] = []
            while not all(writer.done() for writer in writers):
                coro = child()
                try:
                    await asyncio.create_task(coro)  # shares the data, under Copy() until a write
                except RuntimeError as error:
                    coro.close()
                    failed_spawns.append(repr(error))
                spawned += 1
            lost = [key for own_lost in await asyncio.gather(*writers) for key in own_lost]
            assert spawned > 0
            in_task = [key for prefix in prefixes for key in keys(prefix) if key in ctx]
            if shared:
                lost += [key for prefix in prefixes for key in keys(prefix) if key not in ctx]
            else:
                lost += [f"{key} (reached the task)" for key in in_task]
            ctx.clear()  # the next round starts small: copies of big data are slow, not wrong
            ctx["seed"] = number
            return {
                "writes lost": len(lost),
                "first lost": lost[:5],
                "failed spawns": len(failed_spawns),
                "first failure": failed_spawns[:1],
            }

        async def main() -> dict[str, object]:
            ctx["seed"] = 0
            problems = NO_PROBLEMS
            for number in range(ROUNDS):
                problems = await one_round(number)
                if problems != NO_PROBLEMS:
                    break
            return problems

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=LOOP_FACTORIES[kind])) as runner:
            assert NO_PROBLEMS == runner.run(main())
