"""``aiocontext.propagation``: the two header formats, key selection, inject/extract/restore."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import subprocess
import sys
import types
from typing import Any

import aiohttp
import httpx
import pytest
import starlette.datastructures
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from servers import aiohttp_serving

from aiocontext import Context, ContextRegistry, Key, loop_factory
from aiocontext.aiohttp import request_id_middleware
from aiocontext.propagation import (
    BAGGAGE_HEADER,
    MAX_BAGGAGE_BYTES,
    MAX_BAGGAGE_MEMBERS,
    Baggage,
    Field,
    HeaderCodec,
    Propagator,
    RequestIdHeader,
    ValueCodec,
    field,
    header_values,
)

ATTEMPT = Key[int]("attempt")
USER = Key[str]("user")
INT = ValueCodec(str, int)


def new_context(name: str = "request") -> Context[Any, Any]:
    """A context of the test's own."""
    return Context(name=name, registry=ContextRegistry())


# Every character class a baggage value may hold: the plain octets, the ASCII characters that
# must be percent-encoded (space, '"', ',', ';', '\\', '%'), and non-ASCII text of every UTF-8
# length. Only control characters are refused.
PLAIN = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\%')
ESCAPED = ' ",;\\%'
NON_ASCII = "é€😀\u00a0\u2007\ufeff"  # 2, 3 and 4 UTF-8 bytes; no-break spaces, a BOM
VALUE_CHARS = st.characters(
    # Control characters and the line and paragraph separators end a line; lone surrogates
    # cannot be UTF-8.
    blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
)
# What may never be in a value read from a carrier: it would split a log line.
LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TestHeaderValues:
    def test_plain_mapping_is_read_case_insensitively(self) -> None:
        """A plain dict's keys match the name in any case, every match counted."""
        assert ["1", "2"] == header_values({"Baggage": "1", "BAGGAGE": "2", "x": "3"}, "baggage")
        # any other mapping without a multi-value lookup is read the same way
        proxy = types.MappingProxyType({"Baggage": "1", "x": "3"})
        assert ["1"] == header_values(proxy, "baggage")

    def test_multidicts_give_every_value(self) -> None:
        """aiohttp's multidicts and httpx's headers give each value of a repeated header."""
        multi = CIMultiDict([("baggage", "a=1"), ("Baggage", "b=2")])
        assert ["a=1", "b=2"] == header_values(multi, "BAGGAGE")
        headers = httpx.Headers([("baggage", "a=1"), ("baggage", "b=2")])
        assert ["a=1", "b=2"] == header_values(headers, "Baggage")

    def test_starlette_headers_give_every_value(self) -> None:
        """Starlette's ``Headers`` (raw ASGI bytes underneath) give each repeated value."""
        raw = [(b"baggage", b"a=1"), (b"baggage", "b=caf\u00e9".encode("latin-1"))]
        assert ["a=1", "b=café"] == header_values(
            starlette.datastructures.Headers(raw=raw), "baggage"
        )

    def test_bytes_are_decoded_as_utf8(self) -> None:
        """Bytes names and values are read as UTF-8, in a dict and in a multidict."""
        carrier = {b"Baggage": b"a=1", "baggage": bytearray(b"b=2"), "x": b"3"}
        assert ["a=1", "b=2"] == header_values(carrier, "baggage")
        assert ["a=1"] == header_values(CIMultiDict([("baggage", b"a=1")]), "baggage")

    def test_lists_of_values_give_every_value(self) -> None:
        """A value that is a list or tuple is one value per occurrence."""
        carrier = {"baggage": ["a=1", b"b=2"], "BAGGAGE": ("c=3",)}
        assert ["a=1", "b=2", "c=3"] == header_values(carrier, "baggage")

    @pytest.mark.parametrize(
        "carrier",
        [
            {1: "a=1"},  # a name that is not text
            {None: "a=1"},
            {("baggage",): "a=1"},
            {b"\xffbaggage": "a=1"},  # a name that is not UTF-8
            {"baggage": None},  # values that are not text
            {"baggage": 1},
            {"baggage": {"a": "1"}},
            {"baggage": b"a=\xff"},  # bytes that are not UTF-8
            {"baggage": [None, 2, [b"a=1"]]},  # no nesting: a list holds values only
        ],
        ids=repr,
    )
    def test_what_is_not_text_is_skipped(self, carrier: dict[Any, Any]) -> None:
        """Names and values that are not text are skipped, never an error."""
        assert [] == header_values(carrier, "baggage")


