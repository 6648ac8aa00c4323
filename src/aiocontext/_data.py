"""What a context's ``ContextVar`` holds for a task: the data model, per policy.

Isolation comes from ``contextvars`` itself. Every task runs in its own copy of its
creator's ``contextvars`` context, and so does every callback and ``to_thread`` worker,
whoever created them and whether or not a task factory ran. A context's variable therefore
holds a value that is never changed in place where a copy could see it change:

* ``Copy()`` and ``DeepCopy()``: a plain ``dict`` that is never mutated once stored; a write
  stores a new one (``var.set``). Spawning costs nothing, and a child, a callback or a worker
  sees exactly its creator's data at the moment it was made. ``DeepCopy()`` additionally
  deep-copies at spawn, when the task factory creates the task.
* ``Share()``: the one mutable mapping of the whole tree, mutated in place.
* ``ChainMap()``: :class:`~aiocontext._policy.Layers` whose top layer belongs to one task
  (``owner``). Only that task writes it in place, so the children it spawns (with or without
  the factory) see its later writes; anyone else who writes first gets a new top layer of
  their own over it. Code outside tasks never writes a layer in place.
* Any other policy: an :class:`Owned` node, the policy's mapping plus its owner. A task that
  is not the owner (it was created without the factory) gets ``policy.inherit(...)`` of what
  it inherited at its first access.

Where a task has no data the variable holds its context's :class:`Unbound` marker, which
resolves itself on access (to root data on an attached loop, otherwise to an error).

Why a plain dict replaced on every write, for ``Copy()`` (measured with
``python -m benchmarks.callgrind``): reads, the hot path, stay one ``var.get()[key]``, and a
spawn copies nothing. A write costs a dict copy plus a ``var.set``; the ``var.set`` alone is
~5x an in-place ``var.get()[k] = v``, so every design that isolates copies of a context by
``contextvars`` pays it. Per-key variables would save only the copy (which matters from
~100 keys on), but make ``len``, iteration and snapshots cost one lookup per key ever used
and keep a ``ContextVar`` per distinct key forever; a persistent map written in Python would
make every read a Python-level tree walk. Request contexts hold a handful of keys.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Final

from ._policy import ChainMap, Copy, DeepCopy, PropagationPolicy, Share, nobody

__all__ = [
    "CHAIN",
    "COPY",
    "OTHER",
    "PENDING",
    "SHARE",
    "Owned",
    "Unbound",
    "current_task",
    "in_own_context",
    "mode_of",
    "owner_ref",
]

COPY: Final = "copy"  # Copy() and DeepCopy(): a dict replaced on every write
SHARE: Final = "share"
CHAIN: Final = "chain"
OTHER: Final = "other"
_MODES: Final[dict[type[PropagationPolicy], str]] = {
    Copy: COPY,
    DeepCopy: COPY,
    Share: SHARE,
    ChainMap: CHAIN,
}


def mode_of(policy: PropagationPolicy) -> str:
    """How ``policy``'s data is held (exact built-in types only; subclasses are ``OTHER``)."""
    return _MODES.get(policy.__class__, OTHER)


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


class Unbound(dict[Any, Any]):
    """A context variable's default: this code has no data for the context.

    An empty ``dict`` whose every read first resolves the marker (``resolve`` is the
    context's ``_missing``): to root data, stored for the task, on a loop where the context
    is attached; anywhere else to the error that says what is wrong. So reads need no check:
    ``ctx[key]`` is ``var.get()[key]``.
    """

    __slots__ = ("_name", "resolve")

    def __init__(self, name: str, resolve: Callable[[], MutableMapping[Any, Any]]) -> None:
        super().__init__()
        self._name = name
        self.resolve = resolve

    def __repr__(self) -> str:
        return f"<no data for {self._name}>"

    def __missing__(self, key: Any) -> Any:
        return self.resolve()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.resolve()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.resolve())

    def __len__(self) -> int:
        return len(self.resolve())

    def get(self, key: Any, default: Any = None, /) -> Any:  # noqa: D102 - dict.get
        return self.resolve().get(key, default)


class Owned(Mapping[Any, Any]):
    """The data of a context with a custom policy: the policy's mapping and its owner.

    Reads of the context's variable see it as a mapping; writes go to :meth:`mine`. The
    owner is the task the data was made for, held weakly (``PENDING`` while the task
    factory is still creating it, with ``coro`` its coroutine). Every access goes through :meth:`mine`: a task
    that is not the owner was created without the task factory, and gets
    ``policy.inherit(data)`` of its own at that moment. Code outside tasks (callbacks,
    ``to_thread`` workers) uses the data of the task it runs for.
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
        child = Owned(self.policy.inherit(self.data), task, self.var, self.policy)
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
