# opentelemetry-instrumentation-aiohttp-server 0.66b1 ships no py.typed: the part the tests
# use. instrument() replaces aiohttp.web.Application with a subclass adding its middleware
# (a BaseInstrumentor, a singleton); uninstrument() puts the original back.
from typing import Any

class AioHttpServerInstrumentor:
    def instrument(self, **kwargs: Any) -> None: ...
    def uninstrument(self, **kwargs: Any) -> None: ...
