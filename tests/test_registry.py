"""Tests for ``ContextRegistry``: which contexts are attached to which loops."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    Share,
    TaskContextError,
    TaskFactoryWrapper,
    loop_factory,
)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


async def read(ctx: Context[str, Any], key: str) -> Any:
    """Return ``ctx[key]`` as seen by the task running this."""
    return ctx[key]


class TestContextRegistry:
    """Attaching, detaching and listing contexts per loop."""

    def test_attach_records_in_attach_order(self, loop: asyncio.AbstractEventLoop) -> None:
        """contexts() lists the attached contexts in attach order."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        c: Context[str, Any] = Context(registry=registry)
        registry.attach(b, loop)
        registry.attach(a, loop)
        registry.attach(c, loop)

        assert (b, a, c) == registry.contexts(loop)

    def test_attach_is_idempotent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attaching a context twice lists it once, in its first position."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        registry.attach(a, loop)
        registry.attach(b, loop)
        registry.attach(a, loop)
        wrapper = TaskFactoryWrapper.of(loop)
        registry.attach(b, loop)

        assert (a, b) == registry.contexts(loop)
        assert wrapper is TaskFactoryWrapper.of(loop)

    def test_attach_installs_wrapper(self, loop: asyncio.AbstractEventLoop) -> None:
        """attach() installs a TaskFactoryWrapper around the loop's factory."""
        registry = ContextRegistry()
        registry.attach(Context(registry=registry), loop)

        assert isinstance(loop.get_task_factory(), TaskFactoryWrapper)

    def test_contexts_of_unknown_loop_is_empty(self, loop: asyncio.AbstractEventLoop) -> None:
        """A loop nothing was attached to has no contexts and no wrapper."""
        assert () == ContextRegistry().contexts(loop)
        assert None is loop.get_task_factory()

    def test_is_attached(self, new_loop: LoopFactory) -> None:
        """is_attached() is true only for the context and the loop it was attached to."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        first, second = new_loop(), new_loop()
        try:
            registry.attach(a, first)

            assert [True, False, False, False] == [
                registry.is_attached(a, first),
                registry.is_attached(b, first),
                registry.is_attached(a, second),
                registry.is_attached(b, second),
            ]
        finally:
            first.close()
            second.close()

    def test_detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """detach() removes only that context and keeps the others' order."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        c: Context[str, Any] = Context(registry=registry)
        for ctx in (a, b, c):
            registry.attach(ctx, loop)
        registry.detach(b, loop)

        assert (a, c) == registry.contexts(loop)
        assert False is registry.is_attached(b, loop)

        registry.detach(a, loop)
        registry.detach(c, loop)
        assert () == registry.contexts(loop)

    def test_detach_is_idempotent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Detaching twice, or a context never attached, or from a fresh loop is a no-op."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        registry.detach(a, loop)  # nothing attached to this loop at all
        registry.attach(a, loop)
        registry.detach(b, loop)  # never attached
        registry.detach(a, loop)
        registry.detach(a, loop)

        assert () == registry.contexts(loop)

    def test_reattach_after_detach_goes_last(self, loop: asyncio.AbstractEventLoop) -> None:
        """A context attached again after a detach is listed after the others."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        registry.attach(a, loop)
        registry.attach(b, loop)
        registry.detach(a, loop)
        registry.attach(a, loop)

        assert (b, a) == registry.contexts(loop)

    def test_non_loop_raises_type_error(self) -> None:
        """Every method taking a loop raises TypeError for something that is not a loop."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        not_a_loop: Any = "loop"

        with pytest.raises(TypeError, match="event loop"):
            registry.attach(ctx, not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            registry.detach(ctx, not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            registry.contexts(not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            registry.is_attached(ctx, not_a_loop)
        with pytest.raises(TypeError, match="event loop"):
            registry.attach(ctx, None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_non_context_raises_type_error(self, loop: asyncio.AbstractEventLoop) -> None:
        """attach() and detach() raise TypeError for something that is not a Context."""
        registry = ContextRegistry()
        not_a_context: Any = {"a": 1}

        with pytest.raises(TypeError, match="Context"):
            registry.attach(not_a_context, loop)
        with pytest.raises(TypeError, match="Context"):
            registry.detach(not_a_context, loop)
        assert () == registry.contexts(loop)
        assert None is loop.get_task_factory()

    def test_attach_to_closed_loop_raises(self, new_loop: LoopFactory) -> None:
        """Attaching to a closed loop raises EventLoopError and records nothing."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        loop = new_loop()
        loop.close()

        with pytest.raises(EventLoopError, match="closed"):
            registry.attach(ctx, loop)
        assert () == registry.contexts(loop)
        assert None is loop.get_task_factory()

    def test_detach_from_closed_loop(self, new_loop: LoopFactory) -> None:
        """Detaching from a loop that was closed since works."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        loop = new_loop()
        registry.attach(ctx, loop)
        loop.close()
        registry.detach(ctx, loop)

        assert () == registry.contexts(loop)

    def test_loops(self, new_loop: LoopFactory) -> None:
        """loops() lists the live loops a context is attached to."""
        registry = ContextRegistry()
        a: Context[str, Any] = Context(registry=registry)
        b: Context[str, Any] = Context(registry=registry)
        first, second = new_loop(), new_loop()
        try:
            registry.attach(a, first)
            registry.attach(a, second)
            registry.attach(b, second)

            assert {first, second} == set(registry.loops(a))
            assert 2 == len(registry.loops(a))
            assert (second,) == registry.loops(b)

            registry.detach(a, first)
            assert (second,) == registry.loops(a)
            assert () == ContextRegistry().loops(a)
        finally:
            first.close()
            second.close()

    def test_repr(self, loop: asyncio.AbstractEventLoop) -> None:
        """The repr says how many loops the registry knows."""
        registry = ContextRegistry()
        registry.attach(Context(registry=registry), loop)

        assert repr(registry).startswith("<ContextRegistry of 1 loop(s) at 0x")

    def test_detach_after_factory_was_replaced(self, loop: asyncio.AbstractEventLoop) -> None:
        """Detaching still forgets the attachment when the wrapper was replaced since."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        registry.attach(ctx, loop)
        loop.set_task_factory(None)
        registry.detach(ctx, loop)

        assert () == registry.contexts(loop)
        assert None is loop.get_task_factory()

    @pytest.mark.asyncio
    async def test_detach_stops_propagation_to_new_tasks(self) -> None:
        """After detach, new tasks get no data (TaskContextError); running ones keep theirs."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        registry.attach(ctx, loop)
        ctx["k"] = "v"
        release = asyncio.Event()

        async def earlier() -> Any:
            await release.wait()
            return ctx["k"]

        running = asyncio.create_task(earlier())
        captured = contextvars.copy_context()
        await asyncio.sleep(0)
        registry.detach(ctx, loop)

        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(ctx, "k"))
        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(ctx, "k"), context=captured)
        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(ctx, "k"), context=contextvars.Context())
        release.set()
        assert "v" == await running

    @pytest.mark.asyncio
    async def test_detach_affects_only_that_context(self) -> None:
        """Detaching one context leaves another on the same loop propagating."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        gone: Context[str, Any] = Context(registry=registry)
        kept: Context[str, Any] = Context(registry=registry)
        registry.attach(gone, loop)
        registry.attach(kept, loop)
        kept["k"] = "kept"
        registry.detach(gone, loop)

        assert "kept" == await asyncio.create_task(read(kept, "k"))
        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(gone, "k"))

    @pytest.mark.asyncio
    async def test_reattach_after_detach_gives_root(self) -> None:
        """A context attached again after a detach gives new tasks data again."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        registry.attach(ctx, loop)
        ctx["k"] = "v"
        registry.detach(ctx, loop)
        registry.attach(ctx, loop)

        assert "v" == await asyncio.create_task(read(ctx, "k"))


class TestContextRegistryWeakLoops:
    """Registries hold loops weakly."""

    def test_closed_dropped_loop_is_collected(self, new_loop: LoopFactory) -> None:
        """A closed loop with contexts attached and tasks run is garbage-collected."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(Share(), registry=registry)
        other: Context[str, Any] = Context(ChainMap(), registry=registry)
        loop = new_loop()
        registry.attach(ctx, loop)
        registry.attach(other, loop)

        async def main() -> Any:
            ctx["k"] = "v"
            other["k"] = "w"
            return await asyncio.create_task(read(ctx, "k"))

        assert "v" == loop.run_until_complete(main())
        assert isinstance(loop.get_task_factory(), TaskFactoryWrapper)
        loop.close()
        ref = weakref.ref(loop)
        del loop
        gc.collect()

        assert None is ref()
        assert () == registry.loops(ctx)
        assert "<ContextRegistry of 0 loop(s)" == repr(registry).split(" at ")[0]

    def test_loop_with_default_registry_is_collected(self, new_loop: LoopFactory) -> None:
        """A loop a default-registry context was attached to (and not detached from) is
        garbage-collected."""
        ctx: Context[str, Any] = Context(name="weak")
        loop = new_loop()
        ctx.attach(loop)

        async def main() -> Any:
            ctx["k"] = "v"
            return await asyncio.create_task(read(ctx, "k"))

        assert "v" == loop.run_until_complete(main())
        loop.close()
        ref = weakref.ref(loop)
        del loop
        gc.collect()

        assert None is ref()
        assert () == ctx.registry.loops(ctx)

    def test_runner_loop_is_collected(self, new_loop: LoopFactory) -> None:
        """The loop of an asyncio.Runner built with loop_factory is collected after it."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []

        async def main() -> None:
            refs.append(weakref.ref(asyncio.get_running_loop()))
            ctx["k"] = "v"
            await asyncio.create_task(read(ctx, "k"))

        with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
            runner.run(main())
        del runner
        gc.collect()

        assert [None] == [ref() for ref in refs]
        assert () == registry.loops(ctx)

    def test_several_registries_hold_loop_weakly(self, new_loop: LoopFactory) -> None:
        """A loop known to several registries is still collected."""
        first, second = ContextRegistry(), ContextRegistry()
        a: Context[str, Any] = Context(registry=first)
        b: Context[str, Any] = Context(registry=second)
        loop = new_loop()
        first.attach(a, loop)
        second.attach(b, loop)
        second.attach(a, loop)
        loop.close()
        ref = weakref.ref(loop)
        del loop
        gc.collect()

        assert None is ref()
        assert ((), (), ()) == (first.loops(a), second.loops(b), second.loops(a))


class TestContextRegistrySeveral:
    """Several registries and several contexts on one loop."""

    @pytest.mark.asyncio
    async def test_several_registries_share_one_wrapper(self) -> None:
        """Two registries on one loop share one wrapper; each lists only its contexts."""
        loop = asyncio.get_running_loop()
        first, second = ContextRegistry(), ContextRegistry()
        a: Context[str, Any] = Context(registry=first)
        b: Context[str, Any] = Context(registry=second)
        first.attach(a, loop)
        wrapper = TaskFactoryWrapper.of(loop)
        second.attach(b, loop)
        a["k"] = "a"
        b["k"] = "b"

        assert wrapper is not None
        assert wrapper is TaskFactoryWrapper.of(loop)
        assert ((a,), (b,)) == (first.contexts(loop), second.contexts(loop))
        assert (False, False) == (first.is_attached(b, loop), second.is_attached(a, loop))
        assert ("a", "b") == (
            await asyncio.create_task(read(a, "k")),
            await asyncio.create_task(read(b, "k")),
        )

        first.detach(a, loop)
        assert "b" == await asyncio.create_task(read(b, "k"))
        with pytest.raises(TaskContextError):
            await asyncio.create_task(read(a, "k"))

    @pytest.mark.asyncio
    async def test_context_attached_via_two_registries_is_propagated_once(self) -> None:
        """A context attached through two registries gets exactly one new ChainMap layer."""
        loop = asyncio.get_running_loop()
        own, foreign = ContextRegistry(), ContextRegistry()
        ctx: Context[str, Any] = Context(ChainMap(), registry=own)
        own.attach(ctx, loop)
        foreign.attach(ctx, loop)
        ctx["k"] = "v"
        parent = ctx.data()

        async def layers() -> int:
            data = ctx.data()
            assert isinstance(data, collections.ChainMap)
            return len(data.maps)

        assert isinstance(parent, collections.ChainMap)
        assert len(parent.maps) + 1 == await asyncio.create_task(layers())
        assert len(parent.maps) + 1 == await asyncio.create_task(
            layers(), context=contextvars.copy_context()
        )
        wrapper = TaskFactoryWrapper.of(loop)
        assert f"TaskFactoryWrapper(inner=None, contexts=[{ctx!r}])" == repr(wrapper)

    @pytest.mark.asyncio
    async def test_context_detached_from_one_of_two_registries_still_propagates(self) -> None:
        """Detaching via one registry keeps a context propagated that the other attached."""
        loop = asyncio.get_running_loop()
        own, foreign = ContextRegistry(), ContextRegistry()
        ctx: Context[str, Any] = Context(registry=own)
        own.attach(ctx, loop)
        foreign.attach(ctx, loop)
        ctx["k"] = "v"
        foreign.detach(ctx, loop)

        assert "v" == await asyncio.create_task(read(ctx, "k"))

    @pytest.mark.asyncio
    async def test_several_contexts_with_different_policies_on_one_loop(self) -> None:
        """Each context on one loop follows its own policy (the contract's classic example)."""
        loop = asyncio.get_running_loop()
        registry = ContextRegistry()
        contexts: dict[str, Context[str, Any]] = {
            "share": Context(Share(), registry=registry),
            "copy": Context(Copy(), registry=registry),
            "deepcopy": Context(DeepCopy(), registry=registry),
            "chainmap": Context(ChainMap(), registry=registry),
        }
        for ctx in contexts.values():
            registry.attach(ctx, loop)
            ctx["simple"] = "from parent"
            ctx["complex"] = ["from", "parent"]

        async def child() -> None:
            for ctx in contexts.values():
                ctx["simple"] = "from child"
                ctx["complex"][1] = "child"

        await asyncio.create_task(child())

        assert {
            "share": ("from child", ["from", "child"]),
            "copy": ("from parent", ["from", "child"]),
            "deepcopy": ("from parent", ["from", "parent"]),
            "chainmap": ("from parent", ["from", "child"]),
        } == {name: (ctx["simple"], ctx["complex"]) for name, ctx in contexts.items()}
