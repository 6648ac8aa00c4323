"""aiohttp integration: every request's id in the context, for the handler and its sub-tasks.

Install it with ``pip install "aiocontext[aiohttp]"`` and call :func:`setup`::

    request_context = Context(name="request")
    app = web.Application()
    aiocontext.aiohttp.setup(app, request_context)

Each request then runs with ``request_context["request_id"]`` set: the incoming
``X-Request-ID`` header if it is a safe id (see below), else a fresh UUID4. The handler, the
middlewares inside this one, and every task they spawn (``create_task``, ``gather``,
``TaskGroup``, ``to_thread``) see it; :class:`aiocontext.logging.ContextFilter` puts it in
their log lines. The response carries the id in the same header, and
:func:`get_request_id` reads it from the request object.

An incoming id is used only if it is at most 128 characters of letters, digits and
``._:+=/-``, starting with a letter or digit; anything else (empty, spaces, quotes,
non-ASCII, too long, the header given twice) is replaced by a new id and never echoed.

How the request's data is scoped: the middleware gives each request a private copy of the
data of the code that runs it, with the id added, for as long as the handler runs (a
``ctx.restore(...)`` block); on the way out the previous data comes back, so nothing the
request wrote leaks into the next request of a keep-alive connection. On Python 3.12+
aiohttp 3.10+ creates its connection and request tasks with ``asyncio.Task(...,
eager_start=True)``, bypassing the loop's task factory; under ``Copy()``, ``DeepCopy()`` and
``ChainMap()`` such tasks are isolated by ``contextvars`` anyway, but under ``Share()`` every
request of the server would write into one mapping, and older aiohttp serves a keep-alive
connection's requests in one task: the ``restore()`` block keeps each request's data its
own under every policy and version.

Across services: :func:`client_trace_config` makes an :class:`aiohttp.ClientSession` send the
chosen context keys on every request (``X-Request-ID``, or W3C ``baggage``: see
:mod:`aiocontext.propagation`), and ``propagator=`` makes the middleware read them back.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Final

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from typing_extensions import TypeIs

from ._context import Context
from ._integration import check_propagator
from ._key import Key
from ._request_id import is_valid, new_request_id
from ._scoped import RequestScope
from .propagation import Propagator

__all__ = [
    "HEADER",
    "KEY",
    "client_trace_config",
    "get_request_id",
    "request_id_middleware",
    "setup",
]

HEADER: Final = "X-Request-ID"
"""The default header read from requests and written to responses."""

KEY: Final = "request_id"
"""The default context key the id is stored under."""

# Where the id is kept on the request object: a typed key on aiohttp 3.14+, which warns
# about string keys; a namespaced string before.
_STORAGE_KEY: Final[Any] = (
    web.RequestKey("request_id", str) if hasattr(web, "RequestKey") else "aiocontext.request_id"
)
# The propagator's headers to put on the response, when the middleware has one.
_REPLY_KEY: Final[Any] = (
    web.RequestKey("aiocontext_reply", dict[str, str])
    if hasattr(web, "RequestKey")
    else "aiocontext.reply"
)


def _is_context(value: object) -> TypeIs[Context[Any, Any]]:
    return isinstance(value, Context)


def _check(
    context: object, header: object, key: object, propagator: object = None
) -> Context[Any, Any]:
    if propagator is not None:
        check_propagator(propagator)
    if not _is_context(context):
        raise TypeError(
            f"context must be an aiocontext.Context, got {type(context).__name__} {context!r}"
        )
    if not isinstance(header, str) or not header:
        raise TypeError(f"header must be a non-empty str such as {HEADER!r}, got {header!r}")
    if not isinstance(key, str | Key):
        raise TypeError(f"key must be a str or an aiocontext.Key, got {type(key).__name__} {key!r}")
    return context


def get_request_id(request: web.BaseRequest) -> str:
    """Return the id the request-id middleware gave ``request``.

    For code that has the request but may run outside the request's context, such as an
    outer middleware or an ``on_response_prepare`` handler. Inside the handler and its
    sub-tasks, ``context["request_id"]`` gives the same value.

    Raises:
        LookupError: The middleware has not run for this request: add it with
            :func:`setup`, or put :func:`request_id_middleware` first in the middlewares.
    """
    try:
        value: str = request[_STORAGE_KEY]
    except KeyError:
        raise LookupError(
            f"{request!r} has no request id: the aiocontext request-id middleware has not run "
            f"for it. Add it with aiocontext.aiohttp.setup(app, context)"
        ) from None
    return value


def request_id_middleware(
    context: Context[Any, Any],
    *,
    header: str = HEADER,
    key: str | Key[str] = KEY,
    response_header: bool = True,
    propagator: Propagator | None = None,
) -> Middleware:
    """Return an aiohttp middleware that runs each request with its id in ``context``.

    The id is the request's ``header`` if it is valid, else a fresh UUID4. It is stored
    under ``key`` in a private copy of the current data for the rest of the middleware
    chain and the handler (sub-tasks inherit it by the context's policy), kept on the
    request for :func:`get_request_id`, and, with ``response_header``, set as ``header`` on
    the response and on any :class:`aiohttp.web.HTTPException` the handler raises (which is
    then re-raised).

    :func:`setup` adds this middleware and also attaches the context, and leaves the header
    to an ``on_response_prepare`` handler, which sets it once on every response, those the
    middleware does not see included: streamed ones (prepared inside the handler) and
    aiohttp's own 500 pages for unhandled exceptions. Used alone, the middleware needs the
    context attached to the server's loop (``ctx.attach()`` in an ``on_startup`` handler,
    or a loop made by :func:`aiocontext.loop_factory`).

    With a ``propagator`` (say ``Propagator({context: ["request_id", "tenant"]},
    codec=Baggage())``), the request's data also gets the valid values the propagator finds
    in the request's headers (each other context of the propagator gets them as its data for
    the request), the id comes from there when ``header`` has none, and with
    ``response_header`` the response carries them back, re-encoded (never the raw header),
    in headers the handler did not set.

    Args:
        context: The context to put the id in.
        header: The request and response header holding the id.
        key: The context key to store the id under: a ``str`` or a ``Key[str]``.
        response_header: Whether to set ``header`` on the response.
        propagator: Also read (and echo) these keys, in this format.

    Returns:
        A new-style (``@web.middleware``) middleware for ``web.Application(middlewares=...)``.

    Raises:
        TypeError: ``context`` is not a Context, ``header`` not a non-empty ``str``,
            ``key`` neither a ``str`` nor a ``Key``, or ``propagator`` not a Propagator.

    The middleware itself raises :class:`~aiocontext.TaskContextError` (and aiohttp answers
    500) when the context is not attached to the server's loop.

    Example:
        >>> from aiohttp import web
        >>> from aiocontext import Context
        >>> request_context = Context(name="request")
        >>> app = web.Application(middlewares=[request_id_middleware(request_context)])
    """
    context = _check(context, header, key, propagator)
    if propagator is not None:
        return _propagating_middleware(context, header, key, response_header, propagator)
    return _middleware(context, header, key, response_header)


def _middleware(context: Context[Any, Any], header: str, key: Any, set_header: bool) -> Middleware:
    """The middleware without a propagator (``set_header``: set the response header here)."""
    request_scope = RequestScope(context)
    over, leave = request_scope.over, request_scope.leave

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.getall(header, ())
        value = incoming[0] if len(incoming) == 1 and is_valid(incoming[0]) else new_request_id()
        request[_STORAGE_KEY] = value
        token = over(key, value)  # restore({**ctx.snapshot(), key: value}): one copy, no view
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if set_header:
                error.headers[header] = value
            raise
        finally:
            leave(token)
        if set_header and not response.prepared:
            response.headers[header] = value
        return response

    return request_id


def _propagating_middleware(
    context: Context[Any, Any], header: str, key: Any, set_header: bool, propagator: Propagator
) -> Middleware:
    """The middleware with a propagator: its keys too, in every context it names."""

    @web.middleware
    async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.getall(header, ())
        others = propagator.extract(request.headers)
        own = others.pop(context, {})
        value = incoming[0] if len(incoming) == 1 and is_valid(incoming[0]) else own.get(key)
        if not isinstance(value, str) or not is_valid(value):
            value = new_request_id()
        own[key] = value
        request[_STORAGE_KEY] = value
        with context.restore({**context.snapshot(), **own}), contextlib.ExitStack() as stack:
            for other, data in others.items():
                stack.enter_context(other.restore(data))
            reply = propagator.encode()
            request[_REPLY_KEY] = reply
            try:
                response = await handler(request)
            except web.HTTPException as error:
                if set_header:
                    _set_headers(error.headers, value, header, reply)
                raise
        if set_header and not response.prepared:
            _set_headers(response.headers, value, header, reply)
        return response

    return request_id


def _set_headers(headers: Any, value: str, header: str, reply: dict[str, str]) -> None:
    """Set the id header, and the propagator's headers the response does not have."""
    headers[header] = value
    for name, text in reply.items():
        headers.setdefault(name, text)


