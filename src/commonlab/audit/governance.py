"""The governance book: the council as the record tells it, replayed, every motion re-decided by
its rule, and compared with what the facility publishes.

From the `governance:*` entries alone it rebuilds the member states over time (founding,
admissions, removals, each with its motion), the contribution scale over time, the regulation
in force over time (version 0 from the founding entry, each adopted version from its motion's
payload, its SHA-256 checked against the canonical JSON), and every motion with its votes.
Each closed vote is counted again here, by the audit's own reading of the voting rules
(`audit/voting.py`, from docs/architecture.md, sharing no code with the service), against the
members and scale in force when the motion was decided, and the result is held against the
outcome the facility recorded and against the effect it wrote in the motion's name.

A passed motion acts as `motion/<id>`: every entry with that actor, whatever its domain, is
that motion's effect (`apply` sees them all, so a new kind of effect is never missed). The
effect's entries come before the motion's decision in the log (one transaction writes both),
so the electorate of a motion is taken just before its first effect, or at its decision.

The allocation book reads `members`, `scale` and `regulation` (and their `*_at` history).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from commonlab.allocation.events import AllocationEvent
from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads
from commonlab.audit.voting import KIND_RULES, QUORUM, Tally, tally
from commonlab.compute.events import ComputeEvent
from commonlab.governance.events import GovernanceEvent
from commonlab.identity.events import IdentityEvent
from commonlab.record.canonical import canonical_json
from commonlab.record.events import RecordEvent

__all__ = [
    "Decision",
    "GovernanceBook",
    "Member",
    "MemberChange",
    "Motion",
    "RegulationVersion",
    "ScaleVersion",
    "regulation_sha256",
]

BOOK = "governance"

# The entry a passed motion of each kind must have written in its name.
EFFECT_OF_KIND: dict[str, str] = {
    "adopt_regulation": GovernanceEvent.RegulationAdopted,
    "admit_member": GovernanceEvent.MemberAdmitted,
    "remove_member": GovernanceEvent.MemberRemoved,
    "set_contribution_scale": GovernanceEvent.ScaleAdopted,
    "approve_allocation": AllocationEvent.AllocationApproved,
    "certify_partition": ComputeEvent.PartitionCertified,
    "register_witness": RecordEvent.WitnessRegistered,
    "grant_cl4_clearance": IdentityEvent.ClearanceGranted,
}

SCHEMA_1_REGULATION_NOTE = (
    "governance: the council was founded before entries carried the founding regulation "
    "(schema 1): version 0 of the regulation, and every figure derived from it, rests on the "
    "facility's word (GET /api/v1/regulations)"
)


def regulation_sha256(document: Any) -> str:
    """The SHA-256 of a regulation document's canonical JSON (RFC 8785), as the record names it."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


# The replayed state -------------------------------------------------------------------------


@dataclass
class Member:
    """A member state as the record tells it."""

    code: str
    name: str
    active: bool = True
    admitted_at: datetime | None = None
    admitted_by: int | None = None  # the motion; None for a founding member
    removed_at: datetime | None = None
    removed_by: int | None = None
    delegates: dict[str, str] = field(default_factory=dict)  # pseudonym → public name


@dataclass(frozen=True)
class MemberChange:
    time: datetime
    code: str
    change: str  # "founded", "admitted" or "removed"
    motion: int | None


@dataclass(frozen=True)
class ScaleVersion:
    time: datetime
    shares: dict[str, Decimal]
    motion: int | None  # None for the founding scale
    id: int | None  # the facility's id (the entry's subject scale/<id>); None when founding


@dataclass(frozen=True)
class RegulationVersion:
    version: int
    sha256: str | None  # as recorded (version 0: the founding document's hash, when carried)
    document: dict[str, Any] | None  # None: the record does not carry it (schema 1 version 0)
    time: datetime | None
    motion: int | None


@dataclass(frozen=True)
class Decision:
    """A motion's decision as the facility recorded it."""

    time: datetime
    status: str
    outcome: dict[str, Any]
    roll_call: dict[str, str]
    closed_early: bool


