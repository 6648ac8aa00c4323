"""Django over ASGI: the request-id middleware around a real Django app under a real uvicorn.

Django is configured in code (no project files): this module is its URLconf. The app is
``RequestIdMiddleware(get_asgi_application(), ctx)``, served by uvicorn on 127.0.0.1 (a
free port) in the test's own loop, hit by a real ``httpx.AsyncClient``: REQUESTS requests
from CONCURRENCY workers (bounded), over an async view and a sync view (Django runs it in
a thread through asgiref's ``sync_to_async``), each crossing asgiref's adapters both ways
(``sync_to_async`` from the async view, ``async_to_sync`` from the sync code), each with an
id of its own, under every policy and on both loops. Every piece of code must see its
request's id and nothing another request wrote.

The last tests pin down what a write does across asgiref's adapters under each policy
(asgiref copies the callee's changed context variables back into the caller), next to
``asyncio.to_thread`` (which does not), as ``docs/integrations/django.md`` documents. Only
the deterministic cases are asserted: ``async_to_sync`` on the caller's loop copies back a
context it may take after the caller already restored (a race in asgiref 3.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, Final, cast

import django
import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path
from servers import uvicorn_serving
from stress._support import size

from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, PropagationPolicy, Share
from aiocontext.asgi import ASGIApp, RequestIdMiddleware

#: Requests per run (each policy on each loop: 2,000 in all by default, 8,000 at the stress
#: suite's full size, ``AIOCONTEXT_STRESS=full``), and how many are in flight at once.
REQUESTS: Final = size(ci=250, full=1_000)
CONCURRENCY: Final = 50
TIMEOUT: Final = 90  # seconds: a bound on every server test, never reached

POLICIES: Final[dict[str, PropagationPolicy]] = {
    "Copy": Copy(),
    "ChainMap": ChainMap(),
    "DeepCopy": DeepCopy(),
    "Share": Share(),
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="aiocontext-tests-only",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        LOGGING_CONFIG=None,  # leave the process' logging configuration alone
        USE_TZ=True,
    )
    django.setup()


class Views:
    """The views, over the context the running test made (one test at a time)."""

    ctx: Context[str, Any] = Context(name="django-unset", registry=ContextRegistry())

    @classmethod
    def seen(cls, where: str) -> dict[str, Any]:
        """What the current code sees: the id, and whether another request's write shows."""
        return {"where": where, "id": cls.ctx.get("request_id"), "leak": cls.ctx.get("other")}

    @classmethod
    async def read_async(cls, where: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return cls.seen(where)

    @classmethod
    def read_sync(cls) -> list[dict[str, Any]]:
        """Sync code: what it sees, and what async code it calls by ``async_to_sync`` sees."""
        seen = [cls.seen("sync_to_async")]
        seen.append(async_to_sync(cls.read_async)("sync_to_async/async_to_sync"))
        cls.ctx["by_sync_to_async"] = "written in the thread"
        return seen

    @classmethod
    async def async_view(cls, request: HttpRequest) -> JsonResponse:
        seen = [cls.seen("async view")]
        cls.ctx["other"] = cls.ctx.get("request_id")  # what no other request may see
        seen.append(await asyncio.create_task(cls.read_async("create_task")))
        seen.extend(await sync_to_async(cls.read_sync)())
        came_back = cls.ctx.get("by_sync_to_async")
        return JsonResponse({"seen": seen, "came_back": came_back})

    @classmethod
    def sync_view(cls, request: HttpRequest) -> JsonResponse:
        seen = [cls.seen("sync view")]
        cls.ctx["other"] = cls.ctx.get("request_id")
        seen.append(async_to_sync(cls.read_async)("async_to_sync"))
        seen.extend(async_to_sync(sync_to_async(cls.read_sync))())
        came_back = cls.ctx.get("by_sync_to_async")
        return JsonResponse({"seen": seen, "came_back": came_back})


urlpatterns = [path("async", Views.async_view), path("sync", Views.sync_view)]


def serving(app: Any) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve ``app`` with uvicorn (Django's ASGI handler serves no lifespan)."""
    return uvicorn_serving(app, timeout_keep_alive=TIMEOUT)


class TestDjangoUnderUvicorn:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    async def test_async_and_sync_views_across_asgiref_see_only_their_request(
        self, policy: str
    ) -> None:
        """REQUESTS requests, CONCURRENCY at once, half to the async view, half to the sync
        one: the view, a child task, ``sync_to_async`` code and the ``async_to_sync`` code it
        calls all see the request's id and no other request's write; a write made in
        ``sync_to_async`` code comes back to the async view; the response header has the
        id."""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="django", registry=ContextRegistry()
        )
        Views.ctx = ctx
        # django-stubs types the handler's scope as a dict and its send as taking a Mapping,
        # narrower than the ASGI types the middleware takes: a cast (see django.md).
        app = RequestIdMiddleware(cast(ASGIApp, get_asgi_application()), ctx)
        limit = asyncio.Semaphore(CONCURRENCY)
        wrong: list[tuple[int, object]] = []

        async def one(client: httpx.AsyncClient, n: int) -> None:
            view = ("async", "sync")[n % 2]
            async with limit:
                response = await client.get(f"/{view}", headers={"x-request-id": f"req-{n}"})
            body = response.json()
            expected = [f"req-{n}"] * 4
            if (
                response.status_code != 200
                or response.headers["x-request-id"] != f"req-{n}"
                or [item["id"] for item in body["seen"]] != expected
                or [item["leak"] for item in body["seen"][:1]] != [None]
                or any(item["leak"] not in (None, f"req-{n}") for item in body["seen"])
                # sync_to_async copies the callee's writes back when it returns; the sync
                # view's come back through async_to_sync, which may lose them (django.md).
                or (view == "async" and body["came_back"] != "written in the thread")
            ):
                wrong.append((n, body))

        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with (
            asyncio.timeout(TIMEOUT),
            serving(app) as url,
            httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client,
        ):
            await asyncio.gather(*(one(client, n) for n in range(REQUESTS)))
        assert [] == wrong


def in_thread(function: Callable[[], Any]) -> Any:
    """Run ``function`` in a plain new thread (no event loop there); return its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join(TIMEOUT)
    return result[0]


class TestWritesAcrossAsgiref:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    async def test_writes_in_sync_to_async_code_come_back_unlike_to_thread(
        self, policy: str
    ) -> None:
        """Under every policy, what ``sync_to_async`` code writes is in the caller's data
        when it returns (asgiref copies the changed variables back); what ``to_thread`` code
        writes comes back only under ``Share()``, whose one mapping it changed in place."""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="asgiref", registry=ContextRegistry()
        )
        ctx.attach()
        with ctx.restore({"request_id": "r-1"}):
            seen = await sync_to_async(lambda: ctx.setdefault("by_sync_to_async", "s"))()
            await asyncio.to_thread(ctx.__setitem__, "by_to_thread", "t")
            data = dict(ctx)
        expected = {"request_id": "r-1", "by_sync_to_async": "s"}
        if policy == "Share":
            expected["by_to_thread"] = "t"
        assert ("s", expected) == (seen, data)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    async def test_async_to_sync_code_on_the_callers_loop_sees_the_callers_data(
        self, policy: str
    ) -> None:
        """Under every policy, async code run by ``async_to_sync`` from ``sync_to_async``
        code (on the caller's loop) sees the caller's data. (Whether what it writes comes
        back is a race in asgiref there: it hands the result over before it takes the copy
        of the context it restores; see django.md. So only reads are asserted.)"""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="asgiref", registry=ContextRegistry()
        )
        ctx.attach()

        async def read() -> str:
            await asyncio.sleep(0)
            return str(ctx["request_id"])

        def sync_code() -> str:
            return async_to_sync(read)()

        with ctx.restore({"request_id": "r-2"}):
            seen = await sync_to_async(sync_code)()
        assert "r-2" == seen

    @pytest.mark.parametrize("policy", sorted(POLICIES))
    def test_async_to_sync_from_a_plain_thread(self, policy: str) -> None:
        """From a thread with no loop (asgiref then runs the coroutine on a loop of its own),
        the coroutine sees the thread's data and its write comes back."""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="asgiref", registry=ContextRegistry()
        )

        async def write() -> str:
            ctx["by_async_to_sync"] = "a"
            return str(ctx["request_id"])

        def thread() -> tuple[str, dict[str, Any]]:
            with ctx.restore({"request_id": "r-3"}):
                return async_to_sync(write)(), dict(ctx)

        assert ("r-3", {"request_id": "r-3", "by_async_to_sync": "a"}) == in_thread(thread)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    async def test_deleting_after_a_writing_sync_to_async_call(self, policy: str) -> None:
        """After ``sync_to_async`` code wrote, the caller holds the data the callee left.
        Under ``ChainMap()`` that is the callee's layer over the caller's: deleting a key
        the caller set before the call raises ``KeyError`` (``collections.ChainMap`` deletes
        from the first layer only) and the key stays; under the other policies it works."""
        ctx: Context[str, Any] = Context(
            POLICIES[policy], name="asgiref", registry=ContextRegistry()
        )
        ctx.attach()
        with ctx.restore({"request_id": "r-4"}):
            ctx["mine"] = "set before"

            def write() -> None:
                ctx["theirs"] = "written in the thread"

            await sync_to_async(write)()
            if policy == "ChainMap":
                with pytest.raises(KeyError, match="mine"):
                    del ctx["mine"]
            else:
                del ctx["mine"]
            data = dict(ctx)
        kept = {"mine": "set before"} if policy == "ChainMap" else {}
        assert {"request_id": "r-4", "theirs": "written in the thread", **kept} == data
