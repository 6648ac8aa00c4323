"""Every module of the package imports first, on its own, in a fresh interpreter: the split
of the core has no import-order coupling."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import aiocontext

MODULES = sorted(
    f"aiocontext.{module.name}" for module in pkgutil.iter_modules(aiocontext.__path__)
)
OPTIONAL = {"aiocontext.aiohttp", "aiocontext.arq", "aiocontext.celery", "aiocontext.httpx"}


class TestImports:
    @pytest.mark.parametrize("module", MODULES)
    def test_module_imports_first_in_a_fresh_interpreter(self, module: str) -> None:
        """``python -c "import <module>"`` succeeds with nothing imported before it."""
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
            "aiocontext._model",
            "aiocontext._models",
            "aiocontext._owned_model",
            "aiocontext._registry",
            "aiocontext._scoped",
            "aiocontext._share_model",
            "aiocontext._views",
        }
        assert set() == core - set(MODULES)
        assert OPTIONAL <= set(MODULES)