@dataclass
class Motion:
    id: int
    kind: str
    title: str
    rule: str
    payload: dict[str, Any]
    tabled_for: str
    opens_at: datetime
    closes_at: datetime
    tabled_at: datetime
    votes: dict[str, str] = field(default_factory=dict)  # state → its last choice
    # The members and scale in force when it was decided (None while it is open).
    electorate: frozenset[str] | None = None
    weights: dict[str, Decimal] | None = None
    decision: Decision | None = None
    effects: list[Entry] = field(default_factory=list)  # entries written in its name

    @property
    def tally(self) -> Tally | None:
        """The audit's count of the vote, once decided (None while open or under an unknown
        rule)."""
        if self.decision is None or self.electorate is None or self.rule not in QUORUM:
            return None
        return tally(
            self.rule, votes=self.votes, members=self.electorate, weights=self.weights or {}
        )

    @property
    def status(self) -> str:
        """What the votes and the effects on the record imply: open, passed, failed, or lapsed
        (it passed, but nothing was done in its name: the facility had changed under it)."""
        counted = self.tally
        if self.decision is None:
            return "open"
        if counted is None:
            return self.decision.status  # an unknown rule: reported apart
        if not counted.passed:
            return "failed"
        return "passed" if self.effects else "lapsed"


class GovernanceBook(Book):
    name = BOOK

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.scale: dict[str, Decimal] = {}
        self.regulation: dict[str, Any] | None = None
        self.motions: dict[int, Motion] = {}
        self.member_history: list[MemberChange] = []
        self.scale_history: list[ScaleVersion] = []
        self.regulations: list[RegulationVersion] = []
        self.founded: datetime | None = None
        # What the record says of itself that the audit checks once the log is read:
        # (claim, what the record implies, what the record says).
        self._checks: list[tuple[str, Any, Any]] = []
        self._notes: list[str] = []

    # Over time: what was in force at a moment ---------------------------------------------

    def members_at(self, moment: datetime) -> frozenset[str]:
        """The codes of the member states on the council at `moment`."""
        codes: set[str] = set()
        for change in self.member_history:
            if change.time > moment:
                break
            if change.change == "removed":
                codes.discard(change.code)
            else:
                codes.add(change.code)
        return frozenset(codes)

    def scale_at(self, moment: datetime) -> dict[str, Decimal]:
        """The contribution scale in force at `moment` ({} before the council was founded)."""
        shares: dict[str, Decimal] = {}
        for version in self.scale_history:
            if version.time > moment:
                break
            shares = version.shares
        return dict(shares)

    def regulation_at(self, moment: datetime) -> dict[str, Any] | None:
        """The regulation document in force at `moment` (None where the record lacks it)."""
        document = self.regulations[0].document if self.regulations else None
        for version in self.regulations[1:]:
            if version.time is not None and version.time > moment:
                break
            document = version.document
        return document

    # Reading the record -------------------------------------------------------------------

    def apply(self, entry: Entry) -> bool:
        # Whatever its type, an entry written in a motion's name is that motion's effect.
        effect_of = _motion_actor(entry)
        if effect_of is not None:
            self._effect(effect_of, entry)
        return super().apply(entry) or effect_of is not None

    def _effect(self, motion_id: int, entry: Entry) -> None:
        motion = self.motions.get(motion_id)
        if motion is None:
            self._checks.append(
                (f"{entry.type} #{entry.index}: its motion/{motion_id}", "tabled", None)
            )
            return
        if not motion.effects:
            self._freeze_electorate(motion)
        motion.effects.append(entry)
        if "motion" in entry.data:
            where = f"{entry.type} #{entry.index} motion"
            self._checks.append((where, motion_id, entry.data["motion"]))

    def _effect_check(self, entry: Entry, what: str, implied: Any, said: Any) -> None:
        """Hold one figure of an effect against its motion's payload (`implied`)."""
        motion_id = _motion_actor(entry)
        self._checks.append((f"motion/{motion_id} effect: {what}", implied, said))

    def _payload_of(self, entry: Entry) -> dict[str, Any] | None:
        """The payload of the motion an entry was written in the name of (None: no motion's)."""
        motion = self.motions.get(_motion_actor(entry) or 0)
        return None if motion is None else motion.payload

    def _freeze_electorate(self, motion: Motion) -> None:
        motion.electorate = frozenset(code for code, m in self.members.items() if m.active)
        motion.weights = dict(self.scale)

    @reads(GovernanceEvent.CouncilFounded)
    def _founded(self, entry: Entry) -> None:
        """The founding member states and their scale, and (schema 2) regulation version 0."""
        if self.founded is not None:
            self._checks.append(("the council founded once", self.founded, entry.time))
        self.founded = entry.time
        for member in entry.data["members"]:
            code = member["code"]
            self.members[code] = Member(code, member["name"], admitted_at=entry.time)
            self.member_history.append(MemberChange(entry.time, code, "founded", None))
        self._adopt_scale(entry.time, entry.data["scale"], motion=None, scale_id=None)
        document = entry.data.get("regulation")
        if document is None:
            self._notes.append(SCHEMA_1_REGULATION_NOTE)
        self.regulations.insert(
            0,
            RegulationVersion(
                0,
                None if document is None else regulation_sha256(document),
                document,
                None,
                None,
            ),
        )
        if len(self.regulations) == 1:
            self.regulation = document

    @reads(GovernanceEvent.DelegateAppointed)
    def _appointed(self, entry: Entry) -> None:
        """Who sits for the member state: the delegate's pseudonym and public name."""
        member = self.members.get(entry.subject_id)
        if member is None or not member.active:
            self._checks.append((f"delegate for {entry.subject}", "a member state", None))
            return
        member.delegates[entry.data["delegate"]] = entry.data["name"]

    @reads(GovernanceEvent.DelegateEnded)
    def _ended(self, entry: Entry) -> None:
        """That the delegate no longer sits for the member state."""
        member = self.members.get(entry.subject_id)
        if member is not None:
            member.delegates.pop(entry.data["delegate"], None)

    @reads(IdentityEvent.PersonUpdated)
    def _renamed(self, entry: Entry) -> None:
        """A sitting delegate's new public name (a public role's holder is renamed in clear)."""
        name = (entry.data.get("changes") or {}).get("name")
        if not isinstance(name, str):
            return
        for member in self.members.values():
            if entry.subject_id in member.delegates:
                member.delegates[entry.subject_id] = name

    @reads(GovernanceEvent.MotionTabled)
    def _tabled(self, entry: Entry) -> None:
        """The motion: its kind, rule, payload, the state it was tabled for, its voting window."""
        data = entry.data
        motion = Motion(
            id=int(entry.subject_id),
            kind=data["kind"],
            title=data["title"],
            rule=data["rule"],
            payload=data["payload"],
            tabled_for=data["for"],
            opens_at=_time(data["opens_at"]),
            closes_at=_time(data["closes_at"]),
            tabled_at=entry.time,
        )
        self.motions[motion.id] = motion
        self._checks.append((f"motion/{motion.id} rule", KIND_RULES.get(motion.kind), motion.rule))

    @reads(GovernanceEvent.VoteCast)
    def _vote(self, entry: Entry) -> None:
        """A state's vote on the motion; a later vote by the same state replaces it."""
        motion = self.motions.get(int(entry.subject_id))
        code, choice = entry.data["member"], entry.data["choice"]
        if motion is None:
            self._checks.append((f"vote on {entry.subject}", "a tabled motion", None))
            return
        where = f"motion/{motion.id} vote by {code}"
        self._checks.append((f"{where} while open", "open", motion.status))
        member = self.members.get(code)
        self._checks.append((f"{where} from a member state", True, bool(member and member.active)))
        self._checks.append((f"{where} changed", code in motion.votes, entry.data.get("changed")))
        motion.votes[code] = choice

    @reads(GovernanceEvent.MotionDecided)
    def _decided(self, entry: Entry) -> None:
        """The facility's decision, held against the audit's own count of the votes."""
        motion = self.motions.get(int(entry.subject_id))
        if motion is None:
            self._checks.append((f"decision of {entry.subject}", "a tabled motion", None))
            return
        if motion.decision is not None:
            self._checks.append((f"motion/{motion.id} decided once", 1, 2))
            return
        if not motion.effects:
            self._freeze_electorate(motion)
        data = entry.data
        motion.decision = Decision(
            entry.time,
            data["status"],
            data["outcome"],
            data["roll_call"],
            bool(data.get("closed_early")),
        )

    @reads(GovernanceEvent.MemberAdmitted)
    def _admitted(self, entry: Entry) -> None:
        """A new member state, when, and by which motion."""
        code, motion = entry.subject_id, entry.data["motion"]
        if code in self.members:
            self._checks.append((f"member/{code} admitted", "not yet a member", "a member"))
        if (payload := self._payload_of(entry)) is not None:
            self._effect_check(entry, "admits", payload.get("code"), code)
            self._effect_check(entry, "admits name", payload.get("name"), entry.data["name"])
        self.members[code] = Member(
            code, entry.data["name"], admitted_at=entry.time, admitted_by=motion
        )
        self.member_history.append(MemberChange(entry.time, code, "admitted", motion))

    @reads(GovernanceEvent.MemberRemoved)
    def _removed(self, entry: Entry) -> None:
        """A member state leaving the council (its delegates with it), when, by which motion."""
        code, motion = entry.subject_id, entry.data["motion"]
        if (payload := self._payload_of(entry)) is not None:
            self._effect_check(entry, "removes", payload.get("code"), code)
        member = self.members.get(code)
        if member is None or not member.active:
            self._checks.append((f"member/{code} removed", "an active member", None))
            return
        member.active, member.removed_at, member.removed_by = False, entry.time, motion
        member.delegates.clear()
        self.member_history.append(MemberChange(entry.time, code, "removed", motion))

    @reads(GovernanceEvent.ScaleAdopted)
    def _scale(self, entry: Entry) -> None:
        """The contribution scale in force from then on, and the motion that adopted it (its
        payload's shares, or the scale it admitted or removed a member with)."""
        if (payload := self._payload_of(entry)) is not None:
            shares = payload.get("shares", payload.get("scale")) or {}
            self._effect_check(entry, "scale", _decimals(shares), _decimals(entry.data["shares"]))
        self._adopt_scale(
            entry.time,
            entry.data["shares"],
            motion=entry.data["motion"],
            scale_id=int(entry.subject_id),
        )

    @reads(GovernanceEvent.RegulationAdopted)
    def _regulation(self, entry: Entry) -> None:
        """The regulation in force from then on: the motion's payload.regulation, whose
        canonical JSON must hash to the recorded sha256."""
        data = entry.data
        motion = self.motions.get(data["motion"])
        document = None if motion is None else motion.payload.get("regulation")
        version = int(data["version"])
        claim = f"regulation/{version}"
        self._checks.append((f"{claim} version", len(self.regulations), version))
        if document is None:
            self._checks.append((f"{claim} document", "in its motion's payload", None))
        else:
            self._checks.append((f"{claim} sha256", regulation_sha256(document), data["sha256"]))
        self.regulations.append(
            RegulationVersion(version, data["sha256"], document, entry.time, data["motion"])
        )
        self.regulation = document

    @reads(
        AllocationEvent.AllocationApproved,
        ComputeEvent.PartitionCertified,
        RecordEvent.WitnessRegistered,
        IdentityEvent.ClearanceGranted,
    )
    def _effect_elsewhere(self, entry: Entry) -> None:
        """That a passed motion took effect in another domain (an allocation approved, a
        partition certified, a witness registered, a CL-4 clearance granted), as its payload
        said."""
        payload = self._payload_of(entry)
        if payload is None:
            return  # not written in a motion's name (an operator's clearance below CL-4)
        check = functools.partial(self._effect_check, entry)
        if entry.type == AllocationEvent.AllocationApproved:
            check("approves", f"allocation/{payload.get('allocation_id')}", entry.subject)
        elif entry.type == ComputeEvent.PartitionCertified:
            check("certifies", f"partition/{payload.get('partition')}", entry.subject)
            check("certifies level", f"CL-{payload.get('level')}", entry.data.get("to"))
        elif entry.type == RecordEvent.WitnessRegistered:
            check("registers", f"witness/{payload.get('name')}", entry.subject)
            check("registers key", payload.get("verifier_key"), entry.data.get("verifier_key"))
        else:
            check("grants level", "CL-4", entry.data.get("level"))

    def _adopt_scale(
        self, time: datetime, shares: Mapping[str, str], *, motion: int | None, scale_id: int | None
    ) -> None:
        parsed = {code: _decimal(value) for code, value in shares.items()}
        self.scale_history.append(ScaleVersion(time, parsed, motion, scale_id))
        self.scale = dict(parsed)

    # What the record says of itself -------------------------------------------------------

    def check_record(self, findings: Findings) -> None:
        """Hold what the record says against what it implies: each recorded check, each
        motion's outcome re-counted, each effect against its motion."""
        for note in self._notes:
            findings.note(note)
        for claim, implied, said in self._checks:
            findings.compare(BOOK, claim + " (on the record)", implied, said)
        for motion in self.motions.values():
            self._check_motion(motion, findings)

    def _check_motion(self, motion: Motion, findings: Findings) -> None:
        # Record against record: what the votes imply, what the facility wrote down.
        check = _checker(findings, f"motion/{motion.id} (on the record)")

        decision = motion.decision
        if decision is None:
            check("effects while open", [], [e.type for e in motion.effects])
            return
        counted = motion.tally
        if counted is None:
            check("rule", "a rule the audit knows", motion.rule)
            return
        check("status", motion.status, decision.status)
        recorded = decision.outcome
        for name, value in _outcome(counted).items():
            said = recorded.get(name)
            if name == "yes_contribution_percent":
                said = _decimal(said)
            check(f"outcome {name}", value, said)
        check("roll call", motion.votes, decision.roll_call)
        if decision.closed_early:
            # The service ends a vote early only once every member state has voted.
            check("closed early: every member voted", True, motion.electorate <= set(motion.votes))
        self._check_effect(motion, check)

    def _check_effect(self, motion: Motion, check: Callable[[str, Any, Any], None]) -> None:
        types = [entry.type for entry in motion.effects]
        if motion.status != "passed":
            check("effects", [], types)
            return
        expected = EFFECT_OF_KIND.get(motion.kind)
        check("effect", expected, expected if expected in types else types)

    # Against the facility -----------------------------------------------------------------

    def compare(self, published: Published, findings: Findings) -> None:
        self.check_record(findings)
        self._compare_members(published.json("/api/v1/members", include_removed="true"), findings)
        self._compare_scale(published.json("/api/v1/contribution-scale"), findings)
        self._compare_motions(published.pages("/api/v1/motions"), findings)
        self._compare_regulations(
            published.json("/api/v1/regulations"),
            published.json("/api/v1/regulations/in-force"),
            findings,
        )

    def _compare_members(self, rows: list[dict[str, Any]], findings: Findings) -> None:
        shown = {row["code"]: row for row in rows}
        findings.compare(BOOK, "member states", sorted(self.members), sorted(shown))
        for code, member in sorted(self.members.items()):
            row = shown.get(code)
            if row is None:
                continue
            claim = f"member/{code}"
            findings.compare(BOOK, f"{claim} name", member.name, row["name"])
            findings.compare(BOOK, f"{claim} active", member.active, row["removed_at"] is None)
            findings.compare(
                BOOK, f"{claim} admitted by motion", member.admitted_by, row["admitted_by_motion"]
            )
            findings.compare(
                BOOK,
                f"{claim} contribution",
                self.scale.get(code, Decimal(0)),
                _decimal(row["contribution"]),
            )
            findings.compare(
                BOOK,
                f"{claim} delegates",
                dict(sorted(member.delegates.items())),
                {d["pseudonym"]: d["name"] for d in sorted(row["delegates"], key=_by_pseudonym)},
            )

    def _compare_scale(self, scale: dict[str, Any], findings: Findings) -> None:
        findings.compare(BOOK, "contribution scale", self.scale, _decimals(scale["current"]))
        history = list(reversed(scale["history"]))  # the facility lists the newest first
        findings.compare(BOOK, "contribution scales adopted", len(self.scale_history), len(history))
        for number, (version, row) in enumerate(zip(self.scale_history, history, strict=False)):
            claim = f"contribution scale #{number + 1}"
            findings.compare(BOOK, f"{claim} shares", version.shares, _decimals(row["shares"]))
            findings.compare(BOOK, f"{claim} motion", version.motion, row["motion"])
            if version.id is not None:
                findings.compare(BOOK, f"{claim} id", version.id, row["id"])

    def _compare_motions(self, rows: list[dict[str, Any]], findings: Findings) -> None:
        shown = {row["id"]: row for row in rows}
        findings.compare(BOOK, "motions", sorted(self.motions), sorted(shown))
        for motion_id, motion in sorted(self.motions.items()):
            row = shown.get(motion_id)
            if row is None:
                continue
            check = _checker(findings, f"motion/{motion_id}")
            check("kind", motion.kind, row["kind"])
            check("rule", motion.rule, row["rule"])
            check("payload", motion.payload, row["payload"])
            check("tabled for", motion.tabled_for, row["tabled_for"])
            check("opens at", motion.opens_at, _time(row["opens_at"]))
            check("closes at", motion.closes_at, _time(row["closes_at"]))
            check("status", motion.status, row["status"])
            shown_votes = {vote["member"]: vote["choice"] for vote in row["votes"]}
            for code in sorted(motion.votes.keys() | shown_votes.keys()):
                check(f"vote {code}", motion.votes.get(code), shown_votes.get(code))
            counted = motion.tally
            result = row.get("result") or {}
            if counted is None:
                check("outcome", None, result.get("passed"))
                continue
            for name, value in _outcome(counted).items():
                said = result.get(name)
                if name == "yes_contribution_percent":
                    said = _decimal(said)
                check(f"outcome {name}", value, said)

    def _compare_regulations(
        self, rows: list[dict[str, Any]], in_force: dict[str, Any], findings: Findings
    ) -> None:
        shown = {row["version"]: row for row in rows}
        replayed = {version.version: version for version in self.regulations}
        founding = self.regulations[0] if self.regulations else None
        if founding is None or founding.version != 0 or founding.document is None:
            # Version 0 is not on the record (schema 1): take the facility's word for it.
            provisional = shown.get(0)
            if provisional is not None:
                findings.note(SCHEMA_1_REGULATION_NOTE)
                document = provisional["document"]
                version_0 = RegulationVersion(0, provisional["sha256"], document, None, None)
                replayed[0] = version_0
                # The allocation book reads it from here (regulation_at, regulation).
                if founding is not None and founding.version == 0:
                    self.regulations[0] = version_0
                else:
                    self.regulations.insert(0, version_0)
                if len(self.regulations) == 1:
                    self.regulation = document
        findings.compare(BOOK, "regulation versions", sorted(replayed), sorted(shown))
        for number, version in sorted(replayed.items()):
            row = shown.get(number)
            if row is None:
                continue
            claim = f"regulation/{number}"
            findings.compare(BOOK, f"{claim} sha256", version.sha256, row["sha256"])
            findings.compare(
                BOOK, f"{claim} document sha256", version.sha256, regulation_sha256(row["document"])
            )
        newest = max(replayed) if replayed else None
        findings.compare(BOOK, "regulation in force", newest, in_force["version"])


