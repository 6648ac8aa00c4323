"""Shared test set-up: every async test runs once per event loop implementation."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping
from typing import Any, TypeAlias

import pytest

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

# The ``coro`` a task factory receives, as typeshed types ``loop.set_task_factory``: before
# 3.12 it also allows a generator-based coroutine. Test factories annotate ``coro`` with it
# so that they are valid task factories for mypy on every Python (import it from conftest).
if sys.version_info >= (3, 12):
    CoroutineLike: TypeAlias = Coroutine[Any, Any, Any]
else:
    CoroutineLike: TypeAlias = Coroutine[Any, Any, Any] | Generator[Any, None, Any]

LOOP_FACTORIES: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed wherever CI runs
    pass
else:
    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    """Run each ``@pytest.mark.asyncio`` test on the stdlib loop and on uvloop."""
    return LOOP_FACTORIES


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def new_loop(request: pytest.FixtureRequest) -> LoopFactory:
    """For synchronous tests: the function making a fresh loop of each implementation."""
    factory: LoopFactory = LOOP_FACTORIES[request.param]
    return factory


@pytest.fixture
def loop(new_loop: LoopFactory) -> Iterator[asyncio.AbstractEventLoop]:
    """For synchronous tests: a fresh, not running loop of each implementation, closed after."""
    loop = new_loop()
    yield loop
    loop.close()

# Typing tests are type-checked by mypy (see mypy.ini), never imported or run.
collect_ignore_glob = ["typing/*"]
