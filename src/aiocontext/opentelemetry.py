"""OpenTelemetry: span ids in log lines, keys to and from OTel Baggage, ``traceparent`` ids.

Three small pieces, each usable alone, and each working whether OpenTelemetry's own
instrumentation (ASGI, aiohttp, httpx, ...) is active or not:

* :class:`SpanFields`, a :class:`~aiocontext.logging.FieldProvider`: the current span's
  trace id and span id in every log line, next to the context's fields
  (``ContextFilter(request, providers=[SpanFields()])``, and the same for
  :func:`~aiocontext.logging.structlog_processor` and :mod:`aiocontext.loguru`). Where no
  span is recording (no instrumentation, no SDK, outside any request) they get the default,
  ``"-"``.
* :class:`BaggageKeys`: chosen keys of chosen contexts written into OpenTelemetry Baggage
  (so OpenTelemetry's propagators send them), and read back from it, only for the names
  on an inbound allowlist.
* :class:`TraceparentRequestId`: a header format for :class:`~aiocontext.propagation.Propagator`
  that takes the request id from an incoming W3C ``traceparent`` header (its trace id), so
  the request id and the trace id are one.

Only ``opentelemetry-api`` is needed (``pip install aiocontext[opentelemetry]``); the SDK is
the application's choice. The core of aiocontext never imports this module.

Example:
    >>> import logging
    >>> from aiocontext import Context
    >>> from aiocontext.logging import ContextFilter
    >>> request = Context(name="request")
    >>> log_filter = ContextFilter(request, providers=[SpanFields()])
    >>> record = logging.makeLogRecord({"msg": "outside any span"})
    >>> log_filter.filter(record)
    True
    >>> (record.request_id, record.trace_id, record.span_id)
    ('-', '-', '-')
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Final, cast

import attrs
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from ._context import Context
from ._errors import AioContextError
from ._header_codecs import LINE_BREAKS, check_header
from .logging import FieldProvider
from .propagation import (
    _MISSING,  # pyright: ignore[reportPrivateUsage]
    Baggage,
    Carrier,
    Field,
    FieldSpec,
    RequestIdHeader,
    _as_field,  # pyright: ignore[reportPrivateUsage]
    header_values,
)

__all__ = [
    "TRACEPARENT_HEADER",
    "BaggageKeys",
    "SpanFields",
    "TraceparentRequestId",
    "trace_id_of",
]

TRACEPARENT_HEADER: Final = "traceparent"
"""The W3C Trace Context header name."""

# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex; a later version may add
# fields after a "-" (W3C Trace Context, "Versioning of traceparent").
_TRACEPARENT: Final = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?\Z"
)


@attrs.frozen
class SpanFields(FieldProvider):
    """The current span's trace id and span id, as log fields.

    The ids are lowercase hex, 32 and 16 digits, as in ``traceparent`` and in what
    OpenTelemetry exports. Where there is no valid current span (no SDK installed, no span
    started, code outside any request) the fields get the filter's default. It reads
    OpenTelemetry's own context (``contextvars``), so it sees the span of the code that
    logs, in tasks and in ``to_thread`` workers alike.

    Args:
        trace_id: The field name of the trace id.
        span_id: The field name of the span id.

    Example:
        >>> from opentelemetry.trace import NonRecordingSpan, SpanContext, use_span
        >>> span = NonRecordingSpan(SpanContext(trace_id=1, span_id=2, is_remote=False))
        >>> with use_span(span):
        ...     SpanFields().values()
        {'trace_id': '00000000000000000000000000000001', 'span_id': '0000000000000002'}
    """

    trace_id: str = "trace_id"
    span_id: str = "span_id"

    @property
    def names(self) -> tuple[str, ...]:
        """``(trace_id, span_id)``: the two field names."""
        return (self.trace_id, self.span_id)

    def values(self) -> dict[str, object]:
        """The current span's ids, by field name; nothing if there is no valid span."""
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return {}
        return {
            self.trace_id: format(span_context.trace_id, "032x"),
            self.span_id: format(span_context.span_id, "016x"),
        }


