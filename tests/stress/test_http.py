"""Isolation under load over real HTTP: the request-id middleware of ``aiocontext.aiohttp``.

A real ``aiohttp.web`` server listens on 127.0.0.1 (a port the OS picks) with
``aiocontext.aiohttp.setup(app, ctx)``; a real ``aiohttp.ClientSession``, on the same loop,
sends REQUESTS requests at a concurrency of CONCURRENCY (that many workers, and a connector
limited to that many connections), each with an id of its own in ``X-Request-ID``
(``req-<n>``). The ids are explicit on one side only: the handler reads the header to know
which id it *expects*, and passes that along as an argument; everything it checks is read
from the context.

Each handler fans out through the ways asyncio makes work: ``asyncio.gather``, a
``TaskGroup``, ``asyncio.to_thread`` and a nested ``create_task`` two levels deep. Every piece
reads the id from the context (tasks before and after an ``await``, so other requests run in
between) and logs one line through a logger whose handler has ``ContextFilter(ctx)``; the
line's message names the id the piece expected. The response reports every id read, and the
data the request started with (it must hold its own id and nothing another request wrote:
each handler writes a key of its own as soon as it has looked).

The test checks that every response header, every id read and every log line carries
exactly its own request's id (zero cross-talk), that no request and no line is lost or
duplicated (N responses, N x LOGGED lines, no id nobody sent), and that the load really was
concurrent: the first CONCURRENCY handlers meet at a barrier, so that many requests are in
the server at once (never more: the client's limit). It runs on the stdlib loop and uvloop
(``tests/conftest.py``), once with keep-alive connections reused across requests (the
connector's default) and once with ``force_close=True`` (a new connection per request); the
client's connection counts prove which happened.

Sizes: CI by default; ``AIOCONTEXT_STRESS=full`` runs 10,000 requests at a concurrency of
200 (see ``stress._support``). Requests per second are recorded as a figure, never asserted.
Everything is bounded: one timeout over the whole run, per-request client timeouts, loopback
only, and the client session and the server are closed before the test ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import platform
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Final

import aiohttp
import attrs
import pytest
from aiohttp import web
from servers import aiohttp_serving

from aiocontext import Context, ContextRegistry
from aiocontext.aiohttp import HEADER, KEY, get_request_id, setup
from aiocontext.logging import ContextFilter
from stress._support import size
from stress.conftest import Figures

#: Requests per test, and how many are in flight at once.
REQUESTS: Final = size(ci=500, full=10_000)
CONCURRENCY: Final = size(ci=50, full=200)
#: Seconds the whole run (server start, all requests, shutdown) may take.
RUN_TIMEOUT: Final = size(ci=60, full=600)

#: Where the handler's work reads the id, and how many times it reads it there: leaf tasks
#: read it before and after an ``await``.
READS: Final = {
    "handler": 1,
    "get_request_id": 1,
    "gather-0": 2,
    "gather-1": 2,
    "task-group-0": 2,
    "task-group-1": 2,
    "to-thread": 1,
    "nested-1": 2,
    "nested-2": 2,
    "handler-end": 1,
}
#: The pieces that log one line each (``get_request_id`` reads the request, not the context).
LOGGED: Final = frozenset(READS) - {"get_request_id"}

#: What a piece reports when the context has no id for it.
ABSENT: Final = "<absent>"

assert REQUESTS >= CONCURRENCY, "the first CONCURRENCY requests meet at a barrier"


class Lines(logging.Handler):
    """A handler keeping, for each record, the id the filter put on it and the message."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[object, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.__dict__.get(KEY), record.getMessage()))


