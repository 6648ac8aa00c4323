"""Tests for the propagation policies: the policy objects themselves, and what each one
means for a parent task and its children through a ``Context``."""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import attrs
import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
    loop_factory,
)

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

BUILT_IN: list[type[PropagationPolicy]] = [Share, Copy, DeepCopy, ChainMap]


def run(main: Coroutine[Any, Any, T], *contexts: Context[Any, Any], base: LoopFactory) -> T:
    """Run ``main`` as the main task of a new loop that has ``contexts`` attached."""
    with asyncio.Runner(loop_factory=loop_factory(*contexts, base=base)) as runner:
        return runner.run(main)


# -- the three columns of the contract's policy table, observed through a Context -----------


async def child_writes_seen_by_parent(ctx: Context[str, Any]) -> tuple[Any, Any]:
    """Parent sets ``k``; a child overwrites ``k`` and adds ``new``; return the parent's view."""
    ctx["k"] = "parent"

    async def child() -> None:
        ctx["k"] = "child"
        ctx["new"] = "child"

    await asyncio.create_task(child())
    return ctx.get("k"), ctx.get("new")


async def parent_writes_seen_by_child(
    ctx: Context[str, Any], *, child_shadows: bool = False
) -> tuple[Any, Any]:
    """Parent sets ``k`` and spawns a child that starts running; then the parent overwrites
    ``k`` and adds ``new``; return the child's view afterwards."""
    ctx["k"] = "before"
    started, go = asyncio.Event(), asyncio.Event()

    async def child() -> tuple[Any, Any]:
        if child_shadows:
            ctx["k"] = "child"
        started.set()
        await go.wait()
        return ctx.get("k"), ctx.get("new")

    task = asyncio.create_task(child())
    await started.wait()
    ctx["k"] = "after"
    ctx["new"] = "parent"
    go.set()
    return await task


async def child_mutation_seen_by_parent(ctx: Context[str, Any]) -> list[str]:
    """Parent stores a list; a child mutates it in place; return the parent's list."""
    ctx["list"] = ["parent"]

    async def child() -> None:
        ctx["list"].append("child")

    await asyncio.create_task(child())
    result: list[str] = ctx["list"]
    return result


async def classic(ctx: Context[str, Any]) -> tuple[Any, Any]:
    """The contract's classic example; returns the parent's ``simple`` and ``complex``."""
    ctx["simple"] = "from parent"
    ctx["complex"] = ["from", "parent"]

    async def child() -> None:
        ctx["simple"] = "from child"
        ctx["complex"][1] = "child"

    await asyncio.create_task(child())
    return ctx["simple"], ctx["complex"]


CLASSIC = [
    pytest.param(Share(), "from child", ["from", "child"], id="Share"),
    pytest.param(Copy(), "from parent", ["from", "child"], id="Copy"),
    pytest.param(DeepCopy(), "from parent", ["from", "parent"], id="DeepCopy"),
    pytest.param(ChainMap(), "from parent", ["from", "child"], id="ChainMap"),
]


class TestClassicExample:
    """The contract's classic example, for each policy, exactly as its table says."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("policy", "simple", "complex_"), CLASSIC)
    async def test_through_context(
        self, policy: PropagationPolicy, simple: str, complex_: list[str]
    ) -> None:
        """Through a context attached from inside the running task, the parent ends with
        the values of the contract's table."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry()).attach()
        assert (simple, complex_) == await classic(ctx)

    @pytest.mark.parametrize(("policy", "simple", "complex_"), CLASSIC)
    def test_through_loop_factory(
        self, policy: PropagationPolicy, simple: str, complex_: list[str], new_loop: LoopFactory
    ) -> None:
        """With the main task given data from its start by ``loop_factory``, the parent
        ends with the values of the contract's table."""
        ctx: Context[str, Any] = Context(policy, registry=ContextRegistry())
        assert (simple, complex_) == run(classic(ctx), ctx, base=new_loop)

    @pytest.mark.parametrize(("policy", "simple", "complex_"), CLASSIC)
    def test_with_policy_objects(
        self, policy: PropagationPolicy, simple: str, complex_: list[str]
    ) -> None:
        """Calling ``root`` and ``inherit`` directly gives the values of the contract's
        table."""
        parent: MutableMapping[str, Any] = policy.root()
        parent["simple"] = "from parent"
        parent["complex"] = ["from", "parent"]
        child = policy.inherit(parent)
        child["simple"] = "from child"
        child["complex"][1] = "child"
        assert (simple, complex_) == (parent["simple"], parent["complex"])


