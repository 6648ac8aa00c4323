"""Coverage plugin: branches for Python versions that were not measured are excluded.

Code such as ``if sys.version_info >= (3, 12): ... else: ...`` runs one branch per
interpreter. Combined over 3.11 to 3.15 both branches run; on a host with 3.12 and newer only,
the ``else`` never can. So that the 100 % branch gate does not depend on which interpreters a
host has, this plugin reads the source under ``[tool.coverage.run] source`` and excludes each
branch of such an ``if`` that no measured version takes (and only those).

The measured versions are ``AIOCONTEXT_COVERAGE_PYTHONS`` (``"3.11 3.12 3.14t"``; CI sets it
to the versions it ran before combining) or, when it is not set, the running interpreter's.
Enabled in ``pyproject.toml``: ``[tool.coverage.run] plugins = ["tests.coverage_versions"]``.
"""

from __future__ import annotations

import ast
import importlib.util
import operator
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.GtE: operator.ge,
    ast.Gt: operator.gt,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
}


def measured_versions() -> list[tuple[int, int]]:
    """The ``(major, minor)`` versions coverage was, or is being, measured on."""
    given = os.environ.get("AIOCONTEXT_COVERAGE_PYTHONS", "").split()
    if not given:
        return [sys.version_info[:2]]
    versions: list[tuple[int, int]] = []
    for word in given:
        major, _, minor = word.rstrip("t").partition(".")
        versions.append((int(major), int(minor)))
    return versions


def _version_test(test: ast.expr) -> Callable[[tuple[int, int]], bool] | None:
    """``sys.version_info <op> (3, N)`` as a function of a version, else ``None``."""
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and type(test.ops[0]) in _COMPARE
        and ast.unparse(test.left) == "sys.version_info"
    ):
        return None
    bound = ast.literal_eval(test.comparators[0])
    compare = _COMPARE[type(test.ops[0])]
    return lambda version: compare(version, tuple(bound))


def unmeasured_regions(source: str, versions: list[tuple[int, int]]) -> Iterator[str]:
    """The source text of each version branch in ``source`` that none of ``versions`` runs.

    An ``if`` body is given without its ``if`` line (which runs either way), an ``else``
    body from its ``else:`` line to its end.
    """
    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.If) or (test := _version_test(node.test)) is None:
            continue
        taken = {test(version) for version in versions}
        if taken == {False}:
            yield "".join(lines[node.body[0].lineno - 1 : node.body[-1].end_lineno])
        elif taken == {True} and node.orelse:
            else_line = node.body[-1].end_lineno or node.lineno
            while not lines[else_line].lstrip().startswith("else:"):  # comments, blank lines
                else_line += 1
            yield "".join(lines[else_line : node.orelse[-1].end_lineno])


def _sources(packages: list[str]) -> Iterator[Path]:
    for package in packages:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            yield from Path(location).rglob("*.py")


class VersionExclusions:
    """The configurer: adds one multi-line exclusion regex per unmeasured branch."""

    def configure(self, config: Any) -> None:
        """Add the exclusions for the measured versions to ``[report] exclude_lines``."""
        versions = measured_versions()
        excluded: list[str] = list(config.get_option("report:exclude_lines"))
        for path in _sources(list(config.get_option("run:source") or [])):
            for region in unmeasured_regions(path.read_text(encoding="utf-8"), versions):
                excluded.append(re.escape(region.rstrip("\n")))
        config.set_option("report:exclude_lines", excluded)


def coverage_init(reg: Any, options: dict[str, str]) -> None:
    """Register the configurer (coverage's plugin entry point)."""
    reg.add_configurer(VersionExclusions())
