"""The cases: what each variant does in one measurement, and which ratios are reported.

Fairness rules every case follows:

* Each variant runs on its own event loop, created once per case by the same ``new_loop``
  (stdlib or uvloop) and closed when the case ends; the subject differs from its baseline only
  in what is on the loop (a context attached, a task factory set) and in how the task reads
  or writes its data.
* One measurement is one run of a fresh main task (``loop.run_until_complete``) that sets its
  data up, then times only the work being compared with ``time.perf_counter_ns``.
* Children and read loops are module-level functions that take what they use as arguments,
  so baseline and subject pay the same name lookups; reads are unrolled ten to a loop
  iteration so the ``for`` overhead is a small share of the figure, and the same for all.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib.util
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from aiocontext import ChainMap, Context, ContextRegistry, Copy, DeepCopy, PropagationPolicy, Share

from ._common import KEYS, READ_KEY, VALUE, WRITE_KEY, big_keys
from ._harness import Case, Ratio, Sample, Target, Variant

if TYPE_CHECKING:
    from ._atc import FactoryName

__all__ = [
    "CASES",
    "FULL",
    "HAVE_ATC",
    "HAVE_UVLOOP",
    "MEMORY_VARIANTS",
    "QUICK",
    "Env",
    "Sizes",
    "memory_variant",
]

_A = TypeVar("_A")

Var = contextvars.ContextVar[dict[str, Any]]
LoopKind = Literal["asyncio", "uvloop"]

HAVE_ATC = importlib.util.find_spec("aiotask_context") is not None
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

ATC_NOTE = "atc = aiotask-context 0.6.1, the factory named; its reads are context.get(k)"


@attrs.frozen
class Sizes:
    """How big and how long: the full run, or ``--quick``."""

    spawn_tasks: int
    reads: int
    depth_reads: int
    memory_tasks: int
    rounds: int
    memory_rounds: int
    warmup: int


FULL = Sizes(
    spawn_tasks=10_000,
    reads=100_000,
    depth_reads=10_000,
    memory_tasks=100_000,
    rounds=25,
    memory_rounds=3,
    warmup=1,
)
QUICK = Sizes(
    spawn_tasks=200,
    reads=2_000,
    depth_reads=200,
    memory_tasks=1_000,
    rounds=3,
    memory_rounds=1,
    warmup=1,
)


@attrs.frozen
class Env:
    """The loop kind and sizes a run uses; makes the variants' loops."""

    loop_kind: LoopKind
    sizes: Sizes

    def new_loop(self) -> asyncio.AbstractEventLoop:
        """A new loop of this run's kind, with nothing on it."""
        if self.loop_kind == "uvloop":
            import uvloop

            return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def ctx_loop(
        self, *policies: PropagationPolicy
    ) -> tuple[asyncio.AbstractEventLoop, tuple[Context[str, Any], ...]]:
        """A new loop with one new context per policy attached (one fresh registry)."""
        loop = self.new_loop()
        registry = ContextRegistry()
        contexts = tuple(
            Context(policy, name=f"bench{i}", registry=registry).attach(loop)
            for i, policy in enumerate(policies)
        )
        return loop, contexts

    def atc_loop(self, factory_name: FactoryName) -> asyncio.AbstractEventLoop:
        """A new loop with aiotask-context's factory ``factory_name`` set."""
        from . import _atc

        loop = self.new_loop()
        loop.set_task_factory(_atc.factory(self.loop_kind, factory_name))
        return loop


# -- floors: what any pure-Python design pays ----------------------------------------------------


def _forwarding_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any
) -> asyncio.Future[Any]:
    """The cheapest task factory Python allows: it only forwards to ``asyncio.Task``."""
    return asyncio.Task(coro, loop=loop, **kwargs)


class _ForwardingFactory:
    """The same as a callable object: what a factory that is an instance (like ours) pays."""

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any
    ) -> asyncio.Future[Any]:
        return asyncio.Task(coro, loop=loop, **kwargs)


def _fresh_values_factory(
    variables: tuple[Var, ...],
) -> Callable[..., asyncio.Future[Any]]:
    """A factory giving every child a new value in each of ``variables``: the least work
    that gives each of N contexts its own per-task value through contextvars."""

    def set_fresh() -> None:
        for variable in variables:
            value = variable.get(None)
            if value is not None:
                variable.set(value.copy())

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any
    ) -> asyncio.Future[Any]:
        context = contextvars.copy_context()
        context.run(set_fresh)
        return asyncio.Task(coro, loop=loop, context=context)

    return factory


