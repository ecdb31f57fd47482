"""portal: server-side sessions (issue 13). Placeholder reserved while the work lands; filled in by that change.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
