"""Argument checks the core shares: each fails at once with a ``TypeError`` that says what to
pass instead."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from typing_extensions import TypeIs

from ._key import Key
from ._policy import PropagationPolicy

if TYPE_CHECKING:
    from ._context import Context

__all__ = [
    "ContextHandle",
    "check_context",
    "check_name",
    "check_policy",
    "check_task",
    "is_context",
    "is_key",
    "is_mapping",
]


class ContextHandle:
    """The base of :class:`~aiocontext.Context`, so that modules below it can check for one."""

    __slots__ = ()


def is_context(value: object) -> TypeIs[Context[Any, Any]]:
    """Whether ``value`` is a Context (a type guard for the integrations' argument checks)."""
    return isinstance(value, ContextHandle)


def check_context(context: object) -> Context[Any, Any]:
    """Return ``context`` if it is a :class:`~aiocontext.Context`, else raise ``TypeError``."""
    if not is_context(context):
        raise TypeError(f"expected an aiocontext.Context, got {type(context).__name__} {context!r}")
    return context


def check_policy(_instance: object, _attribute: object, policy: object) -> None:
    """A Context's ``policy`` must be a :class:`~aiocontext.PropagationPolicy` instance."""
    if isinstance(policy, PropagationPolicy):
        return
    if PropagationPolicy in getattr(policy, "__mro__", ()):  # the class, not an instance
        name = getattr(policy, "__name__", "Policy")
        fix = (
            "subclass it and pass an instance of your subclass"
            if policy is PropagationPolicy
            else f"write policy={name}()"
        )
        raise TypeError(f"policy must be a PropagationPolicy instance, got the class {name}: {fix}")
    raise TypeError(
        f"policy must be a PropagationPolicy instance such as Copy() or Share(), "
        f"got {type(policy).__name__} {policy!r}"
    )


def check_name(_instance: object, _attribute: object, name: Any) -> None:
    """A Context's ``name`` must be a string or ``None``."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")


def check_task(task: object) -> asyncio.Task[Any]:
    """Return ``task`` if it is an :class:`asyncio.Task`, else raise ``TypeError``."""
    if not isinstance(task, asyncio.Task):
        raise TypeError(f"task must be an asyncio.Task, got {type(task).__name__} {task!r}")
    return task  # pyright: ignore[reportUnknownVariableType]


def is_mapping(value: object) -> TypeIs[Mapping[Any, Any]]:
    """Whether ``value`` is a mapping (a plain dict first: no ABC check)."""
    return type(value) is dict or isinstance(value, Mapping)


def is_key(value: object) -> TypeIs[Key[Any]]:
    """Whether ``value`` is a :class:`~aiocontext.Key`."""
    return isinstance(value, Key)
