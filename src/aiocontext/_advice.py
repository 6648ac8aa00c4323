"""Fix advice that fits where the code runs: the Python, the event loop, the thread, a test.

An error's message should name a fix that works *here*: ``asyncio.run(...,
loop_factory=...)`` only exists from Python 3.12, on uvloop the loop factory must keep
making uvloop loops, a plain thread needs the caller's data carried to it rather than a
loop, and a pytest-asyncio test has a fixture and a hook made for the purpose. A
:class:`Situation` records those facts once; the functions below turn it into the sentence
an error message ends with.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import attrs

__all__ = ["Situation", "install_uvloop", "no_loop", "not_attached", "run_with"]


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    """Is ``loop`` one of uvloop's (found without importing uvloop)?"""
    return type(loop).__module__.partition(".")[0] == "uvloop"


@attrs.frozen
class Situation:
    """The facts the advice depends on.

    Attributes:
        python: ``(major, minor)`` of the running Python.
        uvloop: the code runs on a uvloop loop, or, with no loop running, uvloop is imported
            (so the loop the fix makes should be uvloop's too).
        plain_thread: no loop runs and this is not the main thread: a worker thread.
        pytest_asyncio: a pytest test is running with pytest-asyncio loaded.

    Example:
        >>> Situation(python=(3, 11), uvloop=False, plain_thread=False, pytest_asyncio=False)
        Situation(python=(3, 11), uvloop=False, plain_thread=False, pytest_asyncio=False)
    """

    python: tuple[int, int]
    uvloop: bool
    plain_thread: bool
    pytest_asyncio: bool

    @classmethod
    def here(cls, loop: asyncio.AbstractEventLoop | None = None) -> Situation:
        """The situation of the calling code.

        Args:
            loop: the loop the code runs on; ``None`` means the running loop, if any.

        Returns:
            The facts, found without importing anything optional.
        """
        if loop is None:
            loop = asyncio._get_running_loop()
        return cls(
            python=(sys.version_info.major, sys.version_info.minor),
            uvloop=_is_uvloop(loop) if loop is not None else "uvloop" in sys.modules,
            plain_thread=loop is None and threading.current_thread() is not threading.main_thread(),
            pytest_asyncio="PYTEST_CURRENT_TEST" in os.environ and "pytest_asyncio" in sys.modules,
        )


def run_with(situation: Situation, ctx: str = "ctx") -> str:
    """How to run ``main()`` on a loop the context is attached to from the start.

    Args:
        situation: where the code runs.
        ctx: how the context is spelled in the advice.

    Returns:
        ``asyncio.run(..., loop_factory=...)`` from Python 3.12, an ``asyncio.Runner`` on
        3.11; the factory makes uvloop loops when the code is on uvloop.
    """
    base = ", base=uvloop.new_event_loop" if situation.uvloop else ""
    factory = f"aiocontext.loop_factory({ctx}{base})"
    if situation.python >= (3, 12):
        return f"asyncio.run(main(), loop_factory={factory})"
    return (
        f"with asyncio.Runner(loop_factory={factory}) as runner: runner.run(main()) "
        "(asyncio.run() takes loop_factory= from Python 3.12)"
    )


def no_loop(situation: Situation, ctx: str = "ctx") -> str:
    """The fix when a context is used with no data and no running loop.

    Args:
        situation: where the code runs.
        ctx: how the context is spelled in the advice.

    Returns:
        For a worker thread, the ways to carry the caller's data into it; else how to run
        the code in a task, and, in a test, how synchronous code gets data.
    """
    if situation.plain_thread:
        return (
            "this is a plain thread: start it from a task with asyncio.to_thread(func) or "
            "aiocontext.executors.run_in_executor(pool, func), which carry the task's data "
            f"into it, or give it data with `with {ctx}.restore(snapshot):` "
            f"(snapshot = {ctx}.snapshot(), taken in the task)"
        )
    advice = f"use it from a task on a loop it is attached to: {run_with(situation, ctx)}"
    if situation.pytest_asyncio:
        advice += (
            "; in a test, make it async (@pytest.mark.asyncio) and request the `aiocontext` "
            f"fixture, or give synchronous code data with `with {ctx}.restore({{...}}):`"
        )
    return advice


def not_attached(situation: Situation, ctx: str = "ctx") -> str:
    """The fix when a context is used on a running loop it is not attached to.

    Args:
        situation: where the code runs.
        ctx: how the context is spelled in the advice.

    Returns:
        Attaching in ``main()`` or making the loop with ``loop_factory``; in a pytest-asyncio
        test, also the plugin's fixture and the loop-factories hook.
    """
    advice = (
        f"attach it before creating tasks: {ctx}.attach() first thing in main(), or "
        f"{run_with(situation, ctx)}"
    )
    if situation.pytest_asyncio:
        base = ", base=uvloop.new_event_loop" if situation.uvloop else ""
        advice += (
            "; in a pytest-asyncio test, request the `aiocontext` fixture (name the context in "
            "the aiocontext_contexts option or fixture), or attach it to every test's loop "
            "with a pytest_asyncio_loop_factories(config, item) hook in conftest.py returning "
            f'{{"asyncio": aiocontext.loop_factory({ctx}{base})}}'
        )
    return advice


def install_uvloop(platform: str = sys.platform) -> str:
    """What to do when uvloop was asked for and cannot be imported.

    Args:
        platform: ``sys.platform`` of the machine.

    Returns:
        How to install it for the running Python, or that Windows has none.
    """
    if platform == "win32":
        return "uvloop does not run on Windows: use the stdlib loop (--loop asyncio)"
    return (
        f"uvloop is not installed for {sys.executable}: "
        f"{sys.executable} -m pip install uvloop (from a checkout of aiocontext: "
        'pip install -e ".[uvloop]")'
    )
