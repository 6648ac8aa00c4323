"""Bad input: every public entry point, given the wrong thing, says what to pass instead.

Each case calls one entry point wrongly and checks the error type and the key phrases of
its message (what to pass, how to fix it). Then it checks that nothing was corrupted: the
registry and the loop's wrapper are as they were, and the context still propagates data
correctly on its loop.

The wrong values are typed ``Any`` so that mypy lets these calls through: users without a
type checker make them.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Iterator
from typing import Any, Final

import attrs
import pytest

from aiocontext import (
    AioContextError,
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    Key,
    PropagationPolicy,
    Share,
    TaskContextError,
    TaskFactoryError,
    TaskFactoryWrapper,
    loop_factory,
)
from stress._support import LOOP_KINDS, POLICIES, new_loop


@attrs.define
class World:
    """A loop (not running) with a context attached through its own registry."""

    loop: asyncio.AbstractEventLoop
    ctx: Context[str, Any]
    registry: ContextRegistry
    wrapper: TaskFactoryWrapper

    def state(self) -> tuple[object, ...]:
        """What bad input must not change: attachments, the wrapper and its inner factory."""
        return (
            self.registry.contexts(self.loop),
            self.registry.loops(self.ctx),
            TaskFactoryWrapper.of(self.loop),
            self.wrapper.inner,
            self.wrapper.propagates(self.ctx),
            self.loop.get_task_factory(),
        )

    def assert_works(self) -> None:
        """The context still propagates: a child sees its parent's data, writes stay its own."""

        async def child() -> dict[str, Any]:
            seen = dict(self.ctx)
            self.ctx["child"] = True
            return seen

        async def parent() -> tuple[dict[str, Any], dict[str, Any]]:
            self.ctx["parent"] = True
            seen = await asyncio.create_task(child())
            return seen, dict(self.ctx)

        assert ({"parent": True}, {"parent": True}) == self.loop.run_until_complete(parent())


