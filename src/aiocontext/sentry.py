"""Sentry: chosen context keys as tags on every event of a request.

:class:`SentryTags` copies chosen keys of a :class:`~aiocontext.Context` onto sentry-sdk's
*isolation scope* as tags, so every event, error and transaction of a request carries the
request's id (and whatever else you choose). Tags on an isolation scope reach every event
captured in it; a request needs a scope of its own, or one request's tags would land on
another's events. :meth:`SentryTags.isolated` forks one for a block (Sentry's own framework
integrations fork one per request too, and forking again inside is harmless), and
:class:`SentryTagsMiddleware` does it for every ASGI request. The tags are set when the
block starts and refreshed from the context when an event is captured, so a key written
during the request is on the events that follow.

Only ``sentry-sdk`` is needed (``pip install aiocontext[sentry]``); the core of aiocontext
never imports this module.

Example:
    >>> from aiocontext import Context
    >>> request = Context(name="request")
    >>> tags = SentryTags(request, ["request_id", "tenant"])
    >>> with request.restore({"request_id": "r-1"}), tags.isolated():
    ...     tags.values()  # what the scope is tagged with; "tenant" has no value
    {'request_id': 'r-1'}
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable, Mapping
from typing import Any, cast

import sentry_sdk
from sentry_sdk.scope import Scope
from sentry_sdk.types import Event, Hint
from typing_extensions import TypeIs

from ._context import Context
from ._errors import AioContextError
from ._key import Key
from .asgi import ASGIApp, Receive, Send
from .asgi import Scope as ASGIScope

__all__ = ["SentryTags", "SentryTagsMiddleware"]

_MISSING = object()


def _is_key(value: object) -> TypeIs[Key[Any]]:
    return isinstance(value, Key)


def _own_name(key: object) -> tuple[str | Key[Any], str]:
    """Check a key; return it with its own name."""
    if _is_key(key):
        return key, key.name
    if isinstance(key, str):
        return key, key
    raise TypeError(f"a key must be a str or an aiocontext.Key, got {key!r}")


def _tag_pairs(fields: object) -> tuple[tuple[str | Key[Any], str], ...]:
    """Check ``fields``: keys (each tagged under its own name) or keys mapped to tag names."""
    if isinstance(fields, str) or _is_key(fields) or not isinstance(fields, Iterable):
        raise TypeError(
            f"fields must be a collection of keys such as ['request_id'], or a mapping of keys "
            f"to tag names, got {fields!r}"
        )
    pairs: list[tuple[str | Key[Any], str]] = []
    if isinstance(fields, Mapping):
        for key, name in cast("Mapping[object, object]", fields).items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"the tag name of {key!r} must be a non-empty str, got {name!r}")
            pairs.append((_own_name(key)[0], name))
    else:
        pairs = [_own_name(key) for key in cast("Iterable[object]", fields)]
    if not pairs:
        raise ValueError("fields is empty: name at least one key, e.g. ['request_id']")
    tags = [tag for _, tag in pairs]
    duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
    if duplicates:
        raise ValueError(f"two keys are tagged {duplicates[0]!r}: give them different names")
    return tuple(pairs)


class SentryTags:
    """Chosen keys of a context, as tags on sentry-sdk's isolation scope.

    Args:
        context: The context to read.
        fields: The keys to tag with (a ``str`` key under its own name, a ``Key`` under its
            ``.name``), or a mapping of keys to tag names.

    Raises:
        TypeError: ``context`` is not a Context, a key is not a ``str`` or ``Key``, a tag
            name is not a non-empty ``str``, or ``fields`` is a single key.
        ValueError: ``fields`` is empty, or two keys share a tag name.

    Example:
        >>> from aiocontext import Context
        >>> SentryTags(Context(name="request"), {"request_id": "request"}).names
        ('request',)
    """

    __slots__ = ("_context", "_fields")

    def __init__(
        self,
        context: Context[Any, Any],
        fields: Iterable[str | Key[Any]] | Mapping[str | Key[Any], str] = ("request_id",),
    ) -> None:
        if not isinstance(context, Context):
            raise TypeError(
                f"context must be an aiocontext.Context, got {type(context).__name__} {context!r}"
            )
        self._context: Context[Any, Any] = context
        self._fields = _tag_pairs(fields)

    def __repr__(self) -> str:
        shown = dict(self._fields)
        return f"SentryTags({self._context!r}, {shown!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The tag names."""
        return tuple(name for _, name in self._fields)

    def values(self) -> dict[str, object]:
        """The tags the current code's values give: keys without a value, or a context with
        no data here, give none."""
        found: dict[str, object] = {}
        try:
            for key, name in self._fields:
                value = self._context.get(key, _MISSING)
                if value is not _MISSING:
                    found[name] = value
        except AioContextError:
            return {}
        return found

    def tag(self, scope: Scope | None = None) -> None:
        """Set the tags on ``scope`` (by default the current isolation scope)."""
        target = sentry_sdk.get_isolation_scope() if scope is None else scope
        for name, value in self.values().items():
            target.set_tag(name, value)

    def _refresh(self, event: Event, hint: Hint) -> Event:
        """An event processor: the tags as the capturing code's context has them now."""
        values = self.values()
        if values:
            event.setdefault("tags", {}).update({name: str(v) for name, v in values.items()})
        return event

    @contextlib.contextmanager
    def isolated(self) -> Generator[Scope]:
        """Fork the isolation scope for a block and tag it; yield the new scope.

        Events captured in the block (in this task, its child tasks and ``to_thread``
        workers: sentry-sdk keeps its scopes in ``contextvars``) get the tags, refreshed from
        the context when each event is captured; events outside it do not.
        """
        with sentry_sdk.isolation_scope() as scope:
            self.tag(scope)
            scope.add_event_processor(self._refresh)
            yield scope


class SentryTagsMiddleware:
    """ASGI middleware running each HTTP and WebSocket request in :meth:`SentryTags.isolated`.

    Put it *inside* the request-id middleware, so the request's data is there when the
    scope is tagged::

        app = RequestIdMiddleware(SentryTagsMiddleware(app, tags), request)

    Other ASGI messages (``lifespan``) pass through untouched.

    Args:
        app: The ASGI application to wrap.
        tags: What to tag with.

    Raises:
        TypeError: ``tags`` is not a :class:`SentryTags`.

    Example:
        >>> from aiocontext import Context
        >>> async def app(scope, receive, send): ...
        >>> wrapped = SentryTagsMiddleware(app, SentryTags(Context(name="request")))
    """

    __slots__ = ("app", "tags")

    def __init__(self, app: ASGIApp, tags: SentryTags) -> None:
        if not isinstance(tags, SentryTags):
            raise TypeError(
                f"tags must be a SentryTags, such as SentryTags(request, ['request_id']), got "
                f"{type(tags).__name__} {tags!r}"
            )
        self.app = app
        self.tags = tags

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        """Run the request with a tagged isolation scope of its own."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with self.tags.isolated():
            await self.app(scope, receive, send)
