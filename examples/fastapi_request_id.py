"""A FastAPI service whose every request, sub-task and log line carries a request id.

``RequestIdMiddleware`` (pure ASGI, from ``aiocontext.asgi``) gives each request an id: the
caller's ``X-Request-ID`` header if it is a safe id, else a fresh UUID4. The endpoint fans
out to sub-tasks (``create_task``, ``gather``, a ``TaskGroup``, ``to_thread``) and a
dependency; none of them is passed the id, yet each one reports it and logs it (through
``aiocontext.logging.ContextFilter``), and the response carries it in ``X-Request-ID``.

Run it::

    python examples/fastapi_request_id.py                  # serves on http://127.0.0.1:8000
    curl -i -H "X-Request-ID: my-request-1" http://127.0.0.1:8000/
    python examples/fastapi_request_id.py --self-test      # a random port, a few requests, exit

Needs ``pip install "aiocontext[asgi]" fastapi uvicorn`` (and ``httpx`` for --self-test).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request

from aiocontext import Context
from aiocontext.asgi import RequestIdMiddleware
from aiocontext.logging import ContextFilter

request_context: Context[str, str] = Context(name="request")
log = logging.getLogger("orders")

app = FastAPI(title="aiocontext request ids")
app.add_middleware(RequestIdMiddleware, context=request_context)


async def lookup(source: str) -> str:
    """Some work done in a sub-task: it reads the id from the context, not an argument."""
    await asyncio.sleep(0.01)
    log.info("looked up %s", source)
    return request_context["request_id"]


def blocking_work() -> str:
    """Some work done in a thread (``asyncio.to_thread``): it sees the id too."""
    log.info("blocking work done")
    return request_context["request_id"]


async def current_user() -> str:
    """A dependency: FastAPI runs it inside the request, so it sees the id."""
    log.info("authenticated")
    return f"user-of-{request_context['request_id']}"


@app.get("/")
async def fan_out(request: Request, user: str = Depends(current_user)) -> dict[str, Any]:
    """Fan out to sub-tasks and report the id each of them saw."""
    log.info("handling the request")
    seen = {"endpoint": request_context["request_id"], "state": request.state.request_id}
    seen["create_task"] = await asyncio.create_task(lookup("create_task"))
    seen["gather"], _ = await asyncio.gather(lookup("gather"), lookup("gather"))
    async with asyncio.TaskGroup() as group:
        in_group = group.create_task(lookup("task_group"))
    seen["task_group"] = in_group.result()
    seen["to_thread"] = await asyncio.to_thread(blocking_work)
    seen["dependency"] = user.removeprefix("user-of-")
    return seen


# Log lines per request, all of which must carry its id: current_user, fan_out, four lookups
# (create_task, gather twice, task_group) and blocking_work.
LINES_PER_REQUEST = 7


class Recorder(logging.Handler):
    """Keeps the request id of every record, for --self-test."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.ids.append(record.__dict__["request_id"])


@contextmanager
def logging_to_stdout(*extra: logging.Handler) -> Generator[None]:
    """Log ``orders`` lines to stdout as ``[request id] logger: message``."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    handlers = [console, *extra]
    for handler in handlers:
        handler.addFilter(ContextFilter(request_context))  # on the handler, as it must be
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)


async def self_test(loop: str) -> bool:
    """Serve on a random port, send requests concurrently, check every id seen and logged."""
    import httpx  # only the self-test needs a client

    recorder = Recorder()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop=loop, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    # (the id sent, whether it must come back as it is); the last two get a fresh UUID4
    cases = [(f"self-test-{n}", True) for n in range(1, 6)] + [(None, False), ("bad id", False)]
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if serving.done():
                    return False  # uvicorn could not start; it logged why
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with logging_to_stdout(recorder):
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=20, trust_env=False
            ) as client:

                async def check(sent: str | None, echoed: bool) -> tuple[bool, str, str]:
                    headers = {} if sent is None else {"X-Request-ID": sent}
                    response = await client.get("/", headers=headers)
                    got = response.headers.get("X-Request-ID", "")
                    seen: dict[str, str] = response.json()
                    fresh = not echoed and _is_uuid4(got)
                    ok = (got == sent if echoed else fresh) and set(seen.values()) == {got}
                    report = (
                        f"sent {sent!r:15} -> {got!r:40} seen by {', '.join(seen)}: "
                        f"{'OK' if ok else f'MISMATCH {seen}'}"
                    )
                    return ok, got, report

                results = await asyncio.gather(*(check(sent, echoed) for sent, echoed in cases))
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 20)
    for _, _, report in results:  # printed once no thread is logging any more
        print(report)
    logged = all(recorder.ids.count(got) == LINES_PER_REQUEST for _, got, _ in results)
    logged = logged and len(recorder.ids) == LINES_PER_REQUEST * len(results)
    print(
        f"self-test: {len(recorder.ids)} log lines, {LINES_PER_REQUEST} per request, each with "
        f"its request's id: {'OK' if logged else 'MISMATCH'}"
    )
    ok = logged and all(ok for ok, _, _ in results)
    print(f"self-test: {len(results)} requests, {'every id matched' if ok else 'FAILED'}")
    return ok


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the loop ``--loop`` names, as uvicorn chooses it (auto: uvloop if installed)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, send requests, exit"
    )
    args = parser.parse_args(argv)
    if args.self_test:
        # uvicorn.run makes the loop --loop names; serve() here runs in the one we make.
        with asyncio.Runner(loop_factory=_loop_factory(args.loop)) as runner:
            uses_uvloop = type(runner.get_loop()).__module__.startswith("uvloop")
            print(f"self-test: on the {'uvloop' if uses_uvloop else 'asyncio'} event loop")
            return 0 if runner.run(self_test(args.loop)) else 1
    with logging_to_stdout():
        # The middleware attaches request_context to uvicorn's loop at startup (lifespan).
        uvicorn.run(app, host=args.host, port=args.port, loop=args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
