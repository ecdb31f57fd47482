"""portal: server-side sign-in sessions (issue 13).

The portal's cookie carried the API token itself and stayed valid after sign-out. A session
is now a row: the cookie holds a random id whose SHA-256 is `id_sha256`; the session names
the token it was opened with, expires on the server and ends at sign-out. Cookies issued
before this migration name no session and sign no one in.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_sha256", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["identity_people.id"],
            name=op.f("fk_portal_sessions_person_id_identity_people"),
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["identity_tokens.id"],
            name=op.f("fk_portal_sessions_token_id_identity_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
        sa.UniqueConstraint("id_sha256", name=op.f("uq_portal_sessions_id_sha256")),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_portal_sessions_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_portal_sessions_token_id"), ["token_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_sessions_token_id"))
        batch_op.drop_index(batch_op.f("ix_portal_sessions_person_id"))
    op.drop_table("portal_sessions")
