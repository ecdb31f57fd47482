"""The record's canonical JSON is RFC 8785, on the fast path and off it."""

from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from commonlab.record.canonical import canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(values)
def test_same_bytes_as_the_reference_implementation(value):
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(ValueError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}'),
        ({"\u20ac": 1, "\r": 2, "1": 3}, '{"\\r":2,"1":3,"\u20ac":1}'.encode()),
        ({"\U0001f600": 1, "\ufb33": 2}, '{"\U0001f600":1,"\ufb33":2}'.encode()),  # UTF-16 order
        ("line\nbreak\u001f", b'"line\\nbreak\\u001f"'),
        (1.0, b"1"),
        (1e21, b"1e+21"),
    ],
)
def test_known_encodings(value, expected):
    assert canonical_json(value) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"a": [1, -math.inf]}])
def test_non_finite_numbers_are_refused_with_where(bad):
    with pytest.raises(ValueError, match="NaN and infinity"):
        canonical_json(bad)


@settings(max_examples=300)
@given(st.text(), st.text(), st.dictionaries(st.text(), values, max_size=4))
def test_canonical_entry_is_canonical_json_of_the_entry(kind, subject, data):
    from commonlab.record.canonical import canonical_entry

    entry = {"type": kind, "time": "t", "actor": {"id": "p-1"}, "subject": subject, "data": data}
    try:
        expected = rfc8785.dumps(entry)
    except rfc8785.CanonicalizationError:
        return
    assert canonical_entry(**entry) == expected
