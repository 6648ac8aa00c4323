"""``python -m benchmarks.http.table [--before BEFORE.json] AFTER.json...``: the Markdown
tables of ``docs/performance-http.md`` from the JSON files ``python -m benchmarks.http
--json`` writes.

Several AFTER files (say one per stack) are merged, the figures of a later file for a stack
added to the earlier ones. BEFORE may hold only some variants (say the ``aiocontext`` ones
measured at an older commit): their cost over AFTER's bare is shown in brackets.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

from ._apps import VARIANTS


def _load(path: str) -> dict[str, Any]:
    with open(path) as file:
        data: dict[str, Any] = json.load(file)
    return data


def instructions_table(after: dict[str, Any], before: dict[str, Any], mode: str) -> list[str]:
    """Rows: per stack, instructions per request (thousands) and the cost over bare."""
    lines = [
        f"| stack (id {mode}) | " + " | ".join(VARIANTS) + " |",
        "|---" * (len(VARIANTS) + 1) + "|",
    ]
    for stack, figures in after.items():
        if stack == "header" or "instructions" not in figures:
            continue
        counts = figures["instructions"]
        old = before.get(stack, {}).get("instructions", {})
        bare = counts.get("bare", {}).get(mode)
        cells: list[str] = []
        for variant in VARIANTS:
            if variant not in counts:
                cells.append("--")
                continue
            value = counts[variant][mode]
            cell = f"{value / 1e3:.1f}"
            if bare is not None and variant != "bare":
                cell += f" (+{(value - bare) / 1e3:.1f})"
            if variant in old and bare is not None:
                cell += f" [was +{(old[variant][mode] - bare) / 1e3:.1f}]"
            cells.append(cell)
        lines.append(f"| {stack} | " + " | ".join(cells) + " |")
    return lines


def throughput_table(after: dict[str, Any]) -> list[str]:
    """Rows: per stack, the median per-round req/s ratio to bare, and bare's median req/s."""
    lines = [
        "| stack | bare req/s | " + " | ".join(VARIANTS[1:]) + " |",
        "|---" * (len(VARIANTS) + 1) + "|",
    ]
    for stack, figures in after.items():
        if stack == "header" or "req/s" not in figures:
            continue
        samples = figures["req/s"]
        bare = samples["bare"]
        cells = [f"{statistics.median(bare):,.0f}"]
        for variant in VARIANTS[1:]:
            if variant not in samples:
                cells.append("--")
                continue
            ratios = [v / b for v, b in zip(samples[variant], bare, strict=True)]
            cells.append(f"{statistics.median(ratios):.2f}x")
        lines.append(f"| {stack} | " + " | ".join(cells) + " |")
    return lines


def memory_table(after: dict[str, Any]) -> list[str]:
    """Rows: per stack, RSS (MiB) and its growth (KiB) over the second batch of requests."""
    lines = [
        "| stack | " + " | ".join(VARIANTS) + " |",
        "|---" * (len(VARIANTS) + 1) + "|",
    ]
    for stack, figures in after.items():
        if stack == "header" or "memory" not in figures:
            continue
        memory = figures["memory"]
        cells = [
            f"{memory[v][0] / 1024:.1f} MiB, {memory[v][1]:+d} KiB" if v in memory else "--"
            for v in VARIANTS
        ]
        lines.append(f"| {stack} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> int:
    """Print every table."""
    before: dict[str, Any] = {}
    if argv[:1] == ["--before"]:
        before, argv = _load(argv[1]), argv[2:]
    after: dict[str, Any] = {}
    headers: list[str] = []
    for path in argv:
        for stack, figures in _load(path).items():
            if stack == "header":
                headers.append(figures)
            else:
                after.setdefault(stack, {}).update(figures)
    print("\n".join(headers), end="\n\n")
    for mode in ("generated", "sent"):
        print("\n".join(instructions_table(after, before, mode)), end="\n\n")
    print("\n".join(throughput_table(after)), end="\n\n")
    print("\n".join(memory_table(after)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
