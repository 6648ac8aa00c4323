"""Streaming responses behind aiocontext's middlewares: every chunk carries its request's data.

Three real servers on 127.0.0.1 (a free port), in the test's own loop: uvicorn serving a
Starlette ``StreamingResponse`` and an sse-starlette ``EventSourceResponse`` behind
:class:`aiocontext.asgi.RequestIdMiddleware`, and aiohttp serving a ``web.StreamResponse``
set up with :func:`aiocontext.aiohttp.setup`. RESPONSES requests are sent at once, each with
an id of its own; every response's body is produced by an async generator (or the aiohttp
handler) that reads the context for each chunk, and all RESPONSES responses are open at the
same time (each waits at a barrier after its first chunk until every other one has started).
Every chunk must carry its own request's id and no other request's write, under every
policy and on both loops.

The generators here read the context and write to it, but never scope a block inside the
generator (``with ctx.bound(...)`` across a ``yield``): see docs/integrations/streaming.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

import aiohttp
import pytest
from aiohttp import web
from servers import aiohttp_serving, uvicorn_serving
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import aiocontext.aiohttp
from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, PropagationPolicy, Share
from aiocontext.asgi import RequestIdMiddleware

#: Responses open at once, and chunks per response.
RESPONSES: Final = 200
CHUNKS: Final = 5
TIMEOUT: Final = 60  # seconds: a bound on every test, never reached

POLICIES: Final[dict[str, PropagationPolicy]] = {
    "Copy": Copy(),
    "ChainMap": ChainMap(),
    "DeepCopy": DeepCopy(),
    "Share": Share(),
}
Kind = Literal["starlette", "sse", "aiohttp"]


class Chunks:
    """What each response streams: per chunk, the id and any other request's write."""

    def __init__(self, ctx: Context[str, Any]) -> None:
        self.ctx = ctx
        self.started = asyncio.Barrier(RESPONSES)

    def chunk(self, n: int) -> str:
        """One chunk: ``<id> <leak>``, then this request's own write (that no other sees)."""
        ctx = self.ctx
        text = f"{ctx.get('request_id')} {ctx.get('written_by')}"
        ctx["written_by"] = f"{ctx.get('request_id')}#{n}"
        return text

    async def stream(self) -> AsyncIterator[str]:
        """The chunks, meeting every other response at the barrier after the first one."""
        for n in range(CHUNKS):
            yield self.chunk(n)
            if n == 0:
                async with asyncio.timeout(TIMEOUT):
                    await self.started.wait()
            await asyncio.sleep(0)


def serving_uvicorn(app: Any) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with uvicorn, a backlog for every response at once; yield its base URL."""
    return uvicorn_serving(app, timeout_keep_alive=TIMEOUT, backlog=RESPONSES * 2)


def serving_aiohttp(app: web.Application) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with aiohttp, a backlog for every response at once; yield its base URL."""
    return aiohttp_serving(app, backlog=RESPONSES * 2)


def starlette_app(ctx: Context[str, Any], chunks: Chunks, kind: Kind) -> Any:
    """A Starlette app streaming :class:`Chunks`, behind the ASGI middleware."""

    async def plain(request: Request) -> StreamingResponse:
        return StreamingResponse(f"{text}\n" async for text in chunks.stream())

    async def events(request: Request) -> EventSourceResponse:
        return EventSourceResponse({"data": text} async for text in chunks.stream())

    app = Starlette(routes=[Route("/", plain if kind == "starlette" else events)])
    return RequestIdMiddleware(app, ctx)


def aiohttp_app(ctx: Context[str, Any], chunks: Chunks) -> web.Application:
    """An aiohttp app whose handler streams :class:`Chunks` with ``StreamResponse.write``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        async for text in chunks.stream():
            await response.write(f"{text}\n".encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    aiocontext.aiohttp.setup(app, ctx)
    return app


def parse(kind: Kind, body: str) -> list[str]:
    """The chunks of a response body: lines, or the data of each SSE event."""
    if kind == "sse":
        return [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    return body.splitlines()


class TestStreamingResponses:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    @pytest.mark.parametrize("kind", ["starlette", "sse", "aiohttp"])
    async def test_every_chunk_of_concurrent_responses_carries_its_request_data(
        self, kind: Kind, policy: str
    ) -> None:
        """RESPONSES streamed responses open at once: each of their CHUNKS chunks carries
        its request's id, and the only write it sees is its own previous chunk's."""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="streaming", registry=ContextRegistry()
        )
        chunks = Chunks(ctx)
        server = (
            serving_aiohttp(aiohttp_app(ctx, chunks))
            if kind == "aiohttp"
            else serving_uvicorn(starlette_app(ctx, chunks, kind))
        )
        wrong: list[tuple[int, list[str]]] = []

        async def one(session: aiohttp.ClientSession, url: str, n: int) -> None:
            async with session.get(url, headers={"x-request-id": f"req-{n}"}) as response:
                body = await response.text()
            expected = [f"req-{n} None"] + [f"req-{n} req-{n}#{i}" for i in range(CHUNKS - 1)]
            if parse(kind, body) != expected or response.headers["x-request-id"] != f"req-{n}":
                wrong.append((n, parse(kind, body)))

        connector = aiohttp.TCPConnector(limit=RESPONSES)
        async with (
            asyncio.timeout(TIMEOUT),
            server as url,
            aiohttp.ClientSession(connector=connector) as session,
        ):
            await asyncio.gather(*(one(session, url, n) for n in range(RESPONSES)))
        assert [] == wrong

    @pytest.mark.asyncio
    async def test_a_value_the_endpoint_sets_before_returning_reaches_every_chunk(
        self,
    ) -> None:
        """What the endpoint writes before it returns the response (the recipe's "scope
        around the response") is what every chunk sees."""
        ctx: Context[str, Any] = Context(name="streaming", registry=ContextRegistry())

        async def chunks() -> AsyncIterator[str]:
            for n in range(CHUNKS):
                await asyncio.sleep(0)
                yield f"{ctx['request_id']} {ctx.get('stage')} {n}\n"

        async def endpoint(request: Request) -> StreamingResponse:
            ctx["stage"] = "streaming"
            return StreamingResponse(chunks())

        app = RequestIdMiddleware(Starlette(routes=[Route("/", endpoint)]), ctx)
        async with (
            asyncio.timeout(TIMEOUT),
            serving_uvicorn(app) as url,
            aiohttp.ClientSession() as session,
            session.get(url, headers={"x-request-id": "req-1"}) as response,
        ):
            body = await response.text()
        assert [f"req-1 streaming {n}" for n in range(CHUNKS)] == body.splitlines()
