"""gRPC integration (``grpc.aio``): every RPC gets its own data; chosen keys travel in metadata.

Install it with ``pip install "aiocontext[grpc]"``. On the server, put a
:class:`ServerInterceptor` first in the interceptors::

    server = grpc.aio.server(interceptors=[aiocontext.grpc.ServerInterceptor(request)])

and every RPC (unary-unary, unary-stream, stream-unary and stream-stream, async or sync
handlers) runs with data of its own in the context, as the ASGI and aiohttp middlewares give
each HTTP request: just the request id, read from the ``x-request-id`` metadata (an id that
is missing, repeated or unsafe to echo is replaced by a fresh UUID4, never echoed), plus,
with ``propagator=``, the valid values of the propagator's keys found in the metadata. The
handler, every task it spawns and every log line they write see it; nothing another RPC
wrote leaks in, whatever the context's policy, also for concurrent RPCs on one channel.

On the client, give the channel the interceptors of :func:`client_interceptors`::

    interceptors = aiocontext.grpc.client_interceptors(propagator)
    channel = grpc.aio.insecure_channel(target, interceptors=interceptors)

and every call, of all four kinds, carries the propagator's keys, encoded from the data of
the code making the call, as metadata. Metadata the call already has is never replaced.

Metadata keys are lowercase on the wire (gRPC requires it): header names are lowercased on
the way out, and matched lowercase on the way in. Keys ending in ``-bin`` carry bytes in
gRPC: a propagator header with such a name is sent UTF-8 encoded, and read back decoded (a
value that is not UTF-8 is dropped). All other metadata, binary or not, is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeAlias

import grpc
import grpc.aio

from ._context import Context
from ._integration import check_propagator
from ._key import Key
from ._request_id import is_valid, new_request_id
from .propagation import Propagator

__all__ = ["ServerInterceptor", "client_interceptors"]

_Data: TypeAlias = Mapping[Context[Any, Any], Mapping[Any, Any]]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Metadatum: TypeAlias = tuple[object, object]

# For each (request_streaming, response_streaming): the handler's behaviour attribute and
# the function making a handler of that kind.
_KINDS: Final[dict[tuple[bool, bool], tuple[str, Callable[..., _Handler]]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _no_loop() -> asyncio.AbstractEventLoop | None:
    """The last loop seen, before the first call: none."""
    return None


def _metadata_key(name: object) -> str:
    """``name`` as gRPC spells metadata keys (lowercase), if it is a valid header name."""
    if not isinstance(name, str) or not name or not name.isascii():
        raise ValueError(f"metadata must be a metadata key such as 'x-request-id', got {name!r}")
    key = name.lower()
    if not all(char.isalnum() or char in "-_." for char in key):
        raise ValueError(
            f"metadata must be a metadata key such as 'x-request-id' (letters, digits and "
            f"-_. only), got {name!r}"
        )
    return key


def _carrier(metadata: Iterable[_Metadatum] | None) -> dict[str, str]:
    """gRPC metadata as a :data:`~aiocontext.propagation.Carrier`: text values by lowercase
    key, repeated keys joined with commas.

    A ``-bin`` key's bytes are decoded as UTF-8 (dropped if they are not); any other value
    that is not text, and any key that is not a ``str``, is dropped. (A repeated
    ``x-request-id`` so becomes one value with a comma, which is not a valid id.)

    Example:
        >>> _carrier([("x-request-id", "r-1"), ("tenant-bin", b"acme"), ("raw-bin", b"\\xff")])
        {'x-request-id': 'r-1', 'tenant-bin': 'acme'}
    """
    found: dict[str, str] = {}
    for name, value in metadata or ():
        if not isinstance(name, str):
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if not isinstance(value, str):
            continue
        key = name.lower()
        found[key] = f"{found[key]},{value}" if key in found else value
    return found


def _enter(stack: contextlib.ExitStack, data: _Data) -> None:
    """Make each context's data in ``data`` the current data until ``stack`` closes."""
    for context, values in data.items():
        stack.enter_context(context.restore(values))


def _snapshots(data: _Data) -> _Data:
    """The current data of each context of ``data`` (what a step left, for the next)."""
    return {context: context.snapshot() for context in data}


