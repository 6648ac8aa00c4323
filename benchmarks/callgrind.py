"""Instructions per operation, counted by ``valgrind --tool=callgrind``: figures that do not
depend on what else the machine is doing.

Each figure is ``(instructions of a run of N operations - those of a run of 0) / N``, both
runs in a fresh interpreter doing the same set-up, so start-up and set-up cancel out.

Run from the repository root (valgrind must be installed)::

    python -m benchmarks.callgrind                 # every operation, N = 2,000
    python -m benchmarks.callgrind --n 5000 --only spawn
    python -m benchmarks.callgrind --worker OP N   # one run, as valgrind runs it

Set ``PYTHONPATH`` to measure another copy of the package (an older commit, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import os
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final

#: The operations: what one of them does.
OPERATIONS: Final[dict[str, str]] = {
    "spawn bare": "create_task + await of a child reading one key of a ContextVar dict",
    "spawn floor": "the same on a loop whose task factory only forwards to asyncio.Task",
    "spawn floor object": "the same, the forwarding factory an object (as TaskFactoryWrapper is)",
    "spawn Copy": "the same with one Copy() context attached (child reads ctx[k])",
    "spawn Share": "the same, Share()",
    "spawn ChainMap": "the same, ChainMap()",
    "spawn DeepCopy": "the same, DeepCopy()",
    "spawn 16 Copy": "the same with 16 Copy() contexts attached",
    "read bare": "var.get()[k]",
    "read ctx": "ctx[k], Copy()",
    "write bare": "var.get()[k] = v (in place), 8 keys",
    "write bare set": "d = var.get().copy(); d[k] = v; var.set(d), 8 keys: this design's floor",
    "write bare var.set": "var.set(d), a new 8-key dict each time (made beforehand): var.set alone",
    "write ctx 8": "ctx[k] = v, Copy(), 8 keys",
    "write ctx 100": "ctx[k] = v, Copy(), 100 keys",
    "write ctx 1000": "ctx[k] = v, Copy(), 1,000 keys",
    "write ChainMap 8": "ctx[k] = v, ChainMap(), 8 keys (the task owns its layer)",
}

#: The ratios reported: (numerator, denominator).
RATIOS: Final = [
    ("spawn floor", "spawn bare"),
    ("spawn floor object", "spawn bare"),
    ("spawn Copy", "spawn bare"),
    ("spawn Copy", "spawn floor object"),
    ("spawn Share", "spawn bare"),
    ("spawn ChainMap", "spawn bare"),
    ("spawn DeepCopy", "spawn bare"),
    ("spawn 16 Copy", "spawn bare"),
    ("read ctx", "read bare"),
    ("write bare var.set", "write bare"),
    ("write bare set", "write bare"),
    ("write ctx 8", "write bare"),
    ("write ctx 8", "write bare set"),
    ("write ctx 100", "write bare"),
    ("write ctx 1000", "write bare"),
    ("write ChainMap 8", "write bare"),
]

BATCH: Final = 100


async def _bare_child(var: contextvars.ContextVar[dict[str, Any]]) -> Any:
    return var.get()["a"]


async def _ctx_child(ctx: Any) -> Any:
    return ctx["a"]


async def _spawn(n: int, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    for start in range(0, n, BATCH):
        tasks = [asyncio.create_task(make()) for _ in range(min(BATCH, n - start))]
        for task in tasks:
            await task


def _forwarding(loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any) -> Any:
    return asyncio.Task(coro, loop=loop, **kwargs)


class _Forwarding:
    """A task factory object that only forwards (calling an object costs more)."""

    __slots__ = ()

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)


def _keys(count: int) -> dict[str, int]:
    return {f"k{i}": i for i in range(count)} | {"a": -1}


def run(operation: str, n: int) -> None:
    """Set up ``operation``'s scenario, then do it ``n`` times (what valgrind counts)."""
    gc.disable()  # a full collection falling in one run and not the other is not the op's
    import aiocontext
    from aiocontext import ChainMap, Context, Copy, DeepCopy, Share

    policies = {"Copy": Copy(), "Share": Share(), "ChainMap": ChainMap(), "DeepCopy": DeepCopy()}
    loop = asyncio.new_event_loop()
    kind, _, rest = operation.partition(" ")
    if kind == "spawn":
        var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("bench")
        contexts: list[Context[str, Any]] = []
        if rest == "floor":
            loop.set_task_factory(_forwarding)
        elif rest == "floor object":
            loop.set_task_factory(_Forwarding())
        elif rest == "16 Copy":
            contexts = [Context(Copy(), name=f"c{i}") for i in range(16)]
        elif rest != "bare":
            contexts = [Context(policies[rest])]
        for ctx in contexts:
            ctx.attach(loop)

        async def main() -> None:
            var.set(_keys(2))
            for ctx in contexts:
                ctx.update(_keys(2))
            if contexts:
                first = contexts[0]
                await _spawn(n, lambda: _ctx_child(first))
            else:
                await _spawn(n, lambda: _bare_child(var))

    else:
        ctx = Context(ChainMap() if "ChainMap" in rest else Copy())
        ctx.attach(loop)
        size = int(rest.rsplit(" ", 1)[-1]) if rest[-1:].isdigit() else 8
        var = contextvars.ContextVar("bench")

        async def main() -> None:
            var.set(_keys(size - 1))
            ctx.update(_keys(size - 1))
            ctx["own"] = 0  # under ChainMap the task writes, and so owns, its layer first
            if operation == "read bare":
                for _ in range(n):
                    var.get()["a"]
            elif operation == "read ctx":
                for _ in range(n):
                    ctx["a"]
            elif operation == "write bare":
                for i in range(n):
                    var.get()["a"] = i
            elif operation == "write bare var.set":
                dicts = [dict(var.get()) for _ in range(n)]
                for data in dicts:
                    var.set(data)
            elif operation == "write bare set":
                for i in range(n):
                    data = var.get().copy()
                    data["a"] = i
                    var.set(data)
            else:
                for i in range(n):
                    ctx["a"] = i

    loop.run_until_complete(main())
    loop.close()
    del aiocontext


def count(operation: str, n: int, python: str) -> int:
    """Instructions valgrind counts for one run of ``operation`` done ``n`` times."""
    out = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            python, "-m", "benchmarks.callgrind", "--worker", operation, str(n),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
    )  # fmt: skip
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no count from valgrind for {operation!r}:\n{out.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    """Count every operation (or ``--only`` those whose name starts so) and print ratios."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.callgrind")
    parser.add_argument("--n", type=int, default=2_000, help="operations per counted run")
    parser.add_argument("--only", action="append", default=[], help="operation name prefix")
    parser.add_argument("--worker", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run(args.worker[0], int(args.worker[1]))
        return 0
    chosen = [op for op in OPERATIONS if not args.only or op.startswith(tuple(args.only))]
    per_op: dict[str, float] = {}
    for operation in chosen:
        none, many = count(operation, 0, sys.executable), count(operation, args.n, sys.executable)
        per_op[operation] = (many - none) / args.n
        print(
            f"{operation:<18} {per_op[operation]:>10,.0f} instructions  ({OPERATIONS[operation]})"
        )
    print()
    for top, bottom in RATIOS:
        if top in per_op and bottom in per_op:
            print(f"{top + ' / ' + bottom:<36} {per_op[top] / per_op[bottom]:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
