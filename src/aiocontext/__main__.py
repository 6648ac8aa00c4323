"""``python -m aiocontext``: the classic parent/child example under the four policies.

The parent sets ``simple = "from parent"`` and ``complex = ["from", "parent"]``, then awaits
a child that sets ``simple = "from child"`` and mutates ``complex[1] = "child"``. The table
shows what each task sees afterwards, policy by policy.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from . import ChainMap, Context, Copy, DeepCopy, PropagationPolicy, Share, loop_factory
from ._advice import install_uvloop

__all__ = ["main", "run_example"]

POLICIES: tuple[PropagationPolicy, ...] = (Share(), Copy(), DeepCopy(), ChainMap())


def run_example(
    policy: PropagationPolicy,
    base: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the classic example under ``policy``.

    Returns:
        What the parent and the child see at the end, as plain dicts.
    """
    ctx: Context[str, Any] = Context(policy=policy, name="demo")

    async def child() -> dict[str, Any]:
        ctx["simple"] = "from child"
        ctx["complex"][1] = "child"
        return dict(ctx)

    async def parent() -> tuple[dict[str, Any], dict[str, Any]]:
        ctx["simple"] = "from parent"
        ctx["complex"] = ["from", "parent"]
        seen_by_child = await asyncio.create_task(child())
        return dict(ctx), seen_by_child

    with asyncio.Runner(loop_factory=loop_factory(ctx, base=base)) as runner:
        return runner.run(parent())


def render(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """Lay out rows as a plain-text table with a header rule."""
    header = ("policy", "task", "simple", "complex")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, tuple("-" * width for width in widths), *rows)
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print what parent and child see under each policy."""
    parser = argparse.ArgumentParser(prog="python -m aiocontext", description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    base: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            parser.error(install_uvloop())
        base = uvloop.new_event_loop

    rows: list[tuple[str, str, str, str]] = []
    for policy in POLICIES:
        parent, child = run_example(policy, base)
        for label, (who, seen) in zip(
            (repr(policy), ""), (("child", child), ("parent", parent)), strict=True
        ):
            rows.append((label, who, seen["simple"], repr(seen["complex"])))
    print(
        f"aiocontext on {args.loop}: the parent sets simple='from parent' and "
        "complex=['from', 'parent'],\nthen awaits a child that sets simple='from child' "
        "and complex[1]='child'.\n"
    )
    print(render(rows))


if __name__ == "__main__":
    main()