class _OneLineMapping:
    """The cheapest Python-level ``__getitem__`` over a context variable."""

    __slots__ = ("_var",)

    def __init__(self, var: Var) -> None:
        self._var = var

    def __getitem__(self, key: str) -> Any:
        return self._var.get()[key]


def _read_one_line_getitem(mapping: _OneLineMapping, n: int) -> int:
    k = READ_KEY
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
        mapping[k]
    return perf_counter_ns() - start


# -- what the tasks do ------------------------------------------------------------------------


def _set_bare(var: Var, data: dict[str, Any]) -> Callable[[], object]:
    return lambda: var.set(dict(data))


def _set_contexts(
    contexts: tuple[Context[str, Any], ...], data: dict[str, Any]
) -> Callable[[], object]:
    def setup() -> None:
        for ctx in contexts:
            ctx.update(data)

    return setup


def _set_atc(data: dict[str, Any]) -> Callable[[], object]:
    from . import _atc

    return functools.partial(_atc.setup, data)


async def _bare_child(var: Var) -> Any:
    return var.get()[READ_KEY]


async def _ctx_child(ctx: Context[str, Any]) -> Any:
    return ctx[READ_KEY]


async def _bare_writer(var: Var) -> Any:
    var.set({**var.get(), WRITE_KEY: 1})
    return var.get()[READ_KEY]


async def _ctx_writer(ctx: Context[str, Any]) -> Any:
    ctx[WRITE_KEY] = 1
    return ctx[READ_KEY]


async def _bare_memory_child(
    var: Var, i: int, release: asyncio.Future[None], started: list[int]
) -> None:
    var.set({**var.get(), WRITE_KEY: i})
    started[0] += 1
    await release


async def _ctx_memory_child(
    ctx: Context[str, Any], i: int, release: asyncio.Future[None], started: list[int]
) -> None:
    ctx[WRITE_KEY] = i
    started[0] += 1
    await release


def _read_bare_getitem(var: Var, n: int) -> int:
    k = READ_KEY
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
        var.get()[k]
    return perf_counter_ns() - start


def _read_ctx_getitem(ctx: Context[str, Any], n: int) -> int:
    k = READ_KEY
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
        ctx[k]
    return perf_counter_ns() - start


def _read_bare_get(var: Var, n: int) -> int:
    k = READ_KEY
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
        var.get().get(k)
    return perf_counter_ns() - start


def _read_ctx_get(ctx: Context[str, Any], n: int) -> int:
    k = READ_KEY
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
        ctx.get(k)
    return perf_counter_ns() - start


def _write_bare(var: Var, n: int) -> int:
    k, v = READ_KEY, VALUE
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
        var.get()[k] = v
    return perf_counter_ns() - start


