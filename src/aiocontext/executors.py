"""Run functions in executors with the caller's context data: thread pools and process pools.

``loop.run_in_executor(pool, func)`` and ``pool.submit(func)`` run ``func`` with none of the
caller's :mod:`contextvars`, so a :class:`~aiocontext.Context` raises there.
``asyncio.to_thread`` copies them, but only for the loop's default executor. This module
does what ``to_thread`` does for any :class:`concurrent.futures.Executor`:

* :func:`run_in_executor` (from a coroutine) and :func:`submit` (from synchronous code) run
  ``func`` in a copy of the caller's ``contextvars`` context, exactly like
  ``asyncio.to_thread``: ``func`` sees the caller's data, and its writes behave as the
  ``to_thread`` worker's do (its own under ``Copy()``, ``DeepCopy()`` and ``ChainMap()``;
  the caller's under ``Share()``).
* :func:`run_in_process` is for executors that do not share memory, such as
  :class:`~concurrent.futures.ProcessPoolExecutor`, where ``contextvars`` cannot go: it
  sends a :meth:`~aiocontext.Context.snapshot` of each context named and restores it around
  ``func`` in the worker. Writes there stay there. (Its ``contexts`` come before ``func``:
  nothing may stand between the ``*args`` and ``**kwargs`` passed on to ``func``.)

The first two raise ``TypeError`` for a ``ProcessPoolExecutor``, where the context could
only be silently missing, and say what to do instead.

Example:
    >>> import asyncio
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> from aiocontext import Context, loop_factory
    >>> from aiocontext.executors import run_in_executor
    >>> request = Context(name="request")
    >>> async def main():
    ...     request["id"] = "r-1"
    ...     with ThreadPoolExecutor() as pool:
    ...         return await run_in_executor(pool, request.get, "id")
    >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
    ...     runner.run(main())
    'r-1'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
from typing_extensions import ParamSpec, TypeIs

from ._context import Context, is_context
from ._errors import EventLoopError

__all__ = ["run_in_executor", "run_in_process", "submit"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

# Executors whose workers do not share this process's memory, so no contextvars reach them.
# (InterpreterPoolExecutor, new in 3.14, runs each worker in its own interpreter; the getattr
# names ProcessPoolExecutor twice where it does not exist.)
_SEPARATE_MEMORY: tuple[type[concurrent.futures.Executor], ...] = (
    concurrent.futures.ProcessPoolExecutor,
    getattr(concurrent.futures, "InterpreterPoolExecutor", concurrent.futures.ProcessPoolExecutor),
)
_USE_RUN_IN_PROCESS = (
    "Use `await aiocontext.executors.run_in_process(executor, [ctx], func, *args)`: it sends "
    "ctx.snapshot() along and restores it in the worker"
)
_USE_SNAPSHOT = (
    "Pass ctx.snapshot() to func and wrap its body in `with ctx.restore(snapshot):` (or, from "
    "a coroutine, use aiocontext.executors.run_in_process(executor, [ctx], func, *args))"
)


def _is_iterable(value: object) -> TypeIs[Iterable[object]]:
    return isinstance(value, Iterable)


def run_in_executor(
    executor: concurrent.futures.Executor | None,
    func: Callable[_P, _T],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> asyncio.Future[_T]:
    """Run ``func(*args, **kwargs)`` in ``executor`` with a copy of the caller's context.

    What ``loop.run_in_executor`` does, plus what ``asyncio.to_thread`` adds: ``func`` runs in
    a copy of the caller's ``contextvars`` context, so it sees the caller's context data and
    its writes behave as a ``to_thread`` worker's (the caller's under ``Share()``, its own
    under the other policies). Keyword arguments are passed on too.

    Args:
        executor: Any executor sharing this process's memory (a ``ThreadPoolExecutor``,
            say), or ``None`` for the loop's default executor.
        func: The function to call.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        An asyncio future of ``func``'s result (await it). Cancelling it cancels the call if
        it has not started yet.

    Raises:
        EventLoopError: No event loop is running in this thread (use :func:`submit` from
            synchronous code).
        TypeError: ``executor`` is a ``ProcessPoolExecutor`` (use :func:`run_in_process`) or
            not an executor, or ``func`` is not callable.
    """
    loop = _running_loop("run_in_executor", "use aiocontext.executors.submit(executor, func, ...)")
    _check_executor(executor, func, "run_in_executor", _USE_RUN_IN_PROCESS)
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return loop.run_in_executor(executor, call)


def submit(
    executor: concurrent.futures.Executor,
    func: Callable[_P, _T],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> concurrent.futures.Future[_T]:
    """Submit ``func(*args, **kwargs)`` to ``executor`` with a copy of the caller's context.

    The synchronous twin of :func:`run_in_executor`, for code that is not a coroutine (a
    callback, a thread that restored a snapshot, a synchronous library).

    Args:
        executor: Any executor sharing this process's memory.
        func: The function to call.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        The :class:`concurrent.futures.Future` ``executor.submit`` returns.

    Raises:
        TypeError: ``executor`` is a ``ProcessPoolExecutor`` (pass ``ctx.snapshot()`` to
            ``func`` and restore it there) or not an executor, or ``func`` is not callable.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> from aiocontext import Context
        >>> request = Context(name="request")
        >>> with request.restore({"id": "r-7"}), ThreadPoolExecutor() as pool:
        ...     submit(pool, request.get, "id").result()
        'r-7'
    """
    if executor is None:  # pyright: ignore[reportUnnecessaryComparison] - checked at runtime
        raise TypeError(
            "submit() needs an executor, got None: pass a concurrent.futures.Executor such as "
            "a ThreadPoolExecutor (None, the loop's default executor, is for run_in_executor())"
        )
    _check_executor(executor, func, "submit", _USE_SNAPSHOT)
    return executor.submit(functools.partial(contextvars.copy_context().run, func, *args, **kwargs))


def run_in_process(
    executor: concurrent.futures.Executor | None,
    contexts: Iterable[Context[Any, Any]],
    func: Callable[_P, _T],
    /,
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> asyncio.Future[_T]:
    """Run ``func(*args, **kwargs)`` in ``executor`` with a snapshot of each of ``contexts``.

    For executors whose workers do not share memory with the caller, such as a
    ``ProcessPoolExecutor``. It takes ``ctx.snapshot()`` of each context now, sends the
    snapshots with the call, and in the worker runs ``func`` inside ``ctx.restore(snapshot)``
    for each: ``func`` reads the caller's data as it was at the call. Its writes stay in the
    worker (the data there is a private copy).

    A :class:`~aiocontext.Context` itself cannot be pickled, so the worker finds each one by
    the name it has in the module that defines ``func``: ``func`` must be a module-level
    function (as process pools require anyway) of a module where each context is a global,
    defined there or imported there (``from myapp.context import request``). Snapshots and
    arguments must pickle.

    Args:
        executor: The executor (usually a ``ProcessPoolExecutor``; a thread pool works too,
            with the same private-copy semantics), or ``None`` for the loop's default one.
        contexts: The contexts whose data ``func`` needs, for example ``[request]``.
        func: A module-level function.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        An asyncio future of ``func``'s result (await it).

    Raises:
        EventLoopError: No event loop is running in this thread (from synchronous code, pass
            ``ctx.snapshot()`` to ``func`` and restore it there).
        TypeError: ``contexts`` is not an iterable of contexts, a context is not a global of
            ``func``'s module, ``executor`` is not an executor, or ``func`` is not callable.
        TaskContextError: A context has no data in the caller (as ``ctx.snapshot()``).
    """
    loop = _running_loop(
        "run_in_process",
        "pass ctx.snapshot() to func and wrap its body in `with ctx.restore(snapshot):`",
    )
    _check_executor(executor, func, "run_in_process", None)
    given: object = contexts  # checked at runtime whatever the annotation says
    if is_context(given) or isinstance(given, str) or not _is_iterable(given):
        raise TypeError(
            f"run_in_process() takes an iterable of contexts, such as [request], got "
            f"{type(contexts).__name__} {contexts!r}"
        )
    snapshots = tuple((*_reference(context, func), context.snapshot()) for context in contexts)
    return loop.run_in_executor(executor, _CallWithSnapshots(func, args, kwargs, snapshots))


@attrs.frozen
class _CallWithSnapshots:
    """The picklable call :func:`run_in_process` sends: ``func`` inside restored snapshots."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    snapshots: tuple[tuple[str, str, dict[Any, Any]], ...]  # (module, name, snapshot)

    def __call__(self) -> Any:
        with contextlib.ExitStack() as stack:
            for module, name, snapshot in self.snapshots:
                context: Context[Any, Any] = getattr(importlib.import_module(module), name)
                stack.enter_context(context.restore(snapshot))
            return self.func(*self.args, **self.kwargs)


