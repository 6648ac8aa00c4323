"""arq integration: a job runs with the context data of the code that enqueued it.

arq is the asyncio-native job queue this package integrates (it ranks above taskiq among
PyPI's most downloaded packages). Install it with ``pip install "aiocontext[arq]"``, make an
:class:`ArqPropagation` and give its serializer to the pool that enqueues, and its settings
to the worker::

    propagation = ArqPropagation(Propagator({request: ["request_id"]}))
    pool = await create_pool(RedisSettings(), job_serializer=propagation.serialize)

    # worker.py: `arq worker.WorkerSettings`
    WorkerSettings = {"functions": [send_email], **propagation.worker_settings()}

* **Enqueueing**: :meth:`~ArqPropagation.serialize` adds the propagator's headers, encoded
  from the enqueueing code's data, to the job's payload (results are left alone).
* **Running**: :meth:`~ArqPropagation.deserialize` takes them out again in the worker, and
  :meth:`~ArqPropagation.on_job_start` makes the data decoded from them (validated as on any
  inbound request) each context's data for exactly the job's run: arq runs each job in a
  task of its own, created after ``on_job_start``, and :meth:`~ArqPropagation.on_job_end`
  ends it. A job without headers runs with empty data; a job never sees another's data,
  however many run at once (``max_jobs``). Jobs enqueued from a job (with ``ctx["redis"]``)
  carry the job's data on.

The contexts are attached to the worker's loop on the first job, so the tasks a job spawns
inherit its data by each context's policy.
"""

from __future__ import annotations

import contextlib
import contextvars
import pickle
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from typing_extensions import TypeIs

from ._integration import check_propagator
from .propagation import Propagator

__all__ = ["PAYLOAD_KEY", "ArqPropagation", "JobHook"]

PAYLOAD_KEY: Final = "aiocontext"
"""The key of the job payload the headers travel under."""

JobHook = Callable[[dict[Any, Any]], Awaitable[Any]]
"""An arq ``on_job_start``/``on_job_end`` hook: ``async def hook(ctx) -> None``."""

# The headers of the job whose payload this task deserialized last (set in the worker's
# run_job task, read by on_job_start in the same task).
_pending: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "aiocontext.arq.pending", default=None
)
# The restore block of the job running in this task.
_active: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar(
    "aiocontext.arq.active", default=None
)


def _is_mapping(value: object) -> TypeIs[Mapping[object, object]]:
    return isinstance(value, Mapping)


class ArqPropagation:
    """Carries a :class:`Propagator`'s keys through arq jobs: serializer and worker hooks.

    Args:
        propagator: Which keys travel, in which format.
        serializer: The serializer the payload goes through (arq's default: pickle).
        deserializer: Its inverse.
        on_job_start: A hook of your own, run after the job's data is in place.
        on_job_end: A hook of your own, run before the job's data is dropped.

    Raises:
        TypeError: ``propagator`` is not a Propagator, or another argument is not callable.

    Example:
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> propagation = ArqPropagation(Propagator({request: ["request_id"]}))
        >>> sorted(propagation.worker_settings())
        ['job_deserializer', 'job_serializer', 'on_job_end', 'on_job_start']
    """

    __slots__ = ("_deserializer", "_on_job_end", "_on_job_start", "_propagator", "_serializer")

    def __init__(
        self,
        propagator: Propagator,
        *,
        serializer: Callable[[dict[str, Any]], bytes] = pickle.dumps,
        deserializer: Callable[[bytes], dict[str, Any]] = pickle.loads,
        on_job_start: JobHook | None = None,
        on_job_end: JobHook | None = None,
    ) -> None:
        self._propagator = check_propagator(propagator)
        for name, value in [
            ("serializer", serializer),
            ("deserializer", deserializer),
            ("on_job_start", on_job_start),
            ("on_job_end", on_job_end),
        ]:
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__} {value!r}")
        self._serializer = serializer
        self._deserializer = deserializer
        self._on_job_start = on_job_start
        self._on_job_end = on_job_end

    def __repr__(self) -> str:
        return f"ArqPropagation({self._propagator!r})"

    @property
    def propagator(self) -> Propagator:
        """Which keys travel, in which format."""
        return self._propagator

    def serialize(self, data: dict[str, Any]) -> bytes:
        """arq's ``job_serializer``: the payload, with the current data's headers added.

        Job results (payloads with a success flag) are serialized as they are.

        Raises:
            TypeError: A value is not a ``str`` and its key has no codec.
        """
        if "s" not in data:
            headers = self._propagator.encode()
            if headers:
                data = {**data, PAYLOAD_KEY: headers}
        return self._serializer(data)

    def deserialize(self, payload: bytes) -> dict[str, Any]:
        """arq's ``job_deserializer``: the payload, without the headers, kept for the job."""
        data = self._deserializer(payload)
        if PAYLOAD_KEY in data:
            found: object = data.pop(PAYLOAD_KEY)
            carrier = (
                {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}
                if _is_mapping(found)
                else {}
            )
            _pending.set(carrier)
        return data

    async def on_job_start(self, ctx: dict[Any, Any]) -> None:
        """arq's ``on_job_start``: make the job's data the current data until its end."""
        carrier = _pending.get() or {}
        _pending.set(None)
        for context in self._propagator.contexts:
            if not context.is_attached():
                context.attach()
        stack = contextlib.ExitStack()
        stack.enter_context(self._propagator.restore(carrier))
        _active.set(stack)
        if self._on_job_start is not None:
            await self._on_job_start(ctx)

    async def on_job_end(self, ctx: dict[Any, Any]) -> None:
        """arq's ``on_job_end``: drop the job's data (after your own hook, if any)."""
        try:
            if self._on_job_end is not None:
                await self._on_job_end(ctx)
        finally:
            stack = _active.get()
            if stack is not None:
                _active.set(None)
                stack.close()

    def worker_settings(self) -> dict[str, Any]:
        """The four worker settings to add: ``Worker(..., **propagation.worker_settings())``.

        Returns:
            ``job_serializer``, ``job_deserializer``, ``on_job_start`` and ``on_job_end``.
        """
        return {
            "job_serializer": self.serialize,
            "job_deserializer": self.deserialize,
            "on_job_start": self.on_job_start,
            "on_job_end": self.on_job_end,
        }
