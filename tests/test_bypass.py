"""Work that the task factory never sees: every policy holds for it by ``contextvars`` alone.

aiohttp 3.10+ creates its tasks with ``asyncio.Task(...)`` (eagerly on 3.12+), callbacks
and ``to_thread`` workers run in copies of their creator's ``contextvars`` context, and any
code may run a function in ``contextvars.copy_context()``. None of them calls the loop's task
factory. For each such way of starting work, under each policy, a child started by a parent
with data reads the parent's data, waits until the parent wrote again, then writes, replaces,
deletes and mutates; the test checks what each side sees against the policy:

* ``Share()``: one mapping, every write seen both ways.
* ``Copy()`` and ``DeepCopy()`` (which without the factory is a shallow copy): the child
  has its parent's data as it was when it started; neither sees the other's later writes;
  mutated values are shared.
* ``ChainMap()``: the child's writes and deletions go to a layer of its own; the parent's
  later writes show through.
* A custom policy: a task gets ``policy.inherit(...)`` of what it inherited on its first
  access; code outside tasks (callbacks, workers) and copies run inside a task use that
  task's data.

The same checks run through ``create_task`` (the factory) for comparison.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import attrs
import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    TaskFactoryWrapper,
)
from conftest import skip_if_eager_factory_broken

needs_eager = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12"
)


@attrs.frozen
class UserCopy(PropagationPolicy):
    """A custom policy: a shallow copy, made by the policy itself."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return dict(parent)


POLICIES: Final = [Share(), Copy(), DeepCopy(), ChainMap(), UserCopy()]
ABSENT: Final = "<absent>"

#: What a child sees and does: (its data at start, the parent's later write as it sees it,
#: what ``del`` of a parent's key gave, its data at the end).
Report = tuple[dict[str, Any], object, str, dict[str, Any]]


def parent_data(ctx: Context[str, Any]) -> None:
    """The parent's data before it starts the child."""
    ctx.update(kept="parent", replaced="parent", deleted="parent", tags=[])


def child_body(ctx: Context[str, Any]) -> Callable[[], Report]:
    """The child's part after the parent's late write: read, then write in every way."""
    start = {key: value for key, value in ctx.items() if key != "tags"}

    def rest() -> Report:
        late = ctx.get("late", ABSENT)
        ctx["new"] = "child"
        ctx["replaced"] = "child"
        try:
            del ctx["deleted"]
            deleted = "deleted"
        except KeyError:
            deleted = "KeyError"
        ctx["tags"].append("child")
        return start, late, deleted, dict(ctx)

    return rest


# -- the ways of starting a child ----------------------------------------------------------
# Each starts the child from the running (parent) task, lets the parent write "late" after
# the child started, and returns the child's report.


async def via_task(ctx: Context[str, Any], *, eager: bool = False) -> Report:
    """``asyncio.Task(coro)`` directly: no task factory (eagerly if ``eager``)."""
    go = asyncio.Event()

    async def child() -> Report:
        rest = child_body(ctx)
        await go.wait()
        return rest()

    loop = asyncio.get_running_loop()
    if eager and sys.version_info >= (3, 12):
        task = asyncio.Task(child(), loop=loop, eager_start=True)
    else:
        task = asyncio.Task(child(), loop=loop)
    await asyncio.sleep(0)  # the child starts
    ctx["late"] = "parent"
    go.set()
    return await task


async def via_create_task(ctx: Context[str, Any]) -> Report:
    """``asyncio.create_task(coro)``: through the task factory, for comparison."""
    go = asyncio.Event()

    async def child() -> Report:
        rest = child_body(ctx)
        await go.wait()
        return rest()

    task = asyncio.create_task(child())
    await asyncio.sleep(0)
    ctx["late"] = "parent"
    go.set()
    return await task


async def via_call_soon(ctx: Context[str, Any]) -> Report:
    """``loop.call_soon(callback)``: the callback runs in a copy of the parent's context,
    made when it was scheduled; the parent writes before the callback runs."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Report] = loop.create_future()
    loop.call_soon(lambda: done.set_result(child_body(ctx)()))
    ctx["late"] = "parent"
    return await done


async def via_to_thread(ctx: Context[str, Any]) -> Report:
    """A ``to_thread`` worker: ``copy_context().run`` in the loop's default executor, as
    ``asyncio.to_thread`` does it (called so, not awaited at once, the parent can write while
    the worker waits)."""
    wrote = threading.Event()

    def worker() -> Report:
        rest = child_body(ctx)
        assert wrote.wait(10)
        return rest()

    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, contextvars.copy_context().run, worker)
    await asyncio.sleep(0.01)  # the worker starts (it reads its data at once)
    ctx["late"] = "parent"
    wrote.set()
    return await future


async def via_copy_context_run(ctx: Context[str, Any]) -> Report:
    """``contextvars.copy_context().run(f)`` inside the parent task: synchronous, so the
    parent's late write comes after the child is done (the child sees no late write)."""
    report = contextvars.copy_context().run(lambda: child_body(ctx)())
    ctx["late"] = "parent"
    return report


