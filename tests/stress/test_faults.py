"""Faults: when spawning fails, the error reaches the caller and nothing is left half-made.

Six contexts are attached to the loop, in this order: ``Share()``, ``Copy()``,
``ChainMap()``, a user policy that can be told to fail, ``DeepCopy()``, and a user policy
that copies. The wrapper processes them in attach order, so when the faulty one fails,
three contexts have already been given the child's data and two have not.

For each fault (the inner task factory raises, ``inherit`` raises, ``root`` raises, a value
cannot be deep-copied, the coroutine was closed, the task is cancelled before its first
step, the loop is closed with tasks pending) the tests check that:

* the error reaches the caller, with a message that says what failed;
* the creator's data is untouched: the same live mapping, the same content, and its
  ``contextvars`` context holds the very same objects as before (identity);
* nothing half-made remains: the next spawn works, and the child gets correct data under
  every context, including those processed before the failing one.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import attrs
import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    PropagationPolicy,
    Share,
    TaskFactoryWrapper,
)
from conftest import CoroutineLike
from stress._support import LOOP_KINDS, new_loop

#: Which contexts a child's write is seen by its parent in, and which see the parent's
#: later writes: the policy table of the contract.
SEES_CHILD_WRITES: Final = frozenset({"Share"})
SEES_LATER_PARENT_WRITES: Final = frozenset({"Share", "ChainMap"})


class Boom(Exception):
    """What the faulty parts of these tests raise."""


class Abort(BaseException):
    """A ``BaseException`` (like ``KeyboardInterrupt``) raised by a faulty part."""


@attrs.define
class Switch:
    """Tells a faulty part whether to fail, and with what."""

    error: BaseException | None = None

    def check(self) -> None:
        """Raise the error if one is set."""
        if self.error is not None:
            raise self.error

    @contextmanager
    def failing(self, error: BaseException) -> Iterator[None]:
        """Fail with ``error`` inside the block."""
        self.error = error
        try:
            yield
        finally:
            self.error = None


@attrs.frozen
class Faulty(PropagationPolicy):
    """A user policy (a shallow copy) whose ``inherit`` and ``root`` fail on demand."""

    inherit_switch: Switch = attrs.field(factory=Switch, eq=False, repr=False)
    root_switch: Switch = attrs.field(factory=Switch, eq=False, repr=False)

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        self.inherit_switch.check()
        return dict(parent)

    def root(self) -> MutableMapping[Any, Any]:
        self.root_switch.check()
        return {}


@attrs.frozen
class UserCopy(PropagationPolicy):
    """A user policy that copies, attached after the faulty one."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return dict(parent)


class FaultyFactory:
    """An inner task factory that makes plain tasks, or fails on demand."""

    def __init__(self) -> None:
        self.switch = Switch()

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
    ) -> asyncio.Task[Any]:
        self.switch.check()
        return asyncio.Task(coro, loop=loop, **kwargs)


class Contexts:
    """The six contexts of a test, by name, in attach order."""

    def __init__(self) -> None:
        self.faulty = Faulty()
        registry = ContextRegistry()
        policies: dict[str, PropagationPolicy] = {
            "Share": Share(),
            "Copy": Copy(),
            "ChainMap": ChainMap(),
            "Faulty": self.faulty,
            "DeepCopy": DeepCopy(),
            "UserCopy": UserCopy(),
        }
        self.by_name: dict[str, Context[str, Any]] = {
            name: Context(policy, name=f"faults-{name}", registry=registry)
            for name, policy in policies.items()
        }

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach every context to ``loop``, in order, without giving the caller data."""
        for ctx in self.by_name.values():
            ctx.registry.attach(ctx, loop)

    def write(self, key: str, value: object) -> None:
        """Set ``key`` in every context."""
        for ctx in self.by_name.values():
            ctx[key] = value

    def contents(self) -> dict[str, dict[str, Any]]:
        """The current task's data in every context, as plain dicts."""
        return {name: dict(ctx) for name, ctx in self.by_name.items()}


def identities(items: Iterator[tuple[contextvars.ContextVar[Any], Any]]) -> dict[object, int]:
    """Each variable of a ``contextvars`` context with the identity of its value.

    Keep the context (or copy) alive while comparing, so that ids are not reused.
    """
    return {var: id(value) for var, value in items}


@attrs.frozen
class CreatorState:
    """What must not change when a spawn fails: the creator's ``contextvars`` context (the
    identity of every value in it: each context's data, layers or root marker) and the
    content of its data."""

    context: contextvars.Context  # kept alive so that the ids stay meaningful
    identities: dict[object, int]
    contents: dict[str, dict[str, Any]]

    @classmethod
    def now(cls, contexts: Contexts, context: contextvars.Context | None = None) -> CreatorState:
        """The current task's state, or that of ``context`` (not entered) if given."""
        if context is None:
            context = contextvars.copy_context()
        contents = context.run(contexts.contents)
        return cls(context, identities(iter(context.items())), contents)

    def assert_same(self, other: CreatorState) -> None:
        """Assert that ``other`` is the same state (same objects, same content)."""
        assert self.identities == other.identities
        assert self.contents == other.contents


