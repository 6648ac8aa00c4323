"""Sphinx configuration of the aiocontext documentation (MyST Markdown, Furo)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from sphinx.application import Sphinx

project = "aiocontext"
author = "the aiocontext authors"
copyright = "the aiocontext authors"  # noqa: A001 - Sphinx reads this name
release = importlib.metadata.version("aiocontext")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# No network while building: standard-library names are not linked.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "furo"
html_title = f"aiocontext {release}"

# Pages other work adds (design.md, threads.md, integrations/*.md) are listed in the tables
# of contents before they exist. An entry naming no page would be a warning, hence an error
# under -W: drop such entries from the source before it is parsed.
DOCS = Path(__file__).parent
TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```$", re.M | re.S)


def _exists(folder: Path, entry: str) -> bool:
    """Does a toctree entry (a page, or a glob with ``:glob:``) name at least one page?"""
    if entry.startswith(":") or "<" in entry or "://" in entry:
        return True  # an option, an explicit title or a link: not ours to judge
    return any(folder.glob(entry + ".md")) or any(folder.glob(entry + ".rst"))


def _drop_absent_pages(app: Sphinx, docname: str, source: list[str]) -> None:
    """``source-read`` handler: remove toctree entries that name no page."""
    folder = (DOCS / docname).parent

    def keep(match: re.Match[str]) -> str:
        lines = match.group(1).splitlines()
        kept = [line for line in lines if not line.strip() or _exists(folder, line.strip())]
        return "```{toctree}\n" + "".join(line + "\n" for line in kept) + "```"

    source[0] = TOCTREE.sub(keep, source[0])


def setup(app: Sphinx) -> None:
    """Register the handler above."""
    app.connect("source-read", _drop_absent_pages)