def _write_ctx(ctx: Context[str, Any], n: int) -> int:
    k, v = READ_KEY, VALUE
    iterations = range(n // 10)
    start = perf_counter_ns()
    for _ in iterations:
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
        ctx[k] = v
    return perf_counter_ns() - start


# -- what one measurement is ------------------------------------------------------------------


def _check(value: object) -> None:
    if value != VALUE:
        raise AssertionError(f"a child read {value!r}, not {VALUE!r}: the variant is broken")


def _spawn(
    n: int,
    setup: Callable[[], object],
    child: Callable[[_A], Coroutine[Any, Any, Any]],
    arg: _A,
) -> Sample:
    """Set the main task's data up, then time spawning ``n`` children and awaiting them."""

    async def sample() -> int:
        setup()
        create_task = asyncio.create_task
        start = perf_counter_ns()
        tasks = [create_task(child(arg)) for _ in range(n)]
        for task in tasks:
            await task
        elapsed = perf_counter_ns() - start
        _check(tasks[0].result())
        _check(tasks[-1].result())
        return elapsed

    return sample


def _timed(setup: Callable[[], object], measure: Callable[[], int], depth: int = 0) -> Sample:
    """Set the main task's data up, go ``depth`` task generations down, and ``measure`` there."""

    async def descend(depth: int) -> int:
        if depth == 0:
            return measure()
        return await asyncio.create_task(descend(depth - 1))

    async def sample() -> int:
        setup()
        return await descend(depth)

    return sample


def _memory(
    n: int,
    setup: Callable[[], object],
    child: Callable[[_A, int, asyncio.Future[None], list[int]], Coroutine[Any, Any, None]],
    arg: _A,
) -> Sample:
    """Bytes that ``n`` pending children holding their own data add (tracemalloc peak)."""

    async def sample() -> int:
        setup()
        release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        started = [0]
        create_task = asyncio.create_task
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tasks = [create_task(child(arg, i, release, started)) for i in range(n)]
            # polling, not an Event: an Event would add to what is measured
            while started[0] < n:  # noqa: ASYNC110
                await asyncio.sleep(0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        release.set_result(None)
        for task in tasks:
            await task
        return peak - base

    return sample


# -- the cases ----------------------------------------------------------------------------------


def spawn_case(env: Env) -> Case:
    """Spawn + await N tasks reading one key: each policy vs bare ContextVar and atc."""
    n = env.sizes.spawn_tasks
    bare_loop, var = env.new_loop(), Var("bench")
    variants = [
        Variant("bare ContextVar", bare_loop, _spawn(n, _set_bare(var, KEYS), _bare_child, var))
    ]
    for policy in (Share(), Copy(), DeepCopy(), ChainMap()):
        loop, (ctx,) = env.ctx_loop(policy)
        variants.append(
            Variant(f"{policy!r}", loop, _spawn(n, _set_contexts((ctx,), KEYS), _ctx_child, ctx))
        )
    for name, factory in (
        ("floor: forwarding function factory", _forwarding_factory),
        ("floor: forwarding object factory", _ForwardingFactory()),
    ):
        loop = env.new_loop()
        loop.set_task_factory(factory)
        variants.append(Variant(name, loop, _spawn(n, _set_bare(var, KEYS), _bare_child, var)))
    ratios = [
        Ratio("Share()", "bare ContextVar", Target(1.05)),
        Ratio("Copy()", "bare ContextVar", Target(1.05)),
        Ratio("DeepCopy()", "bare ContextVar"),
        Ratio("ChainMap()", "bare ContextVar", Target(1.20)),
        Ratio("floor: forwarding function factory", "bare ContextVar"),
        Ratio("floor: forwarding object factory", "bare ContextVar"),
        Ratio("Share()", "floor: forwarding object factory"),
        Ratio("Copy()", "floor: forwarding object factory"),
    ]
    notes = [
        "the parent holds 3 keys; each child reads one (ctx[k], or var.get()[k])",
        (
            "floors: bare ContextVar on a loop whose task factory only forwards to asyncio.Task; "
            "any design built on a task factory pays at least that"
        ),
    ]
    if HAVE_ATC:
        from . import _atc

        pairs: tuple[tuple[FactoryName, str], ...] = (
            ("task_factory", "Share()"),
            ("copying_task_factory", "DeepCopy()"),
            ("chainmap_task_factory", "ChainMap()"),
        )
        for name, like in pairs:
            loop = env.atc_loop(name)
            variants.append(
                Variant(f"atc {name}", loop, _spawn(n, _set_atc(KEYS), _atc.child, None))
            )
            ratios.append(Ratio(like, f"atc {name}", Target(1.0, strict=True)))
        notes.append(ATC_NOTE + " (task_factory shares, copying_task_factory deep-copies)")
    return Case(
        key="spawn",
        title=f"spawn + await {n:,} tasks that each read one key, one context",
        unit="ns",
        ops=n,
        per="task",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=tuple(ratios),
        notes=tuple(notes),
    )


def reads_case(env: Env) -> Case:
    """``ctx[k]``, ``ctx.get(k)``, ``ctx[k] = v`` vs the same on a bare ContextVar, and atc."""
    n = env.sizes.reads
    variants: list[Variant] = []
    for name, ctx_name, bare_fn, ctx_fn in (
        ("bare var.get()[k]", "ctx[k]", _read_bare_getitem, _read_ctx_getitem),
        ("bare var.get().get(k)", "ctx.get(k)", _read_bare_get, _read_ctx_get),
        ("bare var.get()[k] = v", "ctx[k] = v", _write_bare, _write_ctx),
    ):
        bare_loop, var = env.new_loop(), Var("bench")
        variants.append(
            Variant(
                name, bare_loop, _timed(_set_bare(var, KEYS), functools.partial(bare_fn, var, n))
            )
        )
        loop, (ctx,) = env.ctx_loop(Copy())
        variants.append(
            Variant(
                ctx_name,
                loop,
                _timed(_set_contexts((ctx,), KEYS), functools.partial(ctx_fn, ctx, n)),
            )
        )
    floor_loop, floor_var = env.new_loop(), Var("bench")
    variants.append(
        Variant(
            "floor: one-line Python __getitem__",
            floor_loop,
            _timed(
                _set_bare(floor_var, KEYS),
                functools.partial(_read_one_line_getitem, _OneLineMapping(floor_var), n),
            ),
        )
    )
    ratios = [
        Ratio("ctx[k]", "bare var.get()[k]", Target(1.4)),
        Ratio("ctx.get(k)", "bare var.get().get(k)"),
        Ratio("ctx[k] = v", "bare var.get()[k] = v"),
        Ratio("floor: one-line Python __getitem__", "bare var.get()[k]"),
        Ratio("ctx[k]", "floor: one-line Python __getitem__"),
    ]
    notes = [f"{n:,} operations per sample in one task, ten per loop iteration; ctx is Copy()"]
    if HAVE_ATC:
        from . import _atc

        loop = env.atc_loop("task_factory")
        variants.append(
            Variant(
                "atc get(k)",
                loop,
                _timed(_set_atc(KEYS), functools.partial(_atc.read_get, READ_KEY, n)),
            )
        )
        loop = env.atc_loop("task_factory")
        variants.append(
            Variant(
                "atc set(k, v)",
                loop,
                _timed(_set_atc(KEYS), functools.partial(_atc.read_set, READ_KEY, VALUE, n)),
            )
        )
        ratios += [
            Ratio("ctx[k]", "atc get(k)", Target(1.0, strict=True)),
            Ratio("ctx.get(k)", "atc get(k)", Target(1.0, strict=True)),
            Ratio("ctx[k] = v", "atc set(k, v)"),
        ]
        notes.append("atc = aiotask-context 0.6.1: context.get(k) / context.set(k, v)")
    return Case(
        key="reads",
        title="reads and writes inside one task",
        unit="ns",
        ops=n,
        per="op",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=tuple(ratios),
        notes=tuple(notes),
    )


def spawn_write_case(env: Env) -> Case:
    """Spawn + await N tasks that each write one key: the copy happens, whenever it is made."""
    n = env.sizes.spawn_tasks
    bare_loop, var = env.new_loop(), Var("bench")
    variants = [
        Variant("bare ContextVar", bare_loop, _spawn(n, _set_bare(var, KEYS), _bare_writer, var))
    ]
    for policy in (Copy(), DeepCopy(), ChainMap()):
        loop, (ctx,) = env.ctx_loop(policy)
        variants.append(
            Variant(f"{policy!r}", loop, _spawn(n, _set_contexts((ctx,), KEYS), _ctx_writer, ctx))
        )
    ratios = [
        Ratio("Copy()", "bare ContextVar"),
        Ratio("DeepCopy()", "bare ContextVar"),
        Ratio("ChainMap()", "bare ContextVar"),
    ]
    notes = [
        (
            "each child writes ctx['n'] = 1 then reads one key; bare: "
            "var.set({**var.get(), 'n': 1}), the floor of a task owning its data"
        ),
    ]
    if HAVE_ATC:
        from . import _atc

        loop = env.atc_loop("copying_task_factory")
        variants.append(
            Variant("atc copying_task_factory", loop, _spawn(n, _set_atc(KEYS), _atc.writer, None))
        )
        ratios.append(Ratio("DeepCopy()", "atc copying_task_factory", Target(1.0, strict=True)))
        notes.append("atc = aiotask-context 0.6.1: context.set('n', 1), then context.get(k)")
    return Case(
        key="spawn-write",
        title=f"spawn + await {n:,} tasks that each write one key and read one",
        unit="ns",
        ops=n,
        per="task",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=tuple(ratios),
        notes=tuple(notes),
    )


def size_case(env: Env) -> Case:
    """Spawn cost against the size of the parent's data, ``Copy()``; children read, or write."""
    n = env.sizes.spawn_tasks
    bare_loop, var = env.new_loop(), Var("bench")
    variants = [
        Variant(
            "bare ContextVar, 3 keys", bare_loop, _spawn(n, _set_bare(var, KEYS), _bare_child, var)
        )
    ]
    for size, data in ((3, KEYS), (1000, big_keys(1000))):
        for suffix, child in (("", _ctx_child), (", writes", _ctx_writer)):
            loop, (ctx,) = env.ctx_loop(Copy())
            variants.append(
                Variant(
                    f"Copy(), {size} keys{suffix}",
                    loop,
                    _spawn(n, _set_contexts((ctx,), data), child, ctx),
                )
            )
    return Case(
        key="size",
        title=f"spawn + await {n:,} tasks against context size (Copy)",
        unit="ns",
        ops=n,
        per="task",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=(
            Ratio("Copy(), 1000 keys", "Copy(), 3 keys", Target(1.10)),
            Ratio("Copy(), 3 keys", "bare ContextVar, 3 keys"),
            Ratio("Copy(), 1000 keys", "bare ContextVar, 3 keys"),
            Ratio("Copy(), 1000 keys, writes", "Copy(), 3 keys, writes"),
        ),
        notes=(
            (
                "children read one key; in the ', writes' variants each child also writes "
                "ctx['n'] = 1 first, so a copy-on-write implementation pays for its copy"
            ),
        ),
    )


def contexts_case(env: Env) -> Case:
    """Spawn cost against the number of contexts attached to the loop (Copy, 3 keys each)."""
    n = env.sizes.spawn_tasks
    bare_loop, var = env.new_loop(), Var("bench")
    variants = [
        Variant("bare ContextVar", bare_loop, _spawn(n, _set_bare(var, KEYS), _bare_child, var))
    ]
    for count in (1, 4, 16):
        loop, contexts = env.ctx_loop(*[Copy()] * count)
        variants.append(
            Variant(
                f"{count} × Copy()",
                loop,
                _spawn(n, _set_contexts(contexts, KEYS), _ctx_child, contexts[0]),
            )
        )
    floor_vars = tuple(Var(f"floor{i}") for i in range(16))
    floor_loop = env.new_loop()
    floor_loop.set_task_factory(_fresh_values_factory(floor_vars))

    def set_floor_vars() -> None:
        for variable in floor_vars:
            variable.set(dict(KEYS))

    variants.append(
        Variant(
            "floor: 16 ContextVars, a new value each per child",
            floor_loop,
            _spawn(n, set_floor_vars, _bare_child, floor_vars[0]),
        )
    )
    return Case(
        key="contexts",
        title=f"spawn + await {n:,} tasks against the number of attached contexts",
        unit="ns",
        ops=n,
        per="task",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=(
            Ratio("1 × Copy()", "bare ContextVar"),
            Ratio("4 × Copy()", "bare ContextVar"),
            Ratio("16 × Copy()", "bare ContextVar", Target(1.10)),
            Ratio("16 × Copy()", "1 × Copy()"),
            Ratio("floor: 16 ContextVars, a new value each per child", "bare ContextVar"),
            Ratio("16 × Copy()", "floor: 16 ContextVars, a new value each per child"),
        ),
        notes=("the parent holds 3 keys in every context; each child reads one key of one",),
    )


def depth_case(env: Env) -> Case:
    """ChainMap ``ctx[k]`` in a task 1, 10, 100 generations below the one that wrote ``k``."""
    n = env.sizes.depth_reads
    bare_loop, var = env.new_loop(), Var("bench")
    variants = [
        Variant(
            "bare var.get()[k], depth 1",
            bare_loop,
            _timed(_set_bare(var, KEYS), functools.partial(_read_bare_getitem, var, n), depth=1),
        )
    ]
    for depth in (1, 10, 100):
        loop, (ctx,) = env.ctx_loop(ChainMap())
        variants.append(
            Variant(
                f"ChainMap() ctx[k], depth {depth}",
                loop,
                _timed(
                    _set_contexts((ctx,), KEYS), functools.partial(_read_ctx_getitem, ctx, n), depth
                ),
            )
        )
    return Case(
        key="depth",
        title="ChainMap reads against nesting depth",
        unit="ns",
        ops=n,
        per="read",
        rounds=env.sizes.rounds,
        warmup=env.sizes.warmup,
        variants=tuple(variants),
        ratios=(
            Ratio("ChainMap() ctx[k], depth 1", "bare var.get()[k], depth 1"),
            Ratio("ChainMap() ctx[k], depth 10", "bare var.get()[k], depth 1"),
            Ratio("ChainMap() ctx[k], depth 100", "bare var.get()[k], depth 1"),
            Ratio("ChainMap() ctx[k], depth 100", "ChainMap() ctx[k], depth 1"),
        ),
        notes=(
            (
                f"{n:,} reads per sample; the main task writes k, each generation spawns the next "
                "and writes nothing, so a read walks every layer down to the root's"
            ),
        ),
    )


MEMORY_VARIANTS = (
    "bare ContextVar",
    "Copy()",
    "ChainMap()",
    *(("atc copying_task_factory",) if HAVE_ATC else ()),
)


def memory_variant(env: Env, name: str) -> Variant:
    """The in-process memory variant ``name`` (run by ``benchmarks._memory`` in a subprocess)."""
    n = env.sizes.memory_tasks
    if name == "bare ContextVar":
        var = Var("bench")
        return Variant(
            name, env.new_loop(), _memory(n, _set_bare(var, KEYS), _bare_memory_child, var)
        )
    if name in ("Copy()", "ChainMap()"):
        loop, (ctx,) = env.ctx_loop(Copy() if name == "Copy()" else ChainMap())
        return Variant(name, loop, _memory(n, _set_contexts((ctx,), KEYS), _ctx_memory_child, ctx))
    if name == "atc copying_task_factory":
        from . import _atc

        loop = env.atc_loop("copying_task_factory")
        return Variant(name, loop, _memory(n, _set_atc(KEYS), _atc.memory_child, None))
    raise ValueError(f"no memory variant {name!r}: choose one of {MEMORY_VARIANTS}")


def _in_subprocess(env: Env, name: str) -> Sample:
    """Measure memory variant ``name`` in a fresh interpreter (see ``benchmarks._memory``)."""
    root = Path(__file__).resolve().parent.parent
    command = [
        sys.executable,
        "-m",
        "benchmarks._memory",
        env.loop_kind,
        str(env.sizes.memory_tasks),
        name,
    ]
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }

    async def sample() -> int:
        done = subprocess.run(  # noqa: ASYNC221 - one sample at a time: blocking is the point
            command, cwd=root, env=environ, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
        return int(done.stdout.split()[-1])

    return sample


def memory_case(env: Env) -> Case:
    """tracemalloc peak of N pending tasks that each own data, vs bare ContextVar dicts.

    Each measurement runs in a fresh interpreter: asyncio keeps every task in one global
    ``WeakSet`` whose hash table grows (and is rebuilt) at points that depend on what ran
    before, which in one process would add megabytes to whichever variant hits a resize.
    """
    n = env.sizes.memory_tasks
    loop = env.new_loop()  # only drives the subprocesses; each variant makes its own loop there
    variants = tuple(Variant(name, loop, _in_subprocess(env, name)) for name in MEMORY_VARIANTS)
    ratios = [
        Ratio("Copy()", "bare ContextVar", Target(1.10)),
        Ratio("ChainMap()", "bare ContextVar"),
    ]
    notes = [
        (
            "the parent holds 3 keys; each child writes ctx['n'] = i "
            "(bare: var.set({**var.get(), 'n': i})) and waits on a shared future"
        ),
        (
            "figure = tracemalloc peak during spawn, minus before; one fresh interpreter per "
            "measurement, warmed up with a small run of the same variant"
        ),
    ]
    if HAVE_ATC:
        ratios.append(Ratio("atc copying_task_factory", "bare ContextVar"))
        notes.append(
            "atc = aiotask-context 0.6.1; its copying factory gives each task its own data"
        )
    return Case(
        key="memory",
        title=f"memory of {n:,} pending tasks that each own their data",
        unit="bytes",
        ops=n,
        per="task",
        rounds=env.sizes.memory_rounds,
        warmup=0,
        variants=variants,
        ratios=tuple(ratios),
        notes=tuple(notes),
    )


CASES: dict[str, Callable[[Env], Case]] = {
    "spawn": spawn_case,
    "spawn-write": spawn_write_case,
    "reads": reads_case,
    "size": size_case,
    "contexts": contexts_case,
    "depth": depth_case,
    "memory": memory_case,
}
