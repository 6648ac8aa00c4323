"""Every module of the package imports first, on its own, in a fresh interpreter: the split
of the core has no import-order coupling."""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import aiocontext

MODULES = sorted(
    f"aiocontext.{module.name}" for module in pkgutil.iter_modules(aiocontext.__path__)
)
OPTIONAL = {"aiocontext.aiohttp", "aiocontext.arq", "aiocontext.celery", "aiocontext.httpx"}
#: The library each integration module imports, where one can be missing: the floors run has
#: none of them, and grpcio has no wheel for free-threaded CPython.
REQUIRES = {
    "aiocontext.aiohttp": "aiohttp",
    "aiocontext.celery": "celery",
    "aiocontext.grpc": "grpc",
    "aiocontext.httpx": "httpx",
    "aiocontext.opentelemetry": "opentelemetry",
    "aiocontext.pytest": "pytest",
    "aiocontext.sentry": "sentry_sdk",
}


class TestImports:
    @pytest.mark.parametrize("module", MODULES)
    def test_module_imports_first_in_a_fresh_interpreter(self, module: str) -> None:
        """``python -c "import <module>"`` succeeds with nothing imported before it."""
        library = REQUIRES.get(module)
        if library is not None and importlib.util.find_spec(library) is None:
            pytest.skip(f"{module} needs {library}, which is not installed here")
        result = subprocess.run(
            [sys.executable, "-I", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (0, "") == (result.returncode, result.stderr)

    def test_the_core_modules_are_all_there(self) -> None:
        """The list covers the core split (a module renamed is noticed here)."""
        core = {
            "aiocontext._chain_model",
            "aiocontext._checks",
            "aiocontext._context",
            "aiocontext._copy_model",
            "aiocontext._data",
            "aiocontext._factory",
            "aiocontext._layers",
            "aiocontext._model",
            "aiocontext._models",
            "aiocontext._owned_model",
            "aiocontext._registry",
            "aiocontext._scoped",
            "aiocontext._served",
            "aiocontext._share_model",
            "aiocontext._views",
        }
        assert set() == core - set(MODULES)
        assert OPTIONAL <= set(MODULES)
