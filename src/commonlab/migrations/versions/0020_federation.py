"""federation: identities at OpenID Connect providers, affiliation mappings, affiliations
awaiting an operator, sign-ins in flight (issue 21).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 09:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from commonlab.db import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_federated_identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("identity_people.id"), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("issuer", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_sign_in_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("issuer", "subject"),
    )
    op.create_index(
        "ix_identity_federated_identities_person_id", "identity_federated_identities", ["person_id"]
    )
    op.create_table(
        "identity_affiliation_mappings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("value", sa.String(300), nullable=False, unique=True),
        sa.Column(
            "institution_id",
            sa.Integer(),
            sa.ForeignKey("identity_institutions.id"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_identity_affiliation_mappings_institution_id",
        "identity_affiliation_mappings",
        ["institution_id"],
    )
    op.create_table(
        "identity_pending_affiliations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("identity_people.id"), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decision", sa.String(10), nullable=True),
        sa.Column("decided_by", sa.String(40), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )
    for column in ("person_id", "value"):
        op.create_index(
            f"ix_identity_pending_affiliations_{column}",
            "identity_pending_affiliations",
            [column],
        )
    op.create_table(
        "identity_federation_logins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("browser_sha256", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column(
            "link_person_id", sa.Integer(), sa.ForeignKey("identity_people.id"), nullable=True
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("identity_federation_logins")
    op.drop_table("identity_pending_affiliations")
    op.drop_table("identity_affiliation_mappings")
    op.drop_table("identity_federated_identities")
