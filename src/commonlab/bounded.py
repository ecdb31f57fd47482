"""Bounded integers: the one type every integer the API takes is built from.

A JSON number or a query string can carry any integer, but every database column holds a
signed 64-bit one (SQLite raises OverflowError past it). So an integer is refused with 422 at
the edge, by these types, before it reaches a service or a query.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval
from pydantic import Strict

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ID",
    "Id",
    "Int64",
    "NonNegativeInt64",
    "PositiveInt64",
    "StrictInt64",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Row ids stay inside what every database's BIGINT and a JSON number (a double) hold exactly.
MAX_ID = 2**53

Int64 = Annotated[int, Interval(ge=INT64_MIN, le=INT64_MAX)]
NonNegativeInt64 = Annotated[int, Interval(ge=0, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Interval(ge=1, le=INT64_MAX)]
Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
# For JSON bodies where "3" or 3.0 must not pass for 3.
StrictInt64 = Annotated[int, Strict(), Interval(ge=INT64_MIN, le=INT64_MAX)]
