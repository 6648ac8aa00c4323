"""``ContextRegistry``: which contexts are attached to which loops."""

# pyright: reportPrivateUsage=false

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._checks import check_context
from ._errors import EventLoopError
from ._factory import TaskFactoryWrapper
from ._loops import ATTACH_LOCK, check_loop

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["DEFAULT_REGISTRY", "ContextRegistry", "check_registry", "registry_or_default"]

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
            TaskFactoryWrapper.refresh_serving(loop)

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


DEFAULT_REGISTRY: Final = ContextRegistry()


def registry_or_default(registry: ContextRegistry | None) -> ContextRegistry:
    """``registry``, or the process-wide default one for ``None``."""
    return DEFAULT_REGISTRY if registry is None else registry


def check_registry(_instance: object, _attribute: object, registry: Any) -> None:
    """A registry argument must be a :class:`ContextRegistry`."""
    if not isinstance(registry, ContextRegistry):
        raise TypeError(
            f"registry must be a ContextRegistry or None (the default registry), "
            f"got {type(registry).__name__} {registry!r}"
        )
