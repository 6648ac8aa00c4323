"""Trace ids in log lines, and the request id taken from ``traceparent``.

An aiohttp service instrumented by OpenTelemetry (``AioHttpServerInstrumentor``, the SDK with
an exporter): ``ContextFilter(request, providers=[SpanFields()])`` puts the request id, the
trace id and the span id on every log line, and ``request_id_middleware(...,
propagator=Propagator(..., codec=TraceparentRequestId()))`` makes an incoming
``traceparent``'s trace id the request id, so one id finds the log lines and the trace.

Run it::

    python examples/opentelemetry_trace_ids.py              # serves on http://127.0.0.1:8080
    curl -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" \\
        http://127.0.0.1:8080/order/42
    python examples/opentelemetry_trace_ids.py --self-test  # a random port, a few requests

Needs ``pip install "aiocontext[aiohttp,opentelemetry]" opentelemetry-sdk
opentelemetry-instrumentation-aiohttp-server``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings
from typing import ClassVar

import aiohttp
from aiohttp import web
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aiocontext.aiohttp
from aiocontext import Context
from aiocontext.logging import ContextFilter
from aiocontext.opentelemetry import SpanFields, TraceparentRequestId
from aiocontext.propagation import Propagator

request_context: Context[str, str] = Context(name="request")
log = logging.getLogger("orders")
exporter = InMemorySpanExporter()  # a real service would export to its collector


class Lines(logging.Handler):
    """Prints each line and keeps (request id, trace id, message), for --self-test."""

    lines: ClassVar[list[tuple[str, str, str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record))
        fields = record.__dict__
        self.lines.append((fields["request_id"], fields["trace_id"], record.getMessage()))


def setup_logging() -> None:
    """One handler, with the context's request id and the span's ids on every line."""
    handler = Lines()
    handler.setFormatter(
        logging.Formatter("[%(request_id)s trace=%(trace_id)s span=%(span_id)s] %(message)s")
    )
    handler.addFilter(ContextFilter(request_context, providers=[SpanFields()]))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


async def order(request: web.Request) -> web.Response:
    """Log from the handler and from a sub-task; answer with the request id."""
    number = request.match_info["number"]
    log.info("order %s: looking it up", number)
    await asyncio.create_task(asyncio.sleep(0))
    log.info("order %s: found", number)
    return web.Response(text=request_context["request_id"])


def make_app() -> web.Application:
    """The service, traced by OpenTelemetry's aiohttp instrumentation."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with warnings.catch_warnings():  # the instrumentation subclasses web.Application
        warnings.simplefilter("ignore", DeprecationWarning)
        AioHttpServerInstrumentor().instrument(tracer_provider=provider)
        app = web.Application()
    from_traceparent = Propagator({request_context: ["request_id"]}, codec=TraceparentRequestId())
    aiocontext.aiohttp.setup(app, request_context, propagator=from_traceparent)
    app.router.add_get("/order/{number}", order)
    return app


async def self_test() -> bool:
    """Three requests with a traceparent, one without: check ids in lines and spans."""
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    ok = True
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(1, 5):
                trace_id = f"{n:032x}"
                headers = {"traceparent": f"00-{trace_id}-{n:016x}-01"} if n < 4 else {}
                async with session.get(f"{url}/order/{n}", headers=headers) as response:
                    request_id = await response.text()
                lines = [line for line in Lines.lines if line[2].startswith(f"order {n}:")]
                traces = {line[1] for line in lines}
                # With a traceparent the request id is its trace id; without one, the trace
                # OpenTelemetry started is in the lines (and the request id is a fresh one).
                wanted = {trace_id} if n < 4 else traces - {"-"}
                good = {request_id} == {line[0] for line in lines} and wanted == traces
                good = good and len(lines) == 2 and len(traces) == 1
                print(
                    f"self-test: order {n}: request id {request_id}, traces {sorted(traces)}: "
                    f"{'OK' if good else 'FAILED'}"
                )
                ok = ok and good
    finally:
        await runner.cleanup()
        AioHttpServerInstrumentor().uninstrument()
    spans = {
        format(span.context.trace_id, "032x")
        for span in exporter.get_finished_spans()
        if span.context
    }
    ok = ok and {f"{n:032x}" for n in range(1, 4)} <= spans and len(spans) == 4
    print(f"self-test: 4 requests, {len(spans)} traces, {'every id matched' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Trace ids in log lines.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, send requests, exit"
    )
    args = parser.parse_args(argv)
    setup_logging()
    if args.self_test:
        return 0 if asyncio.run(self_test()) else 1
    web.run_app(make_app(), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
