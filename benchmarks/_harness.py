"""The measuring machinery: interleaved rounds, per-round ratios, medians, the table, JSON.

A :class:`Case` is a set of :class:`Variant` objects (each owns the event loop it runs on and
knows how to take one measurement) and the :class:`Ratio` rows to report. :func:`run_case`
measures every variant once per round, round-robin, so that whatever the machine does during
a round (frequency scaling, another process, a GC of the allocator's arenas) hits all of them
alike; every ratio is then computed *within* a round, and the median over rounds reported.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

import attrs

__all__ = [
    "Case",
    "CaseResult",
    "Ratio",
    "RatioResult",
    "Target",
    "Variant",
    "render",
    "run_case",
]

Sample = Callable[[], Coroutine[Any, Any, int]]
"""One measurement: a coroutine function run as the loop's main task, returning ns or bytes."""


@attrs.frozen
class Variant:
    """One contender of a case: the loop it runs on and how to take one measurement."""

    name: str
    loop: asyncio.AbstractEventLoop
    sample: Sample


@attrs.frozen
class Target:
    """A goal for a ratio: ``ratio <= value`` (or ``ratio < value`` when ``strict``)."""

    value: float
    strict: bool = False

    def met(self, ratio: float) -> bool:
        """Whether ``ratio`` meets the target."""
        return ratio < self.value if self.strict else ratio <= self.value

    def __str__(self) -> str:
        return f"{'<' if self.strict else '≤'} {self.value:.2f}"


@attrs.frozen
class Ratio:
    """A row of the report: ``subject`` / ``baseline``, per round, median over rounds."""

    subject: str
    baseline: str
    target: Target | None = None


@attrs.frozen
class Case:
    """A benchmark: variants measured side by side, and the ratios to report."""

    key: str
    title: str
    unit: Literal["ns", "bytes"]
    ops: int
    per: str
    rounds: int
    warmup: int
    variants: tuple[Variant, ...]
    ratios: tuple[Ratio, ...]
    notes: tuple[str, ...] = ()

    def close(self) -> None:
        """Close every loop the variants own."""
        seen: set[int] = set()
        for variant in self.variants:
            loop = variant.loop
            if id(loop) in seen or loop.is_closed():
                continue
            seen.add(id(loop))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


@attrs.frozen
class RatioResult:
    """A ratio's per-round values and their median and quartiles."""

    ratio: Ratio
    values: tuple[float, ...]
    median: float
    p25: float
    p75: float

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target (``None`` without a target)."""
        target = self.ratio.target
        return None if target is None else target.met(self.median)


@attrs.frozen
class CaseResult:
    """What :func:`run_case` measured."""

    case: Case
    samples: dict[str, tuple[int, ...]]
    ratios: tuple[RatioResult, ...]

    def median(self, variant: str) -> float:
        """The median of a variant's samples."""
        return statistics.median(self.samples[variant])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary, raw samples included."""
        case = self.case
        return {
            "key": case.key,
            "title": case.title,
            "unit": case.unit,
            "ops_per_sample": case.ops,
            "per": case.per,
            "rounds": case.rounds,
            "notes": list(case.notes),
            "variants": {
                name: {
                    "median": self.median(name),
                    "median_per_op": self.median(name) / case.ops,
                    "samples": list(samples),
                }
                for name, samples in self.samples.items()
            },
            "ratios": [
                {
                    "subject": result.ratio.subject,
                    "baseline": result.ratio.baseline,
                    "median": result.median,
                    "p25": result.p25,
                    "p75": result.p75,
                    "target": None if result.ratio.target is None else str(result.ratio.target),
                    "met": result.met,
                    "values": list(result.values),
                }
                for result in self.ratios
            ],
        }


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    median = statistics.median(values)
    if len(values) < 2:
        return median, median, median
    p25, _, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return median, p25, p75


def run_case(case: Case, progress: Callable[[str], None] | None = None) -> CaseResult:
    """Measure every variant of ``case`` once per round, round-robin; warm-up rounds first.

    The order rotates from round to round (round ``r`` starts with variant ``r mod n``) so no
    variant always runs right after the same neighbour. A full collection runs before every
    measurement so each starts from the same heap; the collector stays enabled while
    measuring, because the garbage a variant makes is part of its cost.
    """
    variants = case.variants
    samples: dict[str, list[int]] = {variant.name: [] for variant in variants}
    for round_ in range(case.warmup + case.rounds):
        shift = round_ % len(variants)
        for variant in (*variants[shift:], *variants[:shift]):
            gc.collect()
            value = variant.loop.run_until_complete(variant.sample())
            if round_ >= case.warmup:
                samples[variant.name].append(value)
        if progress is not None:
            progress(f"{case.key}: round {round_ + 1}/{case.warmup + case.rounds}")
    results: list[RatioResult] = []
    for ratio in case.ratios:
        subject, baseline = samples[ratio.subject], samples[ratio.baseline]
        values = tuple(s / b for s, b in zip(subject, baseline, strict=True))
        median, p25, p75 = _quartiles(values)
        results.append(RatioResult(ratio, values, median, p25, p75))
    return CaseResult(
        case, {name: tuple(values) for name, values in samples.items()}, tuple(results)
    )


def _per_op(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value:,.0f} B"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f} ms"
    if value >= 1_000:
        return f"{value / 1_000:.2f} µs"
    return f"{value:.1f} ns"


def _total(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 2**20:.2f} MiB"
    return f"{value / 1_000_000:.2f} ms"


def render(result: CaseResult) -> str:
    """The case's table: per-variant medians, then the ratios with targets."""
    case = result.case
    width = max(
        [len(v.name) for v in case.variants]
        + [len(f"{r.subject} / {r.baseline}") for r in case.ratios]
        + [24]
    )
    lines = [
        f"{case.title}  [{case.rounds} rounds]",
        f"  {'variant':<{width}}  {'median/' + case.per:>14}  {'median/sample':>14}",
    ]
    for variant in case.variants:
        median = result.median(variant.name)
        lines.append(
            f"  {variant.name:<{width}}  {_per_op(median / case.ops, case.unit):>14}"
            f"  {_total(median, case.unit):>14}"
        )
    header = f"{'median':>8}  {'p25–p75':>13}  {'target':>8}  {'met':>3}"
    lines.append(f"  {'ratio':<{width}}  {header}")
    for ratio_result in result.ratios:
        ratio = ratio_result.ratio
        label = f"{ratio.subject} / {ratio.baseline}"
        target = "—" if ratio.target is None else str(ratio.target)
        met = {None: "", True: "yes", False: "NO"}[ratio_result.met]
        spread = f"{ratio_result.p25:.2f}–{ratio_result.p75:.2f}"
        median = ratio_result.median
        lines.append(f"  {label:<{width}}  {median:>7.2f}×  {spread:>13}  {target:>8}  {met:>3}")
    lines.extend(f"  note: {note}" for note in case.notes)
    return "\n".join(lines)
