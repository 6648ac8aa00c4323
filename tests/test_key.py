"""Tests for ``aiocontext.Key``: construction, identity, copying and pickling, and how a
typed key reads, writes and falls back on its default in a Context."""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    EventLoopError,
    Key,
    PropagationPolicy,
    Share,
)

#: ``Key`` itself, typed so that pyright knows its ``__init__`` fully (``Key.__init__`` has an
#: unsolved type parameter).
ANY_KEY: type[Key[Any]] = Key


class CountingFactory:
    """A default factory that makes a new list on each call and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return []


def attached(policy: PropagationPolicy = Copy()) -> Context[Any, Any]:
    """A new context, with its own registry, attached to the running loop.

    Typed ``Context[Any, Any]`` because mypy's strict equality rejects ``KEY in ctx`` for a
    ``Context[str, ...]`` (its container item type is ``str``), and these tests use ``in``.
    """
    return Context(policy, registry=ContextRegistry()).attach()


class TestKey:
    # -- construction and validation -------------------------------------------------------

    def test_name(self) -> None:
        """``name`` is the name given at construction."""
        assert "request_id" == Key[str]("request_id").name

    def test_has_default(self) -> None:
        """``has_default`` is True for a default (None included) or a default factory, and
        False for a key given neither."""
        assert (False, True, True, True) == (
            Key[str]("plain").has_default,
            Key[str]("with_default", default="-").has_default,
            Key[None]("none_default", default=None).has_default,
            Key[list[str]]("with_factory", default_factory=list).has_default,
        )

    @pytest.mark.parametrize("name", [42, None, b"request_id"], ids=["int", "None", "bytes"])
    def test_non_str_name_raises_type_error(self, name: object) -> None:
        """A name that is not a str is refused with TypeError."""
        with pytest.raises(TypeError, match="name must be a str"):
            Key(name)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

    @pytest.mark.parametrize("factory", [[], "list", 3], ids=["list", "str", "int"])
    def test_non_callable_default_factory_raises_type_error(self, factory: object) -> None:
        """A default factory that cannot be called is refused with TypeError."""
        with pytest.raises(TypeError, match="default_factory must be callable"):
            Key("tags", default_factory=factory)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]

    @pytest.mark.parametrize("default", [[], None], ids=["list", "None"])
    def test_default_and_default_factory_raises_type_error(self, default: object) -> None:
        """Giving both ``default`` and ``default_factory`` is refused with TypeError, also
        when the default is None (a real default, not "no default")."""
        with pytest.raises(TypeError, match="both default and default_factory"):
            Key("tags", default=default, default_factory=list)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]

    # -- repr ------------------------------------------------------------------------------

    def test_repr_without_default(self) -> None:
        """A key without a default shows only its name."""
        assert "Key('request_id')" == repr(Key[str]("request_id"))

    @pytest.mark.parametrize(("default", "shown"), [("-", "'-'"), (None, "None"), (0, "0")])
    def test_repr_with_default(self, default: object, shown: str) -> None:
        """A key with a default shows it, falsy defaults and None included."""
        assert f"Key('request_id', default={shown})" == repr(
            Key[object]("request_id", default=default)
        )

    def test_repr_with_default_factory(self) -> None:
        """A key with a default factory shows the factory."""
        assert "Key('tags', default_factory=<class 'list'>)" == repr(
            Key[list[str]]("tags", default_factory=list)
        )

    # -- identity ----------------------------------------------------------------------------

    def test_keys_with_the_same_name_are_different(self) -> None:
        """Keys compare by identity: two keys with one name are unequal, a key equals
        itself, and a key never equals its name."""
        first, second = Key[str]("request_id"), Key[str]("request_id")
        name: object = "request_id"
        assert (False, True, False) == (first == second, first == first, first == name)  # noqa: PLR0124

    def test_hash_is_identity(self) -> None:
        """Keys hash by identity, so same-named keys are distinct set members."""
        first, second = Key[str]("request_id"), Key[str]("request_id")
        members = {first}
        assert (2, True, False) == (
            len({first, second, first}),
            first in members,
            second in members,
        )

    def test_weak_referenceable(self) -> None:
        """A key can be weakly referenced (for caches keyed by keys)."""
        key = Key[str]("request_id")
        assert key is weakref.ref(key)()

    @pytest.mark.asyncio
    async def test_same_named_keys_live_side_by_side_in_a_context(self) -> None:
        """Two keys with one name are two entries of a context: libraries never collide."""
        ctx = attached()
        mine, theirs = Key[str]("request_id"), Key[str]("request_id")
        ctx[mine] = "mine"
        ctx[theirs] = "theirs"
        assert ("mine", "theirs", 2) == (ctx[mine], ctx[theirs], len(ctx))

    @pytest.mark.asyncio
    async def test_plain_string_keys_work_beside_typed_keys(self) -> None:
        """A plain string key and a Key of the same name are separate entries, and string
        keys keep working as before."""
        ctx = attached()
        key = Key[str]("request_id")
        ctx["request_id"] = "plain"
        ctx[key] = "typed"
        ctx["other"] = "plain too"
        assert {"request_id": "plain", key: "typed", "other": "plain too"} == dict(ctx)
        assert ("plain", "typed") == (ctx["request_id"], ctx[key])
        with pytest.raises(KeyError):
            ctx["missing"]

    # -- copying and pickling ----------------------------------------------------------------

    def test_copy_returns_the_key_itself(self) -> None:
        """``copy.copy`` of a key is the key: a copy would be a different key."""
        key = Key[str]("request_id")
        assert key is copy.copy(key)

    def test_deepcopy_returns_the_key_itself(self) -> None:
        """``copy.deepcopy`` of a key, alone or as a mapping key, is the key itself, while the
        values are really deep-copied."""
        key = Key[list[str]]("tags")
        original = {key: ["a"]}
        copied = copy.deepcopy(original)
        assert key is copy.deepcopy(key)
        assert [key] == list(copied)
        assert copied[key] is not original[key]

    @pytest.mark.asyncio
    async def test_deepcopy_context_with_key_keys_across_a_spawn(self) -> None:
        """Under DeepCopy() a child reads the parent's values by the very same Key (not a
        copy that would miss), and gets its own copy of the value."""
        ctx = attached(DeepCopy())
        key = Key[list[str]]("tags")
        ctx[key] = ["parent"]

        async def child() -> tuple[bool, list[str]]:
            ctx[key].append("child")
            return key in ctx, ctx[key]

        assert (True, ["parent", "child"]) == await asyncio.create_task(child())
        assert ["parent"] == ctx[key]

    @pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
    def test_pickling_raises_type_error(self, protocol: int) -> None:
        """Pickling a key raises TypeError saying why (identity) and what to do (send string
        keys), with every protocol."""
        key = Key[str]("request_id", default="-")
        with pytest.raises(TypeError) as info:
            pickle.dumps(key, protocol=protocol)
        assert "Key('request_id', default='-') cannot be pickled: keys compare by identity" in str(
            info.value
        )
        assert "plain (string) keys" in str(info.value)

    @pytest.mark.asyncio
    async def test_snapshot_holding_a_key_cannot_be_pickled(self) -> None:
        """A snapshot whose data holds a Key cannot be sent to a process: pickling it raises
        the key's TypeError rather than making a key that would never match."""
        ctx = attached()
        ctx[Key[str]("request_id")] = "r-1"
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(ctx.snapshot())

    # -- use on a context --------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_set_get_contains_delete(self) -> None:
        """``ctx[KEY] = v`` stores, ``ctx[KEY]`` reads, ``in`` tells, ``del`` removes."""
        ctx = attached()
        key = Key[str]("request_id")
        ctx[key] = "r-1"
        assert ("r-1", True) == (ctx[key], key in ctx)
        del ctx[key]
        assert (False, {}) == (key in ctx, dict(ctx))

    @pytest.mark.asyncio
    async def test_delete_missing_raises_key_error(self) -> None:
        """``del ctx[KEY]`` of a key the task lacks raises KeyError, even if it has a default."""
        ctx = attached()
        with pytest.raises(KeyError):
            del ctx[Key[str]("request_id", default="-")]

    @pytest.mark.asyncio
    async def test_pop(self) -> None:
        """``ctx.pop(KEY)`` removes and returns the value; with an explicit default a missing
        key gives the default."""
        ctx = attached()
        key = Key[str]("request_id")
        ctx[key] = "r-1"
        assert ("r-1", "gone", False) == (ctx.pop(key), ctx.pop(key, "gone"), key in ctx)

    @pytest.mark.asyncio
    async def test_pop_missing_without_default_raises_key_error(self) -> None:
        """``ctx.pop(KEY)`` of a missing key without a default argument raises KeyError."""
        ctx = attached()
        with pytest.raises(KeyError):
            ctx.pop(Key[str]("request_id"))

    @pytest.mark.asyncio
    async def test_missing_without_default_raises_key_error(self) -> None:
        """Reading a key the task lacks, when the key has no default, raises KeyError with
        the key as its argument."""
        ctx = attached()
        key = Key[str]("request_id")
        with pytest.raises(KeyError) as info:
            ctx[key]
        assert (key,) == info.value.args

    @pytest.mark.asyncio
    @pytest.mark.parametrize("default", ["-", None, 0], ids=["str", "None", "zero"])
    async def test_default_is_returned_and_not_stored(self, default: str | int | None) -> None:
        """A key's ``default`` is what a task without a value reads (None and other falsy
        defaults included), and reading it stores nothing."""
        ctx = attached()
        key = Key[str | int | None]("request_id", default=default)
        assert default == ctx[key]
        assert (False, 0) == (key in ctx, len(ctx))

    @pytest.mark.asyncio
    async def test_value_set_wins_over_default(self) -> None:
        """A stored value is read instead of the key's default, and deleting it brings the
        default back."""
        ctx = attached()
        key = Key[str]("request_id", default="-")
        ctx[key] = "r-1"
        assert "r-1" == ctx[key]
        del ctx[key]
        assert "-" == ctx[key]

    @pytest.mark.asyncio
    async def test_default_factory_value_made_once_and_stored(self) -> None:
        """A default factory is called on the first read only; its value is stored in the
        task's data and every later read returns that same object."""
        ctx = attached()
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)
        first = ctx[key]
        first.append("a")
        assert (True, 1) == (key in ctx, factory.calls)
        assert first is ctx[key]
        assert (["a"], 1) == (ctx[key], factory.calls)

    @pytest.mark.asyncio
    async def test_default_factory_called_again_after_delete(self) -> None:
        """After ``del ctx[KEY]`` the next read makes (and stores) a fresh value."""
        ctx = attached()
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)
        ctx[key].append("a")
        del ctx[key]
        assert ([], 2) == (ctx[key], factory.calls)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), DeepCopy(), ChainMap()])
    async def test_default_factory_value_of_child_does_not_leak_into_parent(
        self, policy: PropagationPolicy
    ) -> None:
        """Under the isolating policies, a value a child's read makes is stored in the
        child's data only: the parent still lacks the key and later gets its own value."""
        ctx = attached(policy)
        key = Key[list[str]]("tags", default_factory=list)

        async def child() -> list[str]:
            ctx[key].append("child")
            return ctx[key]

        child_tags = await asyncio.create_task(child())
        assert (["child"], False) == (child_tags, key in ctx)
        assert [] == ctx[key]
        assert ctx[key] is not child_tags

    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), DeepCopy(), ChainMap()])
    async def test_default_factory_values_of_siblings_are_separate(
        self, policy: PropagationPolicy
    ) -> None:
        """Two children of a parent that never read the key each get a value of their own,
        so one sibling's mutations never show up in the other."""
        ctx = attached(policy)
        key = Key[list[str]]("tags", default_factory=list)
        first_appended = asyncio.Event()

        async def first() -> list[str]:
            ctx[key].append("first")
            first_appended.set()
            return ctx[key]

        async def second() -> list[str]:
            await first_appended.wait()
            ctx[key].append("second")
            return ctx[key]

        assert [["first"], ["second"]] == list(await asyncio.gather(first(), second()))

    @pytest.mark.asyncio
    async def test_copy_child_inherits_the_value_its_parent_already_made(self) -> None:
        """Once the parent has read a default-factory key, the value is ordinary data: under
        Copy() a child spawned afterwards gets a shallow copy of the data, i.e. the same
        list (Copy's documented "mutated shared values: yes"), and the factory is not
        called again."""
        ctx = attached(Copy())
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)
        parent_tags = ctx[key]

        async def child() -> list[str]:
            ctx[key].append("child")
            return ctx[key]

        assert parent_tags is await asyncio.create_task(child())
        assert (["child"], 1) == (parent_tags, factory.calls)

    @pytest.mark.asyncio
    async def test_default_factory_value_is_shared_under_share(self) -> None:
        """Under Share() parent and children have one mapping, so the value the first read
        makes (here a child's) is stored there and is the same object for the parent and
        for a sibling spawned later: sharing is the policy's point. The factory runs once."""
        ctx = attached(Share())
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)

        async def child(name: str) -> list[str]:
            ctx[key].append(name)
            return ctx[key]

        first = await asyncio.create_task(child("first"))
        second = await asyncio.create_task(child("second"))
        assert first is second
        assert first is ctx[key]
        assert (["first", "second"], 1) == (ctx[key], factory.calls)

    @pytest.mark.asyncio
    async def test_get_without_key_default_gives_none(self) -> None:
        """``ctx.get(KEY)`` for a missing key with no default returns None."""
        ctx = attached()
        assert ctx.get(Key[str]("request_id")) is None

    @pytest.mark.asyncio
    async def test_get_gives_the_key_default(self) -> None:
        """``ctx.get(KEY)`` for a missing key returns the key's default, storing nothing."""
        ctx = attached()
        key = Key[str]("request_id", default="-")
        assert ("-", False) == (ctx.get(key), key in ctx)

    @pytest.mark.asyncio
    async def test_get_with_default_factory_makes_and_stores(self) -> None:
        """``ctx.get(KEY)`` of a default-factory key makes the value once and stores it, as
        ``ctx[KEY]`` does."""
        ctx = attached()
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)
        value = ctx.get(key)
        assert value is ctx.get(key)
        assert value is ctx[key]
        assert (True, 1) == (key in ctx, factory.calls)

    @pytest.mark.asyncio
    async def test_explicit_get_default_wins_over_key_default(self) -> None:
        """An explicit ``get`` default wins over the key's default and over its default
        factory, which is then not called and stores nothing."""
        ctx = attached()
        factory = CountingFactory()
        with_default = Key[str]("request_id", default="-")
        with_factory = Key[list[str]]("tags", default_factory=factory)
        assert ("explicit", None) == (
            ctx.get(with_default, "explicit"),
            ctx.get(with_factory, None),
        )
        assert (0, {}) == (factory.calls, dict(ctx))

    @pytest.mark.asyncio
    async def test_get_of_stored_value_ignores_defaults(self) -> None:
        """``ctx.get(KEY, default)`` of a stored value returns the value."""
        ctx = attached()
        key = Key[str]("request_id", default="-")
        ctx[key] = "r-1"
        assert ("r-1", "r-1") == (ctx.get(key), ctx.get(key, "explicit"))

    @pytest.mark.asyncio
    async def test_setdefault_stores_the_given_value(self) -> None:
        """``ctx.setdefault(KEY, v)`` follows ``MutableMapping.setdefault``: a key the task
        lacks is set to ``v`` and ``v`` is returned, whatever the key's own default, the same
        value ``ctx.get(KEY, v)`` gives."""
        ctx = attached()
        key = Key[str]("request_id", default="-")
        assert ("given", True, "given") == (
            ctx.setdefault(key, "given"),
            key in ctx,
            ctx[key],
        )

    @pytest.mark.asyncio
    async def test_setdefault_does_not_call_the_default_factory(self) -> None:
        """``ctx.setdefault(KEY, v)`` of a default-factory key the task lacks stores ``v``
        itself; the factory is not called. A stored value is returned unchanged."""
        ctx = attached()
        factory = CountingFactory()
        key = Key[list[str]]("tags", default_factory=factory)
        given = ["given"]
        assert given is ctx.setdefault(key, given)
        assert given is ctx.setdefault(key, ["other"])
        assert (given, 0) == (ctx[key], factory.calls)

    @pytest.mark.parametrize("function", [ANY_KEY.__init__, Context.get], ids=["Key", "get"])
    def test_signatures_name_the_no_default_sentinel(self, function: Callable[..., object]) -> None:
        """``help()`` and ``inspect.signature`` show "no default" as ``MISSING``, not as an
        enum member's repr."""
        assert "MISSING" == repr(inspect.signature(function).parameters["default"].default)

    def test_defaults_do_not_hide_missing_data(self) -> None:
        """With no data (no event loop), reading a key with a default raises EventLoopError,
        as a plain key does: a default never hides a misconfiguration."""
        ctx: Context[str, Any] = Context(registry=ContextRegistry())
        key = Key[str]("request_id", default="-")
        with pytest.raises(EventLoopError):
            ctx[key]
        with pytest.raises(EventLoopError):
            ctx.get(key)


class TestMutableDefault:
    @pytest.mark.parametrize("default", [list[int](), dict[str, int](), set[int](), bytearray()])
    def test_a_mutable_default_is_refused(self, default: object) -> None:
        """A mutable default would be shared by every task: refused at once, as dataclasses
        do, pointing at ``default_factory`` (defect 12)."""
        with pytest.raises(TypeError, match="default_factory"):
            Key[object]("tags", default=default)

    @pytest.mark.parametrize("default", [None, 0, "-", (), frozenset[int]()])
    def test_an_immutable_default_is_accepted(self, default: object) -> None:
        """Hashable defaults are fine."""
        assert default == Key[object]("k", default=default).default_for({})
