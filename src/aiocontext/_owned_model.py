"""A custom policy's data: the policy's own mapping, owned by one task.

The variable holds an :class:`~aiocontext._data.Owned` node: the mapping ``policy.inherit``
or ``policy.root`` made, and its owner. The task factory calls ``inherit`` for each task it
makes; a task made without it gets ``inherit`` of what it inherited at its first access.
Whatever the policy returns must be a mutable mapping; anything else fails at once with a
``TypeError`` that names the policy.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeVar

from ._data import PENDING, Owned, checked_mapping, current_task, task_context
from ._model import WORK, DataModel, Spawn

__all__ = ["OwnedModel"]

_T = TypeVar("_T")


class OwnedModel(DataModel):
    """The data model of a custom :class:`~aiocontext.PropagationPolicy`."""

    __slots__ = ()
    at_spawn = WORK

    def root(self, owner: object, coro: object = None) -> Any:
        data = checked_mapping(self.policy, "root", self.policy.root())
        return Owned(data, owner, self.var, self.policy, coro)

    def holding(self, values: Mapping[Any, Any]) -> Any:
        root = self.root(current_task())
        root.data.update(values)
        return root

    def _inherit(self, parent: MutableMapping[Any, Any], coro: object) -> Owned:
        data = checked_mapping(self.policy, "inherit", self.policy.inherit(parent))
        return Owned(data, PENDING, self.var, self.policy, coro)

    def spawn(self, parent: Any, spawn: Spawn) -> None:
        if parent is self.unbound:
            creator = spawn.creator()
            if creator is None:  # code outside tasks: only the child gets root data
                child = self.root(PENDING, spawn.coro)
                spawn.pending.append(child)
                spawn.children.append((self.var, child))
                return
            parent = self.root(creator)
            spawn.adopted.append((self.var, parent))  # rule 3
        source = parent.data if spawn.given is not None else parent.mine()
        child = self._inherit(source, spawn.coro)
        spawn.pending.append(child)
        spawn.children.append((self.var, child))

    def writer(self) -> Callable[[Any, Any], None]:
        current = self.current

        def setitem(key: Any, value: Any) -> None:
            current().mine()[key] = value

        return setitem

    def edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        return change(self.current().mine())

    def own(self) -> Mapping[Any, Any]:
        return self.current().mine()  # type: ignore[no-any-return]

    def view(self) -> MutableMapping[Any, Any]:
        return self.current().mine()  # type: ignore[no-any-return]

    def data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        owned = self.task_value(task)
        if owned.owner() is task:
            mapping: MutableMapping[Any, Any] = owned.data
            return mapping
        data = checked_mapping(self.policy, "inherit", self.policy.inherit(owned.data))
        child = Owned(data, task, self.var, self.policy)
        task_context(task).run(self.var.set, child)
        return child.data
