"""Jobs through commonlab on the real single-node Slurm (scripts/slurm_up): accounts synced
from governance, a job charged from `sacct`, a job refused by Slurm for an unknown account,
cancel, Slurm down (the job stays queued, nothing charged), commonlab restarted mid-job and a
crash mid-handover (found by name, not submitted twice), and the share controller moving
member-state fair shares after an imposed imbalance."""

from __future__ import annotations

import math
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from commonlab.app import create_app
from commonlab.compute.accounts import FAIRSHARE_SCALE, member_account, project_account
from commonlab.compute.executors.slurm.accounts import read_tree
from commonlab.compute.executors.slurm.cli import SlurmCli
from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from tests.compute.helpers import award_project, run_until
from tests.helpers import auth, problem, record_entries

pytestmark = pytest.mark.slurm


class SlurmFacility:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.facility = open_facility(settings)
        with self.facility.db.session() as session:
            self.operator = auth(bootstrap_operator(session) or "")
        self.app = create_app(self.facility, run_sequencer=False)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.client.__enter__()

    @property
    def jobs(self) -> Any:
        return self.app.state.jobs

    def restart(self) -> None:
        """A new commonlab process on the same database: a fresh app and job controller."""
        self.client.__exit__(None, None, None)
        self.app = create_app(self.facility, run_sequencer=False)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.facility.close()


@pytest.fixture
def slurm_facility(slurm_cluster, tmp_path, database) -> Iterator[SlurmFacility]:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    settings = Settings(
        home=tmp_path / "home",
        database_url=database,
        executor="slurm",
        job_root=slurm_cluster.job_dir("commonlab"),
        slurm_user=slurm_cluster.run_as,
        slurm_user_slots=1,  # the test cluster's one run-as user: one job at a time
        slurm_account_prefix=prefix,
    )
    lab = SlurmFacility(settings)
    applied = lab.client.put("/api/v1/fleet", json=slurm_cluster.fleet(), headers=lab.operator)
    assert applied.status_code == 200, applied.text
    yield lab
    subprocess.run(["scancel", "--name", "x"], check=False, timeout=30)
    for account in read_tree(SlurmCli()).accounts:
        if account.startswith(prefix):
            subprocess.run(["scancel", f"--account={account}"], check=False, timeout=30)
    lab.close()


def submit(lab, project, **overrides):
    body = {
        "project": project.name,
        "command": "echo on slurm as $(whoami) in $COMMONLAB_PROJECT; sleep 1",
        "accelerator": "cpu",
        "time_limit_minutes": 2,
        **overrides,
    }
    return lab.client.post("/api/v1/jobs", json=body, headers=project.pi_auth)


def sync(lab, **body):
    answer = lab.client.post("/api/v1/fleet/accounts/sync", json=body, headers=lab.operator)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _from_accounting(job_id: int):
    """The job as sacct has it: on a loaded machine slurmdbd may lag slurmctld by a few
    seconds after the job ends, and until then squeue's view (no account) stands in."""
    deadline = time.monotonic() + 30
    while True:
        job = SlurmCli().jobs([job_id])[job_id]
        if job.account or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def test_a_job_on_slurm_is_charged_from_sacct_once(slurm_facility, slurm_cluster):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    first = sync(lab)
    account = project_account(project.name, lab.settings.slurm_account_prefix)
    assert any(account in line for line in first["changes"]), first
    assert sync(lab)["changes"] == []  # idempotent
    tree = read_tree(SlurmCli())
    assert tree.accounts[account].parent == member_account("IT", lab.settings.slurm_account_prefix)
    assert tree.qos[account].grp_tres_mins == {"cpu": 600}  # 10 cpu-hours, as minutes
    assert "NoDecay" in tree.qos[account].flags

    job = submit(lab, project).json()
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    assert done["executor"] == "slurm" and done["partition"] == slurm_cluster.partition
    slurm_job = _from_accounting(int(done["executor_id"]))
    assert slurm_job.account == account
    used = slurm_job.alloc_tres["cpu"] * slurm_job.elapsed_seconds
    assert Decimal(done["charged_hours"]) == Decimal(math.ceil(used / 36)) / 100
    log = lab.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.pi_auth).json()
    assert log["text"] == f"on slurm as {slurm_cluster.run_as} in {project.name}\n"

    lab.jobs.tick()
    allocation = lab.client.get(
        f"/api/v1/allocations/{project.allocation_id}", headers=lab.operator
    ).json()
    assert Decimal(allocation["used"]["cpu"]) == Decimal(done["charged_hours"])
    settled = record_entries(lab.client, lab.app, type="allocation:ledger:settled")
    assert [e["data"]["job"] for e in settled] == [f"job/{job['id']}"]


