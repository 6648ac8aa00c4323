"""Isolation by construction, proven through real servers with no aiocontext middleware.

Real frameworks make their tasks without the loop's task factory: aiohttp 3.10+ creates
each request's task with ``asyncio.Task(coro, loop=loop, eager_start=True)`` on Python
3.12+, and every handler task of a keep-alive connection is a child of that connection's
task. Before the data model was rebuilt (issue 9), a default ``Context()`` on such an app
leaked: 400 of 500 requests read a previous request's value.

Here a real ``aiohttp.web`` app (``AppRunner``/``TCPSite``) and a real uvicorn serving a
Starlette app listen on 127.0.0.1 (a port the OS picks), with no aiocontext middleware at
all, in the test's own loop. A real ``aiohttp.ClientSession`` on that loop sends REQUESTS
requests from CONCURRENCY workers over as many keep-alive connections, each with an id of
its own (``?id=req-<n>``). The handler reads ``ctx.get("user")`` (``None`` unless another
request's write reached it), writes its own id, meets the first wave of requests at a
barrier (so CONCURRENCY requests are in the server at once, each after its write), yields
to the loop, then spawns one child with ``asyncio.create_task`` (through the factory) and
one with ``asyncio.Task(...)`` (never through it). Each child reads the id before and after
an ``await`` and then writes a value of its own, which must reach neither its parent nor any
other request. The response is everything the handler and its children saw.

The data set before the server started (``ctx["service"] = "svc"``) must be seen by every
request and child, and nothing a request wrote may reach it. Under ``Copy()``,
``ChainMap()`` and ``DeepCopy()`` zero requests may see another's data; ``Share()``, whose
contract is one mapping for the whole tree, is the control: there each request sees the
previous one's write.

Each case runs on the stdlib loop and uvloop, with the context attached two ways: by
``aiocontext.loop_factory(ctx, base=...)`` (the loop's factory is otherwise the default),
or by ``ctx.attach()`` once the test's loop runs, over a recording task factory that shows
which tasks the factory made (on 3.12+, none of aiohttp's request tasks).

One test marks where this stops: on the stdlib loop uvicorn creates a keep-alive
connection's next request task in a copy of the previous request task's ``contextvars``
once it paused reading for a large body (CPython gh-140947). The data is then the previous
request's under every policy; it is an expected failure there (the ASGI middleware, or
uvicorn's ``reset_contextvars=True``, is the remedy), and passes on uvloop.

Every run is bounded (RUN_TIMEOUT over the whole run, a client timeout) and its server is
stopped before the test ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterator
from types import SimpleNamespace
from typing import Any, Final, Literal, TypeVar, cast

import aiohttp
import attrs
import pytest
from aiohttp import web
from servers import aiohttp_serving, uvicorn_serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from stress._support import size

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    TaskFactoryWrapper,
    loop_factory,
)
from conftest import CoroutineLike, LoopFactory

#: Requests per run (CI size; ``AIOCONTEXT_STRESS=full`` for the full one), and how many
#: are in flight at once (workers, connections).
REQUESTS: Final = size(ci=600, full=2_000)
CONCURRENCY: Final = 100
#: Sequential requests of the ``Share()`` control, on one keep-alive connection.
SHARE_REQUESTS: Final = 50
#: The requests with large bodies (over uvicorn's 64 KiB read limit), and their concurrency.
LARGE_REQUESTS: Final = 200
LARGE_CONCURRENCY: Final = 10
LARGE_BODY: Final = b"x" * 100_000
#: Seconds one run (server start, every request, shutdown) may take; never reached.
RUN_TIMEOUT: Final = 60

#: What the serving task writes before the server starts: every request must see it.
SERVICE: Final = "svc"

#: The policies that isolate requests from each other, by name.
ISOLATING: Final[dict[str, PropagationPolicy]] = {
    "Copy": Copy(),
    "ChainMap": ChainMap(),
    "DeepCopy": DeepCopy(),
}

Server = Literal["aiohttp", "uvicorn"]
SERVERS: Final[tuple[Server, ...]] = ("aiohttp", "uvicorn")

_T = TypeVar("_T")

#: The tasks a request runs: its handler's, and the children it spawns each way.
TASK_KINDS: Final = ("handler", "create_task", "Task")
#: Whether aiohttp creates its tasks with ``asyncio.Task(...)``, bypassing the factory.
AIOHTTP_BYPASSES_FACTORY: Final = sys.version_info >= (3, 12)


def new_context(policy: PropagationPolicy) -> Context[str, str]:
    """A context of its own for one test, outside the default registry."""
    return Context(policy, name="bypass-servers", registry=ContextRegistry())


class Recorder:
    """A task factory (the one aiocontext's wrapper wraps) that remembers what it made."""

    def __init__(self) -> None:
        self.made: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: CoroutineLike, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        self.made.add(task)
        return task


# -- the application ---------------------------------------------------------------------


class Service:
    """The app: one route whose handler reads, writes, spawns and reports what it saw."""

    def __init__(
        self, ctx: Context[str, str], *, first_wave: int, recorder: Recorder | None = None
    ) -> None:
        self.ctx = ctx
        self.recorder = recorder
        self.arrived = 0
        self.in_flight = 0
        self.peak = 0
        self.first_wave = first_wave
        self.barrier = asyncio.Barrier(first_wave) if first_wave > 1 else None
        #: How many tasks of each kind the loop's task factory made (with a recorder).
        self.by_factory: collections.Counter[str] = collections.Counter()

    def made_by_factory(self, kind: str) -> None:
        """Count the running task under ``kind`` if the recording factory made it."""
        task = asyncio.current_task()
        if self.recorder is not None and task in self.recorder.made:
            self.by_factory[kind] += 1

    async def child(self, kind: str, own: str) -> list[str | None]:
        """A sub-task: the id and the service data before and after an ``await``; then a
        write of its own, which its parent and other requests must never see."""
        self.made_by_factory(kind)
        first = self.ctx.get("user")
        await asyncio.sleep(0)
        seen = [first, self.ctx.get("user"), self.ctx.get("service")]
        self.ctx["user"] = f"{own}/{kind}"
        return seen

    async def visit(self, own: str) -> dict[str, object]:
        """The handler's work for the request with id ``own``; returns what it saw."""
        self.made_by_factory("handler")
        before = self.ctx.get("user")
        service = self.ctx.get("service")
        self.ctx["user"] = own
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.barrier is not None and self.arrived < self.first_wave:
                self.arrived += 1
                await self.barrier.wait()  # the first wave: all in the server, all written
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            mine = self.ctx.get("user")
            loop = asyncio.get_running_loop()
            spawned = asyncio.create_task(self.child("create_task", own))
            direct = asyncio.Task(self.child("Task", own), loop=loop)
            children = {"create_task": await spawned, "Task": await direct}
            return {
                "before": before,
                "service": service,
                "after_awaits": mine,
                "children": children,
                "after_children": self.ctx.get("user"),
            }
        finally:
            self.in_flight -= 1

    def aiohttp_app(self) -> web.Application:
        """The app as an ``aiohttp.web`` application, with no middleware."""

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(await self.visit(request.query["id"]))

        app = web.Application()
        app.router.add_get("/", handler)
        return app

    def starlette_app(self) -> Starlette:
        """The app as a Starlette application, with no middleware."""

        async def endpoint(request: Request) -> JSONResponse:
            return JSONResponse(await self.visit(request.query_params["id"]))

        return Starlette(routes=[Route("/", endpoint)])


def isolated_reply(own: str) -> dict[str, object]:
    """What the request with id ``own`` must see under an isolating policy."""
    child = [own, own, SERVICE]
    return {
        "before": None,
        "service": SERVICE,
        "after_awaits": own,
        "children": {"create_task": child, "Task": child},
        "after_children": own,
    }


# -- the servers ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving_aiohttp(app: web.Application) -> AsyncGenerator[str]:
    """Serve ``app`` with aiohttp, a backlog for the whole load; yield its base URL + "/"."""
    async with aiohttp_serving(app, backlog=2 * CONCURRENCY, shutdown_timeout=5) as base:
        yield base + "/"


@contextlib.asynccontextmanager
async def serving_uvicorn(app: Starlette) -> AsyncGenerator[str]:
    """Serve ``app`` with uvicorn in the test's loop, whatever it is; yield its base URL + "/"."""
    options = {"loop": "none", "backlog": 2 * CONCURRENCY, "timeout_graceful_shutdown": 5}
    async with uvicorn_serving(app, **options) as base:
        yield base + "/"


def serving(server: Server, service: Service) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``service``'s app with ``server``."""
    if server == "aiohttp":
        return serving_aiohttp(service.aiohttp_app())
    return serving_uvicorn(service.starlette_app())


# -- the client ----------------------------------------------------------------------------


@attrs.frozen
class Reply:
    """What the client got for the request it sent with id ``sent``."""

    sent: str
    status: int
    body: object


@attrs.define
class Load:
    """What the client sent and got, over how many connections, in how long."""

    replies: list[Reply] = attrs.Factory(list[Reply])
    connections: collections.Counter[str] = attrs.Factory(collections.Counter[str])
    elapsed: float = 0.0


async def send(url: str, requests: int, concurrency: int) -> Load:
    """Send ``requests`` requests from ``concurrency`` workers over keep-alive connections
    (at most ``concurrency``), each with an id of its own."""
    result = Load()

    async def created(
        session: aiohttp.ClientSession,
        trace: SimpleNamespace,
        params: aiohttp.TraceConnectionCreateEndParams,
    ) -> None:
        result.connections["created"] += 1

    async def reused(
        session: aiohttp.ClientSession,
        trace: SimpleNamespace,
        params: aiohttp.TraceConnectionReuseconnParams,
    ) -> None:
        result.connections["reused"] += 1

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_end.append(created)
    tracing.on_connection_reuseconn.append(reused)
    numbers = iter(range(requests))  # shared: each worker takes the next number

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            sent = f"req-{n}"
            async with session.get(url, params={"id": sent}) as response:
                if response.content_type == "application/json":
                    body: object = await response.json()
                else:
                    body = await response.text()
            result.replies.append(Reply(sent, response.status, body))

    connector = aiohttp.TCPConnector(limit=concurrency)
    began = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=RUN_TIMEOUT),
        trace_configs=[tracing],
    ) as session:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker(session))
    result.elapsed = time.perf_counter() - began
    return result


