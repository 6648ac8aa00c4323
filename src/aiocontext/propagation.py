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

import abc
import contextlib
import re
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Mapping, MutableMapping
from typing import Any, Final, Generic, TypeAlias, TypeVar, cast, overload

import attrs

from ._context import Context
from ._errors import AioContextError
from ._key import Key
from ._request_id import is_valid

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

Carrier: TypeAlias = Mapping[Any, object]
"""Headers: a mapping of names to values, as :func:`header_values` reads them. Plain dicts
are read case-insensitively, with ``str`` or ``bytes`` names and values (or lists of values);
``httpx.Headers``, aiohttp's multidicts and Starlette's ``Headers`` also give every value of a
repeated header. Whatever else a carrier holds is skipped."""

BAGGAGE_HEADER: Final = "baggage"
"""The W3C Baggage header name."""

MAX_BAGGAGE_BYTES: Final = 8192
"""The longest baggage string read or written, in bytes (W3C Baggage limits)."""

MAX_BAGGAGE_MEMBERS: Final = 180
"""The most list-members read or written (W3C Baggage limits)."""

_MISSING: Final = object()

# RFC 9110 token: a header name, and a baggage key.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# W3C baggage-octet: printable ASCII but space, DQUOTE, comma, semicolon and backslash.
_BAGGAGE_OCTETS: Final = frozenset(
    chr(c)
    for c in (0x21, *range(0x23, 0x2C), *range(0x2D, 0x3B), *range(0x3C, 0x5C), *range(0x5D, 0x7F))
)
_SAFE_OCTETS: Final = _BAGGAGE_OCTETS - {"%"}  # written as they are; "%" is escaped too
# A baggage value: baggage octets, each "%" starting a percent-encoded byte.
_VALUE: Final = re.compile(r"(?:[!#$&-+\--:<-\[\]-~]|%[0-9A-Fa-f]{2})*\Z")
_OWS: Final = " \t"
# Characters that end a line for some reader (C0 and C1 controls, DEL, NEL among the C1,
# and the Unicode line and paragraph separators): a value holding one could forge log lines.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: object) -> str | None:
    """A header value as text: a ``str`` as it is, ``bytes`` decoded as UTF-8; else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _texts(value: object) -> list[str]:
    """The text of one header value, or of each in a list or tuple of values."""
    if isinstance(value, str):  # the common case first
        return [value]
    items = cast("Iterable[object]", value) if isinstance(value, list | tuple) else (value,)
    return [text for text in map(_text, items) if text is not None]


def _lookup(carrier: object, name: str) -> Iterable[object] | None:
    """Every value of header ``name``, by the carrier's own multi-value lookup if it has one
    (aiohttp's ``getall``, httpx's ``get_list``, Starlette's and Werkzeug's ``getlist``)."""
    if type(carrier) is dict:  # the common plain carrier has none: no attribute lookups
        return None
    getall: Callable[[str, tuple[()]], Iterable[object]] | None = getattr(carrier, "getall", None)
    if callable(getall):
        return getall(name, ())
    for method in ("get_list", "getlist"):
        lookup: Callable[[str], Iterable[object]] | None = getattr(carrier, method, None)
        if callable(lookup):
            return lookup(name)
    return None


def header_values(carrier: Carrier, name: str) -> list[str]:
    """Every value of header ``name`` in ``carrier``, matched case-insensitively, as text.

    Uses the carrier's own multi-value lookup when it has one (aiohttp's ``getall``,
    httpx's ``get_list``, Starlette's ``getlist``), so a repeated header gives all its
    values. A plain mapping may have ``str`` or ``bytes`` keys, and values that are a ``str``,
    ``bytes`` or a list or tuple of them (one per occurrence). Bytes are decoded as UTF-8;
    what is not text (a key or value of another type, bytes that are not UTF-8) is skipped.
    This never raises because of what the carrier holds.

    Example:
        >>> header_values({"Baggage": "a=1", b"baggage": [b"b=2"], 7: "x"}, "baggage")
        ['a=1', 'b=2']
    """
    values = _lookup(carrier, name)
    if values is not None:
        return [text for value in values for text in _texts(value)]
    wanted = name.lower()
    found: list[str] = []
    for key, value in carrier.items():
        text = key if isinstance(key, str) else _text(key)
        if text is not None and text.lower() == wanted:
            found.extend(_texts(value))
    return found


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


class HeaderCodec(abc.ABC):
    """A header format: named text values to headers, and headers back to valid values.

    Subclass it for a format of your own; :class:`RequestIdHeader` and :class:`Baggage` are
    the built-in ones.
    """

    #: The most fields the format carries (``None``: any number).
    max_fields: int | None = None

    @property
    @abc.abstractmethod
    def headers(self) -> tuple[str, ...]:
        """The header names the format writes."""

    def check_name(self, name: str) -> None:  # noqa: B027 - an optional hook, no-op by default
        """Raise ``ValueError`` if ``name`` cannot be a field's name in this format."""

    @abc.abstractmethod
    def encode(self, values: Mapping[str, str]) -> dict[str, str]:
        """Return the headers carrying ``values`` (field name to text); leave out what the
        format cannot carry."""

    @abc.abstractmethod
    def decode(self, carrier: Carrier) -> dict[str, str]:
        """Return the valid values (field name to text) in ``carrier``; drop the rest.

        It must never raise because of what the carrier holds: read headers with
        :func:`header_values`, which gives text only.
        """


