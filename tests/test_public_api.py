"""The public API as a whole: names, docstrings and annotations that resolve at runtime."""

from __future__ import annotations

import inspect
import typing

import pytest

import aiocontext

PUBLIC = [getattr(aiocontext, name) for name in aiocontext.__all__]
CLASSES = [obj for obj in PUBLIC if inspect.isclass(obj)]


class TestPublicAPI:
    def test_all_is_sorted_and_complete(self) -> None:
        """``__all__`` is sorted and lists every public name the contract fixes."""
        contract = {
            "AioContextError", "ChainMap", "Context", "ContextRegistry", "Copy", "DeepCopy",
            "EventLoopError", "PropagationPolicy", "Share", "TaskContextError",
            "TaskFactoryError", "TaskFactoryWrapper", "loop_factory",
        }  # fmt: skip
        assert sorted(aiocontext.__all__) == aiocontext.__all__
        assert set() == contract - set(aiocontext.__all__)

    @pytest.mark.parametrize("obj", PUBLIC, ids=lambda obj: obj.__name__)
    def test_every_public_name_has_a_docstring(self, obj: object) -> None:
        """Every public class and function says what it is for."""
        assert (obj.__doc__ or "").strip()

    @pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
    def test_type_hints_resolve_on_every_public_class(self, cls: type) -> None:
        """``typing.get_type_hints`` resolves the class and each of its public methods'
        annotations (no dangling forward references)."""
        typing.get_type_hints(cls)
        for name, member in inspect.getmembers(cls):
            if (name.startswith("_") and name != "__init__") or not callable(member):
                continue
            hints = typing.get_type_hints(member)
            assert "return" in hints or name == "__init__" or not hints, name

    def test_type_hints_resolve_on_loop_factory(self) -> None:
        """``loop_factory``'s annotations resolve at runtime."""
        hints = typing.get_type_hints(aiocontext.loop_factory)
        assert {"contexts", "base", "return"} == set(hints)
