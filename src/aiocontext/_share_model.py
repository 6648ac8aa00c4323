"""``Share()``: one mutable mapping for the whole task tree, changed in place.

Every task, callback and worker that descends from the code that made the mapping holds the
mapping itself, so a spawn needs nothing once the creator has data. A creating task that has
none gets its root at that moment, shared with the child (rule 3), so that ``Share()``
holds even when a parent spawns before it reads or writes.
"""

# pyright: reportPrivateUsage=false
# (A model is the context's own part: it calls the context's _missing.)

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeVar

from ._model import ABSENT, CHECK, DataModel, Spawn, put_back

__all__ = ["ShareModel"]

_T = TypeVar("_T")


class ShareModel(DataModel):
    """The data model of ``Share()``: the tree's one mapping.

    ``bound()`` blocks on the shared mapping may overlap (two sibling tasks binding the same
    key): they are kept as one stack per key, and a block that ends while a later one is
    still open hands what it saved to that one, so the key ends as it was before both.
    """

    __slots__ = ("_binds", "_lock")
    at_spawn = CHECK

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        # id(mapping) -> (mapping, {key: [saved value of each open block, oldest first]})
        self._binds: dict[int, tuple[Any, dict[Any, list[list[Any]]]]] = {}
        self._lock = threading.Lock()

    def root(self, owner: object, coro: object = None) -> Any:
        return self.policy.root()

    def holding(self, values: Mapping[Any, Any]) -> Any:
        root = self.policy.root()
        root.update(values)
        return root

    def spawn(self, parent: Any, spawn: Spawn) -> None:
        if parent is not self.unbound:
            return  # the child inherits the mapping itself
        creator = spawn.creator()
        root = self.root(creator)
        if creator is not None:
            spawn.adopted.append((self.var, root))  # the creator shares it (rule 3)
        spawn.children.append((self.var, root))

    def writer(self) -> Callable[[Any, Any], None]:
        var, unbound, missing = self.var, self.unbound, self.context._missing

        def setitem(key: Any, value: Any) -> None:
            data = var.get()  # self.current(), inlined: no call on the write path
            if data is unbound:
                data = missing()
            data[key] = value

        return setitem

    def edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        return change(self.current())

    def view(self) -> MutableMapping[Any, Any]:
        return self.current()  # type: ignore[no-any-return]

    def data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        return self.task_value(task)  # type: ignore[no-any-return]

    # -- scoped binds: one stack per key of the shared mapping ----------------------------

    def bind(self, items: dict[Any, Any]) -> Any:
        data = self.current()
        frames: list[tuple[Any, list[Any]]] = []
        with self._lock:
            _, stacks = self._binds.setdefault(id(data), (data, {}))
            for key in items:
                frame = [data.get(key, ABSENT)]
                stacks.setdefault(key, []).append(frame)
                frames.append((key, frame))
            data.update(items)
        return data, frames

    def unbind(self, token: Any) -> None:
        """Restore the keys in the mapping the block wrote, whoever ends it."""
        data, frames = token
        restore: dict[Any, Any] = {}
        with self._lock:
            _, stacks = self._binds[id(data)]
            for key, frame in frames:
                stack = stacks[key]
                index = next(i for i, open_frame in enumerate(stack) if open_frame is frame)
                if index == len(stack) - 1:
                    restore[key] = frame[0]
                else:
                    stack[index + 1][0] = frame[0]  # the later block restores what we saved
                del stack[index]
                if not stack:
                    del stacks[key]
            if not stacks:
                del self._binds[id(data)]
            put_back(data, restore)
