"""``Context``: a typed, task-local mapping that follows the work into child tasks.

How it works, in one place:

* Each :class:`Context` owns one :class:`contextvars.ContextVar` whose value, in a given
  ``contextvars`` context, is that task's live mapping. Reads and writes go straight to it.
* When a loop with the context attached creates a task, its
  :class:`~aiocontext.TaskFactoryWrapper` computes the child's mapping with the context's
  :class:`~aiocontext.PropagationPolicy` and puts it into the task's ``contextvars`` context
  before the first step runs (see ``_task_factory``).
* What the variable holds is a *handle*, a 3-item list ``[data, shared, view]``: the task's
  mapping, whether that mapping is shared copy-on-write with other tasks, and the cached
  live view ``data()`` returns for such mappings. Under ``Copy()`` a parent and its children
  hold handles to the same dict until one of them writes; the writer then copies the dict
  into its own handle. The handle keeps its identity, so everything running in the task's
  ``contextvars`` context (callbacks, ``to_thread`` workers) keeps seeing the task's writes,
  and every task observes exactly a shallow copy; spawning costs the same for 3 keys or
  1,000. Handles are lists because a list is the cheapest object to make and to index.
* Where a task has no data the variable holds the context's *unbound* marker: it is the
  variable's default, and after ``detach`` the wrapper gives new tasks the marker instead of
  their creator's handle. The marker resolves itself on access: to a handle of
  ``policy.root()``, stored for the task, on a loop where the context is attached; anywhere
  else to an error, so a misconfiguration is never silent. Reads therefore need no check:
  ``ctx[key]`` is ``var.get()[0][key]``.
"""

# pyright: reportPrivateUsage=false
# (The module-level helpers and classes below are Context's own parts.)

from __future__ import annotations

import asyncio
import collections
import contextvars
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from types import TracebackType
from typing import Any, Generic, overload

import attrs
from typing_extensions import Self, TypeIs, TypeVar

from ._errors import EventLoopError, TaskContextError, TaskFactoryError
from ._key import MISSING, Key
from ._policy import Copy, PropagationPolicy
from . import _registry as _registry_module
from . import _task_factory as _task_factory_module
from ._registry import ContextRegistry, default_registry
from ._task_factory import TaskFactoryWrapper, check_loop

__all__ = ["Context"]

K = TypeVar("K", default=str)
V = TypeVar("V", default=Any)
_T = TypeVar("_T")
_D = TypeVar("_D")


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
        raise TypeError(
            f"policy must be a PropagationPolicy instance, got the class {name}: {fix}"
        )
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


if sys.version_info >= (3, 12):

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        return task.get_context()

else:

    def _task_context(task: asyncio.Task[Any]) -> contextvars.Context:
        raise NotImplementedError(
            "reading another task's data needs Task.get_context(), new in Python 3.12: "
            "read it from inside that task instead"
        )


