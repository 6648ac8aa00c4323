"""The request id in every loguru line: ``logger.configure(patcher=aiocontext.loguru.patcher(...))``.

An aiohttp service logging with loguru. The patcher fills ``record["extra"]`` with the
request's id in the code that logs, so the format's ``{extra[request_id]}`` is right in the
handler, its sub-tasks and threads, and in a sink with ``enqueue=True``; a line logged
outside any request gets ``-``.

Run it::

    python examples/loguru_request_id.py              # serves on http://127.0.0.1:8080
    curl -H "X-Request-ID: order-42" http://127.0.0.1:8080/order/42
    python examples/loguru_request_id.py --self-test  # a random port, a few requests, exit

Needs ``pip install "aiocontext[aiohttp,loguru]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
from aiohttp import web
from loguru import logger

import aiocontext.aiohttp
import aiocontext.loguru
from aiocontext import Context

request_context: Context[str, str] = Context(name="request")
FORMAT = "[{extra[request_id]}] {message}"


async def order(request: web.Request) -> web.Response:
    """Log from the handler, a sub-task and a thread."""
    number = request.match_info["number"]
    logger.info(f"order {number}: received")
    await asyncio.create_task(asyncio.sleep(0))
    await asyncio.to_thread(logger.info, f"order {number}: charged (in a thread)")
    logger.info(f"order {number}: done")
    return web.Response(text=request_context["request_id"])


def make_app() -> web.Application:
    """The service, with the request-id middleware."""
    app = web.Application()
    aiocontext.aiohttp.setup(app, request_context)
    app.router.add_get("/order/{number}", order)
    return app


async def self_test(lines: list[str]) -> bool:
    """Five concurrent requests: each one's three lines carry its id."""
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/order"
    try:
        async with aiohttp.ClientSession() as session:

            async def get(n: int) -> str:
                headers = {"X-Request-ID": f"order-{n}"}
                async with session.get(f"{url}/{n}", headers=headers) as response:
                    return await response.text()

            ids = await asyncio.gather(*(get(n) for n in range(1, 6)))
    finally:
        await runner.cleanup()
    await logger.complete()
    ok = ids == [f"order-{n}" for n in range(1, 6)]
    for n in range(1, 6):
        own = [line for line in lines if f"order {n}:" in line]
        good = len(own) == 3 and all(line.startswith(f"[order-{n}] ") for line in own)
        print(f"self-test: order {n}: {len(own)} lines: {'OK' if good else 'FAILED'}")
        ok = ok and good
    ok = ok and "[-] self-test: starting\n" in lines
    print(f"self-test: 5 requests, {'every line carried its id' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The request id in every loguru line.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, send requests, exit"
    )
    args = parser.parse_args(argv)
    logger.remove()
    logger.configure(patcher=aiocontext.loguru.patcher(request_context))
    logger.add(sys.stdout, format=FORMAT, enqueue=True)  # the patcher runs before the queue
    if args.self_test:
        lines: list[str] = []
        logger.add(lines.append, format=FORMAT, enqueue=True)
        logger.info("self-test: starting")
        return 0 if asyncio.run(self_test(lines)) else 1
    web.run_app(make_app(), port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
