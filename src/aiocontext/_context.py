"""``Context``: the task-local mapping users hold.

Each :class:`Context` owns one :class:`contextvars.ContextVar` and one data model, chosen
once from its policy (``_models``). Reads are ``var.get()[key]`` under every policy; writes,
``data()``, scoped binds and spawns are the model's. The registry (``_registry``) records
where a context is attached; the task factory (``_factory``) gives new tasks what the
models say they need. ``docs/design.md`` explains the design.
"""

# pyright: reportPrivateUsage=false
# (Context, its models, registry and task factory are one design: they read each other's parts.)

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn, Self, SupportsIndex, overload

import attrs
from typing_extensions import TypeVar

from . import _factory as _factory_module
from . import _registry as _registry_module
from ._advice import Situation, no_loop
from ._checks import (
    ContextHandle,
    check_context,
    check_name,
    check_policy,
    check_task,
    is_context,
    is_key,
    is_mapping,
)
from ._data import Unbound, current_task
from ._errors import EventLoopError
from ._factory import TaskFactoryWrapper
from ._key import MISSING, Key
from ._loops import check_loop, loop_or_running
from ._model import DataModel
from ._models import model_for
from ._policy import Copy, PropagationPolicy
from ._registry import ContextRegistry, check_registry, registry_or_default
from ._scoped import Binding, Restoring
from ._served import check_served

if TYPE_CHECKING:
    from _typeshed import SupportsGetItem, SupportsKeysAndGetItem

__all__ = ["Context", "ContextRegistry", "TaskFactoryWrapper", "check_context", "is_context"]

K = TypeVar("K", default=str)
V = TypeVar("V", default=Any)
_T = TypeVar("_T")
_D = TypeVar("_D")

_get_running_loop = asyncio._get_running_loop


def _new_unbound(context: Context[Any, Any]) -> Unbound:
    return Unbound(repr(context), context._missing)


def _new_var(context: Context[Any, Any]) -> contextvars.ContextVar[Any]:
    return contextvars.ContextVar(f"aiocontext.Context({context.name!r})", default=context._unbound)


