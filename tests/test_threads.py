"""What threads see and may write: the semantics ``docs/threads.md`` states.

Each test holds on every Python and, on 3.14+, with both settings of
``-X thread_inherit_context`` (CI runs the suite with each): where the interpreter's setting
decides, as for a plain ``threading.Thread``, the expected value says so. Requests are root
tasks (``create_task(..., context=contextvars.Context())``), each with its own data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, EventLoopError, Share
from aiocontext.executors import CleanThreadPoolExecutor, run_in_executor
from conftest import FREE_THREADED
from conftest import THREADS_INHERIT_CONTEXT as INHERITS

POLICIES = [Share(), Copy(), DeepCopy(), ChainMap()]
POLICY_IDS = ["Share", "Copy", "DeepCopy", "ChainMap"]
REQUESTS = 3


class Payload:
    """A value whose lifetime the tests follow with a weak reference."""


def new_context(policy: Any) -> Context[str, Any]:
    """A context with ``policy`` in a registry of its own, attached to the running loop."""
    return Context(policy, name=f"threads-{type(policy).__name__}", registry=ContextRegistry())


def seen(ctx: Context[str, Any]) -> str:
    """The worker: the ``id`` it sees, or ``"no data"``; it then writes ``by_job``."""
    try:
        request_id: str = ctx["id"]
    except EventLoopError:
        return "no data"
    ctx["by_job"] = request_id
    return request_id


async def requests(
    ctx: Context[str, Any], work: Callable[[], Awaitable[str]]
) -> list[tuple[str, str, str | None]]:
    """Run REQUESTS requests one after another, each a root task with its own data that
    stores a payload and awaits ``work()``; gives ``(id, what work saw, by_job in its data)``."""
    results: list[tuple[str, str, str | None]] = []

    async def request(number: int) -> None:
        ctx["id"] = f"r-{number}"
        ctx["payload"] = Payload()
        result = await work()
        results.append((ctx["id"], result, ctx.get("by_job")))

    for number in range(1, REQUESTS + 1):
        await asyncio.create_task(request(number), context=contextvars.Context())
    return results


def own_ids(share: bool) -> list[tuple[str, str, str | None]]:
    """Each request's work saw its own id; under Share() its write is the request's."""
    return [(f"r-{n}", f"r-{n}", f"r-{n}" if share else None) for n in range(1, 4)]


def no_data() -> list[tuple[str, str, str | None]]:
    """No request's work saw any data."""
    return [(f"r-{n}", "no data", None) for n in range(1, 4)]


