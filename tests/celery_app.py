"""The Celery app of ``test_celery.py``: imported by the tests and by the worker processes.

The broker is ``$AIOCONTEXT_CELERY_URL`` (a Redis database the test chose). Each task
records what it saw in the Redis list ``seen`` (pid, the message's own number, the data), then
writes into the context, which must never reach the next task.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, cast

import redis
from celery import Celery

from aiocontext import Context, loop_factory
from aiocontext.celery import install
from aiocontext.propagation import Baggage, Propagator

URL = os.environ.get("AIOCONTEXT_CELERY_URL", "redis://127.0.0.1:6379/1")

request: Context[str, Any] = Context(name="request")
propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())
propagation = install(propagator)

app = Celery("celery_app", broker=URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=16,
)

_client: list[Any] = []


def record(seen: dict[str, Any]) -> None:
    """Append ``seen`` (as JSON) to the Redis list ``seen``."""
    if not _client:
        _client.append(cast(Any, redis.Redis).from_url(app.conf.broker_url))
    _client[0].rpush("seen", json.dumps({"pid": os.getpid(), **seen}))


@app.task(name="celery_app.seen")
def seen(number: int) -> None:
    """Record the data this task runs with, then write to it (which must not leak)."""
    record({"number": number, "data": dict(request)})
    request["leaked_from"] = number


@app.task(name="celery_app.seen_async")
def seen_async(number: int) -> None:
    """Run async code from the task: the main task and a child see the task's data."""

    async def main() -> dict[str, Any]:
        child = await asyncio.create_task(asyncio.sleep(0, dict(request)))
        main_saw = dict(request)
        request["leaked_from"] = number  # the main task's own data (Copy policy)
        return {"main": main_saw, "child": child}

    with asyncio.Runner(loop_factory=loop_factory(request)) as runner:  # 3.12+: asyncio.run
        observed = runner.run(main())
    record({"number": number, "data": dict(request), **observed})
