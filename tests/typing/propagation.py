"""How the propagation API type-checks: keys, codecs, carriers, integrations (never run)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, assert_type

import aiohttp
import httpx
from arq.connections import RedisSettings
from arq.worker import Worker

import aiocontext.aiohttp
import aiocontext.arq
import aiocontext.celery
import aiocontext.httpx
from aiocontext import Context, Key
from aiocontext.propagation import (
    Baggage,
    Field,
    HeaderCodec,
    Propagator,
    RequestIdHeader,
    ValueCodec,
    field,
)

request: Context[str, str] = Context(name="request")
anything = Context(name="anything")
REQUEST_ID = Key[str]("request_id")
ATTEMPT = Key[int]("attempt")
INT = ValueCodec(str, int)


def fields() -> None:
    assert_type(field("request_id"), Field[str])
    assert_type(field(REQUEST_ID, name="rid"), Field[str])
    assert_type(field(ATTEMPT, codec=INT), Field[int])
    assert_type(INT, ValueCodec[int])
    field(ATTEMPT)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    field(ATTEMPT, codec=ValueCodec(str, str))  # type: ignore[misc]  # pyright: ignore[reportArgumentType]
    field(REQUEST_ID, name=1)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]


def propagators() -> None:
    Propagator({request: ["request_id"]})
    Propagator(
        {request: [REQUEST_ID], anything: ["tenant", field(ATTEMPT, codec=INT)]}, codec=Baggage()
    )
    Propagator({request: ["request_id"]}, codec=RequestIdHeader("X-Correlation-ID"))
    Propagator({request: [ATTEMPT]})  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
    Propagator({request: ["request_id"]}, codec="baggage")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Propagator(["request_id"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    codec: HeaderCodec = Baggage()
    assert_type(codec.encode({"a": "1"}), dict[str, str])


def carriers(propagator: Propagator) -> None:
    headers: dict[str, str] = {}
    propagator.inject(headers)
    propagator.inject(httpx.Headers())
    assert_type(propagator.encode(), dict[str, str])
    assert_type(propagator.extract(headers), dict[Context[Any, Any], dict[Any, Any]])
    with propagator.restore(httpx.Headers({"X-Request-ID": "r"})):
        pass
    propagator.inject({"a": 1})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]


def clients(propagator: Propagator) -> None:
    assert_type(aiocontext.httpx.instrument(httpx.Client(), propagator), httpx.Client)
    assert_type(aiocontext.httpx.instrument(httpx.AsyncClient(), propagator), httpx.AsyncClient)
    hook: Callable[[httpx.Request], None] = aiocontext.httpx.hook(propagator)
    async_hook: Callable[[httpx.Request], Awaitable[None]] = aiocontext.httpx.async_hook(propagator)
    httpx.Client(event_hooks={"request": [hook]})
    httpx.AsyncClient(event_hooks={"request": [async_hook]})
    aiocontext.httpx.instrument(aiohttp.ClientSession(), propagator)  # type: ignore[type-var]  # pyright: ignore[reportArgumentType]
    aiohttp.ClientSession(trace_configs=[aiocontext.aiohttp.client_trace_config(propagator)])


def queues(propagator: Propagator) -> None:
    handlers = aiocontext.celery.install(propagator)
    handlers.uninstall()
    aiocontext.celery.install(propagator, header=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    propagation = aiocontext.arq.ArqPropagation(propagator)
    Worker(functions=[], redis_settings=RedisSettings(), **propagation.worker_settings())
    Worker(
        functions=[],
        job_serializer=propagation.serialize,
        job_deserializer=propagation.deserialize,
        on_job_start=propagation.on_job_start,
        on_job_end=propagation.on_job_end,
    )
