"""Helpers the core's test modules share (not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import tracemalloc
from collections.abc import Callable, Coroutine, Generator, MutableMapping
from typing import Any, TypeVar

import attrs
import pytest

from aiocontext import Context, PropagationPolicy, TaskFactoryWrapper, loop_factory

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

needs_312 = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="Task.get_context() and eager tasks are new in 3.12"
)


@attrs.frozen
class Generations(PropagationPolicy):
    """A user policy: each task records how many spawns separate it from a root task."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return {**parent, "generation": parent["generation"] + 1}

    def root(self) -> MutableMapping[Any, Any]:
        return {"generation": 0}


async def nothing() -> None:
    """A coroutine that does nothing."""


def run(main: Coroutine[Any, Any, T], *contexts: Context[Any, Any], base: LoopFactory) -> T:
    """Run ``main`` as the main task of a new loop that has ``contexts`` attached."""
    with asyncio.Runner(loop_factory=loop_factory(*contexts, base=base)) as runner:
        return runner.run(main)


@contextlib.contextmanager
def restoring_task_factory(loop: asyncio.AbstractEventLoop) -> Generator[None]:
    """Put back the loop's original task factory when the block ends."""
    original = loop.get_task_factory()
    try:
        yield
    finally:
        TaskFactoryWrapper.uninstall(loop)
        loop.set_task_factory(original)


# What pytest-xdist's worker allocates on its own thread while a test runs (execnet receiving
# the next tests to run, xdist queueing them) is not the test's: traced_memory() leaves it out.
_RUNNER: tuple[tracemalloc.Filter, ...] = (
    tracemalloc.Filter(False, "*/execnet/*"),
    tracemalloc.Filter(False, "*/xdist/*"),
)


def traced_memory() -> int:
    """The bytes tracemalloc traces now (it must be tracing), after a full garbage
    collection, but for what the test runner's own threads allocated."""
    gc.collect()
    return sum(trace.size for trace in tracemalloc.take_snapshot().filter_traces(_RUNNER).traces)
