"""Instructions per operation for the core's data models and spawn plan, counted by
``valgrind --tool=callgrind`` as ``benchmarks.callgrind`` counts them (a run of N minus a
run of 0, both in a fresh interpreter).

Run from the repository root (valgrind must be installed; uvloop for the uvloop rows)::

    python -m benchmarks.core_callgrind
    python -m benchmarks.core_callgrind --only restore

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
from typing import Any, Final

OPERATIONS: Final[dict[str, str]] = {
    "uvloop spawn bare": "create_task + await on uvloop, no factory",
    "uvloop spawn floor object": "the same, a forwarding factory object",
    "uvloop spawn Copy": "the same, one Copy() context attached",
    "uvloop spawn Share": "the same, one Share() context attached",
    "write Share 8": "ctx[k] = v, Share(), 8 keys",
    "write ChainMap 8": "ctx[k] = v, ChainMap(), 8 keys (the task owns its layer)",
    "read ChainMap gen 1": "ctx[k] of the key its creator wrote, ChainMap(), generation 1",
    "read ChainMap gen 20000": "the same in the 20,000th successor generation",
    "read ChainMap depth 100": "the same 100 levels down a chain of running tasks",
    "restore bare": "token = var.set(dict(d)); var.reset(token): the floor",
    "restore Copy": "with ctx.restore(d): pass, Copy(), 3 keys",
    "update Copy 1000": "ctx.update(1,000 keys), Copy()",
}

#: Operations whose setup is so large (20,000 generations of tasks) that what differs
#: between two runs of it by chance (up to tens of millions of instructions, at exit) must be
#: spread over at least this many operations: with --n 1000 the row read 50x.
AT_LEAST: Final[dict[str, int]] = {"read ChainMap gen 20000": 20_000, "read ChainMap gen 1": 20_000}

RATIOS: Final = [
    ("uvloop spawn Copy", "uvloop spawn floor object"),
    ("uvloop spawn Share", "uvloop spawn floor object"),
    ("write ChainMap 8", "write Share 8"),
    ("read ChainMap gen 20000", "read ChainMap gen 1"),
    ("read ChainMap depth 100", "read ChainMap gen 1"),
    ("restore Copy", "restore bare"),
]


class _Forwarding:
    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, /, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)


async def _chain(ctx: Any, generations: int, reads: int) -> None:
    """Successor generations under ChainMap(): each spawns the next and ends; the last one
    reads the first one's key ``reads`` times."""
    done = asyncio.get_running_loop().create_future()
    tasks: list[Any] = []

    async def generation(n: int) -> None:
        if n < generations:
            tasks.append(asyncio.create_task(generation(n + 1)))
        else:
            _read(ctx, reads)
            done.set_result(None)

    async def first() -> None:
        ctx["root"] = 0
        tasks.append(asyncio.create_task(generation(1)))

    tasks.append(asyncio.create_task(first()))
    await done


async def _descend(ctx: Any, depth: int, reads: int) -> None:
    """A chain of running tasks under ChainMap(): each awaits the next; the last reads."""
    if depth > 1:
        await asyncio.create_task(_descend(ctx, depth - 1, reads))
    else:
        _read(ctx, reads)


def run(operation: str, n: int) -> None:
    """Set up ``operation``'s scenario, then do it ``n`` times (what valgrind counts)."""
    gc.disable()  # a full collection falling in one run and not the other is not the op's
    from aiocontext import ChainMap, Context, Copy, Share

    policies = {"Copy": Copy(), "Share": Share(), "ChainMap": ChainMap()}
    loop: asyncio.AbstractEventLoop
    if operation.startswith("uvloop"):
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    words = operation.split()
    var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("bench")

    async def child_bare() -> Any:
        return var.get()["a"]

    if words[0] == "uvloop":
        rest = " ".join(words[2:])
        ctx: Any = None
        if rest == "floor object":
            loop.set_task_factory(_Forwarding())
        elif rest != "bare":
            ctx = Context(policies[rest]).attach(loop)

        async def child_ctx() -> Any:
            return ctx["a"]

        async def main() -> None:
            var.set({"a": 1})
            if ctx is not None:
                ctx["a"] = 1
            make = child_bare if ctx is None else child_ctx
            for _ in range(n):
                await asyncio.create_task(make())

    elif words[0] in ("write", "read", "update"):
        ctx = Context(policies[words[1]]).attach(loop)

        async def main() -> None:
            if words[2] == "depth":
                ctx["root"] = 0
                await _descend(ctx, int(words[-1]), n)
                return
            if words[0] == "read":
                await _chain(ctx, int(words[-1]), n)
                return
            ctx.update({f"k{i}": i for i in range(7)})
            ctx["own"] = 0
            if words[0] == "update":
                for _ in range(n):
                    ctx.update({f"u{i}": i for i in range(1000)})
            else:
                for i in range(n):
                    ctx["a"] = i

    else:
        ctx = Context(Copy()).attach(loop)
        snapshot = {"request_id": "r", "user": "u", "n": 1}

        async def main() -> None:
            if words[1] == "bare":
                for _ in range(n):
                    token = var.set(dict(snapshot))
                    var.reset(token)
            else:
                for _ in range(n):
                    with ctx.restore(snapshot):
                        pass

    loop.run_until_complete(main())
    loop.close()


def _read(ctx: Any, n: int) -> None:
    for _ in range(n):
        ctx["root"]


def count(operation: str, n: int, python: str) -> int:
    """Instructions valgrind counts for one run of ``operation`` done ``n`` times."""
    out = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            python, "-m", "benchmarks.core_callgrind", "--worker", operation, str(n),
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
    """Count every operation (or those named by ``--only``) and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core_callgrind")
    parser.add_argument("--n", type=int, default=1_000, help="operations per counted run")
    parser.add_argument("--only", action="append", default=[], help="operation name prefix")
    parser.add_argument("--worker", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run(args.worker[0], int(args.worker[1]))
        return 0
    chosen = [op for op in OPERATIONS if not args.only or any(op.startswith(p) for p in args.only)]
    figures: dict[str, float] = {}
    for operation in chosen:
        n = max(args.n, AT_LEAST.get(operation, 0))
        per_op = count(operation, n, sys.executable) - count(operation, 0, sys.executable)
        figures[operation] = per_op / n
        print(
            f"{operation:26} {figures[operation]:>10,.0f} instructions  ({OPERATIONS[operation]})"
        )
    print()
    for top, bottom in RATIOS:
        if top in figures and bottom in figures:
            print(f"{top} / {bottom}".ljust(52), f"{figures[top] / figures[bottom]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
