"""``TaskFactoryWrapper``: the task factory that gives each new task what its contexts need.

Isolation does not depend on it: every task runs in a copy of its creator's ``contextvars``
context, so it starts with its creator's data whether or not a factory ran. The wrapper adds
only what a spawn needs beyond that, as the contexts' data models say: a deep copy under
``DeepCopy()``, ``inherit`` for custom policies, root data shared with a creator that has
none (``Share()``, ``ChainMap()``), a layer of its own for a ``ChainMap()`` creator, and no
data for contexts detached from the loop (rule 7). ``Copy()`` contexts need nothing at all.

What to do is one immutable :class:`SpawnPlan`, rebuilt when a context is attached or
detached and swapped in with one assignment: a spawn reads ``self._plan`` once and never
takes a lock, whatever other threads attach or detach meanwhile.
"""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
import contextvars
import inspect
import weakref
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ._data import PENDING
from ._errors import TaskFactoryError
from ._loops import ATTACH_LOCK, TaskFactory, check_loop, trim_source_traceback
from ._model import FREE, OWNER, DataModel, Spawn

if TYPE_CHECKING:
    from ._context import Context
    from ._registry import ContextRegistry

__all__ = ["SpawnPlan", "TaskFactoryWrapper"]

_T = TypeVar("_T")
_Var = contextvars.ContextVar[Any]
_Values = list[tuple[_Var, Any]]

#: What the fast path checks for one context: the creator has data (``_HAS``), has data it
#: owns (``_OWNS``, ChainMap()), or has none (``_NONE``: a detached context, rule 7).
_HAS: Final = 0
_OWNS: Final = 1
_NONE: Final = 2
#: A plan's ``quick`` when a spawn needs no check at all (never read: only its identity
#: counts; shaped as a check for the type checkers).
_READY: Final[tuple[_Var, Any, int]] = (contextvars.ContextVar("aiocontext.no_check"), None, _HAS)


@attrs.frozen
class SpawnPlan:
    """What creating a task on one loop takes, for every context attached there.

    Attributes:
        contexts: The attached contexts, in attach order.
        work: ``(var, marker, model)`` of each context whose model may add something to a
            spawn (every policy but ``Copy()``).
        detached: ``(var, marker)`` of each context detached from the loop that still
            exists: a child whose creator has data for it starts without (rule 7).
        fast: ``(var, marker, check)``: when every check holds, the spawn needs nothing.
        direct: Whether passing ``fast`` is enough (no model needs work at every spawn).
        quick: What the spawn checks inline: ``_READY`` when no check is needed (``Copy()``
            contexts only), ``fast``'s check when it is the only one and not ``_NONE`` (one
            ``Share()`` or ``ChainMap()`` context), or ``None``: ``direct`` and ``fast`` say.
    """

    contexts: tuple[Context[Any, Any], ...] = ()
    work: tuple[tuple[_Var, Any, DataModel], ...] = ()
    detached: tuple[tuple[_Var, Any], ...] = ()
    fast: tuple[tuple[_Var, Any, int], ...] = ()
    direct: bool = True
    quick: tuple[_Var, Any, int] | None = _READY

    @classmethod
    def build(
        cls, contexts: tuple[Context[Any, Any], ...], detached: tuple[tuple[_Var, Any], ...]
    ) -> SpawnPlan:
        """The plan for ``contexts`` attached and ``detached`` no longer attached."""
        models = [ctx._model for ctx in contexts]
        work = tuple((m.var, m.unbound, m) for m in models if m.at_spawn is not FREE)
        checks = tuple(
            (m.var, m.unbound, _OWNS if m.at_spawn is OWNER else _HAS)
            for m in models
            if m.at_spawn is not FREE
        )
        fast = checks + tuple((var, unbound, _NONE) for var, unbound in detached)
        direct = all(m.at_spawn <= OWNER for m in models)
        quick: tuple[_Var, Any, int] | None = None
        if direct and not fast:
            quick = _READY
        elif direct and len(fast) == 1 and fast[0][2] is not _NONE:
            quick = fast[0]
        return cls(contexts, work, detached, fast, direct, quick)