# Reading entries ------------------------------------------------------------------------------


def _motion_actor(entry: Entry) -> int | None:
    """The motion an entry was written in the name of (`motion/<id>`), if any."""
    kind, _, number = str(entry.actor.get("id", "")).partition("/")
    return int(number) if kind == "motion" and number.isdigit() else None


def _checker(findings: Findings, prefix: str) -> Callable[[str, Any, Any], None]:
    """Compare figures about one thing (e.g. "motion/3"), each claim prefixed by it."""

    def check(what: str, replayed: Any, facility: Any) -> None:
        findings.compare(BOOK, f"{prefix} {what}", replayed, facility)

    return check


def _outcome(counted: Tally) -> dict[str, Any]:
    """The audit's count, under the names the facility records and publishes it by."""
    return {
        "passed": counted.passed,
        "members": counted.members,
        "yes": counted.yes,
        "no": counted.no,
        "abstain": counted.abstain,
        "absent": counted.absent,
        "yes_contribution_percent": counted.yes_contribution,
    }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _decimal(value: Any) -> Decimal | None:
    """A percent as the facility writes it ("25", "25.00"); None for what is no number."""
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _decimals(shares: Mapping[str, Any]) -> dict[str, Decimal | None]:
    return {code: _decimal(value) for code, value in shares.items()}


def _by_pseudonym(delegate: dict[str, Any]) -> str:
    return str(delegate["pseudonym"])