# -- running and checking a case ------------------------------------------------------------


@attrs.frozen
class Outcome:
    """A run: the service, what the client got, and the serving task's data afterwards."""

    server: Server
    loop: str
    service: Service
    load: Load
    serving_data: dict[str, str]

    def figures(self) -> str:
        """The run's sizes and speed, for assertion messages."""
        load = self.load
        return (
            f"{self.server} on {self.loop}, {self.service.ctx.policy!r}, Python "
            f"{'.'.join(map(str, sys.version_info[:3]))}: "
            f"{len(load.replies):,} requests over {load.connections['created']} connections "
            f"({load.connections['reused']:,} reuses), peak {self.service.peak} in the "
            f"server, {load.elapsed:.2f} s"
        )


async def run(
    server: Server,
    ctx: Context[str, str],
    *,
    requests: int = REQUESTS,
    concurrency: int = CONCURRENCY,
    recorder: Recorder | None = None,
) -> Outcome:
    """Write the serving task's data, serve, send the load, stop; return what happened."""
    ctx["service"] = SERVICE
    service = Service(ctx, first_wave=concurrency, recorder=recorder)
    async with asyncio.timeout(RUN_TIMEOUT):
        async with serving(server, service) as url:
            load = await send(url, requests, concurrency)
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    return Outcome(server, loop, service, load, dict(ctx))


