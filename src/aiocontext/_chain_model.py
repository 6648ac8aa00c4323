"""``ChainMap()``: layers, the top one owned by one task, which alone writes it in place.

A task's children (made with or without the task factory) read its layers, so they see its
later writes; anyone else who writes first gets a new top layer of their own over them. Code
outside tasks never writes a layer in place. A creating task that has no layer of its own
gets one at the spawn, shared with the child. Layers that can never change again and hold
nothing (their owner is gone or done, or was code outside tasks) are dropped whenever a new
layer is pushed: a chain of tasks that spawn their successors holds one layer per ancestor
that wrote, not one per generation.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final, TypeVar

from ._data import PENDING, current_task, frozen_owner, in_own_context, owner_ref, task_context
from ._layers import Layers, layer
from ._model import OWNER, DataModel, Spawn
from ._views import HereView

__all__ = ["ChainModel"]

_T = TypeVar("_T")
_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


#: What the owner's write sets to tell the task's own context from a copy of it.
_PROBE: contextvars.ContextVar[object] = contextvars.ContextVar("aiocontext.chain_probe")


#: How many layers below a new one a push looks through for frozen empty layers to unlink:
#: enough for the tasks that are still running over a chain, few enough that a push in a
#: chain of thousands of running tasks costs no more than a few reads.
_LOOK: Final = 16


def _unfrozen(layers: Layers[Any, Any] | None) -> Layers[Any, Any] | None:
    """``layers`` less the layers on its top that hold nothing and can never change again."""
    while layers is not None and not layers.top and frozen_owner(layers.owner):
        layers = layers.below
    return layers


def _over(layers: Layers[Any, Any], owner: Callable[[], object]) -> Layers[Any, Any]:
    """A new empty layer owned by ``owner`` over ``layers``, less the frozen empty ones.

    The frozen empty layers just below are skipped; those a little further down (under
    layers of tasks that were still running when they were pushed) are unlinked from the
    chain, which every chain built over it shares: they hold nothing, so no read changes.
    """
    below = _unfrozen(layers)
    node = below
    for _ in range(_LOOK):
        if node is None:
            break
        after = _unfrozen(node.below)
        node.below = after
        node = after
    return layer({}, owner, below)


class ChainModel(DataModel):
    """The data model of ``ChainMap()``: owned layers."""

    __slots__ = ()
    at_spawn = OWNER

    def root(self, owner: object, coro: object = None) -> Any:
        layers: Layers[Any, Any] = layer({}, owner_ref(owner))
        layers.coro = coro
        return layers

    def holding(self, values: Mapping[Any, Any]) -> Any:
        return layer(dict(values), owner_ref(current_task()))

    def spawn(self, parent: Any, spawn: Spawn) -> None:
        creator = spawn.creator()
        if parent is self.unbound:
            if creator is None:  # code outside tasks: only the child gets root data
                root = self.root(PENDING, spawn.coro)
                spawn.pending.append(root)
            else:
                root = self.root(creator)
                spawn.adopted.append((self.var, root))  # rule 3
            spawn.children.append((self.var, root))
        elif creator is not None and parent.owner() is not creator and in_own_context(creator):
            # The child reads its creator's layers until its first write. A creating task
            # writes its own top layer in place, so that the child sees its later writes: it
            # gets one now if it has none yet.
            layers = _over(parent, weakref.ref(creator))
            spawn.adopted.append((self.var, layers))
            spawn.children.append((self.var, layers))

    # -- writing -------------------------------------------------------------------------

    if sys.version_info >= (3, 12):

        def writer(self) -> Callable[[Any, Any], None]:
            var, writable = self.var, self.writable

            def setitem(key: Any, value: Any) -> None:
                layers = var.get()
                # The owner's write, the common case, is made in place if the running code
                # is that task in its own contextvars context, not in a copy of it
                # (copy_context().run(...) inside the task): a new value set here is seen in
                # the task's context only if that is the running one. (Set, never reset: the
                # probe keeps its last value, a new object each time.)
                marker: list[Any] = []  # (a list: the cheapest new object)
                _PROBE.set(marker)
                try:
                    mine = layers.owner().get_context()[_PROBE] is marker
                except (AttributeError, KeyError):
                    # No data here (the no-data marker), layers no task owns (None, PENDING),
                    # or an owner that never wrote in its own context.
                    mine = False
                (layers if mine else writable()).top[key] = value

            return setitem

    else:

        def writer(self) -> Callable[[Any, Any], None]:
            var, unbound, writable = self.var, self.unbound, self.writable

            def setitem(key: Any, value: Any) -> None:
                layers = var.get()
                loop = _get_running_loop()
                if (
                    layers is not unbound
                    and loop is not None
                    and layers.owner() is _current_task(loop) is not None
                ):  # 3.11 cannot tell a task's context from a copy of it run inside the task
                    layers.top[key] = value
                    return
                writable().top[key] = value

            return setitem

    def edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        return change(self.writable())

    def own(self) -> Mapping[Any, Any]:
        return self.writable().top

    def writable(self) -> Layers[Any, Any]:
        """Layers whose top one the running code may write in place.

        Only the owning task writes its layer in place (so that what it spawned sees its
        later writes). Any other task pushes a layer of its own first; code outside tasks,
        or in a copy of a task's context, never writes a layer another copy can see.
        """
        layers: Layers[Any, Any] = self.current()
        task = current_task()
        owner = layers.owner()
        if task is not None:
            if owner is PENDING and layers.coro is task.get_coro():
                layers.owner, layers.coro = weakref.ref(task), None  # the factory's eager task
                return layers
            if not in_own_context(task):
                task = None
            elif owner is task:
                return layers
        if owner is None:  # code outside tasks made these: copy its layer, never share it
            mine = layer(dict(layers.top), owner_ref(task), layers.below)
        else:
            mine = _over(layers, owner_ref(task))
        self.var.set(mine)
        return mine

    # -- live mappings -------------------------------------------------------------------

    def view(self) -> MutableMapping[Any, Any]:
        layers = self.writable()
        running = current_task()
        if running is None or layers.owner() is not running:
            # Code outside tasks (or in a copy of a task's context) never writes a layer in
            # place: each write makes a new one, so the live mapping is the context itself.
            return HereView(self.context)
        return layers

    def data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        layers = self.task_value(task)
        if layers.owner() is task:
            return layers  # type: ignore[no-any-return]
        mine = _over(layers, weakref.ref(task))
        task_context(task).run(self.var.set, mine)
        return mine