def setup(
    app: web.Application,
    context: Context[Any, Any],
    *,
    header: str = HEADER,
    key: str | Key[str] = KEY,
    response_header: bool = True,
    propagator: Propagator | None = None,
) -> None:
    """Give every request of ``app`` its id in ``context``.

    * Puts :func:`request_id_middleware` first in ``app.middlewares``, so every other
      middleware runs inside it and sees the id.
    * Attaches ``context`` to the serving loop in the first ``on_startup`` handler, before
      cleanup contexts and your startup handlers run, so tasks they start (background
      workers) inherit data. Tasks created before startup get the policy's root data when
      they first use the context; for data from the loop's very first task, make the loop
      with :func:`aiocontext.loop_factory` (``web.run_app(app, loop=loop_factory(ctx)())``).
      The context stays attached after cleanup.
    * With ``response_header``, sets the header on every response as it is prepared,
      including streamed responses and aiohttp's 500 page for an unhandled exception.
      (aiohttp logs that exception after the middleware has returned, so its "Error
      handling request" log line has no id; the access log can show the header with
      ``access_log_format='... %{X-Request-ID}o'``.)

    Call it before the app starts (aiohttp freezes the middlewares and signals then).

    Args:
        app: The application.
        context: The context to put the id in.
        header: The request and response header holding the id.
        key: The context key to store the id under: a ``str`` or a ``Key[str]``.
        response_header: Whether to set ``header`` on responses.
        propagator: Also read (and echo) these keys, as :func:`request_id_middleware` does.

    Raises:
        TypeError: As for :func:`request_id_middleware`.
        RuntimeError: The app has started already (raised by aiohttp).

    Example:
        >>> from aiohttp import web
        >>> from aiocontext import Context
        >>> request_context = Context(name="request")
        >>> app = web.Application()
        >>> setup(app, request_context)
        >>> len(app.middlewares), len(app.on_startup) >= 1
        (1, True)
    """
    context = _check(context, header, key, propagator)
    # With the header on, the on_response_prepare handler below sets it on every response
    # (handled, raised, streamed, aiohttp's 500), so the middleware does not: once each.
    if propagator is None:
        middleware = _middleware(context, header, key, set_header=False)
    else:
        middleware = _propagating_middleware(context, header, key, False, propagator)

    async def attach(app: web.Application) -> None:
        context.attach()

    app.middlewares.insert(0, middleware)
    app.on_startup.insert(0, attach)
    if response_header:
        app.on_response_prepare.append(_header_setter(header, propagator is not None))