WAYS: Final[dict[str, Callable[[Context[str, Any]], Awaitable[Report]]]] = {
    "Task()": via_task,
    "create_task()": via_create_task,
    "call_soon()": via_call_soon,
    "to_thread()": via_to_thread,
    "copy_context().run()": via_copy_context_run,
}
if sys.version_info >= (3, 12):
    WAYS["Task(eager_start=True)"] = lambda ctx: via_task(ctx, eager=True)


def expected(policy: PropagationPolicy, way: str) -> tuple[Report, dict[str, Any]]:
    """What the child reports and what the parent has afterwards, by the policy's rules."""
    start = {"kept": "parent", "replaced": "parent", "deleted": "parent"}
    sees_late = way != "copy_context().run()"
    outside_tasks = way in ("call_soon()", "to_thread()", "copy_context().run()")
    shares = policy == Share() or (policy == UserCopy() and outside_tasks)
    if policy == ChainMap() and way == "copy_context().run()" and sys.version_info < (3, 12):
        shares = True  # 3.11 cannot tell a copy run inside the task from the task itself
    if way == "call_soon()" and (shares or policy == ChainMap()):
        start = {**start, "late": "parent"}  # the callback runs after the parent's write
    untouched = {"kept": "parent", "replaced": "parent", "deleted": "parent", "late": "parent"}
    if shares:
        late: object = "parent" if sees_late else ABSENT
        end = {"kept": "parent", "replaced": "child", "new": "child", "tags": ["child"]}
        if sees_late:
            end["late"] = "parent"
        parent = {**end, "late": "parent"}
        return (start, late, "deleted", end), parent
    if policy == ChainMap():
        late = "parent" if sees_late else ABSENT
        end = {**start, "replaced": "child", "new": "child", "tags": ["child"]}
        if sees_late:
            end["late"] = "parent"
        return (start, late, "KeyError", end), {**untouched, "tags": ["child"]}
    # Copy(), DeepCopy(), UserCopy() in tasks: a copy as it was when the child started.
    tags = [] if policy == DeepCopy() and way == "create_task()" else ["child"]
    end = {"kept": "parent", "replaced": "child", "new": "child", "tags": ["child"]}
    return (start, ABSENT, "deleted", end), {**untouched, "tags": tags}


@pytest.mark.parametrize("way", list(WAYS))
@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.asyncio
async def test_child_and_parent_see_what_the_policy_says(
    policy: PropagationPolicy, way: str
) -> None:
    """A child started without (and, for comparison, with) the task factory sees its
    parent's data, and each side sees the other's later writes exactly as the policy says."""
    ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
    parent_data(ctx)
    report = await WAYS[way](ctx)
    assert expected(policy, way) == (report, dict(ctx))


class TestCreatorWithoutData:
    """A creator that never touched the context: what a child made without the factory gets."""

    @pytest.mark.parametrize("policy", POLICIES, ids=repr)
    @pytest.mark.asyncio
    async def test_bypassing_child_gets_its_own_root(self, policy: PropagationPolicy) -> None:
        """The child gets a root of its own on first access, whatever the policy, and its
        writes do not reach the creator, who gets another root (no factory ran to share one,
        as rule 3 does for ``create_task``)."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(policy, registry=registry)
        loop = asyncio.get_running_loop()

        async def untouched_parent() -> tuple[dict[str, Any], dict[str, Any]]:
            async def child() -> dict[str, Any]:
                ctx["child"] = 1
                return dict(ctx)

            seen = await asyncio.Task(child(), loop=loop)
            return seen, dict(ctx)

        ctx.attach()
        parent = asyncio.Task(untouched_parent(), loop=loop, context=contextvars.Context())
        assert ({"child": 1}, {}) == await parent

    @pytest.mark.asyncio
    async def test_share_through_the_factory_shares_a_root(self) -> None:
        """Through ``create_task`` the untouched creator gets its root first, so Share()
        really shares (rule 3), and a child the creator then makes directly shares it too."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry())
        loop = asyncio.get_running_loop()

        async def untouched_parent() -> dict[str, Any]:
            async def child(key: str) -> None:
                ctx[key] = 1

            await asyncio.create_task(child("via factory"))
            await asyncio.Task(child("direct"), loop=loop)
            return dict(ctx)

        ctx.attach()
        parent = asyncio.Task(untouched_parent(), loop=loop, context=contextvars.Context())
        assert {"via factory": 1, "direct": 1} == await parent