class TestShare:
    def test_inherit_returns_parent_itself(self) -> None:
        """``Share().inherit(parent)`` is ``parent``."""
        parent = {"a": 1}
        assert parent is Share().inherit(parent)

    def test_root_is_a_new_empty_dict(self) -> None:
        """``Share().root()`` is an empty dict, a new one each call."""
        first: MutableMapping[str, Any] = Share().root()
        second: MutableMapping[str, Any] = Share().root()
        assert ({}, dict) == (first, type(first))
        assert first is not second

    @pytest.mark.asyncio
    async def test_child_data_is_parent_mapping(self) -> None:
        """A child's mapping is its parent's mapping itself."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry()).attach()
        parent_data = ctx.data()

        async def child() -> MutableMapping[str, Any]:
            return ctx.data()

        assert parent_data is await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_child_writes_seen_by_parent(self) -> None:
        """Under Share() the parent sees its child's writes."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry()).attach()
        assert ("child", "child") == await child_writes_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_parent_writes_after_spawn_seen_by_child(self) -> None:
        """Under Share() a running child sees its parent's later writes."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry()).attach()
        assert ("after", "parent") == await parent_writes_seen_by_child(ctx)

    @pytest.mark.asyncio
    async def test_child_deletion_seen_by_parent(self) -> None:
        """Under Share() a key the child deletes is gone for the parent too."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> None:
            del ctx["k"]

        await asyncio.create_task(child())
        assert {} == ctx

    @pytest.mark.asyncio
    async def test_whole_tree_shares_one_mapping(self) -> None:
        """Under Share() a grandchild's write is seen by its grandparent."""
        ctx: Context[str, Any] = Context(Share(), registry=ContextRegistry()).attach()

        async def grandchild() -> None:
            ctx["grandchild"] = True

        async def child() -> None:
            await asyncio.create_task(grandchild())

        await asyncio.create_task(child())
        assert {"grandchild": True} == ctx


