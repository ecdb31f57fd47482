"""Alembic environment: runs against the engine commonlab hands it (never a second config)."""

from __future__ import annotations

from alembic import context

from commonlab.db import one_at_a_time
from commonlab.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    # Hosts started at once on a fresh database: one migrates, the others then find it done.
    one_at_a_time(connection, "clmigrat")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