def _scoped(behavior: Callable[..., Any], streaming: bool, data: _Data) -> Callable[..., Any]:
    """``behavior`` (a handler's function), running with ``data`` as its contexts' data.

    An async generator becomes a coroutine writing each response, so that the data's scope
    opens and closes in the RPC's own task, even if the RPC ends early. A sync generator
    (run by gRPC in its thread pool, each step in any thread) gets the data for each step.
    """
    if inspect.isasyncgenfunction(behavior):

        async def write_responses(request: Any, servicer_context: Any) -> None:
            with contextlib.ExitStack() as stack:
                _enter(stack, data)
                async with contextlib.aclosing(behavior(request, servicer_context)) as responses:
                    async for response in responses:
                        await servicer_context.write(response)

        return write_responses
    if inspect.iscoroutinefunction(behavior):

        async def run_coroutine(request: Any, servicer_context: Any) -> Any:
            with contextlib.ExitStack() as stack:
                _enter(stack, data)
                return await behavior(request, servicer_context)

        return run_coroutine
    if streaming:
        return _stepped(behavior, data)

    def run_in_thread(request: Any, servicer_context: Any) -> Any:
        with contextlib.ExitStack() as stack:
            _enter(stack, data)
            return behavior(request, servicer_context)

    return run_in_thread


