"""Context across HTTP services: service A (ASGI, uvicorn) calls service B (aiohttp).

A reads the id (``X-Request-ID``) and the W3C baggage of each request with
``RequestIdMiddleware(propagator=...)``, calls B with an aiohttp session that has
``client_trace_config``, and B reads them back with ``aiocontext.aiohttp.setup(...,
propagator=...)``. Everything runs on 127.0.0.1: real servers, real clients, real sockets.
Hostile headers are sent as raw bytes, so no client library cleans them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from servers import aiohttp_serving, uvicorn_serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from stress._support import size

import aiocontext.aiohttp
from aiocontext import Context
from aiocontext.asgi import ASGIApp, Message, Receive, RequestIdMiddleware, Scope, Send
from aiocontext.propagation import Baggage, Propagator, RequestIdHeader

REQUESTS = size(ci=600, full=2_000)  # AIOCONTEXT_STRESS=full for the full size
CONCURRENCY = 100
TIMEOUT = 60


def serving_asgi(app: ASGIApp) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with uvicorn, a backlog for the whole load; yield its base URL."""
    return uvicorn_serving(app, backlog=CONCURRENCY * 2)


class Services:
    """Service B (aiohttp) and service A (Starlette under uvicorn, calling B)."""

    def __init__(self) -> None:
        self.a_context: Context[str, Any] = Context(name="service-a")
        self.b_context: Context[str, Any] = Context(name="service-b")
        self.a_baggage = Propagator({self.a_context: ["request_id", "tenant"]}, codec=Baggage())
        self.b_baggage = Propagator({self.b_context: ["request_id", "tenant"]}, codec=Baggage())
        self.b_app = web.Application()
        self.b_app.router.add_get("/seen", self.b_seen)
        self.b_app.router.add_get("/echo", self.b_echo)
        aiocontext.aiohttp.setup(self.b_app, self.b_context, propagator=self.b_baggage)
        self.session: aiohttp.ClientSession | None = None
        self.b_address = ""
        starlette = Starlette(
            routes=[Route("/call-b", self.a_calls_b), Route("/echo", self.a_echo)]
        )
        self.a_app = RequestIdMiddleware(starlette, self.a_context, propagator=self.a_baggage)

    async def b_seen(self, request: web.Request) -> web.Response:
        """B: what its handler and a sub-task see."""
        sub_task = await asyncio.create_task(asyncio.sleep(0, self.b_context["request_id"]))
        return web.json_response(
            {"b": dict(self.b_context), "b_sub_task": sub_task, "headers": dict(request.headers)}
        )

    async def b_echo(self, request: web.Request) -> web.Response:
        """B: what it made of the request's headers."""
        return web.json_response({"data": dict(self.b_context)})

    async def a_calls_b(self, request: Request) -> JSONResponse:
        """A: call B with the id and baggage of this request, report what B saw."""
        assert self.session is not None
        async with self.session.get(f"{self.b_address}/seen") as response:
            seen: dict[str, Any] = await response.json()
        return JSONResponse({"a": dict(self.a_context), **seen})

    async def a_echo(self, request: Request) -> JSONResponse:
        """A: what it made of the request's headers."""
        return JSONResponse({"data": dict(self.a_context)})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncGenerator[str]:
        """Serve B and A; yield A's address."""
        trace = aiocontext.aiohttp.client_trace_config(self.a_baggage)
        ids = aiocontext.aiohttp.client_trace_config(Propagator({self.a_context: ["request_id"]}))
        async with (
            aiohttp_serving(self.b_app) as b_address,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                trace_configs=[trace, ids],
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as session,
            serving_asgi(self.a_app) as a_address,
        ):
            self.session, self.b_address = session, b_address
            yield a_address


