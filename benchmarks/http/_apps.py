"""The servers' applications: one tiny handler behind each middleware (runs in the server).

Every variant serves ``GET /``: the handler reads the request id, awaits a sub-task that
reads it too, and returns the sub-task's value as the body. ``GET /stop`` stops the server
(the harness sends it last). ``bare`` has no middleware: its handler reads a ``ContextVar``
nobody sets (so it does the same work, minus the middleware) and answers ``-``.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

__all__ = [
    "AIOHTTP_VARIANTS",
    "ASGI_VARIANTS",
    "BARE_BODY",
    "VARIANTS",
    "aiohttp_app",
    "asgi_app",
]

ASGI_VARIANTS: Final = (
    "bare",
    "aiocontext",
    "asgi-correlation-id",
    "starlette-context",
    "hand-written",
)
AIOHTTP_VARIANTS: Final = ("bare", "aiocontext", "hand-written", "hand-written-all")
#: Every variant, in table order.
VARIANTS: Final = (*ASGI_VARIANTS, "hand-written-all")
BARE_BODY: Final = "-"

# The hand-written middlewares' whole state: one ContextVar; the same validation as
# aiocontext's (an id is echoed only if it is short and made of safe characters).
_VAR: Final[contextvars.ContextVar[str]] = contextvars.ContextVar("request_id", default=BARE_BODY)
_SAFE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}\Z")

Read = Callable[[], str]
Stop = Callable[[], None]


async def _child(read: Read) -> str:
    return read()


async def handle(read: Read) -> str:
    """The handler's work: read the id, await a sub-task that reads it, return its value."""
    first = read()
    second = await asyncio.create_task(_child(read))
    if first != second:
        raise AssertionError(f"the sub-task saw {second!r}, its parent {first!r}")
    return second


def _valid(value: str | None) -> str:
    """``value`` if it is a safe id, else a new one (what a hand-written middleware does)."""
    if value is not None and _SAFE.match(value) is not None:
        return value
    return uuid.uuid4().hex


class HandWrittenASGI:
    """The smallest correct ASGI request-id middleware: one ``ContextVar`` set/reset."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = _valid(incoming)
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _VAR.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _VAR.reset(token)


def _no_sentry(correlation_id: str) -> None:
    """asgi-correlation-id's Sentry extension when sentry-sdk is not installed."""


def asgi_app(variant: str, stop: Stop) -> Any:
    """The Starlette application of ``variant``; ``GET /stop`` calls ``stop``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    middleware: list[Middleware] = []
    read: Read = _VAR.get
    if variant == "aiocontext":
        from aiocontext import Context
        from aiocontext.asgi import RequestIdMiddleware

        context: Context[str, str] = Context(name="request")
        middleware.append(Middleware(RequestIdMiddleware, context=context))
        read = lambda: context["request_id"]  # noqa: E731 - one expression per variant
    elif variant == "asgi-correlation-id":
        from asgi_correlation_id import CorrelationIdMiddleware, correlation_id

        class WithoutSentry(CorrelationIdMiddleware):
            """As installed without sentry-sdk (the bench group): with it (a dev venv has
            it) every request also sets a Sentry tag, which is not what is compared."""

            def __post_init__(self) -> None:
                self.sentry_extension = _no_sentry

        middleware.append(Middleware(WithoutSentry))
        read = lambda: correlation_id.get() or ""  # noqa: E731 - one expression per variant
    elif variant == "starlette-context":
        from starlette_context import context as sc_context
        from starlette_context import plugins
        from starlette_context.middleware import RawContextMiddleware

        middleware.append(Middleware(RawContextMiddleware, plugins=(plugins.RequestIdPlugin(),)))

        def read() -> str:
            return str(cast("Mapping[str, object]", sc_context)["X-Request-ID"])
    elif variant == "hand-written":
        middleware.append(Middleware(HandWrittenASGI))
    elif variant != "bare":
        raise ValueError(f"unknown ASGI variant {variant!r}: one of {', '.join(ASGI_VARIANTS)}")

    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await handle(read))

    async def stop_route(request: Request) -> PlainTextResponse:
        stop()
        return PlainTextResponse("stopping")

    routes = [Route("/", index), Route("/stop", stop_route)]
    return Starlette(routes=routes, middleware=middleware)


def aiohttp_app(variant: str, stop: Stop) -> Any:
    """The aiohttp application of ``variant``; ``GET /stop`` calls ``stop``."""
    from aiohttp import web

    app = web.Application()
    read: Read = _VAR.get
    if variant == "aiocontext":
        import aiocontext.aiohttp
        from aiocontext import Context

        context: Context[str, str] = Context(name="request")
        aiocontext.aiohttp.setup(app, context)
        read = lambda: context["request_id"]  # noqa: E731 - one expression per variant
    elif variant == "hand-written":
        app.middlewares.append(_make_hand_written_aiohttp())
    elif variant == "hand-written-all":
        _set_up_hand_written_all(app)
    elif variant != "bare":
        raise ValueError(
            f"unknown aiohttp variant {variant!r}: one of {', '.join(AIOHTTP_VARIANTS)}"
        )

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=await handle(read))

    async def stop_route(request: web.Request) -> web.Response:
        stop()
        return web.Response(text="stopping")

    app.router.add_get("/", index)
    app.router.add_get("/stop", stop_route)
    return app


def _make_hand_written_aiohttp() -> Any:
    from aiohttp import web

    @web.middleware
    async def hand_written(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request_id = _valid(request.headers.get("X-Request-ID"))
        token = _VAR.set(request_id)
        try:
            response = await handler(request)
        finally:
            _VAR.reset(token)
        response.headers["X-Request-ID"] = request_id
        return response

    return hand_written


def _set_up_hand_written_all(app: Any) -> None:
    """The smallest middleware giving what ``aiocontext.aiohttp.setup()`` guarantees beyond
    ``hand-written``: the id kept on the request (``get_request_id``), and the header set as
    each response is prepared, so that streamed responses and aiohttp's 500 page carry it."""
    from aiohttp import web

    key = web.RequestKey("request_id", str)

    @web.middleware
    async def hand_written_all(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request_id = _valid(request.headers.get("X-Request-ID"))
        request[key] = request_id
        token = _VAR.set(request_id)
        try:
            return await handler(request)
        finally:
            _VAR.reset(token)

    async def set_header(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(key)
        if request_id is not None:
            response.headers["X-Request-ID"] = request_id

    app.middlewares.append(hand_written_all)
    app.on_response_prepare.append(set_header)
