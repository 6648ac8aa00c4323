"""What a context's ``ContextVar`` holds: the pieces every data model shares.

* :class:`Unbound`, the variable's default: "this code has no data". It resolves itself on
  every read, so a read needs no check: ``ctx[key]`` stays ``var.get()[key]``.
* :class:`Owned`, the value of a custom policy's context: the policy's mapping and the task
  that owns it.
* Owners: data records the task it was made for as a weak reference (``nobody`` for code
  outside tasks, ``PENDING`` while the task factory is still creating the task).

How each policy holds its data is in the data models (``_copy_model``, ``_share_model``,
``_chain_model``, ``_owned_model``); the design and its measured rationale are in
``docs/design.md``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Final, NoReturn

from ._layers import nobody
from ._policy import PropagationPolicy

__all__ = [
    "PENDING",
    "Owned",
    "Unbound",
    "checked_mapping",
    "current_task",
    "frozen_owner",
    "in_own_context",
    "owner_ref",
    "task_context",
]


class _Pending:
    """The owner of data the task factory made for a task it is still creating (called, it
    returns itself, as the weak references to other owners return their task)."""

    __slots__ = ()

    def __call__(self) -> _Pending:
        return self


PENDING: Final = _Pending()


def owner_ref(owner: object) -> Callable[[], object]:
    """What data stores as its owner: a weak reference to a task, or what ``owner`` is."""
    if owner is None:
        return nobody
    if owner is PENDING:
        return PENDING
    return weakref.ref(owner)


def frozen_owner(owner: Callable[[], object]) -> bool:
    """Whether data owned by ``owner`` can never be written in place again: it was made by
    code outside tasks, or its task is gone or done."""
    task: Any = owner()
    return task is None or (task is not PENDING and task.done())


_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


def current_task() -> asyncio.Task[Any] | None:
    """The task running in this thread, or ``None`` (callbacks, threads, no loop)."""
    loop = _get_running_loop()
    return None if loop is None else _current_task(loop)


if sys.version_info >= (3, 12):
    _PROBE: contextvars.ContextVar[object] = contextvars.ContextVar("aiocontext.probe")

    def in_own_context(task: asyncio.Task[Any]) -> bool:
        """Whether the running code is in ``task``'s own ``contextvars`` context, rather than
        in a copy of it (``contextvars.copy_context().run(...)`` inside the task)."""
        marker = object()
        token = _PROBE.set(marker)
        try:
            return task.get_context().get(_PROBE) is marker
        finally:
            _PROBE.reset(token)

else:

    def in_own_context(task: asyncio.Task[Any]) -> bool:
        """Python 3.11 cannot tell a task's context from a copy of it run inside the task."""
        return True


if sys.version_info >= (3, 12):

    def task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        """``task``'s ``contextvars`` context."""
        return task.get_context()

else:

    def task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        """Python 3.11 has no ``Task.get_context()``."""
        raise NotImplementedError(
            "reading another task's data needs Task.get_context(), new in Python 3.12: "
            "read it from inside that task instead"
        )


def checked_mapping(policy: PropagationPolicy, method: str, value: object) -> Any:
    """``value`` if it is a mutable mapping, else the ``TypeError`` that names the policy."""
    if isinstance(value, MutableMapping):
        return value  # pyright: ignore[reportUnknownVariableType]
    raise TypeError(
        f"{policy!r}.{method}() must return a mutable mapping such as a dict, got "
        f"{type(value).__name__} {value!r}: return dict(...) of the pairs"
    )


class Unbound(dict[Any, Any]):
    """A context variable's default: this code has no data for the context.

    An empty ``dict`` whose every read first resolves the marker (``resolve`` is a weak
    method of the context's ``_missing``): to root data, stored for the task, on a loop where
    the context is attached; anywhere else to the error that says what is wrong. It refuses
    every write: it is shared by all code without data. It holds its context weakly, so a
    task factory that remembers the marker does not keep the context alive.
    """

    __slots__ = ("_name", "_resolve")

    def __init__(self, name: str, resolve: Callable[[], MutableMapping[Any, Any]]) -> None:
        super().__init__()
        self._name = name
        self._resolve: Callable[[], Callable[[], Any] | None] = weakref.WeakMethod(resolve)

    def __repr__(self) -> str:
        return f"<no data for {self._name}>"

    def resolve(self) -> Any:
        """The running code's data for the context (see the class docstring)."""
        missing = self._resolve()
        if missing is None:  # pragma: no cover - a marker outlives its context only in gc
            raise ReferenceError(f"{self._name} no longer exists")
        return missing()

    def alive(self) -> bool:
        """Whether the context this marker belongs to still exists."""
        return self._resolve() is not None

    def __missing__(self, key: Any) -> Any:
        return self.resolve()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.resolve()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def get(self, key: Any, default: Any = None, /) -> Any:
        return self.resolve().get(key, default)

    def copy(self) -> Any:
        """A copy of the running code's data (a plain ``dict`` copy would be empty)."""
        return self.resolve().copy()

    def _refuse(self) -> NoReturn:
        raise TypeError(
            f"{self!r} is the shared no-data marker and cannot be written: write through "
            "the context (ctx[key] = value) or ctx.data()"
        )

    def __setitem__(self, key: Any, value: Any, /) -> NoReturn:
        self._refuse()

    def __delitem__(self, key: Any, /) -> NoReturn:
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse()

    def setdefault(self, *args: Any) -> NoReturn:
        self._refuse()

    def pop(self, *args: Any) -> NoReturn:
        self._refuse()

    def popitem(self) -> NoReturn:
        self._refuse()

    def clear(self) -> NoReturn:
        self._refuse()

    def __ior__(self, other: Any, /) -> NoReturn:  # type: ignore[misc]
        self._refuse()


class Owned(Mapping[Any, Any]):
    """The data of a context with a custom policy: the policy's mapping and its owner.

    Reads of the context's variable see it as a mapping; writes go to :meth:`mine`. The
    owner is the task the data was made for, held weakly (``PENDING`` while the task
    factory is still creating it, with ``coro`` its coroutine). A task that is not the owner
    was created without the task factory, and gets ``policy.inherit(data)`` of its own at
    its first access. Code outside tasks (callbacks, ``to_thread`` workers) uses the data of
    the task it runs for.
    """

    __slots__ = ("coro", "data", "owner", "policy", "var")

    def __init__(
        self,
        data: MutableMapping[Any, Any],
        owner: object,
        var: contextvars.ContextVar[Any],
        policy: PropagationPolicy,
        coro: object = None,
    ) -> None:
        self.data = data
        self.owner = owner_ref(owner)
        self.var = var
        self.policy = policy
        self.coro = coro

    def __repr__(self) -> str:
        return repr(self.data)

    def mine(self) -> MutableMapping[Any, Any]:
        """The mapping the running code reads and writes, made first if it has none yet."""
        task = current_task()
        owner = self.owner()
        if owner is task or task is None:
            return self.data
        if owner is PENDING and self.coro is task.get_coro():
            self.owner, self.coro = weakref.ref(task), None  # the factory's eager task
            return self.data
        data = checked_mapping(self.policy, "inherit", self.policy.inherit(self.data))
        child = Owned(data, task, self.var, self.policy)
        self.var.set(child)
        return child.data

    def __getitem__(self, key: Any, /) -> Any:
        return self.mine()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.mine())

    def __len__(self) -> int:
        return len(self.mine())

    def __contains__(self, key: object, /) -> bool:
        return key in self.mine()
