"""Tests for ``aiocontext.executors``: context data in thread pools and process pools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio

from aiocontext import Context, ContextRegistry, EventLoopError, Share, TaskContextError
from aiocontext.executors import CleanThreadPoolExecutor, run_in_executor, run_in_process, submit

# Module globals, so that process pool workers find them (by name, in this module).
REQUEST: Context[str, Any] = Context(name="test_executors.REQUEST", registry=ContextRegistry())
SHARED: Context[str, Any] = Context(
    Share(), name="test_executors.SHARED", registry=REQUEST.registry
)
NOT_HERE: Context[str, Any] = Context(name="a context json.dumps does not know")


def read(key: str) -> Any:
    """The worker: the calling code's value for ``key``."""
    return REQUEST[key]


def read_both(key: str, *, shared_key: str) -> tuple[Any, Any, int]:
    """The worker: a value from each context, and the worker's process id."""
    return REQUEST[key], SHARED[shared_key], os.getpid()


def write(key: str, value: Any) -> dict[str, Any]:
    """The worker: writes ``key``, returns the data it then sees."""
    REQUEST[key] = value
    return dict(REQUEST)


def fail(message: str) -> None:
    """The worker: raises."""
    raise ValueError(message)


def read_at(barrier: threading.Barrier) -> Any:
    """The worker: waits until every caller's worker runs, then reads ``id``."""
    barrier.wait()
    return REQUEST["id"]


@pytest.fixture
def threads() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """A thread pool of 8 workers."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


@pytest.fixture(scope="module")
def processes() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A process pool of 2 workers, shared by the module's tests (starting one is slow).

    ``spawn``: forking a process that runs threads is unsafe (and deprecated in 3.12+).
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        yield pool


@pytest_asyncio.fixture
async def attached() -> None:
    """Attach the contexts to the test's loop: the test has data."""
    REQUEST.attach()
    SHARED.attach()


