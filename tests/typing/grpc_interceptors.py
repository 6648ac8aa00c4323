"""How the gRPC interceptors type-check with ``grpc.aio`` (never run)."""

from __future__ import annotations

from typing import assert_type

import grpc.aio

from aiocontext import Context, Key
from aiocontext.grpc import ServerInterceptor, client_interceptors
from aiocontext.propagation import Baggage, Propagator

request: Context[str, str] = Context(name="request")
anything = Context(name="anything")
propagator = Propagator({request: ["request_id", "tenant"]}, codec=Baggage())


def server() -> None:
    interceptor = ServerInterceptor(request)
    assert_type(interceptor, ServerInterceptor)
    as_grpc: grpc.aio.ServerInterceptor = interceptor
    grpc.aio.server(interceptors=[as_grpc])
    grpc.aio.server(interceptors=[ServerInterceptor(anything, propagator=propagator)])
    ServerInterceptor(request, metadata="x-correlation-id", key=Key[str]("correlation_id"))
    ServerInterceptor()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    ServerInterceptor({})  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ServerInterceptor(request, key=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ServerInterceptor(request, key=Key[int]("n"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ServerInterceptor(request, metadata=b"x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ServerInterceptor(request, propagator="x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    ServerInterceptor(request, "x-request-id")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def client() -> None:
    interceptors = client_interceptors(propagator)
    assert_type(interceptors, list[grpc.aio.ClientInterceptor])
    grpc.aio.insecure_channel("127.0.0.1:50051", interceptors=interceptors)
    grpc.aio.insecure_channel("127.0.0.1:50051", interceptors=[*interceptors])
    client_interceptors(request)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    client_interceptors()  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
