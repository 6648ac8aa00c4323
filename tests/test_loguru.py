"""``aiocontext.loguru``: the patcher fills ``record["extra"]``, tested with real loguru sinks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Generator
from typing import Any

import pytest
from loguru import logger

from aiocontext import Context, ContextRegistry, Key
from aiocontext.logging import FieldProvider
from aiocontext.loguru import LoguruPatcher, patcher

TENANT = Key[str]("tenant")


def new_context() -> Context[Any, Any]:
    """A context of the test's own."""
    return Context(name="request", registry=ContextRegistry())


class Calls(FieldProvider):
    """A provider counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    @property
    def names(self) -> tuple[str, ...]:
        return ("calls",)

    def values(self) -> dict[str, object]:
        self.calls += 1
        return {"calls": self.calls}


@pytest.fixture
def lines() -> Generator[list[str]]:
    """The lines a real loguru sink (a list's ``append``) receives; removed afterwards."""
    received: list[str] = []
    sink = logger.add(received.append, format="[{extra[request_id]}] {message}", catch=False)
    yield received
    logger.remove(sink)


class TestPatcher:
    @pytest.mark.asyncio
    async def test_concurrent_tasks_each_log_their_own_values(self, lines: list[str]) -> None:
        """200 tasks, each with its own request id, log before and after awaits, from a child
        task and from a thread: every line carries its task's id."""
        ctx = new_context().attach()
        log = logger.patch(patcher(ctx))

        async def handle(n: int) -> None:
            ctx["request_id"] = f"r-{n}"
            log.info(f"start {n}")
            await asyncio.sleep(0)
            await asyncio.create_task(asyncio.sleep(0))
            await asyncio.gather(asyncio.to_thread(log.info, f"thread {n}"))
            log.info(f"end {n}")

        try:
            async with asyncio.TaskGroup() as group:
                for n in range(200):
                    group.create_task(handle(n))
        finally:
            ctx.detach()
        assert 600 == len(lines)
        for line in lines:
            request_id, _, rest = line.partition("] ")
            assert f"[r-{rest.split()[1]}" == request_id

    def test_outside_any_task_gives_the_default(self, lines: list[str]) -> None:
        """With no loop running, the record gets the default."""
        logger.patch(patcher(new_context())).info("no loop")
        assert ["[-] no loop\n"] == lines

    @pytest.mark.asyncio
    async def test_bound_values_are_kept_unless_overwrite(self, lines: list[str]) -> None:
        """A value bound with ``bind`` or ``contextualize`` wins, unless ``overwrite``."""
        ctx = new_context().attach()
        try:
            ctx["request_id"] = "from-context"
            logger.patch(patcher(ctx)).bind(request_id="bound").info("kept")
            with logger.contextualize(request_id="contextualized"):
                logger.patch(patcher(ctx)).info("kept too")
            logger.patch(patcher(ctx, overwrite=True)).bind(request_id="bound").info("replaced")
        finally:
            ctx.detach()
        assert [
            "[bound] kept\n",
            "[contextualized] kept too\n",
            "[from-context] replaced\n",
        ] == lines

    @pytest.mark.asyncio
    async def test_enqueued_and_serialized_sinks_get_the_callers_values(self) -> None:
        """A sink with ``enqueue=True`` (a worker thread) and ``serialize=True`` gets the
        fields of the task that logged, keys and providers alike, renamed as asked."""
        ctx = new_context().attach()
        received: list[str] = []
        sink = logger.add(received.append, serialize=True, enqueue=True, catch=False)
        log = logger.patch(
            patcher(ctx, {"request_id": "rid", TENANT: "tenant"}, providers=[Calls()])
        )

        async def handle(n: int) -> None:
            ctx["request_id"] = f"r-{n}"
            ctx[TENANT] = f"t-{n}"
            await asyncio.sleep(0)
            log.info(str(n))

        try:
            await asyncio.gather(*(handle(n) for n in range(50)))
            await logger.complete()
        finally:
            logger.remove(sink)
            ctx.detach()
        records = [json.loads(line)["record"] for line in received]
        assert 50 == len(records)
        for record in records:
            n = record["message"]
            assert {"rid": f"r-{n}", "tenant": f"t-{n}"} == {
                name: record["extra"][name] for name in ("rid", "tenant")
            }
        assert set(range(1, 51)) == {record["extra"]["calls"] for record in records}

    def test_configure_applies_it_to_every_record(self, lines: list[str]) -> None:
        """Given to ``logger.configure(patcher=...)``, every record is filled."""
        logger.configure(patcher=patcher(new_context(), default="none"))
        try:
            logger.info("configured")
        finally:
            logger.configure(patcher=lambda record: None)
        assert ["[none] configured\n"] == lines

    def test_repr_context_and_class(self) -> None:
        """``patcher(...)`` is a LoguruPatcher; its repr and context."""
        ctx = new_context()
        made = patcher(ctx, ("user",), default=None)
        assert isinstance(made, LoguruPatcher)
        assert ctx is made.context
        assert (
            f"LoguruPatcher({ctx!r}, fields={{'user': 'user'}}, default=None, overwrite=False)"
            == repr(made)
        )

    def test_bad_arguments_raise(self) -> None:
        """The arguments are checked as for ContextFilter."""
        with pytest.raises(TypeError, match="single key"):
            patcher(new_context(), "request_id")
        with pytest.raises(ValueError, match="fields is empty"):
            patcher(new_context(), ())


def test_the_core_imports_no_loguru() -> None:
    """Neither ``import aiocontext`` nor ``aiocontext.loguru`` itself imports loguru."""
    code = (
        "import sys, aiocontext, aiocontext.logging, aiocontext.loguru; "
        "print(sorted(m for m in sys.modules if m.startswith('loguru')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "[]" == result.stdout.strip()
