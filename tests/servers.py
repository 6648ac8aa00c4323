"""Real HTTP servers for the tests: aiohttp and uvicorn on 127.0.0.1, in the running loop.

Each is an async context manager that starts the server on a port the OS picks, yields its
base URL (``http://127.0.0.1:PORT``, no trailing slash) once it accepts connections, and
stops it on exit. Only the test modules that serve an application import this one (it
imports aiohttp and uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web

__all__ = ["aiohttp_serving", "echoes_own_ids", "uvicorn_serving", "websocket_url"]

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def aiohttp_serving(
    app: web.Application, *, backlog: int = 128, **runner_options: Any
) -> AsyncGenerator[str]:
    """Serve ``app`` with aiohttp; yield its base URL.

    ``backlog`` is the listening socket's (a load's first wave arrives all at once);
    ``runner_options`` go to :class:`aiohttp.web.AppRunner` (``shutdown_timeout=5``,
    ``max_field_size=16_384``, ...). No access log.
    """
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, 0, backlog=backlog).start()
        yield f"http://{HOST}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, **options: Any) -> AsyncGenerator[str]:
    """Serve the ASGI ``app`` with uvicorn in the running loop; yield its base URL.

    ``options`` override :class:`uvicorn.Config`'s settings here: the loop implementation
    of the running loop (``loop="none"`` runs it in the test's loop whatever it is), no
    lifespan (``lifespan="on"`` for an app that has one), warnings only, the process'
    logging configuration left alone, no access log, and idle keep-alive connections kept
    60 s, so that a busy machine never has uvicorn close one under the client's feet.
    A server that fails to start raises why; one not started in 10 s fails the test.
    """
    running = asyncio.get_running_loop()
    settings: dict[str, Any] = {
        "host": HOST,
        "port": 0,
        "loop": "uvloop" if type(running).__module__.startswith("uvloop") else "asyncio",
        "lifespan": "off",
        "log_level": "warning",
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": 60,
    }
    server = uvicorn.Server(uvicorn.Config(app, **{**settings, **options}))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise why
                    raise AssertionError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://{HOST}:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def websocket_url(base: str, path: str) -> str:
    """The ``ws://`` URL of ``path`` on the server at the ``http://`` URL ``base``."""
    return "ws://" + base.removeprefix("http://") + path


async def echoes_own_ids(app: web.Application, count: int) -> float:
    """Serve ``app`` with aiohttp and send it ``count`` requests at once, the n-th a
    ``GET /enqueue/n`` with ``X-Request-ID: req-n``; check that each answer is the request's
    own id and return how many seconds the requests took."""
    async with (
        aiohttp_serving(app) as base,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        started = time.perf_counter()

        async def one(number: int) -> str:
            headers = {"X-Request-ID": f"req-{number}"}
            async with session.get(f"{base}/enqueue/{number}", headers=headers) as response:
                return await response.text()

        answers = await asyncio.gather(*(one(number) for number in range(count)))
        elapsed = time.perf_counter() - started
    assert [f"req-{number}" for number in range(count)] == answers
    return elapsed