def test_slurm_refuses_an_account_it_does_not_know(slurm_facility):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    job = submit(lab, project).json()  # no sync: Slurm has no account for the project
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"refused"})
    assert "Invalid account" in done["reason"]
    assert Decimal(done["charged_hours"]) == 0
    allocation = lab.client.get(
        f"/api/v1/allocations/{project.allocation_id}", headers=lab.operator
    ).json()
    assert Decimal(allocation["used"].get("cpu", 0)) == 0
    assert Decimal(allocation["reserved"].get("cpu", 0)) == 0


def test_cancel_on_slurm(slurm_facility):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    sync(lab)
    job = submit(lab, project, command="sleep 120").json()
    run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"running"})
    lab.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"cancelled"})
    assert done["state"] == "cancelled"
    again = lab.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert again.status_code == 409


def test_slurm_down_keeps_the_job_queued_and_charges_nothing(slurm_facility):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    sync(lab)
    real = lab.jobs.executor.cli
    lab.jobs.executor.cli = SlurmCli(env={"PATH": "/nonexistent"})  # no sbatch, no squeue
    job = submit(lab, project).json()
    for _ in range(3):
        lab.jobs.tick()
    down = lab.client.get(f"/api/v1/jobs/{job['id']}", headers=project.pi_auth).json()
    assert down["state"] == "queued"
    assert "is Slurm installed here" in down["reason"] and "stays queued" in down["reason"]
    assert down["charged_hours"] is None
    lab.jobs.executor.cli = real  # Slurm is back
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"succeeded"})
    assert Decimal(done["charged_hours"]) > 0
    refused = lab.client.post(
        "/api/v1/fleet/accounts/sync", json={"force": "maybe"}, headers=lab.operator
    )
    assert refused.status_code == 422


def test_restarting_commonlab_mid_job_charges_once(slurm_facility):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    sync(lab)
    # Long enough to be seen running on a loaded machine (a controller step there took 6 s
    # once, and a 3-s job was seen only once it had ended): the restart must come mid-job.
    job = submit(lab, project, command="sleep 12; echo finished").json()
    run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"running"})
    lab.restart()
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"succeeded"})
    lab.jobs.tick()
    settled = record_entries(lab.client, lab.app, type="allocation:ledger:settled")
    assert [e["data"]["job"] for e in settled] == [f"job/{job['id']}"]
    assert Decimal(done["charged_hours"]) > 0


def test_a_handover_cut_short_is_found_in_slurm_by_name(slurm_facility):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    sync(lab)
    job = submit(lab, project).json()
    real_submit = lab.jobs.executor.submit
    ids: list[str] = []

    def submit_then_crash(handoff):
        ids.append(real_submit(handoff))
        raise SystemExit("commonlab died between sbatch and saving its answer")

    lab.jobs.executor.submit = submit_then_crash
    with pytest.raises(SystemExit):
        lab.jobs.tick()
    lab.restart()
    lab.jobs.executor.submit = lambda handoff: pytest.fail("submitted to Slurm twice")
    done = run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"succeeded"})
    assert done["executor_id"] == ids[0]


def test_the_share_controller_corrects_an_imposed_imbalance(slurm_facility):
    lab = slurm_facility
    prefix = lab.settings.slurm_account_prefix
    italy = award_project(lab.client, lab.operator, budget={"cpu": "500"})
    france = award_project(
        lab.client, lab.operator, budget={"cpu": "500"}, country="FR", found=False
    )
    sync(lab)
    # The imbalance: Italy was delivered 40 hours this week, France none.
    hold = lab.client.post(
        f"/api/v1/allocations/{italy.allocation_id}/reservations",
        json={"accelerator": "cpu", "hours": "40", "job": "imported"},
        headers=lab.operator,
    ).json()
    lab.client.post(
        f"/api/v1/ledger/{hold['reservation']}/settle", json={"hours": "40"}, headers=lab.operator
    )
    # Both have work waiting (held in commonlab's queue: the controller does not run);
    # France a day of it, so it is owed its share of the week, not just a short job's.
    assert submit(lab, italy, command="true").status_code == 201
    waiting = submit(lab, france, command="true", time_limit_minutes=24 * 60)
    assert waiting.status_code == 201, waiting.text
    before = read_tree(SlurmCli()).accounts
    steered = lab.client.post("/api/v1/fleet/shares/steer", json={}, headers=lab.operator)
    assert steered.status_code == 200, steered.text
    moves = steered.json()["fairshare"]
    # The fair split of the 40 hours delivered: 20 each (France asks for 24, Italy had 40).
    assert steered.json()["fair_hours"]["FR"] == pytest.approx(20.0)
    after = read_tree(SlurmCli()).accounts
    it, fr = member_account("IT", prefix), member_account("FR", prefix)
    assert after[fr].fairshare > before[fr].fairshare  # France is owed: its share goes up
    assert after[it].fairshare < before[it].fairshare
    # Bounded: at most 5% per step.
    assert after[fr].fairshare <= math.ceil(before[fr].fairshare * 1.05)
    assert moves["FR"] == {"from": before[fr].fairshare, "to": after[fr].fairshare}
    assert before[fr].fairshare == 25 * FAIRSHARE_SCALE // 100  # entitled 25%
    entries = record_entries(lab.client, lab.app, type="compute:fairshare:adjusted")
    assert entries[-1]["data"]["fairshare"]["FR"]["to"] == after[fr].fairshare
    # A later sync keeps the controller's values: no change, no drift for the member states.
    again = sync(lab)
    assert not [line for line in again["changes"] if it in line or fr in line]
    bad = lab.client.post(
        "/api/v1/fleet/shares/steer", json={"window_days": 0}, headers=lab.operator
    )
    assert bad.status_code == 422 and "window_days" in problem(bad)["detail"]


