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
