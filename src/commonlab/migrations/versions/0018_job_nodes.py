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


def upgrade() -> None:
    with op.batch_alter_table("compute_jobs") as batch:
        batch.add_column(sa.Column("nodes", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("compute_jobs") as batch:
        batch.drop_column("nodes")
