"""Record tiles keep a full tile's inner hashes, so proofs never rehash a stored tile.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:11:59.782876
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_tiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inner", sa.LargeBinary(), nullable=True))
    # Fill in the tiles that were already full (the code of this revision, frozen here).
    tiles = sa.table(
        "record_tiles",
        sa.column("level", sa.Integer),
        sa.column("idx", sa.BigInteger),
        sa.column("hashes", sa.LargeBinary),
        sa.column("inner", sa.LargeBinary),
    )
    bind = op.get_bind()
    for level, idx, hashes in bind.execute(sa.select(tiles.c.level, tiles.c.idx, tiles.c.hashes)):
        if len(hashes) == 256 * 32:
            bind.execute(
                tiles.update()
                .where(tiles.c.level == level, tiles.c.idx == idx)
                .values(inner=_inner(hashes))
            )


def _inner(tile: bytes) -> bytes:
    row = [tile[i : i + 32] for i in range(0, len(tile), 32)]
    out = []
    while len(row) > 1:
        row = [
            hashlib.sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, len(row), 2)
        ]
        out.extend(row)
    return b"".join(out)


def downgrade() -> None:
    with op.batch_alter_table("record_tiles", schema=None) as batch_op:
        batch_op.drop_column("inner")