def _new_var(context: Context[Any, Any]) -> contextvars.ContextVar[Handle]:
    name = f"aiocontext.Context({context.name!r})"
    return contextvars.ContextVar(name, default=context._unbound)


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

    _policy: PropagationPolicy = attrs.field(
        default=Copy(), validator=_check_policy, alias="policy"
    )
    _name: str | None = attrs.field(
        default=None, kw_only=True, validator=_check_name, alias="name"
    )
    _registry: ContextRegistry = attrs.field(
        default=None,
        kw_only=True,
        converter=_registry_or_default,
        validator=_check_registry,
        alias="registry",
    )
    _unbound: _Unbound = attrs.field(
        init=False, default=attrs.Factory(lambda self: _Unbound(self), takes_self=True)
    )
    _var: contextvars.ContextVar[Handle] = attrs.field(
        init=False, default=attrs.Factory(lambda self: _new_var(self), takes_self=True)
    )

    __hash__ = object.__hash__  # pyright: ignore[reportAssignmentType] - Mapping sets None

    def __repr__(self) -> str:
        return f"Context(policy={self._policy!r}, name={self._name!r})"

    def __eq__(self, other: object) -> bool:
        """Identity against a Context; the current data compared like a dict against a Mapping."""
        if isinstance(other, Context):
            return self is other
        if _is_mapping(other):
            return dict(self._var.get()[0]) == dict(other)
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
    def unbound(self) -> Handle:
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
        if loop is asyncio._get_running_loop() and self._var.get() is self._unbound:
            # The calling code gets its data now, so that callbacks and threads it starts
            # before touching the context share it rather than each getting their own.
            # (Made first: if root() raises, nothing has changed.)
            caller_root = [self._policy.root(), False, None]
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

        Writes to the returned mapping are writes to the context, for that task. Under
        ``Copy()`` it is a view that copies the task's data before the first write if the
        data is still shared with a parent or child.

        Args:
            task: Another task whose data to read. Needs Python 3.12+ unless it is the
                current task.

        Raises:
            EventLoopError: No data here and no loop is running.
            TaskContextError: No data here and the context is not attached to the loop.
            NotImplementedError: ``task`` is another task and Python is 3.11.
            TypeError: ``task`` is not an asyncio task.
        """
        if task is None:
            handle = self._handle()
        else:
            loop = _check_task(task).get_loop()
            if task is asyncio.current_task(loop) and loop is asyncio._get_running_loop():
                handle = self._handle()
            else:
                handle = self._handle_of(task, loop)
        return self._live(handle)

    def _live(self, handle: Handle) -> MutableMapping[K, V]:
        """The mapping to hand out for ``handle``: under Copy() a copy-on-write view."""
        if not self._copy_on_write:
            return handle[0]  # type: ignore[no-any-return]
        if handle[2] is None:
            handle[2] = _CopyOnWriteView(handle)
        return handle[2]  # type: ignore[no-any-return]

    @property
    def _copy_on_write(self) -> bool:
        return self._policy.__class__ is Copy

    def _handle(self) -> Handle:
        handle = self._var.get()
        return self._missing() if handle is self._unbound else handle

    def _handle_of(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> Handle:
        """Another task's handle: read in, and if need be stored into, its contextvars context."""
        task_context = _task_context(task)
        handle = task_context.get(self._var)
        if handle is None or handle is self._unbound:
            handle = self._root_for(loop)
            task_context.run(self._var.set, handle)
        return handle

    def _missing(self) -> Handle:
        """Give the current code a handle of root data, or raise the error that says why not."""
        loop = asyncio._get_running_loop()
        if loop is None:
            raise EventLoopError(
                f"{self!r} has no data here: no event loop is running in this thread. Use it "
                "from a task on a loop it is attached to, e.g. "
                "asyncio.run(main(), loop_factory=aiocontext.loop_factory(ctx))"
            )
        handle = self._root_for(loop)
        self._var.set(handle)
        return handle

    def _root_for(self, loop: asyncio.AbstractEventLoop) -> Handle:
        wrapper = TaskFactoryWrapper.of(loop)
        if wrapper is not None and wrapper.propagates(self):
            return [self._policy.root(), False, None]
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

    def snapshot(self) -> dict[K, V]:
        """Return a plain ``dict`` copy of the current task's data.

        It pickles if the values (and keys) do, so it can cross into a process pool, where
        :meth:`restore` makes it the data of the code that runs there.

        Raises:
            EventLoopError, TaskContextError: The current code has no data.
        """
        return dict(self._handle()[0])

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

    # -- MutableMapping ----------------------------------------------------------------------
    # Reads go straight to the data; the unbound marker resolves itself where there is none.

    @overload
    def __getitem__(self, key: Key[_T], /) -> _T: ...
    @overload
    def __getitem__(self, key: K, /) -> V: ...
    def __getitem__(self, key: Any, /) -> Any:
        try:
            return self._var.get()[0][key]
        except KeyError:
            if _is_key(key):
                return key.default_for(_writable(self._handle()))
            raise

    @overload
    def __setitem__(self, key: Key[_T], value: _T, /) -> None: ...
    @overload
    def __setitem__(self, key: K, value: V, /) -> None: ...
    def __setitem__(self, key: Any, value: Any, /) -> None:
        handle = self._var.get()
        if handle is self._unbound:
            handle = self._missing()
        data = _writable(handle) if handle[1] else handle[0]
        data[key] = value
        if handle[1] or handle[0] is not data:  # another thread is copying, or copied, it
            _set_again(handle, key, value)

    def __delitem__(self, key: K | Key[Any], /) -> None:
        _delete(self._handle(), key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._var.get()[0])

    def __len__(self) -> int:
        return len(self._var.get()[0])

    def __contains__(self, key: object, /) -> bool:
        return key in self._var.get()[0]

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
            return self._var.get()[0][key]
        except KeyError:
            if default is not MISSING:
                return default
            if _is_key(key) and key.has_default:
                return key.default_for(_writable(self._handle()))
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
        handle = self._handle()
        data = _writable(handle)
        value = data.pop(key, *default)
        while handle[1] or handle[0] is not data:  # another thread made the data private meanwhile
            data = _writable(handle)
            data.pop(key, None)
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
        handle = self._handle()
        data = _writable(handle)
        value = data.setdefault(key, default)
        while handle[1] or handle[0] is not data:  # another thread made the data private meanwhile
            data = _writable(handle)
            data.setdefault(key, value)
        return value

    def popitem(self) -> tuple[K, V]:
        """Remove and return an item as the task's mapping chooses (for a dict, the last set;
        under ``ChainMap()``, one of the task's own layer).

        Raises:
            KeyError: The task's data (its own layer, under ``ChainMap()``) is empty.
        """
        handle = self._handle()
        data = _writable(handle)
        key, value = data.popitem()
        while handle[1] or handle[0] is not data:  # another thread made the data private meanwhile
            data = _writable(handle)
            data.pop(key, None)
        return key, value

    def clear(self) -> None:
        """Remove every key from the current task's data (without copying shared data)."""
        handle = self._handle()
        if handle[1]:
            handle[0] = handle[0].__class__()
            handle[1] = False
        else:
            handle[0].clear()


