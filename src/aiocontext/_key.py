"""``Key[T]``: a typed key, usable on any :class:`~aiocontext.Context`."""

from __future__ import annotations

import enum
from collections.abc import Callable, MutableMapping
from typing import Any, Final, Generic, Literal, TypeVar, overload

__all__ = ["MISSING", "Key"]

T = TypeVar("T")


class _Missing(enum.Enum):
    """The type of :data:`MISSING`."""

    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Says "no default" where ``None`` is a valid value."""


class Key(Generic[T]):
    """A key whose value type the type checker knows: ``ctx[REQUEST_ID]`` is a ``str``.

    Keys compare by identity: two keys with the same name are different keys, so two
    libraries never collide on a context. A key can carry a default (returned when the
    current task has no value) or a default factory (called once per task and its result
    stored in that task's data, so a mutable default is never shared between tasks).

    Args:
        name: A name for reprs and error messages.
        default: The value ``ctx[key]`` and ``ctx.get(key)`` give when the task has none.
        default_factory: Called to make that value instead; the result is stored.

    Raises:
        TypeError: ``name`` is not a string, ``default_factory`` is not callable, both
            ``default`` and ``default_factory`` are given, or ``default`` is mutable
            (unhashable, as dataclasses judge it: use ``default_factory``).

    Example:
        >>> from aiocontext import Context, Key
        >>> REQUEST_ID = Key[str]("request_id", default="-")
        >>> REQUEST_ID
        Key('request_id', default='-')
        >>> Key[str]("request_id") == Key[str]("request_id")
        False
    """

    __slots__ = ("__weakref__", "_default", "_default_factory", "_name")

    @overload
    def __init__(self, name: str) -> None: ...
    @overload
    def __init__(self, name: str, *, default: T) -> None: ...
    @overload
    def __init__(self, name: str, *, default_factory: Callable[[], T]) -> None: ...
    def __init__(
        self,
        name: str,
        *,
        default: T | Literal[_Missing.MISSING] = MISSING,
        default_factory: Callable[[], T] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a Key's name must be a str, got {type(name).__name__} {name!r}")
        if default_factory is not None:
            if not callable(default_factory):
                raise TypeError(
                    f"default_factory must be callable with no arguments, got {default_factory!r}"
                )
            if default is not MISSING:
                raise TypeError(
                    f"Key({name!r}) got both default and default_factory: pass one of them"
                )
        if default is not MISSING and type(default).__hash__ is None:
            raise TypeError(
                f"Key({name!r}) got the mutable default {default!r}, which every task would "
                f"share: use default_factory={type(default).__name__} to give each task its own"
            )
        self._name = name
        self._default = default
        self._default_factory = default_factory

    def __repr__(self) -> str:
        if self._default_factory is not None:
            return f"Key({self._name!r}, default_factory={self._default_factory!r})"
        if self._default is not MISSING:
            return f"Key({self._name!r}, default={self._default!r})"
        return f"Key({self._name!r})"

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__

    def __copy__(self) -> Key[T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Key[T]:
        return self

    def __reduce__(self) -> str:
        raise TypeError(
            f"{self!r} cannot be pickled: keys compare by identity, so a copy made in another "
            "process would be a different key. Send plain (string) keys across processes."
        )

    @property
    def name(self) -> str:
        """The name given at construction."""
        return self._name

    @property
    def has_default(self) -> bool:
        """Whether the key has a default or a default factory."""
        return self._default is not MISSING or self._default_factory is not None

    def default_for(self, data: MutableMapping[Any, Any]) -> T:
        """Return the value for a task whose ``data`` lacks this key (internal).

        A default factory's result is stored in ``data``.

        Raises:
            KeyError: The key has no default.
        """
        if self._default_factory is not None:
            value = data[self] = self._default_factory()
            return value
        if self._default is MISSING:
            raise KeyError(self)
        return self._default
