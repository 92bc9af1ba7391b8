"""The shared request-body and query helpers of the /v1 routes (api/_request.py)."""

from __future__ import annotations

import pytest

from inferd.api._request import optional_text, query_limit
from inferd.errors import InvalidInput


def test_an_optional_text_field_is_a_string_or_absent() -> None:
    assert optional_text({"reason": "too slow"}, "reason") == "too slow"
    assert optional_text({}, "reason") is None
    assert optional_text({"reason": None}, "reason") is None
    with pytest.raises(InvalidInput) as info:
        optional_text({"reason": 7}, "reason")
    assert info.value.field == "body.reason"
    assert "a string" in str(info.value)
    assert "7" in str(info.value)


def test_a_limit_is_an_integer_in_range() -> None:
    assert query_limit({}) == 100
    assert query_limit({"limit": "10000"}) == 10_000
    for bad in ("0", "10001", "-1", "ten"):
        with pytest.raises(InvalidInput) as info:
            query_limit({"limit": bad})
        assert info.value.field == "limit"
