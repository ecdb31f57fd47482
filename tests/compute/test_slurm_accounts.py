"""Syncing the association tree: `plan` on hand-written trees (including hand edits),
`read_tree` on real sacctmgr output, and the whole sync against the test cluster (`slurm`)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from commonlab.compute.executors.slurm.accounts import (
    SETTLE_ATTEMPTS,
    AccountSpec,
    SlurmAccount,
    SlurmQos,
    SlurmTree,
    SyncPlan,
    apply,
    plan,
    read_tree,
)
from commonlab.compute.executors.slurm.cli import SlurmCli, SlurmError, SlurmRefused
from commonlab.errors import InvalidInput
from tests.slurm_fixtures import SlurmCluster, unique_name

DATA = Path(__file__).parent / "data"

MEMBER_STATE = AccountSpec("ms-de", "root", 40, None)
PROJECT = AccountSpec("p-alpha", "ms-de", 10, {"cpu": 600}, frozenset({"alice", "bob"}))
DESIRED = {spec.name: spec for spec in (MEMBER_STATE, PROJECT)}


def _synced() -> SlurmTree:
    """Slurm as commonlab leaves it after applying DESIRED."""
    return SlurmTree(
        accounts={
            "ms-de": SlurmAccount(
                name="ms-de",
                parent="root",
                fairshare=40,
                qos=frozenset({"normal"}),
                default_qos="",
                users=frozenset(),
                description="commonlab parent=root fairshare=40 users=",
            ),
            "p-alpha": SlurmAccount(
                name="p-alpha",
                parent="ms-de",
                fairshare=10,
                qos=frozenset({"p-alpha"}),
                default_qos="p-alpha",
                users=frozenset({"alice", "bob"}),
                description="commonlab parent=ms-de fairshare=10 qos=p-alpha users=alice,bob",
            ),
        },
        qos={
            "normal": SlurmQos("normal", {}, frozenset(), "Normal QOS default"),
            "p-alpha": SlurmQos(
                "p-alpha", {"cpu": 600}, frozenset({"NoDecay"}), "commonlab budget=cpu:600"
            ),
        },
        default_accounts={"alice": "p-alpha", "bob": "p-alpha"},
    )


def _edit(tree: SlurmTree, account: str, **values: object) -> SlurmTree:
    """The tree with one account's values changed by hand."""
    return replace(
        tree, accounts={**tree.accounts, account: replace(tree.accounts[account], **values)}
    )


def _edit_qos(tree: SlurmTree, qos: str, **values: object) -> SlurmTree:
    """The tree with one QOS's values changed by hand."""
    return replace(tree, qos={**tree.qos, qos: replace(tree.qos[qos], **values)})


def _commands(result: SyncPlan) -> list[tuple[str, ...]]:
    return [command for change in result.changes for command in change.commands]


# plan -----------------------------------------------------------------------------------------


def test_an_empty_slurm_gets_the_whole_tree_parents_and_budgets_first() -> None:
    result = plan(DESIRED, SlurmTree(accounts={}, qos={}))

    assert _commands(result) == [
        (
            "add",
            "account",
            "ms-de",
            "parent=root",
            "fairshare=40",
            "description=commonlab parent=root fairshare=40 users=",
        ),
        (
            "add",
            "qos",
            "p-alpha",
            "flags=NoDecay",
            "grptresmins=cpu=600",
            "description=commonlab budget=cpu:600",
        ),
        (
            "add",
            "account",
            "p-alpha",
            "parent=ms-de",
            "fairshare=10",
            "description=commonlab parent=ms-de fairshare=10 qos=p-alpha users=alice,bob",
            "qos=p-alpha",
            "defaultqos=p-alpha",
        ),
        ("add", "user", "alice", "account=p-alpha"),
        ("add", "user", "bob", "account=p-alpha"),
    ]
    assert result.drift == ()
    assert result.lines()[:2] == [
        "change: create account ms-de under root, fairshare 40",
        "change: p-alpha: create QOS p-alpha with budget cpu=600 minutes",
    ]