@pytest.fixture(params=LOOP_KINDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    """A fresh world on each loop kind; closed afterwards."""
    loop = new_loop(request.param)
    registry = ContextRegistry()
    ctx: Context[str, Any] = Context(name="bad-input", registry=registry).attach(loop)
    wrapper = TaskFactoryWrapper.of(loop)
    assert wrapper is not None
    yield World(loop, ctx, registry, wrapper)
    loop.close()


#: Wrong values, typed Any so that the calls type-check.
STRING: Final[Any] = "not the right thing"
NUMBER: Final[Any] = 42
NONE: Final[Any] = None


def wrong(value: object) -> Any:
    """``value``, typed Any: a wrong argument that mypy lets through, as in untyped code."""
    return value


async def _coroutine() -> None:
    """A coroutine function: what ``data()`` gets when a task was meant."""


def case(
    case_id: str, call: Callable[[World], object], error: type[BaseException], *phrases: str
) -> Any:
    """One bad call: what it raises, and phrases its message must contain."""
    return pytest.param(call, error, phrases, id=case_id)


def _context_of(policy: object) -> Callable[[World], object]:
    return lambda world: Context(wrong(policy))


def _method_of(method: str, argument: object) -> Callable[[World], object]:
    return lambda world: getattr(world.ctx, method)(argument)


def _set_inner(value: object) -> Callable[[World], object]:
    def call(world: World) -> None:
        world.wrapper.inner = wrong(value)

    return call


def _set_inner_to_itself(world: World) -> None:
    world.wrapper.inner = wrong(world.wrapper)


def _loop_from_base(base: Callable[[], object]) -> Callable[[World], object]:
    return lambda world: loop_factory(world.ctx, base=wrong(base))()


NOT_A_LOOP: Final = "event loop"  # the phrase of every "pass a loop" message
NOT_A_CONTEXT: Final = "aiocontext.Context"
WRAPS_WRAPPER: Final = "cannot wrap another TaskFactoryWrapper"
BOUND_USAGE: Final = "ctx.bound(KEY, value)"
KEY: Final = Key[int]("key")

WRONG_TYPES = [
    # Context(...)
    *(
        case(f"Context(policy={cls.__name__})", _context_of(cls), TypeError, f"{cls.__name__}()")
        for cls in (Share, Copy, DeepCopy, ChainMap)
    ),
    case("Context(policy=str)", _context_of("copy"), TypeError, "PropagationPolicy", "Copy()"),
    case("Context(policy=None)", _context_of(None), TypeError, "PropagationPolicy instance"),
    case("Context(policy=function)", _context_of(dict), TypeError, "PropagationPolicy instance"),
    case("Context(name=int)", lambda w: Context(name=NUMBER), TypeError, "name must be a str"),
    case(
        "Context(registry=str)",
        lambda w: Context(registry=STRING),
        TypeError,
        "registry must be a ContextRegistry",
    ),
    case(
        "Context(registry=class)",
        lambda w: Context(registry=wrong(ContextRegistry)),
        TypeError,
        "registry must be a ContextRegistry",
    ),
    # Context methods given a non-loop or a non-task
    *(
        case(f"{method}({name})", _method_of(method, bad), TypeError, NOT_A_LOOP)
        for method in ("attach", "detach", "is_attached")
        for name, bad in (("str", STRING), ("int", NUMBER), ("factory", asyncio.new_event_loop))
    ),
    *(
        case(f"data({name})", _method_of("data", bad), TypeError, "asyncio.Task")
        for name, bad in (("str", STRING), ("int", NUMBER), ("coroutine-function", _coroutine))
    ),
    case("data(loop)", lambda w: w.ctx.data(wrong(w.loop)), TypeError, "asyncio.Task"),
    case(
        "data(future)",
        lambda w: w.ctx.data(wrong(w.loop.create_future())),
        TypeError,
        "asyncio.Task",
    ),
    # ContextRegistry
    case(
        "registry.attach(str, loop)",
        lambda w: w.registry.attach(STRING, w.loop),
        TypeError,
        NOT_A_CONTEXT,
    ),
    case(
        "registry.attach(ctx, str)",
        lambda w: w.registry.attach(w.ctx, STRING),
        TypeError,
        NOT_A_LOOP,
    ),
    case(
        "registry.detach(str, loop)",
        lambda w: w.registry.detach(STRING, w.loop),
        TypeError,
        NOT_A_CONTEXT,
    ),
    case(
        "registry.detach(ctx, str)",
        lambda w: w.registry.detach(w.ctx, STRING),
        TypeError,
        NOT_A_LOOP,
    ),
    case("registry.contexts(str)", lambda w: w.registry.contexts(STRING), TypeError, NOT_A_LOOP),
    case(
        "registry.is_attached(ctx, str)",
        lambda w: w.registry.is_attached(w.ctx, STRING),
        TypeError,
        NOT_A_LOOP,
    ),
    case(
        "registry.is_attached(str, loop)",
        lambda w: w.registry.is_attached(STRING, w.loop),
        TypeError,
        NOT_A_CONTEXT,
    ),
    case("registry.loops(str)", lambda w: w.registry.loops(STRING), TypeError, NOT_A_CONTEXT),
    # TaskFactoryWrapper
    case(
        "TaskFactoryWrapper(inner=int)",
        lambda w: TaskFactoryWrapper(NUMBER),
        TypeError,
        "callable",
    ),
    case(
        "TaskFactoryWrapper(inner=wrapper)",
        lambda w: TaskFactoryWrapper(w.wrapper),
        TaskFactoryError,
        WRAPS_WRAPPER,
    ),
    case("wrapper.inner = str", _set_inner(STRING), TypeError, "callable"),
    case("wrapper.inner = itself", _set_inner_to_itself, TaskFactoryError, WRAPS_WRAPPER),
    case(
        "wrapper.inner = wrapper",
        _set_inner(TaskFactoryWrapper()),
        TaskFactoryError,
        WRAPS_WRAPPER,
    ),
    case("install(str)", lambda w: TaskFactoryWrapper.install(STRING), TypeError, NOT_A_LOOP),
    case("install(None)", lambda w: TaskFactoryWrapper.install(NONE), TypeError, NOT_A_LOOP),
    case(
        "install(loop, registry=str)",
        lambda w: TaskFactoryWrapper.install(w.loop, STRING),
        TypeError,
        "ContextRegistry",
    ),
    case("uninstall(str)", lambda w: TaskFactoryWrapper.uninstall(STRING), TypeError, NOT_A_LOOP),
    case("uninstall(None)", lambda w: TaskFactoryWrapper.uninstall(NONE), TypeError, NOT_A_LOOP),
    case("of(int)", lambda w: TaskFactoryWrapper.of(NUMBER), TypeError, NOT_A_LOOP),
    # loop_factory
    case("loop_factory(str)", lambda w: loop_factory(STRING), TypeError, NOT_A_CONTEXT),
    case("loop_factory(Context)", lambda w: loop_factory(wrong(Context)), TypeError, NOT_A_CONTEXT),
    case(
        "loop_factory(base=int)",
        lambda w: loop_factory(w.ctx, base=NUMBER),
        TypeError,
        "base must be a callable",
    ),
    case(
        "loop_factory(base=loop)",
        lambda w: loop_factory(w.ctx, base=wrong(w.loop)),
        TypeError,
        "base must be a callable",
    ),
    case(
        "loop_factory(base returns str)",
        _loop_from_base(lambda: STRING),
        TypeError,
        "must return an event loop",
    ),
    case(
        "loop_factory(base returns None)",
        _loop_from_base(lambda: None),
        TypeError,
        "must return an event loop",
    ),
    # Key
    case("Key(int)", lambda w: Key(NUMBER), TypeError, "name must be a str"),
    case(
        "Key(default_factory=int)",
        lambda w: Key("k", default_factory=NUMBER),
        TypeError,
        "callable",
    ),
    case(
        "Key(default and default_factory)",
        lambda w: Key("k", **wrong({"default": 1, "default_factory": list})),
        TypeError,
        "pass one of them",
    ),
    case("pickle(Key)", lambda w: pickle.dumps(KEY), TypeError, "cannot be pickled"),
    # bound() and restore()
    case("bound(str, value)", lambda w: w.ctx.bound(STRING, 1), TypeError, BOUND_USAGE),
    case("bound(Key)", lambda w: w.ctx.bound(wrong(KEY)), TypeError, BOUND_USAGE),
    case("bound(pairs)", lambda w: w.ctx.bound(wrong([("a", 1)])), TypeError, BOUND_USAGE),
    case(
        "bound(Key, value, extra)",
        lambda w: w.ctx.bound(*wrong((KEY, 1, 2))),
        TypeError,
        BOUND_USAGE,
    ),
    case(
        "bound(Key, value, key=value)",
        lambda w: w.ctx.bound(*wrong((KEY, 1)), a=2),
        TypeError,
        BOUND_USAGE,
    ),
    case(
        "bound(mapping, value)",
        lambda w: w.ctx.bound(*wrong(({"a": 1}, 2))),
        TypeError,
        BOUND_USAGE,
    ),
    case("restore(str)", lambda w: w.ctx.restore(STRING), TypeError, "takes a mapping"),
    case("restore(None)", lambda w: w.ctx.restore(NONE), TypeError, "takes a mapping"),
    case(
        "restore(pairs)",
        lambda w: w.ctx.restore(wrong([("a", 1)])),
        TypeError,
        "takes a mapping",
    ),
]


class TestWrongTypes:
    """Wrong types raise a clear error and leave everything as it was."""

    @pytest.mark.parametrize(("call", "error", "phrases"), WRONG_TYPES)
    def test_wrong_type_raises_clear_error_and_corrupts_nothing(
        self,
        world: World,
        call: Callable[[World], object],
        error: type[BaseException],
        phrases: tuple[str, ...],
    ) -> None:
        """The call raises ``error`` (exactly that type, not a subclass that happened to
        escape) whose message contains ``phrases``; the registry, the wrapper and the loop's
        factory are unchanged and the context still works."""
        before = world.state()
        with pytest.raises(error) as raised:
            call(world)
        assert error is type(raised.value)
        message = str(raised.value)
        assert [] == [phrase for phrase in phrases if phrase not in message], message
        assert before == world.state()
        world.assert_works()


#: Every mapping operation given an unhashable key.
UNHASHABLE: Final[Any] = ["unhashable"]
UNHASHABLE_ACCESSES = [
    pytest.param(lambda ctx: ctx.__setitem__(UNHASHABLE, 2), id="setitem"),
    pytest.param(lambda ctx: ctx[UNHASHABLE], id="getitem"),
    pytest.param(lambda ctx: ctx.get(UNHASHABLE), id="get"),
    pytest.param(lambda ctx: ctx.get(UNHASHABLE, "default"), id="get-with-default"),
    pytest.param(lambda ctx: UNHASHABLE in ctx, id="contains"),
    pytest.param(lambda ctx: ctx.__delitem__(UNHASHABLE), id="delitem"),
    pytest.param(lambda ctx: ctx.pop(UNHASHABLE, None), id="pop"),
    pytest.param(lambda ctx: ctx.setdefault(UNHASHABLE, 2), id="setdefault"),
    pytest.param(lambda ctx: ctx.update([(UNHASHABLE, 2)]), id="update"),
]


class TestUnhashableKeys:
    """Unhashable keys raise the mapping's own TypeError and leave the data intact."""

    @pytest.mark.parametrize("access", UNHASHABLE_ACCESSES)
    @pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))
    def test_unhashable_key(
        self, world: World, policy: PropagationPolicy, access: Callable[[Context[Any, Any]], object]
    ) -> None:
        """``ctx[[1]] = 2`` and every other operation with an unhashable key raise
        TypeError; the task's data and its child's are unchanged and still work."""
        ctx: Context[Any, Any] = Context(policy, name="unhashable", registry=world.registry)
        ctx.attach(world.loop)

        async def child() -> dict[str, Any]:
            return dict(ctx)

        async def main() -> tuple[str, dict[str, Any], dict[str, Any]]:
            ctx["a"] = 1
            early = asyncio.create_task(child())  # shares the data copy-on-write under Copy()
            with pytest.raises(TypeError) as raised:
                access(ctx)
            seen = await early  # the child saw the data as it is after the failed access
            ctx["b"] = 2
            return str(raised.value), seen, dict(ctx)

        message, early, after = world.loop.run_until_complete(main())
        assert "unhashable" in message
        assert {"a": 1} == early
        assert {"a": 1, "b": 2} == after
        world.assert_works()


