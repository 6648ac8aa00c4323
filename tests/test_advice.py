"""The fix advice names what works where the code runs."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from aiocontext._advice import Situation, install_uvloop, no_loop, not_attached, run_with
from conftest import LOOP_FACTORIES


def situation(
    python: tuple[int, int] = (3, 12),
    *,
    uvloop: bool = False,
    plain_thread: bool = False,
    pytest_asyncio: bool = False,
) -> Situation:
    """A situation with the given facts."""
    return Situation(
        python=python, uvloop=uvloop, plain_thread=plain_thread, pytest_asyncio=pytest_asyncio
    )


class TestSituation:
    def test_main_thread_without_loop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """In the main thread with no loop, outside a test: no thread, no test, and uvloop
        counts as the target loop only once it is imported."""
        monkeypatch.delenv("PYTEST_CURRENT_TEST")
        monkeypatch.delitem(sys.modules, "uvloop", raising=False)
        expected = situation(sys.version_info[:2])
        assert expected == Situation.here()
        monkeypatch.setitem(sys.modules, "uvloop", sys)  # any module: only its name counts
        assert situation(sys.version_info[:2], uvloop=True) == Situation.here()

    def test_pytest_asyncio_test(self) -> None:
        """This very test runs under pytest with pytest-asyncio loaded."""
        assert Situation.here().pytest_asyncio

    def test_plain_thread(self) -> None:
        """A worker thread with no loop is a plain thread."""
        seen: list[Situation] = []
        worker = threading.Thread(target=lambda: seen.append(Situation.here()))
        worker.start()
        worker.join()
        assert [True] == [found.plain_thread for found in seen]

    @pytest.mark.parametrize("kind", sorted(LOOP_FACTORIES))
    def test_running_loop(self, kind: str) -> None:
        """On a running loop: the loop's kind decides ``uvloop``, and a thread running a loop
        is no plain thread."""

        async def main() -> Situation:
            return Situation.here()

        def in_thread() -> None:
            with asyncio.Runner(loop_factory=LOOP_FACTORIES[kind]) as runner:
                seen.append(runner.run(main()))

        seen: list[Situation] = []
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
        assert [(kind == "uvloop", False)] == [(s.uvloop, s.plain_thread) for s in seen]

    def test_given_loop(self) -> None:
        """A loop passed explicitly decides ``uvloop`` even when none runs."""
        for kind, factory in LOOP_FACTORIES.items():
            loop = factory()
            try:
                assert (kind == "uvloop") == Situation.here(loop).uvloop
            finally:
                loop.close()


class TestRunWith:
    def test_python_312_uses_asyncio_run(self) -> None:
        """From 3.12, ``asyncio.run`` takes the loop factory."""
        expected = "asyncio.run(main(), loop_factory=aiocontext.loop_factory(request))"
        assert expected == run_with(situation((3, 12)), "request")

    def test_python_311_uses_a_runner(self) -> None:
        """On 3.11, ``asyncio.run`` has no ``loop_factory=``: the advice uses a Runner."""
        advice = run_with(situation((3, 11)))
        assert advice.startswith(
            "with asyncio.Runner(loop_factory=aiocontext.loop_factory(ctx)) as runner: "
            "runner.run(main())"
        )
        assert "asyncio.run(main()" not in advice

    @pytest.mark.parametrize("python", [(3, 11), (3, 13)])
    def test_uvloop_keeps_uvloop(self, python: tuple[int, int]) -> None:
        """On uvloop, the factory's base is uvloop's, so following the advice keeps it."""
        advice = run_with(situation(python, uvloop=True))
        assert "aiocontext.loop_factory(ctx, base=uvloop.new_event_loop)" in advice


class TestNoLoop:
    def test_plain_thread(self) -> None:
        """In a worker thread: carry the data (to_thread, executors, restore), no loop."""
        advice = no_loop(situation(plain_thread=True), "request")
        for fix in ("asyncio.to_thread(", "aiocontext.executors.run_in_executor(",
                    "request.restore(snapshot)", "request.snapshot()"):  # fmt: skip
            assert fix in advice
        assert "loop_factory" not in advice

    def test_main_thread(self) -> None:
        """Elsewhere: run the code in a task, the way this Python and loop allow."""
        expected = "use it from a task on a loop it is attached to: " + run_with(
            situation((3, 11), uvloop=True)
        )
        assert expected == no_loop(situation((3, 11), uvloop=True))

    def test_in_a_test(self) -> None:
        """In a test, also: make it async with the fixture, or restore data for sync code."""
        advice = no_loop(situation(pytest_asyncio=True))
        assert "@pytest.mark.asyncio" in advice
        assert "`aiocontext` fixture" in advice
        assert "with ctx.restore({...}):" in advice


class TestNotAttached:
    def test_outside_tests(self) -> None:
        """Attach in main(), or make the loop with loop_factory for this Python."""
        expected = "attach it before creating tasks: ctx.attach() first thing in main(), or " + (
            run_with(situation((3, 11)))
        )
        assert expected == not_attached(situation((3, 11)))

    @pytest.mark.parametrize("uvloop", [False, True])
    def test_in_a_pytest_asyncio_test(self, uvloop: bool) -> None:
        """In a pytest-asyncio test: attaching as anywhere, and also the plugin's fixture or
        the loop-factories hook."""
        advice = not_attached(situation(uvloop=uvloop, pytest_asyncio=True), "request")
        assert advice.startswith("attach it before creating tasks: request.attach()")
        assert "`aiocontext` fixture" in advice
        assert "aiocontext_contexts" in advice
        base = ", base=uvloop.new_event_loop" if uvloop else ""
        assert "pytest_asyncio_loop_factories(config, item)" in advice
        assert f"aiocontext.loop_factory(request{base})" in advice


class TestInstallUvloop:
    def test_linux(self) -> None:
        """Names this Python's pip, and the extra for a checkout."""
        advice = install_uvloop("linux")
        assert f"{sys.executable} -m pip install uvloop" in advice
        assert '".[uvloop]"' in advice

    def test_windows(self) -> None:
        """uvloop has no Windows build: the advice says to use the stdlib loop."""
        assert "uvloop does not run on Windows: use the stdlib loop (--loop asyncio)" == (
            install_uvloop("win32")
        )


class TestErrorsCarryTheAdvice:
    """The errors a context raises end with the advice for where the code runs."""

    def test_plain_thread_is_told_how_to_carry_data(self) -> None:
        """Reading a context in a plain thread names to_thread, the executors and restore()."""
        from aiocontext import Context, ContextRegistry, EventLoopError

        ctx: Context[str, str] = Context(registry=ContextRegistry())
        messages: list[str] = []

        def read() -> None:
            try:
                ctx["k"]
            except EventLoopError as error:
                messages.append(str(error))

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert 1 == len(messages)
        assert no_loop(situation(plain_thread=True)) in messages[0]

    @pytest.mark.asyncio
    async def test_unattached_loop_in_a_test_names_the_fixture(self) -> None:
        """On a running loop the context is not attached to, inside a pytest-asyncio test,
        the error names the `aiocontext` fixture and the loop-factories hook."""
        from aiocontext import Context, ContextRegistry, TaskContextError

        ctx: Context[str, str] = Context(registry=ContextRegistry())
        with pytest.raises(TaskContextError) as raised:
            ctx["k"]
        assert not_attached(Situation.here()) in str(raised.value)
        assert "`aiocontext` fixture" in str(raised.value)
