"""Threads under load: loops in several threads sharing contexts, with attach/detach churn.

Made for free-threaded builds (the GIL off: CI runs it on 3.14t), it holds on every build.
``THREADS`` threads each run a loop (stdlib or uvloop) with one context per built-in policy
attached; the same four ``Context`` objects serve every loop. Each loop runs its requests in
batches, each request a root task with data of its own (``context=contextvars.Context()``)
that sets its id in every context and then reads it back through each way work leaves a
task: a ``call_soon`` callback, ``asyncio.to_thread``, ``aiocontext.executors.run_in_executor``
on a thread pool all threads share, a child task. A plain ``loop.run_in_executor`` on a shared
:class:`~aiocontext.executors.CleanThreadPoolExecutor` must see no data at all. Workers and
the child write a key each; the request writes ``WRITES`` keys of its own between awaits.

Meanwhile another thread keeps attaching four other contexts to every running loop and
detaching them again, from outside those loops, while each request writes and reads those
too: there, ``TaskContextError`` (detached at that moment) is the one allowed answer.

Counted over the run, and all zero: crossed values (an id not the request's own, data where
there must be none, a write that reached a request under a policy that does not pass
writes up), lost writes (the request's own, and under ``Share()`` its workers' and child's),
and errors (any exception in a request or in the churn thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs
import pytest

from aiocontext import Context, EventLoopError, TaskContextError, loop_factory
from aiocontext.executors import CleanThreadPoolExecutor, run_in_executor
from stress._support import LOOP_KINDS, POLICIES, new_loop, size
from stress.conftest import Figures

THREADS: Final = size(ci=4, full=16)
#: Requests per thread, and how many of them run at once on a loop.
REQUESTS: Final = size(ci=120, full=1_000)
BATCH: Final = 20
#: Keys each request writes itself, in every context.
WRITES: Final = size(ci=10, full=50)
#: What a reader reports where a context has no data.
NO_DATA: Final = "<no data>"
#: Where the workers and the child write (under Share() these reach the request).
WRITERS: Final = ("thread", "pool", "child")


@attrs.define
class Tally:
    """What one loop's requests counted (kept by the loop's thread only)."""

    checks: int = 0
    crossed: list[str] = attrs.Factory(list)
    lost: list[str] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)

    def expect(self, what: str, expected: object, actual: object) -> None:
        """Count one check; a mismatch is a crossed value."""
        self.checks += 1
        if expected != actual:
            self.crossed.append(f"{what}: expected {expected!r}, saw {actual!r}")


@attrs.frozen
class Run:
    """One stress run: the shared contexts, pools and churn."""

    contexts: tuple[Context[str, Any], ...] = attrs.field(
        factory=lambda: tuple(Context(p, name=f"threads-{n}") for n, p in POLICIES.items())
    )
    churned: tuple[Context[str, Any], ...] = attrs.field(
        factory=lambda: tuple(Context(p, name=f"churn-{n}") for n, p in POLICIES.items())
    )
    pool: concurrent.futures.ThreadPoolExecutor = attrs.field(
        factory=lambda: concurrent.futures.ThreadPoolExecutor(4)
    )
    clean: CleanThreadPoolExecutor = attrs.field(factory=lambda: CleanThreadPoolExecutor(4))
    #: Whether requests write and read the churned contexts too.
    touch: bool = False
    loops: list[asyncio.AbstractEventLoop] = attrs.Factory(list)
    #: Held while churning a loop, and to take a loop out before it closes.
    loops_lock: threading.Lock = attrs.Factory(threading.Lock)

    def read(self) -> list[str]:
        """The id each context holds here, or NO_DATA."""
        seen = []
        for ctx in self.contexts:
            try:
                seen.append(ctx["id"])
            except EventLoopError:
                seen.append(NO_DATA)
        return seen

    def read_and_write(self, writer: str) -> list[str]:
        """Read the ids, then write ``writer`` in every context."""
        seen = self.read()
        for ctx in self.contexts:
            ctx[writer] = seen[0]
        return seen

    async def request(self, tag: str, tally: Tally) -> None:
        """One request: set the id, read it back everywhere, write, check."""
        loop = asyncio.get_running_loop()
        for ctx in self.contexts:
            ctx["id"] = tag
        called: asyncio.Future[list[str]] = loop.create_future()
        loop.call_soon(lambda: called.set_result(self.read()))
        own = [tag] * len(self.contexts)
        tally.expect("callback", own, await called)
        tally.expect("to_thread", own, await asyncio.to_thread(self.read_and_write, "thread"))
        seen = await run_in_executor(self.pool, self.read_and_write, "pool")
        tally.expect("run_in_executor", own, seen)
        plain = await loop.run_in_executor(self.clean, self.read)
        tally.expect("plain run_in_executor", [NO_DATA] * len(self.contexts), plain)
        tally.expect("child", own, await asyncio.create_task(self.child()))
        if self.touch:
            self.touch_churned(tag, tally)
        for index in range(WRITES):
            for ctx in self.contexts:
                ctx[f"own-{index}"] = index
            await asyncio.sleep(0)
        self.check_writes(tag, tally)

    def touch_churned(self, tag: str, tally: Tally) -> None:
        """Write and read the id in each churned context: TaskContextError while it is
        detached from this loop is the documented answer; anything else is an error."""
        for ctx in self.churned:
            try:
                ctx["id"] = tag
            except TaskContextError:
                tally.checks += 1
            else:
                tally.expect("churned context", tag, ctx["id"])

    async def child(self) -> list[str]:
        """A child task: reads, yields, writes."""
        seen = self.read()
        await asyncio.sleep(0)
        self.read_and_write("child")
        return seen

    def check_writes(self, tag: str, tally: Tally) -> None:
        """The request's own writes are all there; its workers' only under Share()."""
        for ctx, policy in zip(self.contexts, POLICIES, strict=True):
            missing = [i for i in range(WRITES) if ctx.get(f"own-{i}") != i]
            tally.checks += WRITES
            tally.lost += [f"{policy}: own-{i} of {tag}" for i in missing]
            for writer in WRITERS:
                value = ctx.get(writer)
                tally.checks += 1
                if policy == "Share" and value != tag:
                    tally.lost.append(f"Share: {writer} of {tag} is {value!r}")
                elif policy != "Share" and value is not None:
                    tally.crossed.append(f"{policy}: {writer}'s write reached {tag}")

    async def serve(self, thread: int) -> Tally:
        """All of one thread's requests, BATCH at a time, each with data of its own."""
        tally = Tally()
        loop = asyncio.get_running_loop()
        with self.loops_lock:
            self.loops.append(loop)
        for first in range(0, REQUESTS, BATCH):
            requests = [
                asyncio.create_task(
                    self.request(f"t{thread}-r{number}", tally), context=contextvars.Context()
                )
                for number in range(first, min(first + BATCH, REQUESTS))
            ]
            results = await asyncio.gather(*requests, return_exceptions=True)
            tally.errors += [repr(result) for result in results if result is not None]
        with self.loops_lock:  # no churn on a loop about to close
            self.loops.remove(loop)
        return tally

    def churn(self, stop: threading.Event, errors: list[str]) -> int:
        """Attach and detach the churned contexts on every running loop until ``stop``."""
        operations = 0
        while not stop.is_set():
            with self.loops_lock:
                for loop in self.loops:
                    for ctx in self.churned:
                        try:
                            ctx.attach(loop)
                            ctx.detach(loop)
                        except Exception as error:  # counted: the test asserts there are none
                            errors.append(f"churn: {error!r}")
                        operations += 2
            time.sleep(0)
        return operations


