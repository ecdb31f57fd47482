"""Governance: member states, delegates, contribution scales, regulations, motions, votes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:33:37.111631
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commonlab.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_member_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("admitted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("admitted_by_motion", sa.Integer(), nullable=True),
        sa.Column("removed_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_member_states")),
        sa.UniqueConstraint("code", name=op.f("uq_governance_member_states_code")),
    )
    op.create_table(
        "governance_delegates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("member_state_id", sa.Integer(), nullable=False),
        sa.Column("appointed_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_state_id"],
            ["governance_member_states.id"],
            name=op.f("fk_governance_delegates_member_state_id_governance_member_states"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_governance_delegates_person_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_delegates")),
    )
    with op.batch_alter_table("governance_delegates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_delegates_member_state_id"), ["member_state_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_governance_delegates_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "governance_motions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("tabled_by", sa.Integer(), nullable=False),
        sa.Column("tabled_for", sa.Integer(), nullable=False),
        sa.Column("opens_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closes_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("decided_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tabled_by"],
            ["identity_people.id"],
            name=op.f("fk_governance_motions_tabled_by_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["tabled_for"],
            ["governance_member_states.id"],
            name=op.f("fk_governance_motions_tabled_for_governance_member_states"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_motions")),
    )
    with op.batch_alter_table("governance_motions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_motions_closes_at"), ["closes_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_governance_motions_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_governance_motions_status"), ["status"], unique=False)

    op.create_table(
        "governance_regulations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("adopted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("motion_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["motion_id"],
            ["governance_motions.id"],
            name=op.f("fk_governance_regulations_motion_id_governance_motions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_regulations")),
        sa.UniqueConstraint("version", name=op.f("uq_governance_regulations_version")),
    )
    op.create_table(
        "governance_scales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shares", sa.JSON(), nullable=False),
        sa.Column("adopted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("motion_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["motion_id"],
            ["governance_motions.id"],
            name=op.f("fk_governance_scales_motion_id_governance_motions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_scales")),
    )
    op.create_table(
        "governance_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("motion_id", sa.Integer(), nullable=False),
        sa.Column("member_state_id", sa.Integer(), nullable=False),
        sa.Column("choice", sa.String(length=8), nullable=False),
        sa.Column("cast_by", sa.Integer(), nullable=False),
        sa.Column("cast_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cast_by"],
            ["identity_people.id"],
            name=op.f("fk_governance_votes_cast_by_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["member_state_id"],
            ["governance_member_states.id"],
            name=op.f("fk_governance_votes_member_state_id_governance_member_states"),
        ),
        sa.ForeignKeyConstraint(
            ["motion_id"],
            ["governance_motions.id"],
            name=op.f("fk_governance_votes_motion_id_governance_motions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_votes")),
        sa.UniqueConstraint(
            "motion_id",
            "member_state_id",
            name=op.f("uq_governance_votes_motion_id_member_state_id"),
        ),
    )
    with op.batch_alter_table("governance_votes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_votes_motion_id"), ["motion_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("governance_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_votes_motion_id"))

    op.drop_table("governance_votes")
    op.drop_table("governance_scales")
    op.drop_table("governance_regulations")
    with op.batch_alter_table("governance_motions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_motions_status"))
        batch_op.drop_index(batch_op.f("ix_governance_motions_kind"))
        batch_op.drop_index(batch_op.f("ix_governance_motions_closes_at"))

    op.drop_table("governance_motions")
    with op.batch_alter_table("governance_delegates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_delegates_person_id"))
        batch_op.drop_index(batch_op.f("ix_governance_delegates_member_state_id"))

    op.drop_table("governance_delegates")
    op.drop_table("governance_member_states")
