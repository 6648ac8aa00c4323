"""The classic aiohttp request-id service, with aiocontext.

Every request gets an id: the caller's ``X-Request-ID`` header if it is a safe id, else a
fresh UUID4. The handler fans out to sub-tasks (``create_task``, ``gather``, a
``TaskGroup``, ``to_thread``); none of them is passed the id, yet each one reports it, and
the response carries it in the ``X-Request-ID`` header.

Run it::

    python examples/aiohttp_request_id.py               # serves on http://127.0.0.1:8080
    curl -H "X-Request-ID: my-request-1" http://127.0.0.1:8080/
    python examples/aiohttp_request_id.py --self-test   # a random port, a few requests, exit

Needs ``pip install "aiocontext[aiohttp]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import aiohttp
from aiohttp import web

import aiocontext.aiohttp
from aiocontext import Context

request_context: Context[str, str] = Context(name="request")


async def lookup(source: str) -> str:
    """Some work done in a sub-task: it reads the id from the context, not an argument."""
    await asyncio.sleep(0.01)
    return request_context["request_id"]


def blocking_work() -> str:
    """Some work done in a thread (``asyncio.to_thread``): it sees the id too."""
    return request_context["request_id"]


async def handle(request: web.Request) -> web.Response:
    """Fan out to sub-tasks and report the id each of them saw."""
    seen = {"handler": request_context["request_id"]}
    seen["create_task"] = await asyncio.create_task(lookup("create_task"))
    seen["gather"], _ = await asyncio.gather(lookup("gather"), lookup("gather"))
    async with asyncio.TaskGroup() as group:
        in_group = group.create_task(lookup("task_group"))
    seen["task_group"] = in_group.result()
    seen["to_thread"] = await asyncio.to_thread(blocking_work)
    return web.json_response(seen)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", handle)
    aiocontext.aiohttp.setup(app, request_context)  # middleware + attach on startup
    return app


async def self_test() -> bool:
    """Serve on a random port, send requests concurrently, check every id seen."""
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    # (the id sent, whether it must come back as it is); the last two get a fresh UUID4
    cases = [(f"self-test-{n}", True) for n in range(1, 6)] + [(None, False), ("bad id", False)]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:

            async def check(sent: str | None, echoed: bool) -> bool:
                headers = {} if sent is None else {"X-Request-ID": sent}
                async with session.get(url, headers=headers) as response:
                    got = response.headers.get("X-Request-ID", "")
                    seen: dict[str, str] = await response.json()
                fresh = not echoed and _is_uuid4(got)
                ok = (got == sent if echoed else fresh) and set(seen.values()) == {got}
                print(
                    f"sent {sent!r:15} -> {got!r:40} seen by {', '.join(seen)}: "
                    f"{'OK' if ok else f'MISMATCH {seen}'}"
                )
                return ok

            results = await asyncio.gather(*(check(sent, echoed) for sent, echoed in cases))
    finally:
        await runner.cleanup()
    ok = all(results)
    print(f"self-test: {len(results)} requests, {'every id matched' if ok else 'FAILED'}")
    return ok


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The classic aiohttp request-id service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, send requests, exit"
    )
    args = parser.parse_args(argv)
    if args.self_test:
        return 0 if asyncio.run(self_test()) else 1
    web.run_app(make_app(), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