def _reference(context: object, func: Callable[..., Any]) -> tuple[str, str]:
    """``(module, name)``: where the worker finds ``context``, a global of ``func``'s module."""
    if not is_context(context):
        raise TypeError(
            f"run_in_process() takes an iterable of aiocontext.Context objects, got "
            f"{type(context).__name__} {context!r} in it"
        )
    module_name = str(getattr(func, "__module__", None))
    module_globals: dict[str, object] = getattr(sys.modules.get(module_name), "__dict__", {})
    for name, value in module_globals.items():
        if value is context:
            return module_name, name
    raise TypeError(
        f"run_in_process() sends {context!r} to the worker by the name it has in the module "
        f"of {func!r} ({module_name}), but it is not a global there: pass a module-level "
        f"function of a module that defines or imports the context "
        f"(from ... import <context>)"
    )


def _running_loop(function: str, otherwise: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise EventLoopError(
            f"{function}() needs a running event loop: await it from a coroutine (from "
            f"synchronous code, {otherwise})"
        ) from None


def _check_executor(executor: object, func: object, function: str, fix: str | None) -> None:
    """Raise the ``TypeError`` that says what to pass, if ``executor`` or ``func`` is wrong.

    ``fix`` says what to do instead when ``executor`` does not share memory; ``None`` means
    such executors are fine.
    """
    if executor is not None and not isinstance(executor, concurrent.futures.Executor):
        raise TypeError(
            f"{function}() needs a concurrent.futures.Executor such as a ThreadPoolExecutor, "
            f"got {type(executor).__name__} {executor!r}"
        )
    if fix is not None and isinstance(executor, _SEPARATE_MEMORY):
        raise TypeError(
            f"{function}() cannot give {type(executor).__name__} workers the caller's context: "
            f"contextvars do not cross into another process. {fix}"
        )
    if not callable(func):
        raise TypeError(f"{function}() needs a callable, got {type(func).__name__} {func!r}")
