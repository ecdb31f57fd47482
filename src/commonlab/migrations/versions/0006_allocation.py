"""Allocation: calls, proposals, reviews, conflicts, replies, allocations and the usage ledger.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 01:01:31.739590
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commonlab.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("pool", sa.String(length=40), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=False),
        sa.Column("opens_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closes_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("eligible_kinds", sa.JSON(), nullable=True),
        sa.Column("eligible_countries", sa.JSON(), nullable=True),
        sa.Column("rubric", sa.JSON(), nullable=False),
        sa.Column("exclude_same_country", sa.Boolean(), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_calls")),
    )
    op.create_table(
        "allocation_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("declared_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_conflicts_person_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_conflicts_reviewer_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_conflicts")),
        sa.UniqueConstraint(
            "reviewer_id", "person_id", name=op.f("uq_allocation_conflicts_reviewer_id_person_id")
        ),
    )
    with op.batch_alter_table("allocation_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_conflicts_reviewer_id"), ["reviewer_id"], unique=False
        )

    op.create_table(
        "allocation_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("pi_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("team", sa.JSON(), nullable=False),
        sa.Column("co_authors", sa.JSON(), nullable=False),
        sa.Column("requested", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("release_plan", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("score", sa.String(length=12), nullable=True),
        sa.Column("submitted_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["allocation_calls.id"],
            name=op.f("fk_allocation_proposals_call_id_allocation_calls"),
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["identity_institutions.id"],
            name=op.f("fk_allocation_proposals_institution_id_identity_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["pi_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_proposals_pi_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_proposals")),
    )
    with op.batch_alter_table("allocation_proposals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_proposals_call_id"), ["call_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_allocation_proposals_pi_id"), ["pi_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_allocation_proposals_status"), ["status"], unique=False
        )

    op.create_table(
        "allocation_allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("project", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("pi_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("pool", sa.String(length=40), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["identity_institutions.id"],
            name=op.f("fk_allocation_allocations_institution_id_identity_institutions"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["allocation_allocations.id"],
            name=op.f("fk_allocation_allocations_parent_id_allocation_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["pi_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_allocations_pi_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["allocation_proposals.id"],
            name=op.f("fk_allocation_allocations_proposal_id_allocation_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_allocations")),
    )
    with op.batch_alter_table("allocation_allocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_allocations_country"), ["country"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_allocations_parent_id"), ["parent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_allocations_project"), ["project"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_allocations_status"), ["status"], unique=False
        )

    op.create_table(
        "allocation_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["allocation_proposals.id"],
            name=op.f("fk_allocation_replies_proposal_id_allocation_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_replies")),
    )
    with op.batch_alter_table("allocation_replies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_replies_proposal_id"), ["proposal_id"], unique=False
        )

    op.create_table(
        "allocation_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("submitted_at", commonlab.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["allocation_proposals.id"],
            name=op.f("fk_allocation_reviews_proposal_id_allocation_proposals"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["identity_people.id"],
            name=op.f("fk_allocation_reviews_reviewer_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_reviews")),
        sa.UniqueConstraint(
            "proposal_id", "reviewer_id", name=op.f("uq_allocation_reviews_proposal_id_reviewer_id")
        ),
    )
    with op.batch_alter_table("allocation_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_reviews_proposal_id"), ["proposal_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_reviews_reviewer_id"), ["reviewer_id"], unique=False
        )

    op.create_table(
        "allocation_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("accelerator", sa.String(length=32), nullable=False),
        sa.Column("hours", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("at", commonlab.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocation_allocations.id"],
            name=op.f("fk_allocation_ledger_allocation_id_allocation_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"],
            ["allocation_ledger.id"],
            name=op.f("fk_allocation_ledger_reservation_id_allocation_ledger"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_ledger")),
    )
    with op.batch_alter_table("allocation_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_ledger_allocation_id"), ["allocation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_allocation_ledger_reservation_id"), ["reservation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("allocation_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_ledger_reservation_id"))
        batch_op.drop_index(batch_op.f("ix_allocation_ledger_allocation_id"))

    op.drop_table("allocation_ledger")
    with op.batch_alter_table("allocation_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_reviews_reviewer_id"))
        batch_op.drop_index(batch_op.f("ix_allocation_reviews_proposal_id"))

    op.drop_table("allocation_reviews")
    with op.batch_alter_table("allocation_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_replies_proposal_id"))

    op.drop_table("allocation_replies")
    with op.batch_alter_table("allocation_allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_allocations_status"))
        batch_op.drop_index(batch_op.f("ix_allocation_allocations_project"))
        batch_op.drop_index(batch_op.f("ix_allocation_allocations_parent_id"))
        batch_op.drop_index(batch_op.f("ix_allocation_allocations_country"))

    op.drop_table("allocation_allocations")
    with op.batch_alter_table("allocation_proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_proposals_status"))
        batch_op.drop_index(batch_op.f("ix_allocation_proposals_pi_id"))
        batch_op.drop_index(batch_op.f("ix_allocation_proposals_call_id"))

    op.drop_table("allocation_proposals")
    with op.batch_alter_table("allocation_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_conflicts_reviewer_id"))

    op.drop_table("allocation_conflicts")
    op.drop_table("allocation_calls")
