"""``aiocontext.opentelemetry``: span ids in log lines, Baggage both ways, traceparent ids.

The end-to-end tests run two services on 127.0.0.1 in the test's loop, with the real SDK
(an in-memory span exporter): service A (Starlette under uvicorn, ``RequestIdMiddleware``)
calls service B (aiohttp, ``request_id_middleware``) with an httpx client. Each runs with
OpenTelemetry's own instrumentation (ASGI, aiohttp server, httpx) and without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, use_span
from servers import aiohttp_serving, uvicorn_serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aiocontext.httpx
from aiocontext import Context, ContextRegistry, Key
from aiocontext.aiohttp import request_id_middleware
from aiocontext.asgi import ASGIApp, RequestIdMiddleware
from aiocontext.logging import ContextFilter, structlog_processor
from aiocontext.opentelemetry import (
    TRACEPARENT_HEADER,
    BaggageKeys,
    SpanFields,
    TraceparentRequestId,
    trace_id_of,
)
from aiocontext.propagation import Propagator, ValueCodec, field

REQUESTS = 120
CONCURRENCY = 12
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ATTEMPT = Key[int]("attempt")


def new_context() -> Context[Any, Any]:
    """A context of the test's own."""
    return Context(name="request", registry=ContextRegistry())


@contextlib.contextmanager
def in_span(trace_id: int, span_id: int) -> Generator[None]:
    """Make a span with these ids the current span for a block (no SDK needed)."""
    span = NonRecordingSpan(SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False))
    with use_span(span):
        yield


class Lines(logging.Handler):
    """A handler keeping each record's request id, trace id, span id and message."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        self.lines.append(
            (fields["request_id"], fields["trace_id"], fields["span_id"], record.getMessage())
        )


class TestSpanFields:
    def test_ids_of_the_current_span(self) -> None:
        """The ids are lowercase hex, 32 and 16 digits; none where there is no span."""
        with in_span(0xABC, 0x12):
            assert {"trace_id": f"{0xABC:032x}", "span_id": f"{0x12:016x}"} == SpanFields().values()
        assert {} == SpanFields().values()

    def test_names(self) -> None:
        """The field names can be chosen."""
        fields = SpanFields(trace_id="otel.trace_id", span_id="otel.span_id")
        assert ("otel.trace_id", "otel.span_id") == fields.names
        with in_span(1, 2):
            assert {"otel.trace_id", "otel.span_id"} == set(fields.values())

    def test_in_a_logging_filter_and_a_structlog_processor(self) -> None:
        """Records and events get the ids of the span current where they are emitted, and
        the default outside any span."""
        records = logging.getLogger("test.aiocontext.opentelemetry.filter")
        records.propagate = False
        lines = Lines()
        lines.addFilter(ContextFilter(new_context(), providers=[SpanFields()]))
        records.addHandler(lines)
        processor = structlog_processor(new_context(), providers=[SpanFields()])
        try:
            with in_span(7, 8):
                records.warning("in")
                event = processor(None, "info", {"event": "in"})
            records.warning("out")
        finally:
            records.removeHandler(lines)
        assert [
            ("-", f"{7:032x}", f"{8:016x}", "in"),
            ("-", "-", "-", "out"),
        ] == lines.lines
        assert {
            "event": "in",
            "request_id": "-",
            "trace_id": f"{7:032x}",
            "span_id": f"{8:016x}",
        } == event

    def test_bad_names_are_refused_by_the_filter(self) -> None:
        """Its names are checked like the context's field names."""
        with pytest.raises(ValueError, match="two fields are both named 'request_id'"):
            ContextFilter(new_context(), providers=[SpanFields(trace_id="request_id")])


