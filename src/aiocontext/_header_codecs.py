"""Header formats: the carriers propagation reads, and the codecs that write and read them.

:func:`header_values` reads every value of a header from any carrier (plain mappings with
``str`` or ``bytes`` names and values, and the multi-value header types of aiohttp, httpx and
Starlette). :class:`HeaderCodec` is a header format; :class:`RequestIdHeader` (one id in one
header) and :class:`Baggage` (W3C ``baggage``) are the two built in. Public through
:mod:`aiocontext.propagation`; see its documentation.
"""

from __future__ import annotations

import abc
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias, cast

import attrs

from ._request_id import is_valid

# The public names (re-exported by aiocontext.propagation); LINE_BREAKS and check_header
# serve the other integrations too.
__all__ = [
    "BAGGAGE_HEADER",
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "Baggage",
    "Carrier",
    "HeaderCodec",
    "RequestIdHeader",
    "header_values",
]

# Headers, the W3C Baggage header's name and its limits: documented where they are public,
# in aiocontext.propagation (which binds them again, for the API reference).
Carrier: TypeAlias = Mapping[Any, object]
BAGGAGE_HEADER: Final = "baggage"
MAX_BAGGAGE_BYTES: Final = 8192
MAX_BAGGAGE_MEMBERS: Final = 180


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
LINE_BREAKS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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


def check_header(header: object) -> str:
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

    header: str = attrs.field(default="X-Request-ID", converter=check_header)
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
    if LINE_BREAKS.search(text):
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
    return None if LINE_BREAKS.search(decoded) else decoded


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