def test_the_tree_as_applied_plans_nothing() -> None:
    assert plan(DESIRED, _synced()) == SyncPlan(changes=(), drift=())


def test_a_new_wish_replaces_what_commonlab_applied() -> None:
    desired = {**DESIRED, "p-alpha": replace(PROJECT, fairshare=25)}

    result = plan(desired, _synced())

    assert _commands(result) == [
        (
            "modify",
            "account",
            "where",
            "name=p-alpha",
            "set",
            "fairshare=25",
            "description=commonlab parent=ms-de fairshare=25 qos=p-alpha users=alice,bob",
        )
    ]
    assert result.lines() == ["change: p-alpha: fairshare 10 → 25"]


def test_a_hand_edit_is_reported_and_left_alone() -> None:
    edited = _edit(_synced(), "p-alpha", fairshare=99)

    for desired in (DESIRED, {**DESIRED, "p-alpha": replace(PROJECT, fairshare=25)}):
        result = plan(desired, edited)
        assert result.changes == ()
        (drift,) = result.drift
        assert drift.account == "p-alpha"
        assert "fairshare is 99 in Slurm" in drift.description
        assert "last applied 10: changed by hand, left alone" in drift.description


def test_force_overwrites_a_hand_edit() -> None:
    edited = _edit(_synced(), "p-alpha", fairshare=99)

    result = plan(DESIRED, edited, force=True)

    assert result.drift == ()
    assert _commands(result) == [
        (
            "modify",
            "account",
            "where",
            "name=p-alpha",
            "set",
            "fairshare=10",
            "description=commonlab parent=ms-de fairshare=10 qos=p-alpha users=alice,bob",
        )
    ]


def test_a_new_budget_replaces_the_old_one_and_clears_what_it_drops() -> None:
    desired = {**DESIRED, "p-alpha": replace(PROJECT, budget_minutes={"gres/gpu": 6000})}

    result = plan(desired, _synced())

    assert _commands(result) == [
        (
            "modify",
            "qos",
            "where",
            "name=p-alpha",
            "set",
            "grptresmins=cpu=-1,gres/gpu=6000",
            "description=commonlab budget=gres/gpu:6000",
        )
    ]


def test_a_budget_raised_by_hand_is_drift() -> None:
    result = plan(DESIRED, _edit_qos(_synced(), "p-alpha", grp_tres_mins={"cpu": 900}))

    assert result.changes == ()
    assert [d.description for d in result.drift] == [
        "p-alpha: budget (QOS p-alpha GrpTRESMins) is cpu=900 in Slurm, commonlab wants "
        "cpu=600 and last applied cpu=600: changed by hand, left alone (force overwrites)"
    ]


def test_a_budget_qos_that_lost_nodecay_is_drift_until_forced() -> None:
    edited = _edit_qos(_synced(), "p-alpha", flags=frozenset())

    assert plan(DESIRED, edited).changes == ()
    assert "lacks Flags=NoDecay" in plan(DESIRED, edited).drift[0].description
    assert _commands(plan(DESIRED, edited, force=True)) == [
        ("modify", "qos", "where", "name=p-alpha", "set", "flags+=NoDecay")
    ]


def test_a_second_qos_added_by_hand_is_drift_until_forced() -> None:
    edited = _edit(_synced(), "p-alpha", qos=frozenset({"p-alpha", "normal"}))

    result = plan(DESIRED, edited)
    assert result.changes == ()
    assert [d.description for d in result.drift] == [
        "p-alpha: qos is normal,p-alpha (default p-alpha) in Slurm, commonlab wants p-alpha "
        "and last applied p-alpha: changed by hand, left alone (force overwrites)"
    ]
    assert _commands(plan(DESIRED, edited, force=True))[0][5:7] == (
        "qos=p-alpha",
        "defaultqos=p-alpha",
    )


def test_users_commonlab_added_come_and_go_with_the_project() -> None:
    desired = {**DESIRED, "p-alpha": replace(PROJECT, users=frozenset({"alice", "carol"}))}

    result = plan(desired, _synced())

    assert _commands(result) == [
        ("remove", "user", "where", "name=bob"),  # bob's only account: Slurm wants him gone whole
        ("add", "user", "carol", "account=p-alpha"),
        (
            "modify",
            "account",
            "where",
            "name=p-alpha",
            "set",
            "description=commonlab parent=ms-de fairshare=10 qos=p-alpha users=alice,carol",
        ),
    ]


