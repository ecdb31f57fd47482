"""Simulator: what-if comparisons attached to the council's motions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "simulator_whatifs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("motion_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("attached_by", sa.Integer(), nullable=False),
        sa.Column("attached_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attached_by"],
            ["identity_people.id"],
            name=op.f("fk_simulator_whatifs_attached_by_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["motion_id"],
            ["governance_motions.id"],
            name=op.f("fk_simulator_whatifs_motion_id_governance_motions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulator_whatifs")),
    )
    with op.batch_alter_table("simulator_whatifs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_simulator_whatifs_motion_id"), ["motion_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("simulator_whatifs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_simulator_whatifs_motion_id"))
    op.drop_table("simulator_whatifs")
