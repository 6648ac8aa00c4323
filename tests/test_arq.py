"""``aiocontext.arq``: context data from the code that enqueues a job to the job itself.

Against a real Redis (see ``services.redis_url``) and real arq workers: one running in the
test's own loop (burst mode) and an ``arq`` worker subprocess running 100 jobs at once, for
the load. The jobs live in ``arq_app.py``.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from servers import echoes_own_ids

import aiocontext.aiohttp
import arq_app
from aiocontext.arq import PAYLOAD_KEY, ArqPropagation
from aiocontext.propagation import Propagator
from services import Process, flush, take_records
from services import redis_url as redis_url

JOBS_PER_REQUEST = 10
REQUESTS = 100


@pytest.fixture(scope="module")
def arq_url(redis_url: str) -> Iterator[str]:
    """This module's Redis database (2), emptied before and after."""
    url = f"{redis_url}/2"
    flush(url)
    yield url
    flush(url)


@pytest_asyncio.fixture
async def pool(arq_url: str) -> AsyncIterator[ArqRedis]:
    """A pool enqueueing with the propagation's serializer."""
    redis_pool = await create_pool(
        RedisSettings.from_dsn(arq_url),
        job_serializer=arq_app.propagation.serialize,
        job_deserializer=arq_app.propagation.deserialize,
    )
    yield redis_pool
    await redis_pool.aclose()


