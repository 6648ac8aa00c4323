"""Shared test set-up: every async test runs once per event loop implementation."""

from __future__ import annotations

import asyncio
import sys
import sysconfig
import threading
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping
from types import ModuleType
from typing import Any, TypeAlias, cast

import pytest

# On a free-threaded build the suite runs with the GIL off, as users of such a build do.
# hiredis, redis-py's optional C parser (arq's requirements pull it in), does not declare
# free-threading support yet, so importing it would turn the GIL back on for the whole process
# (with a RuntimeWarning, an error here). There redis-py uses its own parser instead: hiredis
# is made unimportable before anything imports redis. ``pytest_sessionfinish`` below fails a
# run that ends with the GIL on, whatever turned it on.
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# Whether a new thread starts in a copy of its starter's contextvars context (3.14+: the
# default on free-threaded builds, ``-X thread_inherit_context=1`` elsewhere).
THREADS_INHERIT_CONTEXT = bool(getattr(sys.flags, "thread_inherit_context", 0))
if FREE_THREADED:
    # (None in sys.modules makes ``import hiredis`` raise ImportError: redis-py falls back.)
    sys.modules.setdefault("hiredis", cast("ModuleType", None))

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


_EAGER_PROBLEMS: dict[type[asyncio.AbstractEventLoop], str | None] = {}


def _probe_eager_factory(kind: type[asyncio.AbstractEventLoop]) -> None:
    """Does ``asyncio.eager_task_factory`` start tasks eagerly on a loop of ``kind``?"""
    probe = kind()
    started: list[bool] = []

    async def child() -> None:
        started.append(True)

    async def main() -> str | None:
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 12):
            loop.set_task_factory(asyncio.eager_task_factory)
        coro = child()
        try:
            task = loop.create_task(coro)
        except TypeError as error:
            coro.close()
            return f"raises {error}"
        finally:
            loop.set_task_factory(None)
        eager = bool(started)
        await task
        return None if eager else "starts tasks lazily"

    try:
        problem = probe.run_until_complete(main())
    finally:
        probe.close()
    _EAGER_PROBLEMS[kind] = problem


def skip_if_eager_factory_broken(loop: asyncio.AbstractEventLoop) -> None:
    """Skip where ``asyncio.eager_task_factory`` is broken on this kind of loop even
    without aiocontext (found by trying it on a fresh loop of the same kind).

    uvloop 0.23 passes ``eager_start=None`` to task factories: 3.13's eager factory rejects
    it (TypeError), and on 3.14 it overrides the factory's eager default, so tasks start
    lazily. Eager tasks are new in 3.12.
    """
    if sys.version_info >= (3, 12):
        kind = type(loop)
        if kind not in _EAGER_PROBLEMS:
            # On a fresh loop of the same kind, in another thread (this one may run a loop).
            thread = threading.Thread(target=_probe_eager_factory, args=(kind,))
            thread.start()
            thread.join()
        problem = _EAGER_PROBLEMS[kind]
        if problem is not None:
            pytest.skip(
                f"asyncio.eager_task_factory {problem} on {kind.__module__}.{kind.__name__} "
                "without aiocontext (uvloop passes eager_start=None to task factories)"
            )
    else:
        pytest.skip("eager tasks are new in Python 3.12")


# Typing tests are type-checked by mypy (see mypy.ini), never imported or run.
collect_ignore_glob = ["typing/*"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On a free-threaded build, fail the run if the GIL was turned on during it."""
    if FREE_THREADED and getattr(sys, "_is_gil_enabled", lambda: True)():
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            "the GIL is on at the end of the run on a free-threaded build (PYTHON_GIL=1, or a "
            "module imported during the run turned it on): see FREE_THREADED in tests/conftest.py",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
