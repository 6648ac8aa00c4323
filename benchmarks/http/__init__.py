"""HTTP benchmark: what each request-id middleware costs per request on real servers.

``python -m benchmarks.http`` (see ``benchmarks/README.md``): the same tiny handler behind
aiocontext's middlewares, their peers and a hand-written ``ContextVar`` middleware, on aiohttp
and on uvicorn (asyncio/uvloop x h11/httptools).
"""