def blocked_pool() -> tuple[concurrent.futures.ThreadPoolExecutor, threading.Event]:
    """A one-worker pool whose worker is busy until the event is set."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    release = threading.Event()
    pool.submit(release.wait)
    return pool, release


class TestRunInExecutor:
    """``run_in_executor``: a coroutine's call in any executor, with its context."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("use_default", [False, True], ids=["thread-pool", "default"])
    async def test_the_function_sees_the_callers_data(
        self, threads: concurrent.futures.ThreadPoolExecutor, use_default: bool
    ) -> None:
        """In a given thread pool, and in the loop's default executor (``None``)."""
        REQUEST.attach()
        REQUEST["id"] = "r-1"
        assert "r-1" == await run_in_executor(None if use_default else threads, read, "id")

    @pytest.mark.asyncio
    async def test_plain_loop_run_in_executor_does_not(self) -> None:
        """What it fixes: ``loop.run_in_executor`` runs the function in the worker's own
        context, without the caller's (a CleanThreadPoolExecutor worker's is empty on every
        setting of thread_inherit_context; see tests/test_threads.py for a standard pool's)."""
        REQUEST.attach()
        REQUEST["id"] = "r-1"
        with CleanThreadPoolExecutor(max_workers=8) as pool, pytest.raises(EventLoopError):
            await asyncio.get_running_loop().run_in_executor(pool, read, "id")

    @pytest.mark.asyncio
    async def test_passes_positional_and_keyword_arguments(
        self, threads: concurrent.futures.ThreadPoolExecutor, attached: None
    ) -> None:
        """Keyword arguments reach the function, which ``loop.run_in_executor`` cannot do."""
        REQUEST["id"], SHARED["user"] = "r-2", "ann"
        value, user, _ = await run_in_executor(threads, read_both, "id", shared_key="user")
        assert ("r-2", "ann") == (value, user)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("context", [REQUEST, SHARED], ids=["Copy", "Share"])
    async def test_writes_behave_as_with_to_thread(
        self, threads: concurrent.futures.ThreadPoolExecutor, context: Context[str, Any]
    ) -> None:
        """The worker's writes behave as in ``asyncio.to_thread``: under Copy() they stay the
        worker's, under Share() they are the caller's."""
        context.attach()
        context["id"] = "r-3"

        def write_to(key: str) -> dict[str, Any]:
            context[key] = "written"
            return dict(context)

        assert {"id": "r-3", "by_to_thread": "written"} == await asyncio.to_thread(
            write_to, "by_to_thread"
        )
        assert (
            "written"
            == (await run_in_executor(threads, write_to, "by_run_in_executor"))[
                "by_run_in_executor"
            ]
        )
        if context.policy == Share():
            expected = {"id": "r-3", "by_to_thread": "written", "by_run_in_executor": "written"}
        else:
            expected = {"id": "r-3"}
        assert expected == dict(context)

    @pytest.mark.asyncio
    async def test_concurrent_callers_each_see_their_own_data(
        self, threads: concurrent.futures.ThreadPoolExecutor, attached: None
    ) -> None:
        """Eight tasks in eight threads at once: each worker sees its own caller's data."""
        barrier = threading.Barrier(8, timeout=30)

        async def call(number: int) -> Any:
            REQUEST["id"] = number
            return await run_in_executor(threads, read_at, barrier)

        assert list(range(8)) == await asyncio.gather(*map(call, range(8)))

    @pytest.mark.asyncio
    async def test_errors_propagate(
        self, threads: concurrent.futures.ThreadPoolExecutor, attached: None
    ) -> None:
        """An exception in the worker is raised where the future is awaited."""
        with pytest.raises(ValueError, match="^boom$"):
            await run_in_executor(threads, fail, "boom")

    @pytest.mark.asyncio
    async def test_cancelling_a_waiting_call_cancels_it(self, attached: None) -> None:
        """Cancelled before a worker picked it up, the function never runs."""
        pool, release = blocked_pool()
        calls: list[str] = []
        future = run_in_executor(pool, calls.append, "ran")
        future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await future
        await asyncio.sleep(0)  # asyncio passes the cancellation on in a done callback
        release.set()
        pool.shutdown(wait=True)
        assert [] == calls

    @pytest.mark.asyncio
    async def test_cancelling_the_caller_cancels_the_call(self, attached: None) -> None:
        """A task awaiting the call is cancellable, and the queued call goes with it."""
        pool, release = blocked_pool()
        calls: list[str] = []

        async def call() -> None:
            await run_in_executor(pool, calls.append, "ran")

        task = asyncio.create_task(call())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        pool.shutdown(wait=True)
        assert [] == calls

    @pytest.mark.asyncio
    async def test_refuses_process_pools(
        self, processes: concurrent.futures.ProcessPoolExecutor
    ) -> None:
        """contextvars cannot reach another process: the error says what to use instead."""
        with pytest.raises(TypeError) as error:
            run_in_executor(processes, read, "id")
        assert (
            "run_in_executor() cannot give ProcessPoolExecutor workers the caller's context: "
            "contextvars do not cross into another process. Use `await "
            "aiocontext.executors.run_in_process(executor, [ctx], func, *args)`: it sends "
            "ctx.snapshot() along and restores it in the worker"
        ) == str(error.value)

    @pytest.mark.asyncio
    async def test_rejects_what_is_not_an_executor_or_callable(self) -> None:
        """Wrong arguments fail at the call, not later in a worker."""
        with pytest.raises(TypeError, match="needs a concurrent.futures.Executor .* got str"):
            run_in_executor("pool", read, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match=r"^run_in_executor\(\) needs a callable, got int 3$"):
            run_in_executor(None, 3, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType, reportCallIssue]

    def test_needs_a_running_loop(self, threads: concurrent.futures.ThreadPoolExecutor) -> None:
        """Called outside a loop, it says to use ``submit``."""
        with pytest.raises(EventLoopError) as error:
            run_in_executor(threads, read, "id")
        assert (
            "run_in_executor() needs a running event loop: await it from a coroutine (from "
            "synchronous code, use aiocontext.executors.submit(executor, func, ...))"
        ) == str(error.value)