class TestRequestIdHeader:
    def test_round_trip(self) -> None:
        """A valid id goes into the header and comes back."""
        codec = RequestIdHeader()
        assert {"X-Request-ID": "r-1.a:b+c=d/e_f"} == codec.encode(
            {"request_id": "r-1.a:b+c=d/e_f"}
        )
        assert {"request_id": "r-1"} == codec.decode({"x-request-id": "r-1"})

    @pytest.mark.parametrize(
        "value",
        ["", "a b", "-leading", "x" * 129, "r\n1", "r\x001", "é", "a,b", '"quoted"'],
        ids=repr,
    )
    def test_invalid_ids_are_neither_sent_nor_accepted(self, value: str) -> None:
        """An id the middlewares would refuse is not sent, and not accepted."""
        codec = RequestIdHeader()
        assert {} == codec.encode({"request_id": value})
        assert {} == codec.decode({"X-Request-ID": value})

    def test_the_longest_id_passes(self) -> None:
        """128 characters is the limit, included."""
        assert {"request_id": "x" * 128} == RequestIdHeader().decode({"X-Request-ID": "x" * 128})

    def test_a_repeated_header_is_refused(self) -> None:
        """Two values for the id: neither is trusted."""
        assert {} == RequestIdHeader().decode(
            CIMultiDict([("X-Request-ID", "a"), ("X-Request-ID", "b")])
        )

    def test_missing_value_sends_nothing(self) -> None:
        """No value, no header."""
        assert {} == RequestIdHeader().encode({})

    @pytest.mark.parametrize("header", ["", "a b", "x\n", 1], ids=repr)
    def test_bad_header_name(self, header: Any) -> None:
        """A header name that is not a token is refused, saying what a name is."""
        with pytest.raises(ValueError, match="HTTP header name"):
            RequestIdHeader(header)

    def test_headers(self) -> None:
        """The header it writes."""
        assert ("X-Trace",) == RequestIdHeader("X-Trace").headers


