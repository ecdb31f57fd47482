"""identity: the device authorization grant behind `commonlab login` (RFC 8628, issue 21).

One row per device's request to sign in: both its codes only as SHA-256, who approved or
denied it and from which sign-in, how often it may poll, and the token it fetched (once).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_device_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_code_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_code_sha256", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("requested_from", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", UTCDateTime(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("approver_token_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_identity_device_grants_person_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["approver_token_id"],
            ["identity_tokens.id"],
            name=op.f("fk_identity_device_grants_approver_token_id_identity_tokens"),
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["identity_tokens.id"],
            name=op.f("fk_identity_device_grants_token_id_identity_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_device_grants")),
        sa.UniqueConstraint(
            "device_code_sha256", name=op.f("uq_identity_device_grants_device_code_sha256")
        ),
        sa.UniqueConstraint(
            "user_code_sha256", name=op.f("uq_identity_device_grants_user_code_sha256")
        ),
    )
    with op.batch_alter_table("identity_device_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_device_grants_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_device_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_device_grants_person_id"))
    op.drop_table("identity_device_grants")
