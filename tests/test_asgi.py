"""``aiocontext.asgi``: the request id middleware, under a real uvicorn and called directly.

The server tests run a real uvicorn on 127.0.0.1 (a free port) inside the test's own loop,
serving real Starlette and FastAPI applications, hit by real httpx and websockets clients.
The direct tests call the middleware with hand-built scopes for the edge cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import BackgroundTasks, Depends, FastAPI
from servers import uvicorn_serving, websocket_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from typing_extensions import TypeIs
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from aiocontext import Context, EventLoopError, Key, Share, TaskFactoryWrapper, loop_factory
from aiocontext.asgi import ASGIApp, Message, Receive, RequestIdMiddleware, Scope, Send
from conftest import LoopFactory

TIMEOUT = 30  # seconds: a bound on every server test, never reached when things work
CONCURRENT = 50  # requests in flight at once


def is_uuid4(value: str) -> bool:
    """Whether ``value`` is a UUID4 in canonical form, as the middleware makes them."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return 4 == parsed.version and str(parsed) == value


def serving(app: ASGIApp) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with uvicorn, its lifespan on; yield its base URL."""
    return uvicorn_serving(app, lifespan="on")


def handshake_headers(websocket: ClientConnection) -> Headers:
    """The headers of the server's response to a WebSocket client's handshake."""
    assert websocket.response is not None
    return websocket.response.headers


def client(address: str) -> httpx.AsyncClient:
    """An HTTP client for the server at ``address`` (no proxies from the environment)."""
    return httpx.AsyncClient(base_url=address, trust_env=False, timeout=10)


async def ids_seen(context: Context[str, str]) -> dict[str, Any]:
    """The request id as the current task and the tasks and threads it spawns see it."""

    async def child() -> str:
        await asyncio.sleep(0)
        return context["request_id"]

    first = context["request_id"]
    await asyncio.sleep(0.01)  # let the other requests run in between
    task = await asyncio.create_task(child())
    gathered = await asyncio.gather(child(), child())
    async with asyncio.TaskGroup() as group:
        grouped = group.create_task(child())
    threaded = await asyncio.to_thread(lambda: context["request_id"])
    return {
        "first": first,
        "after_sleep": context["request_id"],
        "create_task": task,
        "gather": gathered,
        "task_group": grouped.result(),
        "to_thread": threaded,
    }


def is_id_list(value: object) -> TypeIs[list[str]]:
    """Whether ``value``, from a response of ``ids_seen``, is a list (of ids)."""
    return isinstance(value, list)


def flatten(seen: dict[str, Any]) -> set[str]:
    """Every id in a response of ``ids_seen``."""
    values: set[str] = set()
    for value in seen.values():
        values.update(value if is_id_list(value) else [value])
    return values


def starlette_app(context: Context[str, str]) -> Starlette:
    """A Starlette app with the middleware: HTTP and WebSocket endpoints reporting ids."""

    async def ids(request: Request) -> JSONResponse:
        seen = await ids_seen(context)
        seen["state"] = request.state.request_id
        return JSONResponse(seen)

    async def data(request: Request) -> JSONResponse:
        await request.body()
        found = dict(context)
        context["user"] = context["request_id"]  # must never reach another request
        return JSONResponse({"data": found, "port": request.client and request.client.port})

    async def replaces_header(request: Request) -> Response:
        headers = {"X-Request-ID": "set-by-app", "x-other": "kept"}
        return PlainTextResponse(context["request_id"], headers=headers)

    async def websocket_ids(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=None, headers=[(b"x-request-id", b"set-by-app")])
        seen = await ids_seen(context)
        seen["state"] = websocket.state.request_id
        await websocket.send_json(seen)
        await websocket.close()

    async def websocket_denied(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("no", status_code=403))

    app = Starlette(
        routes=[
            Route("/ids", ids),
            Route("/data", data, methods=["GET", "POST"]),
            Route("/replaces-header", replaces_header),
            WebSocketRoute("/ws", websocket_ids),
            WebSocketRoute("/ws-denied", websocket_denied),
        ]
    )
    app.add_middleware(RequestIdMiddleware, context=context)
    return app


def fastapi_app(context: Context[str, str], background: list[tuple[str, str]]) -> FastAPI:
    """A FastAPI app with the middleware: dependencies, background tasks, a WebSocket."""
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware, context=context)

    async def async_dependency() -> str:
        await asyncio.sleep(0)
        return context["request_id"]

    def sync_dependency() -> str:  # FastAPI runs it in its thread pool
        return context["request_id"]

    async def yield_dependency() -> AsyncIterator[str]:
        expected = context["request_id"]
        yield expected
        background.append((expected, context["request_id"]))  # the teardown, after the endpoint

    async def async_background(expected: str) -> None:
        await asyncio.sleep(0.01)
        background.append((expected, context["request_id"]))

    def sync_background(expected: str) -> None:  # run in the thread pool
        background.append((expected, context["request_id"]))

    @app.get("/ids")
    async def ids(
        request: Request,
        tasks: BackgroundTasks,
        # Dependencies as defaults: the annotations are strings (PEP 563) that FastAPI
        # resolves in this module's globals, where these local functions are not.
        from_async: str = Depends(async_dependency),
        from_sync: str = Depends(sync_dependency),
        from_yield: str = Depends(yield_dependency),
    ) -> dict[str, Any]:
        tasks.add_task(async_background, context["request_id"])
        tasks.add_task(sync_background, context["request_id"])
        seen = await ids_seen(context)
        seen.update(
            state=request.state.request_id,
            async_dependency=from_async,
            sync_dependency=from_sync,
            yield_dependency=from_yield,
        )
        return seen

    @app.get("/sync")
    def sync_endpoint() -> dict[str, str]:  # FastAPI runs it in its thread pool
        return {"sync_endpoint": context["request_id"]}

    @app.websocket("/ws")
    async def websocket_ids(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"context": context["request_id"]})
        await websocket.close()

    return app


# -- helpers for the direct tests -------------------------------------------------------------


class Recorder:
    """A hand-made ASGI app recording what it gets, then sending an HTTP response."""

    def __init__(
        self, context: Context[Any, Any], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.context = context
        self.headers = headers if headers is not None else [(b"content-type", b"text/plain")]
        self.scope: Scope = {}
        self.data: dict[Any, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.data = dict(self.context)
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"ok"})


class Sent:
    """A ``send`` callable that keeps the messages, and a ``receive`` that has nothing."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    def headers(self, index: int = 0) -> list[tuple[bytes, bytes]]:
        """The headers of the ``index``-th message sent, as tuples."""
        return [(name, value) for name, value in self.messages[index]["headers"]]


