"""The arq jobs of ``test_arq.py``, and the settings of the worker processes it starts.

The Redis database is ``$AIOCONTEXT_ARQ_URL``. Each job records what it saw in the Redis list
``seen`` (pid, its number, the data), writes into the context, and yields to the other jobs
running at once; none may ever see another's data.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable
from typing import Any, cast

from arq.connections import ArqRedis, RedisSettings

from aiocontext import Context
from aiocontext.arq import ArqPropagation
from aiocontext.propagation import Baggage, Propagator

URL = os.environ.get("AIOCONTEXT_ARQ_URL", "redis://127.0.0.1:6379/2")

request: Context[str, Any] = Context(name="request")
propagation = ArqPropagation(Propagator({request: ["request_id", "tenant"]}, codec=Baggage()))


async def seen(ctx: dict[str, Any], number: int) -> str:
    """Record the data this job runs with (and its sub-task's), write to it, yield."""
    sub_task = await asyncio.create_task(asyncio.sleep(0, dict(request)))
    record = {"pid": os.getpid(), "number": number, "data": dict(request), "sub_task": sub_task}
    request["leaked_from"] = number
    await asyncio.sleep(0.001)  # let the other running jobs write meanwhile
    record["after_sleep"] = {k: v for k, v in request.items() if k != "leaked_from"}
    record["own_write"] = request["leaked_from"]
    redis: ArqRedis = ctx["redis"]
    await cast(Awaitable[int], redis.rpush("seen", json.dumps(record)))
    return str(request.get("request_id"))


async def enqueue_child(ctx: dict[str, Any], number: int) -> None:
    """Enqueue a job from a job: it carries this job's data on."""
    redis: ArqRedis = ctx["redis"]
    await redis.enqueue_job("seen", number)


WorkerSettings: dict[str, Any] = {
    "functions": [seen, enqueue_child],
    "redis_settings": RedisSettings.from_dsn(URL),
    "max_jobs": 100,
    "poll_delay": 0.05,
    "keep_result": 0,
    **propagation.worker_settings(),
}
