"""artifacts: what each facility job read (issue 13), so that what a job publishes is at
least as contained as everything it read, declared or not, and names it in its lineage; one
row per job, repository and version (or none: a partial unique index, NULLs being distinct).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts_job_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["compute_jobs.id"], name=op.f("fk_artifacts_job_reads_job_id_compute_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["artifacts_repos.id"],
            name=op.f("fk_artifacts_job_reads_repo_id_artifacts_repos"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifacts_versions.id"],
            name=op.f("fk_artifacts_job_reads_version_id_artifacts_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_job_reads")),
        sa.UniqueConstraint(
            "job_id",
            "repo_id",
            "version_id",
            name=op.f("uq_artifacts_job_reads_job_id_repo_id_version_id"),
        ),
    )
    with op.batch_alter_table("artifacts_job_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_job_reads_job_id"), ["job_id"], unique=False)
        # NULLs are distinct to the unique constraint: a read of the repository alone (no
        # version) is unique per job by this partial index.
        batch_op.create_index(
            "uq_artifacts_job_reads_job_id_repo_id_repository",
            ["job_id", "repo_id"],
            unique=True,
            sqlite_where=sa.text("version_id IS NULL"),
            postgresql_where=sa.text("version_id IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("artifacts_job_reads", schema=None) as batch_op:
        batch_op.drop_index("uq_artifacts_job_reads_job_id_repo_id_repository")
        batch_op.drop_index(batch_op.f("ix_artifacts_job_reads_job_id"))
    op.drop_table("artifacts_job_reads")
