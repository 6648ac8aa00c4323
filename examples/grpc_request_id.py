"""A ``grpc.aio`` service whose every RPC has its request id and tenant, with aiocontext.

The server puts :class:`aiocontext.grpc.ServerInterceptor` first: each RPC gets data of its
own, holding the caller's ``x-request-id`` (or a fresh UUID4 when it is missing or unsafe)
and the ``tenant`` from the W3C ``baggage`` metadata. The client's channel has the
interceptors of :func:`aiocontext.grpc.client_interceptors`, so each call carries the id and
tenant of the code making it. The handlers (a unary ``Greet`` and a server-streaming
``Count``) are never passed either value, yet each one, and a task each spawns, reports it.

No protobuf: the methods take and return bytes through grpc's generic handlers.

Run it::

    python examples/grpc_request_id.py                # serves on 127.0.0.1:50051
    python examples/grpc_request_id.py --self-test    # a random port, a few calls, exit

Needs ``pip install "aiocontext[grpc]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator

import grpc
import grpc.aio

from aiocontext import Context
from aiocontext.grpc import ServerInterceptor, client_interceptors
from aiocontext.propagation import Baggage, Propagator

request_context: Context[str, str] = Context(name="request")
# Both ends: the id and the tenant travel in the W3C baggage metadata (the server also reads
# the id from x-request-id, which callers without aiocontext send).
propagator = Propagator({request_context: ["request_id", "tenant"]}, codec=Baggage())

SERVICE = "example.Greeter"


async def lookup() -> str:
    """Some work in a sub-task: it reads the id and tenant from the context."""
    await asyncio.sleep(0.01)
    return f"{request_context['request_id']}/{request_context.get('tenant', '-')}"


async def greet(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """Unary: the handler's and a sub-task's view of the request."""
    seen = [f"{request_context['request_id']}/{request_context.get('tenant', '-')}"]
    seen.append(await asyncio.create_task(lookup()))
    return json.dumps(seen).encode()


async def count(
    request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    """Server streaming: each message carries what a sub-task saw."""
    for _ in range(3):
        yield json.dumps([await asyncio.create_task(lookup())]).encode()


def make_server() -> grpc.aio.Server:
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(request_context, propagator=propagator)]
    )
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "Greet": grpc.unary_unary_rpc_method_handler(greet),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    return server


async def call_both(channel: grpc.aio.Channel) -> list[str]:
    """Call Greet and Count once each; return every value the server reported."""
    greet_call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
    greet_call = channel.unary_unary(f"/{SERVICE}/Greet")
    count_call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes]
    count_call = channel.unary_stream(f"/{SERVICE}/Count")
    seen: list[str] = json.loads(await greet_call(b""))
    async for message in count_call(b""):
        seen.extend(json.loads(message))
    return seen


async def self_test() -> bool:
    """Serve on a random port, make concurrent calls, check every value the server saw."""
    server = make_server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    try:
        async with asyncio.timeout(30):
            interceptors = client_interceptors(propagator)
            async with grpc.aio.insecure_channel(target, interceptors=interceptors) as channel:

                async def check(n: int) -> bool:
                    sent = f"self-test-{n}/tenant-{n}"
                    with request_context.restore(
                        {"request_id": f"self-test-{n}", "tenant": f"tenant-{n}"}
                    ):
                        seen = await call_both(channel)
                    ok = seen == [sent] * 5
                    print(f"sent {sent!r:28} seen {seen[0]!r} x{len(seen)}: {'OK' if ok else seen}")
                    return ok

                results = await asyncio.gather(*(check(n) for n in range(1, 6)))
            async with grpc.aio.insecure_channel(target) as plain:  # no aiocontext, bad id
                greet_call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
                greet_call = plain.unary_unary(f"/{SERVICE}/Greet")
                reply = await greet_call(b"", metadata=(("x-request-id", "bad id"),))
                seen = json.loads(reply)
                fresh = seen[0].removesuffix("/-")
                ok = _is_uuid4(fresh) and seen == [f"{fresh}/-"] * 2
                print(f"sent 'bad id' (no tenant)      seen {seen[0]!r} x2: {'OK' if ok else seen}")
                results.append(ok)
    finally:
        await server.stop(None)
    ok = all(results)
    print(f"self-test: {len(results)} calls, {'every id matched' if ok else 'FAILED'}")
    return ok


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


async def serve(host: str, port: int) -> None:
    server = make_server()
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    print(f"serving {SERVICE} on {host}:{port}")
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A grpc.aio service with request ids.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument(
        "--self-test", action="store_true", help="serve on a random port, make calls, exit"
    )
    args = parser.parse_args(argv)
    if args.self_test:
        return 0 if asyncio.run(self_test()) else 1
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
