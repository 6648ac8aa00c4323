"""Tests for ``TaskFactoryWrapper``: installing it, calling it as asyncio does, its errors."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

import aiocontext
from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    TaskContextError,
    TaskFactoryError,
    TaskFactoryWrapper,
)
from conftest import CoroutineLike, skip_if_eager_factory_broken

_K = TypeVar("_K")
_V = TypeVar("_V")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

SRC_DIR = os.path.normcase(os.path.dirname(os.path.abspath(aiocontext.__file__)))
THIS_FILE = os.path.normcase(os.path.abspath(__file__))

needs_eager = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12"
)


class Boom(Exception):
    """What the failing factory of these tests raises."""


class RecordingFactory:
    """An inner task factory that records each call and makes a plain ``asyncio.Task``."""

    def __init__(self) -> None:
        self.calls: list[tuple[asyncio.AbstractEventLoop, object, dict[str, Any]]] = []

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
    ) -> asyncio.Task[Any]:
        self.calls.append((loop, coro, dict(kwargs)))
        name, context = kwargs.get("name"), kwargs.get("context")
        return asyncio.Task(coro, loop=loop, name=name, context=context)


class MarkedRoot(PropagationPolicy):
    """Copies like ``Copy()``, but a root is recognisable: ``{"from": "root"}``."""

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        return dict(parent)

    def root(self) -> MutableMapping[Any, Any]:
        return {"from": "root"}


class MyTask(asyncio.Task[Any]):
    """A task subclass, made by a custom factory."""


def custom_factory(
    loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
) -> asyncio.Task[Any]:
    """A custom factory taking keywords (as 3.11+ asyncio passes ``context=``)."""
    return MyTask(coro, loop=loop, **kwargs)


def two_argument_factory(loop: asyncio.AbstractEventLoop, coro: CoroutineLike) -> asyncio.Task[Any]:
    """An old-style factory that accepts no keywords at all."""
    return MyTask(coro, loop=loop)


def failing_factory(
    loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
) -> asyncio.Task[Any]:
    """A factory that always raises."""
    raise Boom("the inner factory failed")


def identities(snapshot: Mapping[contextvars.ContextVar[Any], Any]) -> dict[object, int]:
    """Each variable of a ``contextvars`` snapshot with the identity of its value.

    The snapshot must stay alive while the result is compared, so that ids are not reused.
    """
    return {var: id(value) for var, value in snapshot.items()}


@contextmanager
def restoring_factory(loop: asyncio.AbstractEventLoop) -> Generator[None]:
    """Put the loop's task factory back to ``None`` afterwards, for the test's teardown."""
    try:
        yield
    finally:
        loop.set_task_factory(None)


def create_task_here(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any]:
    """Create a task through ``loop.create_task`` on one fixed line of this file."""
    return loop.create_task(coro)


def asyncio_create_task_here(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Create a task through ``asyncio.create_task`` on one fixed line of this file."""
    return asyncio.create_task(coro)


def source_traceback(task: asyncio.Task[Any]) -> list[tuple[str, int, str]]:
    """The task's debug-mode source traceback as ``(file, line, function)`` triples."""
    frames: list[Any] = getattr(task, "_source_traceback")  # noqa: B009 - private, untyped
    return [(os.path.normcase(frame.filename), frame.lineno, frame.name) for frame in frames]


def under_src(filename: str) -> bool:
    """Whether ``filename`` is part of aiocontext's own source."""
    return filename.startswith(SRC_DIR + os.sep)


async def nothing() -> None:
    """A coroutine that does nothing."""


