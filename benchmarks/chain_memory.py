"""Memory per level of a live chain of tasks, measured with ``tracemalloc``.

Each level is a task that creates the next one and awaits it; the first writes one key, the
others write nothing, and the last reads the key. Under ``ChainMap()`` each level gets a
layer of its own (its parent must see its later writes), so this is the deepest chain of
layers a program can build. The figure is the memory traced at the deepest level, less the
memory traced before the first task, divided by the depth; each figure comes from a fresh
interpreter, after an untraced warm-up run of 100 levels.

Run from the repository root::

    python -m benchmarks.chain_memory                         # depths 1,000, 4,000, 10,000
    python -m benchmarks.chain_memory --depth 1000 --policy ChainMap
    python -m benchmarks.chain_memory --worker ChainMap 1000  # one run, as the table runs it

Set ``PYTHONPATH`` to measure another copy of the package (an older commit, say).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tracemalloc
from typing import Any, Final

POLICIES: Final = ("ChainMap", "Copy")
DEPTHS: Final = (1_000, 4_000, 10_000)


async def _level(ctx: Any, depth: int, at_bottom: Any) -> Any:
    if depth > 1:
        return await asyncio.create_task(_level(ctx, depth - 1, at_bottom))
    return at_bottom()


def measure(policy_name: str, depth: int) -> int:
    """Bytes traced at the bottom of a chain of ``depth`` live tasks, less those before."""
    import aiocontext

    policy = getattr(aiocontext, policy_name)()
    loop = asyncio.new_event_loop()
    ctx: Any = aiocontext.Context(policy, name="chain").attach(loop)
    start = 0

    def at_bottom() -> int:
        if ctx["root"] != "r":  # pragma: no cover - a broken chain
            raise AssertionError("the deepest level does not see the first one's key")
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - start

    async def first() -> int:
        ctx["root"] = "r"
        return int(await _level(ctx, depth, at_bottom))

    async def main() -> int:
        nonlocal start
        await asyncio.create_task(first_warm())  # the same code, untraced
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        try:
            return await asyncio.create_task(first())
        finally:
            tracemalloc.stop()

    async def first_warm() -> None:
        ctx["root"] = "r"
        await _level(ctx, 100, lambda: None)

    try:
        total: int = loop.run_until_complete(main())
    finally:
        loop.close()
    return total


def main(argv: list[str] | None = None) -> int:
    """Print bytes per level for each policy and depth (each from a fresh interpreter)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chain_memory")
    parser.add_argument("--depth", type=int, action="append", help="levels (repeatable)")
    parser.add_argument("--policy", action="append", choices=POLICIES, help="(repeatable)")
    parser.add_argument("--worker", nargs=2, metavar=("POLICY", "DEPTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(measure(args.worker[0], int(args.worker[1])))
        return 0
    print(f"{'policy':<10} {'depth':>7} {'bytes per level':>16} {'total':>12}")
    for policy in args.policy or POLICIES:
        for depth in args.depth or DEPTHS:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.chain_memory", "--worker", policy, str(depth)],
                capture_output=True,
                text=True,
                check=True,
            )
            total = int(out.stdout)
            print(f"{policy:<10} {depth:>7,} {total / depth:>16,.0f} {total:>12,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
