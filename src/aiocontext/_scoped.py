"""Scoped data: the context managers ``bound()`` and ``restore()`` return.

Both belong to the code that enters them. Exited in another task (an async generator
advanced by one task and closed by another, or by the loop's async-generator finaliser, or
after its request ended) they restore nothing there and raise nothing: they never write
another task's data. Under ``Share()``, whose one mapping belongs to the whole tree,
``bound()`` restores its keys in that mapping whoever ends the block.

:class:`RequestScope` is the same scoping as ``restore()`` for the request middlewares, at
the floor's cost: it is on the path of every request.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["Binding", "RequestScope", "Restoring"]

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


class RequestScope:
    """``restore()`` for code that makes the dict it scopes: the request middlewares.

    ``enter(values)`` makes ``values``, a new ``dict`` its caller gives up, the running
    code's data, held as the policy holds restored data, and returns the token for
    :meth:`leave`. Under ``Copy()`` that is one ``var.set``: no copy of ``values`` and no
    view (``restore()`` copies its snapshot, which its caller keeps, and returns the live
    mapping). :meth:`leave` is one ``var.reset``; like ``restore()``, left in another
    ``contextvars`` context it leaves that one alone.

    Args:
        context: The context whose data to scope.
    """

    __slots__ = ("_current", "_unbound", "_var", "enter")

    def __init__(self, context: Context[Any, Any]) -> None:
        model = context._model
        self._var = context._var
        self._unbound = context._unbound
        self._current = model.current
        self.enter: Callable[[dict[Any, Any]], contextvars.Token[Any]] = model.setter()

    def __repr__(self) -> str:
        return f"<request scope of {self._var.name}>"

    def over(self, key: Any, value: Any) -> contextvars.Token[Any]:
        """Enter a private copy of the running code's data with ``key`` set to ``value``
        (``restore({**ctx.snapshot(), key: value})``, one copy).

        Raises:
            EventLoopError, TaskContextError: The running code has no data and can get none.
        """
        data = self._var.get()
        if data is self._unbound:
            data = self._current()
        return self.enter({**data, key: value})

    def leave(self, token: contextvars.Token[Any]) -> None:
        """Put back the data :meth:`enter` replaced (nothing, in another context)."""
        try:  # noqa: SIM105 - on the per-request path: no suppress() object
            self._var.reset(token)
        except ValueError:
            pass  # left in another contextvars context: nothing of ours is there