async def child_view(contexts: Contexts) -> dict[str, dict[str, Any]]:
    """A child task's body: report its data, then write to it."""
    seen = contexts.contents()
    contexts.write("from-child", True)
    return seen


async def check_next_spawn(contexts: Contexts, expected: dict[str, Any]) -> None:
    """Spawn a child now: it must see ``expected`` in every context, and its writes must
    reach the parent under ``Share()`` only."""
    seen = await asyncio.create_task(child_view(contexts))
    assert dict.fromkeys(contexts.by_name, expected) == seen
    got_child_write = {name: "from-child" in ctx for name, ctx in contexts.by_name.items()}
    assert {name: name in SEES_CHILD_WRITES for name in contexts.by_name} == got_child_write
    for ctx in contexts.by_name.values():
        ctx.pop("from-child", None)


@asynccontextmanager
async def attached(factory: Callable[..., Any] | None = None) -> AsyncIterator[Contexts]:
    """Six contexts attached to the running loop (around ``factory``, if given); the
    current task gets no data from attaching. Restores the loop's factory afterwards."""
    loop = asyncio.get_running_loop()
    original = loop.get_task_factory()
    if factory is not None:
        loop.set_task_factory(factory)
    contexts = Contexts()
    contexts.attach(loop)
    try:
        yield contexts
    finally:
        TaskFactoryWrapper.uninstall(loop)
        loop.set_task_factory(original)


def explicit_or_current(explicit: bool) -> contextvars.Context | None:
    """The ``context=`` to spawn with: a copy of the current context, or none."""
    return contextvars.copy_context() if explicit else None


def spawn(coro: CoroutineLike, context: contextvars.Context | None) -> asyncio.Task[Any]:
    """``asyncio.create_task(coro)``, with ``context=`` if one is given."""
    if context is None:
        return asyncio.get_running_loop().create_task(coro)
    return asyncio.get_running_loop().create_task(coro, context=context)


SPAWN_PATHS = [pytest.param(False, id="current-context"), pytest.param(True, id="context=")]
ERRORS = [
    pytest.param(lambda: Boom("the inner part failed"), id="Exception"),
    pytest.param(lambda: Abort("the inner part was aborted"), id="BaseException"),
]


def assert_spawn_fails(
    contexts: Contexts,
    error: BaseException,
    context: contextvars.Context | None,
) -> None:
    """Spawning a child now must raise ``error`` itself and leave the creator unchanged."""
    state = CreatorState.now(contexts, context)
    coro = child_view(contexts)
    with pytest.raises(type(error)) as raised:
        spawn(coro, context)
    coro.close()  # never started: close it, or it warns when collected
    assert error is raised.value
    state.assert_same(CreatorState.now(contexts, context))


