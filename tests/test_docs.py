"""The documentation site's Python examples run as written.

Every fenced ```python block of every page under ``docs/`` runs on its own, in a fresh
namespace. Fragments that cannot run alone are shown with ```{code-block} python instead.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
BLOCKS = [
    pytest.param(page, source, id=f"{page.relative_to(DOCS).as_posix()}:block{number}")
    for page in sorted(DOCS.rglob("*.md"))
    if "_build" not in page.parts
    for number, source in enumerate(FENCE.findall(page.read_text(encoding="utf-8")))
]


def test_the_docs_have_examples() -> None:
    """The pages carry the guide's examples: a dozen at least (the README had 17)."""
    assert 12 <= len(BLOCKS)


@pytest.fixture
def loguru_restored() -> Iterator[None]:
    """A block that configures loguru's one global logger (as its recipe does) leaves it as
    loguru starts: one stderr sink, no patcher in effect (a no-op one: loguru has no public
    way to remove a patcher). The sinks a block added, and their threads, are gone."""
    yield
    if "loguru" in sys.modules:
        from loguru import logger

        logger.remove()
        logger.configure(patcher=lambda record: None)
        logger.add(sys.stderr)


@pytest.mark.parametrize(("page", "source"), BLOCKS)
@pytest.mark.usefixtures("loguru_restored")
def test_docs_block_runs(page: Path, source: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each ```python block of a page runs without error."""
    exec(compile(source, str(page), "exec"), {"__name__": "__docs__"})
