"""Allocation balances: running sums of the ledger per allocation, class and quarter,
filled from the ledger lines already written.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 02:54:35.352506
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_balances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.Integer(), nullable=False),
        sa.Column("accelerator", sa.String(length=32), nullable=False),
        sa.Column("quarter", sa.Integer(), nullable=False),
        sa.Column("settled", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("held", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocation_allocations.id"],
            name=op.f("fk_allocation_balances_allocation_id_allocation_allocations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_balances")),
        sa.UniqueConstraint(
            "allocation_id",
            "accelerator",
            "quarter",
            name=op.f("uq_allocation_balances_allocation_id_accelerator_quarter"),
        ),
    )
    _fill_from_the_ledger()


def _fill_from_the_ledger() -> None:
    """Each reservation counts as held until closed, then as what its settle line charged;
    a sub-allocation's lines count toward its parent too. Plain SQL: no models here."""
    from decimal import Decimal

    from commonlab.allocation.rules import quarter_index

    bind = op.get_bind()
    allocations = {
        row.id: row
        for row in bind.execute(
            sa.text("SELECT id, parent_id, starts_on, ends_on FROM allocation_allocations")
        )
    }
    closing = {
        row.reservation_id: row
        for row in bind.execute(
            sa.text(
                "SELECT reservation_id, kind, hours FROM allocation_ledger "
                "WHERE reservation_id IS NOT NULL"
            )
        )
    }
    sums: dict[tuple[int, str, int], list[Decimal]] = {}
    reservations = bind.execute(
        sa.text(
            'SELECT id, allocation_id, accelerator, hours, "on" FROM allocation_ledger '
            "WHERE kind = 'reserve'"
        )
    )
    for line in reservations:
        closed = closing.get(line.id)
        settled = Decimal(closed.hours) if closed is not None and closed.kind == "settle" else 0
        held = 0 if closed is not None else Decimal(line.hours)
        owner = allocations[line.allocation_id]
        chain = [owner] if owner.parent_id is None else [owner, allocations[owner.parent_id]]
        for allocation in chain:
            on = _day(line.on)
            quarter = quarter_index(_day(allocation.starts_on), _day(allocation.ends_on), on)
            if quarter is None:
                continue
            total = sums.setdefault((allocation.id, line.accelerator, quarter), [0, 0])
            total[0] += settled
            total[1] += held
    for (allocation_id, accelerator, quarter), (settled, held) in sums.items():
        bind.execute(
            sa.text(
                "INSERT INTO allocation_balances "
                "(allocation_id, accelerator, quarter, settled, held) "
                "VALUES (:a, :c, :q, :s, :h)"
            ),
            {"a": allocation_id, "c": accelerator, "q": quarter, "s": str(settled), "h": str(held)},
        )


def _day(value):  # SQLite hands dates back as text
    from datetime import date

    return value if isinstance(value, date) else date.fromisoformat(str(value))


def downgrade() -> None:
    op.drop_table("allocation_balances")