#: Every way of reading or writing a context's data (contract rule 6).
ACCESSES = [
    pytest.param(lambda ctx: ctx["key"], id="getitem"),
    pytest.param(lambda ctx: ctx.__setitem__("key", 1), id="setitem"),
    pytest.param(lambda ctx: ctx.get("key", "default"), id="get-with-default"),
    pytest.param(lambda ctx: "key" in ctx, id="contains"),
    pytest.param(len, id="len"),
    pytest.param(list, id="iter"),
    pytest.param(lambda ctx: ctx.__delitem__("key"), id="delitem"),
    pytest.param(lambda ctx: ctx.pop("key", None), id="pop-with-default"),
    pytest.param(lambda ctx: ctx.setdefault("key", 1), id="setdefault"),
    pytest.param(lambda ctx: ctx.update(key=1), id="update"),
    pytest.param(lambda ctx: ctx.clear(), id="clear"),
    pytest.param(lambda ctx: ctx.data(), id="data"),
    pytest.param(lambda ctx: ctx.snapshot(), id="snapshot"),
    pytest.param(lambda ctx: ctx == {}, id="eq-mapping"),
    pytest.param(lambda ctx: ctx.bound(key=1).__enter__(), id="bound"),
    pytest.param(lambda ctx: ctx[Key[int]("typed", default=0)], id="typed-key-with-default"),
]
Access = Callable[[Context[str, Any]], object]


