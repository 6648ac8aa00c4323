"""Two services and a worker, one request id: A (ASGI) calls B (aiohttp) and enqueues a job.

* **Service A** (Starlette under uvicorn, ``RequestIdMiddleware``) takes an order, checks the
  stock with service B over HTTP (an httpx client instrumented by ``aiocontext.httpx``:
  the request id goes along as ``X-Request-ID``) and enqueues a Celery job to send the
  confirmation (``aiocontext.celery``: the id goes along in the message headers, as W3C
  baggage with the user).
* **Service B** (aiohttp, ``aiocontext.aiohttp.setup``) takes the id from the header.
* **The worker** (``celery worker``) runs the job with the id and user restored.

Nobody passes the id as an argument, yet A's, B's and the worker's log lines all carry it
(``aiocontext.logging.ContextFilter``). Run the three processes and a Redis yourself::

    export THREE_SERVICES_BROKER=redis://127.0.0.1:6379/3
    python examples/three_services.py b --port 8001 &
    (cd examples && python -m celery -A three_services worker --pool=solo) &
    python examples/three_services.py a --port 8000 --b-url http://127.0.0.1:8001 &
    curl -H "X-Request-ID: order-1" "http://127.0.0.1:8000/order?user=alice"

or let ``--self-test`` do it all on loopback (a Redis server of its own, from
``$AIOCONTEXT_REDIS_URL`` or ``redis-server``), send a few orders and check every log line.

Needs ``pip install "aiocontext[asgi,aiohttp,httpx,celery]" "celery[redis]" starlette uvicorn``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx
import uvicorn
from aiohttp import web
from celery import Celery
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aiocontext.aiohttp
import aiocontext.celery
import aiocontext.httpx
from aiocontext import Context
from aiocontext.asgi import RequestIdMiddleware
from aiocontext.logging import ContextFilter
from aiocontext.propagation import Baggage, Propagator

request_context: Context[str, str] = Context(name="request")
log = logging.getLogger("shop")

# HTTP: the id alone, as X-Request-ID. Jobs: the id and the user, as W3C baggage.
http_propagator = Propagator({request_context: ["request_id"]})
job_propagator = Propagator({request_context: ["request_id", "user"]}, codec=Baggage())
aiocontext.celery.install(job_propagator)

BROKER = os.environ.get("THREE_SERVICES_BROKER", "redis://127.0.0.1:6379/3")
celery_app = Celery("three_services", broker=BROKER)
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,  # our handler, with the id, logs the job's lines
    worker_redirect_stdouts=False,
)


def log_to(stream: TextIO, service: str) -> None:
    """Log ``shop`` lines to ``stream`` as ``<service> [<request id>] shop: <message>``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(f"{service} [%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(ContextFilter(request_context))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


@celery_app.task(name="three_services.send_confirmation")
def send_confirmation(order: str) -> None:
    """The job: runs in the worker with the id and user of the request that enqueued it."""
    log.info("confirmation of %s sent to %s", order, request_context["user"])


# -- service B -----------------------------------------------------------------------------


async def stock(request: web.Request) -> web.Response:
    """B: check the stock; the id came in the X-Request-ID header."""
    log.info("stock checked for %s", request.query.get("order", "?"))
    return web.json_response({"in_stock": True, "request_id": request_context["request_id"]})


def service_b() -> web.Application:
    """Service B: an aiohttp app with the request-id middleware."""
    app = web.Application()
    app.router.add_get("/stock", stock)
    aiocontext.aiohttp.setup(app, request_context)
    return app


# -- service A -----------------------------------------------------------------------------


def service_a(b_url: str) -> RequestIdMiddleware:
    """Service A: a Starlette app calling B and enqueueing the job, under the middleware."""
    client = aiocontext.httpx.instrument(
        httpx.AsyncClient(base_url=b_url, trust_env=False, timeout=20), http_propagator
    )

    async def order(request: Request) -> JSONResponse:
        user = request.query_params.get("user", "anonymous")
        request_context["user"] = user
        log.info("order received from %s", user)
        number = f"order-{time.monotonic_ns()}"
        stock_answer = (await client.get("/stock", params={"order": number})).json()
        log.info("B answered in_stock=%s", stock_answer["in_stock"])
        await asyncio.to_thread(send_confirmation.delay, number)  # the thread sees the data
        log.info("confirmation queued")
        return JSONResponse(
            {"request_id": request_context["request_id"], "b_saw": stock_answer["request_id"]}
        )

    return RequestIdMiddleware(Starlette(routes=[Route("/order", order)]), request_context)


# -- the self-test -------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float = 90) -> None:  # slow starts on busy machines
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def _redis() -> Generator[str]:
    """A Redis base URL: ``$AIOCONTEXT_REDIS_URL``, or a redis-server of our own."""
    given = os.environ.get("AIOCONTEXT_REDIS_URL")
    if given:
        yield given.rstrip("/")
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("self-test: needs redis-server on PATH, or AIOCONTEXT_REDIS_URL")
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port)
            yield f"redis://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(10)


