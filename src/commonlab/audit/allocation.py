"""The allocation book: calls, awards and their council approvals, allocations and
sub-allocations, and the ledger, replayed from the record; from them, independently of the
facility's code, the hours delivered per allocation, member state, institution, call and
project over any span, the share report with its tolerance band, and each allocation's
quarterly tranches. Then compared with what the facility publishes: /api/v1/calls,
/api/v1/allocations (and each one's tranches), /api/v1/reports/usage and
/api/v1/reports/shares (JSON and CSV) over the last four calendar quarters, each of them, and
every other quarter the ledger delivered hours in.

The definitions are the facility's published ones, re-implemented here (the audit never
imports allocation's rules): a settled line counts on its reservation's day (`on`), toward its
allocation's country; a member state's share is its percent of what member states received,
to two decimals, against the contribution scale in force; hours delivered to non-member
countries are shown apart. The rules the record must obey are checked as it is replayed: an
award above the regulation's council threshold waits for the council, and no hours are drawn
from an allocation before it is active.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from commonlab.audit.findings import Findings
from commonlab.audit.governance import GovernanceBook
from commonlab.audit.identity import IdentityBook
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads
from commonlab.audit.shares import (
    ZERO,
    Span,
    hours_text,
    last_quarters,
    quarter_of,
    share_report,
    tranche_index,
    tranche_split,
)

__all__ = [
    "OUTSIDE_MEMBERS",
    "USAGE_GROUPS",
    "Allocation",
    "AllocationBook",
    "Call",
    "Line",
    "Proposal",
    "RuleBreak",
]

USAGE_GROUPS = ("member", "institution", "call", "project")
# The group the usage report by member puts non-member countries in (the facility's words).
OUTSIDE_MEMBERS = "outside the member states"


# The replayed state ---------------------------------------------------------------------------


@dataclass
class Call:
    id: int
    title: str
    pool: str
    pool_percent: str
    budget: dict[str, str]
    opens_at: str
    closes_at: str


@dataclass
class Proposal:
    id: int
    call: int
    pi: str  # pseudonym
    institution: int | None  # the PI's when submitted (schema-1 awards name none)
    reviews: int = 0
    decision: str | None = None


@dataclass
class Allocation:
    id: int
    project: str
    title: str | None  # None: a schema-1 sub-allocation, whose title the record lacks
    proposal: int | None
    parent: int | None
    institution: int | None
    country: str | None
    pool: str
    budget: dict[str, str]
    starts_on: date
    ends_on: date
    status: str
    granted_as: str  # the status it was granted with
    needs_council: bool | None  # by the regulation in force then (None: none on the record)
    approved_by: int | None = None  # the motion
    drawn_while: str | None = None  # a status other than active it drew hours in

    @property
    def hours(self) -> Decimal:
        return sum((Decimal(h) for h in self.budget.values()), ZERO)


@dataclass(slots=True)
class Line:
    """One ledger line: `reserve` holds hours, `settle` charges a reservation, `release`
    closes one without charge. A closing line carries its reservation's day."""

    ledger: int
    allocation: int
    kind: str
    cls: str
    hours: Decimal
    on: date
    reservation: int | None = None


@dataclass
class RuleBreak:
    claim: str
    required: Any
    found: Any


# The book ------------------------------------------------------------------------------------


