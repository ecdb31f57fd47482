"""artifacts: what each job read (issue 13). Placeholder reserved while the work lands; filled in by that change.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
