"""The exceptions aiocontext raises.

Every error derives from :class:`AioContextError` and from the built-in exception that fits
best, so ``except RuntimeError`` keeps working in code that does not know about aiocontext.
None of them derives from :class:`LookupError`: ``ctx.get(key, default)`` and ``key in ctx``
must never swallow a misconfiguration.
"""

from __future__ import annotations

__all__ = ["AioContextError", "EventLoopError", "TaskContextError", "TaskFactoryError"]


class AioContextError(Exception):
    """Base class of every error raised by aiocontext.

    Catch it to handle any aiocontext failure at once; the subclasses say what went wrong.
    """


class EventLoopError(AioContextError, RuntimeError):
    """No usable event loop where one is needed.

    Raised when a context is read or written outside any task with no event loop running in
    the thread, when ``attach()``/``detach()`` are called without a loop outside a running
    loop, and when a context is attached to a closed loop.

    Fix: run the code inside a task on a loop the context is attached to:
    ``asyncio.run(main(), loop_factory=loop_factory(ctx))`` on Python 3.12+,
    ``asyncio.Runner(loop_factory=loop_factory(ctx))`` on 3.11, with
    ``base=uvloop.new_event_loop`` to keep uvloop. In a worker thread, carry the caller's data
    in with ``asyncio.to_thread``, ``aiocontext.executors`` or ``ctx.restore(snapshot)``. For
    ``attach()``/``detach()``, pass the loop explicitly (``ctx.attach(loop)``). The message
    names the fix that fits where the code runs.
    """


class TaskContextError(AioContextError, RuntimeError):
    """The running task has no data for a context.

    Raised when a context is read or written on a running loop it is not attached to (never
    attached, or detached before the task was created).

    Fix: attach the context to the loop before creating tasks, for example
    ``ctx.attach()`` at the start of ``main()`` or ``loop_factory(ctx)``; in a pytest-asyncio
    test, request the ``aiocontext`` fixture or return ``loop_factory(ctx)`` from a
    ``pytest_asyncio_loop_factories`` hook. The message names the fix that fits.
    """


class TaskFactoryError(AioContextError, RuntimeError):
    """The loop's task factory is not the one aiocontext installed, or cannot be used.

    Raised when a context is attached but the loop's task factory was replaced afterwards
    (``loop.set_task_factory(...)``), so children would no longer get their data, and when a
    :class:`~aiocontext.TaskFactoryWrapper` is asked to wrap another wrapper.

    Fix: set custom factories *before* attaching contexts (the wrapper wraps them), or call
    ``ctx.attach(loop)`` again to re-install the wrapper around the new factory.
    """
