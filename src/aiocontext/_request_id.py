"""Request ids for the web integrations: what a valid incoming id is, and new ones.

An incoming id is echoed into response headers and log lines, so it is accepted only if it
is short and made of characters that cannot break either (no spaces, quotes, newlines or
control characters). Anything else is replaced, never repaired or echoed.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["MAX_LENGTH", "is_valid", "new_request_id"]

MAX_LENGTH = 128
"""The longest incoming request id accepted."""

_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]*\Z")


def is_valid(value: str) -> bool:
    """Whether ``value`` may be used as a request id as it is.

    Example:
        >>> is_valid("3f6c9a2e-req.42"), is_valid(""), is_valid("a b"), is_valid("x" * 129)
        (True, False, False, False)
    """
    return 0 < len(value) <= MAX_LENGTH and _VALID.match(value) is not None


def new_request_id() -> str:
    """Return a fresh random request id (a UUID4 in canonical form)."""
    return str(uuid.uuid4())
