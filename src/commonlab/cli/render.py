"""Printing API answers: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_json", "print_table"]

console = Console()


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value))


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Rows as a table; `headers` gives a column a shorter label than its key, so that a
    table fits 80 columns without cutting a header ("accele…" tells nobody anything)."""
    if not rows:
        console.print(f"No {title.lower()} yet.")
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        label = (headers or {}).get(column, column)
        table.add_column(label, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
