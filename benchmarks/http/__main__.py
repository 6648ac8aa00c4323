"""``python -m benchmarks.http``: per-request cost of request-id middlewares on real servers.

For each stack (aiohttp; uvicorn on asyncio/uvloop with h11/httptools) and each variant
(bare, aiocontext, asgi-correlation-id, starlette-context, hand-written ContextVar) it starts
the server on 127.0.0.1, checks the ids it gives, then measures:

- the server's instructions per request under ``valgrind --tool=callgrind``: one server
  process serves a warm-up, then N requests with no id (the server generates it), then N
  with one sent, on one keep-alive connection, callgrind's counts dumped between the
  phases (``vgdb ... dump``) and divided by N: the stable figure (uvicorn
  without its 10 Hz tick, whose work would grow with the machine's load);
- req/s under ``wrk -t1 -cC`` keep-alive (the in-repo client when wrk is missing), every
  variant of a stack once per round, the order rotating, as a median ratio to bare;
- the server's RSS growth over 20,000 requests after 20,000 of warm-up.

``--quick`` checks every variant and runs a short load: seconds, no valgrind (for CI).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from typing import Any

from ._apps import AIOHTTP_VARIANTS, ASGI_VARIANTS, VARIANTS
from ._run import (
    VALGRIND,
    WRK,
    Server,
    checked,
    instructions,
    memory_growth,
    ratios,
    throughput_rounds,
)
from ._server import STACKS

_MODULES = {"asgi-correlation-id": "asgi_correlation_id", "starlette-context": "starlette_context"}


def _variants(stack: str, chosen: list[str]) -> list[str]:
    names = AIOHTTP_VARIANTS if STACKS[stack][0] == "aiohttp" else ASGI_VARIANTS
    out: list[str] = []
    for name in names:
        if chosen and name not in chosen:
            continue
        module = _MODULES.get(name)
        if module is not None and importlib.util.find_spec(module) is None:
            print(
                f"  {name}: not installed (pip install -e . --group bench), skipped",
                file=sys.stderr,
            )
            continue
        out.append(name)
    return out


def _stacks(chosen: list[str]) -> list[str]:
    out: list[str] = []
    for stack in STACKS:
        if chosen and stack not in chosen:
            continue
        _, loop, http = STACKS[stack]
        missing = [
            m
            for m in (loop, http)
            if m in ("uvloop", "httptools") and not importlib.util.find_spec(m)
        ]
        if missing:
            print(f"{stack}: {', '.join(missing)} not installed, skipped", file=sys.stderr)
            continue
        out.append(stack)
    return out


def _header() -> str:
    versions: list[str] = []
    for dist in ("aiocontext", "aiohttp", "uvicorn", "starlette", "uvloop", "httptools", "h11",
                 "asgi-correlation-id", "starlette-context"):  # fmt: skip
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"CPython {platform.python_version()}, {os.cpu_count()} CPUs, load average {load}\n"
        + ", ".join(versions)
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http",
        description="Per-request cost of request-id middlewares on real servers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="checks and a short load only: seconds"
    )
    parser.add_argument("--stack", action="append", default=[], choices=list(STACKS))
    parser.add_argument("--variant", action="append", default=[], choices=list(VARIANTS))
    parser.add_argument("--n", type=int, default=1000, help="requests per counted run (valgrind)")
    parser.add_argument("--warmup", type=int, default=200, help="requests before counting")
    parser.add_argument("--no-valgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds (0: skip)")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per variant per round")
    parser.add_argument("--connections", type=int, default=50, help="keep-alive connections")
    parser.add_argument(
        "--memory", type=int, default=20_000, help="requests per memory sample (0: skip)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.no_valgrind, args.rounds, args.seconds, args.connections = True, 1, 0.3, 4
        args.memory = 200
    return args


def _instructions(stack: str, variant: str, args: argparse.Namespace) -> dict[str, float]:
    """``instructions()``, tried a second time if the server under valgrind drops the
    connection."""
    try:
        return instructions(stack, variant, args.n, args.warmup)
    except ConnectionError as error:
        print(f"    {variant}: {error!r} under valgrind, once more", file=sys.stderr)
        return instructions(stack, variant, args.n, args.warmup)


def _count(stack: str, variants: list[str], args: argparse.Namespace, out: dict[str, Any]) -> None:
    per = {v: _instructions(stack, v, args) for v in variants}
    out["instructions"] = per
    bare = per.get("bare")
    print("  instructions per request, thousands (over bare): id generated | id sent")
    for variant, counts in per.items():
        cells: list[str] = []
        for mode in ("generated", "sent"):
            over = (
                ""
                if bare is None or variant == "bare"
                else f" (+{(counts[mode] - bare[mode]) / 1e3:.1f})"
            )
            cells.append(f"{counts[mode] / 1e3:7.1f}{over:<9}")
        print(f"    {variant:<22}{' | '.join(cells)}", flush=True)


def _measure(stack: str, variants: list[str], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    servers: list[Server] = []
    try:
        for variant in variants:
            servers.append(checked(stack, variant))
        print(f"  ids checked: {', '.join(variants)}", flush=True)
        if args.rounds:
            samples = throughput_rounds(servers, args.rounds, args.seconds, args.connections, None,
                                        use_wrk=WRK is not None and not args.quick)  # fmt: skip
            out["req/s"] = samples
            print(f"  req/s ({'wrk' if WRK and not args.quick else 'in-repo client'}, "
                  f"{args.connections} connections, {args.rounds} rounds), median ratio to bare:")  # fmt: skip
            if "bare" in samples:
                for variant, (median, p25, p75) in ratios(samples, "bare").items():
                    rate = sorted(samples[variant])[len(samples[variant]) // 2]
                    print(
                        f"    {variant:<22}{rate:9.0f} req/s  {median:5.2f}x  ({p25:.2f}-{p75:.2f})"
                    )
        if args.memory:
            out["memory"] = {s.variant: memory_growth(s, args.memory) for s in servers}
            print(f"  RSS after {args.memory:,} requests, growth over {args.memory:,} more:")
            for variant, (rss, growth) in out["memory"].items():
                print(f"    {variant:<22}{rss / 1024:7.1f} MiB  {growth:+6d} KiB")
        for server in servers:
            server.stop()
    except BaseException:
        for server in servers:
            server.kill()
        raise
    if not args.no_valgrind:
        _count(stack, variants, args, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure every chosen stack and variant; print the figures."""
    args = _parse(argv)
    if not args.no_valgrind and VALGRIND is None:
        print("valgrind is not installed: instruction counts skipped", file=sys.stderr)
        args.no_valgrind = True
    print(_header(), flush=True)
    results: dict[str, Any] = {"header": _header()}
    for stack in _stacks(args.stack):
        print(f"\n{stack}", flush=True)
        results[stack] = _measure(stack, _variants(stack, args.variant), args)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
