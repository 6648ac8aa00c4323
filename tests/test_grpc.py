"""``aiocontext.grpc``: the interceptors, against a real ``grpc.aio`` server on 127.0.0.1.

The server serves protobuf-free methods (bytes in, JSON bytes out, through grpc's generic
handlers) of all four kinds, with async handlers (coroutines and async generators) and sync
ones (run by gRPC in its thread pool). Each handler reports what it saw of the context: the
request id, the tenant, whether another RPC's write reached it, and what a child task saw.
A real client channel with the interceptors of :func:`client_interceptors` sends RPCS calls over one channel
from CONCURRENCY workers (bounded), each from data of its own, under every policy and on
both loops; every response must carry its own call's values and nothing else.

The direct tests call the interceptors with hand-built call details for the edge cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import types
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from typing import Any, Final, TypeAlias, cast

import pytest

try:
    import grpc
    import grpc.aio
except ImportError:  # grpcio has no wheel for free-threaded CPython (.ci/run leaves it out there)
    pytest.skip("grpcio is not installed", allow_module_level=True)

from aiocontext import (
    ChainMap,
    Context,
    ContextRegistry,
    Copy,
    DeepCopy,
    PropagationPolicy,
    Share,
)
from aiocontext.grpc import ServerInterceptor, client_interceptors
from aiocontext.propagation import Baggage, Propagator, RequestIdHeader

#: Calls of the load test, and how many are in flight at once (over one channel).
RPCS: Final = 1_200
CONCURRENCY: Final = 50
#: Responses per streaming call, and requests per request stream.
CHUNKS: Final = 3
TIMEOUT: Final = 60  # seconds: a bound on every server test, never reached

SERVICE: Final = "demo.Echo"
METHODS: Final = (
    "UnaryUnary",
    "UnaryStream",
    "UnaryStreamWriter",
    "StreamUnary",
    "StreamStream",
    "SyncUnaryUnary",
    "SyncUnaryStream",
    "SyncStreamUnary",
)
POLICIES: Final[dict[str, PropagationPolicy]] = {
    "Copy": Copy(),
    "ChainMap": ChainMap(),
    "DeepCopy": DeepCopy(),
    "Share": Share(),
}


def new_context(policy: PropagationPolicy | None = None) -> Context[str, Any]:
    """A context of its own for one test, outside the default registry."""
    return Context(policy or Copy(), name="grpc", registry=ContextRegistry())


def is_uuid4(value: object) -> bool:
    """Whether ``value`` is a UUID4 in canonical form, as the interceptor makes them."""
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return False
    return 4 == parsed.version and str(parsed) == value


# -- the service ---------------------------------------------------------------------------


class Echo:
    """The handlers: each reads the context, writes to it, and reports what it saw."""

    def __init__(self, ctx: Context[str, Any]) -> None:
        self.ctx = ctx

    def seen(self, stage: str) -> dict[str, Any]:
        """What the current code sees, then a write of its own (that must reach no one)."""
        ctx = self.ctx
        seen = {
            "stage": stage,
            "request_id": ctx.get("request_id"),
            "tenant": ctx.get("tenant"),
            "leak": ctx.get("written_by"),
        }
        ctx["written_by"] = f"{stage}:{ctx.get('request_id')}"
        return seen

    async def seen_with_child(self, stage: str) -> list[dict[str, Any]]:
        """What this code and a child task it spawns see, across an ``await``."""
        await asyncio.sleep(0)
        first = self.seen(stage)
        del self.ctx["written_by"]

        async def child() -> dict[str, Any]:
            await asyncio.sleep(0)
            return self.seen(f"{stage}/child")

        return [first, await asyncio.create_task(child())]

    async def unary_unary(self, request: bytes, context: object) -> bytes:
        return json.dumps(await self.seen_with_child("unary")).encode()

    async def unary_stream(self, request: bytes, context: object) -> AsyncIterator[bytes]:
        for n in range(CHUNKS):
            yield json.dumps(await self.seen_with_child(f"chunk{n}")).encode()

    async def unary_stream_writer(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        for n in range(CHUNKS):
            await context.write(json.dumps(await self.seen_with_child(f"write{n}")).encode())

    async def stream_unary(self, requests: AsyncIterator[bytes], context: object) -> bytes:
        seen = [item async for _ in requests for item in await self.seen_with_child("in")]
        return json.dumps(seen).encode()

    async def stream_stream(
        self, requests: AsyncIterator[bytes], context: object
    ) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield json.dumps(await self.seen_with_child("echo")).encode()

    def sync_unary_unary(self, request: bytes, context: object) -> bytes:
        seen = self.seen("sync")
        del self.ctx["written_by"]
        return json.dumps([seen, seen]).encode()

    def sync_unary_stream(self, request: bytes, context: object) -> Iterator[bytes]:
        for n in range(CHUNKS):
            seen = self.seen(f"sync{n}")
            del self.ctx["written_by"]
            yield json.dumps([seen, seen]).encode()

    def sync_stream_unary(self, requests: Iterator[bytes], context: object) -> bytes:
        seen: list[dict[str, Any]] = []
        for _ in requests:
            seen.extend([self.seen("sync-in")] * 2)  # two reports, as the async handlers
            del self.ctx["written_by"]
        return json.dumps(seen).encode()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service's methods, bytes in and out (no serializers: no protobuf)."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "UnaryUnary": grpc.unary_unary_rpc_method_handler(self.unary_unary),
                "UnaryStream": grpc.unary_stream_rpc_method_handler(self.unary_stream),
                "UnaryStreamWriter": grpc.unary_stream_rpc_method_handler(self.unary_stream_writer),
                "StreamUnary": grpc.stream_unary_rpc_method_handler(self.stream_unary),
                "StreamStream": grpc.stream_stream_rpc_method_handler(self.stream_stream),
                "SyncUnaryUnary": grpc.unary_unary_rpc_method_handler(self.sync_unary_unary),
                "SyncUnaryStream": grpc.unary_stream_rpc_method_handler(self.sync_unary_stream),
                "SyncStreamUnary": grpc.stream_unary_rpc_method_handler(self.sync_stream_unary),
            },
        )


@contextlib.asynccontextmanager
async def serving(
    ctx: Context[str, Any], interceptor: ServerInterceptor | None = None
) -> AsyncGenerator[str]:
    """Serve :class:`Echo` on 127.0.0.1 (a free port) in the running loop; yield the target."""
    server = grpc.aio.server(interceptors=[interceptor or ServerInterceptor(ctx)])
    server.add_generic_rpc_handlers([Echo(ctx).generic_handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def call(
    channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str | bytes], ...] = ()
) -> list[dict[str, Any]]:
    """Call ``method`` of the service once; return everything its handlers reported."""
    path = f"/{SERVICE}/{method}"
    replies: list[bytes]
    if method in ("UnaryUnary", "SyncUnaryUnary"):
        unary_unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
        replies = [await unary_unary(b"x", metadata=metadata)]
    elif method in ("UnaryStream", "UnaryStreamWriter", "SyncUnaryStream"):
        unary_stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(path)
        replies = [reply async for reply in unary_stream(b"x", metadata=metadata)]
    elif method in ("StreamUnary", "SyncStreamUnary"):
        stream_unary: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(path)
        replies = [await stream_unary(iter([b"a"] * CHUNKS), metadata=metadata)]
    else:
        stream_stream: grpc.aio.StreamStreamMultiCallable[bytes, bytes]
        stream_stream = channel.stream_stream(path)
        replies = [reply async for reply in stream_stream(iter([b"a"] * CHUNKS), metadata=metadata)]
    return [item for reply in replies for item in json.loads(reply)]


def expected_count(method: str) -> int:
    """How many reports one call of ``method`` gives (a handler's and its child's each)."""
    return 2 if method in ("UnaryUnary", "SyncUnaryUnary") else 2 * CHUNKS


# -- through a real server ------------------------------------------------------------------


class TestServerInterceptorUnderLoad:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("policy", sorted(POLICIES))
    async def test_concurrent_rpcs_on_one_channel_never_see_each_others_data(
        self, policy: str
    ) -> None:
        """RPCS calls of all eight handler kinds over one channel, CONCURRENCY at once, each
        made from data of its own: every handler, child task and response chunk sees its
        call's id and tenant (sent by the client interceptor) and no other call's write (under
        ``Share()``, a child's write reaches its own RPC's handler, by that policy's contract)."""
        ctx = new_context(POLICIES[policy])
        shared = "Share" == policy
        propagator = Propagator({ctx: ["request_id", "tenant"]}, codec=Baggage())
        interceptor = ServerInterceptor(ctx, propagator=propagator)
        limit = asyncio.Semaphore(CONCURRENCY)
        wrong: list[tuple[int, dict[str, Any]]] = []
        counts: list[int] = []

        async def one(channel: grpc.aio.Channel, n: int) -> None:
            method = METHODS[n % len(METHODS)]
            async with limit:
                with ctx.restore({"request_id": f"req-{n}", "tenant": f"t{n} é"}):
                    seen = await call(channel, method)
            counts.append(len(seen) - expected_count(method))
            for item in seen:
                leak = item["leak"]
                # Under Share() a child's write reaches its parent (one mapping per RPC).
                own_write = leak is None or (shared and leak.endswith(f":req-{n}"))
                if (item["request_id"], item["tenant"], own_write) != (f"req-{n}", f"t{n} é", True):
                    wrong.append((n, item))

        async with asyncio.timeout(TIMEOUT), serving(ctx, interceptor) as target:
            interceptors = client_interceptors(propagator)
            async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
                await asyncio.gather(*(one(channel, n) for n in range(RPCS)))
        assert ([], [0] * RPCS) == (wrong, counts)

    @pytest.mark.asyncio
    async def test_hostile_metadata_gets_a_fresh_id_never_echoed(self) -> None:
        """An id that is unsafe to echo, too long, repeated or not UTF-8 in a ``-bin`` key is
        replaced by a fresh UUID4; hostile baggage is dropped; other metadata is ignored."""
        ctx = new_context()
        propagator = Propagator({ctx: ["tenant"]}, codec=Baggage())
        hostile: list[tuple[tuple[str, str | bytes], ...]] = [
            (("x-request-id", "has space"),),
            (("x-request-id", "x" * 129),),
            (("x-request-id", "../etc"),),
            (("x-request-id", "a"), ("x-request-id", "b")),
            (("x-request-id", ""),),
            (("baggage", "tenant=%0Aforged"), ("other-bin", b"\xff\xfe")),
            (),
        ]
        interceptor = ServerInterceptor(ctx, propagator=propagator)
        async with (
            asyncio.timeout(TIMEOUT),
            serving(ctx, interceptor) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            results = [await call(channel, "UnaryUnary", metadata) for metadata in hostile]
        ids = [item["request_id"] for seen in results for item in seen]
        assert all(is_uuid4(value) for value in ids), ids
        assert len(hostile) == len(set(ids))  # one fresh id per call, shared with its child
        assert [None] * len(ids) == [item["tenant"] for seen in results for item in seen]

    @pytest.mark.asyncio
    async def test_valid_id_is_kept_and_an_id_in_baggage_is_the_fallback(self) -> None:
        """A valid ``x-request-id`` is the RPC's id; without one, a valid id from the
        propagator's baggage is; an invalid one there is replaced."""
        ctx = new_context()
        propagator = Propagator({ctx: ["request_id"]}, codec=Baggage())
        interceptor = ServerInterceptor(ctx, propagator=propagator)
        cases: list[tuple[tuple[str, str | bytes], ...]] = [
            (("x-request-id", "r-1"), ("baggage", "request_id=r-2")),
            (("baggage", "request_id=r-3"),),
            (("baggage", "request_id=bad%20id"),),
        ]
        async with (
            asyncio.timeout(TIMEOUT),
            serving(ctx, interceptor) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            results = [(await call(channel, "UnaryUnary", case))[0] for case in cases]
        ids = [seen["request_id"] for seen in results]
        assert ["r-1", "r-3"] == ids[:2]
        assert is_uuid4(ids[2])

    @pytest.mark.asyncio
    async def test_binary_metadata_key_round_trips_utf8(self) -> None:
        """With the id in a ``-bin`` key, the client sends it as UTF-8 bytes and the server
        reads it back; the key is lowercased on the way out."""
        ctx = new_context()
        propagator = Propagator({ctx: ["request_id"]}, codec=RequestIdHeader("X-Request-ID-bin"))
        interceptor = ServerInterceptor(ctx, metadata="X-Request-ID-bin")
        async with asyncio.timeout(TIMEOUT), serving(ctx, interceptor) as target:
            interceptors = client_interceptors(propagator)
            async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
                with ctx.restore({"request_id": "bin-1"}):
                    seen = await call(channel, "UnaryUnary")
                fresh = await call(channel, "UnaryUnary", (("x-request-id-bin", b"\xff"),))
        assert ["bin-1", "bin-1"] == [item["request_id"] for item in seen]
        assert is_uuid4(fresh[0]["request_id"])

    @pytest.mark.asyncio
    async def test_stream_cancelled_by_the_client_closes_the_generator_in_its_rpc(
        self,
    ) -> None:
        """When the client cancels a server-streaming call midway, the async generator
        handler is closed inside the RPC's data (its ``finally`` sees the RPC's id), and
        nothing reaches the loop's exception handler."""
        ctx = new_context()
        closed: list[dict[str, Any]] = []
        done = asyncio.Event()
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, error: errors.append(error))

        async def forever(request: bytes, context: object) -> AsyncIterator[bytes]:
            try:
                while True:
                    yield str(ctx["request_id"]).encode()
                    await asyncio.sleep(0.01)
            finally:
                closed.append(dict(ctx))
                done.set()

        server = grpc.aio.server(interceptors=[ServerInterceptor(ctx)])
        handler: Handler = grpc.unary_stream_rpc_method_handler(forever)
        generic = grpc.method_handlers_generic_handler(SERVICE, {"Forever": handler})
        server.add_generic_rpc_handlers([generic])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with (
                asyncio.timeout(TIMEOUT),
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes]
                stream = channel.unary_stream(f"/{SERVICE}/Forever")
                call = stream(b"", metadata=(("x-request-id", "r-c"),))
                first = [await call.read(), await call.read()]
                call.cancel()
                await done.wait()
        finally:
            await server.stop(None)
        assert ([b"r-c", b"r-c"], [{"request_id": "r-c"}], []) == (first, closed, errors)

    @pytest.mark.asyncio
    async def test_unknown_method_stays_unimplemented(self) -> None:
        """An RPC no handler serves fails with UNIMPLEMENTED, as without the interceptor."""
        ctx = new_context()
        async with (
            asyncio.timeout(TIMEOUT),
            serving(ctx) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            nope: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
            nope = channel.unary_unary(f"/{SERVICE}/Nope")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await nope(b"x")
        assert grpc.StatusCode.UNIMPLEMENTED == raised.value.code()

    @pytest.mark.asyncio
    async def test_client_metadata_already_set_is_not_replaced(self) -> None:
        """A key the call's metadata has (in any case) is sent as the caller set it."""
        ctx = new_context()
        propagator = Propagator({ctx: ["request_id"]})
        async with asyncio.timeout(TIMEOUT), serving(ctx) as target:
            interceptors = client_interceptors(propagator)
            async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:
                with ctx.restore({"request_id": "from-context"}):
                    seen = await call(channel, "UnaryUnary", (("x-request-id", "by-caller"),))
        assert "by-caller" == seen[0]["request_id"]


# -- called directly -----------------------------------------------------------------------


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
#: The servicer context the direct tests pass (their handlers do not use it).
NO_CONTEXT: Any = None


def empty(request: bytes, context: object) -> bytes:
    """A sync unary handler answering nothing."""
    return b""


def details(*metadata: tuple[object, object]) -> Any:
    """Hand-built handler call details, as the server passes them to interceptors."""
    return types.SimpleNamespace(method=f"/{SERVICE}/M", invocation_metadata=metadata)


def finding(handler: grpc.RpcMethodHandler[Any, Any] | None) -> Callable[[Any], Awaitable[Any]]:
    """A continuation returning ``handler``."""

    async def continuation(call_details: Any) -> grpc.RpcMethodHandler[Any, Any] | None:
        return handler

    return continuation


class TestServerInterceptor:
    @pytest.mark.asyncio
    async def test_handler_that_raises_puts_the_previous_data_back(self) -> None:
        """The handler runs with the RPC's data only; after it raises, the caller's data
        is what it was."""
        ctx = new_context()
        ctx.attach()
        ctx["outer"] = "kept"

        async def fail(request: bytes, context: object) -> bytes:
            assert {"request_id": "r-1"} == dict(ctx)
            raise LookupError("boom")

        handler: Handler = grpc.unary_unary_rpc_method_handler(fail)
        wrapped = await ServerInterceptor(ctx).intercept_service(
            finding(handler), details(("x-request-id", "r-1"))
        )
        assert wrapped is not None
        assert wrapped.unary_unary is not None
        with pytest.raises(LookupError, match="boom"):
            await wrapped.unary_unary(b"", NO_CONTEXT)
        assert {"outer": "kept"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_attaches_on_first_call_on_a_loop_only(self) -> None:
        """The first RPC on a loop attaches the context; after a detach, later RPCs on that
        loop do not attach it again (as the ASGI middleware)."""
        ctx = new_context()
        interceptor = ServerInterceptor(ctx)
        handler: Handler = grpc.unary_unary_rpc_method_handler(empty)
        await interceptor.intercept_service(finding(handler), details())
        assert ctx.is_attached()
        ctx.detach()
        await interceptor.intercept_service(finding(handler), details())
        assert not ctx.is_attached()

    @pytest.mark.asyncio
    async def test_a_context_attached_already_stays_as_it_is(self) -> None:
        """A context attached before the first RPC keeps its data there."""
        ctx = new_context()
        ctx.attach()
        ctx["outer"] = "kept"
        handler: Handler = grpc.unary_unary_rpc_method_handler(empty)
        await ServerInterceptor(ctx).intercept_service(finding(handler), details())
        assert {"outer": "kept"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_sync_stream_steps_carry_writes_and_close_within_the_data(self) -> None:
        """A sync streaming handler's steps each run with the data the previous step left,
        and closing it early runs its ``finally`` with that data too; in no step does the
        caller's data show."""
        ctx = new_context()
        ctx.attach()
        ctx["outer"] = "caller"
        closed: list[dict[str, Any]] = []

        def responses(request: bytes, context: object) -> Iterator[bytes]:
            try:
                for n in range(3):
                    ctx[f"step{n}"] = n
                    yield json.dumps(dict(ctx)).encode()
            finally:
                closed.append(dict(ctx))

        handler: Handler = grpc.unary_stream_rpc_method_handler(responses)
        wrapped = await ServerInterceptor(ctx, key="rid").intercept_service(
            finding(handler), details(("x-request-id", "r-9"))
        )
        assert wrapped is not None
        assert wrapped.unary_stream is not None
        stream = wrapped.unary_stream(b"", NO_CONTEXT)
        first = json.loads(next(stream))
        second = json.loads(await asyncio.to_thread(next, stream))
        cast(Generator[bytes], stream).close()
        assert {"rid": "r-9", "step0": 0} == first
        assert {"rid": "r-9", "step0": 0, "step1": 1} == second
        assert [{"rid": "r-9", "step0": 0, "step1": 1}] == closed
        assert {"outer": "caller"} == dict(ctx)

    @pytest.mark.asyncio
    async def test_sync_stream_returning_a_plain_iterator(self) -> None:
        """A sync streaming handler may return any iterable (it has no ``close``)."""
        ctx = new_context()

        def responses(request: bytes, context: object) -> list[bytes]:
            return [ctx["request_id"].encode()] * 2

        handler: Handler = grpc.unary_stream_rpc_method_handler(responses)
        wrapped = await ServerInterceptor(ctx).intercept_service(
            finding(handler), details(("x-request-id", "r-5"))
        )
        assert wrapped is not None
        assert wrapped.unary_stream is not None
        assert [b"r-5", b"r-5"] == list(wrapped.unary_stream(b"", NO_CONTEXT))

    @pytest.mark.asyncio
    async def test_no_handler_gives_none(self) -> None:
        """When no handler serves the RPC, the interceptor returns ``None`` too."""
        assert None is await ServerInterceptor(new_context()).intercept_service(
            finding(None), details()
        )

    @pytest.mark.asyncio
    async def test_odd_metadata_entries_are_ignored(self) -> None:
        """Entries whose key is not a ``str`` or whose value is neither text nor bytes are
        skipped: the RPC gets a fresh id."""
        ctx = new_context()

        def request_id(request: bytes, context: object) -> bytes:
            return str(ctx["request_id"]).encode()

        handler: Handler = grpc.unary_unary_rpc_method_handler(request_id)
        wrapped = await ServerInterceptor(ctx).intercept_service(
            finding(handler), details((b"x-request-id", "r-1"), ("x-request-id", 7))
        )
        assert wrapped is not None
        assert wrapped.unary_unary is not None
        assert is_uuid4(wrapped.unary_unary(b"", NO_CONTEXT).decode())

    def test_bad_arguments_raise(self) -> None:
        """Arguments are checked at once, with the fix in the message."""
        ctx = new_context()
        with pytest.raises(TypeError, match="aiocontext.Context"):
            ServerInterceptor({})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="str or an aiocontext.Key"):
            ServerInterceptor(ctx, key=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="Propagator"):
            ServerInterceptor(ctx, propagator="x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        bad_keys: list[Any] = ["", "x request", "zoë", b"x"]
        for bad in bad_keys:
            with pytest.raises(ValueError, match="metadata key"):
                ServerInterceptor(ctx, metadata=bad)

    def test_repr(self) -> None:
        """The repr names the context, the lowercase metadata key, the key, the propagator."""
        ctx = new_context()
        assert f"ServerInterceptor(context={ctx!r}, metadata='x-id', key='request_id')" == repr(
            ServerInterceptor(ctx, metadata="X-Id")
        )
        propagator = Propagator({ctx: ["request_id"]})
        assert repr(ServerInterceptor(ctx, propagator=propagator)).endswith(
            f", propagator={propagator!r})"
        )


class TestClientInterceptors:
    @pytest.mark.asyncio
    async def test_code_with_no_data_sends_the_details_unchanged(self) -> None:
        """Outside any data, the call's details go on as they are (the same object)."""
        ctx = new_context()
        unary_unary = client_interceptors(Propagator({ctx: ["request_id"]}))[0]
        assert isinstance(unary_unary, grpc.aio.UnaryUnaryClientInterceptor)
        call_details = grpc.aio.ClientCallDetails("/s/M", None, None, None, None)

        async def continuation(sent: Any, request: Any) -> Any:
            return sent

        assert call_details is await unary_unary.intercept_unary_unary(
            continuation, call_details, b""
        )

    @pytest.mark.asyncio
    async def test_one_interceptor_per_kind_each_adds_lowercase_metadata_to_a_copy(
        self,
    ) -> None:
        """Each kind's interceptor puts the propagator's headers into a copy of the call's
        metadata, keys lowercased; the caller's metadata object is left alone."""
        ctx = new_context()
        kinds = client_interceptors(Propagator({ctx: ["request_id"]}))
        assert isinstance(kinds[1], grpc.aio.UnaryStreamClientInterceptor)
        assert isinstance(kinds[2], grpc.aio.StreamUnaryClientInterceptor)
        assert isinstance(kinds[3], grpc.aio.StreamStreamClientInterceptor)
        original = grpc.aio.Metadata(("a", "1"))
        call_details = grpc.aio.ClientCallDetails("/s/M", 5.0, original, None, True)

        async def continuation(sent: Any, request: Any) -> Any:
            return sent

        with ctx.restore({"request_id": "r-1"}):
            for method in (
                kinds[1].intercept_unary_stream,
                kinds[2].intercept_stream_unary,
                kinds[3].intercept_stream_stream,
            ):
                sent = cast(
                    grpc.aio.ClientCallDetails, await method(continuation, call_details, b"")
                )
                assert [("a", "1"), ("x-request-id", "r-1")] == list(sent.metadata or ())
                assert ("/s/M", 5.0, True) == (sent.method, sent.timeout, sent.wait_for_ready)
        assert [("a", "1")] == list(original)

    def test_bad_propagator_and_repr(self) -> None:
        """A non-Propagator is refused; each interceptor's repr shows the propagator."""
        with pytest.raises(TypeError, match="Propagator"):
            client_interceptors("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        propagator = Propagator({new_context(): ["request_id"]})
        assert [
            f"<_UnaryUnary of {propagator!r}>",
            f"<_UnaryStream of {propagator!r}>",
            f"<_StreamUnary of {propagator!r}>",
            f"<_StreamStream of {propagator!r}>",
        ] == [repr(item) for item in client_interceptors(propagator)]
