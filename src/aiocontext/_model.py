"""The interface every data model implements, and what one spawn collects.

A :class:`~aiocontext.Context` picks one data model when it is made (``_models.model_for``)
and delegates to it everything that depends on how its policy holds data: where a write
goes, what a child task starts with, what ``data()`` returns. Reads do not go through the
model: ``ctx[key]`` is ``var.get()[key]`` under every policy.
"""

# pyright: reportPrivateUsage=false
# (A model is the context's own part: it calls the context's _missing and _check_served.)

from __future__ import annotations

import abc
import asyncio
import contextvars
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from ._data import current_task, task_context
from ._policy import PropagationPolicy

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["CHECK", "FREE", "OWNER", "WORK", "DataModel", "Spawn"]

_T = TypeVar("_T")

#: What a spawn needs for a context, by model (see ``DataModel.at_spawn``).
FREE: Final = 0  # nothing at all: contextvars gives the child its data (or lazily its root)
CHECK: Final = 1  # nothing when the creator has data
OWNER: Final = 2  # nothing when the creator has data that it owns
WORK: Final = 3  # always ``spawn()``


#: ``Spawn``'s creator before it is looked up.
_UNKNOWN: Final = object()


class Spawn:
    """What one task creation collects from the data models, before the task exists.

    ``given`` is the ``contextvars`` context passed as ``create_task(..., context=...)``, or
    ``None``: the task runs in a copy of the caller's.
    """

    __slots__ = ("_creator", "adopted", "children", "coro", "given", "loop", "pending")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, coro: object, given: contextvars.Context | None
    ) -> None:
        self.loop = loop
        self.coro = coro
        self.given = given
        self._creator: Any = _UNKNOWN  # (not ``self``: a cycle would wait for the GC)
        #: What the child's context gets, what the creator gets once the child exists
        #: (rule 3), and data whose owner is the task being made.
        self.children: list[tuple[contextvars.ContextVar[Any], Any]] = []
        self.adopted: list[tuple[contextvars.ContextVar[Any], Any]] = []
        self.pending: list[Any] = []

    def creator(self) -> asyncio.Task[Any] | None:
        """The creating task (``None``: code outside tasks, or an explicit ``context=``)."""
        if self._creator is _UNKNOWN:
            self._creator = None if self.given is not None else asyncio.current_task(self.loop)
        return self._creator  # type: ignore[no-any-return]


class DataModel(abc.ABC):
    """How a context's data is held, for one policy: one object per context.

    Args:
        context: The context whose data this is.
    """

    __slots__ = ("context", "policy", "unbound", "var")

    #: What the task factory does for this model (``FREE``, ``CHECK``, ``OWNER``, ``WORK``).
    at_spawn: ClassVar[int] = FREE

    def __init__(self, context: Context[Any, Any]) -> None:
        self.context = context
        self.policy: PropagationPolicy = context._policy
        self.var: contextvars.ContextVar[Any] = context._var
        self.unbound: Any = context._unbound

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.context!r}>"

    def current(self) -> Any:
        """The variable's value for the running code, root data first if it has none."""
        data = self.var.get()
        return self.context._missing() if data is self.unbound else data

    def task_value(self, task: asyncio.Task[Any]) -> Any:
        """``task``'s value of the variable (Python 3.12+), root data stored first if it has
        none."""
        context = task_context(task)
        data = context.get(self.var, self.unbound)
        if data is self.unbound:
            self.context._check_served(task.get_loop())
            data = self.root(task)
            context.run(self.var.set, data)
        return data

    # -- making data ---------------------------------------------------------------------

    @abc.abstractmethod
    def root(self, owner: object, coro: object = None) -> Any:
        """The variable's value for new root data, owned by ``owner`` (a task, ``None`` or
        ``PENDING`` with the coroutine ``coro`` of the task being made)."""

    @abc.abstractmethod
    def holding(self, values: Mapping[Any, Any]) -> Any:
        """The variable's value for ``restore(values)`` in the running code: a private copy."""

    def setter(self) -> Callable[[dict[Any, Any]], contextvars.Token[Any]]:
        """How to make a new ``dict`` the running code's data (the request middlewares'
        ``restore()``): a callable that sets the variable to what :meth:`holding` makes of it
        and returns the ``var.set`` token. Its caller gives the dict up."""
        var, holding = self.var, self.holding

        def set_holding(values: dict[Any, Any]) -> contextvars.Token[Any]:
            return var.set(holding(values))

        return set_holding

    def spawn(self, parent: Any, spawn: Spawn) -> None:  # noqa: B027 - a hook, empty by default
        """Add to ``spawn`` what a child of code whose value is ``parent`` needs."""

    # -- writing -------------------------------------------------------------------------

    @abc.abstractmethod
    def writer(self) -> Callable[[Any, Any], None]:
        """The function ``ctx[key] = value`` calls, made once per context: it writes in the
        running code. (A closure over the variable: a write is the hot path after reads,
        and a closure looks nothing up.)"""

    @abc.abstractmethod
    def edit(self, change: Callable[[MutableMapping[Any, Any]], _T]) -> _T:
        """Apply ``change`` to the running code's data as one write, and return its result."""

    def own(self) -> Mapping[Any, Any]:
        """The keys the running code holds itself (under ``ChainMap()``, its own layer)."""
        return self.current()  # type: ignore[no-any-return]

    # -- live mappings -------------------------------------------------------------------

    @abc.abstractmethod
    def view(self) -> MutableMapping[Any, Any]:
        """What ``data()`` returns in the running code."""

    def here(self) -> MutableMapping[Any, Any]:
        """What ``data()`` returns, for code that keeps it no longer than it runs."""
        return self.view()

    @abc.abstractmethod
    def data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        """What ``data(task)`` returns for another task (Python 3.12+)."""

    # -- scoped binds --------------------------------------------------------------------

    def bind(self, items: dict[Any, Any]) -> Any:
        """Set ``items`` for a ``bound()`` block; return what :meth:`unbind` needs.

        The default: the block belongs to the running task (or code outside tasks); exited
        anywhere else it restores nothing, so it never writes another task's data.
        """
        own = self.own()
        saved = {key: own.get(key, _ABSENT) for key in items}
        self.edit(lambda data: data.update(items))
        return current_task(), saved

    def unbind(self, token: Any) -> None:
        """End a ``bound()`` block: put back what :meth:`bind` replaced."""
        task, saved = token
        if current_task() is task:
            self.edit(lambda data: _put_back(data, saved))


class _Absent:
    """The type of :data:`ABSENT`."""

    __slots__ = ()


#: What a key was before a ``bound()`` block that set it, when the data did not hold it.
_ABSENT: Final = _Absent()


def _put_back(data: MutableMapping[Any, Any], saved: Mapping[Any, Any]) -> None:
    for key, value in saved.items():
        if value is _ABSENT:
            data.pop(key, None)
        else:
            data[key] = value


ABSENT = _ABSENT
put_back = _put_back
