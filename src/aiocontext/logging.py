"""Context values in every log line: a :mod:`logging` filter and a structlog processor.

``ContextFilter`` copies chosen keys of a :class:`~aiocontext.Context` onto each
:class:`logging.LogRecord`, so a formatter can write ``%(request_id)s``;
``structlog_processor`` does the same for structlog's event dicts. Neither imports anything
beyond the standard library: structlog processors are plain callables.

Both read the context of the code that *emits* the record or event, so put them where that
code runs:

* stdlib logging: on the **handler** (a filter on a logger does not see records that
  propagate from its child loggers), and with a ``QueueHandler``, on the ``QueueHandler``
  itself, never on the handlers of a ``QueueListener``, whose thread has no context.
* structlog: in the processor chain; ``await logger.ainfo(...)`` works too, as structlog
  runs the chain in a thread with a copy of the caller's ``contextvars``.

A record emitted where the context has no data (outside any task with no loop running, in a
thread without data, or on a loop the context is not attached to) gets the defaults: logging
never fails because of the context. A thread has data when it runs in a copy of a task's
``contextvars`` context: ``asyncio.to_thread``, ``aiocontext.executors.run_in_executor``,
and, where threads inherit context (3.14+, ``sys.flags.thread_inherit_context``), a
``threading.Thread`` a task starts; a ``CleanThreadPoolExecutor`` worker never has. Any other exception (a bug in your own policy's ``root()`` or
in a :class:`~aiocontext.Key`'s ``default_factory``) propagates from the logging call, as an
exception in any filter does, so it is never hidden.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, TypeAlias, cast

import attrs
from typing_extensions import TypeIs

from ._context import Context
from ._errors import AioContextError
from ._key import Key

__all__ = [
    "DEFAULT",
    "ContextFilter",
    "FieldProvider",
    "StructlogProcessor",
    "structlog_processor",
]

DEFAULT: Final = "-"
"""What a field holds when the context has no value for it."""

FieldKey: TypeAlias = "str | Key[Any]"
"""A context key a log field is read from: a string or a :class:`~aiocontext.Key`."""

Fields: TypeAlias = "Iterable[FieldKey] | Mapping[FieldKey, str]"
"""Keys to copy (each under its own name), or a mapping of keys to the names to use."""

# Names a LogRecord has whatever the context says: a field under one of them would never be
# set (or, with overwrite=True, would break logging itself). "message" and "asctime" are set
# by formatters; "taskName" exists from Python 3.12.
_RECORD_ATTRIBUTES: Final = frozenset(
    {*logging.makeLogRecord({}).__dict__, "message", "asctime", "taskName"}
    | {name for name in dir(logging.LogRecord) if not name.startswith("__")}
)

# One field: (context key, name on the record or in the event dict, default, whether the
# value is read with the Key's own default).
_Field: TypeAlias = "tuple[FieldKey, str, object, bool]"


def _is_context(value: object) -> TypeIs[Context[Any, Any]]:
    return isinstance(value, Context)


def _resolve_context(context: object) -> Context[Any, Any]:
    """Return ``context`` if it is a Context, or the Context a ``"module:attribute"`` names."""
    if _is_context(context):
        return context
    if not isinstance(context, str):
        raise TypeError(
            f"context must be an aiocontext.Context or a 'package.module:ATTRIBUTE' string "
            f"naming one, got {type(context).__name__} {context!r}"
        )
    module_name, colon, path = context.partition(":")
    if not (colon and module_name and path):
        raise ValueError(
            f"context={context!r} does not name a Context: write 'package.module:ATTRIBUTE', "
            f"for example 'myapp.logs:REQUEST_CONTEXT'"
        )
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"context={context!r}: cannot import module {module_name!r} ({error}); check the "
            f"module path, and that it is importable where logging is configured",
            name=module_name,
        ) from error
    for attribute in path.split("."):
        try:
            found = getattr(found, attribute)
        except AttributeError:
            raise AttributeError(
                f"context={context!r}: {module_name!r} has no attribute {path!r}; check the "
                f"name after the colon"
            ) from None
    if not _is_context(found):
        raise TypeError(
            f"context={context!r} names {type(found).__name__} {found!r}, not an aiocontext.Context"
        )
    return found


def _is_key(value: object) -> TypeIs[Key[Any]]:
    return isinstance(value, Key)


def _field(key: object) -> tuple[FieldKey, str]:
    """Check a field's key; return it with its own name."""
    if _is_key(key):
        return key, key.name
    if isinstance(key, str):
        return key, key
    raise TypeError(
        f"a field's key must be a str or an aiocontext.Key, got {type(key).__name__} {key!r}"
    )


