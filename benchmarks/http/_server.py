"""One server process: ``python -m benchmarks.http._server STACK VARIANT FD``.

It serves the variant's application on the listening socket ``FD`` (bound by the harness, so
clients may connect before the server is up, with no polling) until ``GET /stop``, then
exits. This is the process valgrind counts.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Final

from ._apps import aiohttp_app, asgi_app

__all__ = ["STACKS", "serve"]

#: Server stacks: name -> (server, loop, HTTP parser).
STACKS: Final[dict[str, tuple[str, str, str]]] = {
    "aiohttp": ("aiohttp", "asyncio", "aiohttp"),
    "uvicorn asyncio h11": ("uvicorn", "asyncio", "h11"),
    "uvicorn asyncio httptools": ("uvicorn", "asyncio", "httptools"),
    "uvicorn uvloop h11": ("uvicorn", "uvloop", "h11"),
    "uvicorn uvloop httptools": ("uvicorn", "uvloop", "httptools"),
}


def _serve_aiohttp(variant: str, fd: int) -> None:
    from aiohttp import web

    async def main() -> None:
        stopped = asyncio.Event()
        runner = web.AppRunner(aiohttp_app(variant, stopped.set), access_log=None)
        await runner.setup()
        sock = socket.socket(fileno=fd)
        await web.SockSite(runner, sock).start()
        await stopped.wait()
        await runner.cleanup()

    asyncio.run(main())


def _serve_uvicorn(variant: str, fd: int, loop: str, http: str) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server without its 10 Hz main-loop tick, which would put work that grows
        with wall-clock time (so with the machine's load) into the counted requests: it
        ticks once (the ``date`` header) and waits for ``GET /stop``."""

        stopped: asyncio.Event | None = None

        async def main_loop(self) -> None:
            self.stopped = asyncio.Event()
            await self.on_tick(0)
            await self.stopped.wait()

    server: Server | None = None

    def stop() -> None:
        assert server is not None
        assert server.stopped is not None
        server.stopped.set()

    config = uvicorn.Config(
        asgi_app(variant, stop),
        loop=loop,
        http=http,
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    server = Server(config)
    # A socket object of the right family (uvicorn's fd= takes it for a Unix socket, so
    # asyncio would not set TCP_NODELAY and every response would wait for a delayed ACK).
    server.run(sockets=[socket.socket(fileno=fd)])


def serve(stack: str, variant: str, fd: int) -> None:
    """Serve ``variant`` on ``stack`` from the listening socket ``fd`` until ``GET /stop``."""
    kind, loop, http = STACKS[stack]
    if kind == "aiohttp":
        _serve_aiohttp(variant, fd)
    else:
        _serve_uvicorn(variant, fd, loop, http)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