def _allowed(names: object, fields: Iterable[Field[Any]]) -> frozenset[str]:
    """Check the inbound allowlist against the fields' wire names."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TypeError(
            f"inbound must be a collection of baggage names such as inbound=['tenant'] (or "
            f"inbound=() to accept none), got {type(names).__name__} {names!r}"
        )
    known = {item.name for item in fields}
    allowed = frozenset(_str_names(cast("Iterable[object]", names)))
    unknown = sorted(allowed - known)
    if unknown:
        raise ValueError(
            f"inbound names {unknown!r} are not among the keys' names {sorted(known)!r}: "
            f"only names of keys given can be accepted"
        )
    return allowed


def _str_names(names: Iterable[object]) -> list[str]:
    """Each name of an allowlist, checked to be a ``str``."""
    checked: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"an inbound name must be a str, got {type(name).__name__} {name!r}")
        checked.append(name)
    return checked


class BaggageKeys:
    """Chosen context keys to and from OpenTelemetry Baggage, inbound only when allowed.

    Outbound, :meth:`outbound` puts the current values of the keys into OpenTelemetry's
    Baggage for a block, so OpenTelemetry's propagators (its instrumented HTTP clients, or
    ``opentelemetry.propagate.inject``) send them in the ``baggage`` header. Inbound,
    :meth:`inbound` reads the Baggage that OpenTelemetry extracted for the request (its
    server instrumentation does that) and keeps only the names on the ``inbound`` allowlist:
    baggage comes from outside, and anything not allowed is ignored. Values are validated as
    :class:`~aiocontext.propagation.Baggage` validates them: text only, no character that
    ends a line, decoded by the field's codec (a value the codec refuses is dropped).

    Without OpenTelemetry's instrumentation nothing extracts or injects Baggage; use
    :class:`~aiocontext.propagation.Propagator` with the
    :class:`~aiocontext.propagation.Baggage` format instead, which reads and writes the same
    header itself.

    Args:
        keys: For each context, the keys that travel, as for
            :class:`~aiocontext.propagation.Propagator` (``str`` and ``Key[str]`` keys, or
            :func:`~aiocontext.propagation.field` with a codec or another name).
        inbound: The baggage names accepted from outside (wire names of ``keys``); ``()``
            accepts none. It must be given: say what you trust.

    Raises:
        TypeError: ``keys`` or ``inbound`` has the wrong shape.
        ValueError: No key is given, two keys share a name, a name is not a baggage key, or
            an inbound name is not one of the keys' names.

    Example:
        >>> from aiocontext import Context
        >>> from opentelemetry import baggage
        >>> request = Context(name="request")
        >>> keys = BaggageKeys({request: ["tenant", "user"]}, inbound=["tenant"])
        >>> with request.restore({"tenant": "acme", "user": "ann"}), keys.outbound():
        ...     dict(baggage.get_all())
        {'tenant': 'acme', 'user': 'ann'}
        >>> incoming = baggage.set_baggage("user", "mallory", baggage.set_baggage("tenant", "t"))
        >>> keys.inbound(incoming)[request]  # "user" is not allowed in
        {'tenant': 't'}
    """

    __slots__ = ("_allowed", "_fields")

    def __init__(
        self, keys: Mapping[Context[Any, Any], Iterable[FieldSpec]], *, inbound: Iterable[str]
    ) -> None:
        if not isinstance(keys, Mapping):
            raise TypeError(
                f"keys must map contexts to the keys that travel, such as "
                f"{{request: ['tenant']}}, got {type(keys).__name__} {keys!r}"
            )
        fields: list[tuple[Context[Any, Any], tuple[Field[Any], ...]]] = []
        names: set[str] = set()
        for context, specs in keys.items():
            if not isinstance(context, Context):
                raise TypeError(
                    f"keys must map aiocontext.Context objects to keys, got "
                    f"{type(context).__name__} {context!r} as a key"
                )
            if isinstance(specs, str) or not isinstance(specs, Iterable):
                raise TypeError(
                    f"the keys of {context!r} must be a list of keys such as ['tenant'], got "
                    f"{type(specs).__name__} {specs!r}"
                )
            own = tuple(_as_field(spec) for spec in specs)
            for item in own:
                Baggage().check_name(item.name)
                if item.name in names:
                    raise ValueError(f"two keys travel under the name {item.name!r}")
                names.add(item.name)
            fields.append((context, own))
        if not names:
            raise ValueError("BaggageKeys needs at least one key, such as {request: ['tenant']}")
        self._fields = tuple(fields)
        self._allowed = _allowed(inbound, (item for _, own in fields for item in own))

    def __repr__(self) -> str:
        keys = ", ".join(
            f"{context!r}: [{', '.join(repr(item.key) for item in own)}]"
            for context, own in self._fields
        )
        return f"BaggageKeys({{{keys}}}, inbound={sorted(self._allowed)!r})"

    @property
    def allowed(self) -> frozenset[str]:
        """The baggage names accepted inbound."""
        return self._allowed

    def to_baggage(self, parent: otel_context.Context | None = None) -> otel_context.Context:
        """An OpenTelemetry context: ``parent`` (by default the current one) with the current
        values of the keys set as Baggage entries.

        A key with no value, or a context with no data here, adds nothing; a value holding a
        character that ends a line is left out.

        Raises:
            TypeError: A value is not a ``str`` and its key has no codec.
        """
        result = otel_context.get_current() if parent is None else parent
        for context, own in self._fields:
            try:
                for item in own:
                    value = context.get(item.key, _MISSING)
                    if value is not _MISSING:
                        text = item.encode(value)
                        if not LINE_BREAKS.search(text):
                            result = baggage.set_baggage(item.name, text, result)
            except AioContextError:  # no data here: nothing to send for this context
                continue
        return result

    @contextlib.contextmanager
    def outbound(self) -> Generator[None]:
        """Make :meth:`to_baggage` the current OpenTelemetry context for a ``with`` block.

        Raises:
            TypeError: As for :meth:`to_baggage`.
        """
        token = otel_context.attach(self.to_baggage())
        try:
            yield
        finally:
            otel_context.detach(token)

    def inbound(
        self, source: otel_context.Context | None = None
    ) -> dict[Context[Any, Any], dict[Any, Any]]:
        """The allowed, valid Baggage entries of ``source`` (by default the current
        OpenTelemetry context), as data for each context (every context is in the result)."""
        entries = baggage.get_all(source)
        data: dict[Context[Any, Any], dict[Any, Any]] = {}
        for context, own in self._fields:
            values = data[context] = {}
            for item in own:
                text = entries.get(item.name) if item.name in self._allowed else None
                if isinstance(text, str) and not LINE_BREAKS.search(text):
                    value = item.decode(text)
                    if value is not _MISSING:
                        values[item.key] = value
        return data

    def apply(self, source: otel_context.Context | None = None) -> None:
        """Write :meth:`inbound` into each context's current data (values it does not have
        stay as they are).

        Raises:
            aiocontext.AioContextError: A context has no data here (see
                :meth:`Context.update <aiocontext.Context.update>`).
        """
        for context, values in self.inbound(source).items():
            if values:
                context.update(values)


def trace_id_of(traceparent: str) -> str | None:
    """The trace id of a W3C ``traceparent`` header value, or ``None`` if it is invalid.

    Valid: lowercase hex fields ``version-trace_id-parent_id-flags``; version ``ff`` is
    invalid, version ``00`` has exactly those four fields (a later version may have more);
    neither id may be all zeros.

    Example:
        >>> trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        '4bf92f3577b34da6a3ce929d0e0e4736'
        >>> trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
        True
    """
    found = _TRACEPARENT.match(traceparent.strip(" \t"))
    if found is None or found["version"] == "ff":
        return None
    if found["version"] == "00" and found["rest"] is not None:
        return None
    if found["trace_id"] == "0" * 32 or found["parent_id"] == "0" * 16:
        return None
    return found["trace_id"]


@attrs.frozen
class TraceparentRequestId(RequestIdHeader):
    """The request id taken from an incoming ``traceparent`` header: its trace id.

    A header format for :class:`~aiocontext.propagation.Propagator` carrying one key (the
    request id), so the request-id middlewares can use it: with
    ``propagator=Propagator({request: ["request_id"]}, codec=TraceparentRequestId())``, a
    request without a valid request-id header of its own takes the trace id of its valid
    ``traceparent`` (present once) as its request id, and the request id in log lines
    equals the trace id in the spans. It never writes: sending ``traceparent`` is
    OpenTelemetry's job (its instrumentation or ``opentelemetry.propagate.inject``).

    It reads the header itself, so it works whether OpenTelemetry's instrumentation is
    active or not.

    Example:
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> propagator = Propagator({request: ["request_id"]}, codec=TraceparentRequestId())
        >>> header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        >>> propagator.extract({"traceparent": header})[request]
        {'request_id': '4bf92f3577b34da6a3ce929d0e0e4736'}
    """

    # Always "traceparent". Pyright types a converter field's override as a new descriptor type,
    # though attrs makes it a plain str attribute as in the base class.
    header: str = attrs.field(  # pyright: ignore[reportIncompatibleVariableOverride]
        default=TRACEPARENT_HEADER, init=False, converter=check_header
    )

    def encode(self, values: Mapping[str, str]) -> dict[str, str]:
        """Nothing: OpenTelemetry writes ``traceparent``."""
        return {}

    def decode(self, carrier: Carrier) -> dict[str, str]:
        """``{name: trace_id}`` if ``traceparent`` is there once and valid, else nothing."""
        values = header_values(carrier, TRACEPARENT_HEADER)
        trace_id = trace_id_of(values[0]) if len(values) == 1 else None
        return {} if trace_id is None else {self.name: trace_id}
