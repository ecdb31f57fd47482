"""allocation: one close per reservation, enforced by the database (issue 13).

A closing ledger line's `reservation_id` becomes unique, so of two concurrent closes of one
reservation only one can commit; balances may not go below zero; a hold made by a job's
admission is marked (`for_job`) so that only the job's end closes it. Closes written twice
before this migration (the race it removes) are cut back to the first, closes written by
hand for jobs still running are taken back (the job's end closes the hold), and the
balances rebuilt from the ledger so they hold no negative sums. Their record entries
stay, as every entry does.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:40:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The ledger is altered in place, never rebuilt (as batch mode would on SQLite): the jobs'
    # foreign keys to it would refuse the rebuild.
    op.add_column(
        "allocation_ledger",
        sa.Column("for_job", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.get_bind().execute(
        sa.text(
            "UPDATE allocation_ledger SET for_job = :yes WHERE id IN "
            "(SELECT reservation_id FROM compute_jobs WHERE reservation_id IS NOT NULL)"
        ),
        {"yes": True},
    )
    if _cut_repeated_closes() + _reopen_holds_of_unfinished_jobs():
        op.execute("DELETE FROM allocation_balances")
        _migration_0009()._fill_from_the_ledger()
    op.drop_index(op.f("ix_allocation_ledger_reservation_id"), table_name="allocation_ledger")
    op.create_index(
        op.f("ix_allocation_ledger_reservation_id"),
        "allocation_ledger",
        ["reservation_id"],
        unique=True,
    )
    with op.batch_alter_table("allocation_balances", schema=None) as batch_op:
        batch_op.create_check_constraint(
            batch_op.f("ck_allocation_balances_held_not_negative"), "held > -0.005"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_allocation_balances_settled_not_negative"), "settled > -0.005"
        )


def _cut_repeated_closes() -> int:
    """Delete every closing line but the first of each reservation; how many went."""
    bind = op.get_bind()
    repeated = bind.execute(
        sa.text(
            "SELECT id FROM allocation_ledger AS later WHERE reservation_id IS NOT NULL "
            "AND EXISTS (SELECT 1 FROM allocation_ledger AS earlier "
            "WHERE earlier.reservation_id = later.reservation_id AND earlier.id < later.id)"
        )
    ).scalars()
    ids = list(repeated)
    _delete_lines(ids)
    return len(ids)


def _reopen_holds_of_unfinished_jobs() -> int:
    """Delete the closes written by hand for jobs that have not ended (an operator's release
    of a running job's hold stranded the job: its end had nothing left to settle). The job's
    own end closes the hold again; how many went."""
    bind = op.get_bind()
    ids = list(
        bind.execute(
            sa.text(
                "SELECT line.id FROM allocation_ledger AS line "
                "JOIN compute_jobs AS job ON job.reservation_id = line.reservation_id "
                "WHERE job.state IN ('admitted', 'queued', 'running')"
            )
        ).scalars()
    )
    _delete_lines(ids)
    return len(ids)


def _delete_lines(ids: list[int]) -> None:
    if ids:
        op.get_bind().execute(
            sa.text("DELETE FROM allocation_ledger WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": ids},
        )


def _migration_0009():  # its ledger-to-balances fill, not copied here
    path = Path(__file__).with_name("0009_allocation_balances.py")
    spec = importlib.util.spec_from_file_location("commonlab_migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    with op.batch_alter_table("allocation_balances", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_allocation_balances_settled_not_negative"), type_="check"
        )
        batch_op.drop_constraint(
            batch_op.f("ck_allocation_balances_held_not_negative"), type_="check"
        )
    op.drop_index(op.f("ix_allocation_ledger_reservation_id"), table_name="allocation_ledger")
    op.create_index(
        op.f("ix_allocation_ledger_reservation_id"),
        "allocation_ledger",
        ["reservation_id"],
        unique=False,
    )
    op.execute("ALTER TABLE allocation_ledger DROP COLUMN for_job")  # in place, as above
