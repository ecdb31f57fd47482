"""identity: confined tokens, the level a job's token reads at, operator-made changes (issue 13). Placeholder reserved while the work lands; filled in by that change.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
