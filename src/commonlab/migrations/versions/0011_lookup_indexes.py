"""Indexes for two lookups: the size of versions' files (an upload that declares no digest
asks whether its repository holds a file of that size) and tokens' names (a job's token is
found by `job/<id>` when the job ends).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 07:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifacts_files_size"), ["size"], unique=False)
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_tokens_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("identity_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_tokens_name"))
    with op.batch_alter_table("artifacts_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_files_size"))