def strings(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in cast("list[object]", value):
            yield from strings(item)
    elif isinstance(value, dict):
        for item in cast("dict[str, object]", value).values():
            yield from strings(item)


def others_data(reply: Reply) -> set[str]:
    """The values in ``reply`` that another request (or its children) wrote."""
    return {
        value
        for value in strings(reply.body)
        if value.startswith("req-") and value.partition("/")[0] != reply.sent
    }


def check_isolated(outcome: Outcome) -> None:
    """Every request succeeded and saw only its own id and the serving task's data; no
    request's write reached the serving task; the load was concurrent over keep-alive."""
    replies, figures = outcome.load.replies, outcome.figures()
    crossed = [reply for reply in replies if others_data(reply)]
    assert 0 == len(crossed), (
        f"{len(crossed)} of {len(replies)} requests saw another request's data ({figures}); "
        + "; ".join(f"{reply.sent} saw {sorted(others_data(reply))}" for reply in crossed[:5])
    )
    wrong = [
        f"{reply.sent}: status {reply.status}, {reply.body!r:.300}"
        for reply in replies
        if (200, isolated_reply(reply.sent)) != (reply.status, reply.body)
    ]
    assert [] == wrong[:10], f"{len(wrong)} requests failed or saw too little ({figures})"
    assert {f"req-{n}" for n in range(REQUESTS)} == {reply.sent for reply in replies}
    assert REQUESTS == len(replies)
    assert {"service": SERVICE} == outcome.serving_data, figures
    assert CONCURRENCY == outcome.service.peak, figures
    made, reused = outcome.load.connections["created"], outcome.load.connections["reused"]
    assert made <= CONCURRENCY, figures
    assert REQUESTS - made == reused, figures


def expected_by_factory(server: Server) -> dict[str, int]:
    """How many tasks of each kind the loop's factory makes in a run of ``server``: the
    ``asyncio.Task(...)`` children never, aiohttp's request tasks not on 3.12+."""
    handlers = 0 if server == "aiohttp" and AIOHTTP_BYPASSES_FACTORY else REQUESTS
    return {"handler": handlers, "create_task": REQUESTS, "Task": 0}


@contextlib.contextmanager
def attached_over_recorder(ctx: Context[str, str]) -> Generator[Recorder]:
    """Attach ``ctx`` to the running loop over a recording factory; undo both afterwards."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    loop.set_task_factory(recorder)
    ctx.attach()
    try:
        yield recorder
    finally:
        ctx.detach()
        TaskFactoryWrapper.uninstall(loop)
        loop.set_task_factory(None)


def run_in_new_loop(
    ctx: Context[str, str], new_loop: LoopFactory, main: Callable[[], Coroutine[Any, Any, _T]]
) -> _T:
    """Run ``main()`` in a loop made by ``loop_factory(ctx, base=new_loop)``."""
    with asyncio.Runner(loop_factory=loop_factory(ctx, base=new_loop)) as runner:
        return runner.run(main())


async def send_large_bodies(ctx: Context[str, str]) -> list[object]:
    """POST LARGE_REQUESTS large bodies to a Starlette app under uvicorn, LARGE_CONCURRENCY
    at a time over keep-alive connections; return the user each handler found."""

    async def endpoint(request: Request) -> JSONResponse:
        before = ctx.get("user")
        ctx["user"] = request.query_params["id"]  # before the body is read, as an
        await request.body()  # authentication middleware would
        return JSONResponse({"before": before})

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
    befores: list[object] = []
    numbers = iter(range(LARGE_REQUESTS))

    async def worker(session: aiohttp.ClientSession, url: str) -> None:
        for n in numbers:
            params = {"id": f"req-{n}"}
            async with session.post(url, params=params, data=LARGE_BODY) as response:
                body: dict[str, object] = await response.json()
            befores.append(body["before"])

    async with asyncio.timeout(RUN_TIMEOUT), serving_uvicorn(app) as url:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=LARGE_CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=RUN_TIMEOUT),
        ) as session:
            async with asyncio.TaskGroup() as group:
                for _ in range(LARGE_CONCURRENCY):
                    group.create_task(worker(session, url))
    return befores


# -- the tests -----------------------------------------------------------------------------


class TestNoCrossTalkWithoutMiddleware:
    """Under an isolating policy, no request of a real server sees another's data."""

    @pytest.mark.parametrize("server", SERVERS)
    @pytest.mark.parametrize("policy", ISOLATING.values(), ids=ISOLATING.keys())
    def test_loop_made_by_loop_factory(
        self, policy: PropagationPolicy, server: Server, new_loop: LoopFactory
    ) -> None:
        """In a loop made by ``loop_factory(ctx, base=...)``, REQUESTS requests at
        CONCURRENCY over keep-alive connections all succeed; each request and both its
        children (``create_task`` and ``asyncio.Task(...)``) see only its own id and the
        serving task's data, never another request's (0 cross-talk), though the first
        CONCURRENCY requests all wrote before any read back; no child's write reaches its
        request, and no request's write reaches the serving task."""
        ctx = new_context(policy)
        outcome = run_in_new_loop(ctx, new_loop, lambda: run(server, ctx))
        check_isolated(outcome)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("policy", "server"),
        [
            *((policy, "aiohttp") for policy in ISOLATING.values()),
            # uvicorn's request tasks go through the factory: Copy() stands for the others.
            (Copy(), "uvicorn"),
        ],
        ids=[*(f"{name}-aiohttp" for name in ISOLATING), "Copy-uvicorn"],
    )
    async def test_attached_once_the_loop_runs(
        self, policy: PropagationPolicy, server: Server
    ) -> None:
        """With ``ctx.attach()`` called from the running test, over a custom task factory
        that records what it makes: the same zero cross-talk, although the factory made
        none of the ``asyncio.Task(...)`` children, and on 3.12+ none of aiohttp's request
        tasks (it made uvicorn's, and every ``create_task`` child)."""
        ctx = new_context(policy)
        with attached_over_recorder(ctx) as recorder:
            outcome = await run(server, ctx, recorder=recorder)
        check_isolated(outcome)
        made = outcome.service.by_factory
        assert expected_by_factory(server) == {kind: made[kind] for kind in TASK_KINDS}, (
            outcome.figures()
        )


