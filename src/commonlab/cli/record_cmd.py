"""`commonlab record ...`: the verifier key, verification, and watching a facility's log."""

from __future__ import annotations

import typer

__all__ = ["register"]

record = typer.Typer(help="The public record: key, verify, watch.")


def register(app: typer.Typer) -> None:
    app.add_typer(record, name="record")
