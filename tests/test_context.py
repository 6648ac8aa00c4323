"""Tests for ``aiocontext.Context``: construction, the mapping API, where data comes from,
attaching and detaching, errors, and the asyncio APIs that create tasks."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import copy
import pickle
import sys
import types
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, assert_type

import pytest
from helpers import Generations, needs_312, restoring_task_factory

from aiocontext import (
    AioContextError,
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    PropagationPolicy,
    Share,
    TaskContextError,
    TaskFactoryError,
    TaskFactoryWrapper,
)
from conftest import CoroutineLike

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

Access = Callable[[Context[str, Any]], object]

#: Every way of reading or writing a context's data, for the error tests (rule 6), by id.
_ACCESSES: dict[str, Access] = {
    "getitem": lambda ctx: ctx["key"],
    "get-with-default": lambda ctx: ctx.get("key", "default"),
    "contains": lambda ctx: "key" in ctx,
    "len": len,
    "iter": list,
    "setitem": lambda ctx: ctx.__setitem__("key", 1),
    "delitem": lambda ctx: ctx.__delitem__("key"),
    "pop-with-default": lambda ctx: ctx.pop("key", None),
    "setdefault": lambda ctx: ctx.setdefault("key", 1),
    "update": lambda ctx: ctx.update(key=1),
    "clear": lambda ctx: ctx.clear(),
    "items": lambda ctx: list(ctx.items()),
    "data": lambda ctx: ctx.data(),
    "eq-mapping": lambda ctx: ctx == {},
}
DATA_ACCESSES = [pytest.param(access, id=name) for name, access in _ACCESSES.items()]

#: Mappings other than dict that hold ``{"a": 1}``.
OTHER_MAPPINGS: list[Mapping[str, int]] = [
    types.MappingProxyType({"a": 1}),
    collections.OrderedDict(a=1),
    collections.ChainMap({}, {"a": 1}),
]


class TestConstruction:
    def test_abstract_policy_class_gets_a_fix_that_works(self) -> None:
        """Passing the abstract PropagationPolicy class says to subclass it, not to call it."""
        with pytest.raises(TypeError, match="subclass it"):
            Context(PropagationPolicy)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_default_policy_is_copy(self) -> None:
        """Without a policy argument a context propagates with Copy()."""
        assert Copy() == Context(registry=ContextRegistry()).policy

    @pytest.mark.parametrize("policy", [Share(), Copy(), DeepCopy(), ChainMap(), Generations()])
    def test_policy_is_the_instance_given(self, policy: PropagationPolicy) -> None:
        """``.policy`` returns the very policy object passed to the constructor."""
        assert policy is Context(policy, registry=ContextRegistry()).policy

    @pytest.mark.parametrize("policy_class", [Share, Copy, DeepCopy, ChainMap, Generations])
    def test_policy_class_instead_of_instance_raises_type_error(
        self, policy_class: type[PropagationPolicy]
    ) -> None:
        """Passing a policy class (``Copy``) instead of an instance raises TypeError naming
        the fix (``policy=Copy()``)."""
        with pytest.raises(TypeError, match=rf"policy={policy_class.__name__}\(\)"):
            Context(policy_class)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    @pytest.mark.parametrize(
        "policy",
        [None, "copy", {}, object(), Copy().inherit],
        ids=["None", "str", "dict", "object", "bound-method"],
    )
    def test_non_policy_raises_type_error(self, policy: object) -> None:
        """Anything but a PropagationPolicy instance is refused with TypeError."""
        with pytest.raises(TypeError, match="PropagationPolicy instance"):
            Context(policy)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_duck_typed_policy_raises_type_error(self) -> None:
        """An object with ``inherit``/``root`` methods that does not subclass
        PropagationPolicy is refused: policies are recognised by type."""

        class LooksLikeAPolicy:
            def inherit(self, parent: MutableMapping[Any, Any]) -> MutableMapping[Any, Any]:
                return parent

            def root(self) -> MutableMapping[Any, Any]:
                return {}

        with pytest.raises(TypeError):
            Context(LooksLikeAPolicy())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_name(self) -> None:
        """The name given is kept and is ``None`` by default."""
        assert ("request", None) == (
            Context(name="request", registry=ContextRegistry()).name,
            Context(registry=ContextRegistry()).name,
        )

    def test_name_of_wrong_type_raises_type_error(self) -> None:
        """A name that is neither a str nor None raises TypeError."""
        with pytest.raises(TypeError, match="name"):
            Context(name=42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_registry_none_means_the_default_registry(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """``registry=None`` (the default) puts every context in one process-wide registry,
        which records its attachments."""
        first: Context[str, Any] = Context()
        second: Context[str, Any] = Context(registry=None)
        first.attach(loop)
        assert second.registry is first.registry
        assert (first,) == second.registry.contexts(loop)

    def test_explicit_registry_records_attachments(self, loop: asyncio.AbstractEventLoop) -> None:
        """A context built with its own registry is attached through that registry only."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        ctx.attach(loop)
        assert registry is ctx.registry
        assert (True, False) == (
            registry.is_attached(ctx, loop),
            Context().registry.is_attached(ctx, loop),
        )

    def test_registry_of_wrong_type_raises_type_error(self) -> None:
        """A registry that is not a ContextRegistry raises TypeError."""
        with pytest.raises(TypeError, match="ContextRegistry"):
            Context(registry={})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def test_repr_shows_policy_and_name(self) -> None:
        """The repr names the policy and the name, and needs no loop or data."""
        assert "Context(policy=Share(), name='request')" == repr(
            Context(Share(), name="request", registry=ContextRegistry())
        )

    def test_repr_without_name(self) -> None:
        """A context without a name shows ``name=None``."""
        assert "Context(policy=Copy(), name=None)" == repr(Context(registry=ContextRegistry()))

    def test_bare_context_is_a_str_any_mutable_mapping(self) -> None:
        """``Context()`` with no type arguments is a ``Context[str, Any]`` (checked by mypy)
        and a MutableMapping at runtime."""
        ctx = Context(registry=ContextRegistry())
        assert_type(ctx, Context[str, Any])
        assert isinstance(ctx, MutableMapping)