def test_the_researchers_path_on_slurm_from_the_command_line(slurm_facility, capsys, monkeypatch):
    """The operator syncs the accounts; the PI submits a job with the CLI and watches it run
    on Slurm to the end; its usage is in the ledger and the member-state share report; and
    the share controller takes a step — all against a live facility on the slurm executor."""
    import threading
    from datetime import date, timedelta

    import uvicorn

    from tests.cli.conftest import free_port
    from tests.cli.test_cli import run

    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    lab.jobs.start()  # the job controller, as `commonlab up` runs it
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(lab.app, host="127.0.0.1", port=port, log_config=None, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        monkeypatch.setenv("COMMONLAB_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("COMMONLAB_TOKEN", lab.operator["Authorization"].split()[1])
        code, out, err = run(capsys, "fleet", "sync-accounts", "--dry-run")
        assert code == 0, err
        assert "would change" in out and "change" in out
        code, out, err = run(capsys, "fleet", "sync-accounts")
        assert code == 0 and "0 drift" in out, out + err
        code, out, err = run(capsys, "fleet", "sync-accounts")
        assert code == 0 and "0 changed" in out
        code, out, err = run(capsys, "fleet", "steer")
        assert code == 0 and "Share controller" in out, err

        monkeypatch.setenv("COMMONLAB_TOKEN", project.pi_auth["Authorization"].split()[1])
        code, out, err = run(
            capsys, "job", "submit", "-p", project.name, "--time", "2", "--watch", "--",
            "echo", "training on slurm; sleep 1; echo", "done",
        )  # fmt: skip
        assert code == 0, out + err
        assert "training on slurm\ndone\n" in out and "succeeded" in out
        used = lab.client.get(
            f"/api/v1/allocations/{project.allocation_id}", headers=lab.operator
        ).json()["used"]
        assert Decimal(used["cpu"]) > 0
        monkeypatch.setenv("COMMONLAB_TOKEN", lab.operator["Authorization"].split()[1])
        today = date.today()
        code, out, _ = run(
            capsys, "report", "shares", "--start", today.isoformat(),
            "--end", (today + timedelta(days=1)).isoformat(),
        )  # fmt: skip
        italy = next(line for line in out.splitlines() if "IT" in line.split())
        assert used["cpu"] in italy
    finally:
        lab.jobs.stop()
        server.should_exit = True
        thread.join(10)


def test_restarting_slurms_daemons_mid_job_loses_nothing(slurm_facility, slurm_cluster):
    lab = slurm_facility
    project = award_project(lab.client, lab.operator)
    sync(lab)
    job = submit(lab, project, command="sleep 15; echo survived").json()
    run_until(lab.jobs, lab.client, job["id"], project.pi_auth, {"running"})
    slurm_cluster.restart_daemons()
    done = run_until(
        lab.jobs, lab.client, job["id"], project.pi_auth, {"succeeded", "failed"}, timeout=120
    )
    assert done["state"] == "succeeded", done
    log = lab.client.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.pi_auth).json()
    assert log["text"].endswith("survived\n")
    lab.jobs.tick()
    settled = record_entries(lab.client, lab.app, type="allocation:ledger:settled")
    assert [e["data"]["job"] for e in settled] == [f"job/{job['id']}"]
