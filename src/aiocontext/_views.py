"""Live mappings that are the running code's data: every operation is the context's."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["HereView"]


class HereView(MutableMapping[Any, Any]):
    """A live mapping that is the running code's data: every operation is the context's."""

    __slots__ = ("_context",)

    def __init__(self, context: Context[Any, Any]) -> None:
        self._context = context

    def __repr__(self) -> str:
        return repr(dict(self._context))

    def __getitem__(self, key: Any, /) -> Any:
        return self._context[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        self._context[key] = value

    def __delitem__(self, key: Any, /) -> None:
        del self._context[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._context)

    def __len__(self) -> int:
        return len(self._context)

    def __contains__(self, key: object, /) -> bool:
        return key in self._context

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Write every pair as one change."""
        self._context.update(other, **kwargs)

    def clear(self) -> None:
        """Remove every key as one change."""
        self._context.clear()
