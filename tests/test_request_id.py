"""Tests for ``aiocontext._request_id``: which incoming ids are kept, and new ids."""

from __future__ import annotations

import re
import uuid

import pytest

from aiocontext._request_id import MAX_LENGTH, is_valid, new_request_id

CANONICAL_UUID4 = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z"
)


class TestIsValid:
    @pytest.mark.parametrize(
        "value",
        [
            "a",
            "3f6c9a2e-req.42",
            "A:b+c=d/e_f",
            "2671a99f-3282-4685-a17d-f7f114a45a9c",
            "x" * MAX_LENGTH,
        ],
    )
    def test_safe_ids_are_kept(self, value: str) -> None:
        """Ids of safe characters, starting with a letter or digit, up to the maximum length."""
        assert True is is_valid(value)

    @pytest.mark.parametrize(
        "value",
        ["", "x" * (MAX_LENGTH + 1), "-a", ".a", "a b", "a\n", "a\nb", "quote'd", "é", "a\x00"],
    )
    def test_unsafe_ids_are_refused(self, value: str) -> None:
        """Empty, too long, a leading symbol, spaces, newlines (even a trailing one), quotes,
        non-ASCII and control characters are all refused."""
        assert False is is_valid(value)


class TestNewRequestId:
    def test_is_a_canonical_uuid4(self) -> None:
        """Every id is the canonical text of a version-4, RFC 9562-variant UUID."""
        for _ in range(200):
            request_id = new_request_id()
            parsed = uuid.UUID(request_id)
            assert (request_id, 4, uuid.RFC_4122) == (str(parsed), parsed.version, parsed.variant)
            assert CANONICAL_UUID4.match(request_id) is not None

    def test_random_digits_take_every_value(self) -> None:
        """The variant digit takes all four of its values and the other random digits all
        sixteen (chance of a false failure over 2,000 ids: below 1e-50)."""
        ids = [new_request_id() for _ in range(2_000)]
        assert set("89ab") == {request_id[19] for request_id in ids}
        for position in (0, 15, 20, 35):
            assert set("0123456789abcdef") == {request_id[position] for request_id in ids}
        assert len(ids) == len(set(ids))