class TestChainMapLayers:
    """Under ChainMap() only a task's own layer is written in place."""

    @pytest.mark.asyncio
    async def test_grandchildren_without_the_factory_see_each_generation(self) -> None:
        """A chain of tasks made with ``asyncio.Task`` each get a layer on their first write:
        each sees every ancestor's value and later writes, none writes into an ancestor."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        loop = asyncio.get_running_loop()
        ctx["root"] = 0
        go = asyncio.Event()

        async def generation(depth: int) -> list[dict[str, Any]]:
            ctx[f"g{depth}"] = depth
            if depth == 3:
                await go.wait()
                return [dict(ctx)]
            below = asyncio.Task(generation(depth + 1), loop=loop)
            await asyncio.sleep(0)
            ctx[f"late{depth}"] = depth
            return [dict(ctx), *await below]

        task = asyncio.Task(generation(1), loop=loop)
        for _ in range(5):
            await asyncio.sleep(0)
        ctx["late-root"] = True
        go.set()
        seen = await task
        deepest = seen[-1]
        assert {
            "root": 0,
            "late-root": True,
            "g1": 1,
            "g2": 2,
            "g3": 3,
            "late1": 1,
            "late2": 2,
        } == deepest
        assert {"root": 0, "late-root": True} == dict(ctx)

    @pytest.mark.skipif(
        sys.version_info < (3, 12),
        reason="3.11 has no Task.get_context(): a copy run inside the task writes its layer",
    )
    @pytest.mark.asyncio
    async def test_copy_run_inside_the_task_writes_its_own_layer(self) -> None:
        """Code run in a copy of the task's context inside the task (``copy_context().run``)
        never writes the task's layer in place, also when it writes twice."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["a"] = "task"

        def in_copy() -> dict[str, Any]:
            ctx["a"] = "copy"
            ctx["b"] = "copy"
            del ctx["b"]
            ctx["c"] = "copy"
            return dict(ctx)

        assert {"a": "copy", "c": "copy"} == contextvars.copy_context().run(in_copy)
        assert {"a": "task"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_callback_writes_stay_in_the_callback(self) -> None:
        """A callback's repeated writes stay its own, and a worker it starts gets its data
        but writes its own copy too."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["a"] = "task"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[dict[str, Any], dict[str, Any]]] = loop.create_future()

        def worker() -> dict[str, Any]:
            ctx["w"] = 1
            return dict(ctx)

        def callback() -> None:
            ctx["cb"] = 1
            ctx["cb2"] = 2
            from_worker = contextvars.copy_context().run(worker)
            done.set_result((dict(ctx), from_worker))

        loop.call_soon(callback)
        in_callback, in_worker = await done
        assert {"a": "task", "cb": 1, "cb2": 2} == in_callback
        assert {"a": "task", "cb": 1, "cb2": 2, "w": 1} == in_worker
        assert {"a": "task"} == dict(ctx)


class TestCustomPolicy:
    """A custom policy's ``inherit`` runs at spawn through the factory, and on first access
    in a task made without it."""

    @pytest.mark.asyncio
    async def test_inherit_runs_once_per_task(self) -> None:
        """``inherit`` is called once for a task made with ``asyncio.Task`` (on its first
        access) and once for one made with ``create_task`` (at spawn)."""
        calls: list[str] = []

        @attrs.frozen
        class Counting(PropagationPolicy):
            def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
                calls.append("inherit")
                return dict(parent)

        ctx: Context[str, Any] = Context(Counting(), registry=ContextRegistry()).attach()
        ctx["a"] = 1
        loop = asyncio.get_running_loop()

        async def child() -> dict[str, Any]:
            ctx["b"] = 2
            ctx["c"] = 3
            return dict(ctx)

        direct = await asyncio.Task(child(), loop=loop)
        assert ["inherit"] == calls
        assert direct == await asyncio.create_task(child())
        assert (["inherit"] * 2, {"a": 1}) == (calls, dict(ctx))

    @needs_eager
    @pytest.mark.asyncio
    async def test_eager_factory_task_uses_the_data_made_for_it(self) -> None:
        """An eager task made through the factory writes in its first step into the data
        the factory made for it: no second ``inherit``."""
        calls: list[str] = []

        @attrs.frozen
        class Counting(PropagationPolicy):
            def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
                calls.append("inherit")
                return dict(parent)

        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
            loop.set_task_factory(asyncio.eager_task_factory)
        try:
            ctx: Context[str, Any] = Context(Counting(), registry=ContextRegistry()).attach()
            ctx["a"] = 1

            async def child() -> dict[str, Any]:
                ctx["b"] = 2  # in the eager first step
                await asyncio.sleep(0)
                return dict(ctx)

            assert {"a": 1, "b": 2} == await asyncio.create_task(child())
            assert (["inherit"], {"a": 1}) == (calls, dict(ctx))
        finally:
            TaskFactoryWrapper.uninstall(loop)
            loop.set_task_factory(None)