def _check_header(header: object) -> str:
    if not isinstance(header, str) or _TOKEN.match(header) is None:
        raise ValueError(
            f"header must be an HTTP header name such as 'X-Request-ID' (letters, digits and "
            f"!#$%&'*+-.^_`|~ only), got {header!r}"
        )
    return header


@attrs.frozen
class RequestIdHeader(HeaderCodec):
    """One field in one header, validated as a request id: ``X-Request-ID: r-1``.

    A value is sent and accepted only if it is at most 128 characters of letters, digits and
    ``._:+=/-`` starting with a letter or digit (what the request-id middlewares accept),
    and accepted only if the header is there once. The field's own name does not appear on
    the wire.

    Args:
        header: The header name.

    Raises:
        ValueError: ``header`` is not a valid header name.

    Example:
        >>> RequestIdHeader().decode({"x-request-id": "r-1"})
        {'request_id': 'r-1'}
    """

    header: str = attrs.field(default="X-Request-ID", converter=_check_header)
    #: The field name :meth:`decode` reports the value under (set by :class:`Propagator`).
    name: str = attrs.field(default="request_id", kw_only=True)
    max_fields: int | None = attrs.field(default=1, init=False, repr=False)

    @property
    def headers(self) -> tuple[str, ...]:
        """``(header,)``."""
        return (self.header,)

    def encode(self, values: Mapping[str, str]) -> dict[str, str]:
        """``{header: value}`` if the value is a valid request id, else nothing."""
        value = values.get(self.name)
        return {self.header: value} if value is not None and is_valid(value) else {}

    def decode(self, carrier: Carrier) -> dict[str, str]:
        """``{name: value}`` if the header is there once and valid, else nothing."""
        values = header_values(carrier, self.header)
        if len(values) == 1 and is_valid(values[0]):
            return {self.name: values[0]}
        return {}


def _quote(text: str) -> str | None:
    """Percent-encode (UTF-8) every character that is not a plain baggage octet; ``None``
    for text that cannot travel (a control character, a lone surrogate)."""
    if _CONTROL.search(text):
        return None
    try:
        return "".join(
            char if char in _SAFE_OCTETS else "".join(f"%{byte:02X}" for byte in char.encode())
            for char in text
        )
    except UnicodeEncodeError:
        return None


def _unquote(text: str) -> str | None:
    """Decode a baggage value, or ``None`` if it is malformed or holds a line-breaking
    character once decoded. Bytes that are not UTF-8 become U+FFFD, as the spec requires."""
    if _VALUE.match(text) is None:
        return None
    decoded = urllib.parse.unquote_to_bytes(text).decode("utf-8", errors="replace")
    return None if _CONTROL.search(decoded) else decoded


def _valid_property(text: str) -> bool:
    key, equals, value = text.partition("=")
    if _TOKEN.match(key.strip(_OWS)) is None:
        return False
    return not equals or _VALUE.match(value.strip(_OWS)) is not None