def _stepped(behavior: Callable[..., Any], data: _Data) -> Callable[..., Iterator[Any]]:
    """A sync streaming ``behavior`` whose every step (and its close) runs with the data the
    previous step left, starting from ``data``."""

    def responses(request: Any, servicer_context: Any) -> Iterator[Any]:
        state = data

        def step(action: Callable[[], Any]) -> Any:
            nonlocal state
            with contextlib.ExitStack() as stack:
                _enter(stack, state)
                try:
                    return action()
                finally:
                    state = _snapshots(state)

        iterator: Iterator[Any] = step(lambda: iter(behavior(request, servicer_context)))
        try:
            while True:
                try:
                    response = step(lambda: next(iterator))
                except StopIteration:
                    return
                yield response
        finally:
            close: Callable[[], object] | None = getattr(iterator, "close", None)
            if close is not None:
                step(close)

    return responses


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """A ``grpc.aio`` server interceptor giving each RPC its own data, with its request id.

    See the module documentation for the whole behaviour. Put it first in the server's
    interceptors: interceptors before it do not see the RPC's data (those after it, and the
    handler, do). The handler starts with only the request id (and the propagator's values)
    in the context; when it returns or raises, the task's previous data comes back.

    The first RPC on a loop attaches the context to it (unless it is), as the ASGI middleware
    does, so that ``DeepCopy()`` and custom policies apply to the tasks handlers spawn.

    Args:
        context: Where to put the id.
        metadata: The metadata key carrying the id (case-insensitive).
        key: The key to bind in ``context``: a string, or a ``Key[str]``.
        propagator: Also read these keys from the metadata, in the propagator's format.

    Raises:
        TypeError: ``context`` is not a Context, ``key`` neither a string nor a Key, or
            ``propagator`` not a Propagator.
        ValueError: ``metadata`` is not a valid metadata key.

    Example:
        >>> import asyncio, types, grpc
        >>> from aiocontext import Context
        >>> request = Context(name="request")
        >>> async def say_hello(message, servicer_context):
        ...     return f"hello from {request['request_id']}".encode()
        >>> async def find_handler(details):
        ...     return grpc.unary_unary_rpc_method_handler(say_hello)
        >>> async def call():
        ...     details = types.SimpleNamespace(
        ...         method="/demo.Greeter/SayHello",
        ...         invocation_metadata=(("x-request-id", "r-42"),),
        ...     )
        ...     handler = await ServerInterceptor(request).intercept_service(find_handler, details)
        ...     return await handler.unary_unary(b"", None)
        >>> asyncio.run(call())
        b'hello from r-42'
    """

    __slots__ = ("_context", "_key", "_last_loop", "_metadata", "_propagator")

    def __init__(
        self,
        context: Context[Any, Any],
        *,
        metadata: str = "x-request-id",
        key: str | Key[str] = "request_id",
        propagator: Propagator | None = None,
    ) -> None:
        if not isinstance(context, Context):
            raise TypeError(
                f"context must be an aiocontext.Context such as Context(name='request'), "
                f"got {type(context).__name__} {context!r}"
            )
        if not isinstance(key, str | Key):
            raise TypeError(
                f"key must be a str or an aiocontext.Key[str], such as 'request_id', "
                f"got {type(key).__name__} {key!r}"
            )
        self._propagator = None if propagator is None else check_propagator(propagator)
        self._context = context
        self._metadata = _metadata_key(metadata)
        self._key = key
        self._last_loop: Callable[[], asyncio.AbstractEventLoop | None] = _no_loop

    def __repr__(self) -> str:
        return (
            f"ServerInterceptor(context={self._context!r}, metadata={self._metadata!r}, "
            f"key={self._key!r}"
            + ("" if self._propagator is None else f", propagator={self._propagator!r}")
            + ")"
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        """Return the RPC's handler, its function wrapped to run with the RPC's data.

        The data is read from the metadata now; the handler's function gets it when gRPC
        calls it. An RPC no handler serves (``None``) stays unserved.
        """
        loop = asyncio.get_running_loop()
        if self._last_loop() is not loop:
            if not self._context.is_attached(loop):
                self._context.attach(loop)
            self._last_loop = weakref.ref(loop)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        name, make = _KINDS[bool(handler.request_streaming), bool(handler.response_streaming)]
        behavior = getattr(handler, name)
        data = self._data(_carrier(handler_call_details.invocation_metadata))
        return make(
            _scoped(behavior, bool(handler.response_streaming), data),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _data(self, metadata: dict[str, str]) -> _Data:
        """The RPC's data for each context: the id, and the propagator's valid values."""
        propagator = self._propagator
        others = {} if propagator is None else propagator.extract(metadata)
        own = others.pop(self._context, {})
        request_id = metadata.get(self._metadata)
        if request_id is None or not is_valid(request_id):
            fallback = own.get(self._key)
            request_id = fallback if isinstance(fallback, str) and is_valid(fallback) else None
        own[self._key] = new_request_id() if request_id is None else request_id
        return {self._context: own, **others}


class _Injecting:
    """What the four client interceptors share: the propagator, and adding its metadata."""

    __slots__ = ("_propagator",)

    def __init__(self, propagator: Propagator) -> None:
        self._propagator = propagator

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._propagator!r}>"

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """``details`` with the propagator's metadata added (a copy; the call's is kept)."""
        headers = self._propagator.encode()
        if not headers:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        present = {name.lower() for name, _ in metadata}
        for name, text in headers.items():
            key = name.lower()
            if key not in present:
                metadata.add(key, text.encode("utf-8") if key.endswith("-bin") else text)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_Injecting, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Make the unary-unary call with the propagator's metadata added."""
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_Injecting, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Make the unary-stream call with the propagator's metadata added."""
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_Injecting, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        """Make the stream-unary call with the propagator's metadata added."""
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_Injecting, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        """Make the stream-stream call with the propagator's metadata added."""
        return await continuation(self._details(client_call_details), request_iterator)


def client_interceptors(propagator: Propagator) -> list[grpc.aio.ClientInterceptor]:
    """Return the ``grpc.aio`` client interceptors sending ``propagator``'s keys as metadata.

    One interceptor per kind of call (a ``grpc.aio`` channel files each interceptor under the
    first kind it implements only): give all four to a channel,
    ``grpc.aio.insecure_channel(target, interceptors=client_interceptors(propagator))``
    (add your own to the list). Every call of every kind then carries the keys' values of
    the code making the call, encoded by the propagator, with lowercase keys (a ``-bin``
    key's value UTF-8 encoded). A key the call's metadata already has is never replaced;
    code with no data sends none.

    Args:
        propagator: Which keys travel, in which format.

    Returns:
        A new list of four interceptors: unary-unary, unary-stream, stream-unary and
        stream-stream.

    Raises:
        TypeError: ``propagator`` is not a Propagator. A call raises ``TypeError`` when a
            value is not a ``str`` and its key has no codec (see
            :meth:`Propagator.encode <aiocontext.propagation.Propagator.encode>`).

    Example:
        >>> import asyncio, grpc.aio
        >>> from aiocontext import Context
        >>> from aiocontext.propagation import Propagator
        >>> request = Context(name="request")
        >>> unary_unary, *others = client_interceptors(Propagator({request: ["request_id"]}))
        >>> async def send(details, message):
        ...     return list(details.metadata)
        >>> async def call():
        ...     details = grpc.aio.ClientCallDetails("/demo.Greeter/SayHello", None,
        ...                                          grpc.aio.Metadata(), None, None)
        ...     with request.restore({"request_id": "r-42"}):
        ...         return await unary_unary.intercept_unary_unary(send, details, b"")
        >>> asyncio.run(call())
        [('x-request-id', 'r-42')]
    """
    check_propagator(propagator)
    return [
        _UnaryUnary(propagator),
        _UnaryStream(propagator),
        _StreamUnary(propagator),
        _StreamStream(propagator),
    ]
