"""ASGI middleware that gives every request its request id in a :class:`~aiocontext.Context`.

:class:`RequestIdMiddleware` is pure ASGI: it imports no framework, so it wraps any ASGI 3
application (a bare ``async def app(scope, receive, send)``, Starlette, FastAPI, ...) under
any server that runs it on an asyncio or uvloop loop (tested with uvicorn). Install it with
``pip install "aiocontext[asgi]"``, which needs nothing beyond the core.

For each ``http`` and ``websocket`` connection it:

1. reads the request id from the request header (``x-request-id`` by default; the first one
   if the header is repeated, matched case-insensitively). An id that is missing or unsafe to
   echo (empty, longer than 128 characters, or not made of letters, digits and ``._:+=/-``
   starting with a letter or digit) is replaced by a new UUID4, never echoed;
2. runs the application with data of its own in the context, holding just the id
   (``context["request_id"]`` by default; see :meth:`Context.restore
   <aiocontext.Context.restore>`): the endpoint, every task it spawns (``create_task``,
   ``gather``, ``TaskGroup``, ``to_thread``, FastAPI dependencies and background tasks) and
   every log line they write see it, whatever the context's policy. Nothing another request
   left in the context leaks in: on the stdlib loop uvicorn may create a keep-alive
   connection's next request task from the previous one's ``contextvars``
   (CPython gh-140947), and under ``Share()`` every connection of a server would otherwise
   share one mapping. When the application returns or raises, the task's previous data
   comes back;
3. stores it in the connection's ``scope["state"]``, the per-request namespace Starlette and
   FastAPI expose as ``request.state`` / ``websocket.state`` (``request.state.request_id``);
4. sets it as the response header of the same name (in ``http.response.start``,
   ``websocket.accept`` and a WebSocket denial response), replacing any such header the
   application set.

With ``propagator=`` (a :class:`~aiocontext.propagation.Propagator`, say for W3C
``baggage``), the request's data also holds the valid values of the propagator's keys found
in the request's headers (each other context of the propagator gets them as its data), the
id comes from there when the id header has none, and the response carries them back,
re-encoded, in headers the application did not set.

``lifespan`` and other scope types go to the application untouched.

The context must be attached to the loop the server runs the application on, for the tasks
the application spawns to inherit the id, and the middleware sees to it: the first time it is
called on a loop (at startup, when the server runs the lifespan protocol) it calls
``context.attach(loop)``. As ``attach()`` does, that also gives the calling task (usually the
server's lifespan task) empty data of its own; requests never depend on it, since each gets
its own data. Later calls on that loop cost one identity check; a server running several
loops (threads) gets each attached on first use. Only that first call checks: after
``context.detach(loop)`` the middleware does not attach the context again, and the tasks the
application spawns on that loop have no data (using the context there raises
:class:`~aiocontext.TaskContextError`).

To have the context attached before the server creates any task instead, so that code the
server runs outside the middleware (outer middleware, a lifespan it does not see) can use it
too, make the loop with
:func:`aiocontext.loop_factory`. uvicorn takes a loop factory as ``--loop module:function``
(``uvicorn.Config(loop="module:function")``): with ``make_loop = loop_factory(request,
base=uvloop.new_event_loop)`` in ``app.py``, run ``uvicorn app:app --loop app:make_loop``. Or
run ``asyncio.run(server.serve(), loop_factory=loop_factory(request))`` yourself, or call
``request.attach()`` first thing in the application's lifespan startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final, TypeAlias

from ._context import Context
from ._errors import EventLoopError
from ._integration import check_propagator, header_pairs
from ._key import Key
from ._request_id import is_valid, new_request_id
from ._scoped import RequestScope
from .propagation import Propagator

__all__ = ["ASGIApp", "Message", "Receive", "RequestIdMiddleware", "Scope", "Send"]

# The ASGI 3 types, spelled as Starlette spells them (``starlette.types``), so that the
# middleware is a valid ``app.add_middleware(...)`` argument and wraps any such application.
Scope: TypeAlias = MutableMapping[str, Any]
"""The connection scope: ``type`` (``"http"``, ``"websocket"``, ``"lifespan"``), ``headers``, ..."""
Message: TypeAlias = MutableMapping[str, Any]
"""An ASGI event or response message: ``type`` and its fields."""
Receive: TypeAlias = Callable[[], Awaitable[Message]]
"""The ``receive`` callable: awaits the next event from the client."""
Send: TypeAlias = Callable[[Message], Awaitable[None]]
"""The ``send`` callable: sends one message to the client."""
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``async def app(scope, receive, send) -> None``."""

