# Stub for aiotask-context 0.6.1 (https://pypi.org/project/aiotask-context/), which ships no
# types. Written from the released source; used by benchmarks/ only.
#
# Quirks of the real module worth knowing when reading the signatures:
# - The task factories take exactly (loop, coro): they reject the ``context=`` and
#   ``eager_start=`` keywords that uvloop (and asyncio for ``create_task(..., context=c)``)
#   pass, and the task they make ignores the creator's contextvars context.
# - ``task.context`` is an attribute the factories add to each task; a task not created by them
#   (for example the main task of ``asyncio.run``) has none, and ``get``/``set`` then raise
#   ``AttributeError``.
# - ``get``/``set``/``clear`` raise ``ValueError`` outside a task.

import asyncio
import logging
from collections import ChainMap
from collections.abc import Callable, Coroutine, Generator, MutableMapping
from typing import Any, Final, TypeVar

_T = TypeVar("_T")
_Coro = Coroutine[Any, Any, _T] | Generator[Any, None, _T]
_Data = MutableMapping[Any, Any]

PY37: Final[bool]
logger: logging.Logger
NO_LOOP_EXCEPTION_MSG: Final[str]

def asyncio_current_task(
    loop: asyncio.AbstractEventLoop | None = None,
) -> asyncio.Task[Any] | None: ...
def dict_context_factory(
    parent_context: _Data | None = None, copy_context: bool = False
) -> _Data: ...
def chainmap_context_factory(parent_context: _Data | None = None) -> ChainMap[Any, Any]: ...
def task_factory(
    loop: asyncio.AbstractEventLoop,
    coro: _Coro[_T],
    copy_context: bool = False,
    context_factory: Callable[[_Data | None], _Data] | None = None,
) -> asyncio.Task[_T]: ...
def copying_task_factory(loop: asyncio.AbstractEventLoop, coro: _Coro[_T]) -> asyncio.Task[_T]: ...
def chainmap_task_factory(loop: asyncio.AbstractEventLoop, coro: _Coro[_T]) -> asyncio.Task[_T]: ...
def get(key: Any, default: Any = None) -> Any: ...
def set(key: Any, value: Any) -> None: ...
def clear() -> None: ...
