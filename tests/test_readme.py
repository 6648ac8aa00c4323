"""The README's Python examples run as written (the docs' are in test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_examples() -> None:
    """The README, an overview, shows the smallest working example; the guide is in docs/."""
    assert 1 <= len(BLOCKS)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each ```python block of the README runs without error."""
    exec(compile(source, str(README), "exec"), {"__name__": "__readme__"})


def test_first_example_prints_one_line_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    """The smallest example prints each request's own id from its sub-task."""
    exec(compile(BLOCKS[0], str(README), "exec"), {"__name__": "__readme__"})
    assert ["audit for request r-1", "audit for request r-2"] == sorted(
        capsys.readouterr().out.splitlines()
    )