def http_scope(*headers: tuple[bytes, bytes]) -> Scope:
    """An ``http`` scope with ``headers``."""
    return {"type": "http", "method": "GET", "path": "/", "headers": list(headers)}


async def call(middleware: RequestIdMiddleware, scope: Scope, sent: Sent | None = None) -> Sent:
    """Call ``middleware`` with ``scope``; return what it sent."""
    sent = Sent() if sent is None else sent
    await middleware(scope, sent.receive, sent.send)
    return sent


class TestRequestIdMiddleware:
    # -- under uvicorn, with real frameworks and clients -----------------------------------

    @pytest.mark.asyncio
    async def test_starlette_concurrent_requests_each_see_their_own_id(self) -> None:
        """Concurrent requests each see their own id in the endpoint, its sub-tasks and
        threads, ``request.state`` and the response header."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with client(address) as http:
                responses = await asyncio.gather(
                    *(
                        http.get("/ids", headers={"x-request-id": f"req-{number}"})
                        for number in range(CONCURRENT)
                    )
                )
        for number, response in enumerate(responses):
            assert 200 == response.status_code
            assert f"req-{number}" == response.headers["x-request-id"]
            assert {f"req-{number}"} == flatten(response.json())

    @pytest.mark.asyncio
    async def test_fastapi_dependencies_background_tasks_and_sync_endpoints(self) -> None:
        """FastAPI dependencies (async, sync, yield), background tasks and sync endpoints
        each see their request's id, with requests running concurrently."""
        context: Context[str, str] = Context(name="request")
        background: list[tuple[str, str]] = []
        async with asyncio.timeout(TIMEOUT), serving(fastapi_app(context, background)) as address:
            async with client(address) as http:
                responses = await asyncio.gather(
                    *(
                        http.get("/ids", headers={"x-request-id": f"api-{number}"})
                        for number in range(CONCURRENT)
                    )
                )
                sync = await asyncio.gather(
                    *(
                        http.get("/sync", headers={"x-request-id": f"sync-{number}"})
                        for number in range(10)
                    )
                )
                # background tasks run after the responses: poll what the app records
                while len(background) < 3 * CONCURRENT:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        for number, response in enumerate(responses):
            assert f"api-{number}" == response.headers["x-request-id"]
            assert {f"api-{number}"} == flatten(response.json())
        assert [{"sync_endpoint": f"sync-{number}"} for number in range(10)] == [
            response.json() for response in sync
        ]
        assert 3 * CONCURRENT == len(background)
        assert [] == [(expected, seen) for expected, seen in background if expected != seen]

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "sent",
        [None, b"", b"has space", b"x" * 129, b'"quoted"', b"-dash", b"caf\xe9", b"\xff\xfe"],
        ids=["missing", "empty", "space", "too-long", "quotes", "leading-dash", "latin-1", "bytes"],
    )
    async def test_missing_or_invalid_header_is_replaced_by_a_new_uuid4(
        self, sent: bytes | None
    ) -> None:
        """A missing or invalid id is never echoed: the request gets a new UUID4, the
        same in the response header and everywhere in the request."""
        context: Context[str, str] = Context(name="request")
        headers: dict[bytes, bytes] = {} if sent is None else {b"x-request-id": sent}
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with client(address) as http:
                first = await http.get("/ids", headers=headers)
                second = await http.get("/ids", headers=headers)
        request_id = first.headers["x-request-id"]
        assert is_uuid4(request_id)
        assert {request_id} == flatten(first.json())
        assert request_id != second.headers["x-request-id"]  # a new one for each request

    @pytest.mark.asyncio
    async def test_valid_header_is_kept_as_sent(self) -> None:
        """A valid id with every allowed punctuation character is used as it is."""
        context: Context[str, str] = Context(name="request")
        sent = "3f6c9a2e-Req.42:a+b=c/d_e"
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with client(address) as http:
                response = await http.get("/ids", headers={"X-Request-ID": sent})
        assert sent == response.headers["x-request-id"]
        assert {sent} == flatten(response.json())

    @pytest.mark.asyncio
    async def test_keep_alive_requests_never_see_each_others_data(self) -> None:
        """Sequential requests on one keep-alive connection each start with only their own
        id, even after large bodies made uvicorn pause and resume reading (CPython
        gh-140947), and a value a request writes never reaches the next one."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with client(address) as http:
                responses: list[httpx.Response] = []
                for number in range(12):
                    headers = {"x-request-id": f"seq-{number}"}
                    if number % 2:
                        responses.append(
                            await http.post("/data", headers=headers, content=b"x" * 200_000)
                        )
                    else:
                        responses.append(await http.get("/data", headers=headers))
        assert [{"request_id": f"seq-{number}"} for number in range(12)] == [
            response.json()["data"] for response in responses
        ]
        assert 1 == len({response.json()["port"] for response in responses})  # one connection

    @pytest.mark.asyncio
    async def test_share_policy_gives_each_request_its_own_shared_mapping(self) -> None:
        """Under ``Share()`` a request and its sub-tasks share one mapping, and concurrent
        requests (whose server tasks share the server's mapping) do not share it."""
        context: Context[str, Any] = Context(Share(), name="request")

        async def endpoint(request: Request) -> JSONResponse:
            async def fill(name: str) -> None:
                await asyncio.sleep(0.01)
                context[name] = context["request_id"]

            async with asyncio.TaskGroup() as group:
                group.create_task(fill("a"))
                group.create_task(fill("b"))
            return JSONResponse(dict(context))

        app = Starlette(routes=[Route("/", endpoint)])
        app.add_middleware(RequestIdMiddleware, context=context)
        async with asyncio.timeout(TIMEOUT), serving(app) as address:
            async with client(address) as http:
                responses = await asyncio.gather(
                    *(http.get("/", headers={"x-request-id": f"s-{n}"}) for n in range(20))
                )
        assert [{"request_id": f"s-{n}", "a": f"s-{n}", "b": f"s-{n}"} for n in range(20)] == [
            response.json() for response in responses
        ]

    @pytest.mark.asyncio
    async def test_response_header_set_by_the_app_is_replaced(self) -> None:
        """The response carries exactly one id header, the middleware's, and the app's
        other headers."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with client(address) as http:
                response = await http.get("/replaces-header", headers={"x-request-id": "mine"})
        assert ["mine"] == response.headers.get_list("x-request-id")
        assert "kept" == response.headers["x-other"]
        assert "mine" == response.text

    @pytest.mark.asyncio
    async def test_wrapping_the_whole_app_puts_the_header_on_500_responses(self) -> None:
        """Wrapped around the whole Starlette app, the middleware also sets the header on
        the 500 response of an unhandled exception."""
        context: Context[str, str] = Context(name="request")

        async def fails(request: Request) -> Response:
            raise RuntimeError(f"boom in {context['request_id']}")

        app = RequestIdMiddleware(Starlette(routes=[Route("/", fails)]), context)
        async with asyncio.timeout(TIMEOUT), serving(app) as address:
            async with client(address) as http:
                response = await http.get("/", headers={"x-request-id": "failing"})
        assert 500 == response.status_code
        assert "failing" == response.headers["x-request-id"]

    @pytest.mark.asyncio
    async def test_lifespan_runs_on_a_loop_the_middleware_attached(self) -> None:
        """With ``lifespan="on"`` the first call is the lifespan startup: the app's lifespan
        already runs on a loop with the context attached."""
        context: Context[str, str] = Context(name="request")
        attached: list[bool] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncGenerator[None]:
            attached.append(context.is_attached())
            yield

        app = Starlette(lifespan=lifespan)
        app.add_middleware(RequestIdMiddleware, context=context)
        async with asyncio.timeout(TIMEOUT), serving(app):
            pass
        assert [True] == attached

    @pytest.mark.asyncio
    async def test_websocket_sees_the_handshake_id_and_accept_carries_it(self) -> None:
        """A WebSocket endpoint, its sub-tasks and ``websocket.state`` see the handshake's
        id, and the accept response carries it (replacing the app's own)."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            async with connect(
                websocket_url(address, "/ws"), additional_headers={"X-Request-ID": "ws-1"}
            ) as websocket:
                seen = json.loads(await websocket.recv())
                headers = handshake_headers(websocket).get_all("x-request-id")
        assert ["ws-1"] == headers
        assert {"ws-1"} == flatten(seen)

    @pytest.mark.asyncio
    async def test_websocket_without_id_gets_a_new_one(self) -> None:
        """Concurrent WebSocket connections without an id each get their own new UUID4."""
        context: Context[str, str] = Context(name="request")

        async def one(address: str) -> tuple[str, set[str]]:
            async with connect(websocket_url(address, "/ws")) as websocket:
                seen = json.loads(await websocket.recv())
                return handshake_headers(websocket)["x-request-id"], flatten(seen)

        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            results = await asyncio.gather(*(one(address) for _ in range(10)))
        assert 10 == len({request_id for request_id, _ in results})
        for request_id, seen in results:
            assert is_uuid4(request_id)
            assert {request_id} == seen

    @pytest.mark.asyncio
    async def test_websocket_denial_response_carries_the_id(self) -> None:
        """A WebSocket handshake the app rejects with an HTTP response gets the header."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(starlette_app(context)) as address:
            with pytest.raises(InvalidStatus) as info:
                async with connect(
                    websocket_url(address, "/ws-denied"),
                    additional_headers={"x-request-id": "denied"},
                ):
                    pass  # pragma: no cover - the handshake is rejected
        assert 403 == info.value.response.status_code
        assert "denied" == info.value.response.headers["x-request-id"]

    @pytest.mark.asyncio
    async def test_fastapi_websocket(self) -> None:
        """A FastAPI WebSocket endpoint sees the handshake's id."""
        context: Context[str, str] = Context(name="request")
        async with asyncio.timeout(TIMEOUT), serving(fastapi_app(context, [])) as address:
            async with connect(
                websocket_url(address, "/ws"), additional_headers={"x-request-id": "fast-ws"}
            ) as websocket:
                seen = json.loads(await websocket.recv())
                header = handshake_headers(websocket)["x-request-id"]
        assert ("fast-ws", {"context": "fast-ws"}) == (header, seen)

    def test_uvicorn_loop_option_takes_a_loop_factory(
        self, new_loop: LoopFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The documented alternative: ``uvicorn --loop module:function`` with
        ``aiocontext.loop_factory`` attaches the context before the server starts, so even
        code outside the middleware has it; the middleware then uses that attachment."""
        context: Context[str, str] = Context(name="request")
        monkeypatch.setattr(
            sys.modules[__name__], "make_loop", loop_factory(context, base=new_loop), raising=False
        )
        attached_before: list[bool] = []
        inner = starlette_app(context)

        async def outer(scope: Scope, receive: Receive, send: Send) -> None:
            attached_before.append(context.is_attached())
            await inner(scope, receive, send)

        config = uvicorn.Config(
            outer,
            host="127.0.0.1",
            port=0,
            loop=f"{__name__}:make_loop",
            lifespan="on",
            log_level="warning",
            log_config=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        try:
            for _ in range(1000):
                if server.started:
                    break
                thread.join(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            with httpx.Client(trust_env=False, timeout=10) as http:
                response = http.get(f"http://127.0.0.1:{port}/ids", headers={"x-request-id": "lf"})
        finally:
            server.should_exit = True
            thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert {"lf"} == flatten(response.json())
        assert [True, True] == attached_before  # the lifespan call, then the request

    # -- called directly, for the edge cases ------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("scope_type", ["lifespan", "something-new"])
    async def test_other_scope_types_pass_straight_through(self, scope_type: str) -> None:
        """A ``lifespan`` (or unknown) scope reaches the app as it is, with the same
        ``receive`` and ``send``, no binding and no header; the context gets attached."""
        context: Context[str, str] = Context(name="request")
        got: list[Any] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            got.extend([scope, receive, send, "request_id" in context])

        scope: Scope = {"type": scope_type}
        sent = Sent()
        await RequestIdMiddleware(app, context)(scope, sent.receive, sent.send)
        assert [scope, sent.receive, sent.send, False] == got
        assert got[0] is scope
        assert {"type": scope_type} == scope
        assert context.is_attached()

    @pytest.mark.asyncio
    async def test_first_of_duplicate_headers_is_used_whatever_its_case(self) -> None:
        """Of several id headers the first is used, matched case-insensitively."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        scope = http_scope(
            (b"accept", b"*/*"), (b"X-Request-ID", b"first"), (b"x-request-id", b"second")
        )
        sent = await call(RequestIdMiddleware(app, context), scope)
        assert {"request_id": "first"} == app.data
        assert (b"x-request-id", b"first") == sent.headers()[-1]

    @pytest.mark.asyncio
    async def test_invalid_first_header_is_replaced_not_skipped(self) -> None:
        """An invalid first id is replaced by a new one, not by a later header's value."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        scope = http_scope((b"x-request-id", b"bad id"), (b"x-request-id", b"good"))
        sent = await call(RequestIdMiddleware(app, context), scope)
        assert is_uuid4(app.data["request_id"])
        assert (b"x-request-id", app.data["request_id"].encode()) == sent.headers()[-1]

    @pytest.mark.asyncio
    async def test_headers_as_lists_and_scope_without_headers(self) -> None:
        """Header pairs may be lists (ASGI allows any two-item iterable); a scope without
        ``headers`` gets a new id."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        middleware = RequestIdMiddleware(app, context)
        await call(middleware, {"type": "http", "headers": [[b"x-request-id", b"listed"]]})
        assert {"request_id": "listed"} == app.data
        await call(middleware, {"type": "http"})
        assert is_uuid4(app.data["request_id"])

    @pytest.mark.asyncio
    async def test_app_headers_of_the_same_name_are_replaced(self) -> None:
        """Every id header the app set, in any case, is replaced by one with the request's
        id; the app's other headers keep their order."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(
            context,
            headers=[
                (b"X-Request-Id", b"app-1"),
                (b"content-type", b"text/plain"),
                (b"x-request-id", b"app-2"),
                (b"x-other", b"kept"),
            ],
        )
        sent = await call(RequestIdMiddleware(app, context), http_scope((b"x-request-id", b"r")))
        assert [
            (b"content-type", b"text/plain"),
            (b"x-other", b"kept"),
            (b"x-request-id", b"r"),
        ] == sent.headers()
        assert [(b"X-Request-Id", b"app-1")] == app.headers[:1]  # the app's list is untouched

    @pytest.mark.asyncio
    async def test_without_response_header_messages_pass_unchanged(self) -> None:
        """With ``response_header=False`` the app's messages are sent as they are."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context, headers=[(b"x-request-id", b"app")])
        middleware = RequestIdMiddleware(app, context, response_header=False)
        sent = await call(middleware, http_scope((b"x-request-id", b"r")))
        assert [(b"x-request-id", b"app")] == sent.headers()
        assert {"request_id": "r"} == app.data

    @pytest.mark.asyncio
    async def test_messages_other_than_the_response_start_pass_unchanged(self) -> None:
        """Body messages are passed on as the very same objects."""
        context: Context[str, str] = Context(name="request")
        body: Message = {"type": "http.response.body", "body": b"ok"}

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200})
            await send(body)

        sent = await call(RequestIdMiddleware(app, context), http_scope())
        assert sent.messages[1] is body
        assert [b"x-request-id"] == [name for name, _ in sent.headers()]

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("message", "expected_headers"),
        [
            ({"type": "websocket.accept"}, [(b"x-request-id", b"ws")]),
            (
                {
                    "type": "websocket.accept",
                    "subprotocol": "chat",
                    "headers": [(b"x-request-id", b"app"), (b"x-app", b"1")],
                },
                [(b"x-app", b"1"), (b"x-request-id", b"ws")],
            ),
            (
                {"type": "websocket.http.response.start", "status": 403, "headers": []},
                [(b"x-request-id", b"ws")],
            ),
        ],
        ids=["accept", "accept-with-headers", "denial"],
    )
    async def test_websocket_accept_and_denial_get_the_header(
        self, message: Message, expected_headers: list[tuple[bytes, bytes]]
    ) -> None:
        """``websocket.accept`` and a denial response's start get the id header; the other
        fields are kept."""
        context: Context[str, str] = Context(name="request")
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(context["request_id"])
            await send(message)

        scope: Scope = {"type": "websocket", "headers": [(b"x-request-id", b"ws")]}
        sent = await call(RequestIdMiddleware(app, context), scope)
        assert ["ws"] == seen
        assert expected_headers == sent.headers()
        assert {**message, "headers": None} == {**sent.messages[0], "headers": None}

    @pytest.mark.asyncio
    @pytest.mark.parametrize("after_start", [False, True], ids=["before-start", "after-start"])
    async def test_app_raising_propagates_and_the_data_comes_back(self, after_start: bool) -> None:
        """An exception from the app propagates unchanged (nothing sent if it is raised
        before the response starts) and the caller's data is as it was."""
        context: Context[str, str] = Context(name="request").attach()
        context["request_id"] = "outer"
        error = ValueError("boom")

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if after_start:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            raise error

        sent = Sent()
        with pytest.raises(ValueError) as info:  # noqa: PT011 - the identity is checked below
            await call(RequestIdMiddleware(app, context), http_scope((b"x-request-id", b"r")), sent)
        assert info.value is error
        assert (1 if after_start else 0) == len(sent.messages)
        assert {"request_id": "outer"} == context

    @pytest.mark.asyncio
    async def test_app_starts_with_only_the_id_and_the_callers_data_comes_back(self) -> None:
        """The app sees only the request id (nothing of the caller's data), and what it
        writes stays with it: the caller's data is untouched afterwards."""
        context: Context[str, str] = Context(name="request").attach()
        context.update(request_id="outer", user="ann")
        seen: list[dict[str, str]] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(dict(context))
            context["user"] = "bob"

        await call(RequestIdMiddleware(app, context), http_scope((b"x-request-id", b"inner")))
        assert [{"request_id": "inner"}] == seen
        assert {"request_id": "outer", "user": "ann"} == context

    @pytest.mark.asyncio
    async def test_scope_is_copied_and_state_gets_the_id(self) -> None:
        """The app gets a copy of the scope whose ``state`` holds the id; a ``state`` the
        server provided is that same per-request dict, its keys kept."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        middleware = RequestIdMiddleware(app, context)

        bare = http_scope((b"x-request-id", b"r1"))
        await call(middleware, bare)
        assert "state" not in bare
        assert {"request_id": "r1"} == app.scope["state"]
        assert {**bare, "state": {"request_id": "r1"}} == app.scope

        state = {"from_lifespan": 1}
        with_state = {**http_scope((b"x-request-id", b"r2")), "state": state}
        await call(middleware, with_state)
        assert app.scope["state"] is state
        assert {"from_lifespan": 1, "request_id": "r2"} == state

    @pytest.mark.asyncio
    async def test_custom_header_and_typed_key(self) -> None:
        """A custom header name (any case) and a ``Key[str]``: the id is read and written
        under the lowercased header, bound under the key, in ``state`` under its name."""
        context: Context[Any, Any] = Context(name="request")
        correlation = Key[str]("correlation_id")
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.extend([context[correlation], scope["state"]["correlation_id"]])
            await send({"type": "http.response.start", "status": 204, "headers": []})

        middleware = RequestIdMiddleware(app, context, header="X-Correlation-ID", key=correlation)
        sent = await call(middleware, http_scope((b"x-correlation-id", b"c-1")))
        assert ["c-1", "c-1"] == seen
        assert [(b"x-correlation-id", b"c-1")] == sent.headers()

    @pytest.mark.asyncio
    async def test_uses_a_loop_the_context_is_already_attached_to(self) -> None:
        """On a loop where the context is attached already (``loop_factory``, lifespan),
        the middleware uses that attachment as it is."""
        context: Context[str, str] = Context(name="request").attach()
        wrapper = TaskFactoryWrapper.of(asyncio.get_running_loop())
        app = Recorder(context)
        await call(RequestIdMiddleware(app, context), http_scope((b"x-request-id", b"r")))
        assert {"request_id": "r"} == app.data
        assert wrapper is TaskFactoryWrapper.of(asyncio.get_running_loop())

    def test_attaches_to_each_loop_it_runs_on(self, new_loop: LoopFactory) -> None:
        """One middleware called on several loops in turn attaches the context to each,
        and its sub-tasks inherit the id on every one of them."""
        context: Context[str, str] = Context(name="request")
        seen: list[str] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async def child() -> None:
                seen.append(context["request_id"])

            await asyncio.create_task(child())

        middleware = RequestIdMiddleware(app, context)
        loops = [new_loop() for _ in range(2)]
        try:
            for number, loop in enumerate([*loops, loops[0]]):
                scope = http_scope((b"x-request-id", f"loop-{number}".encode()))
                loop.run_until_complete(call(middleware, scope))
                assert context.is_attached(loop)
        finally:
            for loop in loops:
                loop.close()
        assert ["loop-0", "loop-1", "loop-2"] == seen

    def test_needs_an_asyncio_loop(self) -> None:
        """Called with no asyncio loop running (under trio, say), it raises
        ``EventLoopError`` saying to run the server on asyncio."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        sent = Sent()
        coroutine = RequestIdMiddleware(app, context)(http_scope(), sent.receive, sent.send)
        with pytest.raises(EventLoopError, match="needs an asyncio event loop"):
            coroutine.send(None)
        assert [] == sent.messages

    # -- construction -----------------------------------------------------------------------

    def test_repr(self) -> None:
        """The repr shows the app, the context and the options, the header lowercased."""
        context: Context[str, str] = Context(name="request")
        app = Recorder(context)
        middleware = RequestIdMiddleware(app, context, header="X-Id", response_header=False)
        assert (
            f"RequestIdMiddleware(app={app!r}, context={context!r}, header='x-id', "
            "key='request_id', response_header=False)"
        ) == repr(middleware)

    def test_app_must_be_callable(self) -> None:
        """A non-callable app is a ``TypeError`` that says what an ASGI app is."""
        with pytest.raises(TypeError, match=r"app\(scope, receive, send\)"):
            RequestIdMiddleware("main:app", Context())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_context_must_be_a_context(self) -> None:
        """A mapping that is not a Context is a ``TypeError`` naming the fix."""
        app = Recorder(Context())
        with pytest.raises(TypeError, match=r"Context\(name='request'\)"):
            RequestIdMiddleware(app, {})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    @pytest.mark.parametrize(
        "header", ["", "x request id", "x-id\n", "x-ïd", b"x-request-id", None]
    )
    def test_header_must_be_a_header_name(self, header: Any) -> None:
        """A header that is not a valid HTTP header name string is a ``ValueError``."""
        app = Recorder(Context())
        with pytest.raises(ValueError, match="must be an HTTP header name such as"):
            RequestIdMiddleware(app, Context(), header=header)

    @pytest.mark.parametrize("key", [1, None, b"request_id"])
    def test_key_must_be_a_str_or_key(self, key: Any) -> None:
        """A key that is neither a ``str`` nor a ``Key`` is a ``TypeError``."""
        app = Recorder(Context())
        with pytest.raises(TypeError, match=r"key must be a str or an aiocontext.Key\[str\]"):
            RequestIdMiddleware(app, Context(), key=key)
