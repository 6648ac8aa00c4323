"""Context that crosses process boundaries: chosen keys, encoded into headers and back.

A :class:`Propagator` says which keys of which contexts travel and in which header format
(a :class:`HeaderCodec`). It turns the current data into a *carrier*, a mapping of header
names to values (``propagator.inject(headers)``), and a carrier back into data, validated
(``propagator.extract(headers)``, or ``with propagator.restore(headers):`` to make it the
data of a block). The integrations use it on every outgoing HTTP request
(:mod:`aiocontext.httpx`, :func:`aiocontext.aiohttp.client_trace_config`), on every job
enqueued and run (:mod:`aiocontext.celery`, :mod:`aiocontext.arq`) and in the request-id
middlewares; it imports nothing beyond the standard library and the core.

Two formats:

* :class:`RequestIdHeader`: one key in one header, ``X-Request-ID: <id>``, with the rules
  the request-id middlewares apply: at most 128 of ``A-Za-z0-9._:+=/-``, starting with a
  letter or digit. Anything else is not sent and not accepted.
* :class:`Baggage`: any number of keys in the W3C ``baggage`` header,
  ``baggage: request_id=r-1,tenant=acme``, values percent-encoded (UTF-8). On the way in,
  malformed members are dropped (never repaired, never echoed), as are members past the
  limits of 180 members and 8,192 bytes (UTF-8 bytes, over all ``baggage`` headers); on the
  way out members that would break them are left out. No value that holds a character that
  ends a line (C0 and C1 controls, U+2028, U+2029) is read or written.

A carrier may hold ``str`` or ``bytes`` names and values, or lists of values; bytes are read
as UTF-8, and whatever is not text is skipped: :meth:`Propagator.extract` never raises
because of what a carrier holds.

A value that is not a ``str`` travels only with a :class:`ValueCodec` saying how it is
written as text (``field(ATTEMPT, codec=ValueCodec(str, int))``); a ``Key[int]`` without one
is refused by the type checker, and a non-``str`` value found without one raises
``TypeError`` when it would be sent.

Example:
    >>> from aiocontext import Context
    >>> from aiocontext.propagation import Baggage, Propagator
    >>> request = Context(name="request")
    >>> propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())
    >>> with request.restore({"request_id": "r-1", "tenant": "Zoë & co"}):
    ...     headers = {}
    ...     propagator.inject(headers)
    >>> headers
    {'baggage': 'request_id=r-1,tenant=Zo%C3%AB%20&%20co'}
    >>> with propagator.restore(headers):
    ...     request["tenant"]
    'Zoë & co'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable, Mapping, MutableMapping
from typing import Any, Final, Generic, TypeAlias, TypeVar, overload

import attrs

from . import _header_codecs as _codecs
from ._context import Context
from ._errors import AioContextError
from ._header_codecs import Baggage, HeaderCodec, RequestIdHeader, header_values
from ._key import Key

__all__ = [
    "BAGGAGE_HEADER",
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "Baggage",
    "Carrier",
    "Field",
    "FieldSpec",
    "HeaderCodec",
    "Propagator",
    "RequestIdHeader",
    "ValueCodec",
    "field",
    "header_values",
]

T = TypeVar("T")

Carrier: TypeAlias = _codecs.Carrier
"""Headers: a mapping of names to values, as :func:`header_values` reads them. Plain dicts
are read case-insensitively, with ``str`` or ``bytes`` names and values (or lists of values);
``httpx.Headers``, aiohttp's multidicts and Starlette's ``Headers`` also give every value of a
repeated header. Whatever else a carrier holds is skipped."""

BAGGAGE_HEADER: Final = _codecs.BAGGAGE_HEADER
"""The W3C Baggage header name, ``"baggage"``."""

MAX_BAGGAGE_BYTES: Final = _codecs.MAX_BAGGAGE_BYTES
"""The longest baggage string read or written, in bytes (W3C Baggage limits): 8,192."""

MAX_BAGGAGE_MEMBERS: Final = _codecs.MAX_BAGGAGE_MEMBERS
"""The most list-members read or written (W3C Baggage limits): 180."""

_MISSING: Final = object()


@attrs.frozen
class ValueCodec(Generic[T]):
    """How a value that is not a ``str`` is written as text, and read back.

    Args:
        encode: Turns a value into text (``str`` for an ``int``).
        decode: Turns text back into a value; an exception (``ValueError`` from ``int``, say)
            means the text is not valid, and the value is dropped.

    Example:
        >>> ValueCodec(str, int).decode("42")
        42
    """

    encode: Callable[[T], str]
    decode: Callable[[str], T]


@attrs.frozen
class Field(Generic[T]):
    """One key that travels: the key, its name on the wire, its codec. Made by :func:`field`."""

    key: str | Key[T]
    name: str
    codec: ValueCodec[T] | None

    def encode(self, value: T) -> str:
        """``value`` as text.

        Raises:
            TypeError: The value is not a ``str`` and the field has no codec.
        """
        text: object = value if self.codec is None else self.codec.encode(value)
        if not isinstance(text, str):
            raise TypeError(
                f"cannot send {self.key!r}: its value {value!r} is a {type(value).__name__}, "
                f"not a str. Give the key a codec: field(key, codec=ValueCodec(str, int)) "
                f"(encode to text, decode back)"
                if self.codec is None
                else f"the codec of {self.key!r} turned {value!r} into {text!r}, not a str"
            )
        return text

    def decode(self, text: str) -> object:
        """``text`` as a value, or :data:`_MISSING` if the codec refuses it."""
        if self.codec is None:
            return text
        try:
            return self.codec.decode(text)
        except Exception:  # noqa: BLE001 - any failure of the codec on foreign input drops the value
            return _MISSING


@overload
def field(key: str | Key[str], *, name: str | None = None) -> Field[str]: ...
@overload
def field(key: str | Key[T], *, codec: ValueCodec[T], name: str | None = None) -> Field[T]: ...
def field(
    key: str | Key[Any], *, codec: ValueCodec[Any] | None = None, name: str | None = None
) -> Field[Any]:
    """Describe a key that travels.

    Args:
        key: The context key: a ``str`` or a :class:`~aiocontext.Key`.
        codec: How a non-``str`` value is written as text and read back. A ``Key[int]`` (or
            any ``Key`` whose values are not ``str``) needs one; the type checker says so.
        name: The name on the wire (a baggage key); by default the key itself, or the
            ``Key``'s name.

    Returns:
        A :class:`Field` for :class:`Propagator`.

    Raises:
        TypeError: ``key`` is neither a ``str`` nor a ``Key``, ``codec`` is not a
            :class:`ValueCodec`, or ``name`` is not a ``str``.

    Example:
        >>> from aiocontext import Key
        >>> ATTEMPT = Key[int]("attempt")
        >>> field(ATTEMPT, codec=ValueCodec(str, int)).name
        'attempt'
    """
    if not isinstance(key, str | Key):
        raise TypeError(
            f"a field's key must be a str or an aiocontext.Key, got {type(key).__name__} {key!r}"
        )
    if codec is not None and not isinstance(codec, ValueCodec):
        raise TypeError(
            f"codec must be an aiocontext.propagation.ValueCodec such as ValueCodec(str, int), "
            f"got {type(codec).__name__} {codec!r}"
        )
    if name is None:
        name = key if isinstance(key, str) else key.name
    elif not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    return Field(key, name, codec)


FieldSpec: TypeAlias = "str | Key[str] | Field[Any]"
"""A key that travels: a ``str`` or ``Key[str]`` (sent as it is), or a :func:`field`."""


def _as_field(spec: object) -> Field[Any]:
    if isinstance(spec, Field):
        return spec  # pyright: ignore[reportUnknownVariableType]
    if isinstance(spec, str | Key):
        return field(spec)  # pyright: ignore[reportUnknownArgumentType]
    raise TypeError(
        f"a key to propagate must be a str, an aiocontext.Key or a field(...), got "
        f"{type(spec).__name__} {spec!r}"
    )


class Propagator:
    """Which keys of which contexts travel, in which header format.

    Args:
        keys: For each context, the keys of it that travel: ``str`` keys and ``Key[str]``
            keys as they are, other keys as :func:`field` with a codec. For example
            ``{request: ["request_id"]}``.
        codec: The header format: :class:`RequestIdHeader` (the default, one key) or
            :class:`Baggage` (any number).

    Raises:
        TypeError: ``keys`` is not a mapping of contexts to iterables of keys, or ``codec``
            is not a :class:`HeaderCodec`.
        ValueError: No key is given, two keys have the same wire name, a name is not valid
            in the format, or the format carries fewer keys than given
            (:class:`RequestIdHeader` carries one: use :class:`Baggage` for several).

    Example:
        >>> from aiocontext import Context
        >>> request = Context(name="request")
        >>> propagator = Propagator({request: ["request_id"]})
        >>> with request.restore({"request_id": "r-1"}):
        ...     propagator.encode()
        {'X-Request-ID': 'r-1'}
    """

    __slots__ = ("_codec", "_fields")

    def __init__(
        self,
        keys: Mapping[Context[Any, Any], Iterable[FieldSpec]],
        *,
        codec: HeaderCodec | None = None,
    ) -> None:
        if not isinstance(keys, Mapping):
            raise TypeError(
                f"keys must map contexts to the keys that travel, such as "
                f"{{request: ['request_id']}}, got {type(keys).__name__} {keys!r}"
            )
        if codec is None:
            codec = RequestIdHeader()
        elif not isinstance(codec, HeaderCodec):
            raise TypeError(
                f"codec must be a HeaderCodec such as RequestIdHeader() or Baggage(), got "
                f"{type(codec).__name__} {codec!r}"
            )
        fields: list[tuple[Context[Any, Any], tuple[Field[Any], ...]]] = []
        names: set[str] = set()
        for context, specs in keys.items():
            if not isinstance(context, Context):
                raise TypeError(
                    f"keys must map aiocontext.Context objects to keys, got "
                    f"{type(context).__name__} {context!r} as a key"
                )
            if isinstance(specs, str | Key) or not isinstance(specs, Iterable):
                raise TypeError(
                    f"the keys of {context!r} must be a list of keys such as ['request_id'], "
                    f"got {type(specs).__name__} {specs!r}"
                )
            own = tuple(_as_field(spec) for spec in specs)
            for item in own:
                codec.check_name(item.name)
                if item.name in names:
                    raise ValueError(
                        f"two keys travel under the name {item.name!r}: rename one "
                        f"with field(key, name=...)"
                    )
                names.add(item.name)
            fields.append((context, own))
        if not names:
            raise ValueError(
                "a Propagator needs at least one key, such as {request: ['request_id']}"
            )
        if codec.max_fields is not None and len(names) > codec.max_fields:
            raise ValueError(
                f"{codec!r} carries {codec.max_fields} key(s), got {len(names)} "
                f"({', '.join(sorted(names))}): use Baggage() to carry several"
            )
        if isinstance(codec, RequestIdHeader):
            codec = attrs.evolve(codec, name=next(iter(names)))
        self._codec = codec
        self._fields = tuple(fields)

    def __repr__(self) -> str:
        keys = ", ".join(
            f"{context!r}: [{', '.join(repr(item.key) for item in own)}]"
            for context, own in self._fields
        )
        return f"Propagator({{{keys}}}, codec={self._codec!r})"

    @property
    def codec(self) -> HeaderCodec:
        """The header format."""
        return self._codec

    @property
    def contexts(self) -> tuple[Context[Any, Any], ...]:
        """The contexts whose keys travel, in the order given."""
        return tuple(context for context, _ in self._fields)

    @property
    def headers(self) -> tuple[str, ...]:
        """The header names the propagator writes."""
        return self._codec.headers

    def encode(self) -> dict[str, str]:
        """The headers carrying the current code's values of the keys.

        A key with no value is not sent, nor is a context with no data here (code outside
        any task, a loop it is not attached to).

        Raises:
            TypeError: A value is not a ``str`` and its key has no codec.
        """
        return self._codec.encode(self.values())

    def values(self) -> dict[str, str]:
        """The current values of the keys as text, by wire name (what :meth:`encode` sends).

        Raises:
            TypeError: As for :meth:`encode`.
        """
        values: dict[str, str] = {}
        for context, own in self._fields:
            try:
                for item in own:
                    value = context.get(item.key, _MISSING)
                    if value is not _MISSING:
                        values[item.name] = item.encode(value)
            except AioContextError:  # no data here: nothing to send for this context
                continue
        return values

    def inject(self, carrier: MutableMapping[str, str]) -> None:
        """Add the headers of :meth:`encode` to ``carrier``, never replacing one it has.

        Names are compared case-insensitively, so a header the caller set (in any case)
        stays as it is.

        Raises:
            TypeError: As for :meth:`encode`.
        """
        headers = self.encode()
        if headers:
            present = {name.lower() for name in carrier}
            for name, value in headers.items():
                if name.lower() not in present:
                    carrier[name] = value

    def extract(self, carrier: Carrier) -> dict[Context[Any, Any], dict[Any, Any]]:
        """The data the carrier holds for each context: only valid values of the keys.

        Every context of the propagator is in the result, with an empty dict if the carrier
        has nothing for it. Invalid, unknown and undecodable values are dropped; this never
        raises because of what the carrier holds (``bytes`` names and values are read as
        UTF-8, lists as repeated values, anything else that is not text is skipped: see
        :func:`header_values`).

        Raises:
            TypeError: ``carrier`` is not a mapping.
        """
        if not isinstance(carrier, Mapping):
            raise TypeError(
                f"carrier must be a mapping of header names to values, got "
                f"{type(carrier).__name__} {carrier!r}"
            )
        texts = self._codec.decode(carrier)
        data: dict[Context[Any, Any], dict[Any, Any]] = {}
        for context, own in self._fields:
            values = data[context] = {}
            for item in own:
                text = texts.get(item.name)
                if text is not None:
                    value = item.decode(text)
                    if value is not _MISSING:
                        values[item.key] = value
        return data

    @contextlib.contextmanager
    def restore(self, carrier: Carrier) -> Generator[None]:
        """Make the carrier's data each context's data for a ``with`` block.

        Each context's data in the block is exactly what :meth:`extract` found for it
        (nothing else: not what the code had before), and the previous data comes back on
        exit. Works anywhere, with or without an event loop, like
        :meth:`Context.restore <aiocontext.Context.restore>`.

        Raises:
            TypeError: ``carrier`` is not a mapping.
        """
        data = self.extract(carrier)
        with contextlib.ExitStack() as stack:
            for context, values in data.items():
                stack.enter_context(context.restore(values))
            yield
