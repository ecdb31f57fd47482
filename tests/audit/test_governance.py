"""The audit's governance book: the council replayed from the record and each motion re-decided
by the audit's own voting rules.

On a served demo facility where motions passed and failed, the book agrees with every figure
the facility publishes; a motion's status or a vote changed in the database behind the
service's back is reported, and only that; a log whose recorded outcome does not follow from
its votes is reported without any facility; and the rules themselves on their edges.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from commonlab.audit.findings import Findings
from commonlab.audit.governance import GovernanceBook, regulation_sha256
from commonlab.audit.log import Entry, HttpSource, read_log
from commonlab.audit.published import Published
from commonlab.audit.replay import Replay
from commonlab.audit.voting import tally
from commonlab.governance.models import MemberState, Motion, Vote
from commonlab.record.models import Entry as EntryRow
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.helpers import auth, http_client
from tests.journeys.conftest import Demo, demo  # noqa: F401  (fixture)

DELEGATES = {
    "IT": "Giulia Rossi",
    "FR": "Claire Martin",
    "DE": "Jonas Weber",
    "ES": "Lucía García",
    "SE": "Sofia Lindberg",
    "EE": "Kadri Tamm",
}


# On a served facility ---------------------------------------------------------------------


def council_session(demo: Demo) -> dict[str, int]:  # noqa: F811
    """Walk the demo's council on: Estonia admitted (double majority), the 80,000-hour award
    refused (a vote changed on the way), a witness registered; the motions' ids by name."""
    api = http_client(base_url=demo.url, timeout=30)
    tokens: dict[str, str] = {}

    def as_delegate(code: str) -> dict[str, str]:
        if code not in tokens:
            tokens[code] = demo.token_of(DELEGATES[code])
        return auth(tokens[code])

    def vote(code: str, motion_id: int, choice: str) -> dict[str, Any]:
        cast = api.post(
            f"/api/v1/motions/{motion_id}/votes", json={"choice": choice}, headers=as_delegate(code)
        )
        assert cast.status_code == 201, cast.text
        return cast.json()

    motions = {m["kind"]: m["id"] for m in api.get("/api/v1/motions").json()["items"]}
    admission, award = motions["admit_member"], motions["approve_allocation"]
    for code in ("FR", "DE", "ES"):
        decided = vote(code, admission, "yes")
    assert decided["status"] == "passed"

    operator = auth(demo.served.token)
    people = api.get("/api/v1/people", params={"q": "Kadri Tamm"}, headers=operator).json()
    kadri = next(p["id"] for p in people["items"] if p["name"] == "Kadri Tamm")
    seated = api.post("/api/v1/members/EE/delegates", json={"person_id": kadri}, headers=operator)
    assert seated.status_code == 201, seated.text
    # A delegate's name is public: renamed, the record says so, and the members list shows it.
    as_delegate("EE")  # her token, made while the demo still knows her by her first name
    renamed = api.patch(
        f"/api/v1/people/{kadri}", json={"name": "Kadri Tamm-Kask"}, headers=operator
    )
    assert renamed.status_code == 200, renamed.text

    for code, choice in [("IT", "yes"), ("SE", "yes"), ("SE", "no"), ("FR", "no"),
                         ("DE", "no"), ("ES", "abstain"), ("EE", "no")]:  # fmt: skip
        decided = vote(code, award, choice)
    assert decided["status"] == "failed"

    tabled = api.post(
        "/api/v1/motions",
        json={
            "kind": "register_witness",
            "title": "Register Tartu's witness",
            "payload": {"name": "witness.ut.ee", "verifier_key": _witness_key("witness.ut.ee")},
            "closes_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers=as_delegate("IT"),
    )
    assert tabled.status_code == 201, tabled.text
    witness = tabled.json()["id"]
    for code in DELEGATES:
        decided = vote(code, witness, "yes")
    assert decided["status"] == "passed"
    api.close()
    return {"admission": admission, "award": award, "witness": witness}


def governance_audit(demo: Demo) -> tuple[GovernanceBook, Findings]:  # noqa: F811
    """The governance book of `commonlab audit`, replayed from the verified log and compared."""
    facility = demo.served.facility
    with facility.db.session() as session, session.begin():
        appended = session.scalar(select(func.count()).select_from(EntryRow))
    http = httpx.Client(timeout=30)
    for _ in range(400):  # the server's sequencer signs what was appended, on its tick
        log = read_log(HttpSource(demo.url, http), facility.signer.verifier_key())
        if log.size >= appended:
            break
        time.sleep(0.05)
    assert log.size >= appended, "the sequencer did not sign every entry"
    book = GovernanceBook()
    Replay([book]).feed(log.entries)
    findings = Findings()
    book.compare(Published(demo.url, http), findings)
    http.close()
    return book, findings


def test_the_governance_book_agrees_with_the_facility(demo):  # noqa: F811
    ids = council_session(demo)
    book, findings = governance_audit(demo)

    assert [d.line() for d in findings.differences] == []
    assert findings.checked["governance"] > 150
    # What the allocation book reads: members, the scale, the regulation in force, the motions.
    assert {code for code, m in book.members.items() if m.active} == {*DELEGATES}
    assert (
        book.members["EE"].name == "Estonia" and book.members["EE"].admitted_by == ids["admission"]
    )
    assert book.scale["EE"] == Decimal(9) and sum(book.scale.values()) == 100
    assert book.regulation is not None
    assert book.regulation["title"] == "Regulation of the facility, 2027"
    assert [v.version for v in book.regulations] == [0, 1]
    assert book.regulations[0].document is not None  # schema 2: the founding entry carries it
    statuses = {name: book.motions[i].status for name, i in ids.items()}
    assert statuses == {"admission": "passed", "award": "failed", "witness": "passed"}
    award = book.motions[ids["award"]]
    assert award.votes["SE"] == "no" and award.tally.yes == 1 and award.tally.no == 4
    assert award.electorate == frozenset(DELEGATES)  # Estonia voted: a member by then
    # The admission was decided by the five founders: Estonia joined by its effect.
    assert book.motions[ids["admission"]].electorate == frozenset(DELEGATES) - {"EE"}
    assert list(book.members["EE"].delegates.values()) == ["Kadri Tamm-Kask"]
    assert not findings.notes


@pytest.mark.parametrize("tamper", ["status", "vote"])
def test_the_audit_names_what_was_changed_behind_the_service(demo, tamper):  # noqa: F811
    ids = council_session(demo)
    award = ids["award"]
    with demo.served.facility.db.session() as session, session.begin():
        if tamper == "status":
            session.execute(update(Motion).where(Motion.id == award).values(status="passed"))
        else:
            france = select(MemberState.id).where(MemberState.code == "FR").scalar_subquery()
            session.execute(
                update(Vote)
                .where(Vote.motion_id == award, Vote.member_state_id == france)
                .values(choice="yes")
            )
    _, findings = governance_audit(demo)

    said = [(d.claim, d.replayed, d.published) for d in findings.differences]
    if tamper == "status":
        assert said == [(f"motion/{award} status", "failed", "passed")]
    else:
        assert said == [(f"motion/{award} vote FR", "no", "yes")]


# From a log alone ---------------------------------------------------------------------------

T0 = datetime(2027, 1, 4, 9, tzinfo=UTC)
REGULATION = {"title": "Regulation 2028", "allocation": {"share_tolerance_percent": "5"}}


def entry(index: int, type_: str, subject: str, data: dict[str, Any], actor: str = "op") -> Entry:
    return Entry(
        index=index,
        type=type_,
        time=T0 + timedelta(minutes=index),
        actor={"id": actor},
        subject=subject,
        data=data,
        schema=2,
        policy_set=None,
    )


def council_log(*, recorded_status: str = "passed", recorded_yes: int = 2) -> list[Entry]:
    """Three founders; a regulation adopted by double majority (IT and FR yes: 2 of 3 states,
    70% of contributions; DE no), IT having voted no first."""
    founded = {
        "members": [
            {"code": "IT", "name": "Italy"},
            {"code": "FR", "name": "France"},
            {"code": "DE", "name": "Germany"},
        ],
        "scale": {"IT": "40", "FR": "30", "DE": "30"},
        "regulation": {"title": "Provisional regulation"},
    }
    tabled = {
        "kind": "adopt_regulation",
        "title": "Adopt 2028",
        "payload": {"regulation": REGULATION},
        "rule": "double",
        "for": "IT",
        "opens_at": T0.isoformat(),
        "closes_at": (T0 + timedelta(days=7)).isoformat(),
    }
    log = [
        entry(0, "governance:council:founded", "council", founded),
        entry(1, "governance:motion:tabled", "motion/1", tabled),
    ]
    for index, (code, choice, changed) in enumerate(
        [("IT", "no", False), ("IT", "yes", True), ("FR", "yes", False), ("DE", "no", False)],
        start=2,
    ):
        cast = {"member": code, "choice": choice, "changed": changed}
        log.append(entry(index, "governance:vote:cast", "motion/1", cast))
    passed = recorded_status == "passed"
    if passed:
        adopted = {"version": 1, "sha256": regulation_sha256(REGULATION), "motion": 1}
        log.append(entry(6, "governance:regulation:adopted", "regulation/1", adopted, "motion/1"))
    decided = {
        "status": recorded_status,
        "outcome": {
            "passed": passed,
            "members": 3,
            "yes": recorded_yes,
            "no": 1,
            "abstain": 0,
            "absent": 0,
            "yes_contribution_percent": "70",
        },
        "roll_call": {"IT": "yes", "FR": "yes", "DE": "no"},
        "closed_early": True,
    }
    log.append(entry(7, "governance:motion:decided", "motion/1", decided, "system"))
    return log


def replayed(log: list[Entry]) -> tuple[GovernanceBook, Findings]:
    book = GovernanceBook()
    Replay([book]).feed(log)
    findings = Findings()
    book.check_record(findings)
    return book, findings


def test_a_consistent_log_replays_clean():
    book, findings = replayed(council_log())
    assert findings.differences == []
    assert book.regulation == REGULATION
    assert book.regulation_at(T0) == {"title": "Provisional regulation"}
    assert book.motions[1].votes == {"IT": "yes", "FR": "yes", "DE": "no"}
    assert book.scale == {"IT": Decimal(40), "FR": Decimal(30), "DE": Decimal(30)}
    assert book.members_at(T0) == frozenset({"IT", "FR", "DE"})


def test_a_recorded_outcome_the_votes_do_not_give_is_reported():
    _, findings = replayed(council_log(recorded_yes=1))
    said = [(d.claim, d.replayed, d.published) for d in findings.differences]
    assert said == [("motion/1 (on the record) outcome yes", 2, 1)]


def test_a_motion_recorded_failed_when_its_votes_passed_it_is_reported():
    # Recorded "failed", with no effect: the votes pass it, so the effect is missing too.
    _, findings = replayed(council_log(recorded_status="failed"))
    said = [(d.claim, d.replayed, d.published) for d in findings.differences]
    assert ("motion/1 (on the record) outcome passed", True, False) in said
    assert ("motion/1 (on the record) status", "lapsed", "failed") in said


def test_an_adopted_regulation_that_does_not_hash_to_its_record_is_reported():
    log = council_log()
    forged = log[6]
    log[6] = entry(6, forged.type, forged.subject, {**forged.data, "sha256": "0" * 64}, "motion/1")
    _, findings = replayed(log)
    said = [(d.claim, d.replayed, d.published) for d in findings.differences]
    assert said == [
        ("regulation/1 sha256 (on the record)", regulation_sha256(REGULATION), "0" * 64)
    ]


def test_an_effect_in_the_name_of_a_motion_its_votes_failed_is_reported():
    log = council_log()
    france = log[4]
    log[4] = entry(4, france.type, france.subject, {**france.data, "choice": "no"})
    _, findings = replayed(log)
    said = [(d.claim, d.replayed, d.published) for d in findings.differences]
    assert ("motion/1 (on the record) status", "failed", "passed") in said
    assert ("motion/1 (on the record) effects", [], ["governance:regulation:adopted"]) in said
    assert ("motion/1 (on the record) roll call", {"IT": "yes", "FR": "no", "DE": "no"},
            {"IT": "yes", "FR": "yes", "DE": "no"}) in said  # fmt: skip


def test_a_schema_1_founding_leaves_version_0_on_the_facilitys_word():
    log = council_log()
    founded = log[0]
    log[0] = entry(0, founded.type, founded.subject,
                   {k: v for k, v in founded.data.items() if k != "regulation"})  # fmt: skip
    book, findings = replayed(log)
    assert findings.differences == []
    assert findings.notes and "schema 1" in findings.notes[0]
    assert book.regulation_at(T0) is None


class FacilitySays:
    """What a facility that kept its council as `council_log` tells it publishes (the public
    routes' shapes, as governance/api.py renders them)."""

    def __init__(self, provisional: dict[str, Any]) -> None:
        members = [("IT", "Italy", "40"), ("FR", "France", "30"), ("DE", "Germany", "30")]
        votes = [("IT", "yes"), ("FR", "yes"), ("DE", "no")]
        outcome = {"passed": True, "members": 3, "yes": 2, "no": 1, "abstain": 0, "absent": 0,
                   "yes_contribution_percent": "70"}  # fmt: skip
        self.routes: dict[str, Any] = {
            "/api/v1/members": [
                {
                    "code": code,
                    "name": name,
                    "removed_at": None,
                    "admitted_by_motion": None,
                    "contribution": share,
                    "delegates": [],
                }
                for code, name, share in members
            ],
            "/api/v1/contribution-scale": {
                "current": {code: share for code, _, share in members},
                "history": [{"id": 1, "shares": {c: v for c, _, v in members}, "motion": None}],
            },
            "/api/v1/motions": [
                {
                    "id": 1,
                    "kind": "adopt_regulation",
                    "rule": "double",
                    "payload": {"regulation": REGULATION},
                    "tabled_for": "IT",
                    "opens_at": T0.isoformat(),
                    "closes_at": (T0 + timedelta(days=7)).isoformat(),
                    "status": "passed",
                    "result": outcome,
                    "votes": [{"member": code, "choice": choice} for code, choice in votes],
                }
            ],
            "/api/v1/regulations": [
                {"version": 1, "sha256": regulation_sha256(REGULATION), "document": REGULATION},
                {"version": 0, "sha256": regulation_sha256(provisional), "document": provisional},
            ],
            "/api/v1/regulations/in-force": {"version": 1},
        }

    def json(self, path: str, **params: Any) -> Any:
        return self.routes[path]

    def pages(self, path: str, **params: Any) -> list[Any]:
        return self.routes[path]


def test_a_schema_1_founding_takes_version_0_from_the_facility_and_says_so():
    log = council_log()
    founded = log[0]
    provisional = founded.data["regulation"]
    schema_1 = {k: v for k, v in founded.data.items() if k != "regulation"}
    log[0] = Entry(**{**vars(founded), "data": schema_1, "schema": 1})
    book = GovernanceBook()
    Replay([book]).feed(log)
    findings = Findings()
    book.compare(FacilitySays(provisional), findings)  # type: ignore[arg-type]

    assert findings.differences == []
    assert findings.checked["governance"] > 40
    assert len(findings.notes) == 1 and "facility's word" in findings.notes[0]
    assert book.regulation_at(T0) == provisional and book.regulation == REGULATION


def test_the_facility_publishing_another_version_0_than_the_record_founded_on_is_reported():
    log = council_log()
    book = GovernanceBook()
    Replay([book]).feed(log)
    findings = Findings()
    book.compare(FacilitySays({"title": "Another provisional regulation"}), findings)  # type: ignore[arg-type]
    claims = [d.claim for d in findings.differences]
    # The facility's version 0 is another document than the one the founding entry carries.
    assert claims == ["regulation/0 sha256", "regulation/0 document sha256"]


# The voting rules -----------------------------------------------------------------------------

EQUAL = {code: Decimal(25) for code in ("IT", "FR", "DE", "ES")}
FOUR = frozenset(EQUAL)


def test_simple_majority_a_tie_fails_and_quorum_exactly_met_counts():
    # Two of four take part: exactly the half the quorum asks.
    assert tally("simple", votes={"IT": "yes", "FR": "abstain"}, members=FOUR, weights=EQUAL).passed
    tied = tally("simple", votes={"IT": "yes", "FR": "no"}, members=FOUR, weights=EQUAL)
    assert not tied.passed and (tied.yes, tied.no, tied.absent) == (1, 1, 2)
    one = tally("simple", votes={"IT": "yes"}, members=FOUR, weights=EQUAL)
    assert not one.passed and one.reason == "no quorum"


def test_two_thirds_exactly_two_thirds_passes_and_abstentions_count_for_quorum_only():
    three = frozenset({"IT", "FR", "DE"})
    votes = {"IT": "yes", "FR": "yes", "DE": "no"}
    assert tally("two_thirds", votes=votes, members=three, weights=EQUAL).passed
    # 2 of 3 take part: the quorum of two thirds exactly met; 1 yes to 1 no is short.
    short = tally("two_thirds", votes={"IT": "yes", "FR": "no"}, members=three, weights=EQUAL)
    assert not short.passed and short.reason == "1 yes to 1 no"
    # Only abstentions: the quorum is met, but no two thirds of nothing.
    assert not tally(
        "two_thirds", votes={"IT": "abstain", "FR": "abstain"}, members=three, weights=EQUAL
    ).passed
    # 5 of 8 members take part: under two thirds, whatever they say.
    eight = frozenset({*FOUR, "SE", "EE", "PL", "NL"})
    five = {code: "yes" for code in sorted(eight)[:5]}
    assert tally("two_thirds", votes=five, members=eight, weights=EQUAL).reason == "no quorum"


def test_double_majority_needs_both_the_states_and_the_weight():
    weights = {"IT": Decimal(40), "FR": Decimal(30), "DE": Decimal(20), "ES": Decimal(10)}
    # Three small states: a majority of states, 60% of the weight.
    assert tally("double", votes={"FR": "yes", "DE": "yes", "ES": "yes", "IT": "no"},
                 members=FOUR, weights=weights).passed  # fmt: skip
    # Two states holding 70%: half the states is not more than half.
    halves = tally("double", votes={"IT": "yes", "FR": "yes", "DE": "no", "ES": "no"},
                   members=FOUR, weights=weights)  # fmt: skip
    assert not halves.passed and halves.yes_contribution == Decimal(70)
    # Three states holding exactly 50%: half the weight is not more than half.
    weights = {"IT": Decimal(50), "FR": Decimal("16.67"), "DE": Decimal("16.67"),
               "ES": Decimal("16.66")}  # fmt: skip
    exact = tally("double", votes={"FR": "yes", "DE": "yes", "ES": "yes", "IT": "no"},
                  members=FOUR, weights=weights)  # fmt: skip
    assert not exact.passed and exact.yes_contribution == Decimal(50)
    # A vote from a state no longer a member counts for nothing.
    gone = tally("double", votes={"IT": "yes", "PL": "yes"}, members=frozenset({"IT", "FR"}),
                 weights={"IT": Decimal(60), "FR": Decimal(40)})  # fmt: skip
    assert gone.passed is False and gone.yes == 1 and gone.members == 2


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="no voting rule"):
        tally("unanimity", votes={}, members=FOUR, weights=EQUAL)


def _witness_key(name: str) -> str:
    from commonlab.record.checkpoint import generate_witness

    return generate_witness(name)[1]