_EMPTY: Final = SpawnPlan()
#: The wrapper that serves each loop: the one installed last, even when a library has since
#: chained its own factory in front of it.
_SERVING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TaskFactoryWrapper] = (
    weakref.WeakKeyDictionary()
)


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
    _plan: SpawnPlan = attrs.field(default=_EMPTY, init=False)

    def __repr__(self) -> str:
        names = ", ".join(repr(ctx) for ctx in self._plan.contexts)
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

        When a library has chained its own factory in front of the wrapper installed before,
        the new wrapper takes over that one's registries, and the old one only forwards
        from then on: every context is propagated once.

        Args:
            loop: The event loop.
            registry: The registry whose contexts the wrapper propagates on this loop
                (``None``: the default registry). A wrapper serves any number of registries.

        Returns:
            The wrapper now installed (the one that was already there, if any).

        Raises:
            TypeError: ``loop`` is not an event loop, or ``registry`` not a registry.
        """
        from ._registry import check_registry, registry_or_default

        check_loop(loop)
        if registry is not None:
            check_registry(None, None, registry)
        with ATTACH_LOCK:
            factory = loop.get_task_factory()
            previous = _SERVING.get(loop)
            if isinstance(factory, TaskFactoryWrapper):
                wrapper = factory
            else:
                wrapper = cls(factory)
                loop.set_task_factory(wrapper)
            if previous is not None and previous is not wrapper:
                wrapper._registries, wrapper._plan = previous._registries, previous._plan
                previous._registries, previous._plan = (), _EMPTY  # it only forwards now
            _SERVING[loop] = wrapper
            registry = registry_or_default(registry)
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
            wrapper._registries, wrapper._plan = (), _EMPTY
            _SERVING.pop(loop, None)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> TaskFactoryWrapper | None:
        """Return the wrapper installed on ``loop``, or ``None``.

        Raises:
            TypeError: ``loop`` is not an event loop.
        """
        factory = check_loop(loop).get_task_factory()
        return factory if isinstance(factory, TaskFactoryWrapper) else None

    @classmethod
    def refresh_serving(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Refresh the wrapper serving ``loop``, if any (internal)."""
        with ATTACH_LOCK:
            wrapper = _SERVING.get(loop) or cls.of(loop)
            # A loop listed by a registry has its wrapper (uninstall forgets both).
            if wrapper is not None:  # pragma: no branch
                wrapper.refresh(loop)

    def refresh(self, loop: asyncio.AbstractEventLoop) -> None:
        """Re-read which contexts are attached to ``loop`` from the registries (internal).

        Contexts that were propagated before and are not attached any more are remembered
        (weakly: a context that no longer exists is forgotten), so that tasks created from
        now on start without their creator's data for them.
        """
        with ATTACH_LOCK:
            attached: dict[Context[Any, Any], None] = {}
            for registry in self._registries:
                attached.update(dict.fromkeys(registry.contexts(loop)))
            contexts = tuple(attached)
            old = self._plan
            vars_now = {ctx._var for ctx in contexts}
            detached = {
                var: unbound
                for var, unbound in (
                    *old.detached,
                    *((ctx._var, ctx._unbound) for ctx in old.contexts),
                )
                if var not in vars_now and unbound.alive()
            }
            self._plan = SpawnPlan.build(contexts, tuple(detached.items()))

    def propagates(self, context: Context[Any, Any]) -> bool:
        """Whether ``context`` is attached to this wrapper's loop (internal)."""
        return any(attached is context for attached in self._plan.contexts)

    # -- creating tasks ----------------------------------------------------------------------

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
                ``contextvars`` context is then left exactly as it was (and a coroutine that
                a policy kept from becoming a task is closed).
        """
        plan = self._plan
        given = kwargs.get("context") if kwargs else None  # uvloop passes context=None
        if given is None and (
            (quick := plan.quick) is _READY
            or (  # one check, the commonest other case: _nothing_to_do((quick,), loop) inlined
                quick is not None
                and (value := quick[0].get()) is not quick[1]
                and (quick[2] is _HAS or value.owner() is _current_task(loop))
            )
            or (quick is None and plan.direct and _nothing_to_do(plan.fast, loop))
        ):
            # The common case: nothing to add, the task is made at once (inlined: it is the
            # hot path).
            inner: Any = self._inner
            if inner is None:
                if not kwargs or (len(kwargs) == 1 and "context" in kwargs):
                    # asyncio passes no keyword here, uvloop context=None: for a Task, the
                    # same as none (no keywords dict to build for the call)
                    task: Any = _Task(coro, loop=loop)
                else:
                    task = _Task(coro, loop=loop, **kwargs)
            elif not kwargs:
                task = inner(loop, coro)
            else:
                task = self._create(loop, coro, kwargs)
        else:
            task = self._spawn(plan, loop, coro, kwargs, given)
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

    def _spawn(
        self,
        plan: SpawnPlan,
        loop: asyncio.AbstractEventLoop,
        coro: Any,
        kwargs: dict[str, Any],
        given: contextvars.Context | None,
    ) -> Any:
        """Create a task after asking each context's model what the child needs."""
        spawn = Spawn(loop, coro, given)
        try:  # (each value as the creator has it)
            for var, unbound, model in plan.work:
                model.spawn(var.get() if given is None else given.get(var, unbound), spawn)
        except BaseException:
            coro.close()  # it will never run: spare the "never awaited" warning
            raise
        for var, unbound in plan.detached:
            if (var.get() if given is None else given.get(var, unbound)) is not unbound:
                spawn.children.append((var, unbound))  # rule 7
        task = self._create_with(spawn, kwargs)
        for data in spawn.pending:  # the task owns the data made for it, unless its eager
            if data.owner is PENDING:  # first step claimed it already
                data.owner, data.coro = weakref.ref(task), None
        for var, value in spawn.adopted:
            var.set(value)
        return task

    def _create_with(self, spawn: Spawn, kwargs: dict[str, Any]) -> Any:
        """Create the task with ``spawn.children`` in its ``contextvars`` context."""
        loop, coro, given, children = spawn.loop, spawn.coro, spawn.given, spawn.children
        if not children:
            return self._create(loop, coro, kwargs)
        if given is not None:
            try:
                tokens = given.run(_set_all, children)
            except RuntimeError:
                # ``given`` is entered: it is the creator's own running context, so the task
                # will share it, data included. There is nothing to put in place.
                spawn.pending.clear()
                return self._create(loop, coro, kwargs)
            try:
                return self._create(loop, coro, kwargs)
            except BaseException:
                given.run(_reset_all, tokens)
                raise
        if self._inner is None:
            context = _copy_context()
            context.run(_set_each, children)
            return _Task(coro, loop=loop, **{**kwargs, "context": context})
        # Another factory copies the caller's context itself: put the values there just for
        # the call.
        tokens = _set_all(children)
        try:
            return self._create(loop, coro, kwargs)
        finally:
            _reset_all(tokens)


def _nothing_to_do(
    fast: tuple[tuple[_Var, Any, int], ...], loop: asyncio.AbstractEventLoop
) -> bool:
    """Whether every fast check holds for the running code (see :class:`SpawnPlan`)."""
    creator: Any = _NOT_LOOKED_UP
    for var, unbound, check in fast:
        value = var.get()
        if check is _NONE:
            if value is not unbound:
                return False
        elif value is unbound:
            return False
        elif check is _OWNS:
            if creator is _NOT_LOOKED_UP:
                creator = _current_task(loop)
            if value.owner() is not creator:
                return False
    return True


_NOT_LOOKED_UP: Final = object()  # the creating task, before _nothing_to_do needs it
_Task: Any = asyncio.Task  # called with whatever coroutine-like asyncio was given
_copy_context = contextvars.copy_context
_current_task = asyncio.current_task


def _set_all(values: _Values) -> list[contextvars.Token[Any]]:
    return [var.set(value) for var, value in values]


def _set_each(values: _Values) -> None:
    for var, value in values:
        var.set(value)


def _reset_all(tokens: list[contextvars.Token[Any]]) -> None:
    for token in tokens:
        token.var.reset(token)
