"""The context-aware task factory, and the lock that guards every attach and detach.

A :class:`TaskFactoryWrapper` sits in front of whatever task factory a loop has. Each time
the loop creates a task it computes the new task's data for every context attached to the
loop (the policy's ``inherit`` of the creator's data, or its ``root``), puts that data into
the creator's ``contextvars`` context just long enough for the inner factory to copy it into
the task, and takes it out again. The data is therefore in the task's own
``contextvars.Context`` before its first step runs, which is what eager tasks, callbacks and
``to_thread`` workers need.
"""

# pyright: reportPrivateUsage=false
# (The wrapper is the other half of Context: it reads a context's variable directly.)

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, MutableMapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, TypeVar

import attrs

from ._errors import TaskFactoryError
from ._policy import ChainMap, Copy, PropagationPolicy, Share, layers_over as _layers_over

if TYPE_CHECKING:
    from ._context import Context
    from ._registry import ContextRegistry

__all__ = ["TaskFactory", "TaskFactoryWrapper"]

_T = TypeVar("_T")


# What typeshed lets ``loop.set_task_factory`` factories receive, per Python version.
if sys.version_info >= (3, 12):
    _CoroutineLike: TypeAlias = Coroutine[Any, Any, Any]
else:
    _CoroutineLike: TypeAlias = Coroutine[Any, Any, Any] | Generator[Any, None, Any]


class TaskFactory(Protocol):
    """What ``loop.set_task_factory`` accepts: ``factory(loop, coro, **kwargs) -> Future``.

    asyncio calls it with keywords (``name``, ``context``, ``eager_start``, ...) only when
    it has them to pass, so a two-argument factory is still a valid one.
    """

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: _CoroutineLike, /
    ) -> asyncio.Future[Any]: ...



#: Guards every change of attachments: registries and wrappers are shared between threads.
ATTACH_LOCK = threading.RLock()

_THIS_FILE = os.path.normcase(__file__)
_BASE_EVENTS_FILE = os.path.normcase(asyncio.base_events.__file__)

# A context's variable holds a handle, [data, shared, view]: see _context's docstring.
_Handle = list[Any]
_Var = contextvars.ContextVar[_Handle]
_Token = contextvars.Token[_Handle]
_Inherit = Callable[[MutableMapping[Any, Any]], MutableMapping[Any, Any]]
_Root = Callable[[], MutableMapping[Any, Any]]
# Per attached context: its variable, fast-path mode, policy.inherit, unbound marker and
# policy.root.
_Plan = tuple[tuple[_Var, str, _Inherit, _Handle, _Root], ...]


def check_loop(loop: object) -> asyncio.AbstractEventLoop:
    """Return ``loop`` if it is an event loop, else raise a ``TypeError`` that says what to pass."""
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(
            f"expected an asyncio event loop, got {type(loop).__name__} {loop!r}: "
            "pass a loop such as asyncio.get_running_loop(), or None for the running loop"
        )
    return loop


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


