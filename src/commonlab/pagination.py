"""Keyset pagination shared by every list: stable order by id, `limit` and an `after` cursor.

Offsets shift when rows are added; an `after` id never does, so a client walking a list while
the facility writes to it sees every row once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import Session

__all__ = ["MAX_LIMIT", "Page", "PageParams", "paginate"]

T = TypeVar("T")
MAX_LIMIT = 500


class PageParams(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)
    after: int | None = Field(default=None, ge=0)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(description="pass as `after` to get the next page; null at the end")


def paginate(
    db: Session,
    query: Select[Any],
    id_column: Any,
    params: PageParams,
    render: Callable[[Any], T],
    *,
    cursor: Callable[[Any], int] = lambda row: int(row.id),
) -> Page[T]:
    """Run `query` ordered by `id_column`, one page after `params.after`."""
    if params.after is not None:
        query = query.where(id_column > params.after)
    rows: Sequence[Any] = db.scalars(query.order_by(id_column).limit(params.limit + 1)).all()
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = str(cursor(rows[-1])) if more and rows else None
    return Page[T](items=[render(row) for row in rows], next=next_cursor)
