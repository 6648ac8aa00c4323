"""The task-factory call shape of CPython 3.13.3: ``factory(loop, coro, name=..., context=...)``.

CPython 3.13.3 alone passed both ``name`` and ``context`` to a loop's task factory (3.13.4
rolled it back; 3.14 passes ``name`` again, with ``eager_start``). No CI interpreter makes
that call, so these tests make it: they call the installed ``TaskFactoryWrapper`` directly,
with each kind of inner factory, under each built-in policy, and check what asyncio would
have got: a task with that name, running in that ``contextvars`` context, with the data that
context holds (and never the caller's).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, Share, TaskFactoryWrapper
from conftest import CoroutineLike

POLICIES = [Share(), Copy(), DeepCopy(), ChainMap()]
POLICY_IDS = ["Share", "Copy", "DeepCopy", "ChainMap"]


def keywords_factory(
    loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /, **kwargs: Any
) -> asyncio.Task[Any]:
    """A factory taking every keyword, as 3.13.3's asyncio needed."""
    return asyncio.Task(coro, loop=loop, **kwargs)


def context_only_factory(
    loop: asyncio.AbstractEventLoop,
    coro: CoroutineLike,
    *,
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    """A 3.11-3.13 style factory that takes ``context`` but not ``name``."""
    return asyncio.Task(coro, loop=loop, context=context)


INNER_FACTORIES = [None, keywords_factory, context_only_factory]
INNER_IDS = ["no-inner", "keywords", "context-only"]


class TestCPython3133CallShape:
    """``wrapper(loop, coro, name=..., context=...)``, as CPython 3.13.3 calls a factory."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("inner", INNER_FACTORIES, ids=INNER_IDS)
    @pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
    async def test_name_and_context_both_given(self, policy: Any, inner: Any) -> None:
        """The task gets the name, runs in the given context and starts with the data that
        context holds, whatever the inner factory; the caller's data is untouched."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")

        async def capture() -> contextvars.Context:
            ctx["id"] = "creator"
            marker.set("the given context")
            return contextvars.copy_context()

        given = await asyncio.create_task(capture(), context=contextvars.Context())  # own data
        ctx["id"] = "caller"

        async def child() -> tuple[str, str]:
            seen = (ctx["id"], marker.get())
            ctx["id"] = "child"
            return seen

        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        wrapper.inner, before = inner, wrapper.inner
        try:
            task = wrapper(loop, child(), name="3.13.3-shape", context=given)
        finally:
            wrapper.inner = before
        seen = await task
        assert ("3.13.3-shape", ("creator", "the given context")) == (task.get_name(), seen)
        assert "caller" == ctx["id"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("inner", INNER_FACTORIES, ids=INNER_IDS)
    async def test_empty_context_gives_root_data(self, inner: Any) -> None:
        """With ``context=contextvars.Context()`` (a request handler's), the named task
        starts with root data, not the caller's."""
        loop = asyncio.get_running_loop()
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["id"] = "caller"

        async def child() -> dict[str, str]:
            return dict(ctx)

        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        wrapper.inner, before = inner, wrapper.inner
        try:
            task = wrapper(loop, child(), name="request", context=contextvars.Context())
        finally:
            wrapper.inner = before
        assert ("request", {}) == (task.get_name(), await task)
