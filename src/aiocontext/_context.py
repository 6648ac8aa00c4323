"""``Context``: a typed, task-local mapping that follows the work into child tasks.

How it works, in one place:

* Each :class:`Context` owns one :class:`contextvars.ContextVar` whose value, in a given
  ``contextvars`` context, is that task's live mapping. Reads and writes go straight to it.
* When a loop with the context attached creates a task, its
  :class:`~aiocontext.TaskFactoryWrapper` computes the child's mapping with the context's
  :class:`~aiocontext.PropagationPolicy` and puts it into the task's ``contextvars`` context
  before the first step runs (see ``_task_factory``).
* Where a task has no mapping, the variable holds the context's *unbound* marker: it is the
  variable's default, and after ``detach`` the wrapper gives new tasks the marker instead of
  their creator's data. The marker is a mapping whose every method resolves it: to
  ``policy.root()``, stored for the task, on a loop where the context is attached; anywhere
  else to an error, so a misconfiguration is never silent. Reads therefore need no check:
  ``ctx[key]`` is ``var.get()[key]``.
* ``Copy()`` data is a :class:`~aiocontext._policy.CowDict` that a parent and its children
  share copy-on-write. The methods here that write (or hand the mapping out) copy it first
  when it is shared, so every task observes exactly a shallow copy.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, overload

import attrs
from typing_extensions import Self, TypeVar

from ._errors import EventLoopError, TaskContextError, TaskFactoryError
from ._policy import ESCAPED, SHARED, Copy, CowDict, PropagationPolicy
from ._registry import ContextRegistry, default_registry
from ._task_factory import TaskFactoryWrapper, check_loop

__all__ = ["Context"]

K = TypeVar("K", default=str)
V = TypeVar("V", default=Any)
_T = TypeVar("_T")


def _check_policy(_instance: object, _attribute: object, policy: Any) -> None:
    if isinstance(policy, PropagationPolicy):
        return
    if isinstance(policy, type) and issubclass(policy, PropagationPolicy):
        raise TypeError(
            f"policy must be a PropagationPolicy instance, got the class {policy.__name__}: "
            f"write policy={policy.__name__}()"
        )
    raise TypeError(
        f"policy must be a PropagationPolicy instance such as Copy() or Share(), "
        f"got {type(policy).__name__} {policy!r}"
    )


def _check_name(_instance: object, _attribute: object, name: Any) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")


def _check_task(task: object) -> asyncio.Task[Any]:
    if not isinstance(task, asyncio.Task):
        raise TypeError(f"task must be an asyncio.Task, got {type(task).__name__} {task!r}")
    return task


if sys.version_info >= (3, 12):

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        return task.get_context()

else:

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        raise NotImplementedError(
            "reading another task's data needs Task.get_context(), new in Python 3.12: "
            "read it from inside that task instead"
        )


def _registry_or_default(registry: ContextRegistry | None) -> ContextRegistry:
    return default_registry() if registry is None else registry


def _check_registry(_instance: object, _attribute: object, registry: Any) -> None:
    if not isinstance(registry, ContextRegistry):
        raise TypeError(
            f"registry must be a ContextRegistry or None (the default registry), "
            f"got {type(registry).__name__} {registry!r}"
        )


@attrs.define(eq=False, repr=False)
class Context(MutableMapping[K, V]):
    """A dict-like value that every task on an attached loop has its own copy of.

    Attach it to a loop and each task created there starts with data derived from its
    creator's by the context's ``policy``: shared, copied, deep-copied or layered. The
    mapping methods (``ctx[key]``, ``get``, ``in``, ``len``, iteration, ``update``, ...) act
    on the current task's data.

    Args:
        policy: What a child task gets (default :class:`~aiocontext.Copy`).
        name: A name for reprs and error messages.
        registry: The registry recording where the context is attached (``None``: the
            process-wide default registry).

    Raises:
        TypeError: ``policy`` is not a PropagationPolicy instance, or another argument has
            the wrong type.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context, loop_factory
        >>> request = Context(name="request")
        >>> async def child():
        ...     return request["id"]
        >>> async def main():
        ...     request["id"] = "r-42"
        ...     return await asyncio.create_task(child())
        >>> with asyncio.Runner(loop_factory=loop_factory(request)) as runner:
        ...     runner.run(main())
        'r-42'
    """

    _policy: PropagationPolicy = attrs.field(default=Copy(), validator=_check_policy)
    _name: str | None = attrs.field(default=None, kw_only=True, validator=_check_name)
    _registry: ContextRegistry = attrs.field(
        default=None, kw_only=True, converter=_registry_or_default, validator=_check_registry
    )
    _unbound: _Unbound = attrs.field(init=False)
    _var: contextvars.ContextVar[MutableMapping[K, V]] = attrs.field(init=False)

    @_unbound.default
    def _make_unbound(self) -> _Unbound:
        return _Unbound(self)

    @_var.default
    def _make_var(self) -> contextvars.ContextVar[MutableMapping[K, V]]:
        name = f"aiocontext.Context({self._name!r})"
        return contextvars.ContextVar(name, default=self._unbound)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Context(policy={self._policy!r}, name={self._name!r})"

    def __eq__(self, other: object) -> bool:
        """Identity against a Context; the current data compared like a dict against a Mapping."""
        if isinstance(other, Context):
            return self is other
        if isinstance(other, Mapping):
            return dict(self._var.get()) == dict(other)
        return NotImplemented

    @property
    def policy(self) -> PropagationPolicy:
        """The propagation policy given at construction."""
        return self._policy

    @property
    def name(self) -> str | None:
        """The name given at construction, if any."""
        return self._name

    @property
    def registry(self) -> ContextRegistry:
        """The registry recording where this context is attached."""
        return self._registry

    @property
    def unbound(self) -> MutableMapping[K, V]:
        """The marker a task holds where it has no data (internal, for the task factory)."""
        return self._unbound

    # -- attachment ------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> Self:
        """Attach the context to ``loop`` (default: the running loop); idempotent.

        Installs a :class:`~aiocontext.TaskFactoryWrapper` around the loop's task factory if
        it has none. Tasks the loop creates from now on get data for this context.

        Returns:
            The context itself, so ``ctx = Context().attach(loop)`` works.

        Raises:
            EventLoopError: ``loop`` is ``None`` and no loop is running, or the loop is closed.
            TypeError: ``loop`` is not an event loop.
        """
        self._registry.attach(self, self._loop_or_running(loop, "attach"))
        return self

    def detach(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Detach the context from ``loop`` (default: the running loop); idempotent.

        Tasks created on the loop afterwards have no data (access raises
        :class:`~aiocontext.TaskContextError`); existing tasks keep theirs. Never raises for
        a context that is not attached anywhere.

        Raises:
            EventLoopError: ``loop`` is ``None``, no loop is running and the context is
                attached to some loop (name it: ``ctx.detach(loop)``).
            TypeError: ``loop`` is not an event loop.
        """
        if loop is None and asyncio._get_running_loop() is None and not self._registry.loops(self):
            return
        self._registry.detach(self, self._loop_or_running(loop, "detach"))

    def is_attached(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Return whether the context is attached to ``loop`` (default: the running loop).

        Returns ``False`` when ``loop`` is ``None`` and no loop is running.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        if loop is None:
            loop = asyncio._get_running_loop()
            if loop is None:
                return False
        return self._registry.is_attached(self, check_loop(loop))

    def _loop_or_running(
        self, loop: asyncio.AbstractEventLoop | None, verb: str
    ) -> asyncio.AbstractEventLoop:
        if loop is not None:
            return check_loop(loop)
        running = asyncio._get_running_loop()
        if running is None:
            raise EventLoopError(
                f"{self!r}.{verb}() needs a loop: no event loop is running in this thread, "
                f"so pass one: ctx.{verb}(loop)"
            )
        return running

    # -- the current task's data -----------------------------------------------------------

    def data(self, task: asyncio.Task[Any] | None = None) -> MutableMapping[K, V]:
        """Return the live mapping of the current task, or of ``task``.

        Writes to the returned mapping are writes to the context, for that task.

        Args:
            task: Another task whose data to read. Needs Python 3.12+ unless it is the
                current task.

        Raises:
            EventLoopError: No data here and no loop is running.
            TaskContextError: No data here and the context is not attached to the loop.
            NotImplementedError: ``task`` is another task and Python is 3.11.
            TypeError: ``task`` is not an asyncio task.
        """
        if task is not None:
            loop = _check_task(task).get_loop()
            if task is not asyncio.current_task(loop) or loop is not asyncio._get_running_loop():
                return self._data_of(task, loop)
        data = self._var.get()
        if data is self._unbound:
            return self._missing()
        if isinstance(data, CowDict):
            return _escape(data, self._var.set)
        return data

    def _data_of(
        self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop
    ) -> MutableMapping[K, V]:
        """Another task's data: read in, and if need be stored into, its contextvars context."""
        task_context = _task_context(task)
        data = task_context.get(self._var)
        if data is None or data is self._unbound:
            data = self._root_for(loop)
            task_context.run(self._var.set, data)
        if isinstance(data, CowDict):
            return _escape(data, lambda private: task_context.run(self._var.set, private))
        return data

    def _missing(self) -> MutableMapping[K, V]:
        """Give the current code its root data, or raise the error that says what is wrong."""
        loop = asyncio._get_running_loop()
        if loop is None:
            raise EventLoopError(
                f"{self!r} has no data here: no event loop is running in this thread. Use it "
                "from a task on a loop it is attached to, e.g. "
                "asyncio.run(main(), loop_factory=aiocontext.loop_factory(ctx))"
            )
        data = self._root_for(loop)
        self._var.set(data)
        return data

    def _root_for(self, loop: asyncio.AbstractEventLoop) -> MutableMapping[K, V]:
        wrapper = TaskFactoryWrapper.of(loop)
        if wrapper is not None and wrapper.propagates(self):
            return self._policy.root()
        if self._registry.is_attached(self, loop):
            raise TaskFactoryError(
                f"{self!r} is attached to {loop!r} but the loop's task factory was replaced "
                "since, so tasks no longer get their data: set custom task factories before "
                "attaching, or call ctx.attach(loop) again to wrap the new one"
            )
        raise TaskContextError(
            f"{self!r} is not attached to the running loop {loop!r}, so this task has no "
            "data: attach it before creating tasks, e.g. ctx.attach() at the start of main() "
            "or asyncio.run(main(), loop_factory=aiocontext.loop_factory(ctx))"
        )

    def _writable(self) -> MutableMapping[K, V]:
        """The current data, copied first if it is shared copy-on-write with other tasks."""
        data = self._var.get()
        if data.__class__ is CowDict and data.state == SHARED:
            data = CowDict(data)
            self._var.set(data)
        return data

    # -- MutableMapping ----------------------------------------------------------------------
    # Reads go straight to the data; the unbound marker resolves itself where there is none.

    def __getitem__(self, key: K, /) -> V:
        return self._var.get()[key]

    def __setitem__(self, key: K, value: V, /) -> None:
        self._writable()[key] = value

    def __delitem__(self, key: K, /) -> None:
        del self._writable()[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._var.get())

    def __len__(self) -> int:
        return len(self._var.get())

    def __contains__(self, key: object, /) -> bool:
        return key in self._var.get()

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: _T, /) -> V | _T: ...
    def get(self, key: K, default: object = None, /) -> object:
        """Return the current task's value for ``key``, or ``default`` if it has none.

        Raises:
            EventLoopError: The current code has no data and no loop is running.
            TaskContextError: The current code has no data and the context is not attached
                to the running loop: a default never hides a misconfiguration.
        """
        return self._var.get().get(key, default)


def _escape(data: CowDict[K, V], store: Callable[[CowDict[K, V]], object]) -> CowDict[K, V]:
    """Make copy-on-write ``data`` safe to hand out: private to its task, never shared again."""
    if data.state == SHARED:
        data = CowDict(data)
        store(data)
    data.state = ESCAPED
    return data


class _Unbound(MutableMapping[Any, Any]):
    """What a task holds for a context where it has no data.

    Any access resolves it through :meth:`Context._missing`: to the policy's root, stored for
    the task, on a loop where the context is attached; otherwise to the error that says what
    is wrong.
    """

    __slots__ = ("_context",)

    def __init__(self, context: Context[Any, Any]) -> None:
        self._context = context

    def __repr__(self) -> str:
        return f"<no data for {self._context!r}>"

    def __getitem__(self, key: Any, /) -> Any:
        return self._context._missing()[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        self._context._missing()[key] = value

    def __delitem__(self, key: Any, /) -> None:
        del self._context._missing()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._context._missing())

    def __len__(self) -> int:
        return len(self._context._missing())
