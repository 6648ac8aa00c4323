"""How the ASGI middleware type-checks around Django's ASGI handler (never run)."""

from __future__ import annotations

from typing import cast

from django.core.asgi import get_asgi_application

from aiocontext import Context
from aiocontext.asgi import ASGIApp, RequestIdMiddleware

request: Context[str, str] = Context(name="request")


def recipe() -> None:
    # docs/integrations/django.md: django-stubs types the handler's scope as a dict and its
    # send as taking a Mapping, narrower than ASGIApp; the recipe casts.
    RequestIdMiddleware(cast(ASGIApp, get_asgi_application()), request)
    RequestIdMiddleware(get_asgi_application(), request)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
