"""Scoped data: the context managers ``bound()`` and ``restore()`` return.

Both belong to the code that enters them. Exited in another task (an async generator
advanced by one task and closed by another, or by the loop's async-generator finaliser, or
after its request ended) they restore nothing there and raise nothing: they never write
another task's data. Under ``Share()``, whose one mapping belongs to the whole tree,
``bound()`` restores its keys in that mapping whoever ends the block.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import contextvars
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["Binding", "Restoring"]

K = TypeVar("K")
V = TypeVar("V")


class Binding:
    """The context manager :meth:`Context.bound` returns (sync and async)."""

    __slots__ = ("_context", "_items", "_token")

    def __init__(self, context: Context[Any, Any], items: dict[Any, Any]) -> None:
        self._context = context
        self._items = items
        self._token: Any = None

    def __repr__(self) -> str:
        return f"<binding of {self._items!r} in {self._context!r}>"

    def __enter__(self) -> None:
        if self._token is not None:
            raise RuntimeError(
                f"{self!r} is already in use: call ctx.bound(...) again for another block"
            )
        self._token = self._context._model.bind(self._items)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._context._model.unbind(token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


class Restoring(Generic[K, V]):
    """The context manager :meth:`Context.restore` returns.

    Entering it is one ``var.set`` of a private copy of the snapshot, leaving it one
    ``var.reset``; left in another ``contextvars`` context, it leaves that one alone.
    """

    __slots__ = ("_context", "_snapshot", "_token")

    def __init__(self, context: Context[K, V], snapshot: Mapping[K, V]) -> None:
        self._context = context
        self._snapshot = snapshot
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> MutableMapping[K, V]:
        if self._token is not None:
            raise RuntimeError("this restore() block is already in use: call restore() again")
        context = self._context
        model = context._model
        self._token = context._var.set(model.holding(self._snapshot))
        return model.here()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:  # noqa: SIM105 - on the per-request path: no suppress() object
                self._context._var.reset(token)
            except ValueError:
                pass  # left in another contextvars context: nothing of ours is there