class TestBaggage:
    def test_every_character_class_round_trips(self) -> None:
        """Plain octets travel as they are, the rest percent-encoded as UTF-8, and all of
        them decode back to the same text."""
        codec = Baggage()
        values = {"plain": PLAIN, "escaped": ESCAPED, "non_ascii": NON_ASCII, "empty": ""}
        headers = codec.encode(values)
        assert f"plain={PLAIN}" == headers[BAGGAGE_HEADER].split(",")[0]
        assert "escaped=%20%22%2C%3B%5C%25" == headers[BAGGAGE_HEADER].split(",")[1]
        assert all(32 < ord(char) < 127 for char in headers[BAGGAGE_HEADER])
        assert values == codec.decode(headers)

    @given(
        st.dictionaries(
            st.from_regex(r"[A-Za-z0-9_.*-]{1,12}", fullmatch=True),
            st.text(VALUE_CHARS, max_size=30),
            max_size=8,
        )
    )
    def test_round_trip_of_any_text(self, values: dict[str, str]) -> None:
        """Any text without control characters round-trips, under any token key."""
        codec = Baggage()
        assert values == codec.decode(codec.encode(values))

    def test_spec_examples(self) -> None:
        """The W3C examples: whitespace around members and '=', properties ignored,
        percent-encoded values decoded."""
        codec = Baggage()
        header = (
            "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"
        )
        assert {"key1": "value1", "key2": "value2", "key3": "value3"} == codec.decode(
            {"baggage": header}
        )
        assert {
            "userId": "Amélie",
            "serverNode": "DF 28",
            "isProduction": "false",
        } == codec.decode({"baggage": "userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false"})

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("k=a=b", {"k": "a=b"}),  # "=" is a plain octet in a value
            ("\tk\t=\tv\t", {"k": "v"}),  # tabs are whitespace too
            ("k=", {"k": ""}),  # an empty value
            ("k=v;p;q=r=s", {"k": "v"}),
            ("K=1,k=2", {"K": "1", "k": "2"}),  # keys are case-sensitive
            ("k=%e2%82%ac", {"k": "€"}),  # lowercase hex digits
        ],
        ids=repr,
    )
    def test_edge_cases(self, header: str, expected: dict[str, str]) -> None:
        """The grammar's corners: what is valid is read as the spec says."""
        assert expected == Baggage().decode({"baggage": header})

    def test_empty_elements_do_not_count_as_members(self) -> None:
        """180 members behind 200 empty list elements are all read."""
        header = "," * 200 + ",".join(f"k{n}=v" for n in range(MAX_BAGGAGE_MEMBERS))
        assert MAX_BAGGAGE_MEMBERS == len(Baggage().decode({"baggage": header}))

    def test_repeated_headers_are_one_list(self) -> None:
        """Several baggage headers are read as one list, in order; the first of a key wins."""
        carrier = CIMultiDict([("baggage", "a=1,b=2"), ("baggage", "a=3,c=4")])
        assert {"a": "1", "b": "2", "c": "4"} == Baggage().decode(carrier)

    @pytest.mark.parametrize(
        "member",
        [
            "no_equals",
            "=value",
            "bad key=v",
            "k\x01=v",
            "k=a b",
            'k="quoted"',
            "k=back\\slash",
            "k=%",
            "k=%4",
            "k=%ZZ",
            "k=%0A",  # a newline, once decoded: could forge a log line
            "k=%0D",
            "k=%0B",
            "k=%1E",  # the record separator: str.splitlines splits on it
            "k=%7F",
            "k=%C2%85",  # NEL, a C1 control character
            "k=%C2%9F",
            "k=%E2%80%A8",  # LINE SEPARATOR
            "k=%E2%80%A9",  # PARAGRAPH SEPARATOR
            "k=a%E2%80%A8b",
            "k=é",  # raw non-ASCII is not a baggage octet
            "k=v;bad property=1",
            "k=v;p=a b",
            "k=v;",
        ],
        ids=repr,
    )
    def test_malformed_members_are_dropped(self, member: str) -> None:
        """A malformed member is dropped, and only it: its neighbours are kept."""
        assert {"a": "1", "z": "2"} == Baggage().decode({"baggage": f"a=1,{member},z=2"})

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("%C3", "\ufffd"),  # a truncated UTF-8 sequence
            ("%FF", "\ufffd"),
            ("a%C3%28b", "a\ufffd(b"),  # an invalid continuation byte
            ("%ED%A0%80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate is not UTF-8
        ],
        ids=repr,
    )
    def test_bytes_that_are_not_utf8_become_replacement_characters(
        self, value: str, expected: str
    ) -> None:
        """As the spec requires, decoded bytes that are not UTF-8 become U+FFFD."""
        assert {"a": "1", "k": expected} == Baggage().decode({"baggage": f"a=1,k={value}"})

    def test_empty_members_are_skipped(self) -> None:
        """Empty list elements (``a=1,,b=2``, a trailing comma) are ignored."""
        assert {"a": "1", "b": "2"} == Baggage().decode({"baggage": " , a=1,,b=2,"})

    def test_no_header(self) -> None:
        """No baggage header, no values; none either from an empty one."""
        assert {} == Baggage().decode({})
        assert {} == Baggage().decode({"baggage": ""})

    def test_members_past_180_are_dropped(self) -> None:
        """1,000 members: the first 180 are read, the rest dropped."""
        header = ",".join(f"k{n}={n}" for n in range(1000))
        decoded = Baggage().decode({"baggage": header})
        assert MAX_BAGGAGE_MEMBERS == len(decoded)
        assert {f"k{n}": str(n) for n in range(MAX_BAGGAGE_MEMBERS)} == decoded

    def test_bytes_past_8192_are_dropped(self) -> None:
        """Members are read while they end within the first 8,192 bytes."""
        first = "a=" + "x" * (MAX_BAGGAGE_BYTES - 2 - 4)  # with ",b=1": exactly 8,192 bytes
        assert {"a": first[2:], "b": "1"} == Baggage().decode({"baggage": f"{first},b=1,c=2"})
        assert {} == Baggage().decode({"baggage": "a=" + "x" * 10_000})

    def test_the_limit_counts_utf8_bytes(self) -> None:
        """The 10,014-byte header of issue 18: 5,014 characters, a member of raw (invalid)
        non-ASCII text, then ``tenant=acme`` ending past byte 8,192: that member is dropped."""
        header = "x=" + "é" * 5000 + ",tenant=acme"
        assert (10_014, 5014) == (len(header.encode()), len(header))
        assert {} == Baggage().decode({"baggage": header})
        within = "x=" + "é" * 4000 + ",tenant=acme"  # 8,014 bytes
        assert {"tenant": "acme"} == Baggage().decode({"baggage": within})

    def test_the_limit_counts_every_header(self) -> None:
        """Repeated headers are one list for the limits too: members past byte 8,192 of all
        of them together are dropped, whichever header they are in."""
        half = "a=" + "x" * 4094  # 4,096 bytes
        carrier = CIMultiDict(
            [("baggage", half), ("baggage", "b=" + "y" * 4093), ("baggage", "c=1")]
        )
        assert {"a", "b"} == set(Baggage().decode(carrier))  # 4,096 + 1 + 4,095 = 8,192
        too_many = {"baggage": [half, "b=" + "y" * 4094]}  # one byte more
        assert {"a"} == set(Baggage().decode(too_many))

    def test_bytes_from_a_server_count_as_bytes(self) -> None:
        """aiohttp reads bytes that are not UTF-8 as lone surrogates (``surrogateescape``):
        each counts as the one byte it was."""
        junk = "x=" + b"\xff".decode("utf-8", "surrogateescape") * 8000
        assert {"k": "v"} == Baggage().decode({"baggage": f"{junk},k=v"})  # 8,006 bytes
        lone = "x=" + "\ud800" * 3000  # other lone surrogates: 3 bytes, as UTF-8 would take
        assert {} == Baggage().decode({"baggage": f"{lone},k=v"})

    def test_encode_leaves_out_what_does_not_fit(self) -> None:
        """Writing: a member that would pass 8,192 bytes is left out, smaller ones after it
        are kept, and no more than 180 members are written."""
        codec = Baggage()
        header = codec.encode({"a": "1", "big": "x" * MAX_BAGGAGE_BYTES, "b": "2"})[BAGGAGE_HEADER]
        assert "a=1,b=2" == header
        many = codec.encode({f"k{n}": "v" for n in range(300)})[BAGGAGE_HEADER]
        assert MAX_BAGGAGE_MEMBERS == len(many.split(","))
        exact = codec.encode({"a": "x" * (MAX_BAGGAGE_BYTES - 2)})[BAGGAGE_HEADER]
        assert MAX_BAGGAGE_BYTES == len(exact)

    def test_encode_leaves_out_unsafe_text(self) -> None:
        """Line-breaking characters and lone surrogates are never written."""
        unsafe = {"a": "line\nbreak", "b": "\ud800", "c": "x\u2028y", "d": "\u2029", "e": "\x85"}
        assert {} == Baggage().encode(unsafe)

    def test_bad_key_names_are_refused(self) -> None:
        """A name that cannot be a baggage key is refused when the propagator is made."""
        with pytest.raises(ValueError, match="cannot be a baggage key"):
            Propagator({new_context(): ["user id"]}, codec=Baggage())

    def test_headers(self) -> None:
        """The header it writes."""
        assert ("baggage",) == Baggage().headers