@pytest.mark.parametrize("server", SERVERS)
class TestShareControl:
    """Under ``Share()`` the same servers give every request the one mapping of the tree."""

    def test_each_request_sees_the_previous_ones_write(
        self, server: Server, new_loop: LoopFactory
    ) -> None:
        """SHARE_REQUESTS sequential requests on one keep-alive connection: the first sees
        no user, each later one sees what the request before it left (Share's contract,
        not cross-talk), its children see what it wrote, and the serving task ends with the
        last request's write."""
        ctx = new_context(Share())
        outcome = run_in_new_loop(
            ctx, new_loop, lambda: run(server, ctx, requests=SHARE_REQUESTS, concurrency=1)
        )
        replies = outcome.load.replies
        assert [f"req-{n}" for n in range(SHARE_REQUESTS)] == [reply.sent for reply in replies]
        assert [200] * SHARE_REQUESTS == [reply.status for reply in replies]
        bodies = [cast("dict[str, Any]", reply.body) for reply in replies]
        left = [body["after_children"] for body in bodies]
        assert [None, *left[:-1]] == [body["before"] for body in bodies]
        assert all(isinstance(value, str) and value.startswith("req-") for value in left)
        assert [[f"req-{n}", f"req-{n}", SERVICE] for n in range(SHARE_REQUESTS)] == [
            body["children"]["create_task"] for body in bodies
        ]
        assert {"service": SERVICE, "user": left[-1]} == outcome.serving_data
        assert 1 == outcome.load.connections["created"]