class TestTaskFactoryWrapperInstall:
    """Installing, finding, uninstalling and configuring the wrapper."""

    def test_install_on_loop_without_factory(self, loop: asyncio.AbstractEventLoop) -> None:
        """install() sets a wrapper as the loop's factory, wrapping ``None`` (plain Task)."""
        wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())

        assert wrapper is loop.get_task_factory()
        assert None is wrapper.inner
        assert wrapper is TaskFactoryWrapper.of(loop)

    def test_install_is_idempotent(self, loop: asyncio.AbstractEventLoop) -> None:
        """A second install() returns the wrapper already installed instead of wrapping it."""
        registry = ContextRegistry()
        first = TaskFactoryWrapper.install(loop, registry)
        second = TaskFactoryWrapper.install(loop, registry)
        third = TaskFactoryWrapper.install(loop, ContextRegistry())

        assert first is second
        assert first is third
        assert first is loop.get_task_factory()
        assert None is first.inner

    def test_install_wraps_custom_factory(self, loop: asyncio.AbstractEventLoop) -> None:
        """A custom factory that takes keywords is wrapped, and still makes the tasks."""
        loop.set_task_factory(custom_factory)
        ctx: Context[str, str] = Context(registry=ContextRegistry())

        async def read() -> str:
            return ctx["k"]

        async def main() -> tuple[type[Any], str]:
            ctx["k"] = "v"
            task = asyncio.create_task(read())
            return type(task), await task

        wrapper = TaskFactoryWrapper.install(loop, ctx.registry)
        ctx.attach(loop)

        assert custom_factory is wrapper.inner
        assert (MyTask, "v") == loop.run_until_complete(main())

    def test_install_wraps_two_argument_factory(self) -> None:
        """An old ``(loop, coro)`` factory is wrapped and works when asyncio passes no keywords.

        The stdlib loop calls the factory without keywords when no ``context=`` is given
        (uvloop always passes ``context=``, so an old factory fails there even without us).
        """
        loop = asyncio.new_event_loop()
        try:
            loop.set_task_factory(two_argument_factory)
            ctx: Context[str, str] = Context(registry=ContextRegistry()).attach(loop)

            async def read() -> str:
                return ctx["k"]

            async def main() -> tuple[type[Any], str, str]:
                ctx["k"] = "v"
                task = loop.create_task(read(), name="old-style")
                return type(task), task.get_name(), await task

            wrapper = TaskFactoryWrapper.of(loop)
            assert wrapper is not None
            assert two_argument_factory is wrapper.inner
            assert (MyTask, "old-style", "v") == loop.run_until_complete(main())
        finally:
            loop.close()

    def test_two_argument_factory_gets_no_name_keyword(self) -> None:
        """As Python 3.14 calls factories, with ``name=`` from ``create_task``: a factory that
        takes no ``name`` is called without it, and the task is named afterwards, as
        asyncio up to 3.13 did; a factory that takes ``name`` (or ``**kwargs``) gets it."""
        loop = asyncio.new_event_loop()
        try:
            wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())
            named: list[str | None] = []

            def takes_name(
                loop: asyncio.AbstractEventLoop, coro: CoroutineLike, *, name: str | None = None
            ) -> asyncio.Task[Any]:
                named.append(name)
                return asyncio.Task(coro, loop=loop, name=name)

            names: list[str] = []
            for inner in (two_argument_factory, takes_name, RecordingFactory()):
                wrapper.inner = inner
                for name in ("given", None):
                    task = wrapper(loop, nothing(), name=name)
                    names.append(task.get_name() if name else "unnamed")
                    loop.run_until_complete(task)
            assert ["given", "unnamed"] * 3 == names
            assert ["given", None] == named
        finally:
            TaskFactoryWrapper.uninstall(loop)
            loop.close()

    def test_factory_without_a_signature_gets_every_keyword(self) -> None:
        """A factory whose signature cannot be read (a builtin) is called with every
        keyword, as asyncio would call it."""
        loop = asyncio.new_event_loop()
        try:
            wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())
            calls: list[dict[str, Any]] = []

            class NoSignature:
                @property
                def __signature__(self) -> inspect.Signature:
                    raise ValueError("no signature")

                def __call__(
                    self, loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
                ) -> asyncio.Task[Any]:
                    calls.append(kwargs)
                    return asyncio.Task(coro, loop=loop, **kwargs)

            wrapper.inner = NoSignature()
            task = wrapper(loop, nothing(), name="n")
            loop.run_until_complete(task)
            assert ([{"name": "n"}], "n") == (calls, task.get_name())
        finally:
            TaskFactoryWrapper.uninstall(loop)
            loop.close()

    @needs_eager
    def test_install_wraps_eager_task_factory(self, loop: asyncio.AbstractEventLoop) -> None:
        """``asyncio.eager_task_factory`` set before install becomes the wrapper's inner."""
        if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
            loop.set_task_factory(asyncio.eager_task_factory)
            wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())

            assert asyncio.eager_task_factory is wrapper.inner

    def test_install_rejects_non_loop(self) -> None:
        """install(), uninstall() and of() raise TypeError for something that is not a loop."""
        not_a_loop: Any = object()

        with pytest.raises(TypeError, match="event loop"):
            TaskFactoryWrapper.install(not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            TaskFactoryWrapper.uninstall(not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            TaskFactoryWrapper.of(not_a_loop)

    def test_install_without_registry_serves_default_registry(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """install(loop) with no registry serves the default one, which Context() uses."""
        wrapper = TaskFactoryWrapper.install(loop)
        ctx: Context[str, str] = Context(name="default-registry")
        try:
            ctx.attach(loop)

            async def read() -> str:
                return ctx["k"]

            async def main() -> str:
                ctx["k"] = "v"
                return await asyncio.create_task(read())

            assert wrapper is TaskFactoryWrapper.of(loop)
            assert "v" == loop.run_until_complete(main())
        finally:
            ctx.detach(loop)

    def test_install_after_factory_was_replaced_wraps_new_factory(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Attaching again after the factory was replaced wraps the replacement."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach(loop)
        loop.set_task_factory(custom_factory)
        ctx.attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)

        async def read() -> str:
            return ctx["k"]

        async def main() -> tuple[type[Any], str]:
            ctx["k"] = "v"
            task = asyncio.create_task(read())
            return type(task), await task

        assert wrapper is not None
        assert custom_factory is wrapper.inner
        assert (MyTask, "v") == loop.run_until_complete(main())

    def test_uninstall_restores_none(self, loop: asyncio.AbstractEventLoop) -> None:
        """uninstall() puts back ``None`` when the loop had no factory."""
        TaskFactoryWrapper.install(loop, ContextRegistry())
        TaskFactoryWrapper.uninstall(loop)

        assert None is loop.get_task_factory()
        assert None is TaskFactoryWrapper.of(loop)

    def test_uninstall_restores_wrapped_factory_exactly(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """uninstall() puts back the very factory object that was wrapped."""
        recorder = RecordingFactory()
        loop.set_task_factory(recorder)
        TaskFactoryWrapper.install(loop, ContextRegistry())
        TaskFactoryWrapper.uninstall(loop)

        assert recorder is loop.get_task_factory()

    @needs_eager
    def test_uninstall_restores_eager_task_factory(self, loop: asyncio.AbstractEventLoop) -> None:
        """uninstall() puts back ``asyncio.eager_task_factory`` itself."""
        if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
            loop.set_task_factory(asyncio.eager_task_factory)
            TaskFactoryWrapper.install(loop, ContextRegistry())
            TaskFactoryWrapper.uninstall(loop)

            assert asyncio.eager_task_factory is loop.get_task_factory()

    def test_uninstall_restores_assigned_inner(self, loop: asyncio.AbstractEventLoop) -> None:
        """uninstall() puts back the inner factory as last assigned."""
        wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())
        wrapper.inner = custom_factory
        TaskFactoryWrapper.uninstall(loop)

        assert custom_factory is loop.get_task_factory()

    def test_uninstall_without_wrapper_is_noop(self, loop: asyncio.AbstractEventLoop) -> None:
        """uninstall() leaves a loop alone whose factory is not a wrapper."""
        loop.set_task_factory(custom_factory)
        TaskFactoryWrapper.uninstall(loop)
        TaskFactoryWrapper.uninstall(loop)

        assert custom_factory is loop.get_task_factory()

    def test_uninstall_detaches_the_loops_contexts(self, loop: asyncio.AbstractEventLoop) -> None:
        """After uninstall() no context of any registry is attached to the loop any more."""
        first, second = ContextRegistry(), ContextRegistry()
        a: Context[str, str] = Context(registry=first).attach(loop)
        b: Context[str, str] = Context(registry=second).attach(loop)
        TaskFactoryWrapper.uninstall(loop)

        assert () == first.contexts(loop)
        assert () == second.contexts(loop)
        assert (False, False) == (a.is_attached(loop), b.is_attached(loop))
        assert ((), ()) == (first.loops(a), second.loops(b))

    @pytest.mark.asyncio
    async def test_tasks_created_after_uninstall_are_not_managed(self) -> None:
        """After uninstall() the context is not attached: a task with no data gets no root."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "v"
        TaskFactoryWrapper.uninstall(asyncio.get_running_loop())

        async def read() -> str:
            return ctx["k"]

        assert False is ctx.is_attached()
        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(), context=contextvars.Context())

    def test_reinstall_after_uninstall_makes_new_wrapper(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Attaching after uninstall() installs a fresh wrapper around the restored factory."""
        loop.set_task_factory(custom_factory)
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach(loop)
        old = TaskFactoryWrapper.of(loop)
        TaskFactoryWrapper.uninstall(loop)
        ctx.attach(loop)
        new = TaskFactoryWrapper.of(loop)

        assert new is not None
        assert old is not new
        assert custom_factory is new.inner
        assert (ctx,) == ctx.registry.contexts(loop)

    def test_of_returns_none_without_wrapper(self, loop: asyncio.AbstractEventLoop) -> None:
        """of() is ``None`` for a loop without factory and for one with another factory."""
        assert None is TaskFactoryWrapper.of(loop)
        loop.set_task_factory(custom_factory)
        assert None is TaskFactoryWrapper.of(loop)

    def test_inner_is_assignable(self, loop: asyncio.AbstractEventLoop) -> None:
        """Assigning ``inner`` makes the wrapper create the next tasks through the new factory."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        recorder = RecordingFactory()
        wrapper.inner = recorder

        async def read() -> str:
            return ctx["k"]

        async def main() -> str:
            ctx["k"] = "v"
            return await asyncio.create_task(read())

        assert recorder is wrapper.inner
        assert "v" == loop.run_until_complete(main())
        assert 2 == len(recorder.calls)  # the main task and its child

        wrapper.inner = None
        assert None is wrapper.inner
        assert "v" == loop.run_until_complete(main())
        assert 2 == len(recorder.calls)

    def test_inner_rejects_non_callable(self, loop: asyncio.AbstractEventLoop) -> None:
        """Assigning a non-callable ``inner`` raises TypeError and keeps the old factory."""
        wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())
        wrapper.inner = custom_factory
        not_callable: Any = 42

        with pytest.raises(TypeError, match="callable"):
            wrapper.inner = not_callable
        assert custom_factory is wrapper.inner

    def test_inner_rejects_wrapper(self, loop: asyncio.AbstractEventLoop) -> None:
        """Assigning a wrapper (itself or another) raises TaskFactoryError and keeps the old."""
        wrapper = TaskFactoryWrapper.install(loop, ContextRegistry())

        with pytest.raises(TaskFactoryError, match="TaskFactoryWrapper"):
            wrapper.inner = wrapper
        with pytest.raises(TaskFactoryError, match="TaskFactoryWrapper"):
            wrapper.inner = TaskFactoryWrapper()
        assert None is wrapper.inner

    def test_constructor_validates_inner(self) -> None:
        """Constructing a wrapper checks ``inner`` like assigning it does."""
        not_callable: Any = "factory"

        with pytest.raises(TypeError, match="callable"):
            TaskFactoryWrapper(not_callable)
        with pytest.raises(TaskFactoryError):
            TaskFactoryWrapper(TaskFactoryWrapper())
        assert custom_factory is TaskFactoryWrapper(custom_factory).inner

    def test_repr(self, loop: asyncio.AbstractEventLoop) -> None:
        """The repr shows the inner factory and the propagated contexts."""
        registry = ContextRegistry()
        a: Context[str, str] = Context(name="a", registry=registry).attach(loop)
        b: Context[str, str] = Context(Share(), name="b", registry=registry).attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)

        assert f"TaskFactoryWrapper(inner=None, contexts=[{a!r}, {b!r}])" == repr(wrapper)
        assert f"TaskFactoryWrapper(inner={custom_factory!r}, contexts=[])" == repr(
            TaskFactoryWrapper(custom_factory)
        )


class TestTaskFactoryWrapperCall:
    """Calling the wrapper: keywords, names, data, as asyncio (up to 3.14) calls it."""

    @pytest.mark.asyncio
    async def test_loop_passes_same_keywords_with_and_without_wrapper(self) -> None:
        """The inner factory gets exactly the keywords the loop would pass it without us."""
        loop = asyncio.get_running_loop()
        with restoring_factory(loop):
            plain = RecordingFactory()
            loop.set_task_factory(plain)
            await loop.create_task(nothing(), name="n")
            await loop.create_task(nothing(), name="n", context=contextvars.copy_context())

            wrapped = RecordingFactory()
            loop.set_task_factory(wrapped)
            Context(registry=ContextRegistry()).attach()
            await loop.create_task(nothing(), name="n")
            await loop.create_task(nothing(), name="n", context=contextvars.copy_context())

        def keys_and_kinds(calls: list[tuple[Any, Any, dict[str, Any]]]) -> list[dict[str, type]]:
            return [{key: type(value) for key, value in kwargs.items()} for _, _, kwargs in calls]

        assert keys_and_kinds(plain.calls) == keys_and_kinds(wrapped.calls)

    @pytest.mark.asyncio
    async def test_explicit_context_reaches_inner_factory_unchanged(self) -> None:
        """``create_task(context=c)`` reaches the inner factory as that very object."""
        loop = asyncio.get_running_loop()
        with restoring_factory(loop):
            recorder = RecordingFactory()
            loop.set_task_factory(recorder)
            Context(registry=ContextRegistry()).attach()
            context = contextvars.copy_context()
            coro = nothing()
            task = loop.create_task(coro, context=context)
            await task

        assert [(loop, coro)] == [(call[0], call[1]) for call in recorder.calls]
        assert context is recorder.calls[0][2]["context"]

    @pytest.mark.asyncio
    async def test_direct_call_passes_every_keyword_unchanged(self) -> None:
        """Called as 3.14 does, with all keywords (future ones too), each reaches the inner."""
        loop = asyncio.get_running_loop()
        recorder = RecordingFactory()
        wrapper = TaskFactoryWrapper(recorder)
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "v"
        context = contextvars.copy_context()
        marker = object()
        coro = nothing()

        task = wrapper(
            loop, coro, name="n", context=context, eager_start=True, some_future_keyword=marker
        )
        await task

        assert 1 == len(recorder.calls)
        called_loop, called_coro, kwargs = recorder.calls[0]
        assert (loop, coro) == (called_loop, called_coro)
        assert {"name", "context", "eager_start", "some_future_keyword"} == set(kwargs)
        assert "n" == kwargs["name"]
        assert context is kwargs["context"]
        assert True is kwargs["eager_start"]
        assert marker is kwargs["some_future_keyword"]

    @pytest.mark.asyncio
    async def test_direct_call_passes_none_keywords_unchanged(self) -> None:
        """Keywords whose value is ``None`` (uvloop passes ``context=None``) reach the inner."""
        loop = asyncio.get_running_loop()
        recorder = RecordingFactory()
        wrapper = TaskFactoryWrapper(recorder)
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "v"

        async def read() -> str:
            return ctx["k"]

        assert "v" == await wrapper(loop, read(), name=None, context=None, eager_start=None)
        assert {"name": None, "context": None, "eager_start": None} == recorder.calls[0][2]

    @pytest.mark.asyncio
    async def test_direct_call_without_keywords_gives_none_to_two_argument_factory(self) -> None:
        """A two-argument inner factory works when the wrapper is called with no keywords."""
        loop = asyncio.get_running_loop()
        wrapper = TaskFactoryWrapper(two_argument_factory)
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "v"

        async def read() -> str:
            return ctx["k"]

        task = wrapper(loop, read())

        assert MyTask is type(task)
        assert "v" == await task

    @pytest.mark.asyncio
    async def test_direct_call_with_unknown_keyword_and_no_inner_propagates_typeerror(
        self,
    ) -> None:
        """With no inner factory, a keyword ``asyncio.Task`` does not know raises its TypeError."""
        loop = asyncio.get_running_loop()
        wrapper = TaskFactoryWrapper()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "v"
        before = dict(contextvars.copy_context())
        coro = nothing()

        with pytest.raises(TypeError):
            wrapper(loop, coro, some_future_keyword=1)
        coro.close()

        assert identities(before) == identities(dict(contextvars.copy_context()))

    @pytest.mark.asyncio
    async def test_name_survives_loop_create_task(self) -> None:
        """``loop.create_task(name=...)`` names the task, whatever the inner factory."""
        loop = asyncio.get_running_loop()
        Context(registry=ContextRegistry()).attach()
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        names: list[str] = []
        for inner in (None, RecordingFactory(), custom_factory):
            wrapper.inner = inner
            task = loop.create_task(nothing(), name=f"task-{len(names)}")
            names.append(task.get_name())
            await task
        task = asyncio.create_task(nothing(), name="via-asyncio")
        names.append(task.get_name())
        await task

        assert ["task-0", "task-1", "task-2", "via-asyncio"] == names

    @pytest.mark.asyncio
    async def test_name_survives_direct_name_keyword(self) -> None:
        """``name=`` passed to the wrapper directly (as 3.14 does) names the task."""
        loop = asyncio.get_running_loop()
        Context(registry=ContextRegistry()).attach()
        names: list[str] = []
        for inner in (None, RecordingFactory()):
            task = TaskFactoryWrapper(inner)(loop, nothing(), name="direct")
            names.append(task.get_name())
            await task

        assert ["direct", "direct"] == names

    @pytest.mark.asyncio
    async def test_direct_call_without_context_gives_task_creators_data(self) -> None:
        """Called directly without ``context=``, the task starts with its creator's data."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> str:
            value = ctx["k"]
            ctx["k"] = "child"
            return value

        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        for inner in (None, RecordingFactory()):
            wrapper.inner = inner
            assert "parent" == await wrapper(loop, child())
            assert "parent" == await wrapper(loop, child(), name="n", context=None)
        assert "parent" == ctx["k"]

    @pytest.mark.asyncio
    async def test_direct_call_with_context_gives_task_that_contexts_data(self) -> None:
        """Called with ``context=c``, the task starts with the data held in ``c``."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()

        async def capture() -> tuple[contextvars.Context, dict[str, str]]:
            ctx["k"] = "captured"
            return contextvars.copy_context(), dict(ctx.data())

        context, captured_data = await asyncio.create_task(capture())
        ctx["k"] = "caller"

        async def child() -> str:
            value = ctx["k"]
            ctx["k"] = "child"
            return value

        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        results: list[str] = []
        for inner in (None, RecordingFactory()):
            wrapper.inner = inner
            results.append(await wrapper(loop, child(), context=context.copy()))

        assert ["captured", "captured"] == results
        assert {"k": "captured"} == captured_data
        assert "caller" == ctx["k"]

    @pytest.mark.asyncio
    async def test_context_without_data_gives_root(self) -> None:
        """A ``context=`` holding no data for the context gives the task ``policy.root()``."""
        ctx: Context[str, str] = Context(MarkedRoot(), registry=ContextRegistry()).attach()
        ctx["k"] = "caller"

        async def child() -> dict[str, str]:
            return dict(ctx)

        task = asyncio.create_task(child(), context=contextvars.Context())

        assert {"from": "root"} == await task
        assert {"from": "root", "k": "caller"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_context_that_is_entered_shares_data(self) -> None:
        """A task created with the ``contextvars`` context its creator runs in sees its data."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "creator"
        context = contextvars.copy_context()

        async def child() -> str:
            return ctx["k"]

        def spawn() -> asyncio.Task[str]:
            return loop.create_task(child(), context=context)

        task = context.run(spawn)

        assert "creator" == await task

    def test_task_created_outside_any_task_gets_root(self, loop: asyncio.AbstractEventLoop) -> None:
        """A task created by code that is not a task (loop not running) starts with the root."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach(loop)

        async def write(value: str) -> MutableMapping[str, str]:
            ctx["k"] = value
            return ctx.data()

        first = loop.run_until_complete(write("first"))
        second = loop.run_until_complete(write("second"))

        assert ({"k": "first"}, {"k": "second"}) == (first, second)
        assert first is not second

    @pytest.mark.asyncio
    async def test_callback_spawn_gets_root_without_adoption(self) -> None:
        """A task created from a callback (no current task) starts with the root data."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        spawned: asyncio.Future[asyncio.Task[dict[str, str]]] = loop.create_future()

        async def child() -> dict[str, str]:
            ctx["k"] = "child"
            return dict(ctx)

        def callback() -> None:
            spawned.set_result(loop.create_task(child()))

        loop.call_soon(callback, context=contextvars.Context())
        task = await spawned

        assert {"k": "child"} == await task
        assert {} == dict(ctx)

    @pytest.mark.asyncio
    async def test_share_holds_when_parent_spawns_before_touching(self) -> None:
        """A parent that never touched a Share context gets its root when it spawns."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

        async def child() -> None:
            ctx["k"] = "child"

        async def parent() -> dict[str, str]:
            await asyncio.create_task(child())
            return dict(ctx)

        assert {"k": "child"} == await asyncio.create_task(parent())


ALL_POLICIES = [Copy(), DeepCopy(), ChainMap(), Share()]


class TestTaskFactoryWrapperCreatorData:
    """Spawning a child does not change the creator's own data as other code sees it."""

    @pytest.mark.parametrize("policy", ALL_POLICIES, ids=repr)
    @pytest.mark.asyncio
    async def test_spawn_keeps_creator_data_shared_with_its_helpers(
        self, policy: PropagationPolicy
    ) -> None:
        """After the creator spawned a child, its ``to_thread`` workers and callbacks (code
        running in copies of its ``contextvars`` context) still see its data, and their
        writes reach it exactly when they did before any spawn: under Share() only."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        ctx["k"] = "task"
        await asyncio.create_task(nothing())

        def write(value: str) -> None:
            ctx["k"] = value

        await asyncio.to_thread(write, "thread")
        from_thread = ctx["k"]
        await asyncio.create_task(nothing())
        done: asyncio.Future[None] = loop.create_future()

        def callback() -> None:
            write("callback")
            done.set_result(None)

        loop.call_soon(callback)
        await done

        if policy == Share():
            assert ("thread", "callback") == (from_thread, ctx["k"])
        else:
            assert ("task", "task") == (from_thread, ctx["k"])

    @pytest.mark.parametrize("policy", ALL_POLICIES, ids=repr)
    @pytest.mark.asyncio
    async def test_context_snapshot_follows_creator_writes_after_a_spawn(
        self, policy: PropagationPolicy
    ) -> None:
        """A task created with ``context=snapshot`` (a ``copy_context()``) sees what the
        policy says of the creator's later writes, whether or not the creator spawned another
        child in between: under Copy() and DeepCopy() not (the snapshot is a copy), under
        Share() and ChainMap() yes (the creator's mapping, or its own layer, is shown)."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()

        async def read() -> str:
            return ctx["k"]

        results: list[str] = []
        for spawn_between in (False, True):
            ctx["k"] = "before"
            snapshot = contextvars.copy_context()
            if spawn_between:
                await asyncio.create_task(nothing())
            ctx["k"] = "after"
            results.append(await asyncio.create_task(read(), context=snapshot))

        expected = "after" if policy in (Share(), ChainMap()) else "before"
        assert [expected, expected] == results


class TestTaskFactoryWrapperErrors:
    """A failing inner factory or policy leaves the creator as it was."""

    @pytest.mark.asyncio
    async def test_inner_error_propagates_and_creator_context_is_unchanged(self) -> None:
        """The inner factory's exception propagates; the caller's contextvars are untouched.

        One context has data in the caller, the other (Share) was never touched, which is
        the case where a successful spawn would give the caller its root.
        """
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        copied: Context[str, str] = Context(registry=registry).attach()
        shared: Context[str, str] = Context(Share(), registry=registry).attach()
        copied["k"] = "v"
        data = copied.data()
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        wrapper.inner = failing_factory
        before = dict(contextvars.copy_context())
        coro = nothing()

        with pytest.raises(Boom):
            asyncio.create_task(coro)
        coro.close()

        after = dict(contextvars.copy_context())
        assert identities(before) == identities(after)
        assert copied.data() == data
        assert {"k": "v"} == data

        wrapper.inner = None

        async def read() -> tuple[str, dict[str, str]]:
            shared["s"] = "child"
            return copied["k"], dict(shared)

        assert ("v", {"s": "child"}) == await asyncio.create_task(read())
        assert {"s": "child"} == dict(shared)

    @pytest.mark.asyncio
    async def test_inner_error_leaves_explicit_context_unchanged(self) -> None:
        """With ``context=c``, the inner factory's exception leaves ``c`` exactly as it was."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        copied: Context[str, str] = Context(registry=registry).attach()
        other: Context[str, str] = Context(registry=registry).attach()
        copied["k"] = "v"
        with_data = contextvars.copy_context()
        without_data = contextvars.Context()
        before = dict(with_data)
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        wrapper.inner = failing_factory

        for context in (with_data, without_data):
            coro = nothing()
            with pytest.raises(Boom):
                loop.create_task(coro, context=context)
            coro.close()

        assert identities(before) == identities(dict(with_data))
        assert {} == dict(without_data)

        wrapper.inner = None

        async def read() -> tuple[str, dict[str, str]]:
            return copied["k"], dict(other)

        assert ("v", {}) == await loop.create_task(read(), context=with_data)

    @pytest.mark.asyncio
    async def test_policy_error_propagates_and_creator_context_is_unchanged(self) -> None:
        """A policy failing in ``inherit`` after another context's data was set is undone."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        first: Context[str, Any] = Context(registry=registry).attach()
        deep: Context[str, Any] = Context(DeepCopy(), registry=registry).attach()
        first["k"] = "v"
        deep["lock"] = threading.Lock()  # cannot be deep-copied
        before = dict(contextvars.copy_context())
        explicit = contextvars.copy_context()
        explicit_before = dict(explicit)

        coro = nothing()
        with pytest.raises(TypeError):
            asyncio.create_task(coro)
        with pytest.raises(TypeError):
            loop.create_task(coro, context=explicit)
        coro.close()

        assert identities(before) == identities(dict(contextvars.copy_context()))
        assert identities(explicit_before) == identities(dict(explicit))

        del deep["lock"]

        async def read() -> str:
            return str(first["k"])

        assert "v" == await asyncio.create_task(read())


class TestTaskFactoryWrapperDebug:
    """In debug mode a task's source traceback ends where the user created it."""

    def test_source_traceback_of_loop_create_task(self, new_loop: LoopFactory) -> None:
        """With the wrapper, the traceback ends on the user's line, as with no factory."""
        plain, wrapped = new_loop(), new_loop()
        try:
            plain.set_debug(True)
            wrapped.set_debug(True)
            Context(registry=ContextRegistry()).attach(wrapped)

            expected = source_traceback(create_task_here(plain, nothing()))[-1]
            frames = source_traceback(create_task_here(wrapped, nothing()))
            explicit = source_traceback(
                wrapped.create_task(nothing(), context=contextvars.Context())
            )

            assert (THIS_FILE, "create_task_here") == (expected[0], expected[2])
            assert expected == frames[-1]
            assert [] == [frame for frame in frames if under_src(frame[0])]
            assert THIS_FILE == explicit[-1][0]
            assert [] == [frame for frame in explicit if under_src(frame[0])]
        finally:
            for loop in (plain, wrapped):
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

    @pytest.mark.asyncio
    async def test_source_traceback_of_asyncio_create_task(self) -> None:
        """``asyncio.create_task`` gives the same traceback end with the wrapper as without."""
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        try:
            without = asyncio_create_task_here(nothing())
            Context(registry=ContextRegistry()).attach()
            with_wrapper = asyncio_create_task_here(nothing())
            await asyncio.gather(without, with_wrapper)
        finally:
            loop.set_debug(False)

        frames = source_traceback(with_wrapper)
        assert source_traceback(without)[-1] == frames[-1]
        assert [] == [frame for frame in frames if under_src(frame[0])]

    @pytest.mark.asyncio
    async def test_source_traceback_with_custom_inner_does_not_end_in_wrapper(self) -> None:
        """With a custom inner factory the traceback's last frame is not aiocontext's."""
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        try:
            Context(registry=ContextRegistry()).attach()
            wrapper = TaskFactoryWrapper.of(loop)
            assert wrapper is not None
            wrapper.inner = custom_factory
            task = create_task_here(loop, nothing())
            await task
        finally:
            loop.set_debug(False)

        assert (THIS_FILE, "custom_factory") == (
            source_traceback(task)[-1][0],
            source_traceback(task)[-1][2],
        )


@needs_eager
class TestTaskFactoryWrapperEager:
    """``asyncio.eager_task_factory`` as the inner factory (Python 3.12+)."""

    @pytest.mark.asyncio
    async def test_eager_child_first_step_sees_data(self) -> None:
        """An eager child's first step, run inside create_task, sees its data."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
            ctx["k"] = "parent"
            seen: list[str] = []

            async def child() -> None:
                seen.append(ctx["k"])
                ctx["k"] = "child"

            task = asyncio.create_task(child())

            assert True is task.done()  # it really ran eagerly, to completion
            assert ["parent"] == seen
            assert "parent" == ctx["k"]
            await task

    @pytest.mark.asyncio
    async def test_nested_eager_spawns(self) -> None:
        """Eager children of eager children each start with their own parent's data."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
            ctx["depth"] = 0
            seen: list[int] = []

            async def descend() -> None:
                depth = ctx["depth"]
                seen.append(depth)
                if depth < 3:
                    ctx["depth"] = depth + 1
                    task = asyncio.create_task(descend())
                    assert task.done()
                    await task

            await asyncio.create_task(descend())

            assert [0, 1, 2, 3] == seen
            assert 0 == ctx["depth"]

    @pytest.mark.asyncio
    async def test_eager_share_child_writes_reach_untouched_parent(self) -> None:
        """Share holds for eager children of a parent that never touched the context."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

            async def child() -> None:
                ctx["k"] = "child"

            async def parent() -> dict[str, str]:
                await asyncio.create_task(child())
                return dict(ctx)

            assert {"k": "child"} == await asyncio.create_task(parent())

    @pytest.mark.asyncio
    async def test_eager_with_explicit_context(self) -> None:
        """An eager child created with ``context=c`` sees ``c``'s data in its first step."""
        loop = asyncio.get_running_loop()
        skip_if_eager_factory_broken(loop)
        with restoring_factory(loop):
            if sys.version_info >= (3, 12):  # true under needs_eager (mypy ignores skipif)
                loop.set_task_factory(asyncio.eager_task_factory)
            ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()

            async def capture() -> contextvars.Context:
                ctx["k"] = "captured"
                return contextvars.copy_context()

            context = await asyncio.create_task(capture())
            ctx["k"] = "caller"
            seen: list[str] = []

            async def child() -> None:
                seen.append(ctx["k"])

            task = asyncio.create_task(child(), context=context)

            assert True is task.done()
            assert ["captured"] == seen

    @pytest.mark.asyncio
    async def test_eager_start_keyword_without_inner(self) -> None:
        """``eager_start=True`` passed directly (as 3.14 does) starts the task with its data."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["k"] = "parent"
        seen: list[str] = []

        async def child() -> None:
            seen.append(ctx["k"])

        task = TaskFactoryWrapper()(loop, child(), eager_start=True)

        assert True is task.done()
        assert ["parent"] == seen


class TestTaskFactoryWrapperExplicitContext:
    """``context=`` given by asyncio's own APIs: TaskGroup, Runner."""

    @pytest.mark.asyncio
    async def test_taskgroup_create_task_with_context(self) -> None:
        """``TaskGroup.create_task(context=c)`` starts the task with the data held in ``c``."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()

        async def capture() -> tuple[contextvars.Context, dict[str, str]]:
            ctx["who"] = "other"
            return contextvars.copy_context(), dict(ctx.data())

        context, other_data = await asyncio.create_task(capture())
        ctx["who"] = "main"

        async def child() -> str:
            who = ctx["who"]
            ctx["who"] = "child"
            return who

        async with asyncio.TaskGroup() as group:
            task = group.create_task(child(), context=context)
            plain = group.create_task(child())

        assert ("other", "main") == (task.result(), plain.result())
        assert {"who": "other"} == other_data
        assert "main" == ctx["who"]

    def test_runner_main_task_uses_runner_context(self, new_loop: LoopFactory) -> None:
        """The Runner's main task (created with ``context=``) has data from its start, and a
        ``run(context=c)`` main task starts with the data held in ``c``."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())

        async def first() -> contextvars.Context:
            ctx["run"] = "first"
            return contextvars.copy_context()

        async def read() -> str | None:
            return ctx.get("run")

        with asyncio.Runner(loop_factory=aiocontext.loop_factory(ctx, base=new_loop)) as runner:
            captured = runner.run(first())
            from_runner_context = runner.run(read())
            from_captured = runner.run(read(), context=captured)
            from_empty = runner.run(read(), context=contextvars.Context())

        assert ("first", "first", None) == (from_runner_context, from_captured, from_empty)
