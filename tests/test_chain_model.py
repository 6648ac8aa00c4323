"""Tests for the ``ChainMap()`` data model (``_chain_model``) and its ``Layers``: how many
layers a chain of tasks holds, and lookups racing with deletions."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from aiocontext import ChainMap, Context, ContextRegistry
from aiocontext._policy import Layers


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


class TestLayersLookups:
    def test_a_concurrent_delete_is_a_miss_not_a_false_key_error(self) -> None:
        """Each layer is read once: a key deleted from a lower layer by another thread while
        a read runs is either found or missed, never a ``KeyError`` for a key the read saw
        (defect 11)."""
        top: dict[str, int] = {}
        bottom: dict[str, int] = {"k": 1}
        layers: Layers[str, int] = Layers(top, bottom)
        stop = threading.Event()

        def toggle() -> None:
            while not stop.is_set():
                bottom.pop("k", None)
                bottom["k"] = 1

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible
        thread = threading.Thread(target=toggle)
        thread.start()
        results: set[object] = set()
        try:
            for _ in range(20_000):
                results.add(layers.get("k", None))
                try:
                    results.add(layers["k"])
                except KeyError:
                    results.add("miss")
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(interval)
        assert results <= {1, None, "miss"}