class TestUvicornPausedReading:
    """Where isolation by construction stops: contextvars that a server itself leaks."""

    def test_large_bodies_on_keep_alive_connections(
        self, new_loop: LoopFactory, request: pytest.FixtureRequest
    ) -> None:
        """Requests with bodies over uvicorn's read limit, whose handler writes before it
        reads the body, each on a keep-alive connection: no request sees the previous
        one's data. Fails on the stdlib loop (CPython gh-140947): uvicorn pauses reading
        and resumes it from the request's task, so the connection's next request task is
        created in a copy of that task's ``contextvars``, data included, under every
        policy. ``aiocontext.asgi.RequestIdMiddleware`` (or uvicorn's
        ``reset_contextvars=True``) gives each request data of its own; uvloop does not
        leak."""
        if new_loop is asyncio.new_event_loop:
            request.applymarker(
                pytest.mark.xfail(
                    sys.version_info < (3, 15),
                    reason="CPython gh-140947: uvicorn resumes reading from a request task",
                    raises=AssertionError,
                    strict=True,
                )
            )
        ctx = new_context(Copy())
        befores = run_in_new_loop(ctx, new_loop, lambda: send_large_bodies(ctx))
        leaked = [before for before in befores if before is not None]
        assert LARGE_REQUESTS == len(befores)
        assert [] == leaked[:5], (
            f"{len(leaked)} of {LARGE_REQUESTS} requests saw a previous request's user"
        )
