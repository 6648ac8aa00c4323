"""Celery integration: a task runs with the context data of the code that enqueued it.

Install it with ``pip install "aiocontext[celery]"`` and call :func:`install` once in the
module that defines the Celery app, so that producers and workers both run it::

    app = Celery("shop", broker="redis://127.0.0.1:6379/0")
    propagator = Propagator({request: ["request_id"]})
    aiocontext.celery.install(propagator)

Then:

* **Publishing** (``task.delay(...)``, ``apply_async``, ``send_task``): Celery's
  ``before_task_publish`` signal runs in the publishing code, and the propagator's headers,
  encoded from that code's data, go into the message headers under ``"aiocontext"`` (a
  header the caller passed under that name is kept as it is).
* **Running**, in the worker: ``task_prerun`` makes the data decoded from those headers
  (validated as on any inbound request) each context's data, and ``task_postrun`` puts the
  worker's previous data back. A task sees exactly its own message's data, never another
  task's: each task's data is made for it and dropped after it, in the thread that runs it
  (tested with the ``solo`` and ``prefork`` pools). A message without the header runs with
  empty data.
* **Async code run from a task** (``asyncio.run(main(), loop_factory=loop_factory(request))``)
  starts from the task's data like any other code there.

A task run eagerly (``task.apply()``, ``task_always_eager``) is not a message: it runs in
the caller's own context, with the caller's data.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping
from typing import Any, Final

from celery import Task
from celery.signals import before_task_publish, task_postrun, task_prerun
from typing_extensions import TypeIs

from ._integration import check_propagator
from .propagation import Propagator

__all__ = ["MESSAGE_HEADER", "CeleryPropagation", "install"]

MESSAGE_HEADER: Final = "aiocontext"
"""The message header the carrier travels under."""

# The restore blocks of the tasks running in this thread (or greenlet), innermost last.
_running: contextvars.ContextVar[tuple[contextlib.ExitStack, ...]] = contextvars.ContextVar(
    "aiocontext.celery.running", default=()
)


def _carrier(task: Task[Any, Any], header: str) -> Mapping[str, str]:
    """The carrier a running task's message holds, or an empty one if it holds none."""
    found: object = getattr(task.request, header, None)  # message headers are attributes
    if not _is_mapping(found):
        return {}
    return {
        name: value
        for name, value in found.items()
        if isinstance(name, str) and isinstance(value, str)
    }


def _is_mapping(value: object) -> TypeIs[Mapping[object, object]]:
    return isinstance(value, Mapping)


class CeleryPropagation:
    """The signal handlers that carry a :class:`Propagator`'s keys through Celery messages.

    Made and connected by :func:`install`; :meth:`uninstall` disconnects them.

    Example:
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> handlers = install(Propagator({request: ["request_id"]}))
        >>> handlers.uninstall()
    """

    __slots__ = ("__weakref__", "_header", "_propagator")

    def __init__(self, propagator: Propagator, *, header: str = MESSAGE_HEADER) -> None:
        self._propagator = check_propagator(propagator)
        given: object = header  # checked at runtime whatever the annotation says
        if not isinstance(given, str) or not given:
            raise TypeError(f"header must be a non-empty str such as 'aiocontext', got {header!r}")
        self._header = header

    def __repr__(self) -> str:
        return f"CeleryPropagation({self._propagator!r}, header={self._header!r})"

    @property
    def propagator(self) -> Propagator:
        """Which keys travel, in which format."""
        return self._propagator

    def connect(self) -> None:
        """Connect the handlers to Celery's signals (idempotent)."""
        before_task_publish.connect(self.before_task_publish, weak=False, dispatch_uid=self._uid)
        task_prerun.connect(self.task_prerun, weak=False, dispatch_uid=self._uid)
        task_postrun.connect(self.task_postrun, weak=False, dispatch_uid=self._uid)

    def uninstall(self) -> None:
        """Disconnect the handlers (idempotent)."""
        before_task_publish.disconnect(self.before_task_publish, dispatch_uid=self._uid)
        task_prerun.disconnect(self.task_prerun, dispatch_uid=self._uid)
        task_postrun.disconnect(self.task_postrun, dispatch_uid=self._uid)

    @property
    def _uid(self) -> str:
        return f"aiocontext.celery.{id(self)}"

    def before_task_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        """``before_task_publish``: add the carrier to the message headers."""
        if headers is not None:
            carrier = self._propagator.encode()
            if carrier:
                headers.setdefault(self._header, carrier)

    def task_prerun(self, task: Task[Any, Any], **_: Any) -> None:
        """``task_prerun``: make the message's data the current data, for the task."""
        if task.request.is_eager:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(self._propagator.restore(_carrier(task, self._header)))
        _running.set((*_running.get(), stack))

    def task_postrun(self, task: Task[Any, Any], **_: Any) -> None:
        """``task_postrun``: put back the data the worker had before the task."""
        if task.request.is_eager:
            return
        running = _running.get()
        if running:
            _running.set(running[:-1])
            running[-1].close()


def install(propagator: Propagator, *, header: str = MESSAGE_HEADER) -> CeleryPropagation:
    """Carry ``propagator``'s keys from the code that enqueues a task to the task itself.

    Connects Celery's ``before_task_publish``, ``task_prerun`` and ``task_postrun``
    signals (process-wide, for every Celery app); call it where both the producers and the
    workers run it, such as the module that makes the app.

    Args:
        propagator: Which keys travel, in which format.
        header: The message header the carrier travels under.

    Returns:
        The connected handlers; ``.uninstall()`` disconnects them.

    Raises:
        TypeError: ``propagator`` is not a Propagator, or ``header`` not a non-empty str.
    """
    handlers = CeleryPropagation(propagator, header=header)
    handlers.connect()
    return handlers
