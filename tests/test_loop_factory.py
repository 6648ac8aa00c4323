"""Tests for ``loop_factory``: loops that have contexts attached before any task exists."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar, cast

import pytest
import uvloop

from aiocontext import (
    Context,
    ContextRegistry,
    EventLoopError,
    PropagationPolicy,
    Share,
    TaskFactoryWrapper,
    loop_factory,
)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

_K = TypeVar("_K")
_V = TypeVar("_V")


class RecordingRoot(PropagationPolicy):
    """Copies like ``Copy()`` and records every root mapping it makes."""

    def __init__(self) -> None:
        self.roots: list[MutableMapping[Any, Any]] = []

    def inherit(self, parent: MutableMapping[_K, _V], /) -> MutableMapping[_K, _V]:
        return dict(parent)

    def root(self) -> MutableMapping[Any, Any]:
        data: dict[Any, Any] = {}
        self.roots.append(data)
        return data


class UnattachableLoop(asyncio.SelectorEventLoop):
    """A loop on which installing a task factory fails."""

    def set_task_factory(self, factory: Any) -> None:
        raise RuntimeError("this loop refuses task factories")


def custom_base() -> asyncio.AbstractEventLoop:
    """A ``base`` of our own."""
    return asyncio.new_event_loop()


class TestLoopFactory:
    """Building loops with contexts attached, for asyncio.run and asyncio.Runner."""

    def test_runner_main_task_has_root_before_first_step(self, new_loop: LoopFactory) -> None:
        """With asyncio.Runner, the main task's root data exists before its first step."""
        policy = RecordingRoot()
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry())

        async def main() -> tuple[int, bool]:
            roots_before_access = len(policy.roots)
            data = ctx.data()
            return roots_before_access, data is policy.roots[0]

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
            assert (1, True) == runner.run(main())

    def test_runner_main_task_data_is_seen_by_thread_worker(self, new_loop: LoopFactory) -> None:
        """A ``to_thread`` worker started as the main task's first action sees its data."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry())

        def in_thread() -> MutableMapping[str, str]:
            ctx["from"] = "thread"
            return ctx.data()

        async def main() -> tuple[bool, dict[str, str]]:
            seen = await asyncio.to_thread(in_thread)
            return seen is ctx.data(), dict(ctx)

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
            assert (True, {"from": "thread"}) == runner.run(main())

    def test_default_executor_starts_workers_clean(self, new_loop: LoopFactory) -> None:
        """The loop's default executor runs plain calls clean: ``run_in_executor(None, ...)``
        from a request sees no data, a call's own ``contextvars`` writes do not reach the
        next call on the same worker, no worker keeps a request's data alive (whether or not
        threads inherit context), and ``to_thread`` still passes the caller's data."""
        ctx: Context[str, object] = Context(Share(), registry=ContextRegistry())
        marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

        class Payload:
            """A value whose lifetime the test watches."""

        def read() -> object:
            try:
                return ctx["payload"]
            except EventLoopError:  # a thread without data
                return "no data"

        def mark() -> str:
            before = marker.get()
            marker.set("set by an earlier call")
            return before

        async def request(payload: object) -> tuple[object, bool, str]:
            ctx["payload"] = payload
            loop = asyncio.get_running_loop()
            plain = await loop.run_in_executor(None, read)
            passed = await asyncio.to_thread(read)
            return plain, passed is payload, await loop.run_in_executor(None, mark)

        async def main() -> tuple[list[tuple[object, bool, str]], bool]:
            payloads = [Payload(), Payload()]
            alive = weakref.ref(payloads[0])
            # One root task after the other: the second request reuses the worker.
            results = [
                await asyncio.create_task(request(payload), context=contextvars.Context())
                for payload in payloads
            ]
            del payloads
            gc.collect()
            return results, alive() is None

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
            results, freed = runner.run(main())
        assert [("no data", True, "unset")] * 2 == results
        assert freed

    def test_runner_main_task_children_inherit(self, new_loop: LoopFactory) -> None:
        """The main task of a Runner passes its data to its children."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())

        async def child() -> str:
            return ctx["k"]

        async def main() -> tuple[bool, str]:
            ctx["k"] = "v"
            return ctx.is_attached(), await asyncio.create_task(child())

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
            assert (True, "v") == runner.run(main())

    @pytest.mark.skipif(
        sys.version_info < (3, 12), reason="asyncio.run(loop_factory=...) is new in Python 3.12"
    )
    def test_asyncio_run_main_task_has_root_before_first_step(self, new_loop: LoopFactory) -> None:
        """With asyncio.run(loop_factory=...), the main task has its data from its start."""
        policy = RecordingRoot()
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry())

        async def child() -> str:
            return ctx["k"]

        async def main() -> tuple[int, bool, str]:
            roots_before_access = len(policy.roots)
            is_root = ctx.data() is policy.roots[0]
            ctx["k"] = "v"
            return roots_before_access, is_root, await asyncio.create_task(child())

        if sys.version_info >= (3, 12):  # true under the skipif marker, which mypy ignores
            assert (1, True, "v") == asyncio.run(
                main(), loop_factory=loop_factory(ctx, base=new_loop)
            )

    def test_default_base_makes_stdlib_loop(self) -> None:
        """Without ``base``, loops come from ``asyncio.new_event_loop``."""
        registry = ContextRegistry()
        ctx: Context[str, str] = Context(registry=registry)
        loop = loop_factory(ctx)()
        reference = asyncio.new_event_loop()
        try:
            assert type(reference) is type(loop)
            assert (ctx,) == registry.contexts(loop)
        finally:
            loop.close()
            reference.close()

    def test_uvloop_base(self) -> None:
        """``base=uvloop.new_event_loop`` makes uvloop loops with the contexts attached."""
        registry = ContextRegistry()
        ctx: Context[str, str] = Context(registry=registry)

        async def child() -> str:
            return ctx["k"]

        async def main() -> tuple[bool, str]:
            ctx["k"] = "v"
            running = asyncio.get_running_loop()
            return isinstance(running, uvloop.Loop), await asyncio.create_task(child())

        factory = loop_factory(ctx, base=uvloop.new_event_loop)
        loop = factory()
        try:
            assert isinstance(loop, uvloop.Loop)
            assert (ctx,) == registry.contexts(loop)
            assert isinstance(loop.get_task_factory(), TaskFactoryWrapper)
        finally:
            loop.close()
        with asyncio.Runner(loop_factory=factory) as runner:
            assert (True, "v") == runner.run(main())

    def test_each_call_makes_new_attached_loop(self, new_loop: LoopFactory) -> None:
        """Every call makes a fresh loop, with the contexts attached to it."""
        registry = ContextRegistry()
        ctx: Context[str, str] = Context(registry=registry)
        factory = loop_factory(ctx, base=new_loop)
        first, second = factory(), factory()
        try:
            assert first is not second
            assert [(ctx,), (ctx,)] == [registry.contexts(first), registry.contexts(second)]
        finally:
            first.close()
            second.close()

    def test_several_contexts_attached_in_order(self, new_loop: LoopFactory) -> None:
        """Several contexts are all attached, in the order given."""
        registry = ContextRegistry()
        other_registry = ContextRegistry()
        a: Context[str, str] = Context(name="a", registry=registry)
        b: Context[str, str] = Context(name="b", registry=registry)
        c: Context[str, str] = Context(name="c", registry=other_registry)
        d: Context[str, str] = Context(name="d", registry=registry)
        loop = loop_factory(b, c, a, d, base=new_loop)()
        try:
            assert (b, a, d) == registry.contexts(loop)
            assert (c,) == other_registry.contexts(loop)
        finally:
            loop.close()

    def test_no_contexts(self, new_loop: LoopFactory) -> None:
        """With no contexts the factory just makes loops."""
        loop = loop_factory(base=new_loop)()
        try:
            assert False is loop.is_closed()
        finally:
            loop.close()

    def test_non_context_raises_type_error(self) -> None:
        """A positional argument that is not a Context raises TypeError at once."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        not_a_context: Any = {"k": "v"}

        with pytest.raises(TypeError, match="Context"):
            loop_factory(ctx, not_a_context)
        with pytest.raises(TypeError, match="Context"):
            loop_factory(Share())  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

    def test_non_callable_base_raises_type_error(self) -> None:
        """A ``base`` that is not callable raises TypeError at once."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        not_callable: Any = asyncio.new_event_loop.__name__

        with pytest.raises(TypeError, match="callable"):
            loop_factory(ctx, base=not_callable)

    def test_base_returning_non_loop_raises_type_error(self) -> None:
        """Calling the factory raises TypeError when ``base`` returns something else."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        base = cast(Callable[[], asyncio.AbstractEventLoop], object)

        with pytest.raises(TypeError, match="event loop"):
            loop_factory(ctx, base=base)()

    def test_failed_attach_closes_loop(self) -> None:
        """If attaching fails, the new loop is closed and the error propagates."""
        ctx: Context[str, str] = Context(registry=ContextRegistry())
        made: list[asyncio.AbstractEventLoop] = []

        def base() -> asyncio.AbstractEventLoop:
            loop = UnattachableLoop()
            made.append(loop)
            return loop

        with pytest.raises(RuntimeError, match="refuses"):
            loop_factory(ctx, base=base)()
        assert [True] == [loop.is_closed() for loop in made]

    def test_repr(self) -> None:
        """The repr shows the contexts and the base."""
        registry = ContextRegistry()
        a: Context[str, str] = Context(name="a", registry=registry)
        b: Context[str, str] = Context(Share(), name="b", registry=registry)

        assert f"loop_factory({a!r}, {b!r}, base=new_event_loop)" == repr(loop_factory(a, b))
        assert f"loop_factory({a!r}, base=custom_base)" == repr(loop_factory(a, base=custom_base))
        assert "loop_factory(base=new_event_loop)" == repr(loop_factory())


