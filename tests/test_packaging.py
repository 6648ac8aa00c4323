"""What the installed distribution says about itself: its version has one source."""

from __future__ import annotations

import importlib.metadata
import re

import aiocontext


class TestVersion:
    def test_version_is_the_distributions(self) -> None:
        """``aiocontext.__version__`` is the version the installed distribution declares
        (hatch reads it from ``__init__.py``, so the two cannot drift)."""
        assert importlib.metadata.version("aiocontext") == aiocontext.__version__

    def test_version_is_pep_440(self) -> None:
        """The version is a PEP 440 public version, as PyPI requires."""
        pattern = r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?"
        assert re.fullmatch(pattern, aiocontext.__version__), aiocontext.__version__