class AllocationBook(Book):
    name = "allocation"

    def __init__(self, governance: GovernanceBook, identity: IdentityBook | None = None) -> None:
        self.governance = governance
        # Institutions' names and people's institutions; replayed here when no identity book
        # is run beside this one.
        self._own_identity = IdentityBook() if identity is None else None
        self.identity = identity or self._own_identity
        self.calls: dict[int, Call] = {}
        self.proposals: dict[int, Proposal] = {}
        self.allocations: dict[int, Allocation] = {}
        self.members: dict[str, set[str]] = defaultdict(set)  # project → pseudonyms
        self.reservations: dict[int, Line] = {}
        self.closing: dict[int, Line] = {}  # reservation → the line that closed it
        # settled hours per (allocation, day): every report sums these over its span
        self.settled: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
        self.breaks: list[RuleBreak] = []
        self.notes: list[str] = []
        self._last_award: int | None = None  # the proposal the next grant comes from

    def apply(self, entry: Entry) -> bool:
        read = self._own_identity is not None and self._own_identity.apply(entry)
        return super().apply(entry) or read

    # Calls, proposals, decisions

    @reads("allocation:call:opened")
    def call_opened(self, entry: Entry) -> None:
        """A call: its title, pool, budget and window, compared with /api/v1/calls."""
        d = entry.data
        self.calls[int(entry.subject_id)] = Call(
            int(entry.subject_id),
            d["title"],
            d["pool"],
            d["pool_percent"],
            dict(d["budget"]),
            d["opens_at"],
            d["closes_at"],
        )

    @reads("allocation:proposal:submitted")
    def proposal_submitted(self, entry: Entry) -> None:
        """Which call a proposal answers (an award's call in the usage report), and its PI's
        institution then (a schema-1 award's institution)."""
        pi = entry.actor["id"]
        self.proposals[int(entry.subject_id)] = Proposal(
            int(entry.subject_id), int(entry.data["call"]), pi, self.identity.institution_of.get(pi)
        )

    @reads("allocation:review:submitted")
    def review_submitted(self, entry: Entry) -> None:
        """That a proposal has a submitted review (an award needs one)."""
        proposal = self.proposals.get(int(entry.subject_id))
        if proposal is not None:
            proposal.reviews += 1

    @reads("allocation:proposal:decided")
    def proposal_decided(self, entry: Entry) -> None:
        """The panel's decision; an award must follow a submitted review."""
        proposal = self.proposals.get(int(entry.subject_id))
        decision = entry.data["decision"]
        self._last_award = None
        if proposal is None:
            self._break(f"{entry.subject} decided", "a submitted proposal", "none on the record")
            return
        proposal.decision = decision
        if decision != "rejected":
            self._last_award = proposal.id
            if not proposal.reviews:
                self._break(f"{entry.subject} {decision}", "after a review", "with no review")

    # Allocations

    @reads("allocation:allocation:granted")
    def allocation_granted(self, entry: Entry) -> None:
        """An allocation: project, title, institution and country, pool, budget, period and
        status; whether its size needed the council, by the regulation in force then."""
        d = entry.data
        proposal_id = d.get("proposal")
        if proposal_id is None:
            # Schema 1: the grant is written right after its proposal's decision.
            proposal_id = self._last_award
            self._note(
                "awards without `proposal` (written before schema 2): each is the award decided "
                "just before it"
            )
        proposal = self.proposals.get(proposal_id) if proposal_id is not None else None
        institution = d.get("institution")
        if "institution" not in d:
            institution = proposal.institution if proposal else None
            self._note(
                "awards without `institution` (written before schema 2): each is its PI's, as "
                "the record had it when the proposal was submitted"
            )
        allocation = Allocation(
            id=int(entry.subject_id),
            project=d["project"],
            title=d["title"],
            proposal=proposal_id,
            parent=None,
            institution=institution,
            country=d["country"],
            pool=d["pool"],
            budget=dict(d["budget"]),
            starts_on=date.fromisoformat(d["starts_on"]),
            ends_on=date.fromisoformat(d["ends_on"]),
            status=d["status"],
            granted_as=d["status"],
            needs_council=None,
        )
        threshold = self._regulation("council_threshold_hours")
        if threshold is not None:
            allocation.needs_council = allocation.hours > threshold
        self.allocations[allocation.id] = allocation
        self.members[allocation.project].update(d.get("members", []))
        self._last_award = None

    @reads("allocation:allocation:approved")
    def allocation_approved(self, entry: Entry) -> None:
        """The council's approval (by a passed motion): the allocation becomes active."""
        allocation = self.allocations.get(int(entry.subject_id))
        if allocation is None:
            self._break(f"{entry.subject} approved", "a granted allocation", "none on the record")
            return
        if allocation.status != "awaiting_council":
            self._break(f"{entry.subject} approved", "awaiting_council", allocation.status)
        allocation.status = "active"
        allocation.approved_by = entry.data["motion"]

    @reads("allocation:allocation:sub_allocated")
    def sub_allocated(self, entry: Entry) -> None:
        """A sub-allocation: its parent (whose institution, country, pool and period it takes;
        its hours count toward the parent's project), project, title and budget."""
        d = entry.data
        parent = self.allocations.get(int(d["parent"]))
        if parent is None:
            self._break(f"{entry.subject} parent", "a granted allocation", "none on the record")
            return
        if "title" not in d:
            self._note(
                "sub-allocations without `title` (written before schema 2): their titles are "
                "not compared"
            )
        self.allocations[int(entry.subject_id)] = Allocation(
            id=int(entry.subject_id),
            project=d["project"],
            title=d.get("title"),
            proposal=None,
            parent=parent.id,
            institution=parent.institution,
            country=parent.country,
            pool=parent.pool,
            budget=dict(d["budget"]),
            starts_on=parent.starts_on,
            ends_on=parent.ends_on,
            status="active",
            granted_as="active",
            needs_council=False,
        )

    @reads("allocation:project:member_added")
    def member_added(self, entry: Entry) -> None:
        """A member (by pseudonym) of a project."""
        self.members[entry.subject_id].add(entry.data["member"])

    # The ledger

    @reads("allocation:ledger:reserved")
    def hours_reserved(self, entry: Entry) -> None:
        """Hours held on an allocation, class and day; drawing on an allocation that is not
        active (an award awaiting the council) breaks the rules."""
        d = entry.data
        on = d.get("on")
        if on is None:
            self._note(
                "ledger lines without a day `on` (written before schema 2): a reservation is "
                "dated by its entry's day, its settlement or release by its reservation's"
            )
        line = Line(
            ledger=int(d["ledger"]),
            allocation=int(entry.subject_id),
            kind="reserve",
            cls=d["class"],
            hours=Decimal(d["hours"]),
            on=entry.day if on is None else date.fromisoformat(on),
        )
        allocation = self.allocations.get(line.allocation)
        if allocation is None:
            self._break(f"ledger line {line.ledger}", "an allocation on the record", entry.subject)
            return
        if allocation.status != "active" and allocation.drawn_while is None:
            allocation.drawn_while = allocation.status
        self.reservations[line.ledger] = line

    @reads("allocation:ledger:settled", "allocation:ledger:released")
    def reservation_closed(self, entry: Entry) -> None:
        """A reservation closed, once: with the hours the job used (delivered on the
        reservation's day, toward its allocation's country), or released without charge."""
        d = entry.data
        held = self.reservations.get(int(d["reservation"]))
        claim = f"ledger line {d['ledger']} closing reservation {d['reservation']}"
        if held is None:
            self._break(claim, "a reservation on the record", "none")
            return
        if held.ledger in self.closing:
            self._break(claim, "a reservation closes once", "closed twice")
            return
        settle = entry.type.endswith(":settled")
        hours = Decimal(d["hours"])
        if settle and hours > held.hours:
            self._break(claim, f"at most the {held.hours} h reserved", f"{hours} h settled")
        on = d.get("on")
        line = Line(
            ledger=int(d["ledger"]),
            allocation=held.allocation,
            kind="settle" if settle else "release",
            cls=held.cls,
            hours=hours if settle else ZERO,
            on=held.on if on is None else date.fromisoformat(on),
            reservation=held.ledger,
        )
        self.closing[held.ledger] = line
        if settle:
            self.settled[(line.allocation, line.on)] += hours

    def _regulation(self, key: str) -> Decimal | None:
        regulation = self.governance.regulation
        if regulation is None:
            return None
        return Decimal(str(regulation["allocation"][key]))

    def _break(self, claim: str, required: Any, found: Any) -> None:
        self.breaks.append(RuleBreak(claim, required, found))

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # What the state implies

    def delivered(self, span: Span) -> dict[int, Decimal]:
        """Hours settled per allocation over [start, end)."""
        start, end = span
        out: dict[int, Decimal] = defaultdict(Decimal)
        for (allocation_id, day), hours in self.settled.items():
            if start <= day < end:
                out[allocation_id] += hours
        return out

    def delivered_by_country(self, span: Span) -> dict[str, Decimal]:
        """Hours settled over the span per country of the allocation (a sub-allocation has its
        parent's); allocations with no country count toward none."""
        out: dict[str, Decimal] = defaultdict(Decimal)
        for allocation_id, hours in self.delivered(span).items():
            country = self.allocations[allocation_id].country
            if country:
                out[country] += hours
        return dict(out)

    def active_members(self) -> set[str]:
        return {code for code, member in self.governance.members.items() if member.active}

    def share_report(self, span: Span) -> dict[str, Any]:
        tolerance = self._regulation("share_tolerance_percent")
        return share_report(
            self.delivered_by_country(span),
            members=self.active_members(),
            scale=self.governance.scale,
            tolerance=ZERO if tolerance is None else tolerance,
            span=span,
        )

    def usage_report(self, by: str, span: Span) -> list[dict[str, Any]]:
        """Awarded hours and hours delivered over the span, per member state, institution,
        call or project: active top-level allocations, a sub-allocation's hours counted
        toward its parent."""
        members = self.active_members()
        delivered: dict[int, Decimal] = defaultdict(Decimal)
        for allocation_id, hours in self.delivered(span).items():
            parent = self.allocations[allocation_id].parent
            delivered[allocation_id if parent is None else parent] += hours
        rows: dict[str, dict[str, Any]] = {}
        for a in self.allocations.values():
            if a.parent is not None or a.status != "active":
                continue
            rows_key = self._group(a, by, members)
            row = rows.setdefault(
                rows_key,
                {
                    "group": rows_key,
                    "allocations": 0,
                    "budget_hours": ZERO,
                    "delivered_hours": ZERO,
                },
            )
            row["allocations"] += 1
            row["budget_hours"] += a.hours
            row["delivered_hours"] += delivered.get(a.id, ZERO)
        return [rows[key] for key in sorted(rows)]

    def _group(self, a: Allocation, by: str, members: set[str]) -> str:
        if by == "member":
            return a.country if a.country in members else OUTSIDE_MEMBERS
        if by == "institution":
            institution = self.identity.institutions.get(a.institution or 0)
            return "—" if institution is None else institution.name
        if by == "call":
            proposal = self.proposals.get(a.proposal or 0)
            return f"call/{'—' if proposal is None else proposal.call}"
        return a.project

    def balances(self) -> dict[tuple[int, str, int], tuple[Decimal, Decimal]]:
        """(settled, held) per (allocation, class, tranche): each line counts on its own
        allocation and, for a sub-allocation, on its parent too, in the tranche its day falls
        in; a reservation holds its hours until it is closed."""
        out: dict[tuple[int, str, int], tuple[Decimal, Decimal]] = {}
        for line in self.reservations.values():
            closing = self.closing.get(line.ledger)
            settled = closing.hours if closing is not None else ZERO
            held = ZERO if closing is not None else line.hours
            owner = self.allocations[line.allocation]
            for allocation in (owner, self.allocations.get(owner.parent or 0)):
                if allocation is None:
                    continue
                quarter = tranche_index(allocation.starts_on, allocation.ends_on, line.on)
                if quarter is None:
                    continue  # outside the period: a rule break the facility refuses
                key = (allocation.id, line.cls, quarter)
                s, h = out.get(key, (ZERO, ZERO))
                out[key] = (s + settled, h + held)
        return out

    def spans(self, today: date) -> list[Span]:
        """The spans compared: the last four calendar quarters (the /members page's), every
        other quarter the ledger delivered hours in, the four together, and all of them."""
        recent = last_quarters(today)
        days = {day for _, day in self.settled}
        quarters = sorted(set(recent) | {quarter_of(day) for day in days})
        spans = [*quarters, (recent[0][0], recent[-1][1])]
        everything = (quarters[0][0], quarters[-1][1])
        if everything not in spans:
            spans.append(everything)
        return spans

    # Comparing with the facility

    def compare(self, published: Published, findings: Findings) -> None:
        for note in self.notes:
            findings.note(note)
        findings.rests_on_commitments(
            "proposals' titles, abstracts, reviews' scores and replies: committed until "
            "decided, so the audit checks decisions and awards, not the panel's reasons"
        )
        if self.governance.regulation is None:
            findings.note(
                "no regulation on the record: awards were not checked against the council "
                "threshold, and the tolerance band is taken as zero"
            )
        self.check_rules(findings)
        self._compare_calls(published, findings)
        shown = self._compare_allocations(published, findings)
        self._compare_tranches(published, findings, shown)
        for span in self.spans(datetime.now(UTC).date()):
            self._compare_shares(published, findings, span)
            for by in USAGE_GROUPS:
                self._compare_usage(published, findings, by, span)

    def check_rules(self, findings: Findings) -> None:
        """The rules the record must obey, one figure each: awards sized by the council
        threshold, hours drawn only once active, and every break met while replaying."""
        for a in self.allocations.values():
            if a.needs_council is not None and a.parent is None:
                required = "awaiting_council" if a.needs_council else "active"
                claim = f"allocation/{a.id} status as granted ({a.hours} h, by the threshold)"
                findings.compare(self.name, claim, required, a.granted_as)
            claim = f"allocation/{a.id} drew hours only while active (council approval first)"
            findings.compare(self.name, claim, "active", a.drawn_while or "active")
        for rule in self.breaks:
            findings.compare(self.name, rule.claim, rule.required, rule.found)

    def _compare_calls(self, published: Published, findings: Findings) -> None:
        shown = {item["id"]: item for item in published.pages("/api/v1/calls")}
        findings.compare(self.name, "calls (ids)", sorted(self.calls), sorted(shown))
        for call_id, call in sorted(self.calls.items()):
            item = shown.get(call_id)
            if item is None:
                continue
            for name in ("title", "pool", "budget"):
                findings.compare(
                    self.name, f"call/{call_id} {name}", getattr(call, name), item[name]
                )
            for name in ("opens_at", "closes_at"):
                findings.compare(
                    self.name,
                    f"call/{call_id} {name}",
                    _moment(getattr(call, name)),
                    _moment(item[name]),
                )

    def _compare_allocations(self, published: Published, findings: Findings) -> set[int]:
        shown = {item["id"]: item for item in published.pages("/api/v1/allocations")}
        findings.compare(self.name, "allocations (ids)", sorted(self.allocations), sorted(shown))
        for allocation_id, a in sorted(self.allocations.items()):
            item = shown.get(allocation_id)
            if item is None:
                continue
            replayed = {
                "project": a.project,
                "title": a.title,
                "parent_id": a.parent,
                "proposal_id": a.proposal,
                "country": a.country,
                "pool": a.pool,
                "budget": a.budget,
                "starts_on": a.starts_on.isoformat(),
                "ends_on": a.ends_on.isoformat(),
                "status": a.status,
            }
            for name, value in replayed.items():
                if name == "title" and value is None:
                    continue  # a schema-1 sub-allocation's title is not on the record
                findings.compare(self.name, f"allocation/{allocation_id} {name}", value, item[name])
        return set(shown)

    def _compare_tranches(self, published: Published, findings: Findings, shown: set[int]) -> None:
        balances = self.balances()
        for allocation_id, a in sorted(self.allocations.items()):
            if allocation_id not in shown:
                continue
            replayed = {}
            for cls, budget in sorted(a.budget.items()):
                for index, (starts, ends, hours) in enumerate(
                    tranche_split(Decimal(budget), a.starts_on, a.ends_on)
                ):
                    settled, held = balances.get((a.id, cls, index), (ZERO, ZERO))
                    replayed[(cls, index)] = {
                        "starts_on": starts.isoformat(),
                        "ends_on": ends.isoformat(),
                        "released": f"{hours:.2f}",
                        "drawn": f"{settled:.2f}",
                        "reserved": f"{held:.2f}",
                        "remaining": f"{hours - settled - held:.2f}",
                    }
            tranches = published.json(f"/api/v1/allocations/{allocation_id}/tranches")
            items = {(t["accelerator"], t["quarter"]): t for t in tranches}
            claim = f"allocation/{allocation_id} tranches (class, quarter)"
            findings.compare(self.name, claim, sorted(replayed), sorted(items))
            for (cls, index), figures in replayed.items():
                item = items.get((cls, index))
                if item is None:
                    continue
                for name, value in figures.items():
                    claim = f"allocation/{allocation_id} {cls} tranche {index} {name}"
                    findings.compare(self.name, claim, value, item[name])

    def _compare_shares(self, published: Published, findings: Findings, span: Span) -> None:
        report = self.share_report(span)
        at = f"{span[0].isoformat()}..{span[1].isoformat()}"
        params = {"start": span[0].isoformat(), "end": span[1].isoformat()}
        shown = published.json("/api/v1/reports/shares", **params)
        exported = {row["code"]: row for row in published.csv("/api/v1/reports/shares", **params)}
        if self.governance.regulation is not None:
            findings.compare(
                self.name,
                f"share tolerance {at}",
                report["tolerance_percent"],
                shown["tolerance_percent"],
            )
        states = {s["code"]: s for s in report["states"]}
        shown_states = {s["code"]: s for s in shown["states"]}
        findings.compare(self.name, f"share {at} states", sorted(states), sorted(shown_states))
        findings.compare(self.name, f"share {at} states (CSV)", sorted(states), sorted(exported))
        for code, line in states.items():
            for source, row in (("", shown_states.get(code)), (" (CSV)", exported.get(code))):
                if row is None:
                    continue
                for name in (
                    "entitled_percent",
                    "delivered_hours",
                    "delivered_percent",
                    "deviation",
                ):
                    _compare_number(
                        findings,
                        self.name,
                        f"share {code} {at} {name}{source}",
                        line[name],
                        row[name],
                    )
                if self.governance.regulation is not None:  # else the band is unknown
                    findings.compare(
                        self.name,
                        f"share {code} {at} outside_band{source}",
                        str(line["outside_band"]),
                        str(row["outside_band"]),  # the CSV's "True", the JSON's true
                    )
        outside = {o["country"]: o["delivered_hours"] for o in report["outside_members"]}
        shown_outside = {o["country"]: o["delivered_hours"] for o in shown["outside_members"]}
        claim = f"share {at} outside_members"
        findings.compare(self.name, claim, sorted(outside), sorted(shown_outside))
        for country, hours in outside.items():
            if country in shown_outside:
                claim = f"share outside members {country} {at} delivered_hours"
                _compare_number(findings, self.name, claim, hours, shown_outside[country])

    def _compare_usage(self, published: Published, findings: Findings, by: str, span: Span) -> None:
        at = f"{span[0].isoformat()}..{span[1].isoformat()}"
        params = {"by": by, "start": span[0].isoformat(), "end": span[1].isoformat()}
        rows = {row["group"]: row for row in self.usage_report(by, span)}
        shown = {
            row["group"]: row for row in published.json("/api/v1/reports/usage", **params)["rows"]
        }
        findings.compare(self.name, f"usage by {by} {at} groups", sorted(rows), sorted(shown))
        for group, row in rows.items():
            item = shown.get(group)
            if item is None:
                continue
            claim = f"usage by {by} {at} {group}"
            findings.compare(
                self.name, f"{claim} allocations", row["allocations"], item["allocations"]
            )
            for name in ("budget_hours", "delivered_hours"):
                _compare_number(
                    findings, self.name, f"{claim} {name}", hours_text(row[name]), item[name]
                )


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _compare_number(findings: Findings, book: str, claim: str, replayed: str, shown: str) -> None:
    """Compare two published numbers as numbers ("1400.00" is "1400"), keeping the texts."""
    try:
        same = Decimal(replayed) == Decimal(shown)
    except ArithmeticError:
        same = False
    findings.compare(book, claim, shown if same else replayed, shown)
