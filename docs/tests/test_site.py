"""The built documentation site, rendered in headless Chromium (run by ``.ci/docs``).

Needs the site built into ``docs/_build/html`` (or ``AIOCONTEXT_DOCS_HTML``) and Chromium
(``AIOCONTEXT_CHROMIUM``, else ``chromium`` on ``PATH``). Each page is loaded from disk and its
DOM dumped after scripts ran; no network is used.
"""

from __future__ import annotations

import functools
import html
import importlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import aiocontext

DOCS = Path(__file__).parent.parent
SITE = Path(os.environ.get("AIOCONTEXT_DOCS_HTML", DOCS / "_build" / "html"))
PAGES = sorted(
    page.relative_to(DOCS).with_suffix(".html").as_posix()
    for page in DOCS.rglob("*.md")
    if "_build" not in page.parts
)
MODULES = ["aiocontext"] + [
    f"aiocontext.{name}"
    for name in (
        "aiohttp", "arq", "asgi", "celery", "executors", "httpx", "logging", "propagation",
        "pytest",
    )
]  # fmt: skip
PUBLIC = [
    f"{module}.{name}" for module in MODULES for name in importlib.import_module(module).__all__
]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    """The Chromium binary to use."""
    found = os.environ.get("AIOCONTEXT_CHROMIUM") or shutil.which("chromium")
    assert found, "Chromium is needed: apt-get install chromium (.ci/docs does it)"
    return found


@functools.cache
def render(page: str) -> str:
    """The DOM of ``page`` of the built site once Chromium loaded it and ran its scripts."""
    target = SITE / page
    assert target.is_file(), f"{target} was not built: run .ci/docs"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", target.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert 0 == result.returncode, result.stderr[-2000:]
    return result.stdout


def test_every_page_is_checked() -> None:
    """The site has the pages of the guide, the recipes and the reference."""
    assert {"index.html", "quickstart.html", "api.html", "changelog.html"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str) -> None:
    """Each page loads with its heading in the main article, its stylesheets present, and
    links to every other page (the site's navigation)."""
    dom = render(page)
    article = re.search(r'<article[^>]*role="main"[^>]*>(.*?)</article>', dom, re.DOTALL)
    assert article, f"{page}: no main article"
    assert re.search(r"<h1[^>]*>.+?</h1>", article.group(1), re.DOTALL), f"{page}: no heading"
    for sheet in re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="([^"#?]+)', dom):
        assert (SITE / page).parent.joinpath(sheet).resolve().is_file(), f"{page}: {sheet}"
    linked = {html.unescape(href).split("#")[0] for href in re.findall(r'href="([^"]+)"', dom)}
    folder = Path(page).parent
    expected = {Path(os.path.relpath(other, folder)).as_posix() for other in PAGES if other != page}
    assert set() == expected - linked, f"{page}: the navigation lacks pages"


@pytest.mark.parametrize("name", PUBLIC)
def test_api_reference_lists(name: str) -> None:
    """The API reference documents every public name, and the general index links to it."""
    assert f'id="{name}"' in render("api.html")
    assert f'href="api.html#{name}"' in render("genindex.html")


def test_public_names_include_the_core() -> None:
    """The names checked above include every name of ``aiocontext.__all__``."""
    assert {f"aiocontext.{name}" for name in aiocontext.__all__} <= set(PUBLIC)
