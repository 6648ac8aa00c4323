"""Event-loop helpers the core shares: argument checks, the task-factory protocol, the lock
that guards every attach and detach, and debug source tracebacks."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Coroutine, Generator
from typing import Any, Protocol, TypeAlias

from ._errors import EventLoopError

__all__ = [
    "ATTACH_LOCK",
    "CoroutineLike",
    "TaskFactory",
    "check_loop",
    "loop_or_running",
    "trim_source_traceback",
]

# What typeshed lets ``loop.set_task_factory`` factories receive, per Python version.
if sys.version_info >= (3, 12):
    CoroutineLike: TypeAlias = Coroutine[Any, Any, Any]
else:
    CoroutineLike: TypeAlias = Coroutine[Any, Any, Any] | Generator[Any, None, Any]


class TaskFactory(Protocol):
    """What ``loop.set_task_factory`` accepts: ``factory(loop, coro, **kwargs) -> Future``.

    asyncio calls it with keywords (``name``, ``context``, ``eager_start``, ...) only when
    it has them to pass, so a two-argument factory is still a valid one.
    """

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: CoroutineLike, /
    ) -> asyncio.Future[Any]: ...


#: Guards every change of attachments: registries and wrappers are shared between threads.
ATTACH_LOCK = threading.RLock()


def check_loop(loop: object) -> asyncio.AbstractEventLoop:
    """Return ``loop`` if it is an event loop, else raise a ``TypeError`` that says what to pass."""
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(
            f"expected an asyncio event loop, got {type(loop).__name__} {loop!r}: "
            "pass a loop such as asyncio.get_running_loop(), or None for the running loop"
        )
    return loop


def loop_or_running(
    loop: asyncio.AbstractEventLoop | None, who: object, verb: str
) -> asyncio.AbstractEventLoop:
    """``loop`` checked, or the running loop for ``None``.

    Raises:
        TypeError: ``loop`` is not an event loop.
        EventLoopError: ``loop`` is ``None`` and no loop is running (the message says to
            pass one to ``who.verb()``).
    """
    if loop is not None:
        return check_loop(loop)
    running = asyncio._get_running_loop()
    if running is None:
        raise EventLoopError(
            f"{who!r}.{verb}() needs a loop: no event loop is running in this thread, "
            f"so pass one: ctx.{verb}(loop)"
        )
    return running


_BASE_EVENTS_FILE = os.path.normcase(asyncio.base_events.__file__)


def trim_source_traceback(frames: list[Any], own_file: str) -> None:
    """Drop the wrapper's frames (and asyncio's ``create_task``) from a debug traceback.

    asyncio does the same for its own ``create_task`` frame when no factory is set, so a
    task's source traceback ends where the user created it.
    """
    own_file = os.path.normcase(own_file)
    while frames and os.path.normcase(frames[-1].filename) == own_file:
        del frames[-1]
    if (
        frames
        and frames[-1].name == "create_task"
        and os.path.normcase(frames[-1].filename) == _BASE_EVENTS_FILE
    ):
        del frames[-1]
