"""The allocation book of `commonlab audit`: on the demo facility every figure it re-derives
from the record agrees with what the facility publishes (Italy's delivered hours among them);
a ledger line or an award's country changed in the database behind the service's back shows
up as exactly the figures it changes; and the share and usage definitions, on hand-made
entries, count a settlement on its reservation's day, non-member countries apart and a
sub-allocation toward its parent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from commonlab.audit.allocation import AllocationBook
from commonlab.audit.findings import Findings
from commonlab.audit.governance import GovernanceBook
from commonlab.audit.identity import IdentityBook
from commonlab.audit.log import Entry, HttpSource, read_log
from commonlab.audit.published import Published
from commonlab.audit.replay import Replay
from commonlab.audit.shares import last_quarters, quarter_of, tranche_split
from commonlab.demo import seed_demo
from commonlab.portal.allocation_views import _last_quarters
from commonlab.record.sequencer import sequence
from tests.cli.conftest import Served, cli_config, served  # noqa: F401  (fixtures)
from tests.journeys.conftest import demo  # noqa: F401  (fixture)


def audit_allocation(url: str, facility: Any) -> tuple[AllocationBook, Findings]:
    """Sequence what is committed, read the log through its tiles, replay it into the books
    allocation needs, and compare the identity and allocation books with the facility."""
    with facility.db.session() as session:
        sequence(session, facility.signer)
    key = httpx.get(f"{url}/api/v1/record/key").json()["verifier_key"]
    log = read_log(HttpSource(url), key)
    governance, identity = GovernanceBook(), IdentityBook()
    book = AllocationBook(governance, identity)
    Replay([governance, identity, book]).feed(log.entries)
    findings = Findings()
    published = Published(url)
    identity.compare(published, findings)
    book.compare(published, findings)
    return book, findings


# On the demo facility --------------------------------------------------------------------------


def test_on_the_demo_every_allocation_figure_agrees_with_the_record(demo):  # noqa: F811
    book, findings = audit_allocation(demo.url, demo.served.facility)
    assert [d.line() for d in findings.differences] == []
    assert findings.checked["allocation"] > 300
    assert findings.checked["identity"] >= 6 * 3  # the demo's institutions
    # Italy's hours over the /members page's year: the record's, and the facility's.
    spans = _last_quarters(date.today())
    year = (spans[0][0], spans[-1][1])
    params = {"start": year[0].isoformat(), "end": year[1].isoformat()}
    shown = httpx.get(f"{demo.url}/api/v1/reports/shares", params=params).json()
    [italy] = [s for s in shown["states"] if s["code"] == "IT"]
    [replayed] = [s for s in book.share_report(year)["states"] if s["code"] == "IT"]
    assert Decimal(replayed["delivered_hours"]) == Decimal(italy["delivered_hours"]) == 1400
    assert replayed["delivered_percent"] == italy["delivered_percent"]
    # What the audit cannot open, it says.
    assert any("committed" in what for what in findings.on_commitments)


# Tampering behind the service's back ------------------------------------------------------------


def _tamper(served: Served, statement: str) -> None:  # noqa: F811
    with served.facility.db.session() as session, session.begin():
        session.execute(text(statement))


def _spans_with_today() -> list[str]:
    today = datetime.now(UTC).date()
    quarter = quarter_of(today)
    recent = last_quarters(today)
    return [f"{a}..{b}" for a, b in (quarter, (recent[0][0], recent[-1][1]))]


def test_a_ledger_line_changed_in_the_database_is_named(served):  # noqa: F811
    with served.facility.db.session() as session:
        seed_demo(session)
    # Luca Ferri's project at Sapienza (IT) settled 1400 hours; the table now says 1500.
    _tamper(
        served,
        "UPDATE allocation_ledger SET hours = 1500 WHERE kind = 'settle' AND allocation_id = "
        "(SELECT id FROM allocation_allocations WHERE project = 'proj-4')",
    )
    _, findings = audit_allocation(served.url, served.facility)
    found = {d.claim: (d.replayed, d.published) for d in findings.differences}
    expected = set()
    for at in _spans_with_today():
        for source in ("", " (CSV)"):
            expected.add(f"share IT {at} delivered_hours{source}")
            for code in ("IT", "SE"):  # the two member states with hours: their shares move
                expected |= {
                    f"share {code} {at} delivered_percent{source}",
                    f"share {code} {at} deviation{source}",
                }
        for group in ("member IT", "institution Sapienza University of Rome", "call call/1"):
            by, _, name = group.partition(" ")
            expected.add(f"usage by {by} {at} {name} delivered_hours")
        expected.add(f"usage by project {at} proj-4 delivered_hours")
    assert set(found) == expected
    for at in _spans_with_today():
        assert found[f"share IT {at} delivered_hours"] == ("1400.00", "1500.00")
        assert found[f"share IT {at} delivered_percent"] == ("63.64", "65.22")


def test_an_awards_country_changed_in_the_database_is_named(served):  # noqa: F811
    with served.facility.db.session() as session:
        seed_demo(session)
    _tamper(served, "UPDATE allocation_allocations SET country = 'FR' WHERE project = 'proj-4'")
    book, findings = audit_allocation(served.url, served.facility)
    [proj4] = [a for a in book.allocations.values() if a.project == "proj-4"]
    found = {d.claim: (d.replayed, d.published) for d in findings.differences}
    assert found[f"allocation/{proj4.id} country"] == ("IT", "FR")
    for at in _spans_with_today():
        assert found[f"share IT {at} delivered_hours"] == ("1400.00", "0")
        assert found[f"share FR {at} delivered_hours"] == ("0", "1400.00")
    # Everything else named is a figure the country moves: the two states' lines, and the
    # usage report's groups by member state.
    for claim in found:
        assert (
            claim == f"allocation/{proj4.id} country"
            or claim.startswith(("share IT ", "share FR "))
            or (claim.startswith("usage by member ") and claim.endswith((" groups", "IT", "FR")))
        ), claim


# The definitions, on hand-made entries ---------------------------------------------------------


@dataclass
class Member:
    code: str
    name: str
    active: bool = True


@dataclass
class StandInGovernance:
    """What GovernanceBook offers the allocation book: members, scale and regulation."""

    members: dict[str, Member]
    scale: dict[str, Decimal]
    regulation: dict[str, Any] | None


class Log:
    """Hand-made entries, in order."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        for number, (name, country) in enumerate(
            [("Sapienza", "IT"), ("KTH", "SE"), ("University of Nairobi", "KE")], start=1
        ):
            self.add("identity:institution:created", f"institution/{number}", {
                "name": name, "country": country, "kind": "university",
            }, "2026-09-01T00:00:00")  # fmt: skip

    def add(
        self, type_: str, subject: str, data: dict[str, Any], at: str, *, actor: str = "p-op"
    ) -> None:
        self.entries.append(
            Entry(
                index=len(self.entries),
                type=type_,
                time=datetime.fromisoformat(at).replace(tzinfo=UTC),
                actor={"id": actor},
                subject=subject,
                data=data,
                schema=2,
                policy_set=None,
            )
        )

    def award(
        self, allocation: int, country: str, institution: int, hours: str, status: str = "active"
    ) -> None:
        self.add("allocation:proposal:submitted", f"proposal/{allocation}", {
            "call": 1, "requested": {"H100": hours}, "level": "CL-1",
        }, "2026-10-01T09:00:00", actor=f"p-pi{allocation}")  # fmt: skip
        self.add("allocation:review:submitted", f"proposal/{allocation}", {
            "reviewer": "p-rev",
        }, "2026-10-01T10:00:00")  # fmt: skip
        self.add("allocation:proposal:decided", f"proposal/{allocation}", {
            "decision": "awarded" if status == "active" else status, "score": None,
        }, "2026-10-01T11:00:00")  # fmt: skip
        self.add("allocation:allocation:granted", f"allocation/{allocation}", {
            "project": f"proj-{allocation}", "title": f"Project {allocation}",
            "proposal": allocation, "institution": institution, "country": country,
            "pool": "open_calls", "budget": {"H100": hours}, "starts_on": "2026-10-01",
            "ends_on": "2027-10-01", "status": status, "members": [f"p-pi{allocation}"],
        }, "2026-10-01T11:00:00")  # fmt: skip

    def charge(
        self, allocation: int, ledger: int, hours: str, *, on: str | None, held: str, closed: str
    ) -> None:
        """A reservation entered at `held`, settled with `hours` at `closed` (`on`: its day;
        None writes the line as schema 1 did, without one)."""
        day = {} if on is None else {"on": on}
        self.add("allocation:ledger:reserved", f"allocation/{allocation}", {
            "ledger": ledger, "class": "H100", "hours": hours, "job": f"job-{ledger}", **day,
        }, held)  # fmt: skip
        self.add("allocation:ledger:settled", f"allocation/{allocation}", {
            "ledger": ledger + 1, "reservation": ledger, "class": "H100", "hours": hours,
            "job": f"job-{ledger}", **day,
        }, closed)  # fmt: skip