async def raw_request(base: str, path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Send a GET with these header bytes as they are to the server at the URL ``base``;
    return the raw response."""
    address = base.removeprefix("http://")
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"GET {path} HTTP/1.1".encode(), f"Host: {address}".encode()]
        lines += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join([*lines, b"Connection: close", b"", b""]))
        await writer.drain()
        async with asyncio.timeout(20):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


HOSTILE: dict[str, list[tuple[bytes, bytes]]] = {
    "control character in the id": [(b"X-Request-ID", b"evil\x01id")],
    "10 KB id": [(b"X-Request-ID", b"x" * 10_240)],
    "10 KB baggage value": [(b"baggage", b"request_id=" + b"x" * 10_240)],
    "1,000 baggage members": [(b"baggage", b",".join(b"k%d=v" % n for n in range(1000)))],
    "encoded newline in baggage": [(b"baggage", b"request_id=evil%0D%0Aid,tenant=t%0Ax")],
    "malformed baggage": [(b"baggage", b"request_id=%ZZ,tenant=a b,=x,;;,tenant")],
    "non-ASCII id": [(b"X-Request-ID", "évil".encode())],
}


class TestAcrossServices:
    @pytest.mark.asyncio
    async def test_requests_a_to_b_at_concurrency_100(self) -> None:
        """REQUESTS requests to A (600; 2,000 at full size), 100 in flight: B's handler and
        its sub-task see exactly the id and tenant A's request had (sent as X-Request-ID and
        in baggage)."""
        services = Services()
        limit = asyncio.Semaphore(CONCURRENCY)
        async with (
            services.running() as a_address,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as client,
        ):

            async def one(n: int) -> tuple[int, dict[str, Any]]:
                async with limit:
                    headers = {"X-Request-ID": f"load-{n}", "baggage": f"tenant=t{n % 7}"}
                    async with client.get(f"{a_address}/call-b", headers=headers) as response:
                        seen: dict[str, Any] = await response.json()
                        return n, seen

            started = time.perf_counter()
            results = await asyncio.gather(*(one(n) for n in range(REQUESTS)))
            elapsed = time.perf_counter() - started
        mismatches = [
            (n, seen)
            for n, seen in results
            if seen["a"] != {"request_id": f"load-{n}", "tenant": f"t{n % 7}"}
            or seen["b"] != seen["a"]
            or seen["b_sub_task"] != f"load-{n}"
            or seen["headers"]["X-Request-ID"] != f"load-{n}"
        ]
        assert [] == mismatches
        print(f"\n{REQUESTS} requests A -> B at concurrency {CONCURRENCY}: {elapsed:.1f} s")

    @pytest.mark.asyncio
    @pytest.mark.parametrize("case", sorted(HOSTILE))
    async def test_hostile_headers_are_dropped_never_reflected(self, case: str) -> None:
        """Hostile id and baggage headers, sent to A and straight to B: each server answers
        (a fresh UUID4 in place of a bad id), echoes none of the bytes, and serves the next
        request normally."""
        services = Services()
        headers = HOSTILE[case]
        async with services.running() as a_address:
            answers = [
                await raw_request(a_address, "/echo", headers),
                await raw_request(services.b_address, "/echo", headers),
            ]
            after = await raw_request(a_address, "/call-b", [(b"X-Request-ID", b"after")])
        for answer in answers:
            status = int(answer.split(b" ", 2)[1])
            assert status in (200, 400, 431), answer[:200]  # 400/431: the server's own limit
            assert all(value not in answer for _, value in headers)
            if status == 200:  # (a 400 comes from the server's own parser, before any app code)
                assert b"evil" not in answer
                data = json.loads(answer.split(b"\r\n\r\n", 1)[1])["data"]
                assert ["request_id"] == list(data)
                assert is_uuid4(data["request_id"])
                assert f"X-Request-ID: {data['request_id']}".encode().lower() in answer.lower()
        assert answer_ok(after)

    @pytest.mark.asyncio
    async def test_baggage_only_and_response_headers(self) -> None:
        """With no X-Request-ID, A takes the id from the baggage; both services answer with
        the id header and the baggage re-encoded; a request with neither gets a new id."""
        services = Services()
        async with (
            services.running() as a_address,
            httpx.AsyncClient(base_url=a_address, trust_env=False, timeout=TIMEOUT) as client,
        ):
            response = await client.get(
                "/call-b", headers={"baggage": "request_id=from-bag, tenant = Zo%C3%AB"}
            )
            fresh = await client.get("/call-b")
        seen = response.json()
        assert {"request_id": "from-bag", "tenant": "Zoë"} == seen["a"] == seen["b"]
        assert "from-bag" == response.headers["x-request-id"]
        assert "request_id=from-bag,tenant=Zo%C3%AB" == response.headers["baggage"]
        fresh_id = fresh.headers["x-request-id"]
        assert {"request_id": fresh_id} == fresh.json()["a"] == fresh.json()["b"]


def is_uuid4(value: str) -> bool:
    """Whether ``value`` is a UUID4 in canonical form, as the middlewares make them."""
    try:
        return 4 == uuid.UUID(value).version and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def answer_ok(answer: bytes) -> bool:
    """Whether a raw response is a 200 whose body shows the id ``after`` reached B."""
    return answer.startswith(b"HTTP/1.1 200") and b'"b_sub_task":"after"' in answer


class TestClientTraceConfig:
    @pytest.mark.asyncio
    async def test_never_replaces_a_header_and_no_data_sends_none(self) -> None:
        """A header the caller (or the session's defaults) set is kept; a request sent
        where the context has no data carries no id."""
        request: Context[str, str] = Context(name="request")
        propagator = Propagator({request: ["request_id"]}, codec=RequestIdHeader())

        async def headers(web_request: web.Request) -> web.Response:
            return web.json_response(dict(web_request.headers))

        app = web.Application()
        app.router.add_get("/", headers)
        async with (
            aiohttp_serving(app) as address,
            aiohttp.ClientSession(
                trace_configs=[aiocontext.aiohttp.client_trace_config(propagator)],
                headers={"X-Default": "d"},
            ) as session,
        ):
            async with session.get(f"{address}/") as response:
                no_data = await response.json()
            request.attach()
            request["request_id"] = "ours"
            async with session.get(f"{address}/", headers={"x-request-id": "theirs"}) as response:
                theirs = await response.json()
            async with session.get(f"{address}/") as response:
                ours = await response.json()
        assert "X-Request-ID" not in no_data
        assert ("theirs", "d") == (theirs["X-Request-ID"], theirs["X-Default"])
        assert "ours" == ours["X-Request-ID"]

    def test_bad_propagator(self) -> None:
        """A non-propagator is refused, saying what to pass."""
        with pytest.raises(
            TypeError, match="propagator must be an aiocontext.propagation.Propagator"
        ):
            aiocontext.aiohttp.client_trace_config(object())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


class TestInboundPropagator:
    @pytest.mark.asyncio
    async def test_aiohttp_other_contexts_errors_and_streams(self) -> None:
        """aiohttp: a propagator's other context gets its values as its data for the
        request; error and streamed responses carry the baggage back too."""
        request: Context[str, Any] = Context(name="request")
        tenant: Context[str, Any] = Context(name="tenant")
        propagator = Propagator({request: ["request_id"], tenant: ["tenant"]}, codec=Baggage())

        async def ok(web_request: web.Request) -> web.Response:
            return web.json_response({"request": dict(request), "tenant": dict(tenant)})

        async def missing(web_request: web.Request) -> web.Response:
            raise web.HTTPNotFound()

        async def stream(web_request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(web_request)
            await response.write(b"streamed")
            return response

        app = web.Application()
        app.router.add_get("/", ok)
        app.router.add_get("/missing", missing)
        app.router.add_get("/stream", stream)
        aiocontext.aiohttp.setup(app, request, propagator=propagator)
        tenant.attach()
        headers = {"baggage": "tenant=acme,request_id=r-9"}
        async with aiohttp_serving(app) as address, aiohttp.ClientSession() as session:
            async with session.get(f"{address}/", headers=headers) as response:
                seen = await response.json()
            async with session.get(f"{address}/missing", headers=headers) as response:
                missing_headers = response.headers.copy()
            async with session.get(f"{address}/stream", headers=headers) as response:
                stream_headers = response.headers.copy()
        assert {"request": {"request_id": "r-9"}, "tenant": {"tenant": "acme"}} == seen
        for answer in (missing_headers, stream_headers):
            assert ("r-9", "request_id=r-9,tenant=acme") == (
                answer["X-Request-ID"],
                answer["baggage"],
            )

    @pytest.mark.asyncio
    async def test_aiohttp_middleware_alone_with_a_propagator(self) -> None:
        """aiohttp, ``request_id_middleware(propagator=...)`` without ``setup``: handled and
        raised responses carry the id and the baggage back; the handler sees both contexts'
        values."""
        request: Context[str, Any] = Context(name="request")
        tenant: Context[str, Any] = Context(name="tenant")
        propagator = Propagator({request: ["request_id"], tenant: ["tenant"]}, codec=Baggage())

        async def ok(web_request: web.Request) -> web.Response:
            return web.json_response({"request": dict(request), "tenant": dict(tenant)})

        async def missing(web_request: web.Request) -> web.Response:
            raise web.HTTPNotFound()

        middleware = aiocontext.aiohttp.request_id_middleware(request, propagator=propagator)
        app = web.Application(middlewares=[middleware])
        app.router.add_get("/", ok)
        app.router.add_get("/missing", missing)
        request.attach()
        tenant.attach()
        headers = {"baggage": "tenant=acme,request_id=r-9"}
        async with aiohttp_serving(app) as address, aiohttp.ClientSession() as session:
            async with session.get(f"{address}/", headers=headers) as response:
                seen = await response.json()
                ok_headers = response.headers.copy()
            async with session.get(f"{address}/missing", headers=headers) as response:
                missing_headers = response.headers.copy()
        assert {"request": {"request_id": "r-9"}, "tenant": {"tenant": "acme"}} == seen
        for answer in (ok_headers, missing_headers):
            expected = ("r-9", "request_id=r-9,tenant=acme")
            assert expected == (answer["X-Request-ID"], answer["baggage"])

    @pytest.mark.asyncio
    async def test_aiohttp_setup_response_to_a_request_never_seen(self) -> None:
        """aiohttp, ``setup(propagator=...)``: a response made before the request-id
        middleware ran (an outer middleware answering itself) gets neither header."""
        context: Context[str, Any] = Context(name="request")
        propagator = Propagator({context: ["request_id"]}, codec=Baggage())

        @web.middleware
        async def short_circuit(request: web.Request, handler: Handler) -> web.StreamResponse:
            return web.Response(text="short")

        app = web.Application()
        aiocontext.aiohttp.setup(app, context, propagator=propagator)
        app.middlewares.insert(0, short_circuit)
        headers = {"baggage": "request_id=r-9"}
        async with aiohttp_serving(app) as address, aiohttp.ClientSession() as session:
            async with session.get(f"{address}/", headers=headers) as response:
                answer = (response.status, await response.text(), response.headers.copy())
        assert (200, "short") == answer[:2]
        assert ("X-Request-ID" in answer[2], "baggage" in answer[2]) == (False, False)

    @pytest.mark.asyncio
    async def test_asgi_propagator_without_response_header(self) -> None:
        """ASGI, a propagator and ``response_header=False``: the request's data comes from
        the baggage, the application's messages go out unchanged."""
        request: Context[str, Any] = Context(name="request")
        propagator = Propagator({request: ["request_id"]}, codec=Baggage())
        seen: dict[str, Any] = {}
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.update(request)
            await send(start)

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request"}

        middleware = RequestIdMiddleware(app, request, propagator=propagator, response_header=False)
        scope = {"type": "http", "headers": [(b"baggage", b"request_id=r-9")]}
        await middleware(scope, receive, send)
        assert {"request_id": "r-9"} == seen
        assert [start] == sent
        assert [] == sent[0]["headers"]

    @pytest.mark.asyncio
    async def test_asgi_other_contexts_and_the_apps_own_headers(self) -> None:
        """ASGI: the propagator's other context gets its values for the request, and a
        baggage header the application set is kept."""
        request: Context[str, Any] = Context(name="request")
        tenant: Context[str, Any] = Context(name="tenant")
        propagator = Propagator({request: ["request_id"], tenant: ["tenant"]}, codec=Baggage())
        seen: dict[str, Any] = {}

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.update(request=dict(request), tenant=dict(tenant))
            headers = [(b"baggage", b"set-by-app=1")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request"}

        middleware = RequestIdMiddleware(app, request, propagator=propagator)
        tenant.attach()
        scope = {
            "type": "http",
            "headers": [(b"baggage", b"tenant=acme"), (b"baggage", b"request_id=r-9")],
        }
        await middleware(scope, receive, send)
        assert {"request": {"request_id": "r-9"}, "tenant": {"tenant": "acme"}} == seen
        assert [(b"baggage", b"set-by-app=1"), (b"x-request-id", b"r-9")] == sent[0]["headers"]
        assert "propagator=Propagator(" in repr(middleware)
        with pytest.raises(TypeError, match="propagator must be"):
            RequestIdMiddleware(app, request, propagator="baggage")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="propagator must be"):
            aiocontext.aiohttp.request_id_middleware(request, propagator=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