class TestFaultsWhileSpawning:
    """The inner factory or a policy fails while a task is being created."""

    @pytest.mark.parametrize("make_error", ERRORS)
    @pytest.mark.parametrize("explicit", SPAWN_PATHS)
    @pytest.mark.asyncio
    async def test_inner_factory_raises(
        self, explicit: bool, make_error: Callable[[], BaseException]
    ) -> None:
        """When the inner task factory raises, the very error reaches the caller; the
        creator's context, mappings and data are unchanged; the next spawn works."""
        factory = FaultyFactory()
        async with attached(factory) as contexts:
            contexts.write("key", "parent")
            context = explicit_or_current(explicit)
            error = make_error()
            with factory.switch.failing(error):
                assert_spawn_fails(contexts, error, context)
            await check_next_spawn(contexts, {"key": "parent"})

    @pytest.mark.parametrize("make_error", ERRORS)
    @pytest.mark.parametrize("explicit", SPAWN_PATHS)
    @pytest.mark.asyncio
    async def test_policy_inherit_raises(
        self, explicit: bool, make_error: Callable[[], BaseException]
    ) -> None:
        """When a user policy's ``inherit`` raises (with three contexts already given the
        child's data), the very error reaches the caller, the creator is unchanged, and the
        next spawn gives every context correct data."""
        async with attached() as contexts:
            contexts.write("key", "parent")
            context = explicit_or_current(explicit)
            error = make_error()
            with contexts.faulty.inherit_switch.failing(error):
                assert_spawn_fails(contexts, error, context)
            await check_next_spawn(contexts, {"key": "parent"})

    @pytest.mark.parametrize("make_error", ERRORS)
    @pytest.mark.asyncio
    async def test_policy_root_raises_for_untouched_creator(
        self, make_error: Callable[[], BaseException]
    ) -> None:
        """When a running task that never touched the contexts spawns and a policy's
        ``root`` raises, the error reaches the caller; the creator still has no data (it
        was not given half of its roots); once ``root`` works, the next spawn gives root
        data and ``Share()`` shares it with the creator."""
        async with attached() as contexts:  # this task was created before: it has no data
            error = make_error()
            before = contextvars.copy_context()
            with contexts.faulty.root_switch.failing(error):
                coro = child_view(contexts)
                with pytest.raises(type(error)) as raised:
                    asyncio.create_task(coro)
                coro.close()
            assert error is raised.value
            assert identities(iter(before.items())) == identities(
                iter(contextvars.copy_context().items())
            )
            await check_next_spawn(contexts, {})

    @pytest.mark.parametrize("make_error", ERRORS)
    @pytest.mark.asyncio
    async def test_policy_root_raises_for_explicit_empty_context(
        self, make_error: Callable[[], BaseException]
    ) -> None:
        """Spawning with ``context=contextvars.Context()`` (no data: every context takes
        its root) when a ``root`` raises: the error reaches the caller, the given context
        stays empty, and it can be used for the next spawn."""
        async with attached() as contexts:
            empty = contextvars.Context()
            error = make_error()
            with contexts.faulty.root_switch.failing(error):
                coro = child_view(contexts)
                with pytest.raises(type(error)) as raised:
                    spawn(coro, empty)
                coro.close()
            assert error is raised.value
            assert [] == list(empty.items())
            seen = await spawn(child_view(contexts), empty)
            assert {name: {} for name in contexts.by_name} == seen

    @pytest.mark.asyncio
    async def test_policy_root_raises_on_first_access(self) -> None:
        """A task with no data whose first access calls a failing ``root`` gets the error
        from that access; it still has no data, and the next access gives it root data."""
        async with attached() as contexts:  # this task was created before: it has no data
            faulty = contexts.by_name["Faulty"]
            with contexts.faulty.root_switch.failing(Boom("no root today")):
                with pytest.raises(Boom, match="no root today"):
                    faulty["key"] = "value"
            faulty["key"] = "value"
            assert {"key": "value"} == dict(faulty)

    @pytest.mark.asyncio
    async def test_attach_whose_root_raises_leaves_context_unattached(self) -> None:
        """``ctx.attach()`` in a running task whose policy's ``root`` raises (attach gives
        the caller root data) lets the error through and leaves the context as it was: not
        attached, no wrapper change, so a later ``attach()`` starts clean."""
        faulty = Faulty()
        ctx: Context[str, Any] = Context(faulty, name="faults-attach", registry=ContextRegistry())
        loop = asyncio.get_running_loop()
        with faulty.root_switch.failing(Boom("no root today")):
            with pytest.raises(Boom, match="no root today"):
                ctx.attach()
        try:
            assert False is ctx.is_attached()
            assert () == ctx.registry.contexts(loop)
        finally:
            ctx.detach()
        ctx.attach()
        ctx["key"] = "value"
        assert {"key": "value"} == dict(ctx)
        ctx.detach()

    @pytest.mark.parametrize("explicit", SPAWN_PATHS)
    @pytest.mark.asyncio
    async def test_deepcopy_of_uncopyable_value(self, explicit: bool) -> None:
        """Under ``DeepCopy()`` a value that cannot be deep-copied makes the spawn raise the
        original error with a note naming the key; the creator is unchanged; once the value
        is gone the next spawn works for every context."""
        async with attached() as contexts:
            contexts.write("key", "parent")
            deep = contexts.by_name["DeepCopy"]
            deep["lock"] = lock = threading.Lock()
            context = explicit_or_current(explicit)
            state = CreatorState.now(contexts, context)
            coro = child_view(contexts)
            with pytest.raises(TypeError, match="pickle") as raised:
                spawn(coro, context)
            coro.close()
            notes = getattr(raised.value, "__notes__", [])
            assert 1 == len(notes)
            assert "'lock'" in notes[0]
            state.assert_same(CreatorState.now(contexts, context))
            assert lock is deep["lock"]
            del deep["lock"]
            await check_next_spawn(contexts, {"key": "parent"})


