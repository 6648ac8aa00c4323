"""Tests for the ``Share()`` data model (``_share_model``): scoped binds on the one mapping
of a task tree."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator

import pytest

from aiocontext import Context, ContextRegistry, Share


class TestSharedBinds:
    @pytest.mark.asyncio
    async def test_overlapping_sibling_blocks_leave_nothing_behind(self) -> None:
        """Two sibling tasks whose ``bound()`` blocks overlap on one key: after both exit,
        the key is as it was before either (defect 7)."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def a() -> None:
            with ctx.bound(k="a"):
                a_in.set()
                await b_in.wait()
            a_out.set()

        async def b() -> None:
            await a_in.wait()
            with ctx.bound(k="b"):
                b_in.set()
                await a_out.wait()
                inside = ctx["k"]
            assert "b" == inside

        await asyncio.gather(a(), b())
        assert {} == dict(ctx)

    @pytest.mark.asyncio
    async def test_blocks_ending_in_order_restore_an_old_value(self) -> None:
        """Nested blocks and a key set before them: each exit restores what was there."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        ctx["k"] = "before"
        with ctx.bound(k="outer"):
            with ctx.bound(k="inner", other="x"):
                assert ("inner", "x") == (ctx["k"], ctx["other"])
            assert {"k": "outer"} == dict(ctx)
        assert {"k": "before"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_a_block_ended_by_another_task_restores_the_shared_mapping(self) -> None:
        """Under ``Share()`` the mapping a block wrote belongs to the whole tree: ended in
        another task (an async generator closed there), the block restores it."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()

        async def gen() -> AsyncGenerator[str, None]:
            with ctx.bound(k="gen"):
                yield ctx["k"]

        agen = gen()
        assert "gen" == await agen.__anext__()
        await asyncio.create_task(agen.aclose())
        assert {} == dict(ctx)


class TestDataOfAnotherTask:
    @pytest.mark.skipif(sys.version_info < (3, 12), reason="Task.get_context() is 3.12+")
    @pytest.mark.asyncio
    async def test_another_tasks_data_is_the_shared_mapping(self) -> None:
        """``data(task)`` under ``Share()`` is the tree's one mapping."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        ctx["k"] = "v"
        release = asyncio.Event()

        async def child() -> None:
            await release.wait()

        task = asyncio.create_task(child())
        shared = ctx.data(task)
        release.set()
        await task
        assert shared is ctx.data()