class TestArqPropagation:
    @pytest.mark.asyncio
    # arq's Worker.close() calls redis-py's deprecated close(): not ours to fix.
    @pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
    async def test_jobs_see_exactly_their_enqueuers_data(
        self, arq_url: str, pool: ArqRedis
    ) -> None:
        """Jobs enqueued from code with different data each see exactly that data (their
        sub-tasks too), however they interleave; a job enqueued with no data, or with a
        malformed payload entry, runs with empty data; a job enqueued by a job carries its
        data on; your own hooks run inside the job's data."""
        hooks: list[tuple[str, Any]] = []

        async def on_start(ctx: dict[Any, Any]) -> None:
            hooks.append(("start", arq_app.request.get("request_id")))

        async def on_end(ctx: dict[Any, Any]) -> None:
            hooks.append(("end", arq_app.request.get("request_id")))

        propagation = ArqPropagation(
            arq_app.propagation.propagator, on_job_start=on_start, on_job_end=on_end
        )
        for number in range(20):
            with arq_app.request.restore({"request_id": f"r-{number}", "tenant": "Zoë"}):
                await pool.enqueue_job("seen", number)
        await pool.enqueue_job("seen", 20)  # no data here
        with arq_app.request.restore({"request_id": "parent"}):
            await pool.enqueue_job("enqueue_child", 21)
        garbage = await create_pool(
            RedisSettings.from_dsn(arq_url),
            job_serializer=lambda data: pickle.dumps({**data, PAYLOAD_KEY: "not a mapping"}),
        )
        await garbage.enqueue_job("seen", 22)
        await garbage.aclose()
        worker = Worker(
            functions=[arq_app.seen, arq_app.enqueue_child],
            redis_settings=RedisSettings.from_dsn(arq_url),
            burst=True,
            handle_signals=False,
            poll_delay=0.01,
            max_jobs=10,
            **propagation.worker_settings(),
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()
        records = {record["number"]: record for record in take_records(arq_url, 23)}
        for number in range(20):
            expected = {"request_id": f"r-{number}", "tenant": "Zoë"}
            record = records[number]
            assert expected == record["data"] == record["sub_task"] == record["after_sleep"]
            assert number == record["own_write"]
        assert {} == records[20]["data"] == records[22]["data"]
        assert {"request_id": "parent"} == records[21]["data"]
        assert 24 * 2 == len(hooks)  # 24 jobs: 23 recorded, and the one enqueueing a child
        assert all(
            ("start", f"r-{number}") in hooks and ("end", f"r-{number}") in hooks
            for number in range(20)
        )

    def test_payload_and_results(self) -> None:
        """The serializer adds the headers to job payloads only (not to results), the
        deserializer takes them out; with no data nothing is added."""
        propagation = arq_app.propagation
        job: dict[str, Any] = {"t": 1, "f": "seen", "a": (1,), "k": {}, "et": 0}
        with arq_app.request.restore({"request_id": "r"}):
            payload = propagation.serialize(job)
            result = propagation.serialize({**job, "s": True, "r": None})
        assert {PAYLOAD_KEY: {"baggage": "request_id=r"}} == {
            key: value for key, value in pickle.loads(payload).items() if key not in job
        }
        assert PAYLOAD_KEY not in pickle.loads(result)
        assert job == propagation.deserialize(payload)
        with arq_app.request.restore({}):
            assert job == pickle.loads(propagation.serialize(job))

    @pytest.mark.asyncio
    async def test_hooks_alone(self) -> None:
        """on_job_start, with no hook of yours, makes the payload's data the task's (and
        attaches the context to the loop); on_job_end ends it."""
        propagation = arq_app.propagation
        with arq_app.request.restore({"request_id": "alone"}):
            payload = propagation.serialize({"t": 1, "f": "seen", "a": (), "k": {}, "et": 0})
        propagation.deserialize(payload)
        await propagation.on_job_start({})
        try:
            assert {"request_id": "alone"} == dict(arq_app.request)
        finally:
            await propagation.on_job_end({})
        assert {} == dict(arq_app.request)  # the task's own (root) data, from attach()

    @pytest.mark.asyncio
    async def test_end_without_start_is_harmless(self) -> None:
        """An on_job_end with no job data in place does nothing."""
        await arq_app.propagation.on_job_end({})
        assert "ArqPropagation(Propagator(" in repr(arq_app.propagation)

    def test_bad_arguments(self) -> None:
        """A bad propagator or hook is refused, saying what to pass."""
        with pytest.raises(TypeError, match="propagator must be"):
            ArqPropagation("request_id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="on_job_start must be callable"):
            ArqPropagation(Propagator({arq_app.request: ["request_id"]}), on_job_start=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def test_1000_jobs_from_100_concurrent_requests(arq_url: str) -> None:
    """100 concurrent HTTP requests (aiohttp, each with its own id) each enqueue 10 jobs; an
    ``arq`` worker process runs them, 100 at a time in one loop: every job sees exactly its
    request's id, before and after yielding to the others, and its own writes only."""
    worker = Process(
        [sys.executable, "-m", "arq", "arq_app.WorkerSettings"], {"AIOCONTEXT_ARQ_URL": arq_url}
    )
    try:
        elapsed = asyncio.run(enqueue_from_requests(arq_url))
        started = time.perf_counter()
        records = take_records(arq_url, REQUESTS * JOBS_PER_REQUEST, timeout=120)
        drained = time.perf_counter() - started
    finally:
        output = worker.stop()
    wrong = [
        record
        for record in records
        if not (
            {"request_id": f"req-{record['number'] // JOBS_PER_REQUEST}"}
            == record["data"]
            == record["sub_task"]
            == record["after_sleep"]
            and record["own_write"] == record["number"]
        )
    ]
    assert [] == wrong, output[-3000:]
    assert set(range(REQUESTS * JOBS_PER_REQUEST)) == {record["number"] for record in records}
    assert 1 == len({record["pid"] for record in records})
    print(
        f"\narq: {len(records)} jobs from {REQUESTS} concurrent requests, enqueued in "
        f"{elapsed:.1f} s, all run {drained:.1f} s later, max_jobs=100"
    )


async def enqueue_from_requests(url: str) -> float:
    """Serve an aiohttp app whose handler enqueues 10 jobs; send it 100 requests at once."""
    redis_pool = await create_pool(
        RedisSettings.from_dsn(url), job_serializer=arq_app.propagation.serialize
    )

    async def handler(web_request: web.Request) -> web.Response:
        number = int(web_request.match_info["number"])
        for job in range(JOBS_PER_REQUEST):
            await redis_pool.enqueue_job("seen", number * JOBS_PER_REQUEST + job)
        return web.Response(text=arq_app.request["request_id"])

    app = web.Application()
    app.router.add_get("/enqueue/{number}", handler)
    aiocontext.aiohttp.setup(app, arq_app.request)
    try:
        return await echoes_own_ids(app, REQUESTS)
    finally:
        await redis_pool.aclose()