@attrs.define(eq=False, repr=False)
class TaskFactoryWrapper:
    """The task factory that gives every new task its contexts' data.

    One wrapper is installed per loop (``Context.attach`` does it for you). It wraps the
    factory the loop had before (``inner``; ``None`` means plain :class:`asyncio.Task`) and
    passes every keyword asyncio gives it (``name``, ``context``, ``eager_start``, ...) to
    that factory unchanged, so custom and eager factories keep working.

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
    _registries: tuple[ContextRegistry, ...] = attrs.field(default=(), init=False)
    _contexts: tuple[Context[Any, Any], ...] = attrs.field(default=(), init=False)
    _plan: _Plan = attrs.field(default=(), init=False)
    _detached: tuple[Context[Any, Any], ...] = attrs.field(default=(), init=False)
    _detached_plan: tuple[tuple[_Var, _Handle], ...] = attrs.field(
        default=(), init=False
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
        self._inner = factory

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
        from ._registry import ContextRegistry, default_registry

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
            if registry is None:
                registry = default_registry()
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
            wrapper._plan = wrapper._detached_plan = ()

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
                (ctx._var, _mode(ctx.policy), ctx.policy.inherit, ctx.unbound, ctx.policy.root)
                for ctx in contexts
            )
            self._detached_plan = tuple((ctx._var, ctx.unbound) for ctx in self._detached)

    def propagates(self, context: Context[Any, Any]) -> bool:
        """Whether tasks this wrapper creates get data for ``context``."""
        return context in self._contexts

    # -- creating tasks ----------------------------------------------------------------------
    # The hot path. Everything a spawn needs per context is precomputed in ``_plan`` by
    # ``refresh``, and the common cases (no ``context=``; Share and Copy) are inlined.

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        /,
        **kwargs: Any,
    ) -> asyncio.Task[_T]:
        """Create a task whose contexts' data is in place before its first step.

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
        if kwargs and kwargs.get("context") is not None:
            task = self._spawn_in(kwargs["context"], loop, coro, kwargs)
        else:
            # The task will run in a copy of the caller's contextvars context: work out the
            # child's handle for each context whose value must differ from the caller's.
            children: list[tuple[_Var, _Handle]] | None = None
            adopted: list[tuple[_Var, _Handle]] | None = None
            for var, mode, inherit, unbound, root in self._plan:
                parent = var.get()
                if parent is unbound:
                    if adopted is None:
                        adopted = []
                    child = _first_handle(var, mode, inherit, root, loop, adopted)
                elif mode is _SHARE:
                    continue  # the task inherits this very handle with the context
                elif mode is _COPY:
                    child = [parent[0], True, None]  # read the data before flagging it shared
                    parent[1] = True
                elif mode is _CHAIN:
                    child = [_layers_over([{}, *parent[0].maps]), False, None]
                else:
                    child = [inherit(parent[0]), False, None]
                if children is None:
                    children = [(var, child)]
                else:
                    children.append((var, child))
            if self._detached_plan:
                children = self._unbind_detached(children)
            inner: Any = self._inner  # called with keywords only when asyncio gives some
            if children is None:
                if inner is not None:
                    task = inner(loop, coro, **kwargs)
                elif kwargs:
                    task = _Task(coro, loop=loop, **kwargs)
                else:
                    task = _Task(coro, loop=loop)
            elif inner is None:
                # Build the task's context directly: one change per context, none undone.
                context = _copy_context()
                if len(children) == 1:
                    context.run(children[0][0].set, children[0][1])
                else:
                    context.run(_set_each, children)
                if kwargs:
                    task = _Task(coro, loop=loop, **{**kwargs, "context": context})
                else:
                    task = _Task(coro, loop=loop, context=context)
            else:
                # Another factory makes the task and copies the caller's context itself: put
                # the handles there just for the call.
                tokens = _set_all(children)
                try:
                    task = inner(loop, coro, **kwargs)
                finally:
                    _reset_all(tokens)
            if adopted is not None:
                for var, handle in adopted:
                    var.set(handle)
        if task._source_traceback:
            _trim_source_traceback(task._source_traceback)
        return task  # type: ignore[no-any-return]

    def _unbind_detached(
        self, children: list[tuple[_Var, _Handle]] | None
    ) -> list[tuple[_Var, _Handle]] | None:
        """Give the task no data for contexts detached from the loop (rule 7)."""
        for var, unbound in self._detached_plan:
            if var.get() is not unbound:
                children = [*(children or ()), (var, unbound)]
        return children

    def _spawn_in(
        self,
        context: contextvars.Context,
        loop: asyncio.AbstractEventLoop,
        coro: Any,
        kwargs: dict[str, Any],
    ) -> asyncio.Task[Any]:
        """Create a task that runs in the given ``contextvars`` context (``context=``)."""
        values: list[tuple[_Var, _Handle]] = []
        for var, mode, inherit, unbound, root in self._plan:
            parent = context.get(var)
            if parent is None or parent is unbound:
                values.append((var, [root(), False, None]))
            elif mode is not _SHARE:  # under Share the task finds the handle already there
                values.append((var, _derive(mode, inherit, parent)))
        for var, unbound in self._detached_plan:
            parent = context.get(var)
            if parent is not None and parent is not unbound:
                values.append((var, unbound))
        try:
            tokens = context.run(_set_all, values)
        except RuntimeError:
            # ``context`` is entered: it is the creator's own running context, so the task
            # will share it, data included. There is nothing to put in place.
            tokens = []
        try:
            inner: Any = self._inner
            if inner is None:
                return _Task(coro, loop=loop, **kwargs)  # type: ignore[no-any-return]
            return inner(loop, coro, **kwargs)  # type: ignore[no-any-return]
        except BaseException:
            context.run(_reset_all, tokens)
            raise


_Task: Any = asyncio.Task  # called with whatever coroutine-like asyncio was given
_copy_context = contextvars.copy_context
_SHARE: Final = "share"
_COPY: Final = "copy"
_CHAIN: Final = "chain"
_OTHER: Final = "other"
_MODES: Final[dict[type[PropagationPolicy], str]] = {Share: _SHARE, Copy: _COPY, ChainMap: _CHAIN}


def _mode(policy: PropagationPolicy) -> str:
    """Which inlined fast path of ``__call__`` applies to ``policy`` (exact types only)."""
    return _MODES.get(policy.__class__, _OTHER)


def _first_handle(
    var: _Var,
    mode: str,
    inherit: _Inherit,
    root: _Root,
    loop: asyncio.AbstractEventLoop,
    adopted: list[tuple[_Var, _Handle]],
) -> _Handle:
    """The child's handle when its creator has no data (rules 1 and 3 of the contract)."""
    handle: _Handle = [root(), False, None]
    if asyncio.current_task(loop) is None:
        return handle
    # A running task that never touched the context: it gets its root now (once the child
    # exists), so that the child's data derives from the parent's (Share really shares).
    adopted.append((var, handle))
    return _derive(mode, inherit, handle)


def _derive(mode: str, inherit: _Inherit, parent: _Handle) -> _Handle:
    """The child's handle, given its parent's: what ``__call__`` inlines for speed."""
    if mode is _SHARE:
        return parent
    if mode is _COPY:
        child = [parent[0], True, None]  # read the data before flagging it shared
        parent[1] = True
        return child
    return [inherit(parent[0]), False, None]  # ChainMap's inline form is the same


def _set_each(values: list[tuple[_Var, _Handle]]) -> None:
    for var, value in values:
        var.set(value)


def _set_all(values: list[tuple[_Var, _Handle]]) -> list[_Token]:
    return [var.set(value) for var, value in values]


def _reset_all(tokens: list[_Token]) -> None:
    for token in tokens:
        token.var.reset(token)


def _trim_source_traceback(frames: list[Any]) -> None:
    """Drop the wrapper's frames (and asyncio's ``create_task``) from a debug traceback.

    asyncio does the same for its own ``create_task`` frame when no factory is set, so a
    task's source traceback ends where the user created it.
    """
    while frames and os.path.normcase(frames[-1].filename) == _THIS_FILE:
        del frames[-1]
    if (
        frames
        and frames[-1].name == "create_task"
        and os.path.normcase(frames[-1].filename) == _BASE_EVENTS_FILE
    ):
        del frames[-1]