@pytest.fixture
def log(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of the test's own, not propagating, with its handlers removed afterwards."""
    logger = logging.getLogger(f"stress.aiocontext.http.{request.node.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)


class Service:
    """The app under load: one route whose handler fans out and reports every id it saw."""

    def __init__(self, ctx: Context[str, str], log: logging.Logger) -> None:
        self.ctx = ctx
        self.log = log
        self.arrived = 0
        self.in_flight = 0
        self.peak = 0
        self.first_wave = asyncio.Barrier(CONCURRENCY)
        self.app = web.Application()
        self.app.router.add_get("/fanout", self.fanout)
        setup(self.app, ctx)

    # -- the pieces ------------------------------------------------------------------------

    def seen(self, where: str, expected: str) -> str:
        """Log one line from ``where`` and return the id the context holds there."""
        self.log.info("%s expects %s", where, expected)
        return self.ctx.get(KEY, ABSENT)

    async def leaf(self, where: str, expected: str) -> list[str]:
        """A sub-task: the id before its first ``await`` and after it."""
        first = self.ctx.get(KEY, ABSENT)
        await asyncio.sleep(0)
        return [first, self.seen(where, expected)]

    async def nested(self, expected: str) -> dict[str, list[str]]:
        """A sub-task that creates a sub-task of its own."""
        first = self.ctx.get(KEY, ABSENT)
        await asyncio.sleep(0)
        deep = await asyncio.create_task(self.leaf("nested-2", expected))
        return {"nested-1": [first, self.seen("nested-1", expected)], "nested-2": deep}

    # -- the handler -----------------------------------------------------------------------

    async def fanout(self, request: web.Request) -> web.Response:
        """Fan out; answer with the data the request started with and every id seen."""
        expected = request.headers[HEADER]  # explicit: what the client sent
        data = dict(self.ctx)
        self.ctx["written-by"] = expected  # must never reach another request
        seen = {
            "handler": [self.seen("handler", expected)],
            "get_request_id": [get_request_id(request)],
        }
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.arrived < CONCURRENCY:  # the first wave: all of it in the server at once
                self.arrived += 1
                await self.first_wave.wait()
            seen["gather-0"], seen["gather-1"] = await asyncio.gather(
                self.leaf("gather-0", expected), self.leaf("gather-1", expected)
            )
            async with asyncio.TaskGroup() as group:
                grouped = [
                    group.create_task(self.leaf(f"task-group-{n}", expected)) for n in range(2)
                ]
            for n, task in enumerate(grouped):
                seen[f"task-group-{n}"] = task.result()
            seen["to-thread"] = [await asyncio.to_thread(self.seen, "to-thread", expected)]
            seen.update(await asyncio.create_task(self.nested(expected)))
            seen["handler-end"] = [self.seen("handler-end", expected)]
        finally:
            self.in_flight -= 1
        return web.json_response({"data": data, "seen": seen})


def serving(app: web.Application) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with aiohttp, a backlog for the whole first wave (connections arrive
    all at once); yield its base URL."""
    return aiohttp_serving(app, backlog=max(128, 2 * CONCURRENCY), shutdown_timeout=5)


@attrs.frozen
class Reply:
    """What the client got for the request it sent with id ``sent``."""

    sent: str
    status: int
    header: str | None
    body: object


def expected_reply(sent: str) -> Reply:
    """The reply a request with id ``sent`` must get: its own id everywhere, nothing else."""
    seen = {where: [sent] * reads for where, reads in READS.items()}
    return Reply(sent, 200, sent, {"data": {KEY: sent}, "seen": seen})


@attrs.define
class Load:
    """What the client sent and got, and how many connections it made and reused."""

    replies: list[Reply] = attrs.Factory(list)
    connections: collections.Counter[str] = attrs.Factory(collections.Counter)


async def load(url: str, *, force_close: bool) -> Load:
    """Send REQUESTS requests from CONCURRENCY workers, each with an id of its own."""
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
    numbers = iter(range(REQUESTS))  # shared: each worker takes the next number

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            sent = f"req-{n}"
            async with session.get(url, headers={HEADER: sent}) as response:
                if response.content_type == "application/json":
                    body: object = await response.json()
                else:
                    body = await response.text()
                header = response.headers.get(HEADER)
            result.replies.append(Reply(sent, response.status, header, body))

    connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=force_close)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=RUN_TIMEOUT),
        trace_configs=[tracing],
    ) as session:
        async with asyncio.TaskGroup() as group:
            for _ in range(CONCURRENCY):
                group.create_task(worker(session))
    return result


def reply_problems(replies: list[Reply]) -> list[str]:
    """What is wrong with the replies: anything but each request's own id, exactly once."""
    problems = [describe(reply) for reply in replies if expected_reply(reply.sent) != reply]
    counts = collections.Counter(reply.sent for reply in replies)
    problems += [f"{sent}: answered {count} times" for sent, count in counts.items() if count > 1]
    return problems


def describe(reply: Reply) -> str:
    """What differs between ``reply`` and the reply its request must get."""
    own, body = reply.sent, reply.body
    if (200, own) != (reply.status, reply.header) or not isinstance(body, dict):
        return f"{own}: status {reply.status}, header {reply.header!r}, body {body!r:.300}"
    seen = body.get("seen")
    if not isinstance(seen, dict):
        return f"{own}: body {body!r:.300}"
    data = body.get("data")
    wrong = [] if {KEY: own} == data else [f"started with data {data!r}"]
    wrong += [
        f"{where} saw {seen.get(where)!r}"
        for where, reads in READS.items()
        if [own] * reads != seen.get(where)
    ]
    wrong += [f"unexpected piece {where!r}" for where in seen.keys() - READS.keys()]
    return f"{own}: " + "; ".join(wrong)


def line_problems(lines: list[tuple[object, str]], sent: set[str]) -> list[str]:
    """What is wrong with the log lines: a line whose record carries another id than the
    one its code expected, an id nobody sent, a request missing a line or logging one twice."""
    problems: list[str] = []
    by_request: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for logged_id, message in lines:
        where, _, expected = message.partition(" expects ")
        if expected != logged_id:
            problems.append(f"line {message!r} was logged with request id {logged_id!r}")
        by_request[expected][where] += 1
    problems += [
        f"lines for {unknown!r}, which was never sent" for unknown in by_request.keys() - sent
    ]
    every_line_once = collections.Counter(LOGGED)
    for request_id in sorted(sent):
        logged = by_request.get(request_id, collections.Counter())
        if every_line_once != logged:
            missing = sorted(every_line_once - logged)
            extra = sorted((logged - every_line_once).elements())
            problems.append(f"{request_id}: lines missing {missing}, extra {extra}")
    return problems


def loop_kind() -> str:
    """``asyncio`` or ``uvloop``: which implementation the running loop is."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


class TestRequestIdsUnderLoad:
    """Concurrent HTTP requests each see exactly their own id, everywhere, none lost."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("force_close", [False, True], ids=["keep-alive", "force-close"])
    async def test_every_request_sees_only_its_own_id(
        self, force_close: bool, log: logging.Logger, figures: Figures
    ) -> None:
        """REQUESTS requests at CONCURRENCY: every response header, every id read by the
        handler, gather, TaskGroup, to_thread and nested create_task pieces, and every log
        line is the request's own id (zero cross-talk); every request is answered once and
        logs each line once (zero lost); each request starts with only its id in its data;
        CONCURRENCY requests were in the server at once; and connections were reused
        (keep-alive) or made one per request (``force_close``)."""
        ctx: Context[str, str] = Context(name="stress-http", registry=ContextRegistry())
        lines = Lines()
        lines.addFilter(ContextFilter(ctx))
        log.addHandler(lines)
        service = Service(ctx, log)

        async with asyncio.timeout(RUN_TIMEOUT):
            async with serving(service.app) as url:
                began = time.perf_counter()
                result = await load(f"{url}/fanout", force_close=force_close)
                elapsed = time.perf_counter() - began

        sent = {f"req-{n}" for n in range(REQUESTS)}
        problems = reply_problems(result.replies) + line_problems(lines.lines, sent)
        assert [] == problems[:20], "\n".join([f"{len(problems)} problems:", *problems[:20]])
        assert sent == {reply.sent for reply in result.replies}
        assert REQUESTS == len(result.replies)
        assert REQUESTS * len(LOGGED) == len(lines.lines)
        assert CONCURRENCY == service.peak
        made, reused = result.connections["created"], result.connections["reused"]
        if force_close:
            assert (REQUESTS, 0) == (made, reused)
        else:
            assert made <= CONCURRENCY
            assert REQUESTS - made == reused
        ids_checked = REQUESTS * (1 + sum(READS.values()) + len(LOGGED))
        figures.add(
            f"{loop_kind()} on Python {platform.python_version()}: {REQUESTS:,} requests at "
            f"concurrency {CONCURRENCY} over {made:,} connections ({reused:,} reuses) in "
            f"{elapsed:.2f} s, {REQUESTS / elapsed:,.0f} requests/s; {len(lines.lines):,} log "
            f"lines and {ids_checked:,} ids checked (headers, reads, lines): 0 cross-talk, "
            f"0 lost"
        )
