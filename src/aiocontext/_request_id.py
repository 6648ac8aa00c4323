"""Request ids for the web integrations: what a valid incoming id is, and new ones.

An incoming id is echoed into response headers and log lines, so it is accepted only if it
is short and made of characters that cannot break either (no spaces, quotes, newlines or
control characters). Anything else is replaced, never repaired or echoed.
"""

from __future__ import annotations

import re
from os import urandom
from typing import Final

__all__ = ["MAX_LENGTH", "is_valid", "new_request_id"]

MAX_LENGTH = 128
"""The longest incoming request id accepted."""

# The length bound is in the pattern, so that checking an id is one call.
_VALID: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:+=/-]{{0,{MAX_LENGTH - 1}}}\Z")
# The variant digit of a UUID4 from any hex digit: its two low bits under the RFC 9562
# variant bits ``10`` (8, 9, a or b).
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def is_valid(value: str) -> bool:
    """Whether ``value`` may be used as a request id as it is.

    Example:
        >>> is_valid("3f6c9a2e-req.42"), is_valid(""), is_valid("a b"), is_valid("x" * 129)
        (True, False, False, False)
    """
    return _VALID.match(value) is not None


def new_request_id() -> str:
    """Return a fresh random request id: a UUID4 in canonical form.

    The same text as ``str(uuid.uuid4())`` (122 random bits from :func:`os.urandom`, the
    version digit ``4``, the variant digit one of ``89ab``), written straight from the random
    bytes' hex instead of through a :class:`uuid.UUID`: a third of the cost.

    Example:
        >>> import uuid
        >>> request_id = new_request_id()
        >>> str(uuid.UUID(request_id)) == request_id, uuid.UUID(request_id).version
        (True, 4)
    """
    digits = urandom(16).hex()
    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
    )