class TestSubmit:
    """``submit``: synchronous code's call in any executor, with its context."""

    def test_the_function_sees_the_callers_data(
        self, threads: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        """Outside any loop, in data restored from a snapshot."""
        with REQUEST.restore({"id": "r-1"}):
            assert "r-1" == submit(threads, read, "id").result()

    def test_plain_submit_does_not(self) -> None:
        """What it fixes: ``executor.submit`` runs the function in the worker's own context,
        without the caller's (a CleanThreadPoolExecutor worker's: empty on every setting)."""
        with REQUEST.restore({"id": "r-1"}), CleanThreadPoolExecutor(max_workers=8) as pool:
            with pytest.raises(EventLoopError):
                pool.submit(read, "id").result()

    @pytest.mark.asyncio
    async def test_from_synchronous_code_in_a_task(
        self, threads: concurrent.futures.ThreadPoolExecutor, attached: None
    ) -> None:
        """A synchronous helper called by a task passes on the task's data."""
        REQUEST["id"], SHARED["user"] = "r-2", "ann"

        def helper() -> concurrent.futures.Future[tuple[Any, Any, int]]:
            return submit(threads, read_both, "id", shared_key="user")

        value, user, _ = await asyncio.wrap_future(helper())
        assert ("r-2", "ann") == (value, user)

    def test_concurrent_callers_each_see_their_own_data(
        self, threads: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        """Four threads with data of their own, each submitting: no cross-talk."""
        barrier = threading.Barrier(4, timeout=30)

        def call(number: int) -> Any:
            with REQUEST.restore({"id": number}):
                return submit(threads, read_at, barrier).result()

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as callers:
            assert [0, 1, 2, 3] == list(callers.map(call, range(4)))

    def test_errors_propagate(self, threads: concurrent.futures.ThreadPoolExecutor) -> None:
        """An exception in the worker is the future's exception."""
        with pytest.raises(ValueError, match="^boom$"):
            submit(threads, fail, "boom").result()

    def test_cancelling_a_waiting_call_cancels_it(self) -> None:
        """Cancelled before a worker picked it up, the function never runs."""
        pool, release = blocked_pool()
        calls: list[str] = []
        future = submit(pool, calls.append, "ran")
        assert future.cancel()
        release.set()
        pool.shutdown(wait=True)
        assert [] == calls

    def test_refuses_process_pools(self, processes: concurrent.futures.ProcessPoolExecutor) -> None:
        """The error says how to carry the data by hand."""
        with pytest.raises(TypeError) as error:
            submit(processes, read, "id")
        assert (
            "submit() cannot give ProcessPoolExecutor workers the caller's context: contextvars "
            "do not cross into another process. Pass ctx.snapshot() to func and wrap its body "
            "in `with ctx.restore(snapshot):` (or, from a coroutine, use "
            "aiocontext.executors.run_in_process(executor, [ctx], func, *args))"
        ) == str(error.value)

    def test_rejects_what_is_not_an_executor_or_callable(self) -> None:
        """``None`` has no meaning without a loop; the rest as for ``run_in_executor``."""
        with pytest.raises(TypeError, match=r"^submit\(\) needs an executor, got None: "):
            submit(None, read, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="needs a concurrent.futures.Executor .* got str"):
            submit("pool", read, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


class TestRunInProcess:
    """``run_in_process``: a call in a process pool with snapshots of the caller's data."""

    @pytest.mark.asyncio
    async def test_the_worker_sees_a_snapshot_of_the_callers_data(
        self, processes: concurrent.futures.ProcessPoolExecutor, attached: None
    ) -> None:
        """Several contexts, positional and keyword arguments, in another process."""
        REQUEST["id"], SHARED["user"] = "r-1", "ann"
        value, user, pid = await run_in_process(
            processes, [REQUEST, SHARED], read_both, "id", shared_key="user"
        )
        assert ("r-1", "ann") == (value, user)
        assert os.getpid() != pid

    @pytest.mark.asyncio
    async def test_the_worker_writes_to_a_private_copy(
        self, processes: concurrent.futures.ProcessPoolExecutor, attached: None
    ) -> None:
        """Writes in the worker stay there."""
        REQUEST["id"] = "r-2"
        assert {"id": "r-2", "w": 1} == await run_in_process(processes, (REQUEST,), write, "w", 1)
        assert {"id": "r-2"} == dict(REQUEST)

    @pytest.mark.asyncio
    async def test_concurrent_callers_each_send_their_own_data(
        self, processes: concurrent.futures.ProcessPoolExecutor, attached: None
    ) -> None:
        """Six tasks sharing two worker processes: each call sees its own caller's data."""

        async def call(number: int) -> Any:
            REQUEST["id"] = number
            return await run_in_process(processes, [REQUEST], read, "id")

        assert list(range(6)) == await asyncio.gather(*map(call, range(6)))

    @pytest.mark.asyncio
    async def test_errors_propagate(
        self, processes: concurrent.futures.ProcessPoolExecutor, attached: None
    ) -> None:
        """An exception in the worker comes back and is raised where the future is awaited."""
        with pytest.raises(ValueError, match="^boom$"):
            await run_in_process(processes, [REQUEST], fail, "boom")

    @pytest.mark.asyncio
    async def test_works_in_thread_pools_too(
        self, threads: concurrent.futures.ThreadPoolExecutor, attached: None
    ) -> None:
        """With the same private-copy semantics."""
        REQUEST["id"] = "r-3"
        assert {"id": "r-3", "w": 1} == await run_in_process(threads, [REQUEST], write, "w", 1)
        assert {"id": "r-3"} == dict(REQUEST)

    @pytest.mark.asyncio
    async def test_a_context_must_be_a_global_of_the_functions_module(
        self, processes: concurrent.futures.ProcessPoolExecutor, attached: None
    ) -> None:
        """The worker finds a context by its name there: elsewhere, the error says so."""
        NOT_HERE.attach()
        with pytest.raises(TypeError) as error:
            run_in_process(processes, [NOT_HERE], json.dumps, 1)
        assert (
            f"run_in_process() sends {NOT_HERE!r} to the worker by the name it has in the "
            f"module of {json.dumps!r} (json), but it is not a global there: pass a "
            f"module-level function of a module that defines or imports the context "
            f"(from ... import <context>)"
        ) == str(error.value)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("contexts", "message"),
        [
            (REQUEST, "takes an iterable of contexts, such as [request], got Context "),
            ("REQUEST", "takes an iterable of contexts, such as [request], got str 'REQUEST'"),
            (None, "takes an iterable of contexts, such as [request], got NoneType None"),
            (["REQUEST"], "takes an iterable of aiocontext.Context objects, got str 'REQUEST'"),
        ],
        ids=["a-context", "a-string", "none", "a-string-inside"],
    )
    async def test_contexts_must_be_an_iterable_of_contexts(
        self, threads: concurrent.futures.ThreadPoolExecutor, contexts: Any, message: str
    ) -> None:
        """A single context (a mapping, so iterable) is refused like any non-iterable."""
        with pytest.raises(TypeError) as error:
            run_in_process(threads, contexts, read, "id")
        assert str(error.value).startswith(f"run_in_process() {message}")

    @pytest.mark.asyncio
    async def test_a_context_without_data_raises(
        self, processes: concurrent.futures.ProcessPoolExecutor
    ) -> None:
        """As ``ctx.snapshot()`` does, in the caller (the context is not attached here)."""
        with pytest.raises(TaskContextError):
            run_in_process(processes, [REQUEST], read, "id")

    @pytest.mark.asyncio
    async def test_rejects_what_is_not_an_executor_or_callable(self) -> None:
        """As ``run_in_executor`` does; process pools are what it is for."""
        with pytest.raises(TypeError, match="needs a concurrent.futures.Executor .* got str"):
            run_in_process("pool", [], read, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match=r"^run_in_process\(\) needs a callable, got int 3$"):
            run_in_process(None, [], 3, "id")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType, reportCallIssue]

    def test_needs_a_running_loop(self, threads: concurrent.futures.ThreadPoolExecutor) -> None:
        """Called outside a loop, it says what synchronous code does instead."""
        with pytest.raises(EventLoopError) as error:
            run_in_process(threads, [REQUEST], read, "id")
        assert (
            "run_in_process() needs a running event loop: await it from a coroutine (from "
            "synchronous code, pass ctx.snapshot() to func and wrap its body in "
            "`with ctx.restore(snapshot):`)"
        ) == str(error.value)