REGULATION = {"allocation": {"share_tolerance_percent": "2", "council_threshold_hours": 50_000}}
Q4 = (date(2026, 10, 1), date(2027, 1, 1))
Q1 = (date(2027, 1, 1), date(2027, 4, 1))


def replayed(log: Log, *, regulation: dict[str, Any] | None = REGULATION) -> AllocationBook:
    governance = StandInGovernance(
        members={code: Member(code, code) for code in ("IT", "SE")},
        scale={"IT": Decimal(60), "SE": Decimal(40)},
        regulation=regulation,
    )
    identity = IdentityBook()
    book = AllocationBook(governance, identity)  # type: ignore[arg-type]
    Replay([identity, book]).feed(log.entries)
    return book


def states(report: dict[str, Any]) -> dict[str, tuple[str, str, str, bool]]:
    return {
        s["code"]: (s["delivered_hours"], s["delivered_percent"], s["deviation"], s["outside_band"])
        for s in report["states"]
    }


def test_a_settlement_counts_on_its_reservations_day_not_its_own():
    log = Log()
    log.award(1, "IT", 1, "9000")
    log.award(2, "SE", 2, "9000")
    # Reserved in December, settled in January: the hours were delivered in December.
    log.charge(1, 10, "300", on="2026-12-20", held="2026-12-20T10:00:00", closed="2027-01-05T10:00")
    # Entered in January for work done in November (backdated by hand).
    log.charge(2, 20, "100", on="2026-11-03", held="2027-01-06T10:00:00", closed="2027-01-06T11:00")
    book = replayed(log)
    assert states(book.share_report(Q4)) == {
        "IT": ("300.00", "75.00", "15.00", True),
        "SE": ("100.00", "25.00", "-15.00", True),
    }
    assert states(book.share_report(Q1)) == {
        "IT": ("0", "0", "-60", False),
        "SE": ("0", "0", "-40", False),
    }
    assert book.share_report(Q4)["tolerance_percent"] == "2"