def self_test() -> bool:
    """Start B, the worker and A as processes; send orders; check every log line's id."""
    ids = [f"self-test-{n}" for n in range(1, 5)]
    with _redis() as redis_url, tempfile.TemporaryDirectory() as logs:
        env = {**os.environ, "THREE_SERVICES_BROKER": f"{redis_url}/3"}
        a_port, b_port = _free_port(), _free_port()
        script = str(Path(__file__).resolve())
        commands = {
            "B": [sys.executable, script, "b", "--port", str(b_port)],
            "worker": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "three_services",
                "worker",
                "--pool=solo",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            "A": [
                sys.executable,
                script,
                "a",
                "--port",
                str(a_port),
                "--b-url",
                f"http://127.0.0.1:{b_port}",
            ],
        }
        outputs = {name: open(Path(logs) / name, "w+") for name in commands}  # noqa: SIM115 - the processes' logs, closed below
        processes = {
            name: subprocess.Popen(
                command, env=env, cwd=HERE, stdout=outputs[name], stderr=subprocess.STDOUT
            )
            for name, command in commands.items()
        }
        answers: list[dict[str, Any]] = []
        try:
            _wait_for_port(b_port)
            _wait_for_port(a_port)
            with httpx.Client(
                base_url=f"http://127.0.0.1:{a_port}", trust_env=False, timeout=30
            ) as client:
                for n, request_id in enumerate([*ids, None]):
                    headers = {} if request_id is None else {"X-Request-ID": request_id}
                    answers.append(
                        client.get("/order", params={"user": f"user-{n}"}, headers=headers).json()
                    )
            ids = [answer["request_id"] for answer in answers]  # the last one: a fresh UUID4
            deadline = time.monotonic() + 60
            # (Count the worker's own lines: Celery's log repeats each one.)
            while _read(outputs["worker"]).count("] shop: confirmation of") < len(ids):
                if time.monotonic() > deadline or processes["worker"].poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(20)
        text = {name: _read(output) for name, output in outputs.items()}
        for output in outputs.values():
            output.close()
    for name in ("A", "B", "worker"):
        for line in text[name].splitlines():
            if "] shop: " in line:
                print(line)
    ok = all(answer["b_saw"] == answer["request_id"] for answer in answers)
    for n, request_id in enumerate(ids):
        counts = {
            name: len(re.findall(rf"^{name} \[{re.escape(request_id)}\] shop: ", text[name], re.M))
            for name in commands
        }
        user_ok = (
            f"[{request_id}] shop: confirmation of order-" in text["worker"]
            and f"sent to user-{n}" in text["worker"]
        )
        line_ok = counts == {"A": 3, "B": 1, "worker": 1} and user_ok
        ok = ok and line_ok
        print(
            f"self-test: {request_id}: log lines A={counts['A']} B={counts['B']} "
            f"worker={counts['worker']}: {'OK' if line_ok else 'MISMATCH'}"
        )
    print(
        f"self-test: {len(ids)} requests, "
        f"{'the same id in A, B and the worker' if ok else 'FAILED'}"
    )
    if not ok:
        for name in commands:
            print(f"--- {name} output:\n{text[name]}")
    return ok


def _read(output: TextIO) -> str:
    output.flush()
    output.seek(0)
    return output.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("service", nargs="?", choices=["a", "b"], help="the service to run")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--b-url", default="http://127.0.0.1:8001", help="where A finds B")
    parser.add_argument("--self-test", action="store_true", help="run all three, check, exit")
    args = parser.parse_args(argv)
    if args.self_test:
        return 0 if self_test() else 1
    if args.service == "b":
        log_to(sys.stdout, "B")
        web.run_app(service_b(), host="127.0.0.1", port=args.port, print=None, access_log=None)
    elif args.service == "a":
        log_to(sys.stdout, "A")
        uvicorn.run(service_a(args.b_url), host="127.0.0.1", port=args.port, log_level="warning")
    else:
        parser.error("name a service (a or b), or pass --self-test")
    return 0


if __name__ != "__main__" and os.environ.get("THREE_SERVICES_BROKER"):
    log_to(sys.stdout, "worker")  # imported by `celery -A three_services worker`

if __name__ == "__main__":
    sys.exit(main())
