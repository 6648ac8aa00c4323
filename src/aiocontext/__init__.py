"""Task-local, dict-like context for asyncio that follows the work into child tasks.

Example:
    >>> import asyncio
    >>> from aiocontext import Context, loop_factory
    >>> request = Context(name="request")
    >>> async def main():
    ...     request["id"] = "r-1"
    ...     return await asyncio.create_task(asyncio.sleep(0, request["id"]))
    >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
    ...     runner.run(main())
    'r-1'
"""

from ._context import Context, ContextRegistry, TaskFactoryWrapper
from ._errors import AioContextError, EventLoopError, TaskContextError, TaskFactoryError
from ._key import Key
from ._loop_factory import loop_factory
from ._policy import ChainMap, Copy, DeepCopy, PropagationPolicy, Share

__version__ = "1.0.0.dev0"
"""This distribution's version (PEP 440); the single source ``pyproject.toml`` reads."""

__all__ = [
    "AioContextError",
    "ChainMap",
    "Context",
    "ContextRegistry",
    "Copy",
    "DeepCopy",
    "EventLoopError",
    "Key",
    "PropagationPolicy",
    "Share",
    "TaskContextError",
    "TaskFactoryError",
    "TaskFactoryWrapper",
    "loop_factory",
]
