"""Helpers the propagation integrations share (httpx, aiohttp, Celery, arq, ASGI)."""

from __future__ import annotations

from collections.abc import Iterable

from .propagation import Propagator

__all__ = ["check_propagator", "header_pairs"]


def check_propagator(propagator: object) -> Propagator:
    """``propagator``, if it is a :class:`Propagator`.

    Raises:
        TypeError: It is not, with what to pass instead.
    """
    if not isinstance(propagator, Propagator):
        raise TypeError(
            f"propagator must be an aiocontext.propagation.Propagator, such as "
            f"Propagator({{request: ['request_id']}}), got {type(propagator).__name__} "
            f"{propagator!r}"
        )
    return propagator


def header_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as a carrier: lowercase names, repeated ones joined with commas.

    (A repeated ``X-Request-ID`` so becomes one value with a comma, which is not a valid id:
    it is dropped, as the middlewares drop a repeated id header.)
    """
    carrier: dict[str, str] = {}
    for name, value in pairs:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
    return carrier