def test_a_user_with_other_accounts_is_removed_from_this_one_and_given_another_default() -> None:
    tree = _synced()
    tree = replace(
        tree,
        accounts={
            **tree.accounts,
            "p-beta": replace(tree.accounts["p-alpha"], name="p-beta", description=""),
        },
    )
    desired = {**DESIRED, "p-alpha": replace(PROJECT, users=frozenset({"alice"}))}

    commands = _commands(plan(desired, tree))

    assert commands[:2] == [
        ("remove", "user", "where", "name=bob", "account=p-alpha"),
        ("modify", "user", "where", "name=bob", "set", "defaultaccount=p-beta"),
    ]


def test_users_added_or_removed_by_hand_are_drift() -> None:
    edited = _edit(_synced(), "p-alpha", users=frozenset({"bob", "mallory"}))

    result = plan(DESIRED, edited)

    assert result.changes == ()
    assert [d.description for d in result.drift] == [
        "p-alpha: alice may not submit though commonlab let them: removed by hand, "
        "left alone (force overwrites)",
        "p-alpha: mallory may submit but commonlab never let them: added by hand, "
        "left alone (force overwrites)",
    ]
    forced = _commands(plan(DESIRED, edited, force=True))
    assert ("add", "user", "alice", "account=p-alpha") in forced
    assert ("remove", "user", "where", "name=mallory") in forced


def test_accounts_commonlab_does_not_want_are_reported_and_kept() -> None:
    tree = _synced()
    hand_made = replace(tree.accounts["ms-de"], name="physics", description="made by hand")
    retired = replace(tree.accounts["p-alpha"], name="p-old")
    tree = replace(tree, accounts={**tree.accounts, "physics": hand_made, "p-old": retired})

    result = plan(DESIRED, tree)

    assert result.changes == ()
    assert [d.description for d in result.drift] == [
        "account p-old under ms-de: commonlab made it but no longer wants it; left alone",
        "account physics under root: commonlab does not know it (made by hand?); left alone",
    ]


def test_an_account_made_by_hand_as_commonlab_wants_it_is_adopted() -> None:
    tree = _edit(_synced(), "ms-de", description="Germany")
    tree = _edit_qos(tree, "p-alpha", description="p-alpha")

    result = plan(DESIRED, tree)

    assert result.drift == ()
    assert [c.description for c in result.changes] == [
        "ms-de: record what commonlab applied (commonlab parent=root fairshare=40 users=)",
        "p-alpha: record the budget commonlab applied (commonlab budget=cpu:600)",
    ]


