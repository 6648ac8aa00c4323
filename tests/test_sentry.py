"""``aiocontext.sentry``: context keys as tags on sentry-sdk's isolation scope, per request.

Events go to a transport that records them (no network). The server test runs Starlette
under uvicorn on 127.0.0.1 with ``RequestIdMiddleware`` around ``SentryTagsMiddleware``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Generator
from typing import Any

import httpx
import pytest
import sentry_sdk
from aiohttp import web
from aiohttp.typedefs import Handler
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from servers import aiohttp_serving, uvicorn_serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aiocontext import Context, ContextRegistry, Key
from aiocontext.aiohttp import request_id_middleware
from aiocontext.asgi import ASGIApp, Message, Receive, RequestIdMiddleware, Scope, Send
from aiocontext.sentry import SentryTags, SentryTagsMiddleware

REQUESTS = 150
CONCURRENCY = 15
TENANT = Key[str]("tenant")


class Recording(Transport):
    """A transport keeping every event it is given, in memory."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            with self._lock:
                self.events.append(dict(event))


@contextlib.contextmanager
def sentry() -> Generator[Recording]:
    """sentry-sdk set up with a recording transport and no integrations, closed after."""
    transport = Recording()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        # A disabled client again, with no integration: a default one would patch httpx,
        # aiohttp, ... for the rest of the process (headers on other tests' requests).
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)


def new_context() -> Context[Any, Any]:
    """A context of the test's own."""
    return Context(name="request", registry=ContextRegistry())


def tags_of(event: dict[str, Any]) -> dict[str, str]:
    """An event's tags."""
    tags: dict[str, str] = event.get("tags", {})
    return tags


class TestSentryTags:
    def test_tags_on_the_isolated_scope_only(self) -> None:
        """Events captured in ``isolated()`` carry the tags, events after it do not."""
        ctx = new_context()
        tags = SentryTags(ctx, ["request_id", TENANT])
        with sentry() as transport:
            with ctx.restore({"request_id": "r-1", TENANT: "acme"}), tags.isolated():
                sentry_sdk.capture_message("inside")
            sentry_sdk.capture_message("outside")
        inside, outside = transport.events
        assert {"request_id": "r-1", "tenant": "acme"} == tags_of(inside)
        assert {} == tags_of(outside)

    def test_values_written_later_are_refreshed_at_capture(self) -> None:
        """A key written inside the block is on the events captured after it."""
        ctx = new_context()
        tags = SentryTags(ctx, {"request_id": "request", "user": "user"})
        with sentry() as transport, ctx.restore({"request_id": "r-1"}), tags.isolated():
            sentry_sdk.capture_message("before")
            ctx["user"] = 42
            sentry_sdk.capture_message("after")
        assert [{"request": "r-1"}, {"request": "r-1", "user": "42"}] == [
            tags_of(event) for event in transport.events
        ]

    def test_no_data_no_tags(self) -> None:
        """Outside any task (no data) there is nothing to tag with, and no error."""
        tags = SentryTags(new_context())
        with sentry() as transport, tags.isolated():
            sentry_sdk.capture_message("no data")
        assert {} == tags_of(transport.events[0])
        assert {} == tags.values()

    def test_tag_sets_the_current_isolation_scope(self) -> None:
        """``tag()`` with no scope tags the current isolation scope."""
        ctx = new_context()
        tags = SentryTags(ctx)
        with sentry() as transport, sentry_sdk.isolation_scope(), ctx.restore({"request_id": "r"}):
            tags.tag()
            sentry_sdk.capture_message("tagged")
        assert {"request_id": "r"} == tags_of(transport.events[0])

    def test_names_and_repr(self) -> None:
        """Tag names: a key's own name, or the name it is mapped to."""
        ctx = new_context()
        tags = SentryTags(ctx, ["request_id", TENANT])
        assert ("request_id", "tenant") == tags.names
        assert f"SentryTags({ctx!r}, {{'request_id': 'request_id', {TENANT!r}: 'tenant'}})" == repr(
            tags
        )

    @pytest.mark.parametrize(
        ("fields", "error", "message"),
        [
            ("request_id", TypeError, "must be a collection of keys"),
            (TENANT, TypeError, "must be a collection of keys"),
            (None, TypeError, "must be a collection of keys"),
            ([1], TypeError, "a key must be a str or an aiocontext.Key"),
            ({"request_id": ""}, TypeError, "must be a non-empty str"),
            ({"request_id": 1}, TypeError, "must be a non-empty str"),
            ([], ValueError, "fields is empty"),
            ({"a": "x", "b": "x"}, ValueError, "two keys are tagged 'x'"),
        ],
        ids=repr,
    )
    def test_bad_fields(self, fields: Any, error: type[Exception], message: str) -> None:
        """Misuse fails when the object is made."""
        with pytest.raises(error, match=message):
            SentryTags(new_context(), fields)

    def test_bad_context(self) -> None:
        """The context must be a Context."""
        not_a_context: Any = {"request_id": "r"}
        with pytest.raises(TypeError, match="context must be an aiocontext.Context"):
            SentryTags(not_a_context)


