"""Slurm's association tree as governance wants it: root → member state → project.

`read_tree` reads what Slurm holds, `plan` (pure) compares it with what commonlab wants, and
`apply` makes the planned changes with `sacctmgr -i`. Nothing is overwritten silently: a value
commonlab manages is changed only while it still equals what commonlab last applied, which is
kept in Slurm itself, in the Description of the account (`commonlab parent=ms-de fairshare=40
qos=p-x grptres=cpu:4 users=alice,bob`) and of its budget QOS (`commonlab budget=cpu:600`).
Anything else that differs (a hand edit, an account made by hand) is reported as drift and left
alone, unless `plan(..., force=True)`.

A member state's cap, `GrpTRES` on its account (what all its projects' jobs may hold at once),
is the share controller's: an AccountSpec without `grp_tres` leaves it as it is.

A project's hard budget is a QOS of the account's own name, its only and default QOS, with
`GrpTRESMins` and `Flags=NoDecay`: association usage decays with PriorityDecayHalfLife, and a
budget that decays lets a capped project run again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from commonlab.compute.executors.slurm.cli import SlurmRefused, SlurmUnavailable
from commonlab.errors import InvalidInput

__all__ = [
    "AccountSpec",
    "Change",
    "Drift",
    "Sacctmgr",
    "SlurmAccount",
    "SlurmQos",
    "SlurmTree",
    "SyncPlan",
    "apply",
    "plan",
    "read_tree",
]

ROOT = "root"
BUDGET_FLAG = "NoDecay"
_MARK = "commonlab"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_TRES = re.compile(r"^[a-z]+(/[a-z0-9_.:-]+)?$")


class Sacctmgr(Protocol):
    """Runs `sacctmgr ARGS` and returns its stdout (SlurmCli does)."""

    def sacctmgr(self, *args: str) -> str: ...


@dataclass(frozen=True)
class AccountSpec:
    """One account as commonlab wants it."""

    name: str  # "ms-de" for a member state, "p-<project>" for a project
    parent: str  # "root" or the member state's account
    fairshare: int
    budget_minutes: dict[str, int] | None  # per TRES, e.g. {"gres/gpu": 6000}; None: no budget
    users: frozenset[str] = frozenset()
    # GrpTRES per TRES, e.g. {"gres/gpu": 4}; {}: no cap; None: whatever it is now stays.
    grp_tres: dict[str, int] | None = None


@dataclass(frozen=True)
class SlurmAccount:
    """One account as Slurm holds it (its cluster association and its users')."""

    name: str
    parent: str
    fairshare: int  # -1 where Slurm says Fairshare=parent
    qos: frozenset[str]
    default_qos: str
    users: frozenset[str]
    description: str
    grp_tres: dict[str, int] = field(default_factory=dict)  # {} where it has no cap


@dataclass(frozen=True)
class SlurmQos:
    name: str
    grp_tres_mins: dict[str, int]
    flags: frozenset[str]
    description: str


@dataclass(frozen=True)
class SlurmTree:
    accounts: dict[str, SlurmAccount]  # every account but root
    qos: dict[str, SlurmQos]
    default_accounts: dict[str, str] = field(default_factory=dict)  # user → DefaultAccount


@dataclass(frozen=True)
class Change:
    """Something sync will do; `commands` are sacctmgr's arguments, run after `sacctmgr -i`."""

    account: str
    description: str
    commands: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Drift:
    """Something in Slurm that differs from what commonlab wants and that sync leaves alone."""

    account: str
    description: str


@dataclass(frozen=True)
class SyncPlan:
    changes: tuple[Change, ...]
    drift: tuple[Drift, ...]

    def lines(self) -> list[str]:
        """The plan for a person: one line per change, then one per drift finding."""
        return [f"change: {c.description}" for c in self.changes] + [
            f"drift: {d.description}" for d in self.drift
        ]


# Reading ---------------------------------------------------------------------------------------


def read_tree(runner: Sacctmgr) -> SlurmTree:
    """Accounts, their users and QOS, as `sacctmgr show` reports them (one cluster)."""
    descriptions = {
        name: description
        for name, description in _rows(
            runner.sacctmgr("-n", "-P", "show", "account", "format=account,description"), 2
        )
    }
    parents: dict[str, str] = {}
    fairshares: dict[str, int] = {}
    qos: dict[str, frozenset[str]] = {}
    default_qos: dict[str, str] = {}
    users: dict[str, set[str]] = {}
    caps: dict[str, dict[str, int]] = {}
    assoc = runner.sacctmgr(
        "-n",
        "-P",
        "show",
        "assoc",
        "format=account,user,parentname,fairshare,qos,defaultqos,grptres",
    )
    for account, user, parent, fairshare, qos_list, default, grp_tres in _rows(assoc, 7):
        if user:
            users.setdefault(account, set()).add(user)
            continue
        parents[account] = parent
        caps[account] = _parse_budget(grp_tres, separator="=")
        fairshares[account] = int(fairshare) if fairshare.lstrip("-").isdigit() else -1
        qos[account] = frozenset(q for q in qos_list.split(",") if q)
        default_qos[account] = default
    accounts = {
        name: SlurmAccount(
            name=name,
            parent=parent,
            fairshare=fairshares[name],
            qos=qos[name],
            default_qos=default_qos[name],
            users=frozenset(users.get(name, ())),
            description=descriptions.get(name, ""),
            grp_tres=caps[name],
        )
        for name, parent in parents.items()
        if name != ROOT
    }
    all_qos = {
        name: SlurmQos(
            name=name,
            grp_tres_mins=_parse_budget(limits, separator="="),
            flags=frozenset(f for f in flags.split(",") if f),
            description=description,
        )
        for name, flags, limits, description in _rows(
            runner.sacctmgr("-n", "-P", "show", "qos", "format=name,flags,grptresmins,description"),
            4,
        )
    }
    default_accounts = dict(
        _rows(runner.sacctmgr("-n", "-P", "show", "user", "format=user,defaultaccount"), 2)
    )
    return SlurmTree(accounts=accounts, qos=all_qos, default_accounts=default_accounts)


def _rows(text: str, width: int) -> Iterable[list[str]]:
    """`sacctmgr -n -P` lines; the last field (a Description) may itself hold a `|`."""
    for line in text.splitlines():
        if line.strip():
            fields = line.split("|", width - 1)
            if len(fields) != width:
                raise SlurmUnavailable(f"sacctmgr answered a line this code cannot read: {line!r}")
            yield fields


# Planning --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Applied:
    """What commonlab last applied to one account, read back from Descriptions."""

    parent: str | None = None
    fairshare: int | None = None
    qos: str | None = None
    users: frozenset[str] = frozenset()
    grp_tres: dict[str, int] | None = None  # None: commonlab never capped it


_T = TypeVar("_T")
_ASSIGN: dict[str, Callable[[Any], list[str]]] = {
    "parent": lambda parent: [f"parent={parent}"],
    "fairshare": lambda fairshare: [f"fairshare={fairshare}"],
    "qos": lambda qos: [f"qos={qos}", f"defaultqos={qos}"],
}


def plan(desired: Mapping[str, AccountSpec], actual: SlurmTree, *, force: bool = False) -> SyncPlan:
    """The changes that bring Slurm to `desired`, and the drift left alone (all of it is
    changed with `force`). Planning the same desired tree again after `apply` gives no
    changes."""
    _check(desired)
    # Where each user may submit, now or once this plan is applied.
    memberships: dict[str, set[str]] = {}
    for name, users in [(a.name, a.users) for a in actual.accounts.values()] + [
        (spec.name, spec.users) for spec in desired.values()
    ]:
        for user in users:
            memberships.setdefault(user, set()).add(name)
    planner = _Planner(force, memberships, actual.default_accounts)
    for spec in _parents_first(desired):
        planner.account(spec, actual.accounts.get(spec.name), actual.qos.get(spec.name))
    for name in sorted(set(actual.accounts) - set(desired)):
        account = actual.accounts[name]
        if _parse_description(account.description) is not None:
            why = "commonlab made it but no longer wants it"
        else:
            why = "commonlab does not know it (made by hand?)"
        planner.drift(name, f"account {name} under {account.parent}: {why}; left alone")
    return SyncPlan(changes=tuple(planner.changes), drift=tuple(planner.found))


@dataclass
class _Planner:
    force: bool
    memberships: dict[str, set[str]]  # user → the accounts they may submit to
    default_accounts: dict[str, str]
    changes: list[Change] = field(default_factory=list)
    found: list[Drift] = field(default_factory=list)

    def change(self, account: str, description: str, *commands: tuple[str, ...]) -> None:
        self.changes.append(Change(account, description, commands))

    def drift(self, account: str, description: str) -> None:
        self.found.append(Drift(account, description))

    def decide(
        self,
        account: str,
        what: str,
        want: object,
        have: object,
        last: object,
        *,
        hand_edit: str = "",
    ) -> bool:
        """Whether to change a managed value from `have` to `want`: yes if commonlab put
        `have` there (it equals `last`), or with force; otherwise it is drift."""
        if have == want:
            return False
        if (last is not None and have == last) or self.force:
            return True
        hand_edit = hand_edit or (
            f"{what} is {_show(have)} in Slurm, commonlab wants {_show(want)} and last "
            f"applied {_show(last) if last is not None else 'nothing'}: changed by hand"
        )
        self.drift(account, f"{account}: {hand_edit}, left alone (force overwrites)")
        return False

    def account(self, spec: AccountSpec, have: SlurmAccount | None, qos: SlurmQos | None) -> None:
        if spec.budget_minutes is not None:
            self.budget(spec, qos, _parse_qos_description(qos) if qos else None)
        if have is None:
            self.create(spec)
            return
        last = _parse_description(have.description) or _Applied()
        assignments: list[str] = []
        notes: list[str] = []

        def settle(key: str, want: _T, current: object, previous: _T | None) -> _T | None:
            """Plan one value; return what commonlab will have applied. A value left as
            drift keeps the last applied one, so the next plan still sees the hand edit."""
            if self.decide(spec.name, key, want, current, previous):
                assignments.extend(_ASSIGN[key](want))
                notes.append(f"{key} {_show(current)} → {_show(want)}")
                return want
            return want if current == want else previous

        parent = settle("parent", spec.parent, have.parent, last.parent)
        fairshare = settle("fairshare", spec.fairshare, have.fairshare, last.fairshare)
        qos = last.qos
        if spec.budget_minutes is not None:
            qos = settle("qos", spec.name, _qos_setting(have), last.qos)
        caps = last.grp_tres
        if spec.grp_tres is not None:
            # An account commonlab never capped had no cap from it.
            last_cap = last.grp_tres or {}
            if self.decide(spec.name, "cap (GrpTRES)", spec.grp_tres, have.grp_tres, last_cap):
                lifted = {**dict.fromkeys(have.grp_tres, -1), **spec.grp_tres}  # -1 lifts
                assignments.append(f"grptres={_format_budget(lifted, separator='=')}")
                notes.append(f"cap {_show(have.grp_tres)} → {_show(spec.grp_tres)}")
                caps = spec.grp_tres
            elif have.grp_tres == spec.grp_tres:
                caps = spec.grp_tres
        applied = _Applied(parent, fairshare, qos, self.users(spec, have, last), caps)
        description = _describe(applied)
        where = ("modify", "account", "where", f"name={spec.name}", "set")
        if assignments:
            self.change(
                spec.name,
                f"{spec.name}: {', '.join(notes)}",
                (*where, *assignments, f"description={description}"),
            )
        elif description != have.description:
            self.change(
                spec.name,
                f"{spec.name}: record what commonlab applied ({description})",
                (*where, f"description={description}"),
            )

    def create(self, spec: AccountSpec) -> None:
        qos = spec.name if spec.budget_minutes is not None else None
        applied = _Applied(spec.parent, spec.fairshare, qos, spec.users)
        command = ["add", "account", spec.name, f"parent={spec.parent}"]
        command += [f"fairshare={spec.fairshare}", f"description={_describe(applied)}"]
        if qos is not None:
            command += [f"qos={qos}", f"defaultqos={qos}"]
        what = f"create account {spec.name} under {spec.parent}, fairshare {spec.fairshare}"
        self.change(spec.name, what + (f", QOS {qos}" if qos else ""), tuple(command))
        for user in sorted(spec.users):
            self.change(
                spec.name,
                f"{spec.name}: let {user} submit",
                ("add", "user", user, f"account={spec.name}"),
            )

    def users(self, spec: AccountSpec, have: SlurmAccount, last: _Applied) -> frozenset[str]:
        """Plan who may submit; return the users commonlab will have applied."""
        applied = set(last.users)
        for user in sorted(spec.users | have.users):
            want, present = user in spec.users, user in have.users
            if want == present:
                if want:
                    applied.add(user)
                else:
                    applied.discard(user)
                continue
            # A user commonlab never added may be added freely; removing one is a change only
            # if commonlab added it (someone else's grant is theirs to take back).
            was = user in last.users
            if present:
                hand_edit = f"{user} may submit but commonlab never let them: added by hand"
            else:
                hand_edit = f"{user} may not submit though commonlab let them: removed by hand"
            if not self.decide(spec.name, user, want, present, was, hand_edit=hand_edit):
                continue
            if want:
                self.change(
                    spec.name,
                    f"{spec.name}: let {user} submit",
                    ("add", "user", user, f"account={spec.name}"),
                )
                applied.add(user)
            else:
                self.change(
                    spec.name,
                    f"{spec.name}: {user} may no longer submit",
                    *_remove(
                        user,
                        spec.name,
                        self.memberships[user] - {spec.name},
                        self.default_accounts.get(user, ""),
                    ),
                )
                applied.discard(user)
        return frozenset(applied)

    def budget(self, spec: AccountSpec, qos: SlurmQos | None, last: dict[str, int] | None) -> None:
        want = dict(spec.budget_minutes or {})
        description = f"{_MARK} budget={_format_budget(want, separator=':')}"
        if qos is None:
            self.change(
                spec.name,
                f"{spec.name}: create QOS {spec.name} with budget {_show(want)} minutes",
                (
                    "add",
                    "qos",
                    spec.name,
                    f"flags={BUDGET_FLAG}",
                    f"grptresmins={_format_budget(want, separator='=')}",
                    f"description={description}",
                ),
            )
            return
        label = f"budget (QOS {spec.name} GrpTRESMins)"
        if self.decide(spec.name, label, want, qos.grp_tres_mins, last):
            limits = {**dict.fromkeys(qos.grp_tres_mins, -1), **want}  # -1 clears a limit
            self.change(
                spec.name,
                f"{spec.name}: budget {_show(qos.grp_tres_mins)} → {_show(want)} minutes",
                (
                    "modify",
                    "qos",
                    "where",
                    f"name={spec.name}",
                    "set",
                    f"grptresmins={_format_budget(limits, separator='=')}",
                    f"description={description}",
                ),
            )
        elif qos.grp_tres_mins == want and qos.description != description:
            self.change(
                spec.name,
                f"{spec.name}: record the budget commonlab applied ({description})",
                (
                    "modify",
                    "qos",
                    "where",
                    f"name={spec.name}",
                    "set",
                    f"description={description}",
                ),
            )
        if BUDGET_FLAG not in qos.flags:
            # commonlab always sets it: its absence is someone's edit.
            if self.force:
                self.change(
                    spec.name,
                    f"{spec.name}: QOS {spec.name} gets back Flags={BUDGET_FLAG}",
                    ("modify", "qos", "where", f"name={spec.name}", "set", f"flags+={BUDGET_FLAG}"),
                )
            else:
                self.drift(
                    spec.name,
                    f"{spec.name}: QOS {spec.name} lacks Flags={BUDGET_FLAG}, so its budget "
                    "decays: changed by hand, left alone (force overwrites)",
                )


def _remove(user: str, account: str, others: set[str], default: str) -> list[tuple[str, ...]]:
    """Slurm will not remove a user's last association (their default account) on its own:
    a user left with no account is removed whole, one whose default goes gets another."""
    if not others:
        return [("remove", "user", "where", f"name={user}")]
    commands = [("remove", "user", "where", f"name={user}", f"account={account}")]
    if default == account:
        commands.append(
            ("modify", "user", "where", f"name={user}", "set", f"defaultaccount={min(others)}")
        )
    return commands


def _qos_setting(account: SlurmAccount) -> str:
    """The account's QOS as one comparable value: "p-x" when it is the only and default one."""
    if len(account.qos) == 1 and account.default_qos in account.qos:
        return account.default_qos
    listed = ",".join(sorted(account.qos)) or "none"
    return f"{listed} (default {account.default_qos or 'none'})"


def _check(desired: Mapping[str, AccountSpec]) -> None:
    for key, spec in desired.items():
        if key != spec.name:
            raise InvalidInput(f"account {spec.name!r} is filed under {key!r}")
        if not _NAME.match(spec.name) or spec.name == ROOT:
            raise InvalidInput(f"{spec.name!r} is not a Slurm account name commonlab may use")
        if spec.parent != ROOT and spec.parent not in desired:
            raise InvalidInput(f"account {spec.name}: its parent {spec.parent!r} is not wanted")
        if spec.fairshare < 0:
            raise InvalidInput(f"account {spec.name}: fairshare must be 0 or more")
        for user in spec.users:
            if not _USER.match(user):
                raise InvalidInput(f"account {spec.name}: {user!r} is not a Unix user name")
        if spec.budget_minutes == {}:
            raise InvalidInput(f"account {spec.name}: a budget names at least one TRES")
        for tres, minutes in (spec.budget_minutes or {}).items():
            if not _TRES.match(tres) or minutes < 0:
                raise InvalidInput(f"account {spec.name}: budget {tres}={minutes} is not valid")
        for tres, count in (spec.grp_tres or {}).items():
            if not _TRES.match(tres) or count < 0:
                raise InvalidInput(f"account {spec.name}: cap {tres}={count} is not valid")


def _parents_first(desired: Mapping[str, AccountSpec]) -> list[AccountSpec]:
    ordered: list[AccountSpec] = []
    placed = {ROOT}
    remaining = sorted(desired.values(), key=lambda spec: spec.name)
    while remaining:
        ready = [spec for spec in remaining if spec.parent in placed]
        if not ready:
            raise InvalidInput(f"accounts {', '.join(s.name for s in remaining)} form a cycle")
        ordered += ready
        placed |= {spec.name for spec in ready}
        remaining = [spec for spec in remaining if spec.name not in placed]
    return ordered


# Descriptions: what commonlab last applied -----------------------------------------------------


def _describe(applied: _Applied) -> str:
    parts = [_MARK]
    if applied.parent is not None:
        parts.append(f"parent={applied.parent}")
    if applied.fairshare is not None:
        parts.append(f"fairshare={applied.fairshare}")
    if applied.qos is not None:
        parts.append(f"qos={applied.qos}")
    if applied.grp_tres:
        parts.append(f"grptres={_format_budget(applied.grp_tres, separator=':')}")
    parts.append(f"users={','.join(sorted(applied.users))}")
    return " ".join(parts)


def _parse_description(description: str) -> _Applied | None:
    """None unless commonlab wrote this Description."""
    words = description.split()
    if not words or words[0] != _MARK:
        return None
    values = dict(word.partition("=")[::2] for word in words[1:])
    fairshare = values.get("fairshare", "")
    return _Applied(
        parent=values.get("parent") or None,
        fairshare=int(fairshare) if fairshare.isdigit() else None,
        qos=values.get("qos") or None,
        users=frozenset(u for u in values.get("users", "").split(",") if u),
        grp_tres=_parse_budget(values["grptres"], separator=":") if "grptres" in values else None,
    )


def _parse_qos_description(qos: SlurmQos) -> dict[str, int] | None:
    words = qos.description.split()
    if len(words) != 2 or words[0] != _MARK or not words[1].startswith("budget="):
        return None
    return _parse_budget(words[1].removeprefix("budget="), separator=":")


def _parse_budget(text: str, *, separator: str) -> dict[str, int]:
    budget: dict[str, int] = {}
    for item in text.split(","):
        tres, sep, minutes = item.rpartition(separator)
        if sep and minutes.lstrip("-").isdigit():
            budget[tres] = int(minutes)
    return budget


def _format_budget(budget: Mapping[str, int], *, separator: str) -> str:
    return ",".join(f"{tres}{separator}{minutes}" for tres, minutes in sorted(budget.items()))


def _show(value: object) -> str:
    if isinstance(value, dict):
        return _format_budget(value, separator="=") or "none"
    return str(value)


# Applying --------------------------------------------------------------------------------------


# How often, and how long apart, a command naming an account this sync has just created is
# tried again when slurmdbd still says the account does not exist.
SETTLE_ATTEMPTS = 6
SETTLE_PAUSE_SECONDS = 0.5


def apply(plan: SyncPlan, runner: Sacctmgr, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Make the planned changes, in order. Drift is left as it is.

    A slurmdbd under load can answer a command that names an account created a moment before
    by this same sync (letting a user submit to it, say) with "doesn't exist": the account
    is committed, its association not yet visible. Such a refusal is tried again a few times;
    any other refusal, or one about an account this sync did not create, stands at once."""
    created: set[str] = set()
    for change in plan.changes:
        for command in change.commands:
            for attempt in range(1, SETTLE_ATTEMPTS + 1):
                try:
                    runner.sacctmgr("-i", *command)
                    break
                except SlurmRefused as refused:
                    unsettled = "doesn't exist" in refused.slurm_message and any(
                        f"'{name}'" in refused.slurm_message for name in created
                    )
                    if not unsettled or attempt == SETTLE_ATTEMPTS:
                        raise
                    sleep(SETTLE_PAUSE_SECONDS * attempt)
            if command[:2] == ("add", "account"):
                created.add(command[2])