Handle = list[Any]
"""What a task holds for a context: ``[data, shared, view]`` (see the module docstring)."""


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
        own = _own_layer(context._handle()[0])
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
                _own_layer(_writable(self._context._handle())).pop(key, None)

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

    __slots__ = ("_context", "_handle", "_token")

    def __init__(self, context: Context[K, V], snapshot: Mapping[K, V]) -> None:
        self._context = context
        self._handle: Handle = [context.policy.root(), False, None]
        self._handle[0].update(snapshot)
        self._token: contextvars.Token[Handle] | None = None

    def __enter__(self) -> MutableMapping[K, V]:
        if self._token is not None:
            raise RuntimeError("this restore() block is already in use: call restore() again")
        self._token = self._context._var.set(self._handle)
        return self._context._live(self._handle)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._context._var.reset(token)


def _own_layer(data: MutableMapping[Any, Any]) -> MutableMapping[Any, Any]:
    """Where a task's own writes go: its ChainMap layer, or the mapping itself."""
    return data.maps[0] if isinstance(data, collections.ChainMap) else data


_PRIVATE_COPY_LOCK = threading.Lock()


def _writable(handle: Handle) -> MutableMapping[Any, Any]:
    """The handle's data, first made private if it is shared copy-on-write.

    Threads running in one task's context (``to_thread`` workers) may write at once: the lock
    makes sure the shared data is copied once, and the flag is cleared only after the copy is
    in place. A writer that finds the flag set, or the data replaced, after writing repeats
    its write into the private copy (see :func:`_set_again`), so no write is ever lost.
    """
    if handle[1]:
        with _PRIVATE_COPY_LOCK:
            if handle[1]:
                handle[0] = handle[0].copy()
                handle[1] = False
    return handle[0]  # type: ignore[no-any-return]


def _set_again(handle: Handle, key: Any, value: Any) -> None:
    """Repeat a write that landed in data another thread replaced with a private copy."""
    data = _writable(handle)
    data[key] = value
    while handle[1] or handle[0] is not data:
        data = _writable(handle)
        data[key] = value


def _delete(handle: Handle, key: Any) -> None:
    data = _writable(handle)
    del data[key]
    while handle[1] or handle[0] is not data:  # another thread made the data private meanwhile
        data = _writable(handle)
        data.pop(key, None)


class _CopyOnWriteView(MutableMapping[Any, Any]):
    """The live mapping ``data()`` returns under ``Copy()``: reads and writes a task's handle."""

    __slots__ = ("_handle",)

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def __repr__(self) -> str:
        return repr(self._handle[0])

    def __getitem__(self, key: Any, /) -> Any:
        return self._handle[0][key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        data = _writable(self._handle)
        data[key] = value
        if self._handle[1] or self._handle[0] is not data:
            _set_again(self._handle, key, value)

    def __delitem__(self, key: Any, /) -> None:
        _delete(self._handle, key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._handle[0])

    def __len__(self) -> int:
        return len(self._handle[0])


class _Unbound(Handle):
    """The handle a task holds for a context where it has no data.

    Reading any item resolves it through :meth:`Context._missing`: to a new handle of the
    policy's root, stored for the task, on a loop where the context is attached; otherwise
    to the error that says what is wrong.
    """

    __slots__ = ("_context",)

    def __init__(self, context: Context[Any, Any]) -> None:
        super().__init__()
        self._context = context

    def __repr__(self) -> str:
        return f"<no data for {self._context!r}>"

    def __getitem__(self, index: Any, /) -> Any:
        return self._context._missing()[index]


# ``_registry`` and ``_task_factory`` name these classes in annotations but cannot import
# them when they are imported (this module imports them): hand them over now, so that
# typing.get_type_hints() resolves their public signatures at runtime.
setattr(_registry_module, "Context", Context)  # noqa: B010 - only typing-imported there
setattr(_task_factory_module, "Context", Context)  # noqa: B010
setattr(_task_factory_module, "ContextRegistry", ContextRegistry)  # noqa: B010
