"""The core: ``Context``, the ``ContextRegistry`` and the ``TaskFactoryWrapper``.

The three public classes name each other in their signatures, so they live in one module
(nothing is handed between modules at import time). The design in one screen:

* Each :class:`Context` owns one :class:`contextvars.ContextVar`. Its value in a
  ``contextvars`` context is that code's data, held so that isolation comes from
  ``contextvars`` itself (see ``_data``): under ``Copy()`` and ``DeepCopy()`` a ``dict``
  that is replaced, never changed, by each write; under ``Share()`` the tree's one mapping;
  under ``ChainMap()`` layers whose top one only its owning task writes in place.
* So reads are ``var.get()[key]`` and a ``Copy()`` write is
  ``data = data.copy(); data[key] = value; var.set(data)``. Every task, callback and ``to_thread`` worker runs in a
  copy of its creator's ``contextvars`` context and therefore starts with exactly its
  creator's data, whether or not the task factory ran (aiohttp creates its tasks with
  ``asyncio.Task(...)`` directly).
* The :class:`TaskFactoryWrapper` on an attached loop adds only what a spawn needs beyond
  that: a deep copy under ``DeepCopy()``, ``policy.inherit`` for custom policies, root data
  for a creator that has none (so ``Share()`` holds from the first spawn), and no data for
  contexts detached from the loop. With only ``Copy()`` contexts it does nothing at all.
* Code with no data holds the context's :class:`~aiocontext._data.Unbound` marker, which
  resolves to root data on an attached loop and to an error anywhere else.
* The :class:`ContextRegistry` records which contexts are attached to which loops and keeps
  each loop's wrapper in step.
"""

# pyright: reportPrivateUsage=false
# (Context, its registry and its task factory are one design: they read each other's parts.)

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import weakref
from collections.abc import Coroutine, Generator, Iterator, Mapping, MutableMapping
from types import TracebackType
from typing import Any, Final, Generic, cast, overload

import attrs
from typing_extensions import Self, TypeIs, TypeVar

from ._data import (
    CHAIN,
    COPY,
    OTHER,
    PENDING,
    SHARE,
    Owned,
    Unbound,
    current_task,
    in_own_context,
    mode_of,
    owner_ref,
)
from ._errors import EventLoopError, TaskContextError, TaskFactoryError
from ._key import MISSING, Key
from ._loops import ATTACH_LOCK, TaskFactory, check_loop, trim_source_traceback
from ._policy import Copy, DeepCopy, Layers, PropagationPolicy, layers_over

__all__ = ["Context", "ContextRegistry", "TaskFactoryWrapper", "check_context", "is_context"]

K = TypeVar("K", default=str)
V = TypeVar("V", default=Any)
_T = TypeVar("_T")
_D = TypeVar("_D")

_get_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task


# -- argument checks ------------------------------------------------------------------------


def _check_policy(_instance: object, _attribute: object, policy: object) -> None:
    if isinstance(policy, PropagationPolicy):
        return
    if PropagationPolicy in getattr(policy, "__mro__", ()):  # the class, not an instance
        name = getattr(policy, "__name__", "Policy")
        fix = (
            "subclass it and pass an instance of your subclass"
            if policy is PropagationPolicy
            else f"write policy={name}()"
        )
        raise TypeError(f"policy must be a PropagationPolicy instance, got the class {name}: {fix}")
    raise TypeError(
        f"policy must be a PropagationPolicy instance such as Copy() or Share(), "
        f"got {type(policy).__name__} {policy!r}"
    )


def _check_name(_instance: object, _attribute: object, name: Any) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")


def is_context(value: object) -> TypeIs[Context[Any, Any]]:
    """Whether ``value`` is a Context (a type guard for the integrations' argument checks)."""
    return isinstance(value, Context)


def check_context(context: object) -> Context[Any, Any]:
    """Return ``context`` if it is a :class:`~aiocontext.Context`, else raise ``TypeError``."""
    if not is_context(context):
        raise TypeError(f"expected an aiocontext.Context, got {type(context).__name__} {context!r}")
    return context


def _is_task(value: object) -> TypeIs[asyncio.Task[Any]]:
    return isinstance(value, asyncio.Task)


def _is_mapping(value: object) -> TypeIs[Mapping[Any, Any]]:
    return isinstance(value, Mapping)


def _is_key(value: object) -> TypeIs[Key[Any]]:
    return isinstance(value, Key)


def _check_task(task: object) -> asyncio.Task[Any]:
    if not _is_task(task):
        raise TypeError(f"task must be an asyncio.Task, got {type(task).__name__} {task!r}")
    return task


def _check_registry(_instance: object, _attribute: object, registry: Any) -> None:
    if not isinstance(registry, ContextRegistry):
        raise TypeError(
            f"registry must be a ContextRegistry or None (the default registry), "
            f"got {type(registry).__name__} {registry!r}"
        )


def _registry_or_default(registry: ContextRegistry | None) -> ContextRegistry:
    return _DEFAULT_REGISTRY if registry is None else registry


if sys.version_info >= (3, 12):

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        return task.get_context()

else:

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        raise NotImplementedError(
            "reading another task's data needs Task.get_context(), new in Python 3.12: "
            "read it from inside that task instead"
        )


def _new_unbound(context: Context[Any, Any]) -> Unbound:
    return Unbound(repr(context), context._missing)


def _new_var(context: Context[Any, Any]) -> contextvars.ContextVar[Any]:
    return contextvars.ContextVar(f"aiocontext.Context({context.name!r})", default=context._unbound)


# -- ContextRegistry --------------------------------------------------------------------------

