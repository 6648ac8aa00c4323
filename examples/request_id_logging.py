"""The request id in every log line: aiohttp, ``dictConfig`` and ``ContextFilter``.

Logging is configured with ``logging.config.dictConfig``; its ``ContextFilter`` names the
context as ``"<module>:request_context"``. Every line the handler and its sub-tasks log
(``create_task``, ``gather``, ``to_thread``) carries the request's id without anyone passing
it, and so does aiohttp's access log line, which this service writes with the id in
``extra=`` (the filter never overwrites it).

Run it::

    python examples/request_id_logging.py               # serves on http://127.0.0.1:8080
    curl -H "X-Request-ID: order-42" http://127.0.0.1:8080/order/42
    python examples/request_id_logging.py --self-test   # a random port, a few requests, exit

Needs ``pip install "aiocontext[aiohttp]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import sys
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

import aiocontext.aiohttp
from aiocontext import Context

request_context: Context[str, str] = Context(name="request")
log = logging.getLogger("shop")


def logging_config(*, record: bool = False) -> dict[str, Any]:
    """The ``dictConfig`` of the service: one line format, with the request id in it."""
    handlers: dict[str, Any] = {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["request_id"],
            "formatter": "line",
        }
    }
    if record:  # for --self-test: keep every record too
        handlers["recorder"] = {"()": f"{__name__}.Recorder", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {
                "()": "aiocontext.logging.ContextFilter",
                "context": f"{__name__}:request_context",
            }
        },
        "formatters": {
            "line": {"format": "%(asctime)s %(levelname)-5s [%(request_id)s] %(name)s: %(message)s"}
        },
        "handlers": handlers,
        "root": {"level": "INFO", "handlers": list(handlers)},
    }


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access line, written after the handler returned: it passes the id itself."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra={"request_id": aiocontext.aiohttp.get_request_id(request)},
        )


async def check_stock(order: str) -> None:
    await asyncio.sleep(0.01)
    log.info("order %s: stock checked", order)


async def notify(order: str, who: str) -> None:
    await asyncio.sleep(0)
    log.info("order %s: %s notified", order, who)


def charge(order: str) -> None:
    log.info("order %s: card charged (in a thread)", order)


async def handle_order(request: web.Request) -> web.Response:
    order = request.match_info["order"]
    log.info("order %s: received", order)
    await asyncio.create_task(check_stock(order))
    await asyncio.to_thread(charge, order)
    await asyncio.gather(notify(order, "customer"), notify(order, "warehouse"))
    log.info("order %s: done", order)
    return web.Response(text=f"order {order} done\n")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/order/{order}", handle_order)
    aiocontext.aiohttp.setup(app, request_context)
    return app


class Recorder(logging.Handler):
    """Keeps (logger name, request id, message) of every record, for --self-test."""

    records: ClassVar[list[tuple[str, str, str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.__dict__["request_id"], record.getMessage()))


async def self_test() -> bool:
    """Serve on a random port, send requests concurrently, check every log line's id."""
    log.info("self-test: starting (no request yet, so no id)")
    runner = web.AppRunner(make_app(), access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    sent = {str(n): f"order-{n}" for n in range(1, 5)}
    sent["5"] = ""  # no header: the service makes an id
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:

            async def order(n: str) -> tuple[str, str]:
                headers = {"X-Request-ID": sent[n]} if sent[n] else {}
                async with session.get(f"{url}/order/{n}", headers=headers) as response:
                    await response.read()
                    return n, response.headers.get("X-Request-ID", "")

            ids = dict(await asyncio.gather(*(order(n) for n in sent)))
    finally:
        await runner.cleanup()

    ok = all(ids[n] == sent[n] for n in sent if sent[n]) and len(set(ids.values())) == len(ids)
    for n, request_id in ids.items():
        lines = [
            rid
            for _, rid, message in Recorder.records
            if message.startswith(f"order {n}:") or f"/order/{n} " in message
        ]
        ids_seen = set(lines)
        good = len(lines) == 7 and ids_seen == {request_id}
        ok = ok and good
        print(
            f"self-test: order {n}: {len(lines)} lines, ids {sorted(ids_seen)}: "
            f"{'OK' if good else 'MISMATCH'}"
        )
    outside = [rid for _, rid, message in Recorder.records if message.startswith("self-test")]
    ok = ok and outside == ["-"]
    print(f"self-test: {len(ids)} requests, {'every line carried its id' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The request id in every log line.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, send requests, exit"
    )
    args = parser.parse_args(argv)
    logging.config.dictConfig(logging_config(record=args.self_test))
    if args.self_test:
        return 0 if asyncio.run(self_test()) else 1
    log.info("serving on http://%s:%d", args.host, args.port)  # no request: logged with "-"
    web.run_app(
        make_app(), host=args.host, port=args.port, access_log_class=AccessLogger, print=None
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
