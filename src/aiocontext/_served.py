"""Whether code with no data for a context may get root data here, else the error that says
why not.

Code on a loop gets root data for a context only where the context is attached and the
loop's task factory is the wrapper that propagates it: anywhere else, a task would start
with data that its children do not get. The check runs only where code has no data (the
no-data marker's reads, ``data(task)`` of a task without data), never on the data path.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._advice import Situation, not_attached
from ._errors import TaskContextError, TaskFactoryError
from ._factory import TaskFactoryWrapper
from ._loops import ATTACH_LOCK

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["check_served"]


def check_served(context: Context[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
    """Raise unless ``context`` is attached to ``loop`` and the loop's wrapper serves it.

    Raises:
        TaskFactoryError: The context is attached, but the loop's task factory was replaced
            since it was.
        TaskContextError: The context is not attached to ``loop``.
    """
    wrapper = TaskFactoryWrapper.of(loop)
    if wrapper is not None and wrapper.propagates(context):
        return
    with ATTACH_LOCK:  # an attach or detach in another thread may be half done: wait
        wrapper = TaskFactoryWrapper.of(loop)
        if wrapper is not None and wrapper.propagates(context):
            return
        attached = context._registry.is_attached(context, loop)
    if attached:
        raise TaskFactoryError(
            f"{context!r} is attached to {loop!r} but the loop's task factory was replaced "
            "since, so tasks no longer get their data: set custom task factories before "
            "attaching, or call ctx.attach(loop) again to wrap the new one"
        )
    raise TaskContextError(
        f"{context!r} is not attached to the running loop {loop!r}, so this task has no "
        f"data: {not_attached(Situation.here(loop))}"
    )
