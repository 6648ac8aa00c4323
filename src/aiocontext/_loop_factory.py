"""``loop_factory``: event loops that have contexts attached before any task exists, and a
default executor whose workers start clean."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import attrs

from ._context import Context, check_context
from .executors import CleanThreadPoolExecutor

__all__ = ["loop_factory"]

_L = TypeVar("_L", bound=asyncio.AbstractEventLoop)


@attrs.frozen(repr=False)
class _LoopFactory(Generic[_L]):
    """Calls ``base()``, attaches ``contexts`` to the new loop and gives it a clean default
    executor."""

    contexts: tuple[Context[Any, Any], ...]
    base: Callable[[], _L]

    def __repr__(self) -> str:
        base = getattr(self.base, "__qualname__", repr(self.base))
        return f"loop_factory({', '.join([*map(repr, self.contexts), f'base={base}'])})"

    def __call__(self) -> _L:
        loop = self.base()
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"loop_factory(base=...) must return an event loop, {self.base!r} returned "
                f"{type(loop).__name__} {loop!r}"
            )
        try:
            for context in self.contexts:
                context.attach(loop)
            # Plain run_in_executor(None, ...) calls then see no request's data, and no
            # worker keeps one alive, where threads inherit context too (docs/threads.md).
            loop.set_default_executor(CleanThreadPoolExecutor(thread_name_prefix="asyncio"))
        except BaseException:
            loop.close()
            raise
        return loop


@overload
def loop_factory(*contexts: Context[Any, Any]) -> Callable[[], asyncio.AbstractEventLoop]: ...
@overload
def loop_factory(*contexts: Context[Any, Any], base: Callable[[], _L]) -> Callable[[], _L]: ...
def loop_factory(
    *contexts: Context[Any, Any],
    base: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """Build a ``loop_factory`` whose loops have ``contexts`` attached from the start.

    Give it to ``asyncio.run(main(), loop_factory=...)`` (Python 3.12+) or
    ``asyncio.Runner(loop_factory=...)`` (3.11+): the main task then has data from its first
    step, which attaching from inside ``main()`` cannot give.

    Each loop's default executor is a
    :class:`~aiocontext.executors.CleanThreadPoolExecutor`: a plain
    ``loop.run_in_executor(None, func)`` runs ``func`` with no request's data and no worker
    keeps one alive, also where threads inherit context (free-threaded builds);
    ``asyncio.to_thread`` still passes the caller's data. ``loop.set_default_executor()``
    replaces it as usual.

    Args:
        *contexts: The contexts to attach to every loop made.
        base: What makes the loop (default ``asyncio.new_event_loop``; for example
            ``uvloop.new_event_loop``).

    Returns:
        A callable taking no arguments and returning a new loop.

    Raises:
        TypeError: A context is not a Context, or ``base`` is not callable.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context, loop_factory
        >>> ctx = Context(name="request")
        >>> async def main():
        ...     ctx["id"] = "r-1"
        ...     return ctx.is_attached()
        >>> with asyncio.Runner(loop_factory=loop_factory(ctx)) as runner:
        ...     runner.run(main())
        True
    """
    for context in contexts:
        check_context(context)
    if not callable(base):
        raise TypeError(
            f"base must be a callable returning a new event loop (such as "
            f"asyncio.new_event_loop), got {type(base).__name__} {base!r}"
        )
    return _LoopFactory(contexts, base)