class TestEquality:
    @pytest.mark.asyncio
    async def test_equal_to_dict_with_same_data(self) -> None:
        """A context equals a dict holding the current task's data, from either side."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert ctx == {"a": 1}
        assert {"a": 1} == ctx

    @pytest.mark.asyncio
    async def test_not_equal_to_dict_with_other_data(self) -> None:
        """A context differs from a dict holding other data, from either side."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert ctx != {"a": 2}
        assert {"a": 1, "b": 2} != ctx
        assert not ctx == {}  # noqa: SIM201 - checks __eq__, not __ne__

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "other", OTHER_MAPPINGS, ids=["MappingProxyType", "OrderedDict", "ChainMap"]
    )
    async def test_equal_to_any_mapping_with_same_data(self, other: Mapping[str, int]) -> None:
        """Any Mapping with the same items compares equal, like a dict would."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert ctx == other

    @pytest.mark.asyncio
    async def test_chainmap_data_compares_like_a_dict(self) -> None:
        """Under ChainMap() the layered data compares equal to the flat dict it shows."""
        ctx: Context[str, int] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["a"] = 1

        async def child() -> bool:
            ctx["b"] = 2
            return ctx == {"a": 1, "b": 2}

        assert True is await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_contexts_compare_by_identity(self) -> None:
        """Two contexts with equal data are different; a context equals itself."""
        registry = ContextRegistry()
        first: Context[str, int] = Context(registry=registry).attach()
        second: Context[str, int] = Context(registry=registry).attach()
        first["a"] = second["a"] = 1
        assert first != second
        assert not first == second  # noqa: SIM201 - checks __eq__, not __ne__
        assert first == first  # noqa: PLR0124 - the identity case

    def test_context_comparison_needs_no_data(self) -> None:
        """Comparing two contexts works outside any loop: it never reads their data."""
        first: Context[str, Any] = Context(registry=ContextRegistry())
        second: Context[str, Any] = Context(registry=ContextRegistry())
        assert (True, False) == (first == first, first == second)  # noqa: PLR0124

    @pytest.mark.parametrize("other", [1, "a", [("a", 1)], None], ids=repr)
    def test_non_mapping_gives_not_implemented(self, other: object) -> None:
        """Against a non-Mapping ``__eq__`` returns NotImplemented, so ``==`` is False
        without reading any data (this runs outside any loop)."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        assert NotImplemented is ctx.__eq__(other)
        assert ctx != other

    def test_hash_is_identity(self) -> None:
        """A context hashes by identity, without reading data (no loop needed)."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        assert object.__hash__(ctx) == hash(ctx)

    @pytest.mark.asyncio
    async def test_hash_stable_when_data_changes(self) -> None:
        """Writing data does not change a context's hash, so it stays usable as a key."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        lookup = {ctx: "found"}
        ctx["a"] = 1
        assert "found" == lookup[ctx]

    @pytest.mark.asyncio
    async def test_contexts_with_equal_data_are_distinct_set_members(self) -> None:
        """Two contexts holding equal data are two members of a set."""
        registry = ContextRegistry()
        first: Context[str, Any] = Context(registry=registry).attach()
        second: Context[str, Any] = Context(registry=registry).attach()
        assert ({}, {}) == (dict(first), dict(second))
        assert 2 == len({first, second})