class TestField:
    def test_names(self) -> None:
        """The wire name is the key, a Key's name, or the name given."""
        assert "request_id" == field("request_id").name
        assert "user" == field(USER).name
        assert "n" == field(ATTEMPT, codec=INT, name="n").name
        assert Field(ATTEMPT, "attempt", INT) == field(ATTEMPT, codec=INT)

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"key": 1}, "a field's key must be a str or an aiocontext.Key, got int"),
            ({"key": "a", "codec": int}, "codec must be an aiocontext.propagation.ValueCodec"),
            ({"key": "a", "name": 1}, "name must be a str, got int"),
        ],
    )
    def test_bad_arguments(self, arguments: dict[str, Any], message: str) -> None:
        """Bad arguments raise TypeError saying what to pass."""
        with pytest.raises(TypeError, match=message):
            field(**arguments)

    def test_non_str_value_without_codec_is_refused(self) -> None:
        """A non-str value of a key with no codec raises when it would be sent, saying to
        give the key a codec."""
        request = new_context()
        propagator = Propagator({request: ["attempt"]})
        with (
            request.restore({"attempt": 3}),
            pytest.raises(TypeError, match="Give the key a codec"),
        ):
            propagator.encode()

    def test_codec_returning_non_str(self) -> None:
        """A codec whose encode gives no str is a bug, reported as such."""
        request = new_context()

        def not_text(n: int) -> Any:  # a buggy encode, returning the int
            return n

        propagator = Propagator({request: [field(ATTEMPT, codec=ValueCodec(not_text, int))]})
        with request.restore({ATTEMPT: 3}), pytest.raises(TypeError, match="not a str"):
            propagator.encode()


