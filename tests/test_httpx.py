"""``aiocontext.httpx``: real httpx clients, sync and async, against a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest
from aiohttp import web
from servers import aiohttp_serving

import aiocontext.httpx
from aiocontext import Context, ContextRegistry
from aiocontext.executors import CleanThreadPoolExecutor
from aiocontext.propagation import Baggage, Propagator

CONCURRENT = 50


def new_context() -> Context[str, Any]:
    """A context of the test's own."""
    return Context(name="request", registry=ContextRegistry())


@contextlib.asynccontextmanager
async def echo_server() -> AsyncGenerator[str]:
    """An aiohttp server on 127.0.0.1 answering with the request's headers; ``/redirect``
    redirects to ``/``. Yields the base URL."""

    async def echo(request: web.Request) -> web.Response:
        await asyncio.sleep(0.001)
        return web.json_response({name.lower(): value for name, value in request.headers.items()})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    app = web.Application()
    app.router.add_get("/", echo)
    app.router.add_get("/redirect", redirect)
    async with aiohttp_serving(app) as base:
        yield base


class TestInstrument:
    @pytest.mark.asyncio
    async def test_async_client_sends_each_tasks_data(self) -> None:
        """50 concurrent requests from tasks with different ids: each request carries its
        own task's id and tenant (baggage), redirects included."""
        request = new_context()
        request.attach()
        propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())
        async with (
            echo_server() as url,
            aiocontext.httpx.instrument(
                httpx.AsyncClient(trust_env=False, timeout=20), propagator
            ) as client,
        ):

            async def call(n: int) -> dict[str, str]:
                request["request_id"] = f"r-{n}"
                request["tenant"] = f"t {n}"
                response = await client.get(f"{url}/redirect", follow_redirects=True)
                seen: dict[str, str] = response.json()
                return seen

            results = await asyncio.gather(*(call(n) for n in range(CONCURRENT)))
        assert [f"request_id=r-{n},tenant=t%20{n}" for n in range(CONCURRENT)] == [
            seen["baggage"] for seen in results
        ]

    @pytest.mark.asyncio
    async def test_sync_client_in_threads(self) -> None:
        """A sync client sends the data of the thread calling it (a ``to_thread`` worker
        sees its task's data, a clean pool's thread has none and sends no id); a header the
        caller set, or a client default, is kept."""
        request = new_context()
        request.attach()
        propagator = Propagator({request: ["request_id"]})
        async with echo_server() as url:
            with aiocontext.httpx.instrument(
                httpx.Client(trust_env=False, timeout=20, headers={"X-Other": "kept"}), propagator
            ) as client:

                def call(headers: dict[str, str]) -> dict[str, str]:
                    seen: dict[str, str] = client.get(url, headers=headers).json()
                    return seen

                request["request_id"] = "r-sync"
                sent = await asyncio.to_thread(call, {})
                caller_set = await asyncio.to_thread(call, {"x-request-id": "callers"})
                no_headers: dict[str, str] = {}
                with CleanThreadPoolExecutor(1) as pool:  # workers start with no context
                    no_data = await asyncio.get_running_loop().run_in_executor(
                        pool, call, no_headers
                    )
        assert ("r-sync", "kept") == (sent["x-request-id"], sent["x-other"])
        assert "callers" == caller_set["x-request-id"]
        assert ("kept", False) == (no_data["x-other"], "x-request-id" in no_data)

    @pytest.mark.asyncio
    async def test_no_data_sends_no_header(self) -> None:
        """A request sent where the context has no data carries no id header."""
        request = new_context()  # never attached: no data anywhere
        propagator = Propagator({request: ["request_id"]})
        async with (
            echo_server() as url,
            httpx.AsyncClient(
                trust_env=False, event_hooks={"request": [aiocontext.httpx.async_hook(propagator)]}
            ) as client,
        ):
            seen = (await client.get(url)).json()
        assert "x-request-id" not in seen

    def test_hooks_keep_the_clients_own(self) -> None:
        """instrument() adds its hook after those the client has."""
        calls: list[str] = []

        def own(request: httpx.Request) -> None:
            calls.append("own")

        request = new_context()
        propagator = Propagator({request: ["request_id"]})
        with httpx.Client(event_hooks={"request": [own]}) as client:
            aiocontext.httpx.instrument(client, propagator)
            assert own is client.event_hooks["request"][0]
            assert 2 == len(client.event_hooks["request"])
            assert [] == client.event_hooks["response"]

    def test_bad_arguments(self) -> None:
        """A non-client or non-propagator is refused, saying what to pass."""
        propagator = Propagator({new_context(): ["request_id"]})
        with pytest.raises(TypeError, match="takes an httpx.Client or httpx.AsyncClient"):
            aiocontext.httpx.instrument(object(), propagator)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
        with pytest.raises(
            TypeError, match="propagator must be an aiocontext.propagation.Propagator"
        ):
            aiocontext.httpx.hook("request_id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
