"""The examples in the docstrings run as written.

The modules are imported by name, so the examples run against whichever ``aiocontext`` is
installed: the checkout in an editable install, the wheel in ``.ci/package`` (collecting
``src/`` with ``--doctest-modules`` would import a second copy from the source tree there).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
import pkgutil

import pytest

import aiocontext

#: Integration modules whose library cannot be installed on some Pythons (grpcio has no
#: wheel for free-threaded CPython): their examples run wherever the library is there.
NEEDS: dict[str, str] = {"aiocontext.grpc": "grpc"}

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(aiocontext.__path__, prefix="aiocontext.")
    if info.name not in NEEDS or importlib.util.find_spec(NEEDS[info.name]) is not None
)
EXAMPLES = [
    test
    for name in ["aiocontext", *MODULES]
    for test in doctest.DocTestFinder().find(importlib.import_module(name))
    if test.examples
]


def test_the_docstrings_have_examples() -> None:
    """Every public class carries an example, so there are many; none was lost to import."""
    assert 20 <= len(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example(example: doctest.DocTest) -> None:
    """One docstring's examples print what the docstring shows."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    results = runner.run(example, out=out.write)
    assert 0 == results.failed, out.getvalue()