class TestPropagator:
    def test_inject_extract_restore_with_typed_keys(self) -> None:
        """Several contexts, str keys, Key[str] and a Key[int] with a codec: injected into a
        carrier and restored from it, each context with exactly its own values."""
        request, tenant = new_context(), new_context("tenant")
        propagator = Propagator(
            {request: ["request_id", USER, field(ATTEMPT, codec=INT)], tenant: ["tenant"]},
            codec=Baggage(),
        )
        carrier: dict[str, str] = {}
        with (
            request.restore({"request_id": "r-1", USER: "zoë", ATTEMPT: 2, "private": "x"}),
            tenant.restore({"tenant": "acme"}),
        ):
            propagator.inject(carrier)
        assert {"baggage": "request_id=r-1,user=zo%C3%AB,attempt=2,tenant=acme"} == carrier
        with request.restore({"stale": 1}), propagator.restore(carrier):
            assert {"request_id": "r-1", USER: "zoë", ATTEMPT: 2} == dict(request)
            assert {"tenant": "acme"} == dict(tenant)
        assert (request, tenant) == propagator.contexts
        assert ("baggage",) == propagator.headers

    def test_restore_puts_back_what_was_there(self) -> None:
        """After the block, each context has its previous data again."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]})
        with request.restore({"request_id": "outer"}):
            with propagator.restore({"X-Request-ID": "inner"}):
                assert {"request_id": "inner"} == dict(request)
            assert {"request_id": "outer"} == dict(request)

    def test_undecodable_typed_value_is_dropped(self) -> None:
        """A value the key's codec refuses is dropped."""
        request = new_context()
        propagator = Propagator(
            {
                request: [field(ATTEMPT, codec=INT)],
            },
            codec=Baggage(),
        )
        assert {request: {}} == propagator.extract({"baggage": "attempt=many"})
        assert {request: {ATTEMPT: 7}} == propagator.extract({"baggage": "attempt=7"})

    def test_unknown_members_are_ignored(self) -> None:
        """Only the chosen keys are taken from the carrier."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]}, codec=Baggage())
        assert {request: {"request_id": "r"}} == propagator.extract(
            {"baggage": "request_id=r,admin=true"}
        )
        assert {request: {}} == propagator.extract({"baggage": "admin=true"})

    def test_inject_never_replaces_a_header(self) -> None:
        """A header the carrier has, in any case, is left as it is."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]})
        carrier = {"x-request-id": "callers"}
        with request.restore({"request_id": "ours"}):
            propagator.inject(carrier)
        assert {"x-request-id": "callers"} == carrier

    def test_no_data_sends_nothing(self) -> None:
        """Code where the context has no data (no task, no loop) sends no header."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]})
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
        assert {} == carrier
        with request.restore({}):
            assert {} == propagator.encode()

    @pytest.mark.asyncio
    async def test_in_tasks(self) -> None:
        """In a task, the task's data is sent; a restore block's data reaches child tasks."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]})
        request.attach()
        try:
            request["request_id"] = "task"
            assert {"X-Request-ID": "task"} == propagator.encode()

            async def child() -> str:
                value: str = request["request_id"]
                return value

            with propagator.restore({"X-Request-ID": "restored"}):
                assert "restored" == await asyncio.create_task(child())
            assert "task" == request["request_id"]
        finally:
            request.detach()

    def test_restore_with_no_loop_then_asyncio_run(self) -> None:
        """A restored carrier is the data of async code run from the block, as in a job."""
        request = new_context()
        propagator = Propagator({request: ["request_id"]})

        async def main() -> str:
            value: str = await asyncio.create_task(asyncio.sleep(0, request["request_id"]))
            return value

        with (
            propagator.restore({"X-Request-ID": "job-1"}),
            asyncio.Runner(loop_factory=loop_factory(request)) as runner,
        ):
            assert "job-1" == runner.run(main())

    @pytest.mark.parametrize(
        ("keys", "options", "error", "message"),
        [
            (["request_id"], {"codec": "baggage"}, TypeError, "codec must be a HeaderCodec"),
            (["a", "b"], {}, ValueError, "carries 1 key"),
            (
                ["a", field("b", name="a")],
                {"codec": Baggage()},
                ValueError,
                "two keys travel under the name 'a'",
            ),
            ("request_id", {}, TypeError, "must be a list of keys"),
            ([1], {}, TypeError, "must be a str, an aiocontext.Key or a field"),
        ],
    )
    def test_bad_arguments(
        self, keys: Any, options: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        """Bad arguments raise the error saying how to fix them."""
        request = new_context()
        with pytest.raises(error, match=message):
            Propagator({request: keys}, **options)

    def test_no_keys(self) -> None:
        """A propagator with nothing to carry is refused."""
        with pytest.raises(ValueError, match="needs at least one key"):
            Propagator({})
        with pytest.raises(ValueError, match="needs at least one key"):
            Propagator({new_context(): []})

    def test_bad_mappings(self) -> None:
        """``keys`` must map contexts; ``extract`` needs a mapping."""
        with pytest.raises(TypeError, match="keys must map contexts"):
            Propagator(["request_id"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="keys must map aiocontext.Context objects"):
            Propagator({"request": ["request_id"]})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
        propagator = Propagator({new_context(): ["request_id"]})
        with pytest.raises(TypeError, match="carrier must be a mapping"):
            propagator.extract([("X-Request-ID", "r")])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_repr(self) -> None:
        """The repr names the contexts, keys and codec."""
        request = new_context()
        propagator = Propagator({request: ["request_id", USER]}, codec=Baggage())
        assert f"Propagator({{{request!r}: ['request_id', Key('user')]}}, codec=Baggage())" == repr(
            propagator
        )
        assert isinstance(propagator.codec, HeaderCodec)

    def test_request_id_codec_reports_the_fields_name(self) -> None:
        """With RequestIdHeader the value comes back under the one key given."""
        request = new_context()
        propagator = Propagator(
            {request: ["correlation"]}, codec=RequestIdHeader("X-Correlation-ID")
        )
        assert {request: {"correlation": "c-1"}} == propagator.extract({"x-correlation-id": "c-1"})


TEXT_OR_BYTES = st.one_of(st.text(max_size=40), st.binary(max_size=40))
ANY_VALUE = st.one_of(
    TEXT_OR_BYTES,
    st.lists(st.one_of(TEXT_OR_BYTES, st.none(), st.integers()), max_size=3),
    st.none(),
    st.integers(),
)
HEADER_NAMES = st.sampled_from(["baggage", "Baggage", "X-Request-ID", "x-request-id", "other"])
ANY_NAME = st.one_of(
    HEADER_NAMES, HEADER_NAMES.map(str.encode), st.text(max_size=10), st.integers(), st.none()
)
# A baggage-looking header: members with valid and invalid keys, percent escapes of any
# byte (line breaks and invalid UTF-8 among them), raw non-ASCII, properties, whitespace.
MEMBER_PARTS = st.one_of(
    st.sampled_from(["k", "tenant", "request_id", "=", ";", ",", " ", "\t", "%", "p=v"]),
    st.integers(0, 255).map(lambda byte: f"%{byte:02X}"),
    st.text(max_size=5),
)
BAGGAGE_LIKE = st.lists(MEMBER_PARTS, max_size=30).map("".join)


class TestHostileCarriers:
    def propagators(self) -> list[Propagator]:
        """A propagator per format, both over ``request_id`` and ``tenant``."""
        request = new_context()
        return [
            Propagator({request: ["request_id", "tenant"]}, codec=Baggage()),
            Propagator({request: ["request_id"]}),
        ]

    @settings(deadline=None)  # no time limit: tests never assert on time
    @given(st.dictionaries(ANY_NAME, ANY_VALUE, max_size=6))
    def test_extract_never_raises_on_any_content(self, carrier: dict[Any, Any]) -> None:
        """Whatever names and values a mapping holds, extract returns data, and no value it
        returns holds a character that would split a log line."""
        for propagator in self.propagators():
            for values in propagator.extract(carrier).values():
                assert [] == [v for v in values.values() if LINE_BREAKS.search(v)]

    @settings(deadline=None)
    @given(st.lists(st.tuples(HEADER_NAMES, BAGGAGE_LIKE), max_size=4))
    def test_extract_never_raises_on_any_multidict(self, pairs: list[tuple[str, str]]) -> None:
        """Repeated headers of baggage-like junk, in a multidict or in httpx's headers:
        never an error, never a line break in a value."""
        for carrier in (
            CIMultiDict(pairs),
            httpx.Headers([(name.encode(), value.encode()) for name, value in pairs]),
            {"baggage": [v for _, v in pairs]},
        ):
            for propagator in self.propagators():
                for values in propagator.extract(carrier).values():
                    assert [] == [v for v in values.values() if LINE_BREAKS.search(v)]

    def test_bytes_carrier(self) -> None:
        """A carrier of bytes (message headers) is read like one of text."""
        request = new_context()
        propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())
        carrier = {b"baggage": b"request_id=r-1,tenant=Zo%C3%AB", 3: b"\xff", b"x": None}
        assert {request: {"request_id": "r-1", "tenant": "Zoë"}} == propagator.extract(carrier)
        by_id = Propagator({request: ["request_id"]})
        assert {request: {"request_id": "r-1"}} == by_id.extract({b"X-Request-ID": b"r-1"})


class TestRoundTrip:
    @settings(deadline=None)
    @given(
        values=st.dictionaries(
            st.from_regex(r"[A-Za-z0-9_.*-]{1,12}", fullmatch=True),
            st.text(VALUE_CHARS, max_size=20) | st.sampled_from([NON_ASCII, ESCAPED, ""]),
            min_size=1,
            max_size=10,
        ),
        cuts=st.lists(st.integers(0, 10), max_size=4),
        form=st.sampled_from(["multidict", "httpx", "list", "bytes"]),
    )
    def test_any_text_over_several_headers(
        self, values: dict[str, str], cuts: list[int], form: str
    ) -> None:
        """Values of any non-ASCII text, written as one header and split into several at
        member boundaries (in any carrier form), read back the same."""
        request = new_context()
        propagator = Propagator({request: list(values)}, codec=Baggage())
        with request.restore(values):
            header = propagator.encode()[BAGGAGE_HEADER]
        members = header.split(",")
        bounds = sorted({0, len(members), *(min(cut, len(members)) for cut in cuts)})
        parts = [",".join(members[a:b]) for a, b in itertools.pairwise(bounds)]
        carrier: Any
        if form == "multidict":
            carrier = CIMultiDict([("Baggage", part) for part in parts])
        elif form == "httpx":
            carrier = httpx.Headers([("baggage", part) for part in parts])
        elif form == "list":
            carrier = {"baggage": parts}
        else:
            carrier = {b"baggage": [part.encode() for part in parts]}
        assert {request: values} == propagator.extract(carrier)


TIMEOUT = aiohttp.ClientTimeout(total=20)


def serving(app: web.Application) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with aiohttp, taking header lines of up to 16 KiB (aiohttp refuses
    those past 8,190 bytes by default); yield its base URL."""
    return aiohttp_serving(app, max_field_size=16_384)


class TestThroughAiohttp:
    @pytest.mark.asyncio
    async def test_limits_and_hostile_headers_on_a_real_server(self) -> None:
        """An aiohttp server with the request-id middleware and a baggage propagator: the
        10,014-byte header's last member is refused, one within the limit is read, repeated
        headers are one list, and a header of bytes that are not UTF-8 is no error."""
        request = new_context()
        propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())

        async def show(_: web.Request) -> web.Response:
            return web.json_response({"tenant": request.get("tenant")})

        app = web.Application(middlewares=[request_id_middleware(request, propagator=propagator)])
        app.router.add_get("/", show)
        request.attach()
        cases: list[tuple[Any, str | None]] = [
            ({"baggage": "x=" + "é" * 5000 + ",tenant=acme"}, None),  # 10,014 bytes
            ({"baggage": "x=" + "é" * 4000 + ",tenant=acme"}, "acme"),  # 8,014 bytes
            (CIMultiDict([("baggage", "a=1"), ("baggage", "tenant=Zo%C3%AB")]), "Zoë"),
            ({"baggage": "x=" + "y" * 8190 + ",tenant=acme"}, None),
            ({"baggage": "tenant=a%E2%80%A8b"}, None),  # a line separator, once decoded
        ]
        try:
            async with serving(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
                for headers, expected in cases:
                    async with session.get(url, headers=headers) as response:
                        assert {"tenant": expected} == await response.json()
                raw = b"x=\xff\xfe,tenant=raw"  # not UTF-8: aiohttp reads it as surrogates
                async with session.get(url, headers={"baggage": raw.decode("latin-1")}) as response:
                    assert 200 == response.status
                    assert {"tenant": "raw"} == await response.json()
        finally:
            request.detach()


def test_the_core_imports_no_optional_dependency() -> None:
    """``import aiocontext.propagation`` (and ``aiocontext.logging``) import none of the
    integrations' libraries, nor the observability integrations."""
    code = (
        "import sys, aiocontext, aiocontext.propagation, aiocontext.logging; "
        "optional = {'aiohttp', 'arq', 'celery', 'httpx', 'kombu', 'redis', 'opentelemetry', "
        "'sentry_sdk', 'loguru', 'structlog', 'aiocontext.opentelemetry', 'aiocontext.sentry', "
        "'aiocontext.loguru'}; "
        "print(sorted(optional & {name.partition('.')[0] if not name.startswith('aiocontext') "
        "else name for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "[]" == result.stdout.strip()