def serving(app: ASGIApp) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with uvicorn, its lifespan on; yield its base URL."""
    return uvicorn_serving(app, lifespan="on")


class TestSentryTagsMiddleware:
    @pytest.mark.asyncio
    async def test_each_event_carries_its_own_requests_tags(self) -> None:
        """150 concurrent requests, 15 at a time, on a real server: each request captures
        an event before and after an await and in a thread; every event carries exactly its
        own request's id and tenant."""
        ctx = new_context().attach()
        tags = SentryTags(ctx, ["request_id", TENANT])

        async def endpoint(request: Request) -> PlainTextResponse:
            ctx[TENANT] = request.headers["x-tenant"]
            sentry_sdk.capture_message(f"first {ctx['request_id']}")
            await asyncio.sleep(0)
            await asyncio.to_thread(sentry_sdk.capture_message, f"thread {ctx['request_id']}")
            sentry_sdk.capture_message(f"last {ctx['request_id']}")
            return PlainTextResponse(ctx["request_id"])

        inner = SentryTagsMiddleware(Starlette(routes=[Route("/", endpoint)]), tags)
        app = RequestIdMiddleware(inner, ctx)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def call(client: httpx.AsyncClient, url: str, n: int) -> str:
            async with gate:
                headers = {"x-request-id": f"req-{n}", "x-tenant": f"tenant-{n}"}
                response = await client.get(url, headers=headers)
                assert 200 == response.status_code
                return response.text

        try:
            with sentry() as transport:
                async with serving(app) as url, httpx.AsyncClient(timeout=60) as client:
                    ids = await asyncio.gather(*(call(client, url, n) for n in range(REQUESTS)))
        finally:
            ctx.detach()
        assert [f"req-{n}" for n in range(REQUESTS)] == ids
        assert 3 * REQUESTS == len(transport.events)
        for event in transport.events:
            request_id = event["message"].split()[1]
            n = request_id.removeprefix("req-")
            assert {"request_id": request_id, "tenant": f"tenant-{n}"} == tags_of(event)

    @pytest.mark.asyncio
    async def test_lifespan_passes_through(self) -> None:
        """Messages other than HTTP and WebSocket reach the app untouched, in no new scope."""
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])

        async def receive() -> Message:
            return {"type": "lifespan.startup"}

        async def send(message: Message) -> None:
            pass

        await SentryTagsMiddleware(app, SentryTags(new_context()))(
            {"type": "lifespan"}, receive, send
        )
        assert ["lifespan"] == seen

    def test_bad_tags(self) -> None:
        """``tags`` must be a SentryTags."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            pass

        not_tags: Any = ["request_id"]
        with pytest.raises(TypeError, match="tags must be a SentryTags"):
            SentryTagsMiddleware(app, not_tags)


class TestAiohttpRecipe:
    @pytest.mark.asyncio
    async def test_the_documented_middleware(self) -> None:
        """The aiohttp recipe of docs/integrations/sentry.md: a four-line middleware using
        ``tags.isolated()`` after the request-id middleware; 60 concurrent requests on a real
        aiohttp server, each event with its own request's id."""
        ctx = new_context()
        tags = SentryTags(ctx)

        @web.middleware
        async def sentry_tags(request: web.Request, handler: Handler) -> web.StreamResponse:
            with tags.isolated():
                return await handler(request)

        async def endpoint(request: web.Request) -> web.Response:
            await asyncio.sleep(0)
            sentry_sdk.capture_message(ctx["request_id"])
            return web.Response(text=ctx["request_id"])

        app = web.Application(middlewares=[request_id_middleware(ctx), sentry_tags])
        app.router.add_get("/", endpoint)
        ctx.attach()
        try:
            with sentry() as transport:
                async with aiohttp_serving(app) as base, httpx.AsyncClient(timeout=60) as client:
                    url = f"{base}/"
                    calls = [client.get(url, headers={"x-request-id": f"r-{n}"}) for n in range(60)]
                    responses = await asyncio.gather(*calls)
        finally:
            ctx.detach()
        assert [f"r-{n}" for n in range(60)] == [response.text for response in responses]
        assert 60 == len(transport.events)
        assert all({"request_id": e["message"]} == tags_of(e) for e in transport.events)


def test_the_core_imports_no_sentry() -> None:
    """``import aiocontext`` and its core modules import no sentry-sdk module."""
    code = (
        "import sys, aiocontext, aiocontext.logging, aiocontext.propagation, aiocontext.asgi; "
        "print(sorted(m for m in sys.modules if m.startswith('sentry_sdk')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "[]" == result.stdout.strip()