@attrs.define(eq=False, repr=False)
class Context(ContextHandle, MutableMapping[K, V]):
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

    _policy: PropagationPolicy = attrs.field(default=Copy(), validator=check_policy, alias="policy")
    _name: str | None = attrs.field(default=None, kw_only=True, validator=check_name, alias="name")
    _registry: ContextRegistry = attrs.field(
        default=None,
        kw_only=True,
        converter=registry_or_default,
        validator=check_registry,
        alias="registry",
    )
    _unbound: Unbound = attrs.field(
        init=False, default=attrs.Factory(_new_unbound, takes_self=True)
    )
    _var: contextvars.ContextVar[Any] = attrs.field(
        init=False, default=attrs.Factory(_new_var, takes_self=True)
    )
    _model: DataModel = attrs.field(init=False, default=attrs.Factory(model_for, takes_self=True))
    # ``ctx[key] = value``, as the model makes it (its hot path: one call, no lookup).
    _setitem: Callable[[Any, Any], None] = attrs.field(
        init=False, default=attrs.Factory(lambda self: self._model.writer(), takes_self=True)
    )

    __hash__ = object.__hash__  # pyright: ignore[reportAssignmentType] - Mapping sets None

    # -- the data path -----------------------------------------------------------------------
    # Reads go straight to the variable's value (the Unbound marker resolves itself where
    # there is none); everything else is the data model's.

    @overload
    def __getitem__(self, key: Key[_T], /) -> _T: ...
    @overload
    def __getitem__(self, key: K, /) -> V: ...
    def __getitem__(self, key: Any, /) -> Any:
        try:
            return self._var.get()[key]
        except KeyError:
            if is_key(key):
                return key.default_for(self.data())
            raise

    @overload
    def __setitem__(self, key: Key[_T], value: _T, /) -> None: ...
    @overload
    def __setitem__(self, key: K, value: V, /) -> None: ...
    def __setitem__(self, key: Any, value: Any, /) -> None:
        self._setitem(key, value)

    def __delitem__(self, key: K | Key[Any], /) -> None:
        self._model.edit(lambda data: data.__delitem__(key))

    def __iter__(self) -> Iterator[K]:
        return iter(self._var.get())

    def __len__(self) -> int:
        return len(self._var.get())

    def __contains__(self, key: object, /) -> bool:
        return key in self._var.get()

    def _missing(self) -> Any:
        """Give the running code root data, or raise the error that says why not."""
        loop = _get_running_loop()
        if loop is None:
            raise EventLoopError(
                f"{self!r} has no data here: no event loop is running in this thread: "
                f"{no_loop(Situation.here())}"
            )
        self._check_served(loop)
        data = self._model.root(current_task())
        self._var.set(data)
        return data

    def _check_served(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise unless the context is attached to ``loop`` and its wrapper serves it."""
        check_served(self, loop)

    def __repr__(self) -> str:
        return f"Context(policy={self._policy!r}, name={self._name!r})"

    def __eq__(self, other: object) -> bool:
        """Identity against a Context; the current data compared like a dict against a Mapping."""
        if isinstance(other, Context):
            return self is other
        if is_mapping(other):
            return dict(self._model.current()) == dict(other)
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
        """The read-only marker the variable holds where code has no data (internal)."""
        return self._unbound

    # A Context is a handle on task-local data, not a value: copies are the context itself,
    # and it cannot cross into another process (its snapshot can).

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError(
            f"{self!r} cannot be pickled: it is a handle on task-local data. Send its data "
            "instead: ctx.snapshot() pickles, and ctx.restore(snapshot) makes it the data "
            "of the code on the other side"
        )

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
        loop = loop_or_running(loop, self, "attach")
        caller_root = None
        if loop is _get_running_loop() and self._var.get() is self._unbound:
            # The calling code gets its data now, so that what it starts before touching
            # the context shares it. (Made first: if root() raises, nothing has changed.)
            caller_root = self._model.root(current_task())
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
        self._registry.detach(self, loop_or_running(loop, self, "detach"))

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
        if task is not None and check_task(task) is not running:
            return self._model.data_of(task)
        return self._model.view()

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
            if is_key(key) and key.has_default:
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
        return self._model.edit(lambda data: data.pop(key, *default))

    @overload
    def setdefault(self: Context[K, _T | None], key: K, default: None = None, /) -> _T | None: ...
    @overload
    def setdefault(self, key: K, default: V, /) -> V: ...
    @overload
    def setdefault(self, key: Key[_T], default: _T, /) -> _T: ...
    def setdefault(self, key: Any, default: Any = None, /) -> Any:
        """Return the current task's value for ``key``, first setting it to ``default`` if
        the task has none (a :class:`~aiocontext.Key`'s own default plays no part)."""
        return self._model.edit(lambda data: data.setdefault(key, default))

    def popitem(self) -> tuple[K, V]:
        """Remove and return an item as the task's mapping chooses (for a dict, the last set;
        under ``ChainMap()``, one of the task's own layer).

        Raises:
            KeyError: The task's data (its own layer, under ``ChainMap()``) is empty.
        """
        return self._model.edit(lambda data: data.popitem())

    def clear(self) -> None:
        """Remove every key from the current task's data (under ``ChainMap()``, its layer)."""
        self._model.edit(lambda data: data.clear())

    @overload
    def update(self, m: SupportsKeysAndGetItem[K, V], /) -> None: ...
    @overload
    def update(
        self: SupportsGetItem[str, V], m: SupportsKeysAndGetItem[str, V], /, **kwargs: V
    ) -> None: ...
    @overload
    def update(self, m: Iterable[tuple[K, V]], /) -> None: ...
    @overload
    def update(
        self: SupportsGetItem[str, V], m: Iterable[tuple[str, V]], /, **kwargs: V
    ) -> None: ...
    @overload
    def update(self: SupportsGetItem[str, V], **kwargs: V) -> None: ...
    def update(  # type: ignore[misc]  # pyright: ignore[reportIncompatibleMethodOverride]
        self, *args: Any, **kwargs: Any
    ) -> None:  # (typeshed's overloads, repeated above, are self-typed)
        """Set every pair of a mapping (or of pairs) and of ``kwargs`` as one write."""
        items = dict(*args, **kwargs)
        self._model.edit(lambda data: data.update(items))

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
        removed, also when the block raises or is cancelled. The block belongs to the code
        that entered it: exited in another task (an async generator closed elsewhere) it
        restores nothing there. Under ``Share()`` overlapping blocks of sibling tasks end
        with the keys as they were before both.

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
        if len(args) == 2 and not values and is_key(args[0]):
            items: dict[Any, Any] = {args[0]: args[1]}
        elif len(args) == 1 and is_mapping(args[0]):
            items = {**args[0], **values}
        elif not args:
            items = values
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
        return dict(self._model.current())

    def restore(self, snapshot: Mapping[K, V], /) -> Restoring[K, V]:
        """Make ``snapshot`` the current code's data for the duration of a ``with`` block.

        Works anywhere, even with no event loop: in a thread or process pool worker, or in a
        test. The data is a private copy of ``snapshot`` (under ``DeepCopy()``, a deep
        copy); what it was before comes back on exit. Left in another task (an async
        generator closed elsewhere), the block restores nothing there.

        Example:
            >>> from aiocontext import Context
            >>> ctx = Context(name="request")
            >>> with ctx.restore({"request_id": "r-7"}):
            ...     ctx["request_id"]
            'r-7'

        Raises:
            TypeError: ``snapshot`` is not a mapping.
        """
        if not is_mapping(snapshot):
            raise TypeError(
                f"restore() takes a mapping such as ctx.snapshot(), got "
                f"{type(snapshot).__name__} {snapshot!r}"
            )
        return Restoring(self, snapshot)


# The registry's and the task factory's annotations name Context and each other, which they
# import only for type checkers (the modules import in the other direction): bind the names
# for run-time introspection (typing.get_type_hints) now that all three exist.
for _module, _name, _value in (
    (_registry_module, "Context", Context),
    (_factory_module, "Context", Context),
    (_factory_module, "ContextRegistry", ContextRegistry),
):
    setattr(_module, _name, _value)
