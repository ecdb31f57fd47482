"""Project members: the PI and team of each awarded allocation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 01:12:36.831034
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commonlab.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("added_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_members_person_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_members")),
        sa.UniqueConstraint(
            "project", "person_id", name=op.f("uq_allocation_members_project_person_id")
        ),
    )
    with op.batch_alter_table("allocation_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_members_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_members_project"), ["project"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("allocation_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_members_project"))
        batch_op.drop_index(batch_op.f("ix_allocation_members_person_id"))

    op.drop_table("allocation_members")