# The messages that carry a response's headers.
_RESPONSE_STARTS: Final = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)
# RFC 9110 token characters: what a header name is made of.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _no_loop() -> asyncio.AbstractEventLoop | None:
    """The last loop seen, before the first call: none."""
    return None


def _header_name(header: object) -> bytes:
    """``header`` as ASGI spells header names (lowercase bytes), if it is a valid one."""
    if not isinstance(header, str) or _HEADER_NAME.match(header) is None:
        raise ValueError(
            f"header must be an HTTP header name such as 'x-request-id' (letters, digits "
            f"and !#$%&'*+-.^_`|~ only), got {header!r}"
        )
    return header.lower().encode("ascii")


class RequestIdMiddleware:
    """ASGI middleware giving each request its id in ``context`` while the app handles it.

    See the module documentation for the whole behaviour. With Starlette and FastAPI::

        app.add_middleware(RequestIdMiddleware, context=request)

    anywhere else, wrap the application: ``app = RequestIdMiddleware(app, request)``. Wrapping
    the whole Starlette/FastAPI application that way (rather than ``add_middleware``, which
    puts the middleware inside Starlette's error handling) also puts the header on the 500
    responses of unhandled exceptions.

    The application starts with only the request id in the context (values bound outside
    the middleware are not visible inside it): put other middleware that writes to the same
    context inside this one.

    Args:
        app: The ASGI application to wrap.
        context: Where to bind the id; it is attached to the server's loop on first use.
        header: The request and response header carrying the id (case-insensitive).
        key: The key to bind in ``context``: a string, or a ``Key[str]``. The id is also
            stored in ``scope["state"]`` under this name (a ``Key``'s ``name``), so it is
            ``request.state.request_id`` by default.
        response_header: Whether to set ``header`` on the response.
        propagator: Also read these keys from the request's headers (and echo them in the
            response), in the propagator's format.

    Raises:
        TypeError: ``app`` is not callable, ``context`` is not a Context, ``key`` is
            neither a string nor a Key, or ``propagator`` is not a Propagator.
        ValueError: ``header`` is not a valid HTTP header name.

    Example:
        >>> import asyncio
        >>> from aiocontext import Context
        >>> from aiocontext.asgi import RequestIdMiddleware
        >>> request = Context(name="request")
        >>> async def app(scope, receive, send):
        ...     body = f"handled {request['request_id']}".encode()
        ...     await send({"type": "http.response.start", "status": 200, "headers": []})
        ...     await send({"type": "http.response.body", "body": body})
        >>> sent = []
        >>> async def send(message):
        ...     sent.append(message)
        >>> async def receive():
        ...     return {"type": "http.request", "body": b""}
        >>> scope = {"type": "http", "headers": [(b"x-request-id", b"req-42")]}
        >>> asyncio.run(RequestIdMiddleware(app, request)(scope, receive, send))
        >>> sent[0]["headers"], sent[1]["body"]
        ([(b'x-request-id', b'req-42')], b'handled req-42')
    """

    __slots__ = (
        "_app",
        "_context",
        "_header",
        "_key",
        "_last_loop",
        "_propagator",
        "_response_header",
        "_scope",
        "_state_name",
    )

    def __init__(
        self,
        app: ASGIApp,
        context: Context[Any, Any],
        *,
        header: str = "x-request-id",
        key: str | Key[str] = "request_id",
        response_header: bool = True,
        propagator: Propagator | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(
                f"app must be an ASGI application, an async callable app(scope, receive, send), "
                f"got {type(app).__name__} {app!r}"
            )
        if not isinstance(context, Context):
            raise TypeError(
                f"context must be an aiocontext.Context such as Context(name='request'), "
                f"got {type(context).__name__} {context!r}"
            )
        if not isinstance(key, (str, Key)):
            raise TypeError(
                f"key must be a str or an aiocontext.Key[str], such as 'request_id', "
                f"got {type(key).__name__} {key!r}"
            )
        self._propagator = None if propagator is None else check_propagator(propagator)
        self._app = app
        self._context = context
        self._scope = RequestScope(context)
        self._header = _header_name(header)
        self._key = key
        self._state_name = key if isinstance(key, str) else key.name
        self._response_header = bool(response_header)
        self._last_loop: Callable[[], asyncio.AbstractEventLoop | None] = _no_loop

    def __repr__(self) -> str:
        return (
            f"RequestIdMiddleware(app={self._app!r}, context={self._context!r}, "
            f"header={self._header.decode('ascii')!r}, key={self._key!r}, "
            f"response_header={self._response_header!r}"
            + ("" if self._propagator is None else f", propagator={self._propagator!r}")
            + ")"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection: run the app with the request id as its own data.

        Raises:
            EventLoopError: The server does not run the application on an asyncio loop.
            Exception: Whatever the application raised (the task's data is put back first).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise EventLoopError(
                "RequestIdMiddleware needs an asyncio event loop (asyncio or uvloop): run the "
                "server on asyncio, e.g. uvicorn, or hypercorn --worker-class asyncio"
            ) from None
        if self._last_loop() is not loop:
            self._attach(loop)
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if self._propagator is not None:
            await self._call_propagating(self._propagator, scope, receive, send, headers)
            return
        request_id = self._incoming(headers)
        scope = self._with_state(scope, request_id)
        if self._response_header:
            send = _id_sender(send, (self._header, request_id.encode("latin-1")))
        # restore({key: request_id}) at the floor's cost: the dict is ours, so it is held as
        # it is (one var.set under Copy()), with no view to return.
        request_scope = self._scope
        token = request_scope.enter({self._key: request_id})
        try:
            await self._app(scope, receive, send)
        finally:
            request_scope.leave(token)

    async def _call_propagating(
        self,
        propagator: Propagator,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Iterable[tuple[bytes, bytes]],
    ) -> None:
        """``__call__`` with a propagator: its keys too, in every context it names."""
        key = self._key
        others = propagator.extract(header_pairs(headers))
        own = others.pop(self._context, {})
        request_id = self._incoming(headers, own.get(key))
        own[key] = request_id
        scope = self._with_state(scope, request_id)
        with self._context.restore(own), contextlib.ExitStack() as stack:
            for other, data in others.items():
                stack.enter_context(other.restore(data))
            if self._response_header:
                send = self._sender(send, request_id, propagator.encode())
            await self._app(scope, receive, send)

    def _with_state(self, scope: Scope, request_id: str) -> Scope:
        """``scope`` with the id in its ``state``: the request's own namespace (a per-request
        copy of the lifespan state, which servers put in every scope), shared on purpose. A
        scope without one is copied first: ASGI has a middleware changing the scope give the
        app a copy."""
        state = scope.get("state")
        if state is None:
            scope = {**scope, "state": {self._state_name: request_id}}
        else:
            state[self._state_name] = request_id
        return scope

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the context to ``loop`` unless it is; remember ``loop`` as the last seen."""
        if not self._context.is_attached(loop):
            self._context.attach(loop)
        self._last_loop = weakref.ref(loop)

    def _incoming(self, headers: Iterable[tuple[bytes, bytes]], fallback: object = None) -> str:
        """The request's id: the first ``header`` if it is valid, else ``fallback`` if it is
        (the propagator's value), else a new one."""
        name = self._header
        for header, value in headers:
            if header.lower() == name:
                request_id = value.decode("latin-1")
                if is_valid(request_id):
                    return request_id
                break
        if isinstance(fallback, str) and is_valid(fallback):
            return fallback
        return new_request_id()

    def _sender(self, send: Send, request_id: str, reply: dict[str, str]) -> Send:
        """Wrap ``send`` to set the id header (and ``reply``'s headers the application did not
        set) on the response's first message."""
        name = self._header
        ours = (name, request_id.encode("latin-1"))
        extra = [
            (header.lower().encode("latin-1"), value.encode("latin-1"))
            for header, value in reply.items()
            if header.lower().encode("latin-1") != name
        ]

        async def send_with_request_id(message: Message) -> None:
            if message["type"] in _RESPONSE_STARTS:
                headers = [item for item in message.get("headers", ()) if item[0].lower() != name]
                present = {item[0].lower() for item in headers}
                headers.append(ours)
                headers.extend(item for item in extra if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        return send_with_request_id


def _id_sender(send: Send, ours: tuple[bytes, bytes]) -> Send:
    """Wrap ``send`` to set the header ``ours`` on the response's first message, replacing
    any of that name the application set (its message gets a new header list; the
    application's own list is left as it was)."""
    name = ours[0]

    async def send_with_request_id(message: Message) -> None:
        if message["type"] in _RESPONSE_STARTS:
            headers = [item for item in message.get("headers", ()) if item[0].lower() != name]
            headers.append(ours)
            message["headers"] = headers
        await send(message)

    return send_with_request_id
