"""The job store writes items in DynamoDB's JSON exactly as boto3's TypeSerializer would, taking
the common values (strings, whole numbers, booleans) without it (adapters/dynamodb.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_restore.adapters import dynamodb

LEAVES = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6),
    st.binary(max_size=8).map(Binary),
)
VALUES = st.recursive(
    LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=8
)


def boto3_or_error(value: Any) -> Any:
    try:
        return TypeSerializer().serialize(value)
    except Exception as exc:
        return type(exc)


def ours_or_error(value: Any) -> Any:
    try:
        return dynamodb._serialize(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(VALUES)
def test_every_value_is_written_as_boto3_s_serializer_writes_it(value: Any) -> None:
    assert ours_or_error(value) == boto3_or_error(value)


@pytest.mark.parametrize("value", ["", "ü/ß", 0, -7, 10**37, True, False, Decimal("2.5"), 10**38, 1.5, {"a": [1, "b"]}, {"x"}])
def test_the_values_an_item_holds_and_those_refused(value: Any) -> None:
    expected = boto3_or_error(value)
    assert ours_or_error(value) == expected
    if isinstance(expected, type):  # refused (a float, 39 digits): refused alike, item and all
        with pytest.raises(expected):
            dynamodb._to_ddb({"v": value})
    else:
        assert dynamodb._to_ddb({"v": value, "gone": None}) == {"v": expected}
