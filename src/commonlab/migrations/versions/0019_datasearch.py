"""datasearch: index jobs in flight, opt-outs and the records they matched (issue 18).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasearch_builds",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("compute_jobs.id"), primary_key=True),
        sa.Column("dataset", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_datasearch_builds_dataset", "datasearch_builds", ["dataset"])
    op.create_table(
        "datasearch_optouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_sha256", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(40), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_datasearch_optouts_requester", "datasearch_optouts", ["requester"])
    op.create_table(
        "datasearch_optout_matches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "optout_id", sa.Integer(), sa.ForeignKey("datasearch_optouts.id"), nullable=False
        ),
        sa.Column("dataset", sa.String(300), nullable=False),
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("record", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    for column in ("optout_id", "dataset", "sha256"):
        op.create_index(
            f"ix_datasearch_optout_matches_{column}", "datasearch_optout_matches", [column]
        )


def downgrade() -> None:
    op.drop_table("datasearch_optout_matches")
    op.drop_table("datasearch_optouts")
    op.drop_table("datasearch_builds")