class TestMapping:
    """The MutableMapping API acts on the current task's data."""

    @pytest.mark.asyncio
    async def test_setitem_getitem(self) -> None:
        """``ctx[k] = v`` stores, ``ctx[k]`` reads back, in the current task's data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx["a"] = 2
        assert 2 == ctx["a"]
        assert {"a": 2} == ctx.data()

    @pytest.mark.asyncio
    async def test_getitem_missing_raises_key_error(self) -> None:
        """Reading a missing key raises KeyError, like a dict."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        with pytest.raises(KeyError, match="missing"):
            ctx["missing"]

    @pytest.mark.asyncio
    async def test_get(self) -> None:
        """``get`` returns the value, else the default, else None."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert (1, 0, None) == (ctx.get("a"), ctx.get("b", 0), ctx.get("b"))

    @pytest.mark.asyncio
    async def test_contains(self) -> None:
        """``in`` tells whether the current task's data holds the key."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert (True, False) == ("a" in ctx, "b" in ctx)

    @pytest.mark.asyncio
    async def test_len(self) -> None:
        """``len`` counts the current task's keys, 0 for fresh root data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        assert 0 == len(ctx)
        ctx["a"] = ctx["b"] = 1
        assert 2 == len(ctx)

    @pytest.mark.asyncio
    async def test_iter_in_insertion_order(self) -> None:
        """Iteration yields the keys in insertion order, like the dict beneath."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["b"] = 1
        ctx["a"] = 2
        assert ["b", "a"] == list(ctx)

    @pytest.mark.asyncio
    async def test_delitem(self) -> None:
        """``del ctx[k]`` removes the key; a missing key raises KeyError."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = ctx["b"] = 1
        del ctx["a"]
        assert {"b": 1} == ctx.data()
        with pytest.raises(KeyError):
            del ctx["a"]

    @pytest.mark.asyncio
    async def test_pop(self) -> None:
        """``pop`` removes and returns; with a default it tolerates a missing key, without
        one it raises KeyError."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert (1, -1) == (ctx.pop("a"), ctx.pop("a", -1))
        assert {} == ctx.data()
        with pytest.raises(KeyError):
            ctx.pop("a")

    @pytest.mark.asyncio
    async def test_popitem(self) -> None:
        """``popitem`` removes and returns an item; on empty data it raises KeyError."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert ("a", 1) == ctx.popitem()
        assert {} == ctx.data()
        with pytest.raises(KeyError):
            ctx.popitem()

    @pytest.mark.asyncio
    async def test_update(self) -> None:
        """``update`` accepts a mapping, pairs and keywords, in that order of precedence."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update({"a": 1, "b": 1})
        ctx.update([("b", 2), ("c", 2)])
        ctx.update(c=3, d=3)
        assert {"a": 1, "b": 2, "c": 3, "d": 3} == ctx.data()

    @pytest.mark.asyncio
    async def test_setdefault(self) -> None:
        """``setdefault`` stores only when the key is missing and returns the stored value."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        assert (1, 1) == (ctx.setdefault("a", 1), ctx.setdefault("a", 2))
        assert {"a": 1} == ctx.data()

    @pytest.mark.asyncio
    async def test_clear(self) -> None:
        """``clear`` empties the current task's data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update(a=1, b=2)
        ctx.clear()
        assert {} == ctx.data()

    @pytest.mark.asyncio
    async def test_keys_items_values(self) -> None:
        """``keys``/``items``/``values`` list the current task's data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update(a=1, b=2)
        assert (["a", "b"], [("a", 1), ("b", 2)], [1, 2]) == (
            list(ctx.keys()),
            list(ctx.items()),
            list(ctx.values()),
        )

    @pytest.mark.asyncio
    async def test_views_are_live(self) -> None:
        """Views taken before a write show it, like dict views."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        keys, values = ctx.keys(), ctx.values()
        ctx["a"] = 1
        assert (["a"], [1]) == (list(keys), list(values))

    @pytest.mark.asyncio
    async def test_acts_on_each_tasks_own_data(self) -> None:
        """The same context object reads different data in a child task (Copy)."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["who"] = "parent"

        async def child() -> dict[str, str]:
            ctx["who"] = "child"
            ctx["only"] = "child"
            return dict(ctx)

        assert {"who": "child", "only": "child"} == await asyncio.create_task(child())
        assert {"who": "parent"} == dict(ctx)


class TestData:
    @pytest.mark.asyncio
    async def test_data_is_the_live_mapping(self) -> None:
        """``data()`` returns the live mapping: writes either way are seen the other way, and
        every call shows the same data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        data = ctx.data()
        data["a"] = 1
        ctx["b"] = 2
        assert (1, {"a": 1, "b": 2}) == (ctx["a"], data)
        assert ctx.data() == data
        ctx.data()["c"] = 3
        assert {"a": 1, "b": 2, "c": 3} == data

    @pytest.mark.asyncio
    async def test_data_of_current_task(self) -> None:
        """``data(current_task())`` is the current task's mapping, on every Python version."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        task = asyncio.current_task()
        assert task is not None
        ctx.data(task)["b"] = 2
        assert {"a": 1, "b": 2} == ctx.data() == ctx.data(task)

    @pytest.mark.asyncio
    async def test_data_of_current_task_from_a_child(self) -> None:
        """In a child task ``data()`` is the child's own mapping (Copy: not the parent's)."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        parent_data = ctx.data()

        async def child() -> MutableMapping[str, int]:
            return ctx.data()

        child_data = await asyncio.create_task(child())
        assert child_data is not parent_data

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Share(), Copy(), DeepCopy(), ChainMap()], ids=repr)
    async def test_data_is_a_full_mutable_mapping(self, policy: PropagationPolicy) -> None:
        """The mapping ``data()`` returns supports reads, writes, deletes, ``len`` and
        iteration, and each is a read or write of the context, also in a child task."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        ctx["a"] = 1

        async def child() -> tuple[int, list[str], int, dict[str, int]]:
            data = ctx.data()
            data["b"] = 2
            data["c"] = 3
            del data["c"]
            return data["a"], list(data), len(data), dict(ctx)

        assert (1, ["a", "b"], 2, {"a": 1, "b": 2}) == await asyncio.create_task(child())

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Share(), Copy(), DeepCopy()], ids=repr)
    async def test_data_repr_shows_the_items(self, policy: PropagationPolicy) -> None:
        """The mapping ``data()`` returns has the repr of a dict of the current items."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        ctx["a"] = 1
        assert repr({"a": 1}) == repr(ctx.data())

    @pytest.mark.asyncio
    async def test_data_writes_in_child_stay_in_child(self) -> None:
        """Under Copy(), writes and deletes through a child's ``data()`` do not reach the
        parent, and the parent's through its ``data()`` do not reach the child."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update(a=1, b=2)
        parent_data = ctx.data()
        written, go = asyncio.Event(), asyncio.Event()

        async def child() -> dict[str, int]:
            data = ctx.data()
            del data["a"]
            data["c"] = 3
            written.set()
            await go.wait()
            return dict(data)

        task = asyncio.create_task(child())
        await written.wait()
        del parent_data["b"]
        go.set()
        assert ({"b": 2, "c": 3}, {"a": 1}) == (await task, dict(ctx))

    @needs_312
    @pytest.mark.asyncio
    async def test_data_of_another_task_reads_and_writes_its_data(self) -> None:
        """``data(task)`` is another task's live mapping: its writes are visible, and writes
        through it are seen by that task."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()
        ctx["parent"] = "p"
        written, go = asyncio.Event(), asyncio.Event()

        async def child() -> str | None:
            ctx["child"] = "c"
            written.set()
            await go.wait()
            return ctx.get("from_parent")

        task = asyncio.create_task(child())
        await written.wait()
        assert {"parent": "p", "child": "c"} == ctx.data(task)
        ctx.data(task)["from_parent"] = "x"
        go.set()
        assert "x" == await task
        assert {"parent": "p"} == ctx.data()

    @needs_312
    @pytest.mark.asyncio
    async def test_data_of_finished_task(self) -> None:
        """A finished task's data can still be read."""
        ctx: Context[str, str] = Context(registry=ContextRegistry()).attach()

        async def child() -> None:
            ctx["done"] = "yes"

        task = asyncio.create_task(child())
        await task
        assert {"done": "yes"} == ctx.data(task)

    @needs_312
    @pytest.mark.asyncio
    async def test_data_of_task_without_data_is_its_root(self) -> None:
        """``data(task)`` of a task created before ``attach`` gives it ``policy.root()``,
        which that task then sees as its own data (rule 4)."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry())

        async def child() -> dict[str, Any]:
            return dict(ctx)

        task = asyncio.create_task(child())  # created before attach: no data
        ctx.attach()
        data = ctx.data(task)
        assert {"generation": 0} == data
        data["written"] = "by parent"
        assert {"generation": 0, "written": "by parent"} == await task

    @needs_312
    @pytest.mark.asyncio
    async def test_data_of_task_on_unattached_loop_raises(self) -> None:
        """``data(task)`` of a task with no data on a loop where the context is not attached
        raises TaskContextError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())

        async def child() -> None:
            pass

        task = asyncio.create_task(child())
        with pytest.raises(TaskContextError):
            ctx.data(task)
        await task

    @pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 only")
    @pytest.mark.asyncio
    async def test_data_of_another_task_on_311_raises_not_implemented(self) -> None:
        """On Python 3.11 reading another task's data raises NotImplementedError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach()

        async def child() -> None:
            pass

        task = asyncio.create_task(child())
        with pytest.raises(NotImplementedError, match="3.12"):
            ctx.data(task)
        await task

    @pytest.mark.asyncio
    @pytest.mark.parametrize("not_a_task", [object(), "task", 0], ids=["object()", "str", "int"])
    async def test_data_of_non_task_raises_type_error(self, not_a_task: object) -> None:
        """``data(x)`` with something that is not an asyncio task raises TypeError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach()
        with pytest.raises(TypeError, match=r"asyncio\.Task"):
            ctx.data(not_a_task)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    @pytest.mark.asyncio
    async def test_data_of_future_raises_type_error(self) -> None:
        """A plain Future is not a task: ``data(future)`` raises TypeError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach()
        future = asyncio.get_running_loop().create_future()
        with pytest.raises(TypeError, match=r"asyncio\.Task"):
            ctx.data(future)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


class TestAttach:
    @pytest.mark.asyncio
    async def test_attach_gives_the_caller_data_its_callbacks_share(self) -> None:
        """attach() from inside the loop gives the calling task its data at once, so under
        Share() a callback it schedules before touching the context writes to the task's
        data."""
        ctx: Context[str, str] = Context(Share(), registry=ContextRegistry()).attach()
        done = asyncio.Event()

        def callback() -> None:
            ctx["from"] = "callback"
            done.set()

        asyncio.get_running_loop().call_soon(callback)
        await done.wait()
        assert {"from": "callback"} == dict(ctx)

    def test_attach_returns_self(self, loop: asyncio.AbstractEventLoop) -> None:
        """``attach(loop)`` returns the context, so ``ctx = Context().attach(loop)`` works."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        assert ctx is ctx.attach(loop)

    @pytest.mark.asyncio
    async def test_attach_none_means_running_loop(self) -> None:
        """``attach()`` attaches to the running loop and returns the context."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        assert ctx is ctx.attach()
        assert ctx.is_attached(asyncio.get_running_loop())

    def test_attach_without_running_loop_raises(self) -> None:
        """``attach()`` outside a running loop raises EventLoopError naming the fix."""
        with pytest.raises(EventLoopError, match=r"ctx\.attach\(loop\)"):
            Context(registry=ContextRegistry()).attach()

    def test_attach_closed_loop_raises(self, new_loop: LoopFactory) -> None:
        """Attaching to a closed loop raises EventLoopError and records nothing."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        loop = new_loop()
        loop.close()
        with pytest.raises(EventLoopError, match="closed"):
            ctx.attach(loop)
        assert () == registry.contexts(loop)

    @pytest.mark.parametrize("method", ["attach", "detach", "is_attached"], ids=str)
    @pytest.mark.parametrize(
        "not_a_loop",
        [object(), "loop", asyncio.new_event_loop],
        ids=["object", "str", "new_event_loop-function"],
    )
    def test_non_loop_argument_raises_type_error(self, method: str, not_a_loop: object) -> None:
        """``attach``, ``detach`` and ``is_attached`` refuse a non-loop with TypeError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        with pytest.raises(TypeError, match="event loop"):
            getattr(ctx, method)(not_a_loop)

    def test_attach_is_idempotent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attaching twice records the context once and keeps the one wrapper."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry)
        ctx.attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)
        ctx.attach(loop)
        assert ((ctx,), True) == (registry.contexts(loop), wrapper is TaskFactoryWrapper.of(loop))

    def test_attach_installs_wrapper(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attaching installs a TaskFactoryWrapper around a loop's default factory."""
        Context(registry=ContextRegistry()).attach(loop)
        wrapper = TaskFactoryWrapper.of(loop)
        assert wrapper is not None
        assert (wrapper, None) == (loop.get_task_factory(), wrapper.inner)

    @pytest.mark.asyncio
    async def test_attach_wraps_existing_factory(self) -> None:
        """A custom factory set before ``attach`` is wrapped, not replaced: it still makes
        the tasks, and they get their data."""
        loop = asyncio.get_running_loop()
        made: list[str] = []

        def factory(
            loop: asyncio.AbstractEventLoop, coro: CoroutineLike, **kwargs: Any
        ) -> asyncio.Task[Any]:
            made.append("task")
            return asyncio.Task(coro, loop=loop, **kwargs)

        with restoring_task_factory(loop):
            loop.set_task_factory(factory)
            ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
            wrapper = TaskFactoryWrapper.of(loop)
            assert wrapper is not None
            assert factory == wrapper.inner
            ctx["a"] = 1

            async def child() -> int:
                return ctx["a"]

            assert 1 == await asyncio.create_task(child())
            assert ["task"] == made

    @pytest.mark.asyncio
    async def test_is_attached_follows_attach_and_detach(self) -> None:
        """``is_attached()`` is False before ``attach``, True after, False after ``detach``."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        states = [ctx.is_attached()]
        ctx.attach()
        states.append(ctx.is_attached())
        ctx.detach()
        states.append(ctx.is_attached())
        assert [False, True, False] == states

    def test_is_attached_without_running_loop_is_false(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """``is_attached()`` with no running loop is False, even for an attached context."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach(loop)
        assert (False, True) == (ctx.is_attached(), ctx.is_attached(loop))

    def test_is_attached_is_per_loop(self, new_loop: LoopFactory) -> None:
        """Attaching to one loop does not attach to another."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        first, second = new_loop(), new_loop()
        try:
            ctx.attach(first)
            assert (True, False) == (ctx.is_attached(first), ctx.is_attached(second))
        finally:
            first.close()
            second.close()

    def test_detach_never_attached_outside_loop(self) -> None:
        """``detach()`` of a context attached nowhere, with no loop running, is a no-op."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        ctx.detach()
        assert not ctx.is_attached()

    def test_detach_never_attached_from_given_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """``detach(loop)`` of a context not attached to ``loop`` is a no-op."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        ctx.detach(loop)
        assert not ctx.is_attached(loop)

    @pytest.mark.asyncio
    async def test_detach_never_attached_inside_running_loop(self) -> None:
        """``detach()`` in a running loop the context was never attached to is a no-op."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        ctx.detach()
        assert not ctx.is_attached()

    def test_detach_is_idempotent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Detaching twice is the same as detaching once."""
        registry = ContextRegistry()
        ctx: Context[str, Any] = Context(registry=registry).attach(loop)
        ctx.detach(loop)
        ctx.detach(loop)
        assert () == registry.contexts(loop)

    def test_detach_from_one_loop_keeps_others(self, new_loop: LoopFactory) -> None:
        """``detach(loop)`` leaves the context attached to its other loops."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        first, second = new_loop(), new_loop()
        try:
            ctx.attach(first)
            ctx.attach(second)
            ctx.detach(first)
            assert (False, True) == (ctx.is_attached(first), ctx.is_attached(second))
        finally:
            first.close()
            second.close()

    def test_detach_without_loop_while_attached_raises(
        self, loop: asyncio.AbstractEventLoop
    ) -> None:
        """``detach()`` with no running loop, for a context attached to some loop, raises
        EventLoopError asking for the loop, and detaches nothing."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach(loop)
        with pytest.raises(EventLoopError, match=r"ctx\.detach\(loop\)"):
            ctx.detach()
        assert ctx.is_attached(loop)


class TestDetach:
    """Rule 7: after ``detach`` new tasks have no data; running tasks keep theirs."""

    @pytest.mark.asyncio
    async def test_task_created_after_detach_has_no_data(self) -> None:
        """A task created after ``detach`` raises TaskContextError on access, including
        ``get`` with a default."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx.detach()

        async def child() -> int | None:
            return ctx.get("a", 0)

        with pytest.raises(TaskContextError):
            await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_task_given_context_after_detach_has_no_data(self) -> None:
        """A task created after ``detach`` with ``context=`` a copy of a context that has
        data still has no data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx.detach()

        async def child() -> int:
            return ctx["a"]

        with pytest.raises(TaskContextError):
            await asyncio.create_task(child(), context=contextvars.copy_context())

    @pytest.mark.asyncio
    async def test_task_given_empty_context_after_detach_has_no_data(self) -> None:
        """A task created after ``detach`` with ``context=`` an empty context has no data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.detach()

        async def child() -> int:
            return len(ctx)

        with pytest.raises(TaskContextError):
            await asyncio.create_task(child(), context=contextvars.Context())

    @pytest.mark.asyncio
    async def test_detach_with_explicit_loop(self) -> None:
        """``detach(loop)`` with the running loop named has the same effect as ``detach()``."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx.detach(asyncio.get_running_loop())

        async def child() -> int:
            return ctx["a"]

        with pytest.raises(TaskContextError):
            await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_running_tasks_keep_their_data(self) -> None:
        """A task started before ``detach`` keeps its data, and so does the detaching task."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        started, go = asyncio.Event(), asyncio.Event()

        async def child() -> int:
            ctx["b"] = 2
            started.set()
            await go.wait()
            return ctx["a"] + ctx["b"]

        task = asyncio.create_task(child())
        await started.wait()
        ctx.detach()
        go.set()
        assert (3, {"a": 1}) == (await task, dict(ctx))

    @pytest.mark.asyncio
    async def test_task_created_before_detach_not_yet_started_keeps_data(self) -> None:
        """A task created before ``detach`` but not yet started still has its data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1

        async def child() -> int:
            return ctx["a"]

        task = asyncio.create_task(child())
        ctx.detach()
        assert 1 == await task

    @pytest.mark.asyncio
    async def test_grandchild_of_detached_task_has_no_data(self) -> None:
        """Tasks created by a task that has no data (after ``detach``) have none either."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx.detach()

        async def grandchild() -> int:
            return len(ctx)

        async def child() -> int:
            return await asyncio.create_task(grandchild())

        with pytest.raises(TaskContextError):
            await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_reattach_gives_root_to_tasks_created_while_detached(self) -> None:
        """A task created while detached gets ``policy.root()`` (not its creator's data)
        once the context is attached again."""
        ctx: Context[str, Any] = Context(Generations(), registry=ContextRegistry()).attach()
        ctx["parent"] = True
        ctx.detach()
        go = asyncio.Event()

        async def child() -> dict[str, Any]:
            await go.wait()
            ctx["child"] = True
            return dict(ctx)

        task = asyncio.create_task(child())
        ctx.attach()
        go.set()
        assert {"generation": 0, "child": True} == await task

    @pytest.mark.asyncio
    async def test_reattach_children_inherit_again(self) -> None:
        """After ``detach`` and ``attach`` again, new tasks inherit from their creator."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx["a"] = 1
        ctx.detach()
        ctx.attach()

        async def child() -> int:
            return ctx["a"]

        assert 1 == await asyncio.create_task(child())


class TestErrors:
    @pytest.mark.parametrize("error", [EventLoopError, TaskContextError, TaskFactoryError])
    def test_hierarchy(self, error: type[AioContextError]) -> None:
        """Every error is an AioContextError and a RuntimeError, and never a LookupError
        (so ``get`` and ``in`` cannot swallow it)."""
        assert (True, True, False) == (
            issubclass(error, AioContextError),
            issubclass(error, RuntimeError),
            issubclass(error, LookupError),
        )

    @pytest.mark.parametrize("access", DATA_ACCESSES)
    def test_no_loop_raises_event_loop_error(self, access: Access) -> None:
        """Any data access with no data and no running loop raises EventLoopError
        (rule 6), including ``get(k, default)`` and ``in``."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        with pytest.raises(EventLoopError, match="loop_factory"):
            access(ctx)

    @pytest.mark.parametrize("access", DATA_ACCESSES)
    def test_attached_but_no_loop_running_raises_event_loop_error(
        self, access: Access, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Being attached to a loop does not help code running outside it: EventLoopError."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry()).attach(loop)
        with pytest.raises(EventLoopError):
            access(ctx)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("access", DATA_ACCESSES)
    async def test_unattached_running_loop_raises_task_context_error(self, access: Access) -> None:
        """Any data access on a running loop the context is not attached to raises
        TaskContextError (rule 6), naming the fix."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        with pytest.raises(TaskContextError, match=r"ctx\.attach\(\)"):
            access(ctx)

    @pytest.mark.asyncio
    async def test_attached_to_another_loop_raises_task_context_error(self) -> None:
        """A context attached to another loop only raises TaskContextError here."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        other = asyncio.new_event_loop()
        try:
            ctx.attach(other)
            with pytest.raises(TaskContextError):
                ctx.get("key", None)
        finally:
            other.close()

    @pytest.mark.asyncio
    async def test_other_context_attached_raises_task_context_error(self) -> None:
        """The wrapper installed for another context does not give this one data."""
        registry = ContextRegistry()
        Context(registry=registry).attach()
        ctx: Context[str, Any] = Context(registry=registry)
        with pytest.raises(TaskContextError):
            "key" in ctx  # noqa: B015 - the access is the point  # pyright: ignore[reportUnusedExpression]

    @pytest.mark.asyncio
    async def test_other_context_attached_still_works(self) -> None:
        """An unattached context raising does not affect an attached one on the same loop."""
        registry = ContextRegistry()
        attached: Context[str, int] = Context(registry=registry).attach()
        unattached: Context[str, int] = Context(registry=registry)
        attached["a"] = 1

        async def child() -> int:
            with pytest.raises(TaskContextError):
                unattached.get("a")
            return attached["a"]

        assert 1 == await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_replaced_task_factory_raises_task_factory_error(self) -> None:
        """If the loop's factory is replaced after ``attach``, a task without data raises
        TaskFactoryError; ``attach()`` again wraps the new factory and data works again."""
        loop = asyncio.get_running_loop()
        with restoring_task_factory(loop):
            ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
            loop.set_task_factory(None)

            async def write() -> dict[str, int]:
                ctx["a"] = 1
                return dict(ctx)

            with pytest.raises(TaskFactoryError, match=r"attach"):
                await loop.create_task(write(), context=contextvars.Context())
            ctx.attach()
            assert {"a": 1} == await loop.create_task(write(), context=contextvars.Context())


class TestHandle:
    """A Context is a handle on task-local data, not a value (defect 12)."""

    def test_copies_are_the_context_itself(self) -> None:
        """``copy.copy`` and ``copy.deepcopy`` give the same context, not a second,
        unequal handle on the same data."""
        ctx: Context[str, int] = Context(registry=ContextRegistry())
        assert (ctx, ctx) == (copy.copy(ctx), copy.deepcopy(ctx))
        assert copy.copy(ctx) is ctx

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_pickling_says_to_send_a_snapshot(self, protocol: int) -> None:
        """Pickling raises a ``TypeError`` that names ``snapshot()`` at once."""
        ctx: Context[str, int] = Context(registry=ContextRegistry())
        with pytest.raises(TypeError, match=r"snapshot\(\)"):
            pickle.dumps(ctx, protocol)

    @pytest.mark.asyncio
    async def test_deepcopy_of_a_value_holding_a_context(self) -> None:
        """Under ``DeepCopy()`` a value holding a context (a logger adapter, say) copies,
        and its copy holds the same context."""
        inner: Context[str, int] = Context(registry=ContextRegistry())
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        ctx["holder"] = {"context": inner}

        async def child() -> object:
            return ctx["holder"]["context"]

        assert inner is await asyncio.create_task(child())


class TestServedCheck:
    @pytest.mark.asyncio
    async def test_a_half_done_attach_is_looked_at_again_under_the_lock(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A read that finds the context attached but not yet in the wrapper's plan (another
        thread is between the two) looks again once the attach is done, and gets data, not
        a false ``TaskFactoryError`` (defect 6)."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        answers = iter([False])
        real = TaskFactoryWrapper.propagates

        def half_done(self: TaskFactoryWrapper, context: Context[Any, Any]) -> bool:
            return next(answers, True) and real(self, context)

        monkeypatch.setattr(TaskFactoryWrapper, "propagates", half_done)

        async def child() -> int:
            return len(ctx)

        assert 0 == await asyncio.Task(child(), context=contextvars.Context())  # no data
        assert [] == list(answers)  # the first look said "not served"


class TestHereView:
    @pytest.mark.asyncio
    async def test_chainmap_data_outside_tasks_is_the_context(self) -> None:
        """Under ``ChainMap()``, ``data()`` in a callback is the context itself: ``in``,
        ``update`` and ``clear`` act on the callback's data."""
        ctx: Context[str, int] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["task"] = 1
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[bool, dict[str, int], dict[str, int]]] = loop.create_future()

        def callback() -> None:
            data = ctx.data()
            data.update(a=1, b=2)
            updated = dict(data)
            data.clear()
            done.set_result(("a" in data, updated, dict(ctx)))

        loop.call_soon(callback)
        assert (False, {"task": 1, "a": 1, "b": 2}, {"task": 1}) == await done
        assert {"task": 1} == dict(ctx)