def _renamed_field(key: object, name: object) -> tuple[FieldKey, str]:
    """Check a field's key and the name given for it."""
    field_key, _ = _field(key)
    if not isinstance(name, str):
        raise TypeError(
            f"fields maps {key!r} to {type(name).__name__} {name!r}: the name to log it under "
            f"must be a str"
        )
    return field_key, name


def _fields(fields: object) -> list[tuple[FieldKey, str]]:
    """Check ``fields``; return each key with the name it is logged under."""
    if isinstance(fields, str | Key):
        raise TypeError(
            f"fields must be a collection of keys, got the single key {fields!r}: "
            f"write fields=({fields!r},)"
        )
    if isinstance(fields, Mapping):
        items = cast("Mapping[object, object]", fields).items()
        pairs = [_renamed_field(key, name) for key, name in items]
    elif isinstance(fields, Iterable):
        pairs = [_field(key) for key in cast("Iterable[object]", fields)]
    else:
        raise TypeError(
            f"fields must be a collection of keys or a mapping of keys to names, got "
            f"{type(fields).__name__} {fields!r}"
        )
    if not pairs:
        raise ValueError("fields is empty: name at least one key, e.g. fields=('request_id',)")
    return pairs


def _providers(providers: object) -> tuple[FieldProvider, ...]:
    """Check ``providers``: an iterable of :class:`FieldProvider` objects."""
    if isinstance(providers, FieldProvider) or not isinstance(providers, Iterable):
        raise TypeError(
            f"providers must be a list of FieldProvider objects, such as "
            f"providers=[SpanFields()], got {type(providers).__name__} {providers!r}"
        )
    checked = tuple(cast("Iterable[object]", providers))
    for provider in checked:
        if not isinstance(provider, FieldProvider):
            raise TypeError(
                f"providers must hold FieldProvider objects (subclass "
                f"aiocontext.logging.FieldProvider), got {type(provider).__name__} {provider!r}"
            )
        if not isinstance(provider.names, tuple):
            raise TypeError(
                f"{provider!r}.names must be a tuple of field names such as ('trace_id',), "
                f"got {type(provider.names).__name__} {provider.names!r}"
            )
    return cast("tuple[FieldProvider, ...]", checked)


