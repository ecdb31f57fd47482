"""identity: the containment level a job's token reads at (issue 13).

A job's token (`project` set, named `job/<id>`) now carries its job's level, and
`authenticate` caps the holder's clearance at it. Tokens of jobs still running when this
migration runs take their job's level; a confined token without one reads at CL-1.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("level", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE identity_tokens SET level = ("
        " SELECT compute_jobs.level FROM compute_jobs"
        " WHERE 'job/' || CAST(compute_jobs.id AS VARCHAR(20)) = identity_tokens.name"
        ") WHERE project IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.drop_column("level")