@attrs.frozen
class Baggage(HeaderCodec):
    """Fields as members of the W3C ``baggage`` header: ``baggage: request_id=r-1,user=alice``.

    Writing: each value is percent-encoded as UTF-8 (everything but the spec's plain
    octets, and ``%`` itself); a value holding a line-breaking character (C0 or C1 control,
    DEL, U+2028, U+2029) or a lone surrogate is left out, and so is any member that would
    take the header past 180 members or 8,192 bytes.

    Reading: every ``baggage`` header is read (repeated ones are one list, in order). Members
    are taken in order up to the 180th and while they end within the first 8,192 bytes of
    that list, counted in UTF-8 bytes, separators and malformed members included; the rest
    are dropped. A member whose key is not a token, whose value is not made of baggage
    octets and ``%XX`` escapes, that holds a line-breaking character once decoded, or that
    has a malformed property, is dropped, and only it. Percent-decoded bytes that are not
    UTF-8 become U+FFFD. Properties (``;metadata``) are accepted and ignored. When a key
    appears twice the first member wins.

    Where this differs from the W3C Baggage specification and from OpenTelemetry's Python
    propagator (``W3CBaggagePropagator``):

    * Line-breaking characters: the spec allows any text in a value; here a member whose
      decoded value holds one is dropped (and never written), so no value can split or
      forge a log line. OpenTelemetry keeps them.
    * Limits: the spec requires at least 64 members and 8,192 bytes to be kept and lets
      the rest be dropped; here 180 members (OpenTelemetry's figure) and 8,192 bytes over
      all ``baggage`` headers together, keeping the members that fit. OpenTelemetry reads
      only the first ``baggage`` header, drops the whole header past 8,192 bytes, and drops
      members over 4,096 bytes (a limit of earlier drafts, not of the spec).
    * ``+`` is a plus sign, as percent-encoding says; OpenTelemetry reads it as a space and
      also percent-decodes keys (here a key is a token and read as it is).
    * A key that appears twice: the spec does not say; here the first wins, in
      OpenTelemetry the last.
    * Properties: OpenTelemetry keeps them as part of the value; here they are dropped.

        Example:
        >>> Baggage().decode({"baggage": "a=1,b=caf%C3%A9;p=v, bad key=x,c=%ZZ"})
        {'a': '1', 'b': 'café'}
    """

    @property
    def headers(self) -> tuple[str, ...]:
        """``("baggage",)``."""
        return (BAGGAGE_HEADER,)

    def check_name(self, name: str) -> None:
        """Raise ``ValueError`` unless ``name`` is a valid baggage key (an RFC 9110 token)."""
        if _TOKEN.match(name) is None:
            raise ValueError(
                f"{name!r} cannot be a baggage key: use letters, digits and !#$%&'*+-.^_`|~ "
                f"only (pass field(key, name='...') to choose another name)"
            )

    def encode(self, values: Mapping[str, str]) -> dict[str, str]:
        """``{"baggage": ...}`` with every value that fits, or nothing if none does."""
        members: list[str] = []
        size = -1  # the first member has no comma before it
        for name, value in values.items():
            quoted = _quote(value)
            if quoted is None:
                continue
            member = f"{name}={quoted}"
            if len(members) < MAX_BAGGAGE_MEMBERS and size + 1 + len(member) <= MAX_BAGGAGE_BYTES:
                members.append(member)
                size += 1 + len(member)
        return {BAGGAGE_HEADER: ",".join(members)} if members else {}

    def decode(self, carrier: Carrier) -> dict[str, str]:
        """The valid members of the carrier's ``baggage`` headers, within the limits."""
        # Nothing past the limit is read: a member crossing it would be dropped anyway (a
        # character is at least one byte, so the first 8,193 characters hold every byte that
        # counts).
        text = ",".join(header_values(carrier, BAGGAGE_HEADER))[: MAX_BAGGAGE_BYTES + 1]
        found: dict[str, str] = {}
        end = -1
        count = 0
        for member in text.split(","):
            end += 1 + _utf8_size(member)  # the limits count bytes, valid members or not
            if end > MAX_BAGGAGE_BYTES:
                break
            if not member.strip(_OWS):  # an empty list element is no member
                continue
            count += 1
            if count > MAX_BAGGAGE_MEMBERS:
                break
            pair, *properties = member.split(";")
            key, equals, value = pair.partition("=")
            key = key.strip(_OWS)
            if not equals or _TOKEN.match(key) is None or key in found:
                continue
            if not all(_valid_property(item) for item in properties):
                continue
            decoded = _unquote(value.strip(_OWS))
            if decoded is not None:
                found[key] = decoded
        return found


def _utf8_size(text: str) -> int:
    """The size of ``text`` in UTF-8 bytes.

    aiohttp reads header bytes that are not UTF-8 as lone surrogates (``surrogateescape``):
    each counts as the one byte it was. Any other lone surrogate counts as three bytes.
    """
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


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
