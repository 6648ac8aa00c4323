"""``python -m benchmarks``: run the cases, print the tables, optionally write JSON."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ._cases import CASES, FULL, HAVE_ATC, HAVE_UVLOOP, QUICK, Env, LoopKind
from ._harness import CaseResult, render, run_case

LOOP_CHOICES: dict[str, tuple[LoopKind, ...]] = {
    "asyncio": ("asyncio",),
    "uvloop": ("uvloop",),
    "both": ("asyncio", "uvloop"),
}

TARGETS_NOTE = (
    "targets are set for CPython 3.12 on the stdlib loop; elsewhere they are shown for "
    "reference. This is a report, not a test: nothing fails when a target is missed."
)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(package: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(package), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _source() -> str:
    """Where ``aiocontext`` is imported from, with the git commit when it is a checkout."""
    import aiocontext

    package = Path(aiocontext.__file__).resolve().parent
    try:
        commit = _git(package, "rev-parse", "--short=10", "HEAD")
        changed = _git(package, "status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return str(package)
    state = "with uncommitted changes" if changed else "clean"
    return f"{package} (git {commit}, {state})"


def _environment(quick: bool) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiocontext": _version("aiocontext"),
        "aiocontext_source": _source(),
        "uvloop": _version("uvloop"),
        "aiotask-context": _version("aiotask-context"),
        "mode": "quick" if quick else "full",
        "asyncio_debug": bool(os.environ.get("PYTHONASYNCIODEBUG")) or sys.flags.dev_mode,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="aiocontext benchmarks: ratios against bare asyncio and aiotask-context, "
        "measured side by side in one process, variants interleaved, medians reported.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and 3 rounds: a smoke run for CI (seconds)"
    )
    parser.add_argument(
        "--loop",
        choices=tuple(LOOP_CHOICES),
        default="both",
        help="event loop kind(s) to run on (default: both; uvloop is skipped if not installed)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results, raw samples included"
    )
    parser.add_argument("--rounds", type=int, metavar="N", help="override the number of rounds")
    parser.add_argument(
        "--case",
        action="append",
        choices=tuple(CASES),
        help="run only this case (repeatable; default: all)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _loop_kinds(choice: str) -> tuple[list[LoopKind], list[str]]:
    kinds = list(LOOP_CHOICES[choice])
    notes: list[str] = []
    if "uvloop" in kinds and not HAVE_UVLOOP:
        if choice == "uvloop":
            raise SystemExit("uvloop is not installed: pip install uvloop")
        kinds.remove("uvloop")
        notes.append("uvloop is not installed: skipped")
    return kinds, notes


def _summary(results: list[tuple[str, CaseResult]]) -> str:
    rows = [
        (kind, result.case.key, f"{r.ratio.subject} / {r.ratio.baseline}", r)
        for kind, result in results
        for r in result.ratios
        if r.ratio.target is not None
    ]
    case_width = max([len(row[1]) for row in rows] + [4])
    label_width = max([len(row[2]) for row in rows] + [5])
    lines = [
        "targets",
        (
            f"  {'loop':<8}  {'case':<{case_width}}  {'ratio':<{label_width}}  {'median':>8}"
            f"  {'target':>8}  {'met':>3}"
        ),
    ]
    for kind, key, label, ratio_result in rows:
        median, target = ratio_result.median, ratio_result.ratio.target
        lines.append(
            f"  {kind:<8}  {key:<{case_width}}  {label:<{label_width}}  {median:>7.2f}×"
            f"  {target!s:>8}  {'yes' if ratio_result.met else 'NO':>3}"
        )
    met = sum(bool(row[3].met) for row in rows)
    lines.append(f"  {met} of {len(rows)} targets met")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = attrs.evolve(
            sizes, rounds=args.rounds, memory_rounds=min(args.rounds, sizes.memory_rounds)
        )
    kinds, notes = _loop_kinds(args.loop)
    environment = _environment(args.quick)

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  … {message}", file=sys.stderr, flush=True)

    print(
        f"aiocontext {environment['aiocontext']} benchmarks — {environment['implementation']} "
        f"{environment['python']} on {environment['platform']}, {environment['cpus']} CPUs, "
        f"{environment['mode']} run"
    )
    print(f"aiocontext from {environment['aiocontext_source']}")
    print(
        f"uvloop {environment['uvloop'] or 'not installed'}, "
        f"aiotask-context {environment['aiotask-context'] or 'not installed'}"
    )
    if not HAVE_ATC:
        notes.append(
            "aiotask-context is not installed (pip install aiotask-context==0.6.1): skipped"
        )
    if args.quick:
        notes.append("quick run: the sizes are too small for the figures to mean anything")
    if environment["asyncio_debug"]:
        notes.append("asyncio debug mode or -X dev is on: the figures are not representative")
    for note in (*notes, TARGETS_NOTE):
        print(f"note: {note}")
    print(
        "every figure is a median over rounds; a ratio is taken within each round, then its median"
    )

    started = time.perf_counter()
    results: list[tuple[str, CaseResult]] = []
    for kind in kinds:
        env = Env(kind, sizes)
        probe = env.new_loop()
        loop_class = type(probe).__name__
        probe.close()
        print(f"\n=== loop: {kind} ({loop_class}) ===")
        kind_started = time.perf_counter()
        for key in args.case or CASES:
            case = CASES[key](env)
            try:
                case_started = time.perf_counter()
                result = run_case(case, progress)
            finally:
                case.close()
            progress(f"{key} on {kind}: {time.perf_counter() - case_started:.1f} s")
            print()
            print(render(result))
            results.append((kind, result))
        progress(f"{kind}: {time.perf_counter() - kind_started:.1f} s")
    print()
    print(_summary(results))
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.1f} s")

    if args.json:
        document = {
            "environment": environment,
            "notes": [*notes, TARGETS_NOTE],
            "sizes": attrs.asdict(sizes),
            "elapsed_seconds": elapsed,
            "runs": [{"loop": kind, **result.to_json()} for kind, result in results],
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