class TestCopy:
    def test_is_the_default_policy(self) -> None:
        """Copy() is what a Context uses when given no policy."""
        assert Copy() == Context(registry=ContextRegistry()).policy

    def test_inherit_returns_a_shallow_copy(self) -> None:
        """``Copy().inherit(parent)`` is a new mapping with the same items, whose values are
        the parent's objects themselves."""
        parent: dict[str, Any] = {"a": 1, "list": []}
        child = Copy().inherit(parent)
        assert (parent, False, True) == (child, child is parent, child["list"] is parent["list"])

    def test_inherit_copy_is_independent(self) -> None:
        """Writes to the copy do not reach the parent, nor the other way round."""
        parent: dict[str, Any] = {"a": 1}
        child = Copy().inherit(parent)
        child["a"] = 2
        parent["b"] = 3
        assert ({"a": 1, "b": 3}, {"a": 2}) == (parent, child)

    def test_inherit_of_a_copy_is_a_copy(self) -> None:
        """Copying the data of a child that was itself copied still gives an independent
        copy (the grandchild case)."""
        root: MutableMapping[str, int] = Copy().root()
        root["a"] = 1
        child = Copy().inherit(root)
        grandchild = Copy().inherit(child)
        grandchild["a"] = 3
        child["a"] = 2
        assert (1, 2, 3) == (root["a"], child["a"], grandchild["a"])

    @pytest.mark.parametrize(
        "mapping_type", [collections.OrderedDict, collections.UserDict], ids=lambda t: t.__name__
    )
    def test_inherit_copies_other_mapping_types(
        self, mapping_type: Callable[[dict[str, Any]], MutableMapping[str, Any]]
    ) -> None:
        """``Copy().inherit`` shallow-copies mappings that are not plain dicts too."""
        parent = mapping_type({"a": 1, "list": []})
        child = Copy().inherit(parent)
        child["a"] = 2
        assert ({"a": 1, "list": []}, True) == (dict(parent), child["list"] is parent["list"])

    def test_root_is_a_new_empty_dict(self) -> None:
        """``Copy().root()`` is an empty dict, a new one each call."""
        first: MutableMapping[str, Any] = Copy().root()
        second: MutableMapping[str, Any] = Copy().root()
        assert ({}, True) == (first, isinstance(first, dict))
        assert first is not second

    @pytest.mark.asyncio
    async def test_child_data_is_an_equal_copy(self) -> None:
        """A child's data equals its parent's but is another mapping."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["a"] = 1
        parent_data = ctx.data()

        async def child() -> dict[str, Any]:
            ctx.data()["b"] = 2  # into the child's own mapping, never the parent's
            return dict(ctx.data())

        assert {"a": 1, "b": 2} == await asyncio.create_task(child())
        assert {"a": 1} == parent_data

    @pytest.mark.asyncio
    async def test_child_writes_not_seen_by_parent(self) -> None:
        """Under Copy() the parent does not see its child's writes."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        assert ("parent", None) == await child_writes_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_mutated_shared_values_seen_by_parent(self) -> None:
        """Under Copy() a value the child mutates in place is the parent's value too."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        assert ["parent", "child"] == await child_mutation_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_parent_writes_after_spawn_not_seen_by_child(self) -> None:
        """Under Copy() a running child does not see its parent's later writes."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        assert ("before", None) == await parent_writes_seen_by_child(ctx)

    @pytest.mark.asyncio
    async def test_parent_mutation_after_spawn_seen_by_child(self) -> None:
        """Under Copy() a value the parent mutates in place after the spawn is the child's
        value too (only the mapping is copied)."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["list"] = ["before"]
        go = asyncio.Event()

        async def child() -> Any:
            await go.wait()
            return ctx["list"]

        task = asyncio.create_task(child())
        ctx["list"].append("after")
        go.set()
        assert ["before", "after"] == await task

    @pytest.mark.asyncio
    async def test_child_deletion_not_seen_by_parent(self) -> None:
        """Under Copy() a key the child deletes stays in the parent's data."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> None:
            del ctx["k"]

        await asyncio.create_task(child())
        assert {"k": "parent"} == ctx

    @pytest.mark.asyncio
    async def test_clear_in_child_not_seen_by_parent(self) -> None:
        """Under Copy() a child's ``clear()`` empties only the child's data."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> dict[str, Any]:
            ctx.clear()
            return dict(ctx)

        assert ({}, {"k": "parent"}) == (await asyncio.create_task(child()), dict(ctx))

    @pytest.mark.asyncio
    async def test_clear_in_parent_after_spawn_not_seen_by_child(self) -> None:
        """Under Copy() a parent's ``clear()`` after a spawn leaves the child's data whole."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"
        go = asyncio.Event()

        async def child() -> dict[str, Any]:
            await go.wait()
            return dict(ctx)

        task = asyncio.create_task(child())
        ctx.clear()
        go.set()
        assert ({"k": "parent"}, {}) == (await task, dict(ctx))

    @pytest.mark.asyncio
    async def test_siblings_do_not_see_each_other(self) -> None:
        """Under Copy() two children of one parent each write only their own copy."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"
        first_wrote = asyncio.Event()

        async def first() -> Any:
            ctx["k"] = "first"
            first_wrote.set()
            return ctx["k"]

        async def second() -> Any:
            await first_wrote.wait()
            return ctx["k"]

        assert ["first", "parent"] == list(await asyncio.gather(first(), second()))

    @pytest.mark.asyncio
    async def test_write_through_data_after_spawn_not_seen_by_child(self) -> None:
        """Writes through the parent's ``data()`` mapping after a spawn are not seen by the
        child either: the child really has a copy."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "before"
        go = asyncio.Event()

        async def child() -> Any:
            await go.wait()
            return ctx["k"]

        task = asyncio.create_task(child())
        ctx.data()["k"] = "after"
        go.set()
        assert ("before", "after") == (await task, ctx["k"])

    @pytest.mark.asyncio
    async def test_child_write_through_data_not_seen_by_parent(self) -> None:
        """A child's writes through its ``data()`` mapping stay its own."""
        ctx: Context[str, Any] = Context(Copy(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> None:
            ctx.data()["k"] = "child"

        await asyncio.create_task(child())
        assert "parent" == ctx["k"]


class TestDeepCopy:
    def test_inherit_returns_a_deep_copy(self) -> None:
        """``DeepCopy().inherit(parent)`` is equal, with no object shared at any depth."""
        parent: dict[str, Any] = {"list": [{"x": 1}]}
        child = DeepCopy().inherit(parent)
        assert (parent, False, False) == (
            child,
            child["list"] is parent["list"],
            child["list"][0] is parent["list"][0],
        )

    def test_root_is_a_new_empty_dict(self) -> None:
        """``DeepCopy().root()`` is an empty dict, a new one each call."""
        first: MutableMapping[str, Any] = DeepCopy().root()
        second: MutableMapping[str, Any] = DeepCopy().root()
        assert ({}, True) == (first, isinstance(first, dict))
        assert first is not second

    def test_uncopyable_value_raises_with_note_naming_the_key(self) -> None:
        """A value that cannot be deep-copied makes ``inherit`` raise the original error,
        with one note naming the first such key."""
        lock = threading.Lock()
        parent = {"fine": [1], "lock": lock, "other_lock": threading.Lock()}
        with pytest.raises(TypeError) as excinfo:
            DeepCopy().inherit(parent)
        notes = excinfo.value.__notes__
        assert (1, True, False) == (len(notes), "'lock'" in notes[0], "other_lock" in notes[0])

    def test_uncopyable_key_raises_the_original_error(self) -> None:
        """A key that cannot be deep-copied makes ``inherit`` raise the original error
        (there is no value to name)."""

        class Uncopyable:
            def __deepcopy__(self, memo: dict[int, Any]) -> Any:
                raise TypeError("cannot deep-copy this key")

        with pytest.raises(TypeError, match="cannot deep-copy this key"):
            DeepCopy().inherit({Uncopyable(): 1})

    @pytest.mark.asyncio
    async def test_uncopyable_value_makes_spawn_fail(self) -> None:
        """Spawning under DeepCopy() with an uncopyable value raises from ``create_task``
        (noted with the key) and leaves the parent's data as it was."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        lock = threading.Lock()
        ctx["lock"] = lock

        async def child() -> None:
            pass

        coro = child()
        try:
            with pytest.raises(TypeError) as excinfo:
                asyncio.create_task(coro)
        finally:
            coro.close()
        assert any("'lock'" in note for note in excinfo.value.__notes__)
        assert {"lock": lock} == ctx

    @pytest.mark.asyncio
    async def test_child_writes_not_seen_by_parent(self) -> None:
        """Under DeepCopy() the parent does not see its child's writes."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        assert ("parent", None) == await child_writes_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_mutated_values_not_seen_by_parent(self) -> None:
        """Under DeepCopy() a value the child mutates in place is its own copy."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        assert ["parent"] == await child_mutation_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_parent_writes_after_spawn_not_seen_by_child(self) -> None:
        """Under DeepCopy() a running child does not see its parent's later writes."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        assert ("before", None) == await parent_writes_seen_by_child(ctx)

    @pytest.mark.asyncio
    async def test_parent_mutation_after_spawn_not_seen_by_child(self) -> None:
        """Under DeepCopy() a value the parent mutates after the spawn is unchanged for
        the child."""
        ctx: Context[str, Any] = Context(DeepCopy(), registry=ContextRegistry()).attach()
        ctx["list"] = ["before"]
        go = asyncio.Event()

        async def child() -> Any:
            await go.wait()
            return ctx["list"]

        task = asyncio.create_task(child())
        ctx["list"].append("after")
        go.set()
        assert ["before"] == await task


class TestChainMap:
    @pytest.mark.asyncio
    async def test_pop_in_child_searches_only_its_own_layer(self) -> None:
        """``ctx.pop(key, default)`` in a child returns the default for a key only the
        parent holds, like ``ChainMap.pop``; without a default it raises KeyError."""
        ctx: Context[str, str] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["parent"] = "p"

        async def child() -> tuple[str, str]:
            ctx["own"] = "c"
            with pytest.raises(KeyError):
                ctx.pop("parent")
            return ctx.pop("parent", "default"), ctx.pop("own")

        assert ("default", "c") == await asyncio.create_task(child())
        assert {"parent": "p"} == dict(ctx)

    def test_root_is_a_chainmap_with_one_empty_layer(self) -> None:
        """``ChainMap().root()`` is a new ``collections.ChainMap`` with one empty layer."""
        first: MutableMapping[str, Any] = ChainMap().root()
        second: MutableMapping[str, Any] = ChainMap().root()
        assert isinstance(first, collections.ChainMap)
        assert ([{}], False) == (first.maps, first is second)

    def test_inherit_of_a_dict_layers_over_it(self) -> None:
        """Inheriting from a plain mapping gives a ChainMap of a new layer over it."""
        parent = {"a": 1}
        child = ChainMap().inherit(parent)
        assert isinstance(child, collections.ChainMap)
        assert ([{}, parent], True) == (child.maps, child.maps[1] is parent)

    def test_inherit_of_a_chainmap_layers_over_its_layers(self) -> None:
        """Inheriting from a ChainMap adds one new layer over the parent's own layers."""
        parent: MutableMapping[str, int] = ChainMap().root()
        parent["a"] = 1
        child = ChainMap().inherit(parent)
        grandchild = ChainMap().inherit(child)
        assert isinstance(parent, collections.ChainMap)
        assert isinstance(child, collections.ChainMap)
        assert isinstance(grandchild, collections.ChainMap)
        assert 3 == len(grandchild.maps)
        assert all(
            mine is theirs for mine, theirs in zip(grandchild.maps[1:], child.maps, strict=True)
        )
        assert all(
            mine is theirs for mine, theirs in zip(grandchild.maps[2:], parent.maps, strict=True)
        )

    def test_inherit_writes_go_to_the_new_layer(self) -> None:
        """Writes to the child shadow the parent's values without changing them; deleting
        the shadowing key shows the parent's value again."""
        parent: MutableMapping[str, str] = ChainMap().root()
        parent["a"] = "parent"
        child = ChainMap().inherit(parent)
        child["a"] = "child"
        assert ("parent", "child") == (parent["a"], child["a"])
        del child["a"]
        assert "parent" == child["a"]

    def test_inherit_delete_of_parent_key_raises_key_error(self) -> None:
        """Deleting from the child a key only the parent holds raises KeyError."""
        parent: MutableMapping[str, str] = ChainMap().root()
        parent["a"] = "parent"
        child = ChainMap().inherit(parent)
        with pytest.raises(KeyError):
            del child["a"]
        assert "parent" == parent["a"]

    @pytest.mark.asyncio
    async def test_child_reads_through_all_layers(self) -> None:
        """Under ChainMap() a child finds its parent's keys (``[]``, ``get``, ``in``) and a
        key no layer holds raises KeyError."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["parent"] = "p"

        async def child() -> tuple[Any, Any, bool, bool]:
            with pytest.raises(KeyError):
                ctx["missing"]
            return ctx["parent"], ctx.get("missing", "default"), "parent" in ctx, "x" in ctx

        assert ("p", "default", True, False) == await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_child_writes_not_seen_by_parent(self) -> None:
        """Under ChainMap() the parent does not see its child's writes."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        assert ("parent", None) == await child_writes_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_mutated_shared_values_seen_by_parent(self) -> None:
        """Under ChainMap() a value the child mutates in place is the parent's value."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        assert ["parent", "child"] == await child_mutation_seen_by_parent(ctx)

    @pytest.mark.asyncio
    async def test_parent_writes_after_spawn_seen_by_child(self) -> None:
        """Under ChainMap() a running child sees its parent's later writes and new keys."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        assert ("after", "parent") == await parent_writes_seen_by_child(ctx)

    @pytest.mark.asyncio
    async def test_parent_writes_after_spawn_hidden_where_child_shadowed(self) -> None:
        """Under ChainMap() a parent's later write to a key the child has set is hidden by
        the child's value; other new keys still show."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        assert ("child", "parent") == await parent_writes_seen_by_child(ctx, child_shadows=True)

    @pytest.mark.asyncio
    async def test_grandchild_sees_grandparent_later_writes(self) -> None:
        """Under ChainMap() layers stack: a grandchild sees what its grandparent writes
        after the spawn, unless a nearer layer shadows it."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["shadowed"] = "root"
        started, go = asyncio.Event(), asyncio.Event()

        async def grandchild() -> dict[str, Any]:
            started.set()
            await go.wait()
            return dict(ctx)

        async def child() -> dict[str, Any]:
            ctx["shadowed"] = "child"
            return await asyncio.create_task(grandchild())

        task = asyncio.create_task(child())
        await started.wait()
        ctx["late"] = "root"
        ctx["shadowed"] = "root, later"
        go.set()
        assert {"shadowed": "child", "late": "root"} == await task

    @pytest.mark.asyncio
    async def test_del_parent_only_key_in_child_raises_key_error(self) -> None:
        """Under ChainMap() ``del ctx[k]`` in a child, for a key only the parent holds,
        raises KeyError and leaves the key in place for both."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> Any:
            with pytest.raises(KeyError):
                del ctx["k"]
            return ctx["k"]

        assert "parent" == await asyncio.create_task(child())
        assert {"k": "parent"} == ctx

    @pytest.mark.asyncio
    async def test_del_in_child_acts_on_its_own_layer(self) -> None:
        """Under ChainMap() deleting a key the child shadowed removes the child's value
        only: the parent's value shows again, and the parent keeps it."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["k"] = "parent"

        async def child() -> Any:
            ctx["k"] = "child"
            del ctx["k"]
            return ctx["k"]

        assert "parent" == await asyncio.create_task(child())
        assert {"k": "parent"} == ctx

    @pytest.mark.asyncio
    async def test_clear_in_child_clears_its_own_layer(self) -> None:
        """Under ChainMap() ``ctx.clear()`` in a child acts on the child's data like
        ``ChainMap.clear()``: it empties the child's own layer, and the parent's keys still
        show through."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["parent"] = "p"

        async def child() -> dict[str, Any]:
            ctx["own"] = "c"
            ctx["parent"] = "shadowed"
            ctx.clear()
            return dict(ctx)

        assert {"parent": "p"} == await asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_popitem_in_child_pops_from_its_own_layer(self) -> None:
        """Under ChainMap() ``ctx.popitem()`` in a child acts on the child's data like
        ``ChainMap.popitem()``: it removes an item of the child's own layer."""
        ctx: Context[str, Any] = Context(ChainMap(), registry=ContextRegistry()).attach()
        ctx["parent"] = "p"

        async def child() -> tuple[tuple[str, Any], dict[str, Any]]:
            ctx["own"] = "c"
            return ctx.popitem(), dict(ctx)

        assert (("own", "c"), {"parent": "p"}) == await asyncio.create_task(child())


@attrs.frozen
class Defaults(PropagationPolicy):
    """A user policy: roots start from defaults; children get a copy of their parent's."""

    defaults: tuple[tuple[str, Any], ...] = (("lang", "en"),)

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return dict(parent)

    def root(self) -> MutableMapping[Any, Any]:
        return dict(self.defaults)


@attrs.frozen
class OnlyInherit(PropagationPolicy):
    """A user policy that overrides ``inherit`` only."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return {key: value for key, value in parent.items() if not key.startswith("_")}


class TestPropagationPolicy:
    def test_cannot_instantiate_the_abstract_base(self) -> None:
        """PropagationPolicy itself is abstract."""
        with pytest.raises(TypeError):
            PropagationPolicy()  # type: ignore[abstract]  # pyright: ignore[reportAbstractUsage]

    def test_subclass_must_implement_inherit(self) -> None:
        """A subclass that does not implement ``inherit`` cannot be instantiated."""

        class NoInherit(PropagationPolicy):
            pass

        with pytest.raises(TypeError, match="inherit"):
            NoInherit()  # type: ignore[abstract]  # pyright: ignore[reportAbstractUsage]

    def test_default_root_is_a_new_empty_dict(self) -> None:
        """A subclass that does not override ``root`` gets a new empty dict each call."""
        first: MutableMapping[str, Any] = OnlyInherit().root()
        second: MutableMapping[str, Any] = OnlyInherit().root()
        assert ({}, dict, False) == (first, type(first), first is second)

    @pytest.mark.parametrize("policy_class", BUILT_IN)
    def test_equal_and_same_hash_by_value(self, policy_class: type[PropagationPolicy]) -> None:
        """Two instances of a built-in policy are equal and hash alike (``Copy() == Copy()``)."""
        assert policy_class() == policy_class()
        assert hash(policy_class()) == hash(policy_class())

    def test_different_policies_differ(self) -> None:
        """Instances of different built-in policies are all unequal (``Copy() != Share()``)."""
        pairs = [(first(), second()) for first, second in itertools.combinations(BUILT_IN, 2)]
        assert [] == [(first, second) for first, second in pairs if first == second]

    def test_usable_as_set_members(self) -> None:
        """Equal policies collapse in a set; different ones stay apart."""
        assert 4 == len({Share(), Copy(), DeepCopy(), ChainMap(), Copy(), Share()})

    @pytest.mark.parametrize("policy_class", BUILT_IN)
    def test_frozen(self, policy_class: type[PropagationPolicy]) -> None:
        """Built-in policies are frozen: setting an attribute raises AttributeError."""
        with pytest.raises(AttributeError):
            policy_class().extra = 1  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]

    @pytest.mark.parametrize("policy_class", BUILT_IN)
    def test_repr(self, policy_class: type[PropagationPolicy]) -> None:
        """A built-in policy's repr is the expression that builds it (``Copy()``)."""
        assert f"{policy_class.__name__}()" == repr(policy_class())

    def test_user_policy_compares_by_value(self) -> None:
        """An ``attrs.frozen`` user policy compares by its fields."""
        assert (True, False) == (
            Defaults() == Defaults(),
            Defaults() == Defaults((("lang", "fr"),)),
        )

    @pytest.mark.asyncio
    async def test_user_root_used_for_task_without_data(self) -> None:
        """A task without data gets the user policy's ``root()`` on first access."""
        ctx: Context[str, Any] = Context(Defaults(), registry=ContextRegistry()).attach()
        assert {"lang": "en"} == ctx

    def test_user_root_used_for_main_task_of_loop_factory(self, new_loop: LoopFactory) -> None:
        """The main task of a ``loop_factory`` loop starts with the user policy's root."""
        ctx: Context[str, Any] = Context(Defaults((("lang", "fr"),)), registry=ContextRegistry())

        async def main() -> dict[str, Any]:
            return dict(ctx)

        assert {"lang": "fr"} == run(main(), ctx, base=new_loop)

    @pytest.mark.asyncio
    async def test_user_inherit_used_for_children(self) -> None:
        """Children get what the user policy's ``inherit`` returns for the parent's data."""
        ctx: Context[str, Any] = Context(OnlyInherit(), registry=ContextRegistry()).attach()
        ctx.update(public=1, _private=2)

        async def child() -> dict[str, Any]:
            ctx["child"] = 3
            return dict(ctx)

        assert {"public": 1, "child": 3} == await asyncio.create_task(child())
        assert {"public": 1, "_private": 2} == ctx

    @pytest.mark.asyncio
    async def test_subclass_of_copy_with_own_root(self) -> None:
        """A user subclass of Copy() that overrides ``root`` keeps Copy()'s semantics and
        its own root."""

        @attrs.frozen
        class CopyWithDefaults(Copy):
            def root(self) -> MutableMapping[Any, Any]:
                return {"lang": "en"}

        ctx: Context[str, Any] = Context(CopyWithDefaults(), registry=ContextRegistry()).attach()

        async def child() -> dict[str, Any]:
            ctx["lang"] = "fr"
            return dict(ctx)

        assert ({"lang": "fr"}, {"lang": "en"}) == (await asyncio.create_task(child()), dict(ctx))

    @pytest.mark.asyncio
    async def test_subclass_of_copy_with_own_inherit(self) -> None:
        """A user subclass of Copy() that overrides ``inherit`` has its ``inherit`` used."""

        @attrs.frozen
        class CountingCopy(Copy):
            def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
                return {**parent, "depth": parent.get("depth", 0) + 1}

        ctx: Context[str, Any] = Context(CountingCopy(), registry=ContextRegistry()).attach()
        ctx["a"] = 1

        async def child() -> dict[str, Any]:
            return dict(ctx)

        assert {"a": 1, "depth": 1} == await asyncio.create_task(child())
