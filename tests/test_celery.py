"""``aiocontext.celery``: context data from the code that enqueues a task to the task itself.

Against a real Redis broker (see ``services.redis_url``) and real workers: one run inside
this process (``celery.contrib.testing.worker``, a real worker consuming from Redis in a
thread, solo pool) and one ``celery worker`` subprocess with a prefork pool, for the load.
The tasks live in ``celery_app.py``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from celery.contrib.testing.worker import start_worker
from servers import echoes_own_ids

import aiocontext.aiohttp
import celery_app
from aiocontext.celery import CeleryPropagation, install
from aiocontext.propagation import Propagator
from services import Process, flush, take_records
from services import redis_url as redis_url

JOBS_PER_REQUEST = 10
REQUESTS = 100


@pytest.fixture(scope="module")
def celery_url(redis_url: str) -> Iterator[str]:
    """The broker of this module's tests: database 1, emptied before and after."""
    url = f"{redis_url}/1"
    flush(url)
    celery_app.app.conf.update(broker_url=url)
    yield url
    flush(url)


class TestInProcessWorker:
    def test_tasks_see_exactly_their_messages_data(self, celery_url: str) -> None:
        """A task sees the data of the code that published it, as restored from the message
        headers (baggage), and nothing another task wrote; a message without the header, or
        with a malformed one, runs with empty data; async code run from a task (and its child
        tasks) sees the task's data."""
        request = celery_app.request
        with start_worker(
            celery_app.app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=20,
        ):
            with request.restore({"request_id": "r-1", "tenant": "Zoë", "private": "stays"}):
                celery_app.seen.delay(1)
                celery_app.seen_async.delay(2)
            with request.restore({"request_id": "r-3"}):
                celery_app.seen.delay(3)
            celery_app.seen.delay(4)  # no data here: no header
            with request.restore({"request_id": "r-5"}):
                celery_app.seen.apply_async((5,), headers={"aiocontext": "not a mapping"})
            malformed: Any = {"aiocontext": {"baggage": "request_id=%0Aevil", "x": 1}}
            celery_app.seen.apply_async((6,), headers=malformed)
            records = {record["number"]: record for record in take_records(celery_url, 6)}
        assert {"request_id": "r-1", "tenant": "Zoë"} == records[1]["data"]
        assert {"request_id": "r-1", "tenant": "Zoë"} == records[2]["main"] == records[2]["child"]
        assert {"request_id": "r-1", "tenant": "Zoë"} == records[2][
            "data"
        ]  # child wrote to its own
        assert {"request_id": "r-3"} == records[3]["data"]
        assert {} == records[4]["data"] == records[5]["data"] == records[6]["data"]

    def test_eager_tasks_run_with_the_callers_data(self, celery_url: str) -> None:
        """``task.apply()`` is no message: the task runs with the caller's own data."""
        with celery_app.request.restore({"request_id": "eager"}):
            celery_app.seen.apply((7,))
            assert 7 == celery_app.request["leaked_from"]  # its write is the caller's
        assert {"request_id": "eager"} == take_records(celery_url, 1)[0]["data"]

    def test_install_and_uninstall(self) -> None:
        """``install`` connects the handlers, ``uninstall`` disconnects them; both idempotent,
        and the handlers are independent of the app's own."""
        handlers = install(Propagator({celery_app.request: ["request_id"]}), header="other")
        handlers.connect()
        headers: dict[str, Any] = {}
        with celery_app.request.restore({"request_id": "r"}):
            handlers.before_task_publish(headers=headers)
            handlers.uninstall()
            handlers.uninstall()
            handlers.before_task_publish(headers=None)
        assert {"other": {"X-Request-ID": "r"}} == headers
        assert ("X-Request-ID",) == handlers.propagator.headers
        assert repr(handlers).startswith("CeleryPropagation(Propagator(")

    def test_postrun_without_prerun_is_harmless(self) -> None:
        """A postrun with nothing to end does nothing."""
        task = celery_app.seen
        task.push_request(is_eager=False)
        try:
            celery_app.propagation.task_postrun(task)
        finally:
            task.pop_request()
        assert isinstance(celery_app.propagation, CeleryPropagation)

    def test_bad_arguments(self) -> None:
        """A bad propagator or header is refused, saying what to pass."""
        with pytest.raises(TypeError, match="propagator must be"):
            install("request_id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="header must be a non-empty str"):
            install(celery_app.propagator, header="")


def test_1000_jobs_from_100_concurrent_requests(celery_url: str) -> None:
    """100 concurrent HTTP requests (aiohttp, each with its own id) each enqueue 10 jobs; a
    ``celery worker`` with 2 reused prefork processes runs the 1,000: every job sees
    exactly its request's id, and none sees what an earlier job on its process wrote."""
    worker = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        {"AIOCONTEXT_CELERY_URL": celery_url},
    )
    try:
        elapsed = asyncio.run(enqueue_from_requests())
        started = time.perf_counter()
        records = take_records(celery_url, REQUESTS * JOBS_PER_REQUEST, timeout=120)
        drained = time.perf_counter() - started
    finally:
        output = worker.stop()
    wrong = [
        record
        for record in records
        if record["data"] != {"request_id": f"req-{record['number'] // JOBS_PER_REQUEST}"}
    ]
    assert [] == wrong, output
    assert set(range(REQUESTS * JOBS_PER_REQUEST)) == {record["number"] for record in records}
    pids = {record["pid"] for record in records}
    assert 1 <= len(pids) <= 2  # the two pool processes, each reused for hundreds of jobs
    print(
        f"\ncelery: {len(records)} jobs from {REQUESTS} concurrent requests, enqueued in "
        f"{elapsed:.1f} s, all run {drained:.1f} s later, by {len(pids)} processes"
    )


async def enqueue_from_requests() -> float:
    """Serve an aiohttp app whose handler enqueues 10 jobs; send it 100 requests at once."""

    async def handler(web_request: web.Request) -> web.Response:
        number = int(web_request.match_info["number"])

        def enqueue() -> None:
            for job in range(JOBS_PER_REQUEST):
                celery_app.seen.delay(number * JOBS_PER_REQUEST + job)

        await asyncio.to_thread(enqueue)  # the thread sees the request's data
        return web.Response(text=celery_app.request["request_id"])

    app = web.Application()
    app.router.add_get("/enqueue/{number}", handler)
    aiocontext.aiohttp.setup(app, celery_app.request)
    return await echoes_own_ids(app, REQUESTS)