class TestLoopFactoryThreads:
    """The same context on loops in several threads at once."""

    THREADS = 4

    def test_same_context_in_several_threads_is_isolated(self, new_loop: LoopFactory) -> None:
        """Four threads each run a loop with the same context attached, all at the same time;
        every thread's tasks see only that thread's data."""
        registry = ContextRegistry()
        ctx: Context[str, int] = Context(registry=registry)
        all_running = threading.Barrier(self.THREADS + 1)
        checked = threading.Barrier(self.THREADS + 1)
        results: dict[int, list[int]] = {}
        errors: list[BaseException] = []

        async def child() -> int:
            await asyncio.sleep(0)
            number = ctx["n"]
            ctx["n"] = -1  # a child's write stays in the child (Copy)
            return number

        async def main(number: int) -> list[int]:
            ctx["n"] = number
            await asyncio.to_thread(all_running.wait, 10)
            await asyncio.to_thread(checked.wait, 10)
            children = await asyncio.gather(*(child() for _ in range(10)))
            return [*children, ctx["n"]]

        def worker(number: int) -> None:
            try:
                with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
                    results[number] = runner.run(main(number))
            except BaseException as error:  # reported by the test thread
                errors.append(error)
                all_running.abort()
                checked.abort()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(self.THREADS)]
        for thread in threads:
            thread.start()
        try:
            all_running.wait(10)
            loops_while_running = len(registry.loops(ctx))
        finally:
            checked.wait(10)
            for thread in threads:
                thread.join()

        assert [] == errors
        assert self.THREADS == loops_while_running
        assert {n: [n] * 11 for n in range(self.THREADS)} == results

    @pytest.mark.skipif(
        sys.version_info < (3, 12), reason="asyncio.run(loop_factory=...) is new in Python 3.12"
    )
    def test_asyncio_run_in_several_threads_is_isolated(self) -> None:
        """asyncio.run in four threads (two stdlib, two uvloop loops) with one Share context:
        each thread's task tree shares only its own data."""
        ctx: Context[str, list[int]] = Context(Share(), registry=ContextRegistry())
        started = threading.Barrier(self.THREADS)
        results: dict[int, list[int]] = {}
        errors: list[BaseException] = []
        bases: list[LoopFactory] = [asyncio.new_event_loop, uvloop.new_event_loop] * 2

        async def child(number: int) -> None:
            await asyncio.sleep(0)
            ctx["seen"].append(number)

        async def main(number: int) -> list[int]:
            ctx["seen"] = [number]
            await asyncio.to_thread(started.wait, 10)
            await asyncio.gather(*(child(number) for _ in range(3)))
            return ctx["seen"]

        def worker(number: int) -> None:
            try:
                factory = loop_factory(ctx, base=bases[number])
                if sys.version_info >= (3, 12):  # true under the skipif marker (mypy ignores it)
                    results[number] = asyncio.run(main(number), loop_factory=factory)
            except BaseException as error:  # reported by the test thread
                errors.append(error)
                started.abort()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert [] == errors
        assert {n: [n] * 4 for n in range(self.THREADS)} == results
