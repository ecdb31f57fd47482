"""compute: a job may run on several nodes (issue 16).

`nodes` counts the nodes a job runs on, one task each; its accelerators, CPUs and memory are
then each node's. Every job admitted before ran on one node, which the server default says.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not a batch: a batch on SQLite copies the table and drops the original,
# which the foreign keys of jobs' transitions, metrics and workloads refuse (SQLite has had
# ADD and DROP COLUMN since 3.35).
def upgrade() -> None:
    op.add_column(
        "compute_jobs", sa.Column("nodes", sa.Integer(), server_default="1", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("compute_jobs", "nodes")
