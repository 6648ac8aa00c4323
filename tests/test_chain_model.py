"""Tests for the ``ChainMap()`` data model (``_chain_model``): how many layers a chain of
tasks holds, and what a live chain costs in memory."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from helpers import traced_memory

from aiocontext import ChainMap, Context, ContextRegistry
from aiocontext._layers import Layers


class TestLayersBounded:
    @pytest.mark.asyncio
    async def test_successor_chains_hold_a_layer_per_writer_not_per_generation(self) -> None:
        """A task that spawns its successor and ends (a periodic job) adds no layer when it
        never wrote: after 200 generations the data has the writers' layers only, and reads
        still find the first task's key (defect 8)."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        depths: list[int] = []
        tasks: list[asyncio.Task[None]] = []
        last = asyncio.get_running_loop().create_future()

        async def generation(n: int) -> None:
            if n == 100:
                ctx["middle"] = n  # one writer half-way
            layers = ctx._var.get()  # pyright: ignore[reportPrivateUsage]
            depths.append(len(layers.maps))
            if n < 200:
                tasks.append(asyncio.create_task(generation(n + 1)))  # and ends
            else:
                last.set_result((ctx["root"], ctx["middle"]))

        async def first() -> None:
            ctx["root"] = "r"
            tasks.append(asyncio.create_task(generation(1)))

        await asyncio.create_task(first())
        assert ("r", 100) == await last
        assert max(depths) <= 4

    @pytest.mark.asyncio
    async def test_reads_in_the_last_generation_see_every_writer(self) -> None:
        """Dropping empty layers of finished tasks loses no key."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["root"] = 0

        async def generation(n: int) -> dict[str, Any]:
            if n % 50 == 0:
                ctx[f"g{n}"] = n
            if n < 200:
                return await asyncio.create_task(generation(n + 1))
            return dict(ctx)

        expected = {"root": 0, **{f"g{n}": n for n in range(50, 201, 50)}}
        assert expected == await asyncio.create_task(generation(1))

    @pytest.mark.asyncio
    async def test_overlapping_generations_hold_a_layer_per_running_task_and_writer(
        self,
    ) -> None:
        """A task that spawns its successor and ends a few steps later (so that the next
        ones are pushed over its layer while it still runs): the layers of finished tasks
        that never wrote are unlinked further down the chain too, so 300 generations hold
        the running tasks' layers and the writers' only."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        depths: list[int] = []
        last = asyncio.get_running_loop().create_future()
        tasks: list[asyncio.Task[None]] = []

        async def generation(n: int) -> None:
            if n % 100 == 0:
                ctx[f"g{n}"] = n
            layers: Layers[str, Any] = ctx._var.get()  # pyright: ignore[reportPrivateUsage]
            depths.append(len(layers.maps))
            if n == 300:
                last.set_result(dict(ctx))
                return
            tasks.append(asyncio.create_task(generation(n + 1)))
            for _ in range(3):  # the successor and its own successors start meanwhile
                await asyncio.sleep(0)

        async def first() -> None:
            ctx["root"] = "r"
            tasks.append(asyncio.create_task(generation(1)))

        await asyncio.create_task(first())
        assert {"root": "r", "g100": 100, "g200": 200, "g300": 300} == await last
        await asyncio.gather(*tasks)
        assert max(depths) <= 10


async def _live_chain(depth: int, at_bottom: Callable[[], int]) -> int:
    """``depth`` tasks, each creating the next and awaiting it; the last calls ``at_bottom``."""
    if depth > 1:
        return await asyncio.create_task(_live_chain(depth - 1, at_bottom))
    return at_bottom()


class TestLiveChainMemory:
    @pytest.mark.asyncio
    async def test_memory_per_level_does_not_grow_with_depth(self) -> None:
        """A live chain of tasks, each with a layer of its own over its parent's, costs
        memory linear in its depth: per level, a chain of 1,000 costs less than 1.5 times
        what a chain of 250 does (when each level held a list of every layer, 3 times)."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()

        def traced() -> int:
            assert "r" == ctx["root"]
            return traced_memory()

        async def per_level(depth: int) -> float:
            ctx["root"] = "r"
            gc.collect()
            tracemalloc.start()
            try:
                start = traced_memory()
                return (await _live_chain(depth, traced) - start) / depth
            finally:
                tracemalloc.stop()

        await asyncio.create_task(per_level(50))  # warm-up: first-use allocations
        small = await asyncio.create_task(per_level(250))
        large = await asyncio.create_task(per_level(1_000))
        assert large < 1.5 * small
