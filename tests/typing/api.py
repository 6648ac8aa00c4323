"""How users' code type-checks against aiocontext's public API (checked by mypy, never run)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Generator, MutableMapping
from typing import Any, assert_type

import uvloop

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    TaskFactoryWrapper,
    loop_factory,
)


def default_context_types() -> None:
    ctx = Context()
    assert_type(ctx, Context[str, Any])
    assert_type(ctx.attach(), Context[str, Any])
    assert_type(ctx.policy, PropagationPolicy)
    assert_type(ctx.name, str | None)
    assert_type(ctx.registry, ContextRegistry)
    assert_type(ctx.is_attached(), bool)
    assert_type(ctx.detach(), None)


def typed_context() -> None:
    counts: Context[str, int] = Context(policy=Share(), name="counts")
    counts["hits"] = 1
    assert_type(counts["hits"], int)
    assert_type(counts.get("hits"), int | None)
    assert_type(counts.get("hits", 0), int)
    assert_type(counts.pop("hits"), int)
    assert_type(counts.data(), MutableMapping[str, int])
    assert_type(list(counts), list[str])
    counts["hits"] = "many"  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]
    counts[3] = 1  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]


def explicit_parameters() -> None:
    ctx = Context[int, bytes](policy=DeepCopy())
    assert_type(ctx, Context[int, bytes])
    ctx[1] = b"x"
    assert_type(ctx[1], bytes)


def policies() -> None:
    for policy in (Share(), Copy(), DeepCopy(), ChainMap()):
        Context(policy=policy)
    assert_type(Copy().inherit({"a": 1}), MutableMapping[str, int])
    layers: MutableMapping[str, bytes] = ChainMap().root()
    assert_type(Share().inherit(layers), MutableMapping[str, bytes])
    Context(policy=Copy)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Context(policy="copy")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Context(Copy(), "name")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    PropagationPolicy()  # type: ignore[abstract]  # pyright: ignore[reportAbstractUsage]


class Fresh(PropagationPolicy):
    """A user policy: children start empty."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return {}


def user_policy() -> None:
    assert_type(Context(policy=Fresh()), Context[str, Any])


def loops() -> None:
    ctx = Context()
    assert_type(loop_factory(ctx), Callable[[], asyncio.AbstractEventLoop])
    assert_type(loop_factory(ctx, base=uvloop.new_event_loop), Callable[[], uvloop.Loop])
    if sys.version_info >= (3, 12):
        asyncio.run(asyncio.sleep(0), loop_factory=loop_factory(ctx))
    with asyncio.Runner(loop_factory=loop_factory(ctx, base=uvloop.new_event_loop)):
        pass
    loop_factory("ctx")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    loop_factory(ctx, base=object)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]


def registry_and_wrapper(loop: asyncio.AbstractEventLoop) -> None:
    registry = ContextRegistry()
    ctx = Context(registry=registry)
    registry.attach(ctx, loop)
    assert_type(registry.contexts(loop), tuple[Context[Any, Any], ...])
    assert_type(registry.is_attached(ctx, loop), bool)
    wrapper = TaskFactoryWrapper.install(loop, registry)
    assert_type(TaskFactoryWrapper.of(loop), TaskFactoryWrapper | None)
    loop.set_task_factory(wrapper)
    assert_type(wrapper(loop, asyncio.sleep(0, "x")), asyncio.Task[str])
    wrapper.inner = None
    wrapper.inner = asyncio.Task  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    Context(registry=object())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def uvloop_accepts_the_wrapper(loop: uvloop.Loop) -> None:
    loop.set_task_factory(TaskFactoryWrapper.install(loop))


def custom_factories(loop: asyncio.AbstractEventLoop) -> None:
    def legacy(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
    ) -> asyncio.Task[Any]:
        assert not isinstance(coro, Generator)  # generator-based coroutines are gone
        return asyncio.Task(coro, loop=loop)

    TaskFactoryWrapper(legacy)
    TaskFactoryWrapper(loop.get_task_factory())
    if sys.version_info >= (3, 12):
        TaskFactoryWrapper(asyncio.eager_task_factory)
    TaskFactoryWrapper(lambda loop: None)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
