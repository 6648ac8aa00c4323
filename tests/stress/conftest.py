"""Stress-test set-up: the figures each test measured, printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import coverage
import pytest

from stress._support import FULL, STRESS_ENV

_FIGURES = pytest.StashKey[list[str]]()


class Figures:
    """Where a stress test records what it measured (printed in the terminal summary)."""

    def __init__(self, lines: list[str], name: str) -> None:
        self._lines = lines
        self._name = name

    def add(self, text: str) -> None:
        """Record one line of figures for the current test."""
        self._lines.append(f"{self._name}: {text}")


@pytest.fixture
def without_coverage() -> Iterator[None]:
    """Pause coverage measurement, if it runs, for the test.

    For tests that trace memory: coverage's tracer allocates on line events, which
    tracemalloc then traces, so the test ran ten times slower and measured the tracer. (Not
    pytest-cov's ``no_cover`` marker: with ``--no-cov``, pytest-cov 7.1 crashes on it.)
    """
    cov = coverage.Coverage.current()
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        cov.start()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record figures (sizes, memory) for the terminal summary of the run."""
    lines = request.config.stash.setdefault(_FIGURES, [])
    return Figures(lines, request.node.nodeid.rpartition("::")[2])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the recorded figures, and which sizes ran."""
    lines = config.stash.get(_FIGURES, [])
    if not lines:
        return
    sizes = "full sizes" if FULL else f"CI sizes ({STRESS_ENV}=full for the full ones)"
    terminalreporter.section(f"aiocontext stress figures, {sizes}")
    for line in lines:
        terminalreporter.write_line(line)
