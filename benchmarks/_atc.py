"""The aiotask-context 0.6.1 baseline (``pip install aiotask-context==0.6.1``).

Imported only when the package is installed. aiotask-context keeps each task's data in a
``task.context`` attribute that its task factories set; ``get``/``set`` find the current task
with ``asyncio.current_task()``. Its factories are used as released, with one workaround:

* Its factories take exactly ``(loop, coro)``. uvloop's ``create_task`` always passes
  ``context=None`` (and ``eager_start=None`` on 3.13), so on uvloop the factory is wrapped in
  :func:`_drop_none_keywords`, which drops those keywords when they are ``None`` (and refuses
  anything else). The wrapper costs one Python call per spawn that asyncio users do not pay.
  The stdlib loop calls factories with ``(loop, coro)`` when no ``context=`` is given, which is
  how every task here is created, so there the factories run unwrapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from time import perf_counter_ns
from typing import Any, Literal, TypeVar

import aiotask_context as context

from ._common import READ_KEY, WRITE_KEY

__all__ = [
    "VERSION",
    "child",
    "factory",
    "memory_child",
    "read_get",
    "read_set",
    "setup",
    "writer",
]

_T = TypeVar("_T")

VERSION = "0.6.1"

FactoryName = Literal["task_factory", "copying_task_factory", "chainmap_task_factory"]


def _drop_none_keywords(inner: Any) -> Any:
    def factory(
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        /,
        **kwargs: Any,
    ) -> asyncio.Task[_T]:
        if any(value is not None for value in kwargs.values()):
            raise TypeError(f"aiotask-context's task factories cannot take {kwargs!r}")
        task: asyncio.Task[_T] = inner(loop, coro)
        return task

    return factory


def factory(loop_kind: str, name: FactoryName) -> Any:
    """Return aiotask-context's factory ``name``, adapted to ``loop_kind`` if it must be."""
    inner = {
        "task_factory": context.task_factory,
        "copying_task_factory": context.copying_task_factory,
        "chainmap_task_factory": context.chainmap_task_factory,
    }[name]
    return inner if loop_kind == "asyncio" else _drop_none_keywords(inner)


def setup(data: dict[str, Any]) -> None:
    """Put ``data`` into the current task's context, key by key."""
    for key, value in data.items():
        context.set(key, value)


async def child(_: object) -> Any:
    """A child task that reads one key."""
    return context.get(READ_KEY)


async def writer(_: object) -> Any:
    """A child task that writes one key, then reads one."""
    context.set(WRITE_KEY, 1)
    return context.get(READ_KEY)


async def memory_child(
    _: object, i: int, release: asyncio.Future[None], started: list[int]
) -> None:
    """A pending task that owns data: writes one key, then waits for ``release``."""
    context.set(WRITE_KEY, i)
    started[0] += 1
    await release


def read_get(key: str, n: int) -> int:
    """Time ``n`` reads ``context.get(key)``, ten to a loop iteration; return ns."""
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
        context.get(key)
    return perf_counter_ns() - start


def read_set(key: str, value: Any, n: int) -> int:
    """Time ``n`` writes ``context.set(key, value)``, ten to a loop iteration; return ns."""
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
        context.set(key, value)
    return perf_counter_ns() - start