class TestMisuseOutsideAttachedLoops:
    """Using a context where it cannot work raises the documented error, saying the fix."""

    @pytest.mark.parametrize("access", ACCESSES)
    def test_access_from_synchronous_code(self, world: World, access: Access) -> None:
        """With no loop running, every access raises EventLoopError saying to use the
        context from a task on a loop it is attached to (``loop_factory``)."""
        before = world.state()
        with pytest.raises(EventLoopError) as raised:
            access(world.ctx)
        message = str(raised.value)
        assert "no event loop is running" in message
        assert "loop_factory" in message
        assert before == world.state()
        world.assert_works()

    def test_attach_and_detach_from_synchronous_code(self, world: World) -> None:
        """With no loop running, ``attach()`` and ``detach()`` (of a context attached to some
        loop) raise EventLoopError saying to pass the loop; ``is_attached()`` is False;
        ``detach()`` of a context attached nowhere does nothing."""
        before = world.state()
        with pytest.raises(EventLoopError, match=r"pass one: ctx\.attach\(loop\)"):
            world.ctx.attach()
        with pytest.raises(EventLoopError, match=r"pass one: ctx\.detach\(loop\)"):
            world.ctx.detach()
        assert False is world.ctx.is_attached()
        Context(name="nowhere", registry=world.registry).detach()
        assert before == world.state()
        world.assert_works()

    def test_attach_to_closed_loop(self, world: World) -> None:
        """Attaching to a closed loop raises EventLoopError saying to attach to the loop that
        will run the tasks; nothing is recorded for the closed loop."""
        closed = asyncio.new_event_loop()
        closed.close()
        with pytest.raises(EventLoopError, match="closed loop"):
            world.ctx.attach(closed)
        assert () == world.registry.contexts(closed)
        assert None is TaskFactoryWrapper.of(closed)
        world.assert_works()

    @pytest.mark.parametrize("access", ACCESSES)
    @pytest.mark.parametrize("kind", LOOP_KINDS)
    def test_access_on_unattached_loop(self, kind: str, access: Access) -> None:
        """In a task on a loop the context is not attached to, every access raises
        TaskContextError saying to attach it (``ctx.attach()`` or ``loop_factory``)."""
        ctx: Context[str, Any] = Context(name="unattached", registry=ContextRegistry())
        loop = new_loop(kind)

        async def main() -> AioContextError:
            with pytest.raises(TaskContextError) as raised:
                access(ctx)
            return raised.value

        try:
            message = str(loop.run_until_complete(main()))
        finally:
            loop.close()
        assert "not attached" in message
        assert "ctx.attach()" in message
        assert "loop_factory" in message

    @pytest.mark.parametrize("access", ACCESSES)
    def test_access_after_detach(self, world: World, access: Access) -> None:
        """A task created after ``detach()`` gets TaskContextError on every access, saying
        to attach the context; its creator keeps its data; attaching again makes the
        context work."""

        async def child() -> AioContextError:
            with pytest.raises(TaskContextError) as raised:
                access(world.ctx)
            return raised.value

        async def main() -> tuple[str, object]:
            world.ctx["key"] = "kept"
            world.ctx.detach()
            error = await asyncio.create_task(child())
            return str(error), world.ctx["key"]

        message, kept = world.loop.run_until_complete(main())
        assert "not attached" in message
        assert "ctx.attach()" in message
        assert "kept" == kept
        world.ctx.attach(world.loop)
        world.assert_works()

    def test_factory_replaced_after_attach(self, world: World) -> None:
        """When the loop's factory is replaced after attaching, a task with no data gets
        TaskFactoryError saying to set factories first or attach again; attaching again
        makes the context work."""
        world.loop.set_task_factory(None)

        async def main() -> str:
            with pytest.raises(TaskFactoryError) as raised:
                world.ctx["key"] = "value"
            return str(raised.value)

        message = world.loop.run_until_complete(main())
        assert "ctx.attach(loop) again" in message
        world.ctx.attach(world.loop)
        world.assert_works()