_LoopContexts = weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, "tuple[Context[Any, Any], ...]"
]


@attrs.define(eq=False, repr=False)
class ContextRegistry:
    """Records which contexts are attached to which event loops.

    Every :class:`~aiocontext.Context` belongs to one registry (the process-wide default one
    unless given another), and ``ctx.attach(loop)`` is ``registry.attach(ctx, loop)``. Use a
    registry of your own to keep a library's contexts apart from the application's.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context
        >>> registry = ContextRegistry()
        >>> ctx = Context(name="request", registry=registry)
        >>> loop = asyncio.new_event_loop()
        >>> registry.attach(ctx, loop)
        >>> registry.contexts(loop) == (ctx,), registry.is_attached(ctx, loop)
        (True, True)
        >>> registry.detach(ctx, loop)
        >>> registry.contexts(loop)
        ()
        >>> loop.close()
    """

    _loops: _LoopContexts = attrs.field(factory=lambda: _LoopContexts(), init=False)

    def __repr__(self) -> str:
        return f"<ContextRegistry of {len(self._loops)} loop(s) at {id(self):#x}>"

    def attach(self, context: Context[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        """Attach ``context`` to ``loop`` and install the task-factory wrapper; idempotent.

        Raises:
            TypeError: ``context`` is not a Context or ``loop`` is not an event loop.
            EventLoopError: ``loop`` is closed.
        """
        check_context(context)
        if check_loop(loop).is_closed():
            raise EventLoopError(
                f"cannot attach {context!r} to a closed loop: attach it to the loop that "
                "will run your tasks, before they are created"
            )
        with ATTACH_LOCK:
            wrapper = TaskFactoryWrapper.install(loop, self)
            contexts = self._loops.get(loop, ())
            if not any(attached is context for attached in contexts):
                self._loops[loop] = (*contexts, context)
                wrapper.refresh(loop)

    def detach(self, context: Context[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        """Detach ``context`` from ``loop``; a no-op if it is not attached.

        Tasks the loop creates afterwards start with no data for ``context``; tasks that
        already exist keep theirs.

        Raises:
            TypeError: ``context`` is not a Context or ``loop`` is not an event loop.
        """
        check_context(context)
        check_loop(loop)
        with ATTACH_LOCK:
            contexts = self._loops.get(loop, ())
            if not any(attached is context for attached in contexts):
                return
            remaining = tuple(attached for attached in contexts if attached is not context)
            if remaining:
                self._loops[loop] = remaining
            else:
                del self._loops[loop]
            wrapper = TaskFactoryWrapper.of(loop)
            if wrapper is not None:
                wrapper.refresh(loop)

    def contexts(self, loop: asyncio.AbstractEventLoop) -> tuple[Context[Any, Any], ...]:
        """Return the contexts attached to ``loop``, in attach order.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        return self._loops.get(check_loop(loop), ())

    def is_attached(self, context: Context[Any, Any], loop: asyncio.AbstractEventLoop) -> bool:
        """Return whether ``context`` is attached to ``loop``.

        Raises:
            TypeError: ``context`` is not a Context or ``loop`` is not an event loop.
        """
        check_context(context)
        return any(attached is context for attached in self.contexts(loop))

    def loops(self, context: Context[Any, Any]) -> tuple[asyncio.AbstractEventLoop, ...]:
        """Return the live loops ``context`` is attached to.

        Raises:
            TypeError: ``context`` is not a Context.
        """
        check_context(context)
        with ATTACH_LOCK:
            return tuple(
                loop
                for loop, contexts in self._loops.items()
                if any(attached is context for attached in contexts)
            )

    def forget(self, loop: asyncio.AbstractEventLoop) -> None:
        """Detach every context from ``loop`` without touching its task factory (internal)."""
        with ATTACH_LOCK:
            self._loops.pop(loop, None)


_DEFAULT_REGISTRY: Final = ContextRegistry()


# -- Context ----------------------------------------------------------------------------------


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

    _policy: PropagationPolicy = attrs.field(
        default=Copy(), validator=_check_policy, alias="policy"
    )
    _name: str | None = attrs.field(default=None, kw_only=True, validator=_check_name, alias="name")
    _registry: ContextRegistry = attrs.field(
        default=None,
        kw_only=True,
        converter=_registry_or_default,
        validator=_check_registry,
        alias="registry",
    )
    _mode: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: mode_of(self._policy), takes_self=True)
    )
    _unbound: Unbound = attrs.field(
        init=False, default=attrs.Factory(_new_unbound, takes_self=True)
    )
    _var: contextvars.ContextVar[Any] = attrs.field(
        init=False, default=attrs.Factory(_new_var, takes_self=True)
    )

    __hash__ = object.__hash__  # pyright: ignore[reportAssignmentType] - Mapping sets None

    # -- the data path -----------------------------------------------------------------------
    # Reads go straight to the variable's value; the Unbound marker resolves itself where
    # there is none. Copy()/DeepCopy() writes store a new dict; the others write in place
    # into what ``_writable`` returns.

    @overload
    def __getitem__(self, key: Key[_T], /) -> _T: ...
    @overload
    def __getitem__(self, key: K, /) -> V: ...
    def __getitem__(self, key: Any, /) -> Any:
        try:
            return self._var.get()[key]
        except KeyError:
            if _is_key(key):
                return key.default_for(self.data())
            raise

    @overload
    def __setitem__(self, key: Key[_T], value: _T, /) -> None: ...
    @overload
    def __setitem__(self, key: K, value: V, /) -> None: ...
    def __setitem__(self, key: Any, value: Any, /) -> None:
        if self._mode is COPY:
            data = self._var.get()
            if data is self._unbound:
                data = self._missing()
            data = data.copy()  # a dict's copy() is its fastest copy (cheaper than {**data})
            data[key] = value
            self._var.set(data)
        else:
            self._writable()[key] = value

    def __delitem__(self, key: K | Key[Any], /) -> None:
        data = self._draft()
        del data[key]
        self._commit(data)

    def __iter__(self) -> Iterator[K]:
        return iter(self._var.get())

    def __len__(self) -> int:
        return len(self._var.get())

    def __contains__(self, key: object, /) -> bool:
        return key in self._var.get()

    def _resolved(self) -> Any:
        """The variable's value for the running code, root data first if it has none (a
        dict, layers or an ``Owned`` node, by the policy)."""
        data = self._var.get()
        return self._missing() if data is self._unbound else data

    def _writable(self) -> MutableMapping[Any, Any]:
        """What the running code writes in place (not under Copy(), whose data is replaced)."""
        data = self._resolved()
        if self._mode is SHARE:
            return data  # type: ignore[no-any-return]
        if self._mode is CHAIN:
            return self._own_layers(data)
        return data.mine()  # type: ignore[no-any-return]

    def _draft(self) -> MutableMapping[Any, Any]:
        """Where a write goes: under Copy() a new dict that ``_commit`` then stores."""
        if self._mode is COPY:
            return self._resolved().copy()  # type: ignore[no-any-return]
        return self._writable()

    def _commit(self, data: MutableMapping[Any, Any]) -> None:
        if self._mode is COPY:
            self._var.set(data)

    def _own_layers(self, layers: Layers[Any, Any]) -> Layers[Any, Any]:
        """Under ChainMap(): layers whose top one the running code may write in place.

        Only the owning task writes its layer in place (so that what it spawned sees its
        later writes). Any other task pushes a layer of its own first; code outside tasks,
        or in a copy of a task's context, never writes a layer another copy can see.
        """
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
            mine = layers_over([dict(layers.maps[0]), *layers.maps[1:]])
        else:
            mine = layers_over([{}, *layers.maps])
        mine.owner = owner_ref(task)
        self._var.set(mine)
        return mine

    def _missing(self) -> Any:
        """Give the running code root data, or raise the error that says why not."""
        loop = _get_running_loop()
        if loop is None:
            raise EventLoopError(
                f"{self!r} has no data here: no event loop is running in this thread. Use it "
                "from a task on a loop it is attached to, e.g. "
                "asyncio.run(main(), loop_factory=aiocontext.loop_factory(ctx))"
            )
        self._check_served(loop)
        data = self._root_value(current_task())
        self._var.set(data)
        return data

    def _check_served(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise unless the context is attached to ``loop`` and its wrapper serves it."""
        wrapper = TaskFactoryWrapper.of(loop)
        if wrapper is not None and wrapper.propagates(self):
            return
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

    def _root_value(
        self, owner: object, coro: object = None, values: Mapping[Any, Any] | None = None
    ) -> Any:
        """What the variable holds for new root data (holding ``values``) owned by ``owner``."""
        root = self._policy.root()
        if values:
            root.update(values)
        if self._mode is CHAIN:
            layers = cast("Layers[Any, Any]", root)
            layers.owner, layers.coro = owner_ref(owner), coro
        elif self._mode is OTHER:
            return Owned(root, owner, self._var, self._policy, coro)
        return root

    # -- identity, properties ----------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Context(policy={self._policy!r}, name={self._name!r})"

    def __eq__(self, other: object) -> bool:
        """Identity against a Context; the current data compared like a dict against a Mapping."""
        if isinstance(other, Context):
            return self is other
        if _is_mapping(other):
            return dict(self._resolved()) == dict(other)
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
    def unbound(self) -> MutableMapping[Any, Any]:
        """The marker a task holds where it has no data (internal, for the task factory)."""
        return self._unbound

    # -- attachment ------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> Self:
        """Attach the context to ``loop`` (default: the running loop); idempotent.

        Installs a :class:`~aiocontext.TaskFactoryWrapper` around the loop's task factory if
        it has none. Tasks the loop creates from now on get data for this context, and
        code calling ``attach()`` from inside the loop gets its (root) data at once.

        Returns:
            The context itself, so ``ctx = Context().attach(loop)`` works.

        Raises:
            EventLoopError: ``loop`` is ``None`` and no loop is running, or the loop is closed.
            TypeError: ``loop`` is not an event loop.
        """
        loop = self._loop_or_running(loop, "attach")
        caller_root = None
        if loop is _get_running_loop() and self._var.get() is self._unbound:
            # The calling code gets its data now, so that what it starts before touching
            # the context shares it. (Made first: if root() raises, nothing has changed.)
            caller_root = self._root_value(current_task())
        self._registry.attach(self, loop)
        if caller_root is not None:
            self._var.set(caller_root)
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
        if loop is None and _get_running_loop() is None and not self._registry.loops(self):
            return
        self._registry.detach(self, self._loop_or_running(loop, "detach"))

    def is_attached(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Return whether the context is attached to ``loop`` (default: the running loop).

        Returns ``False`` when ``loop`` is ``None`` and no loop is running.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        if loop is None:
            loop = _get_running_loop()
            if loop is None:
                return False
        return self._registry.is_attached(self, check_loop(loop))

    def _loop_or_running(
        self, loop: asyncio.AbstractEventLoop | None, verb: str
    ) -> asyncio.AbstractEventLoop:
        if loop is not None:
            return check_loop(loop)
        running = _get_running_loop()
        if running is None:
            raise EventLoopError(
                f"{self!r}.{verb}() needs a loop: no event loop is running in this thread, "
                f"so pass one: ctx.{verb}(loop)"
            )
        return running

    # -- the live mapping ------------------------------------------------------------------

    def data(self, task: asyncio.Task[Any] | None = None) -> MutableMapping[K, V]:
        """Return the live mapping of the current task, or of ``task``.

        Writes to the returned mapping are writes to the context, for that task. Under
        ``Copy()`` and ``DeepCopy()`` it is a view that stores each change as the task's new
        data, exactly as ``ctx[key] = value`` does.

        Args:
            task: Another task whose data to read. Needs Python 3.12+ unless it is the
                current task.

        Raises:
            EventLoopError: No data here and no loop is running.
            TaskContextError: No data here and the context is not attached to the loop.
            NotImplementedError: ``task`` is another task and Python is 3.11.
            TypeError: ``task`` is not an asyncio task.
        """
        running = current_task()
        if task is not None and _check_task(task) is not running:
            return self._data_of(task)
        if self._mode is COPY:
            self._resolved()  # raises now if there is no data here
            return _CopyView(self, running)
        data: Any = self._writable()
        if self._mode is CHAIN and (running is None or data.owner() is not running):
            # Code outside tasks (or in a copy of a task's context) never writes a layer in
            # place: each write makes a new one, so the live mapping is the context itself.
            return _HereView(self)
        return data  # type: ignore[no-any-return]

    def _value_of(self, task: asyncio.Task[Any]) -> Any:
        """Another task's value of the variable, root data stored first if it has none."""
        task_context = _task_context(task)
        data = task_context.get(self._var, self._unbound)
        if data is self._unbound:
            self._check_served(task.get_loop())
            data = self._root_value(task)
            task_context.run(self._var.set, data)
        return data

    def _data_of(self, task: asyncio.Task[Any]) -> MutableMapping[Any, Any]:
        data = self._value_of(task)
        if self._mode is COPY:
            return _CopyView(self, task)
        if self._mode is SHARE or data.owner() is task:
            return data if self._mode is not OTHER else data.data  # type: ignore[no-any-return]
        if self._mode is CHAIN:
            layers = layers_over([{}, *data.maps])
            layers.owner = weakref.ref(task)
            _task_context(task).run(self._var.set, layers)
            return layers
        owned = Owned(self._policy.inherit(data.data), task, self._var, self._policy)
        _task_context(task).run(self._var.set, owned)
        return owned.data

    # -- the rest of the MutableMapping API ---------------------------------------------------

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: _D, /) -> V | _D: ...
    @overload
    def get(self, key: Key[_T], /) -> _T | None: ...
    @overload
    def get(self, key: Key[_T], default: _T, /) -> _T: ...
    @overload
    def get(self, key: Key[_T], default: _D, /) -> _T | _D: ...
    def get(self, key: Any, default: object = MISSING, /) -> object:
        """Return the current task's value for ``key``, or a default if it has none.

        The default is ``default`` if given, else the default of a :class:`~aiocontext.Key`
        that has one, else ``None``.

        Raises:
            EventLoopError: The current code has no data and no loop is running.
            TaskContextError: The current code has no data and the context is not attached
                to the running loop: a default never hides a misconfiguration.
        """
        try:
            return self._var.get()[key]
        except KeyError:
            if default is not MISSING:
                return default
            if _is_key(key) and key.has_default:
                return key.default_for(self.data())
            return None

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V, /) -> V: ...
    @overload
    def pop(self, key: K, default: _D, /) -> V | _D: ...
    @overload
    def pop(self, key: Key[_T], /) -> _T: ...
    @overload
    def pop(self, key: Key[_T], default: _T, /) -> _T: ...
    @overload
    def pop(self, key: Key[_T], default: _D, /) -> _T | _D: ...
    def pop(self, key: K | Key[Any], /, *default: object) -> object:
        """Remove ``key`` from the current task's data and return its value (or ``default``).

        Under ``ChainMap()`` only the task's own layer is searched, as
        :meth:`collections.ChainMap.pop` does.

        Raises:
            KeyError: ``key`` is not there and no default was given.
        """
        data = self._draft()
        value = data.pop(key, *default)
        self._commit(data)
        return value

    @overload
    def setdefault(self: Context[K, _T | None], key: K, default: None = None, /) -> _T | None: ...
    @overload
    def setdefault(self, key: K, default: V, /) -> V: ...
    @overload
    def setdefault(self, key: Key[_T], default: _T, /) -> _T: ...
    def setdefault(self, key: Any, default: Any = None, /) -> Any:
        """Return the current task's value for ``key``, first setting it to ``default`` if
        the task has none (a :class:`~aiocontext.Key`'s own default plays no part)."""
        data = self._draft()
        value = data.setdefault(key, default)
        self._commit(data)
        return value

    def popitem(self) -> tuple[K, V]:
        """Remove and return an item as the task's mapping chooses (for a dict, the last set;
        under ``ChainMap()``, one of the task's own layer).

        Raises:
            KeyError: The task's data (its own layer, under ``ChainMap()``) is empty.
        """
        data = self._draft()
        item = data.popitem()
        self._commit(data)
        return item

    def clear(self) -> None:
        """Remove every key from the current task's data (under ``ChainMap()``, its layer)."""
        data = self._draft()
        data.clear()
        self._commit(data)

    # -- scoped values and snapshots ---------------------------------------------------------

    @overload
    def bound(self, key: Key[_T], value: _T, /) -> Binding: ...
    @overload
    def bound(self, values: Mapping[K, V], /) -> Binding: ...
    @overload
    def bound(self: Context[str, V], /, **values: V) -> Binding: ...
    def bound(self, /, *args: Any, **values: Any) -> Binding:
        """Set keys for the duration of a ``with`` (or ``async with``) block.

        On exit the current task's previous values come back, and keys it did not have are
        removed, also when the block raises or is cancelled.

        Example:
            >>> import asyncio
            >>> from aiocontext import Context, loop_factory
            >>> ctx = Context(name="log")
            >>> async def main():
            ...     with ctx.bound(user="ann"):
            ...         inside = ctx["user"]
            ...     return inside, "user" in ctx
            >>> with asyncio.Runner(loop_factory=loop_factory(ctx)) as runner:
            ...     runner.run(main())
            ('ann', False)

        Raises:
            TypeError: The arguments are not ``(key, value)``, one mapping, or keywords.
        """
        if len(args) == 2 and not values and isinstance(args[0], Key):
            items: list[tuple[Any, Any]] = [(args[0], args[1])]
        elif len(args) == 1 and isinstance(args[0], Mapping):
            items = [*args[0].items(), *values.items()]
        elif not args:
            items = list(values.items())
        else:
            raise TypeError(
                "bound() takes a Key and its value, one mapping, or keywords: "
                "ctx.bound(KEY, value), ctx.bound({key: value}) or ctx.bound(key=value)"
            )
        return Binding(self, items)

    def _own(self) -> Mapping[Any, Any]:
        """The keys the running code holds itself (under ChainMap(), its own layer)."""
        if self._mode is COPY or self._mode is SHARE:
            return self._resolved()  # type: ignore[no-any-return]
        data: Any = self._writable()
        return data.maps[0] if self._mode is CHAIN else data  # type: ignore[no-any-return]

    def snapshot(self) -> dict[K, V]:
        """Return a plain ``dict`` copy of the current task's data.

        It pickles if the values (and keys) do, so it can cross into a process pool, where
        :meth:`restore` makes it the data of the code that runs there.

        Raises:
            EventLoopError, TaskContextError: The current code has no data.
        """
        return dict(self._resolved())

    def restore(self, snapshot: Mapping[K, V], /) -> Restoring[K, V]:
        """Make ``snapshot`` the current code's data for the duration of a ``with`` block.

        Works anywhere, even with no event loop: in a thread or process pool worker, or in a
        test. The data is a private copy of ``snapshot``; what it was before comes back on
        exit.

        Example:
            >>> from aiocontext import Context
            >>> ctx = Context(name="request")
            >>> with ctx.restore({"request_id": "r-7"}):
            ...     ctx["request_id"]
            'r-7'

        Raises:
            TypeError: ``snapshot`` is not a mapping.
        """
        if not isinstance(snapshot, Mapping):
            raise TypeError(
                f"restore() takes a mapping such as ctx.snapshot(), got "
                f"{type(snapshot).__name__} {snapshot!r}"
            )
        return Restoring(self, snapshot)


class Binding:
    """The context manager :meth:`Context.bound` returns (sync and async)."""

    __slots__ = ("_context", "_items", "_saved")

    def __init__(self, context: Context[Any, Any], items: list[tuple[Any, Any]]) -> None:
        self._context = context
        self._items = items
        self._saved: list[tuple[Any, bool, Any]] | None = None

    def __repr__(self) -> str:
        return f"<binding of {dict(self._items)!r} in {self._context!r}>"

    def __enter__(self) -> None:
        if self._saved is not None:
            raise RuntimeError(
                f"{self!r} is already in use: call ctx.bound(...) again for another block"
            )
        context = self._context
        own = context._own()
        self._saved = [(key, key in own, own.get(key)) for key, _ in self._items]
        for key, value in self._items:
            context[key] = value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        saved, self._saved = self._saved or [], None
        for key, was_there, value in reversed(saved):
            if was_there:
                self._context[key] = value
            else:
                self._context.pop(key, None)

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
    """The context manager :meth:`Context.restore` returns."""

    __slots__ = ("_context", "_snapshot", "_token")

    def __init__(self, context: Context[K, V], snapshot: Mapping[K, V]) -> None:
        self._context = context
        self._snapshot = dict(snapshot)
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> MutableMapping[K, V]:
        if self._token is not None:
            raise RuntimeError("this restore() block is already in use: call restore() again")
        context = self._context
        data = context._root_value(current_task(), values=self._snapshot)
        self._token = context._var.set(data)
        return context.data()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._context._var.reset(token)


class _HereView(MutableMapping[Any, Any]):
    """A live mapping that is the running code's data: every operation is the context's."""

    __slots__ = ("_context",)

    def __init__(self, context: Context[Any, Any]) -> None:
        self._context = context

    def __repr__(self) -> str:
        return repr(dict(self._context))

    def __getitem__(self, key: Any, /) -> Any:
        return self._context[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        self._context[key] = value

    def __delitem__(self, key: Any, /) -> None:
        del self._context[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._context)

    def __len__(self) -> int:
        return len(self._context)


class _CopyView(MutableMapping[Any, Any]):
    """The live mapping ``data()`` returns under Copy() and DeepCopy().

    It belongs to one task (``None``: the code that made it, outside tasks): each change is
    stored as that task's new data, exactly as ``ctx[key] = value`` does there. Used outside
    its task it reads and writes that task's ``contextvars`` context (Python 3.12+).
    """

    __slots__ = ("_context", "_task")

    def __init__(self, context: Context[Any, Any], task: asyncio.Task[Any] | None) -> None:
        self._context = context
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
            return self._context._resolved()  # type: ignore[no-any-return]
        return self._context._value_of(task)  # type: ignore[no-any-return]

    def _store(self, data: dict[Any, Any]) -> None:
        task = self._elsewhere()
        if task is None:
            self._context._var.set(data)
        else:
            _task_context(task).run(self._context._var.set, data)

    def __getitem__(self, key: Any, /) -> Any:
        return self._current()[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        data = self._current().copy()
        data[key] = value
        self._store(data)

    def __delitem__(self, key: Any, /) -> None:
        data = dict(self._current())
        del data[key]
        self._store(data)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __contains__(self, key: object, /) -> bool:
        return key in self._current()


# -- TaskFactoryWrapper -----------------------------------------------------------------------

# What a spawn does for one attached context, by policy (Copy() contexts need nothing).
_DEEP: Final = "deep"
# Per context that needs work at spawn: its variable, what to do, its policy, its Unbound
# marker and how to make its root data.
_Plan = tuple[tuple[contextvars.ContextVar[Any], str, PropagationPolicy, Unbound, Any], ...]
_Values = list[tuple[contextvars.ContextVar[Any], Any]]


def _check_inner(_instance: object, _attribute: object, inner: Any) -> None:
    if isinstance(inner, TaskFactoryWrapper):
        raise TaskFactoryError(
            "a TaskFactoryWrapper cannot wrap another TaskFactoryWrapper (every context would "
            "be propagated twice): wrap the wrapper's own inner factory instead"
        )
    if inner is not None and not callable(inner):
        raise TypeError(
            f"the inner task factory must be callable as factory(loop, coro, **kwargs) or be "
            f"None for asyncio.Task, got {type(inner).__name__} {inner!r}"
        )


def _spawn_kind(context: Context[Any, Any]) -> str:
    return _DEEP if context.policy.__class__ is DeepCopy else context._mode


@attrs.define(eq=False, repr=False)
class TaskFactoryWrapper:
    """The task factory that gives every new task what its contexts' policies need.

    One wrapper is installed per loop (``Context.attach`` does it for you). It wraps the
    factory the loop had before (``inner``; ``None`` means plain :class:`asyncio.Task`) and
    passes every keyword asyncio gives it (``name``, ``context``, ``eager_start``, ...) to
    that factory unchanged, so custom and eager factories keep working.

    Isolation does not depend on it: a task made without it (``asyncio.Task(...)``) runs in
    a copy of its creator's ``contextvars`` context and starts with its creator's data. The
    wrapper adds the deep copy of ``DeepCopy()``, the ``inherit`` of custom policies, root
    data for creators that have none, and no data for contexts detached from the loop.

    Args:
        inner: The factory to wrap, or ``None`` for :class:`asyncio.Task`.

    Example:
        >>> import asyncio
        >>> loop = asyncio.new_event_loop()
        >>> wrapper = TaskFactoryWrapper.install(loop)
        >>> TaskFactoryWrapper.of(loop) is wrapper, wrapper.inner
        (True, None)
        >>> TaskFactoryWrapper.uninstall(loop)
        >>> loop.get_task_factory() is None
        True
        >>> loop.close()
    """

    _inner: TaskFactory | None = attrs.field(default=None, validator=_check_inner)
    # Whether ``inner`` takes ``name=``: a two-argument factory does not (see _create).
    _named: bool = attrs.field(
        init=False, default=attrs.Factory(lambda self: _takes_name(self._inner), takes_self=True)
    )
    _registries: tuple[ContextRegistry, ...] = attrs.field(default=(), init=False)
    _contexts: tuple[Context[Any, Any], ...] = attrs.field(default=(), init=False)
    _detached: tuple[Context[Any, Any], ...] = attrs.field(default=(), init=False)
    _plan: _Plan = attrs.field(default=(), init=False)
    _detached_plan: tuple[tuple[contextvars.ContextVar[Any], Unbound], ...] = attrs.field(
        default=(), init=False
    )
    # The fast path of ``__call__``: every context's variable and marker, the ChainMap()
    # ones, and whether only Share(), Copy() and ChainMap() contexts are served.
    _quick: tuple[tuple[contextvars.ContextVar[Any], Unbound], ...] = attrs.field(
        default=(), init=False
    )
    _chains: tuple[contextvars.ContextVar[Any], ...] = attrs.field(default=(), init=False)
    _simple: bool = attrs.field(default=True, init=False)
    _one: tuple[contextvars.ContextVar[Any], Unbound, bool] | None = attrs.field(
        default=None, init=False
    )

    def __repr__(self) -> str:
        names = ", ".join(repr(ctx) for ctx in self._contexts)
        return f"TaskFactoryWrapper(inner={self._inner!r}, contexts=[{names}])"

    @property
    def inner(self) -> TaskFactory | None:
        """The wrapped factory (``None`` means :class:`asyncio.Task`); assignable.

        Raises:
            TypeError: When assigned something that is neither callable nor ``None``.
            TaskFactoryError: When assigned a :class:`TaskFactoryWrapper`.
        """
        return self._inner

    @inner.setter
    def inner(self, factory: TaskFactory | None) -> None:
        _check_inner(self, None, factory)
        self._inner, self._named = factory, _takes_name(factory)

    # -- installing on a loop --------------------------------------------------------------

    @classmethod
    def install(
        cls, loop: asyncio.AbstractEventLoop, registry: ContextRegistry | None = None
    ) -> TaskFactoryWrapper:
        """Install a wrapper on ``loop``, around the factory it has; idempotent.

        Args:
            loop: The event loop.
            registry: The registry whose contexts the wrapper propagates on this loop
                (``None``: the default registry). A wrapper serves any number of registries.

        Returns:
            The wrapper now installed (the one that was already there, if any).

        Raises:
            TypeError: ``loop`` is not an event loop, or ``registry`` not a registry.
        """
        check_loop(loop)
        if registry is not None and not isinstance(registry, ContextRegistry):
            raise TypeError(
                f"registry must be a ContextRegistry or None (the default registry), "
                f"got {type(registry).__name__} {registry!r}"
            )
        with ATTACH_LOCK:
            factory = loop.get_task_factory()
            if isinstance(factory, TaskFactoryWrapper):
                wrapper = factory
            else:
                wrapper = cls(factory)
                loop.set_task_factory(wrapper)
            registry = _registry_or_default(registry)
            if registry not in wrapper._registries:
                wrapper._registries = (*wrapper._registries, registry)
            wrapper.refresh(loop)
        return wrapper

    @classmethod
    def uninstall(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Put back the factory the wrapper on ``loop`` wrapped; a no-op without a wrapper.

        The loop is also forgotten by the registries the wrapper served: its contexts are no
        longer attached to it, and tasks created afterwards are no longer managed.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        check_loop(loop)
        with ATTACH_LOCK:
            wrapper = cls.of(loop)
            if wrapper is None:
                return
            loop.set_task_factory(wrapper._inner)
            for registry in wrapper._registries:
                registry.forget(loop)
            wrapper._registries = ()
            wrapper._contexts = wrapper._detached = ()
            wrapper._plan = wrapper._detached_plan = wrapper._quick = wrapper._chains = ()
            wrapper._simple, wrapper._one = True, None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> TaskFactoryWrapper | None:
        """Return the wrapper installed on ``loop``, or ``None``.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        factory = check_loop(loop).get_task_factory()
        return factory if isinstance(factory, TaskFactoryWrapper) else None

    def refresh(self, loop: asyncio.AbstractEventLoop) -> None:
        """Re-read which contexts are attached to ``loop`` from the registries (internal).

        Contexts that were propagated before and are not attached any more are remembered, so
        that tasks created from now on start without their creator's data for them.
        """
        with ATTACH_LOCK:
            contexts: dict[Context[Any, Any], None] = {}
            for registry in self._registries:
                contexts.update(dict.fromkeys(registry.contexts(loop)))
            gone = dict.fromkeys((*self._detached, *self._contexts))
            self._detached = tuple(ctx for ctx in gone if ctx not in contexts)
            self._contexts = tuple(contexts)
            self._plan = tuple(
                (ctx._var, _spawn_kind(ctx), ctx.policy, ctx._unbound, ctx._root_value)
                for ctx in contexts
            )
            self._quick = tuple((ctx._var, ctx._unbound) for ctx in contexts)
            self._chains = tuple(var for var, kind, _, _, _ in self._plan if kind is CHAIN)
            self._detached_plan = tuple((ctx._var, ctx._unbound) for ctx in self._detached)
            self._simple = not self._detached_plan and all(
                kind is COPY or kind is SHARE or kind is CHAIN for _, kind, _, _, _ in self._plan
            )
            self._one = (
                (*self._quick[0], bool(self._chains))
                if self._simple and len(self._quick) == 1
                else None
            )

    def propagates(self, context: Context[Any, Any]) -> bool:
        """Whether ``context`` is attached to this wrapper's loop (internal)."""
        return context in self._contexts

    # -- creating tasks ----------------------------------------------------------------------
    # The hot path. With only Copy() contexts (the default) there is nothing to do unless
    # the creator has no data; ``refresh`` precomputes what each other context needs.

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        /,
        **kwargs: Any,
    ) -> asyncio.Task[_T]:
        """Create a task, with what its contexts' policies need in place before its first step.

        Args:
            loop: The loop creating the task (asyncio passes it).
            coro: The coroutine to wrap.
            **kwargs: Whatever asyncio passes (``name``, ``context``, ``eager_start``, ...);
                given to the inner factory unchanged.

        Returns:
            The task made by the inner factory.

        Raises:
            Exception: Whatever the inner factory or a policy raised; the creator's
                ``contextvars`` context is then left exactly as it was.
        """
        task: Any  # what the inner factory made: a Task, or whatever Future it returns
        one = self._one
        if (
            one is not None
            and not kwargs
            and (value := one[0].get()) is not one[1]
            and (not one[2] or value.owner() is _current_task(loop))
        ):
            # The commonest case, first: one Copy(), Share() or ChainMap() context, and the
            # creator has data (under ChainMap(), a layer of its own). contextvars gives the
            # child its data; there is nothing to do.
            inner: Any = self._inner
            task = _Task(coro, loop=loop) if inner is None else inner(loop, coro)
        elif kwargs and kwargs.get("context") is not None:
            task = self._spawn_in(kwargs["context"], loop, coro, kwargs)
        elif self._simple:
            # Share(), Copy() and ChainMap() contexts only: contextvars gives the child its
            # creator's data as it is, unless the creator has none (then the child gets root
            # data, rule 1), or, under ChainMap(), is a task that has no layer of its own yet
            # (it gets one, so that the child sees its later writes).
            as_is = True
            for var, unbound in self._quick:
                if var.get() is unbound:
                    as_is = False
                    break
            if as_is and self._chains:
                creator = _current_task(loop)
                for var in self._chains:
                    if var.get().owner() is not creator:
                        as_is = False
                        break
            if not as_is:
                task = self._spawn(loop, coro, kwargs)
            else:
                task = self._create(loop, coro, kwargs)
        else:
            task = self._spawn(loop, coro, kwargs)
        if task._source_traceback:
            trim_source_traceback(task._source_traceback, __file__)
        return task  # type: ignore[no-any-return]

    def _create(self, loop: asyncio.AbstractEventLoop, coro: Any, kwargs: dict[str, Any]) -> Any:
        """Create the task with the inner factory (or ``asyncio.Task``) and asyncio's keywords.

        Python 3.14 passes ``create_task(..., name=...)`` to the factory; up to 3.13 asyncio
        named the task itself. An old ``(loop, coro)`` factory that takes no ``name`` keeps
        working: the task is named after the call, as asyncio did.
        """
        inner: Any = self._inner
        if inner is None:
            return _Task(coro, loop=loop, **kwargs)
        if self._named or "name" not in kwargs:
            return inner(loop, coro, **kwargs)
        kwargs = dict(kwargs)
        name = kwargs.pop("name")
        task = inner(loop, coro, **kwargs)
        if name is not None:
            task.set_name(name)
        return task

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Any, kwargs: dict[str, Any]) -> Any:
        """Create a task that runs in a copy of the caller's ``contextvars`` context."""
        children: _Values = []  # what the child's context gets
        adopted: _Values = []  # what the creator gets once the child exists (rule 3)
        pending: list[Any] = []  # data whose owner is the task being made
        creator: Any = PENDING  # the creating task, looked up when needed
        for var, kind, policy, unbound, root_value in self._plan:
            parent = var.get()
            if parent is unbound:
                if kind is COPY or kind is _DEEP:
                    children.append((var, root_value(None)))
                    continue
                if creator is PENDING:
                    creator = asyncio.current_task(loop)
                if creator is None:  # code outside tasks: only the child gets root data
                    parent = root_value(PENDING, coro)
                    if kind is not SHARE:
                        pending.append(parent)
                    children.append((var, parent))
                    continue
                parent = root_value(creator)  # a task: it gets its root now (rule 3)
                adopted.append((var, parent))
                if kind is not OTHER:
                    children.append((var, parent))  # shared, or layers the child reads
                    continue

            elif kind is COPY or kind is SHARE:
                continue  # the child inherits the creator's data as it is
            elif kind is _DEEP:
                children.append((var, policy.inherit(parent)))
                continue
            elif kind is CHAIN:
                # The child reads its creator's layers until its first write. A creating task
                # writes its own top layer in place, so that the child sees its later writes:
                # it gets one now if it has none yet.
                if creator is PENDING:
                    creator = asyncio.current_task(loop)
                if (
                    creator is not None
                    and parent.owner() is not creator
                    and in_own_context(creator)
                ):
                    parent = layers_over([{}, *parent.maps])
                    parent.owner = weakref.ref(creator)
                    adopted.append((var, parent))
                    children.append((var, parent))
                continue
            child = Owned(policy.inherit(parent.mine()), PENDING, var, policy, coro)
            pending.append(child)
            children.append((var, child))
        for var, unbound in self._detached_plan:
            if var.get() is not unbound:
                children.append((var, unbound))  # rule 7
        if not children:
            task = self._create(loop, coro, kwargs)
        elif self._inner is None:
            context = _copy_context()
            context.run(_set_each, children)
            task = _Task(coro, loop=loop, **{**kwargs, "context": context})
        else:
            # Another factory copies the caller's context itself: put the values there
            # just for the call.
            tokens = _set_all(children)
            try:
                task = self._create(loop, coro, kwargs)
            finally:
                _reset_all(tokens)
        _own(pending, task)
        for var, value in adopted:
            var.set(value)
        return task

    def _spawn_in(
        self,
        context: contextvars.Context,
        loop: asyncio.AbstractEventLoop,
        coro: Any,
        kwargs: dict[str, Any],
    ) -> Any:
        """Create a task that runs in the given ``contextvars`` context (``context=``)."""
        values: _Values = []
        pending: list[Any] = []
        for var, kind, policy, unbound, root_value in self._plan:
            parent = context.get(var, unbound)
            if parent is unbound:
                value = root_value(PENDING, coro)
                if kind is CHAIN or kind is OTHER:
                    pending.append(value)
                values.append((var, value))
            elif kind is _DEEP:
                values.append((var, policy.inherit(parent)))
            elif kind is OTHER:
                value = Owned(policy.inherit(parent.data), PENDING, var, policy, coro)
                pending.append(value)
                values.append((var, value))
        for var, unbound in self._detached_plan:
            if context.get(var, unbound) is not unbound:
                values.append((var, unbound))
        try:
            tokens = context.run(_set_all, values)
        except RuntimeError:
            # ``context`` is entered: it is the creator's own running context, so the task
            # will share it, data included. There is nothing to put in place.
            tokens, pending = [], []
        try:
            task = self._create(loop, coro, kwargs)
        except BaseException:
            context.run(_reset_all, tokens)
            raise
        _own(pending, task)
        return task


def _takes_name(factory: Any) -> bool:
    """Whether ``factory`` accepts a ``name`` keyword (assumed, when it has no signature)."""
    if factory is None:
        return True
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD
        or (parameter.name == "name" and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for parameter in parameters
    )


_Task: Any = asyncio.Task  # called with whatever coroutine-like asyncio was given
_copy_context = contextvars.copy_context


def _own(pending: list[Any], task: object) -> None:
    """Make ``task`` the owner of the data made for it (unless its eager step claimed it)."""
    for data in pending:
        if data.owner is PENDING:
            data.owner, data.coro = weakref.ref(task), None


def _set_each(values: _Values) -> None:
    for var, value in values:
        var.set(value)


def _set_all(values: _Values) -> list[contextvars.Token[Any]]:
    return [var.set(value) for var, value in values]


def _reset_all(tokens: list[contextvars.Token[Any]]) -> None:
    for token in tokens:
        token.var.reset(token)
