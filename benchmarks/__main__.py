"""``python -m benchmarks``: run the cases, print the tables, optionally write JSON."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs

from ._cases import CASES, FULL, HAVE_ATC, HAVE_UVLOOP, QUICK, Env, LoopKind
from ._harness import CaseResult, render, run_case

TARGETS_NOTE = (
    "targets are set for CPython 3.12 on the stdlib loop; elsewhere they are shown for "
    "reference. This is a report, not a test: nothing fails when a target is missed."
)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _environment(quick: bool) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiocontext": _version("aiocontext"),
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
        choices=("asyncio", "uvloop", "both"),
        default="both",
        help="event loop kind(s) to run on (default: both; uvloop is skipped if not installed)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results, raw samples included")
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
    kinds: list[LoopKind] = ["asyncio", "uvloop"] if choice == "both" else [choice]  # type: ignore[list-item]
    notes = []
    if "uvloop" in kinds and not HAVE_UVLOOP:
        if choice == "uvloop":
            raise SystemExit("uvloop is not installed: pip install uvloop")
        kinds.remove("uvloop")
        notes.append("uvloop is not installed: skipped")
    return kinds, notes


def _summary(results: list[tuple[str, CaseResult]]) -> str:
    lines = ["targets", f"  {'loop':<8}  {'ratio':<52}  {'median':>8}  {'target':>8}  {'met':>3}"]
    met = total = 0
    for kind, result in results:
        for ratio_result in result.ratios:
            ratio = ratio_result.ratio
            if ratio.target is None:
                continue
            total += 1
            met += bool(ratio_result.met)
            label = f"{ratio.subject} / {ratio.baseline}"
            lines.append(
                f"  {kind:<8}  {label:<52}  {ratio_result.median:>7.2f}×  {ratio.target!s:>8}"
                f"  {'yes' if ratio_result.met else 'NO':>3}"
            )
    lines.append(f"  {met} of {total} targets met")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = attrs.evolve(sizes, rounds=args.rounds, memory_rounds=min(args.rounds, sizes.memory_rounds))
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
    print(
        f"uvloop {environment['uvloop'] or 'not installed'}, "
        f"aiotask-context {environment['aiotask-context'] or 'not installed'}"
    )
    if not HAVE_ATC:
        notes.append("aiotask-context is not installed (pip install aiotask-context==0.6.1): skipped")
    if environment["asyncio_debug"]:
        notes.append("asyncio debug mode or -X dev is on: the figures are not representative")
    for note in (*notes, TARGETS_NOTE):
        print(f"note: {note}")
    print("every figure is a median over rounds; a ratio is taken within each round, then its median")

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
            "runs": [
                {"loop": kind, **result.to_json()} for kind, result in results
            ],
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