class TestTraceIdOf:
    @pytest.mark.parametrize(
        "header",
        [
            "",
            "garbage",
            f"00-{TRACE_ID}-00f067aa0ba902b7",  # no flags
            f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # uppercase hex
            f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # the invalid version
            f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has four fields
            f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
            f"00-{TRACE_ID}-{'0' * 16}-01",  # an all-zero parent id
            f"00-{TRACE_ID}-00f067aa0ba902b7-01\n",  # a line break
            f"00-{TRACE_ID}x-00f067aa0ba902b7-01",
        ],
        ids=repr,
    )
    def test_invalid_headers(self, header: str) -> None:
        """What the W3C Trace Context spec calls invalid gives ``None``."""
        assert trace_id_of(header) is None

    def test_valid_headers(self) -> None:
        """Version 00, surrounding whitespace, and a later version with more fields."""
        assert TRACE_ID == trace_id_of(TRACEPARENT)
        assert TRACE_ID == trace_id_of(f" {TRACEPARENT}\t")
        assert TRACE_ID == trace_id_of(f"01-{TRACE_ID}-00f067aa0ba902b7-00-later-fields")


class TestTraceparentRequestId:
    def test_the_request_id_is_the_trace_id(self) -> None:
        """A valid traceparent present once gives its trace id under the key's name."""
        ctx = new_context()
        propagator = Propagator({ctx: ["correlation"]}, codec=TraceparentRequestId())
        assert {ctx: {"correlation": TRACE_ID}} == propagator.extract({"Traceparent": TRACEPARENT})
        assert {ctx: {"correlation": TRACE_ID}} == propagator.extract(
            {b"traceparent": TRACEPARENT.encode()}
        )

    @pytest.mark.parametrize(
        "carrier",
        [
            {},
            {"traceparent": "00-bad"},
            {"traceparent": [TRACEPARENT, TRACEPARENT]},  # more than once
            {"traceparent": b"\xff"},
        ],
        ids=repr,
    )
    def test_nothing_from_an_invalid_or_repeated_header(self, carrier: dict[str, Any]) -> None:
        """No id from a missing, invalid or repeated traceparent."""
        ctx = new_context()
        propagator = Propagator({ctx: ["request_id"]}, codec=TraceparentRequestId())
        assert {ctx: {}} == propagator.extract(carrier)

    def test_never_writes(self) -> None:
        """Sending traceparent is OpenTelemetry's job: it writes no header."""
        ctx = new_context()
        propagator = Propagator({ctx: ["request_id"]}, codec=TraceparentRequestId())
        with ctx.restore({"request_id": TRACE_ID}):
            assert {} == propagator.encode()
        assert (TRACEPARENT_HEADER,) == propagator.headers


