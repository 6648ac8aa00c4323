"""Every Sentry event of a request tagged with the request's id: ``SentryTagsMiddleware``.

A Starlette service under uvicorn: ``RequestIdMiddleware`` gives each request its id, and
``SentryTagsMiddleware`` inside it gives each request an isolation scope of its own, tagged
with the request's ``request_id`` and ``tenant``. Errors and messages captured anywhere in
the request (the endpoint, a sub-task, a thread) carry that request's tags, never another's.

Run it::

    SENTRY_DSN=https://<key>@<your sentry>/<project> python examples/sentry_tags.py
    curl -H "X-Request-ID: order-42" -H "X-Tenant: acme" http://127.0.0.1:8000/checkout
    python examples/sentry_tags.py --self-test   # events kept in memory, a random port

Needs ``pip install "aiocontext[sentry]" starlette uvicorn httpx``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, ClassVar

import httpx
import sentry_sdk
import uvicorn
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from aiocontext import Context
from aiocontext.asgi import ASGIApp, RequestIdMiddleware
from aiocontext.sentry import SentryTags, SentryTagsMiddleware

request_context: Context[str, str] = Context(name="request")
tags = SentryTags(request_context, ["request_id", "tenant"])


async def checkout(request: Request) -> PlainTextResponse:
    """Report a problem from the endpoint and from a thread."""
    request_context["tenant"] = request.headers.get("x-tenant", "unknown")
    sentry_sdk.capture_message("checkout: card declined")
    await asyncio.to_thread(sentry_sdk.capture_message, "checkout: retry scheduled")
    return PlainTextResponse(request_context["request_id"])


def make_app() -> ASGIApp:
    """The service: request ids outside, a tagged Sentry scope per request inside."""
    app = Starlette(routes=[Route("/checkout", checkout)])
    return RequestIdMiddleware(SentryTagsMiddleware(app, tags), request_context)


class Kept(Transport):
    """A transport keeping events in memory instead of sending them (for --self-test)."""

    events: ClassVar[list[dict[str, Any]]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))


async def self_test() -> bool:
    """Twenty concurrent requests; every event must carry its own request's tags."""
    request_context.attach()
    config = uvicorn.Config(make_app(), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/checkout"
    async with httpx.AsyncClient() as client:
        await asyncio.gather(
            *(
                client.get(url, headers={"X-Request-ID": f"order-{n}", "X-Tenant": f"shop-{n}"})
                for n in range(20)
            )
        )
    server.should_exit = True
    await serving
    ok = len(Kept.events) == 40
    for event in Kept.events:
        n = event["tags"]["request_id"].removeprefix("order-")
        ok = ok and event["tags"] == {"request_id": f"order-{n}", "tenant": f"shop-{n}"}
    print(f"self-test: {len(Kept.events)} events, {'each with its request' if ok else 'FAILED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sentry events tagged with the request id.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--self-test", action="store_true", help="keep events in memory, send requests, exit"
    )
    args = parser.parse_args(argv)
    if args.self_test:
        sentry_sdk.init(
            dsn="https://key@sentry.invalid/1", transport=Kept(), default_integrations=False
        )
        return 0 if asyncio.run(self_test()) else 1
    sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"))
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
