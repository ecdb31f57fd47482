"""compute: the metrics a job posts while it runs (issue 16).

One row per job, metric name and step (a step sent again replaces its row), so a training
run's loss, learning rate and throughput can be followed live. Private telemetry of the
job's project: never on the public record.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_job_metrics",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["compute_jobs.id"],
            name=op.f("fk_compute_job_metrics_job_id_compute_jobs"),
        ),
        sa.PrimaryKeyConstraint("job_id", "name", "step", name=op.f("pk_compute_job_metrics")),
    )


def downgrade() -> None:
    op.drop_table("compute_job_metrics")