def test_a_project_moves_to_a_new_member_state_after_it_is_made() -> None:
    desired = {
        **DESIRED,
        "ms-fr": AccountSpec("ms-fr", "root", 30, None),
        "p-alpha": replace(PROJECT, parent="ms-fr"),
    }

    result = plan(desired, _synced())

    assert [c.description for c in result.changes] == [
        "create account ms-fr under root, fairshare 30",
        "p-alpha: parent ms-de → ms-fr",
    ]


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        ({"P-Alpha": replace(PROJECT, name="P-Alpha")}, "not a Slurm account name"),
        ({"p-alpha": PROJECT}, "parent 'ms-de' is not wanted"),
        ({"x": PROJECT}, "filed under"),
        (
            {
                "a": AccountSpec("a", "b", 1, None),
                "b": AccountSpec("b", "a", 1, None),
            },
            "form a cycle",
        ),
        ({**DESIRED, "p-alpha": replace(PROJECT, budget_minutes={})}, "at least one TRES"),
        ({**DESIRED, "p-alpha": replace(PROJECT, budget_minutes={"cpu": -1})}, "not valid"),
        ({**DESIRED, "p-alpha": replace(PROJECT, users=frozenset({"Bob Smith"}))}, "Unix user"),
    ],
)
def test_a_desired_tree_slurm_cannot_hold_is_refused(
    desired: dict[str, AccountSpec], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        plan(desired, SlurmTree(accounts={}, qos={}))


# read_tree and apply ---------------------------------------------------------------------------


@dataclass
class _Recorded:
    """sacctmgr answering from saved real output, and recording what it is asked to do."""

    asked: list[tuple[str, ...]]

    def sacctmgr(self, *args: str) -> str:
        self.asked.append(args)
        for what in ("account", "assoc", "qos", "user"):
            if args[:4] == ("-n", "-P", "show", what):
                return (DATA / f"sacctmgr_{what}.txt").read_text()
        return ""


# Caps: GrpTRES on a member state's account, the share controller's --------------------------

CAPPED = replace(MEMBER_STATE, grp_tres={"cpu": 4})
CAP_NOTED = "commonlab parent=root fairshare=40 grptres=cpu:4 users="


def test_a_cap_is_set_recorded_in_the_description_and_lifted() -> None:
    result = plan({**DESIRED, "ms-de": CAPPED}, _synced())

    assert result.lines() == ["change: ms-de: cap none → cpu=4"]
    where = ("modify", "account", "where", "name=ms-de", "set")
    assert _commands(result) == [(*where, "grptres=cpu=4", f"description={CAP_NOTED}")]
    capped = _edit(_synced(), "ms-de", grp_tres={"cpu": 4}, description=CAP_NOTED)
    assert plan({**DESIRED, "ms-de": CAPPED}, capped).changes == ()
    # Sync wants no particular cap: it keeps the controller's, and its note.
    kept = plan(DESIRED, capped)
    assert kept.changes == () and kept.drift == ()
    lifted = plan({**DESIRED, "ms-de": replace(MEMBER_STATE, grp_tres={})}, capped)
    assert _commands(lifted) == [
        (*where, "grptres=cpu=-1", "description=commonlab parent=root fairshare=40 users=")
    ]


def test_a_cap_set_by_hand_is_drift_until_forced() -> None:
    by_hand = _edit(_synced(), "ms-de", grp_tres={"cpu": 9})

    result = plan({**DESIRED, "ms-de": CAPPED}, by_hand)

    assert result.changes == ()
    [drift] = result.drift
    assert "cap (GrpTRES) is cpu=9 in Slurm, commonlab wants cpu=4" in drift.description
    forced = plan({**DESIRED, "ms-de": CAPPED}, by_hand, force=True)
    assert forced.lines() == ["change: ms-de: cap cpu=9 → cpu=4"]


def test_a_cap_slurm_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cap cpu=-2 is not valid"):
        plan({**DESIRED, "ms-de": replace(MEMBER_STATE, grp_tres={"cpu": -2})}, _synced())


def test_read_tree_on_real_sacctmgr_output() -> None:
    """Saved after a sync of ms-zz, p-zalpha and p-zbeta, then edits by hand: p-zbeta's
    fairshare 5 → 7 and its QOS without NoDecay, zmallory added to p-zalpha, account zhand."""
    tree = read_tree(_Recorded([]))

    assert sorted(tree.accounts) == ["cl-tests", "ms-zz", "p-zalpha", "p-zbeta", "zhand"]
    assert tree.accounts["p-zalpha"] == SlurmAccount(
        name="p-zalpha",
        parent="ms-zz",
        fairshare=10,
        qos=frozenset({"p-zalpha"}),
        default_qos="p-zalpha",
        users=frozenset({"clrunner", "zalice", "zmallory"}),
        description="commonlab parent=ms-zz fairshare=10 qos=p-zalpha users=clrunner,zalice",
    )
    assert tree.accounts["zhand"].description == "made by hand | with a bar"
    assert tree.qos["p-zbeta"] == SlurmQos(
        "p-zbeta",
        {"cpu": 100, "gres/gpu": 6000},
        frozenset(),
        "commonlab budget=cpu:100,gres/gpu:6000",
    )
    assert tree.default_accounts["zalice"] == "p-zalpha"
    assert all(account.grp_tres == {} for account in tree.accounts.values())  # no caps there

    desired = {
        "ms-zz": AccountSpec("ms-zz", "root", 40, None),
        "p-zalpha": AccountSpec(
            "p-zalpha", "ms-zz", 10, {"cpu": 600}, frozenset({"clrunner", "zalice"})
        ),
        "p-zbeta": AccountSpec(
            "p-zbeta", "ms-zz", 5, {"gres/gpu": 6000, "cpu": 100}, frozenset({"clrunner"})
        ),
    }
    result = plan(desired, tree)
    assert result.changes == ()
    assert [d.account for d in result.drift] == [
        "p-zalpha",
        "p-zbeta",
        "p-zbeta",
        "cl-tests",
        "zhand",
    ]


def test_apply_runs_each_change_with_sacctmgr_i_in_order() -> None:
    runner = _Recorded([])
    result = plan(DESIRED, SlurmTree(accounts={}, qos={}))

    apply(result, runner)

    assert runner.asked == [("-i", *command) for command in _commands(result)]


class _Settling(_Recorded):
    """slurmdbd under load: a command naming `missing` is refused `times` times as if the
    account did not exist yet (its creation committed, its association not yet visible)."""

    def __init__(self, missing: str, times: int, *, naming: str | None = None) -> None:
        super().__init__([])
        # `naming`: the account whose commands are refused (by default the missing one).
        self.missing, self.times, self.naming = missing, times, naming or missing

    def sacctmgr(self, *args: str) -> str:
        naming = args[:3] == ("-i", "add", "user") and self.naming in args[-1]
        if naming and self.times > 0:
            self.times -= 1
            self.asked.append(args)
            message = f"This account '{self.missing}' doesn't exist."
            raise SlurmRefused(f"sacctmgr refused: {message}", slurm_message=message,
                               command="sacctmgr")  # fmt: skip
        return super().sacctmgr(*args)


def test_a_command_on_an_account_this_sync_just_created_waits_for_it_to_settle() -> None:
    result = plan(DESIRED, SlurmTree(accounts={}, qos={}))
    slept: list[float] = []
    runner = _Settling(PROJECT.name, times=2)

    apply(result, runner, sleep=slept.append)

    commands = [("-i", *command) for command in _commands(result)]
    retried = next(c for c in commands if c[2] == "user" and PROJECT.name in c[-1])
    assert runner.asked.count(retried) == 3 and slept == [0.5, 1.0]
    assert [c for c in runner.asked if c != retried] == [c for c in commands if c != retried]


def test_a_refusal_about_an_account_it_did_not_create_stands_at_once() -> None:
    """`p-zz` is no account this sync creates: its absence is Slurm's answer, not a lag."""
    result = plan(DESIRED, SlurmTree(accounts={}, qos={}))
    slept: list[float] = []
    with pytest.raises(SlurmRefused, match="p-zz"):
        apply(result, _Settling("p-zz", times=1, naming=PROJECT.name), sleep=slept.append)
    assert slept == []


def test_an_account_that_never_settles_is_refused_after_the_last_attempt() -> None:
    result = plan(DESIRED, SlurmTree(accounts={}, qos={}))
    slept: list[float] = []
    with pytest.raises(SlurmRefused, match="doesn't exist"):
        apply(result, _Settling(PROJECT.name, times=100), sleep=slept.append)
    assert len(slept) == SETTLE_ATTEMPTS - 1


# The real cluster ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    member_state: str
    project: str
    stranger: str  # a Slurm user that no Unix account backs (sacctmgr allows it)


@pytest.fixture
def names(slurm_cluster: SlurmCluster) -> Iterator[_Names]:
    made = _Names(unique_name("ms"), unique_name("p"), unique_name("u"))
    yield made
    cli = SlurmCli()
    subprocess.run(["scancel", f"--account={made.project}"], timeout=30, check=False)
    for command in (
        ("remove", "user", "where", f"name={made.stranger}"),
        ("remove", "user", "where", f"account={made.project}"),
        ("remove", "account", "where", f"name={made.project}"),
        ("remove", "account", "where", f"name={made.member_state}"),
        ("remove", "qos", "where", f"name={made.project}"),
    ):
        # A job still finishing keeps its account a little longer.
        with contextlib.suppress(SlurmError):
            cli.sacctmgr("-i", *command)


def _desired(names: _Names, cluster: SlurmCluster, **budget: int) -> dict[str, AccountSpec]:
    return {
        names.member_state: AccountSpec(names.member_state, "root", 40, None),
        names.project: AccountSpec(
            names.project,
            names.member_state,
            10,
            budget or {"cpu": 600},
            frozenset({cluster.run_as, names.stranger}),
        ),
    }


def _mine(result: SyncPlan, names: _Names) -> list[str]:
    """Drift about this test's accounts (other workers' accounts show up too)."""
    return [d.description for d in result.drift if d.account in (names.project, names.member_state)]


@pytest.mark.slurm
def test_sync_creates_the_tree_and_a_second_sync_does_nothing(
    slurm_cluster: SlurmCluster, names: _Names
) -> None:
    cli = SlurmCli()
    desired = _desired(names, slurm_cluster)

    apply(plan(desired, read_tree(cli)), cli)

    tree = read_tree(cli)
    project = tree.accounts[names.project]
    assert (project.parent, project.fairshare) == (names.member_state, 10)
    assert (project.qos, project.default_qos) == (frozenset({names.project}), names.project)
    assert project.users == {slurm_cluster.run_as, names.stranger}
    assert tree.accounts[names.member_state].fairshare == 40
    budget = tree.qos[names.project]
    assert budget.grp_tres_mins == {"cpu": 600} and "NoDecay" in budget.flags
    again = plan(desired, tree)
    assert again.changes == () and _mine(again, names) == []


@pytest.mark.slurm
def test_a_hand_edit_in_slurm_is_reported_not_overwritten(
    slurm_cluster: SlurmCluster, names: _Names
) -> None:
    cli = SlurmCli()
    desired = _desired(names, slurm_cluster)
    apply(plan(desired, read_tree(cli)), cli)
    cli.sacctmgr("-i", "modify", "account", "where", f"name={names.project}", "set", "fairshare=7")
    cli.sacctmgr(
        "-i", "modify", "qos", "where", f"name={names.project}", "set", "grptresmins=cpu=900"
    )

    result = plan(desired, read_tree(cli))
    apply(result, cli)

    assert result.changes == ()
    assert len(_mine(result, names)) == 2
    tree = read_tree(cli)
    assert tree.accounts[names.project].fairshare == 7
    assert tree.qos[names.project].grp_tres_mins == {"cpu": 900}

    apply(plan(desired, tree, force=True), cli)
    tree = read_tree(cli)
    assert tree.accounts[names.project].fairshare == 10
    assert tree.qos[names.project].grp_tres_mins == {"cpu": 600}
    assert plan(desired, tree).changes == ()


@pytest.mark.slurm
def test_slurm_itself_holds_the_jobs_of_a_project_whose_budget_is_spent(
    slurm_cluster: SlurmCluster, names: _Names
) -> None:
    cli = SlurmCli()
    apply(plan(_desired(names, slurm_cluster, cpu=0), read_tree(cli)), cli)
    workdir = slurm_cluster.job_dir("budget")

    slurm_id = cli.submit(
        "#!/bin/bash\nhostname\n",
        account=names.project,
        partition=slurm_cluster.partition,
        job_name=unique_name("cl-budget"),
        time_limit_minutes=1,
        cpus=1,
        memory_mb=100,
        gpus=0,
        workdir=workdir,
        stdout=workdir / "stdout",
        stderr=workdir / "stderr",
        uid=slurm_cluster.uid,
    )
    deadline = time.monotonic() + 120
    job = cli.jobs([slurm_id])[slurm_id]
    while job.reason != "QOSGrpCPUMinutesLimit" and time.monotonic() < deadline:
        assert job.state == "PENDING", job
        time.sleep(1)
        job = cli.jobs([slurm_id])[slurm_id]
    cli.cancel(slurm_id)

    assert (job.state, job.reason) == ("PENDING", "QOSGrpCPUMinutesLimit")
