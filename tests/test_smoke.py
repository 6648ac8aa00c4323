"""A first check that the package imports and propagates (replaced by the full suite)."""

from __future__ import annotations

import asyncio

import pytest

from aiocontext import Context


@pytest.mark.asyncio
async def test_child_sees_parent_data() -> None:
    """A child task created after attach starts with a copy of its parent's data."""
    ctx: Context[str, str] = Context(name="smoke").attach()
    ctx["k"] = "v"

    async def child() -> str:
        return ctx["k"]

    assert "v" == await asyncio.create_task(child())