def _check_names(names: list[object], reserved: frozenset[str]) -> None:
    """Every name, of a context field or a provider's, must be usable and unique."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"a field's name is empty or not a str ({name!r}): map the key to a name, "
                f"fields={{key: 'name'}}"
            )
        if name in reserved:
            raise ValueError(
                f"{name!r} is an attribute every LogRecord already has: log the key under "
                f"another name, e.g. fields={{{name!r}: 'ctx_{name}'}}"
            )
        if names.count(name) > 1:
            raise ValueError(f"two fields are both named {name!r}: give them different names")


def _defaults(default: object, names: list[object]) -> list[object]:
    """The default of each named field: ``default``, or its entry in a per-field mapping."""
    if not isinstance(default, Mapping):
        return [default] * len(names)
    per_field = cast("Mapping[object, object]", default)
    unknown = [name for name in per_field if name not in names]
    if unknown:
        raise ValueError(
            f"default has entries for {unknown!r}, which are not fields (the fields are "
            f"{names!r}): per-field defaults are keyed by the field's name"
        )
    return [per_field.get(name, DEFAULT) for name in names]


# The fields a provider fills: (the provider, ((name, default), ...)).
_Provided: TypeAlias = "tuple[FieldProvider, tuple[tuple[str, object], ...]]"


@attrs.frozen(eq=False)
class _Plan:
    """What a filter or processor copies, checked once: the fields and how to fill them."""

    context: Context[Any, Any]
    fields: tuple[_Field, ...]
    provided: tuple[_Provided, ...]
    default: object  # as given, for the repr
    overwrite: bool

    @classmethod
    def make(
        cls,
        context: object,
        fields: Fields,
        default: object,
        overwrite: bool,
        reserved: frozenset[str],
        providers: Iterable[FieldProvider] = (),
    ) -> _Plan:
        resolved = _resolve_context(context)
        pairs = _fields(fields)
        checked = _providers(providers)
        names: list[object] = [name for _, name in pairs]
        names += [name for provider in checked for name in provider.names]
        _check_names(names, reserved)
        defaults = iter(_defaults(default, names))
        own = tuple(
            (key, name, next(defaults), isinstance(key, Key) and key.has_default)
            for key, name in pairs
        )
        provided = tuple(
            (provider, tuple((name, next(defaults)) for name in provider.names))
            for provider in checked
        )
        return cls(resolved, own, provided, default, overwrite)

    def describe(self, owner: object) -> str:
        shown = {key: name for key, name, _, _ in self.fields}
        providers = [provider for provider, _ in self.provided]
        extra = f", providers={providers!r}" if providers else ""
        return (
            f"{type(owner).__name__}({self.context!r}, fields={shown!r}, "
            f"default={self.default!r}, overwrite={self.overwrite!r}{extra})"
        )

    def fill(self, target: MutableMapping[str, Any]) -> None:
        """Put the current values of the fields into ``target`` (a record's ``__dict__``)."""
        get = self.context.get
        overwrite = self.overwrite
        try:
            for key, name, default, own_default in self.fields:
                if overwrite or name not in target:
                    # A Key with a default gives that default, as ctx[key] does in the code.
                    target[name] = get(key) if own_default else get(key, default)
        except AioContextError:
            # No data here, so the first read raised: every field gets its default.
            for _, name, default, _ in self.fields:
                if overwrite or name not in target:
                    target[name] = default
        for provider, named in self.provided:
            values = provider.values()
            for name, default in named:
                if overwrite or name not in target:
                    target[name] = values.get(name, default)


class FieldProvider(abc.ABC):
    """Log fields that come from elsewhere than a context: the current span's ids, say.

    Give providers to :class:`ContextFilter`, :func:`structlog_processor` (and the loguru
    patcher) with ``providers=[...]``; they fill their fields after the context's, on every
    record, under the same rules (``overwrite``, ``default``). Their names are checked with
    the context fields' when the filter is made.
    :class:`aiocontext.opentelemetry.SpanFields` is one.

    Example:
        >>> import threading
        >>> class ThreadName(FieldProvider):
        ...     names = ("thread_name",)
        ...     def values(self):
        ...         return {"thread_name": threading.current_thread().name}
        >>> ThreadName().values()
        {'thread_name': 'MainThread'}
    """

    @property
    @abc.abstractmethod
    def names(self) -> tuple[str, ...]:
        """The names of the fields it fills, fixed for the provider's lifetime."""

    @abc.abstractmethod
    def values(self) -> Mapping[str, object]:
        """The current values, by name; a name left out gets the field's default.

        It is called for every record, in the code that emits it: keep it cheap, and never
        raise (an exception propagates from the logging call).
        """


class ContextFilter(logging.Filter):
    """A :class:`logging.Filter` that copies context values onto every log record.

    Each record gets one attribute per field, holding the emitting task's value for the
    field's key, so formatters can use ``%(request_id)s``. It never drops a record
    (``filter`` always returns ``True``) and never raises because of the context: where the
    context has no data (no task, no running loop, a loop it is not attached to, a thread
    that does not run in a copy of a task's ``contextvars``: a plain thread where threads do
    not inherit context, a :class:`~aiocontext.executors.CleanThreadPoolExecutor` worker)
    or no value for a key, the record gets the field's default. A
    :class:`~aiocontext.Key` that has a default of its own gives that default, as
    ``ctx[key]`` does. Exceptions other than aiocontext's (a bug in your policy or in a
    key's ``default_factory``) propagate from the logging call, like any filter's.

    Add it to the *handlers* (a filter on a logger misses records from its child loggers).
    It works with :func:`logging.config.dictConfig`: give ``"()":
    "aiocontext.logging.ContextFilter"`` and ``"context": "package.module:ATTRIBUTE"``.

    Args:
        context: The context to read, or a ``"package.module:ATTRIBUTE"`` string naming one
            (imported when the filter is made; ``"package.module:Class.ATTRIBUTE"`` works
            too). With ``dictConfig``, ``"ext://package.module.ATTRIBUTE"`` also works.
        fields: The keys to copy (a ``str`` key is logged under its own name, a ``Key``
            under its ``.name``), or a mapping of keys to the attribute names to use.
        default: The value of a field the context has no value for; a mapping gives
            per-field defaults, keyed by attribute name (fields it omits get ``"-"``).
        overwrite: Replace attributes the record already has (such as ones passed with
            ``extra=``). By default they are kept.
        name: Passed to :class:`logging.Filter`. This filter never drops records, so it
            does not filter by logger name; the argument is there so it can stand wherever
            a ``logging.Filter`` is expected.
        providers: :class:`FieldProvider` objects filling fields that do not come from the
            context, such as :class:`aiocontext.opentelemetry.SpanFields` (the current
            span's trace and span ids). Their fields follow ``default`` and ``overwrite``.

    Raises:
        TypeError: ``context`` is not a Context (or does not name one), a key is not a
            ``str`` or ``Key``, ``fields`` is a single key instead of a collection, or
            ``providers`` is not a collection of :class:`FieldProvider` objects.
        ValueError: ``context`` is a malformed string, ``fields`` is empty, two fields
            (of the context or of providers) share a name, a name is one every LogRecord
            already has (``name``, ``msg``, ``message``, ...), or ``default`` has entries
            for names that are not fields.
        ImportError: The module ``context`` names cannot be imported.
        AttributeError: The module has no such attribute.

    Example:
        >>> import asyncio, logging, sys
        >>> from aiocontext import Context, loop_factory
        >>> from aiocontext.logging import ContextFilter
        >>> request = Context(name="request")
        >>> handler = logging.StreamHandler(sys.stdout)
        >>> handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
        >>> handler.addFilter(ContextFilter(request))
        >>> log = logging.getLogger("doctest.aiocontext.logging")
        >>> log.addHandler(handler)
        >>> log.propagate = False
        >>> async def main():
        ...     request["request_id"] = "r-7"
        ...     await asyncio.create_task(asyncio.to_thread(log.warning, "in a thread"))
        >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
        ...     runner.run(main())
        [r-7] in a thread
        >>> log.warning("outside any task")
        [-] outside any task
        >>> log.removeHandler(handler)
    """

    def __init__(
        self,
        context: Context[Any, Any] | str,
        fields: Fields = ("request_id",),
        *,
        default: object = DEFAULT,
        overwrite: bool = False,
        name: str = "",
        providers: Iterable[FieldProvider] = (),
    ) -> None:
        super().__init__(name)
        self._plan = _Plan.make(context, fields, default, overwrite, _RECORD_ATTRIBUTES, providers)

    def __repr__(self) -> str:
        return self._plan.describe(self)

    @property
    def context(self) -> Context[Any, Any]:
        """The context the filter reads."""
        return self._plan.context

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the record's context attributes; return ``True`` (the record is kept).

        Raises:
            Exception: Only what a bug outside aiocontext raises while reading the context
                (aiocontext's own errors give the defaults).
        """
        self._plan.fill(record.__dict__)
        return True


class StructlogProcessor:
    """A structlog processor that adds context values to every event dict.

    Make it with :func:`structlog_processor`; the arguments and behaviour are those of
    :class:`ContextFilter`, applied to the event dict instead of a log record: keys the event
    dict already has (bound with ``log.bind(...)`` or passed to the call) are kept unless
    ``overwrite=True``, and nothing structlog-specific is imported.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context, loop_factory
        >>> request = Context(name="request")
        >>> add_request_id = structlog_processor(request)
        >>> async def main():
        ...     request["request_id"] = "r-7"
        ...     return add_request_id(None, "info", {"event": "hello"})
        >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
        ...     runner.run(main())
        {'event': 'hello', 'request_id': 'r-7'}
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
        """The context the processor reads."""
        return self._plan.context

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Add the fields to ``event_dict`` and return it."""
        self._plan.fill(event_dict)
        return event_dict


def structlog_processor(
    context: Context[Any, Any] | str,
    fields: Fields = ("request_id",),
    *,
    default: object = DEFAULT,
    overwrite: bool = False,
    providers: Iterable[FieldProvider] = (),
) -> StructlogProcessor:
    """Return a structlog processor adding ``fields`` of ``context`` to every event.

    Put it in the processor chain before the renderer::

        structlog.configure(processors=[
            aiocontext.logging.structlog_processor(request_context),
            structlog.processors.JSONRenderer(),
        ])

    Args:
        context: The context to read, or a ``"package.module:ATTRIBUTE"`` string naming one.
        fields: The keys to add (each under its own name, a ``Key`` under its ``.name``),
            or a mapping of keys to the names to use in the event dict.
        default: The value of a field the context has no value for (or has no data at
            all: outside any task, in a thread without data); a mapping gives per-field
            defaults.
        overwrite: Replace keys the event dict already has. By default they are kept.
        providers: :class:`FieldProvider` objects filling fields that do not come from the
            context, as for :class:`ContextFilter`.

    Returns:
        The processor, a callable ``(logger, method_name, event_dict) -> event_dict``.

    Raises:
        TypeError, ValueError, ImportError, AttributeError: As for :class:`ContextFilter`.
    """
    return StructlogProcessor(
        context, fields, default=default, overwrite=overwrite, providers=providers
    )