class TestBaggageKeys:
    def test_outbound_sets_baggage_that_opentelemetry_injects(self) -> None:
        """Inside ``outbound()`` the keys' values are OTel Baggage, and OpenTelemetry's
        global propagator writes them in the ``baggage`` header; outside, nothing."""
        ctx = new_context()
        keys = BaggageKeys(
            {ctx: ["tenant", field(ATTEMPT, codec=ValueCodec(str, int))]}, inbound=()
        )
        headers: dict[str, str] = {}
        with ctx.restore({"tenant": "Zoë & co", ATTEMPT: 2, "other": "x"}), keys.outbound():
            propagate.inject(headers)
        assert {"tenant": "Zoë & co", "attempt": "2"} == dict(
            baggage.get_all(propagate.extract(headers))
        )
        assert {} == dict(baggage.get_all())

    def test_outbound_leaves_out_line_breaks_and_contexts_without_data(self) -> None:
        """A value with a line break is not put in Baggage; a context with no data here
        (no loop running) adds nothing, and neither does a key without a value."""
        ctx, other = new_context(), Context(name="other", registry=ContextRegistry())
        keys = BaggageKeys({ctx: ["tenant", "user", "unset"], other: ["zone"]}, inbound=())
        with ctx.restore({"tenant": "a\u2028b", "user": "ann"}):
            assert {"user": "ann"} == dict(baggage.get_all(keys.to_baggage()))
        parent = baggage.set_baggage("kept", "1")
        assert {"kept": "1"} == dict(baggage.get_all(keys.to_baggage(parent)))

    def test_inbound_takes_only_allowed_valid_names(self) -> None:
        """Only names on the allowlist come in, as text without line breaks, decoded by the
        field's codec (a value it refuses is dropped)."""
        ctx = new_context()
        keys = BaggageKeys(
            {ctx: ["tenant", "user", "note", field(ATTEMPT, codec=ValueCodec(str, int))]},
            inbound=["tenant", "note", "attempt"],
        )
        source = otel_context.get_current()
        for name, value in [("tenant", "acme"), ("user", "mallory"), ("note", "x\ny")]:
            source = baggage.set_baggage(name, value, source)
        assert {ctx: {"tenant": "acme"}} == keys.inbound(source)
        assert {ctx: {ATTEMPT: 3}} == keys.inbound(baggage.set_baggage("attempt", "3"))
        assert {ctx: {}} == keys.inbound(baggage.set_baggage("attempt", "three"))
        assert {ctx: {}} == keys.inbound(baggage.set_baggage("tenant", 42))  # not text
        assert frozenset({"tenant", "note", "attempt"}) == keys.allowed

    def test_apply_writes_into_the_current_data(self) -> None:
        """``apply()`` adds the allowed values to each context's current data."""
        ctx = new_context()
        keys = BaggageKeys({ctx: ["tenant", "user"]}, inbound=["tenant"])
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with ctx.restore({"request_id": "r-1", "user": "ann"}):
                keys.apply()
                assert {"request_id": "r-1", "user": "ann", "tenant": "acme"} == dict(ctx)
            with ctx.restore({}):
                keys.apply(otel_context.Context())  # nothing there: nothing written
                assert {} == dict(ctx)
        finally:
            otel_context.detach(token)

    def test_repr(self) -> None:
        """The keys and the allowlist."""
        ctx = new_context()
        keys = BaggageKeys({ctx: ["tenant", "user"]}, inbound=["user", "tenant"])
        assert f"BaggageKeys({{{ctx!r}: ['tenant', 'user']}}, inbound=['tenant', 'user'])" == repr(
            keys
        )

    @pytest.mark.parametrize(
        ("specs", "inbound", "error", "message"),
        [
            (None, (), TypeError, "must be a list of keys"),
            ("tenant", (), TypeError, "must be a list of keys"),
            ([], (), ValueError, "at least one key"),
            (["tenant", field("t2", name="tenant")], (), ValueError, "two keys travel"),
            (["bad name"], (), ValueError, "cannot be a baggage key"),
            (["tenant"], "tenant", TypeError, "inbound must be a collection"),
            (["tenant"], None, TypeError, "inbound must be a collection"),
            (["tenant"], [1], TypeError, "an inbound name must be a str"),
            (["tenant"], ["user"], ValueError, r"inbound names \['user'\] are not among"),
        ],
        ids=repr,
    )
    def test_bad_arguments(
        self, specs: Any, inbound: Any, error: type[Exception], message: str
    ) -> None:
        """Misuse fails when the object is made, saying what to write instead."""
        with pytest.raises(error, match=message):
            BaggageKeys({new_context(): specs}, inbound=inbound)

    def test_bad_mappings(self) -> None:
        """``keys`` must map contexts to keys."""
        bad: Any = ["tenant"]
        with pytest.raises(TypeError, match="keys must map contexts"):
            BaggageKeys(bad, inbound=())
        bad = {"ctx": ["tenant"]}
        with pytest.raises(TypeError, match="must map aiocontext.Context objects"):
            BaggageKeys(bad, inbound=())


