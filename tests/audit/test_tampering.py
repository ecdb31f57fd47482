"""What issue 17 asks of the audit, on the demo as `up --demo` seeds it: each figure changed in
the database behind the facility's back — a vote's choice, a ledger line's hours, an award's
size, a member's contribution — is named by `commonlab audit`; and a log truncated behind the
signed checkpoint is refused before anything is replayed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from commonlab.audit.log import HttpSource, LogError, read_log
from commonlab.audit.published import Published
from commonlab.audit.run import AuditReport, audit
from commonlab.demo import seed_demo
from tests.cli.conftest import Served, cli_config, served  # noqa: F401  (fixtures)


def audited(served: Served) -> AuditReport:  # noqa: F811
    facility = served.facility
    facility.sequence_now()
    log = read_log(HttpSource(served.url), facility.signer.verifier_key())
    return audit(log, Published(served.url))


def behind_its_back(served: Served, *statements: str) -> None:  # noqa: F811
    with served.facility.db.session() as db, db.begin():
        for statement in statements:
            db.execute(text(statement))


PROJ_4 = "(SELECT id FROM allocation_allocations WHERE project = 'proj-4')"
IT = "(SELECT id FROM governance_member_states WHERE code = 'IT')"
# Each tampering, and a claim the audit must make about it (what the record says, the
# facility): the figure itself, not only what it moves.
TAMPERINGS: dict[str, tuple[list[str], Callable[[str], bool]]] = {
    "a vote's choice": (
        [f"UPDATE governance_votes SET choice = 'no' WHERE member_state_id = {IT}"],
        lambda claim: claim.startswith("motion/") and claim.endswith("vote IT"),
    ),
    "a ledger line's hours": (
        [f"UPDATE allocation_ledger SET hours = 1500 "
         f"WHERE kind = 'settle' AND allocation_id = {PROJ_4}"],
        lambda claim: claim.startswith("share IT") and claim.endswith("delivered_hours"),
    ),
    "an award's size": (
        ["UPDATE allocation_allocations "
         f"""SET budget = '{{"H100": "999999"}}' WHERE id = {PROJ_4}"""],
        lambda claim: claim.endswith(" budget"),
    ),
    "a member's contribution": (
        ["UPDATE governance_scales SET shares = "
         """'{"IT": "35", "FR": "15", "DE": "20", "ES": "15", "SE": "15"}' """
         "WHERE id = (SELECT max(id) FROM governance_scales)"],
        lambda claim: "IT" in claim and ("scale" in claim or "contribution" in claim),
    ),
}  # fmt: skip


def test_the_demo_audits_clean(served):  # noqa: F811
    with served.facility.db.session() as db:
        seed_demo(db)
    report = audited(served)
    assert [d.line() for d in report.findings.differences] == []
    assert sum(report.findings.checked.values()) > 700


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_figure_changed_behind_the_facilitys_back_is_named(served, tampering):  # noqa: F811
    with served.facility.db.session() as db:
        seed_demo(db)
    statements, names_it = TAMPERINGS[tampering]
    behind_its_back(served, *statements)
    report = audited(served)
    named = [d for d in report.findings.differences if names_it(d.claim)]
    assert named, [d.line() for d in report.findings.differences]


def test_a_truncated_log_is_refused(served):  # noqa: F811
    with served.facility.db.session() as db:
        seed_demo(db)
    served.facility.sequence_now()
    # The last entries go, behind the signed checkpoint that still counts them.
    behind_its_back(
        served,
        "DELETE FROM record_private_openings WHERE entry_id IN "
        "(SELECT id FROM record_entries WHERE seq >= (SELECT max(seq) - 9 FROM record_entries))",
        "DELETE FROM record_entries WHERE seq >= (SELECT max(seq) - 9 FROM record_entries)",
    )
    with pytest.raises(LogError) as refused:
        read_log(HttpSource(served.url), served.facility.signer.verifier_key())
    assert "missing though the signed checkpoint counts" in str(refused.value), refused.value