def _header_setter(header: str, with_reply: bool) -> Any:
    """The ``on_response_prepare`` handler of :func:`setup`: the id header (and the
    propagator's, ``with_reply``) on each response of a request the middleware has seen."""
    if with_reply:

        async def set_headers(request: web.Request, response: web.StreamResponse) -> None:
            value = request.get(_STORAGE_KEY)
            if value is not None:
                _set_headers(response.headers, value, header, request.get(_REPLY_KEY, {}))

        return set_headers

    async def set_header(request: web.Request, response: web.StreamResponse) -> None:
        try:  # not request.get(): one call less on every response
            value = request[_STORAGE_KEY]
        except KeyError:
            return  # a request the middleware has not seen
        response.headers[header] = value

    return set_header


def client_trace_config(propagator: Propagator) -> aiohttp.TraceConfig:
    """Return a :class:`aiohttp.TraceConfig` that adds ``propagator``'s headers to requests.

    Give it to a session, ``aiohttp.ClientSession(trace_configs=[client_trace_config(p)])``,
    and every request it sends (redirects included) carries the context keys of the code
    sending it, encoded by the propagator (``X-Request-ID``, W3C ``baggage``, ...). A header
    the request already has, from the call or the session's default headers, is never
    replaced; code with no data sends none. It works with every aiohttp 3.9+.

    Args:
        propagator: Which keys travel, in which format.

    Returns:
        A frozen trace config.

    Raises:
        TypeError: ``propagator`` is not a Propagator.

    Example:
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> trace_config = client_trace_config(Propagator({request: ["request_id"]}))
        >>> len(trace_config.on_request_start)
        1
    """
    inject = check_propagator(propagator).inject

    async def on_request_start(
        session: aiohttp.ClientSession,
        trace_config_ctx: types.SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        inject(params.headers)

    trace_config = aiohttp.TraceConfig()
    trace_config.on_request_start.append(on_request_start)
    trace_config.freeze()
    return trace_config
