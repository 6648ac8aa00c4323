"""``Copy()`` and ``DeepCopy()``: a plain ``dict`` replaced, never changed, on every write.

A child task, a callback or a ``to_thread`` worker runs in a copy of its creator's
``contextvars`` context, so it starts with exactly the dict its creator had then: a spawn
copies nothing, and no later write on either side can be seen by the other. A write is
``data = var.get().copy(); data[key] = value; var.set(data)``. Code with no data gets its
root (an empty dict) lazily, at its first access: under ``Copy()`` that is the same as a
root made at spawn, and it costs a spawn nothing.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from ._data import current_task, task_context
from ._errors import TaskContextError
from ._model import FREE, WORK, DataModel, Spawn

__all__ = ["CopyModel", "CopyView", "DeepCopyModel"]

_T = TypeVar("_T")


def _noop() -> None:
    return None


class CopyModel(DataModel):
    """The data model of ``Copy()``: a dict replaced on every write."""

    __slots__ = ("_here",)
    at_spawn = FREE

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        # The view of "the running code's data": it holds no state of its own, so one serves
        # every restore() block (no view built per block).
        self._here = CopyView(self, None)

    def root(self, owner: object, coro: object = None) -> Any:
        return {}

    def holding(self, values: Mapping[Any, Any]) -> Any:
        return dict(values)

    def setter(self) -> Callable[[dict[Any, Any]], contextvars.Token[Any]]:
        # A dict its caller gives up is held as it is: no copy, one var.set.
        return self.var.set

    def writer(self) -> Callable[[Any, Any], None]:
        var = self.var

        def setitem(key: Any, value: Any) -> None:
            # A dict's copy() is its fastest copy (cheaper than {**data}); the no-data
            # marker's copy() resolves it first (root data, or the error that says why there
            # is none).
            data = var.get().copy()
            data[key] = value
            var.set(data)

        return setitem

    def edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        data = self.current().copy()
        result = change(data)
        self.var.set(data)
        return result

    def view(self) -> MutableMapping[Any, Any]:
        self.current()  # raises now if there is no data here
        return CopyView(self, current_task())

    def here(self) -> MutableMapping[Any, Any]:
        return self._here  # the running code's data, with no task to look up

    def data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        self.value_of(task)
        return CopyView(self, task)

    # -- another task's data ---------------------------------------------------------------

    def value_of(self, task: asyncio.Task[Any]) -> Any:
        """``task``'s dict, without storing anything (a task with none reads as empty)."""
        data = task_context(task).get(self.var, self.unbound)
        if data is self.unbound:
            self.context._check_served(task.get_loop())
            return {}
        return data

    def edit_of(
        self, task: asyncio.Task[Any], change: Callable[[MutableMapping[Any, Any]], _T]
    ) -> _T:
        """Apply ``change`` to ``task``'s data as one write made in that task's context.

        Raises:
            TaskContextError: The write cannot be made now: ``task``'s loop runs in another
                thread, or the task is running (it created an eager task that is writing).
        """
        loop = task.get_loop()
        if loop.is_running() and asyncio._get_running_loop() is not loop:
            raise TaskContextError(
                f"cannot write the data of {task!r} from another thread while its loop runs: "
                "write it from code on that loop (loop.call_soon_threadsafe), or hand the "
                "values back to the task and write them there"
            )
        self.value_of(task)  # raises if the task has no data and cannot get any
        context = task_context(task)
        try:
            context.run(_noop)
        except RuntimeError:
            raise TaskContextError(
                f"cannot write the data of {task!r} while it is running (an eager task it is "
                "creating writes its parent's data, say): write it from the task itself, "
                "after create_task() returns"
            ) from None
        return context.run(self._replace, change)

    def _replace(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        value = self.var.get()
        data: dict[Any, Any] = {} if value is self.unbound else value.copy()
        result = change(data)
        self.var.set(data)
        return result


class DeepCopyModel(CopyModel):
    """The data model of ``DeepCopy()``: a dict replaced on every write, deep-copied at spawn
    and when restored."""

    __slots__ = ()
    at_spawn = WORK

    def holding(self, values: Mapping[Any, Any]) -> Any:
        return self.policy.inherit(dict(values))

    def setter(self) -> Callable[[dict[Any, Any]], contextvars.Token[Any]]:
        return DataModel.setter(self)  # a deep copy, as restore() makes

    def spawn(self, parent: Any, spawn: Spawn) -> None:
        if parent is not self.unbound:
            spawn.children.append((self.var, self.policy.inherit(parent)))


class CopyView(MutableMapping[Any, Any]):
    """The live mapping ``data()`` returns under ``Copy()`` and ``DeepCopy()``.

    It belongs to one task (``None``: the code that made it, outside tasks): each change is
    stored as that task's new data, exactly as ``ctx[key] = value`` does there. Used outside
    its task it reads that task's data (Python 3.12+) and writes it where that can be done
    safely (see :meth:`CopyModel.edit_of`); bulk changes are one write.
    """

    __slots__ = ("_model", "_task")

    def __init__(self, model: CopyModel, task: asyncio.Task[Any] | None) -> None:
        self._model = model
        self._task = task

    def __repr__(self) -> str:
        return repr(self._current())

    def _elsewhere(self) -> asyncio.Task[Any] | None:
        """The view's task if the running code is not that task, else ``None``."""
        task = self._task
        return None if task is None or task is current_task() else task

    def _current(self) -> dict[Any, Any]:
        task = self._elsewhere()
        if task is None:
            return self._model.current()  # type: ignore[no-any-return]
        return self._model.value_of(task)  # type: ignore[no-any-return]

    def _edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        task = self._elsewhere()
        if task is None:
            return self._model.edit(change)
        return self._model.edit_of(task, change)

    def __getitem__(self, key: Any, /) -> Any:
        return self._current()[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        self._edit(lambda data: data.__setitem__(key, value))

    def __delitem__(self, key: Any, /) -> None:
        self._edit(lambda data: data.__delitem__(key))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __contains__(self, key: object, /) -> bool:
        return key in self._current()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Write every pair as one change (one copy of the data)."""
        items = dict(other, **kwargs)
        self._edit(lambda data: data.update(items))

    def clear(self) -> None:
        """Remove every key as one change."""
        self._edit(lambda data: data.clear())
