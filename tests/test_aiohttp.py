"""Tests for ``aiocontext.aiohttp``: request ids through a real aiohttp server and client.

Every server listens on 127.0.0.1 on a port the OS picks, and every request has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from servers import aiohttp_serving

from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, Key, Share
from aiocontext.aiohttp import HEADER, KEY, get_request_id, request_id_middleware, setup
from aiocontext.logging import ContextFilter

TIMEOUT = aiohttp.ClientTimeout(total=20)
CONCURRENT = 50
TRACE_ID = Key[str]("trace_id")


def is_uuid4(value: str) -> bool:
    """Whether ``value`` is a UUID4 in canonical form."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return 4 == parsed.version and str(parsed) == value


def new_context(**options: Any) -> Context[str, Any]:
    """A context of its own for one test, outside the default registry."""
    return Context(name="request", registry=ContextRegistry(), **options)


class Records(logging.Handler):
    """A handler keeping every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of the test's own, not propagating, with its handlers removed afterwards."""
    logger = logging.getLogger(f"test.aiocontext.aiohttp.{request.node.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)


class Service:
    """An aiohttp app whose handlers report the id they and their sub-tasks see."""

    def __init__(self, ctx: Context[str, Any], log: logging.Logger, *, parties: int = 0) -> None:
        self.ctx = ctx
        self.log = log
        self.barrier = asyncio.Barrier(parties) if parties else None
        self.app = web.Application()
        self.app.router.add_get("/fanout", self.fanout)
        self.app.router.add_get("/data", self.data)
        self.app.router.add_get("/not-found", self.not_found)
        self.app.router.add_get("/redirect", self.redirect)
        self.app.router.add_get("/boom", self.boom)
        self.app.router.add_get("/stream", self.stream)

    def seen(self, where: str) -> str:
        """Log from ``where`` and return the id the context holds there."""
        self.log.info(where)
        value: str = self.ctx["request_id"]
        return value

    async def sub_task(self, where: str) -> str:
        await asyncio.sleep(0)
        return self.seen(where)

    async def fanout(self, request: web.Request) -> web.Response:
        """Report the id seen by the handler, its sub-tasks and a thread."""
        if self.barrier is not None:  # every request is in flight at once
            async with asyncio.timeout(10):
                await self.barrier.wait()
        seen = {"handler": self.seen("handler"), "request": get_request_id(request)}
        seen["create_task"] = await asyncio.create_task(self.sub_task("create_task"))
        seen["gather"], _ = await asyncio.gather(self.sub_task("gather"), asyncio.sleep(0))
        async with asyncio.TaskGroup() as group:
            in_group = group.create_task(self.sub_task("task_group"))
        seen["task_group"] = in_group.result()
        seen["to_thread"] = await asyncio.to_thread(self.seen, "to_thread")
        return web.json_response(seen)

    async def data(self, request: web.Request) -> web.Response:
        """Report the request's data and connection, then write more data."""
        data = dict(self.ctx)
        self.ctx["scratch"] = data.get("request_id")
        assert request.transport is not None
        port = request.transport.get_extra_info("peername")[1]
        return web.json_response({"data": data, "client_port": port})

    async def not_found(self, request: web.Request) -> web.Response:
        raise web.HTTPNotFound(text=self.ctx["request_id"])

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/data")

    async def boom(self, request: web.Request) -> web.Response:
        raise RuntimeError("handler bug")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(self.ctx["request_id"].encode())
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def client(**connector_options: Any) -> AsyncGenerator[aiohttp.ClientSession]:
    """A client session with a timeout on every request."""
    connector = aiohttp.TCPConnector(**connector_options)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        yield session


async def get(
    session: aiohttp.ClientSession, url: str, headers: Any = None
) -> tuple[int, str | None, Any]:
    """GET ``url``: the status, the response's id header and the body (JSON or text)."""
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        if response.content_type == "application/json":
            body: Any = await response.json()
        else:
            body = await response.text()
        return response.status, response.headers.get(HEADER), body


class TestSetup:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "policy", [Copy(), Share(), ChainMap(), DeepCopy()], ids=lambda p: type(p).__name__
    )
    async def test_concurrent_requests_each_see_their_own_id(
        self, log: logging.Logger, policy: Any
    ) -> None:
        """50 requests in flight at once each see their own id in the response header,
        the handler, ``get_request_id``, sub-tasks (create_task, gather, TaskGroup,
        to_thread) and log records, whatever the context's policy."""
        ctx = new_context(policy=policy)
        records = Records()
        records.addFilter(ContextFilter(ctx))
        log.addHandler(records)
        service = Service(ctx, log, parties=CONCURRENT)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client(limit=CONCURRENT) as session:
            results = await asyncio.gather(
                *(get(session, f"{url}/fanout", {HEADER: f"req-{n}"}) for n in range(CONCURRENT))
            )
        for n, (status, header, seen) in enumerate(results):
            expected = f"req-{n}"
            assert (200, expected) == (status, header)
            assert (
                dict.fromkeys(
                    ["handler", "request", "create_task", "gather", "task_group", "to_thread"],
                    expected,
                )
                == seen
            )
        by_id: dict[str, set[str]] = {}
        for record in records.records:
            by_id.setdefault(record.__dict__["request_id"], set()).add(record.getMessage())
        assert {f"req-{n}" for n in range(CONCURRENT)} == set(by_id)
        assert all(
            {"handler", "create_task", "gather", "task_group", "to_thread"} == messages
            for messages in by_id.values()
        )

    @pytest.mark.asyncio
    async def test_missing_header_gets_a_new_uuid4(self, log: logging.Logger) -> None:
        """A request without the header gets a fresh UUID4, each request its own."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            results = [await get(session, f"{url}/fanout") for _ in range(3)]
        headers = [header for _, header, _ in results]
        assert all(header is not None and is_uuid4(header) for header in headers)
        assert 3 == len(set(headers))
        assert all(header == seen["to_thread"] for _, header, seen in results)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "value",
        ["x" * 129, "a b", '"quoted"', "it's", "", "héllo", "<script>", "a;b=c", "-leading"],
        ids=[
            "too-long",
            "space",
            "quotes",
            "apostrophe",
            "empty",
            "non-ascii",
            "angle",
            "semicolon",
            "leading-dash",
        ],
    )
    async def test_invalid_header_is_replaced(self, log: logging.Logger, value: str) -> None:
        """An unsafe incoming id is never echoed: the request gets a fresh UUID4."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            status, header, seen = await get(session, f"{url}/fanout", {HEADER: value})
        assert 200 == status
        assert header is not None
        assert is_uuid4(header)
        assert header == seen["handler"] == seen["to_thread"]

    @pytest.mark.asyncio
    async def test_header_given_twice_is_replaced(self, log: logging.Logger) -> None:
        """Two id headers are ambiguous: the request gets a fresh UUID4."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            _, header, _ = await get(session, f"{url}/fanout", [(HEADER, "a"), (HEADER, "b")])
        assert header is not None
        assert is_uuid4(header)

    @pytest.mark.asyncio
    async def test_longest_valid_id_is_kept(self, log: logging.Logger) -> None:
        """A valid id of the maximum length (128) is used as it is."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        value = "a" + "0123456789abcdef._:+=/-"[::-1] * 5 + "x" * 12
        assert 128 == len(value)
        async with aiohttp_serving(service.app) as url, client() as session:
            _, header, seen = await get(session, f"{url}/fanout", {HEADER: value})
        assert (value, value) == (header, seen["handler"])

    @pytest.mark.asyncio
    async def test_keep_alive_requests_never_see_each_others_data(
        self, log: logging.Logger
    ) -> None:
        """Sequential requests on one keep-alive connection each start from clean data: no
        id, and nothing another request wrote, leaks into the next."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        headers = [{HEADER: "first"}, {HEADER: "second"}, None, {HEADER: "bad id"}, {HEADER: "x"}]
        async with aiohttp_serving(service.app) as url, client(limit=1) as session:
            results = [await get(session, f"{url}/data", header) for header in headers]
        ports = {body["client_port"] for _, _, body in results}
        assert 1 == len(ports)  # one connection
        ids = [header for _, header, _ in results]
        assert ["first", "second"] == ids[:2]
        assert "x" == ids[4]
        assert len(set(ids)) == len(ids)
        assert [{"request_id": header} for header in ids] == [
            body["data"] for _, _, body in results
        ]

    @pytest.mark.asyncio
    async def test_http_exception_carries_the_header(self, log: logging.Logger) -> None:
        """An HTTPException raised by the handler is answered with the id header, and the
        handler saw the same id."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            not_found = await get(session, f"{url}/not-found", {HEADER: "lost"})
            redirect = await get(session, f"{url}/redirect", {HEADER: "moved"})
        assert (404, "lost", "lost") == not_found
        assert (302, "moved") == redirect[:2]

    @pytest.mark.asyncio
    async def test_unhandled_exception_response_carries_the_header(
        self, log: logging.Logger
    ) -> None:
        """aiohttp's 500 page for a handler's bug carries the id header."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            status, header, _ = await get(session, f"{url}/boom", {HEADER: "bug-1"})
        assert (500, "bug-1") == (status, header)

    @pytest.mark.asyncio
    async def test_streamed_response_carries_the_header(self, log: logging.Logger) -> None:
        """A response the handler prepares itself carries the id header."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx)
        async with aiohttp_serving(service.app) as url, client() as session:
            status, header, body = await get(session, f"{url}/stream", {HEADER: "s-1"})
        assert (200, "s-1", "s-1") == (status, header, body)

    @pytest.mark.asyncio
    async def test_response_header_false(self, log: logging.Logger) -> None:
        """With ``response_header=False`` no response carries the header; the handler still
        has the id."""
        ctx = new_context()
        service = Service(ctx, log)
        setup(service.app, ctx, response_header=False)
        async with aiohttp_serving(service.app) as url, client() as session:
            ok = await get(session, f"{url}/fanout", {HEADER: "quiet"})
            not_found = await get(session, f"{url}/not-found", {HEADER: "quiet"})
            boom = await get(session, f"{url}/boom", {HEADER: "quiet"})
        assert (None, "quiet") == (ok[1], ok[2]["handler"])
        assert (404, None, "quiet") == not_found
        assert (500, None) == boom[:2]

    @pytest.mark.asyncio
    async def test_custom_header_and_key(self) -> None:
        """``header`` and ``key`` choose the header and the context key (a ``Key``)."""
        ctx = new_context()
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=f"{ctx[TRACE_ID]} {'request_id' in ctx}")

        app.router.add_get("/", handler)
        setup(app, ctx, header="X-Trace-ID", key=TRACE_ID)
        async with aiohttp_serving(app) as url, client() as session:
            async with session.get(url, headers={"X-Trace-ID": "t-1", HEADER: "r-1"}) as resp:
                assert ("t-1", None, "t-1 False") == (
                    resp.headers.get("X-Trace-ID"),
                    resp.headers.get(HEADER),
                    await resp.text(),
                )

    @pytest.mark.asyncio
    async def test_requests_inherit_the_serving_tasks_data(self) -> None:
        """Data the serving task set before the server started is in every request's data
        (under Copy(), as it was when the server's tasks were made: later writes are not);
        what a request writes never reaches it."""
        ctx = new_context()
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            ctx["written"] = True
            return web.json_response(dict(ctx))

        app.router.add_get("/", handler)
        setup(app, ctx)
        ctx.attach()
        ctx["service"] = "svc"
        async with aiohttp_serving(app) as url, client() as session:
            ctx["late"] = "after start"
            status, _, data = await get(session, url, {HEADER: "r-1"})
        assert 200 == status
        assert {"service": "svc", "request_id": "r-1", "written": True} == data
        assert {"service": "svc", "late": "after start"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_attaches_before_other_startup_handlers(self) -> None:
        """The context is attached before startup handlers and cleanup contexts run, even
        ones registered before ``setup``, so background tasks they start inherit data."""
        ctx = new_context()
        app = web.Application()
        seen: list[object] = []

        async def on_startup(app: web.Application) -> None:
            seen.append(ctx.is_attached())

        async def background(app: web.Application) -> AsyncIterator[None]:
            ctx["app"] = "worker"
            seen.append(await asyncio.create_task(asyncio.sleep(0, ctx["app"])))
            yield

        app.on_startup.append(on_startup)
        app.cleanup_ctx.append(background)
        setup(app, ctx)
        async with aiohttp_serving(app):
            pass
        assert [True, "worker"] == sorted(seen, key=str)

    @pytest.mark.asyncio
    async def test_setup_puts_the_middleware_first(self) -> None:
        """Middlewares already there run inside the request-id middleware: they see the id
        and their responses carry the header."""
        ctx = new_context()

        @web.middleware
        async def inner(request: web.Request, handler: Handler) -> web.StreamResponse:
            return web.Response(text=f"inner saw {ctx['request_id']}")

        app = web.Application(middlewares=[inner])
        setup(app, ctx)
        async with aiohttp_serving(app) as url, client() as session:
            status, header, body = await get(session, f"{url}/anything", {HEADER: "m-1"})
        assert (200, "m-1", "inner saw m-1") == (status, header, body)

    @pytest.mark.asyncio
    async def test_response_to_a_request_never_seen_has_no_header(self) -> None:
        """A middleware put before the request-id middleware after ``setup`` can answer
        without it: that response has no id header (there is no id to give)."""
        ctx = new_context()

        @web.middleware
        async def short_circuit(request: web.Request, handler: Handler) -> web.StreamResponse:
            return web.Response(text="short")

        app = web.Application()
        setup(app, ctx)
        app.middlewares.insert(0, short_circuit)
        async with aiohttp_serving(app) as url, client() as session:
            assert (200, None, "short") == await get(session, url, {HEADER: "r-1"})

    def test_setup_after_start_raises(self) -> None:
        """A frozen app cannot be set up (aiohttp refuses to change it)."""
        app = web.Application()
        app.freeze()
        with pytest.raises(RuntimeError):
            setup(app, new_context())

    @pytest.mark.parametrize(
        ("args", "options", "match"),
        [
            (({"not": "a context"},), {}, "context must be an aiocontext.Context"),
            ((None,), {}, "context must be an aiocontext.Context"),
            ((new_context(),), {"header": ""}, "header must be a non-empty str"),
            ((new_context(),), {"header": b"X-Request-ID"}, "header must be a non-empty str"),
            ((new_context(),), {"key": 1}, "key must be a str or an aiocontext.Key"),
        ],
        ids=["dict", "None", "empty-header", "bytes-header", "int-key"],
    )
    def test_bad_arguments_raise_type_error(
        self, args: tuple[Any, ...], options: dict[str, Any], match: str
    ) -> None:
        """Wrong argument types are refused when the middleware is made."""
        with pytest.raises(TypeError, match=match):
            setup(web.Application(), *args, **options)
        with pytest.raises(TypeError, match=match):
            request_id_middleware(*args, **options)


class TestRequestIdMiddleware:
    @pytest.mark.asyncio
    async def test_alone_with_the_context_attached(self, log: logging.Logger) -> None:
        """The middleware alone works on a loop the context is attached to: the handler,
        sub-tasks and response header see the id."""
        ctx = new_context().attach()
        service = Service(ctx, log)
        service.app.middlewares.append(request_id_middleware(ctx))
        async with aiohttp_serving(service.app) as url, client() as session:
            status, header, seen = await get(session, f"{url}/fanout", {HEADER: "alone"})
            not_found = await get(session, f"{url}/not-found", {HEADER: "alone-404"})
        assert (200, "alone") == (status, header)
        assert {"alone"} == set(seen.values())
        assert (404, "alone-404", "alone-404") == not_found

    @pytest.mark.asyncio
    async def test_alone_leaves_prepared_responses_alone(self, log: logging.Logger) -> None:
        """Used alone, the middleware cannot add the header to a response the handler
        already sent (``setup`` can); the handler still has the id."""
        ctx = new_context().attach()
        service = Service(ctx, log)
        service.app.middlewares.append(request_id_middleware(ctx))
        async with aiohttp_serving(service.app) as url, client() as session:
            status, header, body = await get(session, f"{url}/stream", {HEADER: "s-2"})
        assert (200, None, "s-2") == (status, header, body)

    @pytest.mark.asyncio
    async def test_context_not_attached_fails_loudly(self, log: logging.Logger) -> None:
        """Without the context attached, requests fail (500) instead of running without
        their id: the misconfiguration is never silent."""
        ctx = new_context()
        service = Service(ctx, log)
        service.app.middlewares.append(request_id_middleware(ctx))
        server_log = logging.getLogger("aiohttp.server")
        errors = Records()
        server_log.addHandler(errors)
        try:
            async with aiohttp_serving(service.app) as url, client() as session:
                status, header, _ = await get(session, f"{url}/fanout", {HEADER: "lost"})
        finally:
            server_log.removeHandler(errors)
        assert (500, None) == (status, header)
        exc_info = errors.records[0].exc_info
        assert exc_info is not None
        assert "is not attached" in str(exc_info[1])

    def test_is_a_new_style_middleware(self) -> None:
        """It is marked with ``@web.middleware`` (aiohttp would warn otherwise)."""
        middleware = request_id_middleware(new_context())
        assert 1 == getattr(middleware, "__middleware_version__", None)

    def test_defaults(self) -> None:
        """The default header and key."""
        assert ("X-Request-ID", "request_id") == (HEADER, KEY)


class TestGetRequestId:
    @pytest.mark.asyncio
    async def test_without_the_middleware_raises_lookup_error(self) -> None:
        """On a request the middleware did not see, ``get_request_id`` says how to fix it."""
        app = web.Application()

        async def handler(request: web.Request) -> web.Response:
            with pytest.raises(LookupError, match=r"setup\(app, context\)"):
                get_request_id(request)
            return web.Response(text="checked")

        app.router.add_get("/", handler)
        async with aiohttp_serving(app) as url, client() as session:
            assert (200, None, "checked") == await get(session, url, {HEADER: "r-1"})
