"""Artifacts: repositories, signed versions and their files, tags, resumable uploads, lineage.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:38:03.247630
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts_repos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("visibility", sa.String(length=10), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("compartments", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["identity_people.id"],
            name=op.f("fk_artifacts_repos_owner_id_identity_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_repos")),
        sa.UniqueConstraint(
            "kind", "namespace", "name", name=op.f("uq_artifacts_repos_kind_namespace_name")
        ),
    )
    with op.batch_alter_table("artifacts_repos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_repos_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_artifacts_repos_project"), ["project"], unique=False)

    op.create_table(
        "artifacts_uploads",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("blake3", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_artifacts_uploads_person_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["artifacts_repos.id"],
            name=op.f("fk_artifacts_uploads_repo_id_artifacts_repos"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_uploads")),
    )
    with op.batch_alter_table("artifacts_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_uploads_blake3"), ["blake3"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_artifacts_uploads_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_artifacts_uploads_repo_id"), ["repo_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_artifacts_uploads_state"), ["state"], unique=False)

    op.create_table(
        "artifacts_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(length=40), nullable=False),
        sa.Column("statement_sha256", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("licenses", sa.JSON(), nullable=False),
        sa.Column("license_flags", sa.JSON(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("croissant", sa.JSON(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=True),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["artifacts_repos.id"],
            name=op.f("fk_artifacts_versions_repo_id_artifacts_repos"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_versions")),
        sa.UniqueConstraint("repo_id", "number", name=op.f("uq_artifacts_versions_repo_id_number")),
    )
    with op.batch_alter_table("artifacts_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_versions_commit"), ["commit"], unique=False)
        batch_op.create_index(batch_op.f("ix_artifacts_versions_job"), ["job"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_artifacts_versions_repo_id"), ["repo_id"], unique=False
        )

    op.create_table(
        "artifacts_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blake3", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifacts_versions.id"],
            name=op.f("fk_artifacts_files_version_id_artifacts_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_files")),
        sa.UniqueConstraint("version_id", "path", name=op.f("uq_artifacts_files_version_id_path")),
    )
    with op.batch_alter_table("artifacts_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_files_blake3"), ["blake3"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_artifacts_files_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "artifacts_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=20), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["artifacts_versions.id"],
            name=op.f("fk_artifacts_lineage_source_id_artifacts_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifacts_versions.id"],
            name=op.f("fk_artifacts_lineage_version_id_artifacts_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_lineage")),
        sa.UniqueConstraint(
            "version_id",
            "source_id",
            "relation",
            name=op.f("uq_artifacts_lineage_version_id_source_id_relation"),
        ),
    )
    with op.batch_alter_table("artifacts_lineage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifacts_lineage_source_id"), ["source_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_artifacts_lineage_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "artifacts_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("moved_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["artifacts_repos.id"],
            name=op.f("fk_artifacts_tags_repo_id_artifacts_repos"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifacts_versions.id"],
            name=op.f("fk_artifacts_tags_version_id_artifacts_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts_tags")),
        sa.UniqueConstraint("repo_id", "name", name=op.f("uq_artifacts_tags_repo_id_name")),
    )
    with op.batch_alter_table("artifacts_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_tags_repo_id"), ["repo_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("artifacts_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_tags_repo_id"))

    op.drop_table("artifacts_tags")
    with op.batch_alter_table("artifacts_lineage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_lineage_version_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_lineage_source_id"))

    op.drop_table("artifacts_lineage")
    with op.batch_alter_table("artifacts_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_files_version_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_files_blake3"))

    op.drop_table("artifacts_files")
    with op.batch_alter_table("artifacts_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_versions_repo_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_versions_job"))
        batch_op.drop_index(batch_op.f("ix_artifacts_versions_commit"))

    op.drop_table("artifacts_versions")
    with op.batch_alter_table("artifacts_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_uploads_state"))
        batch_op.drop_index(batch_op.f("ix_artifacts_uploads_repo_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_uploads_person_id"))
        batch_op.drop_index(batch_op.f("ix_artifacts_uploads_blake3"))

    op.drop_table("artifacts_uploads")
    with op.batch_alter_table("artifacts_repos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_repos_project"))
        batch_op.drop_index(batch_op.f("ix_artifacts_repos_owner_id"))

    op.drop_table("artifacts_repos")
