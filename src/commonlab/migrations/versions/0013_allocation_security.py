"""allocation: one close per reservation (issue 13). Placeholder reserved while the work lands; filled in by that change.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
