"""workloads: each workload job's configuration, and published evaluations (issue 16).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_sha256", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=300), nullable=True),
        sa.Column("model", sa.String(length=300), nullable=True),
        sa.Column("out", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["compute_jobs.id"], name=op.f("fk_workloads_job_id_compute_jobs")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_workloads")),
    )
    op.create_table(
        "workloads_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=80), nullable=False),
        sa.Column("harness", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("dataset", sa.String(length=300), nullable=False),
        sa.Column("log", sa.String(length=300), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("sample_root", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["compute_jobs.id"],
            name=op.f("fk_workloads_evaluations_job_id_compute_jobs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workloads_evaluations")),
        sa.UniqueConstraint("job_id", name=op.f("uq_workloads_evaluations_job_id")),
    )
    with op.batch_alter_table("workloads_evaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_workloads_evaluations_task"), ["task"])
        batch_op.create_index(batch_op.f("ix_workloads_evaluations_model"), ["model"])


def downgrade() -> None:
    with op.batch_alter_table("workloads_evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workloads_evaluations_model"))
        batch_op.drop_index(batch_op.f("ix_workloads_evaluations_task"))
    op.drop_table("workloads_evaluations")
    op.drop_table("workloads")