class Service(logging.Handler):
    """One service's context, logger and log lines (request id, trace id, message)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.context: Context[str, Any] = Context(name=name, registry=ContextRegistry())
        self.keys = BaggageKeys({self.context: ["tenant", "user"]}, inbound=["tenant"])
        self.log = logging.getLogger(f"test.aiocontext.opentelemetry.{name}")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        self.lines: list[tuple[str, str, str]] = []
        self.addFilter(ContextFilter(self.context, providers=[SpanFields()]))

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        self.lines.append((fields["request_id"], fields["trace_id"], record.getMessage()))

    @contextlib.contextmanager
    def running(self) -> Generator[None]:
        """Attach the context to the running loop and log into :attr:`lines` for a block."""
        self.context.attach()
        self.log.addHandler(self)
        try:
            yield
        finally:
            self.log.removeHandler(self)
            self.context.detach()


class TwoServices:
    """Service A (Starlette under uvicorn) calling service B (aiohttp) with httpx, with or
    without OpenTelemetry's instrumentation, the request id from X-Request-ID or from
    traceparent."""

    def __init__(self, instrumented: bool, traceparent: bool) -> None:
        self.instrumented = instrumented
        self.provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.a, self.b = Service("service-a"), Service("service-b")
        codec = TraceparentRequestId() if traceparent else None
        propagator = (
            None if codec is None else Propagator({self.a.context: ["request_id"]}, codec=codec)
        )
        a_app: ASGIApp = RequestIdMiddleware(
            Starlette(routes=[Route("/", self.a_endpoint)]), self.a.context, propagator=propagator
        )
        if instrumented:
            a_app = OpenTelemetryMiddleware(
                a_app, tracer_provider=self.provider, exclude_spans=["receive", "send"]
            )
        self.a_app = a_app
        if instrumented:  # aiohttp's instrumentation: web.Application gets its middleware
            AioHttpServerInstrumentor().instrument(tracer_provider=self.provider)
        try:
            self.b_app = web.Application(middlewares=[request_id_middleware(self.b.context)])
        finally:
            if instrumented:
                AioHttpServerInstrumentor().uninstrument()
        self.b_app.router.add_get("/", self.b_endpoint)
        self.b_url = ""
        self.client = httpx.AsyncClient(timeout=30)
        aiocontext.httpx.instrument(self.client, Propagator({self.a.context: ["request_id"]}))
        if instrumented:
            HTTPXClientInstrumentor.instrument_client(self.client, tracer_provider=self.provider)

    async def a_endpoint(self, request: Request) -> JSONResponse:
        """Take the allowed incoming Baggage (the ASGI instrumentation made it current),
        log, call B with the tenant in Baggage, log again; report both sides."""
        self.a.keys.apply()
        context = self.a.context
        self.a.log.info("A: handling")
        with self.a.keys.outbound():
            reply = await self.client.get(self.b_url)
        self.a.log.info("A: B answered")
        own = {
            "request_id": context["request_id"],
            "trace_id": trace_id_here(),
            "tenant": context.get("tenant"),
            "user": context.get("user"),
        }
        return JSONResponse({"a": own, "b": reply.json()})

    async def b_endpoint(self, request: web.Request) -> web.Response:
        """Take the allowed Baggage of the request (aiohttp's instrumentation does not make
        it current, so it is extracted here), log, report."""
        self.b.keys.apply(propagate.extract(request.headers))
        self.b.log.info("B: handled")
        context = self.b.context
        return web.json_response(
            {
                "request_id": context["request_id"],
                "trace_id": trace_id_here(),
                "tenant": context.get("tenant"),
            }
        )

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncGenerator[str]:
        """Run both services; yield A's URL."""
        with self.a.running(), self.b.running():
            async with aiohttp_serving(self.b_app) as b_url, uvicorn_serving(self.a_app) as a_url:
                self.b_url = b_url
                try:
                    yield a_url
                finally:
                    await self.client.aclose()
                    if self.instrumented:
                        HTTPXClientInstrumentor.uninstrument_client(self.client)


def trace_id_here() -> str:
    """The current span's trace id, or ``"-"``."""
    return str(SpanFields().values().get("trace_id", "-"))


def spans_by_trace(spans: tuple[ReadableSpan, ...]) -> dict[str, list[str]]:
    """The kinds of the spans of each trace id (``SERVER``, ``CLIENT``), sorted."""
    found: dict[str, list[str]] = {}
    for span in spans:
        assert span.context is not None
        found.setdefault(format(span.context.trace_id, "032x"), []).append(span.kind.name)
    return {trace_id: sorted(kinds) for trace_id, kinds in found.items()}