async def payloads_alive(pool: concurrent.futures.Executor | None) -> int:
    """How many ``Payload`` objects are still alive once ``pool``'s one worker has dropped
    its last job (it does so after the job's result is set: a no-op job waits for that)."""
    await asyncio.get_running_loop().run_in_executor(pool, int)
    await asyncio.sleep(0)  # the call that resumed the caller holds the last request's task
    gc.collect()
    return sum(isinstance(thing, Payload) for thing in gc.get_objects())


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
class TestToThread:
    """``asyncio.to_thread``: the caller's data, on every setting."""

    @pytest.mark.asyncio
    async def test_sees_its_callers_data(self, policy: Any) -> None:
        """Each request's job sees that request's data; its writes are the request's under
        Share() only (the worker runs in a copy of the caller's contextvars context)."""
        ctx = new_context(policy).attach()
        results = await requests(ctx, lambda: asyncio.to_thread(seen, ctx))
        assert own_ids(isinstance(policy, Share)) == results

    @pytest.mark.asyncio
    async def test_clean_default_executor_keeps_no_request_alive(self, policy: Any) -> None:
        """With a CleanThreadPoolExecutor as the loop's default executor, the workers
        ``to_thread`` started keep no finished request's data alive."""
        ctx = new_context(policy).attach()
        loop = asyncio.get_running_loop()
        with CleanThreadPoolExecutor(1) as pool:
            loop.set_default_executor(pool)
            before = await payloads_alive(None)
            await requests(ctx, lambda: asyncio.to_thread(seen, ctx))
            assert before == await payloads_alive(None)


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
class TestRunInExecutor:
    """``aiocontext.executors.run_in_executor`` on a standard pool made inside a request."""

    @pytest.mark.asyncio
    async def test_each_request_sees_its_own_data(self, policy: Any) -> None:
        """On a one-worker pool the first request created (and so started), each request's
        job sees that request's data and writes only to it."""
        ctx = new_context(policy).attach()
        pools: list[concurrent.futures.ThreadPoolExecutor] = []

        async def work() -> str:
            if not pools:
                pools.append(concurrent.futures.ThreadPoolExecutor(1))
            return await run_in_executor(pools[0], seen, ctx)

        try:
            results = await requests(ctx, work)
            assert own_ids(isinstance(policy, Share)) == results
            assert 0 == await payloads_alive(
                pools[0]
            )  # the worker the first request started holds none
        finally:
            pools[0].shutdown()


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
class TestCleanThreadPoolExecutor:
    """Plain calls on a ``CleanThreadPoolExecutor``: no request's data, on every setting."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("default", [False, True], ids=["given", "default-executor"])
    async def test_plain_run_in_executor_sees_no_request(self, policy: Any, default: bool) -> None:
        """``loop.run_in_executor`` on a clean pool made inside the first request (or as the
        loop's default executor) runs every request's job with no data, and its workers
        keep none alive."""
        ctx = new_context(policy).attach()
        loop = asyncio.get_running_loop()
        pools: list[CleanThreadPoolExecutor] = []

        async def work() -> str:
            if not pools:
                pools.append(CleanThreadPoolExecutor(1))
                if default:
                    loop.set_default_executor(pools[0])
            return await loop.run_in_executor(None if default else pools[0], seen, ctx)

        try:
            results = await requests(ctx, work)
            assert (no_data(), 0) == (results, await payloads_alive(pools[0]))
        finally:
            pools[0].shutdown()

    @pytest.mark.asyncio
    async def test_run_in_executor_passes_the_callers_data(self, policy: Any) -> None:
        """``aiocontext.executors.run_in_executor`` still gives a clean pool's job the
        caller's data."""
        ctx = new_context(policy).attach()
        with CleanThreadPoolExecutor(1) as pool:
            results = await requests(ctx, lambda: run_in_executor(pool, seen, ctx))
        assert own_ids(isinstance(policy, Share)) == results

    def test_plain_submit_sees_no_data(self, policy: Any) -> None:
        """``pool.submit`` from code holding restored data runs the job with none; a job's
        own context writes do not reach the next job on the same worker."""
        ctx = new_context(policy)
        marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

        def mark() -> str:
            before = marker.get()
            marker.set("set by a job")
            return before

        with ctx.restore({"id": "r-1"}), CleanThreadPoolExecutor(1) as pool:
            result = pool.submit(seen, ctx).result()
            marks = [pool.submit(mark).result() for _ in range(2)]
        assert ("no data", ["unset", "unset"]) == (result, marks)


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
class TestPlainThread:
    """A ``threading.Thread`` follows the interpreter's ``thread_inherit_context``."""

    @pytest.mark.asyncio
    async def test_started_in_a_request(self, policy: Any) -> None:
        """A thread a request starts sees that request's data where threads inherit context
        (writing to it under Share() only), and no data where they do not."""
        ctx = new_context(policy).attach()

        async def work() -> str:
            result: list[str] = []
            thread = threading.Thread(target=lambda: result.append(seen(ctx)))
            thread.start()
            await asyncio.to_thread(thread.join, 10)
            return result[0]

        results = await requests(ctx, work)
        assert (own_ids(isinstance(policy, Share)) if INHERITS else no_data()) == results

    @pytest.mark.asyncio
    @pytest.mark.skipif(sys.version_info < (3, 14), reason="Thread(context=...) is new in 3.14")
    async def test_started_with_an_empty_context(self, policy: Any) -> None:
        """``Thread(context=contextvars.Context())`` (3.14+) starts with no data on either
        setting."""
        ctx = new_context(policy).attach()

        async def work() -> str:
            result: list[str] = []
            empty: dict[str, Any] = {"context": contextvars.Context()}  # (3.14+ only)
            thread = threading.Thread(target=lambda: result.append(seen(ctx)), **empty)
            thread.start()
            await asyncio.to_thread(thread.join, 10)
            return result[0]

        assert no_data() == await requests(ctx, work)


class TestStandardPool:
    """Plain calls on a standard ``ThreadPoolExecutor``: the worker's own context."""

    @pytest.mark.asyncio
    async def test_plain_calls_run_in_the_worker_starters_context(self) -> None:
        """Where threads inherit context, a worker keeps a copy of the context of the
        request whose ``submit`` started it, and runs every plain call in it: each request
        sees r-1 (what CleanThreadPoolExecutor is for). Elsewhere no request sees data."""
        ctx = new_context(Copy()).attach()
        pools: list[concurrent.futures.ThreadPoolExecutor] = []

        async def work() -> str:
            if not pools:
                pools.append(concurrent.futures.ThreadPoolExecutor(1))
            return await asyncio.get_running_loop().run_in_executor(pools[0], seen, ctx)

        try:
            results = await requests(ctx, work)
        finally:
            pools[0].shutdown()
        seen_ids = [result[1] for result in results]
        assert (["r-1"] * REQUESTS if INHERITS else ["no data"] * REQUESTS) == seen_ids


@pytest.mark.skipif(not FREE_THREADED, reason="a free-threaded build only")
class TestFreeThreadedBuild:
    """On a free-threaded build the suite runs with the GIL off."""

    def test_the_gil_stays_off_with_every_integration_imported(self) -> None:
        """Importing every framework the integrations and tests use (hiredis, which would
        turn the GIL on, is kept out by conftest) leaves the GIL off."""
        import importlib

        frameworks = ("aiohttp", "arq", "celery", "httpx", "redis", "starlette", "structlog")
        for name in (*frameworks, "uvicorn", "uvloop"):
            importlib.import_module(name)
        assert False is getattr(sys, "_is_gil_enabled", lambda: True)()
