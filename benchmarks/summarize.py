"""Turn the JSON of several runs (one per Python) into the README's Markdown table.

Usage: ``python -m benchmarks.summarize results/3.11.json results/3.12.json ...``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: The ratios the README reports, in order: (case key, subject, baseline).
ROWS: tuple[tuple[str, str, str], ...] = (
    ("spawn", "Share()", "bare ContextVar"),
    ("spawn", "Copy()", "bare ContextVar"),
    ("spawn", "ChainMap()", "bare ContextVar"),
    ("spawn", "DeepCopy()", "bare ContextVar"),
    ("spawn", "floor: forwarding object factory", "bare ContextVar"),
    ("spawn", "Share()", "atc task_factory"),
    ("spawn", "ChainMap()", "atc chainmap_task_factory"),
    ("spawn", "DeepCopy()", "atc copying_task_factory"),
    ("size", "Copy(), 1000 keys", "Copy(), 3 keys"),
    ("contexts", "16 × Copy()", "bare ContextVar"),
    ("contexts", "floor: 16 ContextVars, a new value each per child", "bare ContextVar"),
    ("reads", "ctx[k]", "bare var.get()[k]"),
    ("reads", "floor: one-line Python __getitem__", "bare var.get()[k]"),
    ("reads", "ctx.get(k)", "bare var.get().get(k)"),
    ("reads", "ctx[k] = v", "bare var.get()[k] = v"),
    ("reads", "ctx[k]", "atc get(k)"),
    ("reads", "ctx.get(k)", "atc get(k)"),
    ("depth", "ChainMap() ctx[k], depth 100", "ChainMap() ctx[k], depth 1"),
    ("memory", "Copy()", "bare ContextVar"),
)


def main(paths: list[str]) -> None:
    """Print one Markdown table: a row per ratio, a column per Python and loop."""
    runs: dict[tuple[str, str], dict[tuple[str, str, str], dict[str, Any]]] = {}
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        python = ".".join(data["environment"]["python"].split(".")[:2])
        for run in data["runs"]:
            ratios = runs.setdefault((python, run["loop"]), {})
            for ratio in run["ratios"]:
                ratios[(run["key"], ratio["subject"], ratio["baseline"])] = ratio
    columns = sorted(runs)
    header = ["ratio (median)", "target", *(f"{python} {loop}" for python, loop in columns)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in ROWS:
        target = next((runs[c][row].get("target") or "" for c in columns if row in runs[c]), "")
        cells: list[str] = []
        for column in columns:
            ratio = runs[column].get(row)
            if ratio is None:
                cells.append("")
                continue
            met = ratio.get("met")
            mark = (" ✓" if met else " ✗") if target and met is not None else ""
            cells.append(f"{ratio['median']:.2f}×{mark}")
        label = f"{row[0]}: {row[1]} / {row[2]}"
        print(f"| {label} | {target or '—'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
