# opentelemetry-instrumentation-asgi 0.66b1 ships no py.typed: the part the tests use.
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from opentelemetry.trace import TracerProvider

_Scope = MutableMapping[str, Any]
_App = Callable[
    [
        _Scope,
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

class OpenTelemetryMiddleware:
    def __init__(
        self,
        app: Any,
        excluded_urls: str | None = None,
        default_span_details: Any = None,
        server_request_hook: Any = None,
        client_request_hook: Any = None,
        client_response_hook: Any = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: Any = None,
        tracer: Any = None,
        meter: Any = None,
        http_capture_headers_server_request: list[str] | None = None,
        http_capture_headers_server_response: list[str] | None = None,
        http_capture_headers_sanitize_fields: list[str] | None = None,
        exclude_spans: list[Literal["receive", "send"]] | None = None,
    ) -> None: ...
    async def __call__(
        self,
        scope: _Scope,
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None: ...