def test_schema_1_lines_are_dated_by_their_reservations_entry_and_say_so():
    log = Log()
    log.award(1, "IT", 1, "9000")
    log.charge(1, 10, "300", on=None, held="2026-12-20T10:00:00", closed="2027-01-05T10:00")
    book = replayed(log)
    assert states(book.share_report(Q4))["IT"][0] == "300.00"
    assert states(book.share_report(Q1))["IT"][0] == "0"
    assert any("without a day `on`" in note for note in book.notes)


def test_a_non_member_country_is_shown_apart_and_in_no_states_share():
    log = Log()
    log.award(1, "IT", 1, "9000")
    log.award(3, "KE", 3, "9000")
    log.charge(1, 10, "200", on="2026-11-01", held="2026-11-01T10:00", closed="2026-11-01T12:00")
    log.charge(3, 30, "1130", on="2026-11-02", held="2026-11-02T10:00", closed="2026-11-02T12:00")
    report = replayed(log).share_report(Q4)
    assert states(report)["IT"] == ("200.00", "100.00", "40.00", True)
    assert "KE" not in states(report)
    assert report["outside_members"] == [{"country": "KE", "delivered_hours": "1130.00"}]
    usage = {r["group"]: r for r in replayed(log).usage_report("member", Q4)}
    assert usage["outside the member states"]["delivered_hours"] == Decimal(1130)


def test_a_sub_allocations_hours_count_toward_its_parent():
    log = Log()
    log.award(1, "IT", 1, "9000")
    log.add("allocation:allocation:sub_allocated", "allocation/7", {
        "parent": 1, "project": "proj-1.1", "title": "A student's share",
        "budget": {"H100": "1000"},
    }, "2026-10-02T09:00:00")  # fmt: skip
    log.charge(7, 70, "250", on="2026-10-15", held="2026-10-15T10:00", closed="2026-10-15T12:00")
    book = replayed(log)
    assert states(book.share_report(Q4))["IT"][0] == "250.00"  # the parent's country
    by_project = {r["group"]: r for r in book.usage_report("project", Q4)}
    assert set(by_project) == {"proj-1"}  # the parent's project: a sub-allocation is no row
    assert by_project["proj-1"]["delivered_hours"] == 250
    assert by_project["proj-1"]["budget_hours"] == 9000
    by_institution = {r["group"]: r for r in book.usage_report("institution", Q4)}
    assert by_institution["Sapienza"]["delivered_hours"] == 250
    # On the tranches, the line counts on the child and on its parent.
    balances = book.balances()
    assert balances[(7, "H100", 0)] == balances[(1, "H100", 0)] == (Decimal(250), Decimal(0))


def test_an_award_above_the_threshold_must_wait_and_draw_nothing_before_approval():
    log = Log()
    log.award(1, "IT", 1, "80000")  # above 50,000, yet granted active
    log.award(2, "SE", 2, "60000", status="awaiting_council")
    log.charge(2, 20, "10", on="2026-11-01", held="2026-11-01T10:00", closed="2026-11-01T12:00")
    findings = Findings()
    replayed(log).check_rules(findings)
    broken = {d.claim: (d.replayed, d.published) for d in findings.differences}
    assert broken == {
        "allocation/1 status as granted (80000 h, by the threshold)": (
            "awaiting_council",
            "active",
        ),
        "allocation/2 drew hours only while active (council approval first)": (
            "active",
            "awaiting_council",
        ),
    }


def test_quarters_and_tranches():
    assert last_quarters(date(2027, 2, 14)) == [
        (date(2026, 4, 1), date(2026, 7, 1)),
        (date(2026, 7, 1), date(2026, 10, 1)),
        (date(2026, 10, 1), date(2027, 1, 1)),
        (date(2027, 1, 1), date(2027, 4, 1)),
    ]
    tranches = tranche_split(Decimal(20000), date(2026, 12, 7), date(2027, 12, 7))
    assert [str(hours) for _, _, hours in tranches] == ["4931.51", "5041.10", "5041.10", "4986.29"]
    assert sum(hours for _, _, hours in tranches) == 20000
