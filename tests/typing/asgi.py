"""How the ASGI middleware type-checks with Starlette, FastAPI and uvicorn (never run)."""

from __future__ import annotations

from typing import Any, assert_type

import starlette.types
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware

from aiocontext import Context, Key
from aiocontext.asgi import ASGIApp, Message, Receive, RequestIdMiddleware, Scope, Send

request: Context[str, str] = Context(name="request")
anything = Context(name="anything")


def starlette_add_middleware() -> None:
    app = Starlette()
    app.add_middleware(RequestIdMiddleware, context=request)
    app.add_middleware(
        RequestIdMiddleware,
        context=anything,
        header="x-correlation-id",
        key=Key[str]("correlation_id"),
        response_header=False,
    )
    app.add_middleware(RequestIdMiddleware)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    app.add_middleware(RequestIdMiddleware, context=request, header=b"x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    app.add_middleware(RequestIdMiddleware, context=request, key=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    app.add_middleware(RequestIdMiddleware, context={})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    app.add_middleware(RequestIdMiddleware, context=request, headers="x")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def starlette_middleware_list() -> None:
    Starlette(middleware=[Middleware(RequestIdMiddleware, context=request)])
    Starlette(middleware=[Middleware(RequestIdMiddleware, request, header="x-id")])


def fastapi_add_middleware() -> None:
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware, context=request, header="x-request-id")
    FastAPI(middleware=[Middleware(RequestIdMiddleware, context=request)])


def wrapping() -> None:
    wrapped = RequestIdMiddleware(FastAPI(), request)
    as_starlette_app: starlette.types.ASGIApp = wrapped
    as_our_app: ASGIApp = Starlette()
    uvicorn.Config(wrapped, host="127.0.0.1", port=0)
    uvicorn.Config(RequestIdMiddleware(as_starlette_app, request))
    RequestIdMiddleware(as_our_app, request, key="id")
    RequestIdMiddleware(wsgi_app, request)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return []


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    assert_type(message, Message)
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def calling() -> None:
    middleware = RequestIdMiddleware(bare_app, request)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    assert_type(await middleware({"type": "http"}, receive, send), None)