@pytest.fixture(params=[False, True], ids=["untouched", "touched"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """A stress run (whose requests use the churned contexts too, or not); its pools are
    shut down afterwards."""
    stress_run = Run(touch=request.param)
    with stress_run.pool, stress_run.clean:
        yield stress_run


class TestThreadsSharingContexts:
    """Loops in several threads share contexts of every policy without a crossed value."""

    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_no_crossed_values_lost_writes_or_errors(
        self, kind: str, run: Run, figures: Figures
    ) -> None:
        """THREADS loops, each serving REQUESTS requests through callbacks, to_thread, a
        shared pool, a clean pool and child tasks, while another thread churns attach and
        detach on every loop: 0 crossed values, 0 lost writes, 0 errors."""
        make_loop: Callable[[], asyncio.AbstractEventLoop] = functools.partial(new_loop, kind)
        start = threading.Barrier(THREADS)
        stop = threading.Event()
        churn_errors: list[str] = []

        def serve(thread: int) -> Tally:
            start.wait()
            with asyncio.Runner(loop_factory=loop_factory(*run.contexts, base=make_loop)) as r:
                return r.run(run.serve(thread))

        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(THREADS + 1) as threads:
            churn = threads.submit(run.churn, stop, churn_errors)
            try:
                tallies = list(threads.map(serve, range(THREADS)))
            finally:
                stop.set()
            churned = churn.result()
        elapsed = time.perf_counter() - began

        crossed = [line for tally in tallies for line in tally.crossed]
        lost = [line for tally in tallies for line in tally.lost]
        errors = churn_errors + [line for tally in tallies for line in tally.errors]
        checks = sum(tally.checks for tally in tallies)
        figures.add(
            f"{THREADS} threads x {REQUESTS:,} requests x {len(run.contexts)} contexts, "
            f"{churned:,} attach/detach from another thread: {checks:,} checks, "
            f"{len(crossed)} crossed, {len(lost)} lost, {len(errors)} errors, {elapsed:.1f} s"
        )
        assert ([], [], []) == (crossed[:5], lost[:5], errors[:5])
        assert checks >= THREADS * REQUESTS * len(run.contexts) * (WRITES + len(WRITERS))
