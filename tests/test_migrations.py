"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from commonlab.db import Database
from commonlab.migrations import migrate
from commonlab.models import Base


def test_migrations_match_the_models(database):
    db = Database(database)
    migrate(db.engine)  # idempotent on an up-to-date database
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_the_first_migration_seeds_the_empty_tree(database):
    from sqlalchemy import select

    from commonlab.record.merkle import EMPTY_ROOT
    from commonlab.record.models import Head

    db = Database(database)
    with db.session() as session:
        head = session.get(Head, 1)
        assert (head.size, head.root_hash) == (0, EMPTY_ROOT)
        assert session.scalar(select(Head.id).where(Head.id != 1)) is None
    db.dispose()


def test_0002_fills_the_inner_hashes_of_tiles_that_were_already_full(tmp_path):
    import os

    from alembic import command
    from sqlalchemy import text

    from commonlab.migrations import alembic_config
    from commonlab.record.tiles import inner_hashes

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(db.engine), "0001")
    full, partial = os.urandom(256 * 32), os.urandom(3 * 32)
    with db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO record_tiles (level, idx, hashes) VALUES (0, 0, :a), (0, 1, :b)"),
            {"a": full, "b": partial},
        )
    migrate(db.engine)
    with db.engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT idx, inner FROM record_tiles")).all())
    db.dispose()
    assert rows == {0: inner_hashes(full), 1: None}