class TestTwoServices:
    # OpenTelemetry's aiohttp server instrumentation subclasses web.Application, which aiohttp
    # warns about; the warning is theirs.
    @pytest.mark.filterwarnings(
        "ignore:Inheritance class _InstrumentedApplication:DeprecationWarning"
    )
    @pytest.mark.asyncio
    @pytest.mark.parametrize("instrumented", [True, False], ids=["otel-instrumented", "plain"])
    @pytest.mark.parametrize("traceparent", [False, True], ids=["x-request-id", "traceparent"])
    async def test_one_trace_id_and_one_request_id_end_to_end(
        self, instrumented: bool, traceparent: bool
    ) -> None:
        """120 requests, 12 at a time, through A and B: each has one request id and one
        trace id in A, in B, in every log line of both, and in its spans (with the
        instrumentation: two server spans and the httpx client span); the tenant travels
        in OTel Baggage when the instrumentation carries it. Without instrumentation every
        trace id is the default, and the request ids still match."""
        services = TwoServices(instrumented, traceparent)
        gate = asyncio.Semaphore(CONCURRENCY)
        sent: dict[int, dict[str, str]] = {}
        for n in range(REQUESTS):
            if traceparent:
                sent[n] = {"traceparent": f"00-{n + 1:032x}-{n + 1:016x}-01"}
            else:
                sent[n] = {"X-Request-ID": f"req-{n}"} if n % 2 else {}
            sent[n]["baggage"] = f"tenant=t-{n},user=mallory"

        async def call(client: httpx.AsyncClient, url: str, n: int) -> dict[str, Any]:
            async with gate:
                response = await client.get(url, headers=sent[n])
                assert 200 == response.status_code, response.text
                body: dict[str, Any] = response.json()
                return body

        async with services.serving() as url, httpx.AsyncClient(timeout=60) as client:
            replies = await asyncio.gather(*(call(client, url, n) for n in range(REQUESTS)))

        request_ids: set[str] = set()
        for n, reply in enumerate(replies):
            request_id = reply["a"]["request_id"]
            request_ids.add(request_id)
            assert request_id == reply["b"]["request_id"]
            if traceparent:
                assert f"{n + 1:032x}" == request_id
            elif n % 2:
                assert f"req-{n}" == request_id
            assert reply["a"]["trace_id"] == reply["b"]["trace_id"]
            assert reply["a"]["user"] is None  # not on the inbound allowlist
            if instrumented:
                expected_trace = f"{n + 1:032x}" if traceparent else reply["a"]["trace_id"]
                assert expected_trace == reply["a"]["trace_id"] != "-"
                assert f"t-{n}" == reply["a"]["tenant"] == reply["b"]["tenant"]
            else:  # nothing extracts or injects OTel Baggage
                assert "-" == reply["a"]["trace_id"]
                assert (None, None) == (reply["a"]["tenant"], reply["b"]["tenant"])
        assert REQUESTS == len(request_ids)

        trace_of = {reply["a"]["request_id"]: reply["a"]["trace_id"] for reply in replies}
        lines = services.a.lines + services.b.lines
        assert 3 * REQUESTS == len(lines)
        for request_id, trace_id in trace_of.items():
            own = [(rid, tid) for rid, tid, _ in lines if rid == request_id]
            assert [(request_id, trace_id)] * 3 == own
        if instrumented:
            traces = spans_by_trace(services.exporter.get_finished_spans())
            assert set(trace_of.values()) == set(traces)
            assert all(["CLIENT", "SERVER", "SERVER"] == kinds for kinds in traces.values())
            assert REQUESTS == len(set(trace_of.values()))
        else:
            assert () == services.exporter.get_finished_spans()


def test_the_core_imports_no_opentelemetry() -> None:
    """``import aiocontext`` and ``aiocontext.logging`` import no OpenTelemetry module."""
    code = (
        "import sys, aiocontext, aiocontext.logging, aiocontext.propagation; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "[]" == result.stdout.strip()
