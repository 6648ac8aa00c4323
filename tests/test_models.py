"""Tests for the choice of a data model (``_models``) and for what every model shares:
writes that isolate as the policy says wherever they are made, subclasses of built-in
policies, bulk writes, and policies that return something that is not a mapping."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import MutableMapping
from typing import Any

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
)
from aiocontext._chain_model import ChainModel
from aiocontext._copy_model import CopyModel, DeepCopyModel
from aiocontext._models import model_class
from aiocontext._owned_model import OwnedModel
from aiocontext._share_model import ShareModel


@attrs.frozen
class MyCopy(Copy):
    """A subclass that changes nothing."""


@attrs.frozen
class MyDeepCopy(DeepCopy):
    """A subclass that changes nothing."""


@attrs.frozen
class MyShare(Share):
    """A subclass that changes nothing."""


@attrs.frozen
class MyChainMap(ChainMap):
    """A subclass that changes nothing."""


@attrs.frozen
class Tagging(Copy):
    """A subclass that changes what a child gets: a custom policy."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return {**parent, "tagged": True}


@attrs.frozen
class Returning(PropagationPolicy):
    """A custom policy returning whatever it is given (for misuse tests)."""

    value: Any = None
    where: str = "inherit"

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        return self.value if self.where == "inherit" else {}

    def root(self) -> MutableMapping[Any, Any]:
        return self.value if self.where == "root" else {}


@attrs.frozen
class Failing(PropagationPolicy):
    """A custom policy whose inherit raises."""

    def inherit(self, parent: MutableMapping[Any, Any], /) -> MutableMapping[Any, Any]:
        raise LookupError("inherit failed")


class TestModelClass:
    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            (Copy(), CopyModel),
            (MyCopy(), CopyModel),
            (DeepCopy(), DeepCopyModel),
            (MyDeepCopy(), DeepCopyModel),
            (Share(), ShareModel),
            (MyShare(), ShareModel),
            (ChainMap(), ChainModel),
            (MyChainMap(), ChainModel),
            (Tagging(), OwnedModel),
            (Failing(), OwnedModel),
        ],
    )
    def test_a_subclass_gets_its_base_model_unless_it_changes_it(
        self, policy: PropagationPolicy, expected: type[Any]
    ) -> None:
        """A subclass of a built-in policy is held like its base; one that overrides
        ``inherit`` or ``root`` is a custom policy, whose methods then run."""
        assert expected is model_class(policy)


WAYS = ["to_thread", "call_soon"]


async def _write_elsewhere(ctx: Context[str, str], way: str) -> None:
    loop = asyncio.get_running_loop()
    if way == "to_thread":
        await asyncio.to_thread(ctx.__setitem__, "k", "worker")
    else:
        done = loop.create_future()

        def callback() -> None:
            ctx["k"] = "callback"
            done.set_result(None)

        loop.call_soon(callback)
        await done


class TestSubclassIsolation:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), MyCopy(), DeepCopy(), MyDeepCopy()])
    @pytest.mark.parametrize("way", WAYS)
    async def test_writes_outside_the_task_stay_their_own(
        self, policy: PropagationPolicy, way: str
    ) -> None:
        """A subclass of ``Copy()`` isolates exactly as ``Copy()``: writes from a worker
        thread or a callback never land in the task's data (defect 1)."""
        ctx: Context[str, str] = Context(policy, registry=ContextRegistry()).attach()
        ctx["k"] = "task"
        await _write_elsewhere(ctx, way)
        assert {"k": "task"} == dict(ctx)


class TestBulkWrites:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", [Copy(), DeepCopy(), Share(), ChainMap(), Tagging()])
    async def test_update_is_one_write(
        self, policy: PropagationPolicy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``update()`` of many keys stores the data once (under ``Copy()``, one copy and
        one ``var.set``), so it is linear in the number of keys (defect 9)."""
        ctx: Context[str, int] = Context(policy, registry=ContextRegistry()).attach()
        ctx["first"] = 0
        edits: list[int] = []
        model = type(ctx._model)  # pyright: ignore[reportPrivateUsage]
        edit = model.edit

        def counting(self: Any, change: Any) -> Any:
            edits.append(1)
            return edit(self, change)

        monkeypatch.setattr(model, "edit", counting)
        ctx.update({f"k{i}": i for i in range(1000)}, extra=-1)
        updated = len(edits)
        with ctx.bound(a=1, b=2, c=3):
            pass
        ctx.data().update(x=1, y=2)  # a dict-replacing view's update is one write too
        binds = 0 if policy == Share() else 2  # Share() binds on its own (see test_share_model)
        view = 1 if policy in (Copy(), DeepCopy()) else 0  # else the mapping itself
        assert (1, 1 + binds + view, 1004) == (updated, len(edits), len(ctx))

    @pytest.mark.asyncio
    async def test_update_takes_pairs_and_keywords(self) -> None:
        """``update()`` keeps the mapping API: a mapping, pairs and keywords."""
        ctx: Context[str, int] = Context(registry=ContextRegistry()).attach()
        ctx.update([("a", 1)], b=2)
        ctx.update({"c": 3})
        ctx.update(d=4)
        assert {"a": 1, "b": 2, "c": 3, "d": 4} == dict(ctx)


class TestPolicyMisuse:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("value", [None, [("k", "v")], {"k": "v"}.items()])
    @pytest.mark.parametrize("where", ["inherit", "root"])
    async def test_a_policy_returning_no_mapping_fails_at_once(
        self, value: object, where: str
    ) -> None:
        """``inherit()`` or ``root()`` returning ``None`` or pairs fails when the task is
        created (or the root made), with a ``TypeError`` naming the policy, not later in
        the child (defect 12)."""
        ctx: Context[str, str] = Context(Returning(value, where), registry=ContextRegistry())
        ctx_loop = asyncio.get_running_loop()
        if where == "root":
            with pytest.raises(TypeError, match=r"Returning.*root\(\) must return a mutable"):
                ctx.attach(ctx_loop)
            return
        ctx.attach()
        ctx["k"] = "v"

        async def child() -> None:
            pass

        with pytest.raises(TypeError, match=r"Returning.*inherit\(\) must return a mutable"):
            asyncio.create_task(child())

    @pytest.mark.asyncio
    async def test_a_failing_inherit_closes_the_coroutine(self) -> None:
        """When ``inherit()`` raises, the coroutine that never became a task is closed: no
        "never awaited" warning (defect 12)."""
        ctx: Context[str, str] = Context(Failing(), registry=ContextRegistry()).attach()
        ctx["k"] = "v"

        async def child() -> None:
            pass

        coro: Any = child()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(LookupError, match="inherit failed"):
                asyncio.create_task(coro)
        assert coro.cr_frame is None  # closed


class TestReprs:
    def test_a_model_names_its_context(self) -> None:
        """A data model's repr names its class and its context (for debugging)."""
        ctx: Context[str, int] = Context(Share(), name="r", registry=ContextRegistry())
        assert f"<ShareModel of {ctx!r}>" == repr(ctx._model)  # pyright: ignore[reportPrivateUsage]
