"""httpx integration: every outgoing request carries the chosen context keys as headers.

Install it with ``pip install "aiocontext[httpx]"``, then instrument a client (sync or
async) with a :class:`~aiocontext.propagation.Propagator`::

    propagator = Propagator({request: ["request_id"]})
    client = aiocontext.httpx.instrument(httpx.AsyncClient(), propagator)

or pass the hook when making the client:
``httpx.AsyncClient(event_hooks={"request": [aiocontext.httpx.async_hook(propagator)]})``
(``hook(propagator)`` for an ``httpx.Client``).

Each request, redirects included, then gets the propagator's headers, encoded from the data
of the code that sends it (the task awaiting ``client.get(...)``, or the thread calling a
sync client). A header the request already has (set by the caller, or the client's default
headers) is never replaced; code with no data sends none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from ._integration import check_propagator
from .propagation import Propagator

__all__ = ["async_hook", "hook", "instrument"]

_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


def hook(propagator: Propagator) -> Callable[[httpx.Request], None]:
    """Return a ``"request"`` event hook for an :class:`httpx.Client` adding the headers.

    Args:
        propagator: Which keys travel, in which format.

    Returns:
        The hook: ``httpx.Client(event_hooks={"request": [hook(propagator)]})``.

    Raises:
        TypeError: ``propagator`` is not a Propagator.

    Example:
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> add_headers = hook(Propagator({request: ["request_id"]}))
        >>> outgoing = httpx.Request("GET", "http://127.0.0.1/")
        >>> with request.restore({"request_id": "r-1"}):
        ...     add_headers(outgoing)
        >>> outgoing.headers["X-Request-ID"]
        'r-1'
    """
    inject = check_propagator(propagator).inject

    def add_context_headers(request: httpx.Request) -> None:
        inject(request.headers)

    return add_context_headers


def async_hook(propagator: Propagator) -> Callable[[httpx.Request], Awaitable[None]]:
    """Return a ``"request"`` event hook for an :class:`httpx.AsyncClient` adding the headers.

    Args:
        propagator: Which keys travel, in which format.

    Returns:
        The hook: ``httpx.AsyncClient(event_hooks={"request": [async_hook(propagator)]})``.

    Raises:
        TypeError: ``propagator`` is not a Propagator.
    """
    inject = check_propagator(propagator).inject

    async def add_context_headers(request: httpx.Request) -> None:
        inject(request.headers)

    return add_context_headers


def instrument(client: _Client, propagator: Propagator) -> _Client:
    """Make every request ``client`` sends carry ``propagator``'s headers; return ``client``.

    Adds :func:`hook` (an ``httpx.Client``) or :func:`async_hook` (an ``httpx.AsyncClient``)
    to the client's request hooks, after the ones it has.

    Args:
        client: An ``httpx.Client`` or ``httpx.AsyncClient``.
        propagator: Which keys travel, in which format.

    Returns:
        ``client`` itself.

    Raises:
        TypeError: ``client`` is not an httpx client, or ``propagator`` not a Propagator.
    """
    if isinstance(client, httpx.AsyncClient):
        _add_hook(client, async_hook(propagator))
    elif isinstance(client, httpx.Client):
        _add_hook(client, hook(propagator))
    else:
        raise TypeError(
            f"instrument() takes an httpx.Client or httpx.AsyncClient, got "
            f"{type(client).__name__} {client!r}"
        )
    return client


def _add_hook(client: httpx.Client | httpx.AsyncClient, added: Callable[..., object]) -> None:
    hooks: dict[str, list[Callable[..., object]]] = dict(client.event_hooks)
    hooks["request"] = [*hooks.get("request", ()), added]
    client.event_hooks = hooks
