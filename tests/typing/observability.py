"""How the observability integrations type-check: OpenTelemetry, Sentry, loguru, log field
providers and carriers of bytes (never run)."""

from __future__ import annotations

from typing import Any, assert_type

from loguru import logger
from opentelemetry import context as otel_context

from aiocontext import Context, Key
from aiocontext.logging import ContextFilter, FieldProvider, StructlogProcessor, structlog_processor
from aiocontext.loguru import LoguruPatcher, patcher
from aiocontext.opentelemetry import BaggageKeys, SpanFields, TraceparentRequestId, trace_id_of
from aiocontext.propagation import Baggage, Propagator, RequestIdHeader, field, header_values
from aiocontext.sentry import SentryTags, SentryTagsMiddleware

request: Context[str, str] = Context(name="request")
TENANT = Key[str]("tenant")


def providers() -> None:
    spans = SpanFields()
    assert_type(spans.names, tuple[str, ...])
    assert_type(spans.values(), dict[str, object])
    ContextFilter(request, providers=[spans])
    assert_type(structlog_processor(request, providers=[spans]), StructlogProcessor)
    provider: FieldProvider = SpanFields(trace_id="otel_trace_id")
    ContextFilter(request, providers=[provider])
    ContextFilter(request, providers=spans)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ContextFilter(request, providers=["trace_id"])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
    FieldProvider()  # type: ignore[abstract]  # pyright: ignore[reportAbstractUsage]


def opentelemetry() -> None:
    keys = BaggageKeys({request: ["tenant", TENANT]}, inbound=["tenant"])
    assert_type(keys.to_baggage(), otel_context.Context)
    assert_type(keys.inbound(), dict[Context[Any, Any], dict[Any, Any]])
    assert_type(keys.allowed, frozenset[str])
    with keys.outbound():
        keys.apply(otel_context.get_current())
    BaggageKeys({request: ["tenant"]})  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Propagator({request: ["request_id"]}, codec=TraceparentRequestId())
    assert_type(trace_id_of("00-..."), str | None)
    codec: RequestIdHeader = TraceparentRequestId()
    TraceparentRequestId("X-Request-ID")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    del codec


def sentry() -> None:
    tags = SentryTags(request, ["request_id", TENANT])
    SentryTags(request, {"request_id": "request"})
    assert_type(tags.names, tuple[str, ...])
    assert_type(tags.values(), dict[str, object])
    with tags.isolated() as scope:
        scope.set_tag("extra", "1")

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    SentryTagsMiddleware(app, tags)
    SentryTagsMiddleware(app, ["request_id"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def loguru() -> None:
    made = patcher(request, ["request_id", TENANT], providers=[SpanFields()])
    assert_type(made, LoguruPatcher)
    logger.configure(patcher=made)
    logger.patch(made).info("typed")


def carriers() -> None:
    codec = Baggage()
    codec.decode({b"baggage": b"a=1"})
    codec.decode({"baggage": ["a=1", b"b=2"]})
    assert_type(header_values({b"x": [b"1"]}, "x"), list[str])
    Propagator({request: [field("request_id")]}).extract({b"x-request-id": b"r-1"})
