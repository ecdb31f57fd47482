"""Migration 0012: the token of a job still running when it runs takes its job's level
(a person's own token has none), so no confined token reads above its job after upgrade."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from commonlab.migrations import alembic_config, migrate


def _filler(column: sa.Column) -> object:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer | sa.Numeric):
        return 1
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.JSON):
        return {}
    return "x"


def _insert(conn: sa.Connection, table: sa.Table, **values: object) -> None:
    """A row with `values` and a placeholder in every other required column."""
    for column in table.columns:
        if column.name not in values and not column.nullable and not column.primary_key:
            values[column.name] = _filler(column)
    conn.execute(table.insert().values(**values))


def test_0012_gives_running_jobs_tokens_their_jobs_level(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")  # foreign keys not enforced
    command.upgrade(alembic_config(engine), "0011")
    tables = sa.MetaData()
    tables.reflect(engine, only=["compute_jobs", "identity_tokens"])
    jobs, tokens = tables.tables["compute_jobs"], tables.tables["identity_tokens"]
    with engine.begin() as conn:
        _insert(conn, jobs, id=41, level=3)
        _insert(conn, tokens, id=1, name="job/41", key_id="a", project="proj-1")
        _insert(conn, tokens, id=2, name="cli", key_id="b", project=None)
    migrate(engine)
    with engine.connect() as conn:
        levels = dict(conn.execute(sa.text("SELECT name, level FROM identity_tokens")).all())
    engine.dispose()
    assert levels == {"job/41": 3, "cli": None}
