"""One memory measurement in a fresh interpreter: ``python -m benchmarks._memory KIND N NAME``.

Prints the bytes that ``N`` pending tasks of memory variant ``NAME`` add (tracemalloc peak minus
the start), after an untraced warm-up run of the same variant with a few tasks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import attrs

from ._cases import FULL, Env, LoopKind, memory_variant


def _measure(env: Env, name: str) -> int:
    variant = memory_variant(env, name)
    try:
        return variant.loop.run_until_complete(variant.sample())
    finally:
        variant.loop.run_until_complete(variant.loop.shutdown_asyncgens())
        variant.loop.close()


def main(argv: Sequence[str]) -> int:
    """Measure and print; return the exit status."""
    kind, tasks, name = argv
    if kind not in ("asyncio", "uvloop"):
        raise SystemExit(f"unknown loop kind {kind!r}")
    loop_kind: LoopKind = "uvloop" if kind == "uvloop" else "asyncio"
    n = int(tasks)
    _measure(Env(loop_kind, attrs.evolve(FULL, memory_tasks=min(n, 500))), name)
    print(_measure(Env(loop_kind, attrs.evolve(FULL, memory_tasks=n)), name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