class TestFaultsOfTheTask:
    """The task itself cannot run: its coroutine was closed, or it is cancelled at once."""

    @pytest.mark.asyncio
    async def test_closed_coroutine(self) -> None:
        """A task made from a closed coroutine fails with asyncio's error; the creator is
        unchanged and the next spawn works."""
        async with attached() as contexts:
            contexts.write("key", "parent")
            state = CreatorState.now(contexts)
            coro = child_view(contexts)
            coro.close()
            task = asyncio.create_task(coro)
            with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
                await task
            state.assert_same(CreatorState.now(contexts))
            await check_next_spawn(contexts, {"key": "parent"})

    @pytest.mark.asyncio
    async def test_task_cancelled_before_first_step(self) -> None:
        """A task cancelled before its first step never runs; the data it was given is
        freed with it; the creator is unchanged and the next spawn works."""
        async with attached() as contexts:
            contexts.write("key", "parent")
            state = CreatorState.now(contexts)
            ran = False

            async def child() -> None:
                nonlocal ran
                ran = True

            task = asyncio.create_task(child())
            assert task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert False is ran
            state.assert_same(CreatorState.now(contexts))
            task_ref = weakref.ref(task)
            del task
            await asyncio.sleep(0)
            gc.collect()
            assert None is task_ref()
            await check_next_spawn(contexts, {"key": "parent"})

    @pytest.mark.asyncio
    async def test_parent_writes_after_failed_spawns_follow_the_policies(self) -> None:
        """After a failed spawn, a child spawned next sees the parent's later writes under
        ``Share()`` and ``ChainMap()`` only, as the policy table says: the failure left no
        stale sharing behind (``Copy()`` shares its dict copy-on-write)."""
        factory = FaultyFactory()
        async with attached(factory) as contexts:
            contexts.write("key", "parent")
            error = Boom("no task")
            with factory.switch.failing(error):
                assert_spawn_fails(contexts, error, None)
            go = asyncio.Event()

            async def late_reader() -> dict[str, Any]:
                await go.wait()
                return {name: ctx.get("later") for name, ctx in contexts.by_name.items()}

            reader = asyncio.create_task(late_reader())
            await asyncio.sleep(0)
            contexts.write("later", "written")
            go.set()
            seen = await reader
            expected = {
                name: "written" if name in SEES_LATER_PARENT_WRITES else None
                for name in contexts.by_name
            }
            assert expected == seen


class TestLoopClosedWithPendingTasks:
    """A loop is closed while tasks that have data are still pending."""

    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_close_with_pending_tasks(self, kind: str, caplog: pytest.LogCaptureFixture) -> None:
        """Closing a loop with pending tasks: attaching to it again raises EventLoopError
        saying it is closed; the contexts keep working on a new loop with correct data; the
        dropped loop is collected with its registry entries."""
        contexts = Contexts()
        loop = new_loop(kind)
        contexts.attach(loop)

        async def pending(index: int) -> None:
            contexts.write("index", index)
            await asyncio.get_running_loop().create_future()  # never done

        async def main() -> None:
            contexts.write("key", "main")
            for index in range(10):
                asyncio.create_task(pending(index))
            await asyncio.sleep(0)

        loop.run_until_complete(main())
        loop.close()

        for ctx in contexts.by_name.values():
            with pytest.raises(EventLoopError, match="closed loop"):
                ctx.attach(loop)
        loop_ref = weakref.ref(loop)
        del loop
        gc.collect()
        assert None is loop_ref()
        assert dict.fromkeys(contexts.by_name, ()) == {
            name: ctx.registry.loops(ctx) for name, ctx in contexts.by_name.items()
        }
        assert "Task was destroyed but it is pending" in caplog.text

        async def again() -> dict[str, Any]:
            contexts.write("key", "again")
            return await asyncio.create_task(child_view(contexts))

        fresh = new_loop(kind)
        contexts.attach(fresh)
        try:
            seen = fresh.run_until_complete(again())
        finally:
            fresh.close()
        assert {name: {"key": "again"} for name in contexts.by_name} == seen

    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_runner_cancels_pending_tasks_that_still_see_their_data(self, kind: str) -> None:
        """When ``asyncio.Runner`` closes with tasks pending, it cancels them; their cleanup
        code (``finally:``) still sees each task's own data."""
        contexts = Contexts()
        cleaned: dict[int, dict[str, dict[str, Any]]] = {}

        async def pending(index: int) -> None:
            contexts.write("index", index)
            try:
                await asyncio.get_running_loop().create_future()  # never done
            finally:
                cleaned[index] = contexts.contents()

        async def main() -> None:
            contexts.write("main", True)
            for index in range(10):
                asyncio.create_task(pending(index))
            await asyncio.sleep(0)

        def make_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop(kind)
            contexts.attach(loop)
            return loop

        with asyncio.Runner(loop_factory=make_loop) as runner:
            runner.run(main())

        def expected(index: int) -> dict[str, dict[str, Any]]:
            return {
                # Under Share() every task writes the main task's mapping: the last write wins.
                name: {"main": True, "index": 9 if name == "Share" else index}
                for name in contexts.by_name
            }

        assert {index: expected(index) for index in range(10)} == cleaned
