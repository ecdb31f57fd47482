"""identity: what each provider last said of a person's name and e-mail, so that a change
at the provider reaches the facility at the next sign-in unless the person changed it here.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 15:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_federated_identities") as table:
        table.add_column(sa.Column("claimed_name", sa.String(length=200), nullable=True))
        table.add_column(sa.Column("claimed_email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_federated_identities") as table:
        table.drop_column("claimed_email")
        table.drop_column("claimed_name")
