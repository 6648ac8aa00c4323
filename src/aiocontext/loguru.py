"""loguru: context values in ``record["extra"]``, as :class:`~aiocontext.logging.ContextFilter`
puts them on :mod:`logging` records.

:func:`patcher` returns a loguru *patcher*: a function loguru calls with each record, in the
code that logs, before any sink sees it. It copies chosen keys of a
:class:`~aiocontext.Context` into ``record["extra"]``, so a format can write
``{extra[request_id]}`` and a serializing sink gets them as fields::

    from loguru import logger
    logger.configure(patcher=aiocontext.loguru.patcher(request_context))
    logger.add(sys.stderr, format="[{extra[request_id]}] {message}")

The rules are :class:`~aiocontext.logging.ContextFilter`'s: the emitting task's values;
where the context has no data (outside any task, a plain thread, a loop it is not attached
to) or no value for a key, the field's default (``"-"``); values bound with
``logger.bind(...)`` or ``logger.contextualize(...)`` are kept unless ``overwrite=True``;
``providers=[SpanFields()]`` adds the current span's ids. Because a patcher runs where the
record is made, sinks added with ``enqueue=True`` (a worker thread) get the caller's values.

This module imports nothing from loguru at run time (it only reads and fills the record's
dict); ``pip install aiocontext[loguru]`` installs loguru itself. The core of aiocontext
never imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._context import Context
from .logging import DEFAULT, FieldProvider, Fields, _Plan  # pyright: ignore[reportPrivateUsage]

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["LoguruPatcher", "patcher"]


class LoguruPatcher:
    """A loguru patcher filling ``record["extra"]`` from a context; made by :func:`patcher`.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context, loop_factory
        >>> request = Context(name="request")
        >>> patch = patcher(request, ["request_id", "tenant"])
        >>> async def main():
        ...     request["request_id"] = "r-7"
        ...     record = {"extra": {"tenant": "bound"}}
        ...     patch(record)
        ...     return record["extra"]
        >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
        ...     runner.run(main())
        {'tenant': 'bound', 'request_id': 'r-7'}
    """

    __slots__ = ("_plan",)

    def __init__(
        self,
        context: Context[Any, Any] | str,
        fields: Fields = ("request_id",),
        *,
        default: object = DEFAULT,
        overwrite: bool = False,
        providers: Iterable[FieldProvider] = (),
    ) -> None:
        self._plan = _Plan.make(context, fields, default, overwrite, frozenset(), providers)

    def __repr__(self) -> str:
        return self._plan.describe(self)

    @property
    def context(self) -> Context[Any, Any]:
        """The context the patcher reads."""
        return self._plan.context

    def __call__(self, record: Record) -> None:
        """Fill ``record["extra"]`` with the fields."""
        self._plan.fill(record["extra"])


def patcher(
    context: Context[Any, Any] | str,
    fields: Fields = ("request_id",),
    *,
    default: object = DEFAULT,
    overwrite: bool = False,
    providers: Iterable[FieldProvider] = (),
) -> LoguruPatcher:
    """Return a loguru patcher adding ``fields`` of ``context`` to every record's ``extra``.

    Give it to ``logger.configure(patcher=...)`` (every record of the process) or to
    ``logger.patch(...)`` (the records of one logger object).

    Args:
        context: The context to read, or a ``"package.module:ATTRIBUTE"`` string naming one.
        fields: The keys to add (each under its own name, a ``Key`` under its ``.name``), or
            a mapping of keys to the names to use in ``extra``.
        default: The value of a field the context has no value for (or has no data at
            all); a mapping gives per-field defaults.
        overwrite: Replace values ``extra`` already has (bound with ``logger.bind``). By
            default they are kept.
        providers: :class:`~aiocontext.logging.FieldProvider` objects filling other fields,
            such as :class:`aiocontext.opentelemetry.SpanFields`.

    Returns:
        The patcher, a callable ``(record) -> None``.

    Raises:
        TypeError, ValueError, ImportError, AttributeError: As for
            :class:`~aiocontext.logging.ContextFilter`.
    """
    return LoguruPatcher(context, fields, default=default, overwrite=overwrite, providers=providers)
