"""Finding 1 of issue 13, replayed: a job is untrusted code and tries to read the facility.

On a live facility (a real port, the job controller running, real jobs in the sandbox this
machine gives), job B of one project runs and holds a secret; then job A of another project
tries what a hostile job would: read the signing key, the session secret, the database and a
stored object under COMMONLAB_HOME, list the home, read B's spec (its token), B's files and
B's environment in /proc, and kill B. Every attempt fails, nothing of the home changes, B runs
on, and A's own token still works from inside A. Without any sandbox (laptop mode) only CL-1
work runs. The same attack runs on the real Slurm (marked `slurm`), where it also comes from
a job of B's own project: each running job has a Unix user of its own, and a job waits rather
than share one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import update

from commonlab.app import create_app
from commonlab.artifacts.store import ObjectStore
from commonlab.compute.accounts import project_account
from commonlab.compute.executors.sandbox import Isolation, bwrap_problem, closed_to_jobs
from commonlab.compute.models import Partition
from commonlab.config import Settings, load_settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator
from tests.cli.conftest import free_port
from tests.compute.helpers import award_project, run_until
from tests.helpers import auth, http_client
from tests.security.isolation_helpers import running, unique_sleep


def sandboxes_here() -> list[str]:
    """The `sandbox` settings that isolate jobs on this machine (CI runs as root: both)."""
    here = []
    if not bwrap_problem():
        here.append("bwrap")
    if os.geteuid() == 0:
        here.append("uid")
    return here


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="CI's machine only")
def test_ci_attacks_every_sandbox():
    """scripts/test installs bubblewrap and CI runs as root: the attacks below must meet both
    sandboxes there, never silently fewer."""
    assert not bwrap_problem(), f"bubblewrap does not work: {bwrap_problem()}"
    assert sandboxes_here() == ["bwrap", "uid"]


@dataclass
class Lab:
    url: str
    operator: dict[str, str]
    facility: Facility
    settings: Settings

    @property
    def api(self) -> httpx.Client:
        return http_client(base_url=self.url, timeout=30)

    def wait(self, job_id: int, headers: dict[str, str], states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            job = self.api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
            if job["state"] in states:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job}"
            time.sleep(0.1)


@pytest.fixture
def facility_path() -> Iterator[Path]:
    """A home any user could reach by path (pytest's tmp folders are 0700 root, which would
    keep a job out whatever commonlab did): only the facility's own lock-down protects it."""
    base = Path(tempfile.mkdtemp(prefix="commonlab-isolation-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def config_file(facility_path, monkeypatch) -> Path:
    """The facility's config file, as an operator left it (0644): it may hold the database's
    password, so a job must not read it either."""
    path = facility_path / "commonlab.toml"
    path.write_text('# database_url = "postgresql+psycopg://commonlab:s3cret@db/commonlab"\n')
    path.chmod(0o644)
    monkeypatch.setenv("COMMONLAB_CONFIG", str(path))
    return path


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Lab]:
    """A live facility on a real port, its job controller running: jobs reach it over HTTP."""
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(facility), port=settings.port, log_level="warning", log_config=None
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    try:
        yield Lab(settings.base_url, auth(token or ""), facility, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        facility.close()


@pytest.fixture(params=sandboxes_here() or [pytest.param("-", marks=pytest.mark.skip)])
def lab(request, facility_path) -> Iterator[Lab]:
    """A live facility whose local jobs run in the sandbox of the param."""
    settings = Settings(
        home=facility_path / "home",
        port=free_port(),
        sandbox=request.param,
        compute_poll_ms=100,
        sequencer_interval_ms=5,
    )
    with serve(settings) as lab:
        assert lab.facility.isolation.isolates
        yield lab


def submit(lab: Lab, project: Any, command: str, **fields: Any) -> int:
    body = {"project": project.name, "command": command, "accelerator": "cpu", **fields}
    made = lab.api.post("/api/v1/jobs", json=body, headers=project.pi_auth)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def attempt(name: str, command: str) -> str:
    """A shell line that prints `READ <name>` and what it got if `command` succeeds."""
    return (
        f"if {command} > attempt.out 2>/dev/null; then echo 'READ {name}'; cat attempt.out; "
        f"else echo 'DENIED {name}'; fi"
    )


def fingerprint(home: Path) -> dict[str, str]:
    """Every file of the home but the jobs', the live database's and the serving processes'
    own counters (`run/`: rate-limit buckets and metrics, moved by every request), by
    content."""
    live = {"jobs", "run"}
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and live.isdisjoint(p.relative_to(home).parts)
        and not p.name.startswith("commonlab.db")
    }


def test_a_job_reads_nothing_of_the_facility_nor_of_another_job(lab):
    victim = award_project(lab.api, lab.operator)
    attacker = award_project(lab.api, lab.operator, found=False)
    attack(lab, victim, attacker, cli=lab.facility.isolation.namespaced)


def attack(lab: Lab, victim: Any, attacker: Any, *, cli: bool) -> None:
    """Job B of `victim` runs and holds a secret; job A of `attacker` (the same project or
    another) tries to read the facility and B, and to kill B. Nothing succeeds, nothing
    changes, A runs as a uid other than B's, and A's token works."""
    home = lab.settings.home.resolve()
    jobs = lab.settings.jobs_path.resolve()
    stored = ObjectStore(home / "objects").put_stream([b"a private dataset's bytes"])
    obj = ObjectStore(home / "objects").path(stored.blake3)

    sleeper = unique_sleep()
    try:
        b = submit(lab, victim, f"echo only-b-knows > secret.txt; echo b-output; {sleeper}")
        lab.wait(b, victim.pi_auth, {"running"})
        deadline = time.monotonic() + 30
        while not running(sleeper) or not (jobs / str(b) / "work" / "secret.txt").exists():
            assert time.monotonic() < deadline, "job B never started its sleep"
            time.sleep(0.05)
        (b_pid,) = running(sleeper)
        b_uid = Path(f"/proc/{b_pid}").stat().st_uid
        b_token = _environ(b_pid)["COMMONLAB_TOKEN"]
        secrets = {
            "signing key": (home / "keys" / "record.key").read_text().strip(),
            "session secret": (home / "keys" / "session.key").read_text().strip(),
            "token of B": b_token,
        }
        before = fingerprint(home)

        tries = {
            "signing key": f"cat {home}/keys/record.key",
            "config file": f"cat {os.environ['COMMONLAB_CONFIG']}",
            "session secret": f"cat {home}/keys/session.key",
            "database": f"cat {home}/commonlab.db",
            "stored object": f"cat {obj}",
            "home listing": f"ls -A {home}",
            "objects listing": f"ls -A {home}/objects",
            "jobs listing": f"ls -A {jobs}",
            "spec of B": f"cat {jobs}/{b}/spec.json",
            "output of B": f"cat {jobs}/{b}/stdout.log",
            "files of B": f"cat {jobs}/{b}/work/secret.txt",
            "environment of B": f"cat /proc/{b_pid}/environ",
            "processes of B": f"kill -9 {b_pid}",
        }
        own = 'curl -fsS -H "Authorization: Bearer $COMMONLAB_TOKEN" "$COMMONLAB_URL/api/v1/me"'
        script = [attempt(name, command) for name, command in tries.items()]
        # Every environment this job can see: its own token is there, never another job's.
        script.append("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep TOKEN= || true")
        script.append('echo "RUNS AS $(id -u)"')
        script.append(f"{own} > me.json && echo 'TOKEN WORKS' && cat me.json")
        if cli:
            # The facility's own `commonlab` runs in the sandbox too (the job-lineage journey).
            script.append("commonlab whoami && echo 'CLI WORKS'")
        a = submit(lab, attacker, "\n".join(script))
        done = lab.wait(a, attacker.pi_auth, {"succeeded", "failed"})
        out = lab.api.get(f"/api/v1/jobs/{a}/logs", headers=attacker.pi_auth).json()["text"]
        out += (jobs / str(a) / "stderr.log").read_text()

        assert done["state"] == "succeeded", out
        assert "READ" not in out, out
        assert all(f"DENIED {name}" in out for name in tries), out
        assert not [name for name, secret in secrets.items() if secret in out], out
        assert "RUNS AS " in out and f"RUNS AS {b_uid}\n" not in out, out
        assert "TOKEN WORKS" in out, out
        if attacker is not victim:
            assert victim.name not in out.split("TOKEN WORKS")[1], out
        if cli:
            assert "CLI WORKS" in out, out
        assert fingerprint(home) == before
        assert running(sleeper) == [b_pid]
        assert lab.wait(b, victim.pi_auth, {"running"})["state"] == "running"
        cancelled = lab.api.post(f"/api/v1/jobs/{b}/cancel", headers=victim.pi_auth)
        assert cancelled.status_code == 200, cancelled.text
        lab.wait(b, victim.pi_auth, {"cancelled"})
        deadline = time.monotonic() + 30
        while running(sleeper):
            assert time.monotonic() < deadline, "job B's processes outlived its cancel"
            time.sleep(0.1)
    finally:
        for pid in running(sleeper):  # the test failed: B must not outlive it
            os.kill(pid, signal.SIGKILL)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_home_is_locked_down_at_start_even_when_it_was_left_open(lab, facility_path):
    """A home an older commonlab left readable (umask 022: files 0644, folders 0755) is the
    facility's alone once it starts again, and so is its config file; the folders down to
    the jobs' at most let others pass through (0711), where a job's own user must reach its
    folder by path."""
    home = lab.settings.home
    old_job = home / "jobs" / "999"
    (old_job / "work").mkdir(parents=True)
    (old_job / "stdout.log").write_text("an old job's output")
    (old_job / "result.json").write_text("{}")
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    again = open_facility(lab.settings)
    again.close()
    passage = lab.settings.sandbox == "uid"
    assert home.stat().st_mode & 0o777 == (0o711 if passage else 0o700)
    for entry in home.iterdir():
        if entry.name == "jobs":
            assert entry.stat().st_mode & 0o777 == (0o711 if passage else 0o700)
        else:
            assert entry.stat().st_mode & 0o077 == 0, entry
    assert old_job.stat().st_mode & 0o777 == (0o711 if passage else 0o700)
    for entry in old_job.iterdir():
        assert entry.stat().st_mode & 0o077 == 0, entry
    assert Path(os.environ["COMMONLAB_CONFIG"]).stat().st_mode & 0o777 == 0o600


@pytest.fixture
def slurm_lab(slurm_cluster, facility_path) -> Iterator[tuple[Lab, Any, Any]]:
    """A live facility on the real Slurm whose jobs each run as a Unix user of their own (the
    site's `cl-{project}-{slot}` scheme, two per project), its jobs' folders in its home: a
    victim and an attacker project, their accounts synced."""
    nonce = uuid.uuid4().hex[:6]
    settings = Settings(
        home=facility_path / "home",
        port=free_port(),
        executor="slurm",
        slurm_user=f"c{nonce}-{{project}}-{{slot}}",
        slurm_user_slots=2,
        slurm_account_prefix=f"t{nonce}-",
        compute_poll_ms=200,
        sequencer_interval_ms=5,
    )
    users: list[str] = []
    with serve(settings) as lab:
        fleet = slurm_cluster.fleet()
        assert lab.api.put("/api/v1/fleet", json=fleet, headers=lab.operator).status_code == 200
        victim = award_project(lab.api, lab.operator)
        attacker = award_project(lab.api, lab.operator, found=False)
        try:
            for project in (victim, attacker):
                for user in settings.slurm_users(project.name):
                    users.append(user)
                    nologin = ["--no-create-home", "--shell", "/usr/sbin/nologin"]
                    subprocess.run(["useradd", "--system", *nologin, user], check=True)
            synced = lab.api.post("/api/v1/fleet/accounts/sync", json={}, headers=lab.operator)
            assert synced.status_code == 200, synced.text
            yield lab, victim, attacker
        finally:
            for project in (victim, attacker):
                account = project_account(project.name, settings.slurm_account_prefix)
                subprocess.run(["scancel", f"--account={account}"], check=False, timeout=30)
            for user in users:
                subprocess.run(["userdel", user], check=False, timeout=30)


@pytest.mark.slurm
def test_a_slurm_job_reads_nothing_of_the_facility_nor_of_another_project(slurm_lab):
    """The same attack on the real Slurm: each project's jobs run as its own Unix user, in a
    folder only that user may enter, under a home locked down to the facility."""
    lab, victim, attacker = slurm_lab
    attack(lab, victim, attacker, cli=False)


@pytest.mark.slurm
def test_a_slurm_job_reads_nothing_of_another_job_of_its_own_project(slurm_lab):
    """Two jobs of one project, of one PI, run at once on Slurm as two uids: the attacker
    reads neither the other's environment (its token), nor its folder, nor kills it."""
    lab, victim, _ = slurm_lab
    attack(lab, victim, victim, cli=False)


@pytest.mark.slurm
def test_a_slurm_job_waits_for_a_user_of_its_own_and_never_gets_an_ended_jobs_files(slurm_lab):
    """With both of a project's run-as users held by running jobs, a third job waits queued
    and says why (another project's job is not held up); once one ends, the third runs as the
    user freed and cannot enter the folder that user left."""
    lab, project, other = slurm_lab
    jobs = lab.settings.jobs_path.resolve()
    sleepers = [unique_sleep(), unique_sleep()]
    short = {"time_limit_minutes": 10}  # four jobs within the project's budget
    try:
        first, second = (
            submit(lab, project, f"echo only-it-knows > secret.txt; {sleeper}", **short)
            for sleeper in sleepers
        )
        for job_id in (first, second):
            lab.wait(job_id, project.pi_auth, {"running"})
        deadline = time.monotonic() + 30
        while not all(running(sleeper) for sleeper in sleepers):
            assert time.monotonic() < deadline, "the two jobs never started their sleeps"
            time.sleep(0.05)
        (first_pid,) = running(sleepers[0])
        first_uid = Path(f"/proc/{first_pid}").stat().st_uid

        probe = [
            attempt("files of the ended job", f"cat {jobs}/{first}/work/secret.txt"),
            attempt("output of the ended job", f"cat {jobs}/{first}/stdout.log"),
            attempt("folder of the ended job", f"ls -A {jobs}/{first}"),
            'echo "RUNS AS $(id -u)"',
        ]
        third = submit(lab, project, "\n".join(probe), **short)
        elsewhere = submit(lab, other, "true", **short)  # its users are free: handed over
        deadline = time.monotonic() + 60
        while (
            lab.api.get(f"/api/v1/jobs/{elsewhere}", headers=other.pi_auth).json()["executor_id"]
            is None
        ):
            assert time.monotonic() < deadline, "another project's job was held up"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while (
            "run-as user of its own"
            not in (waiting := lab.wait(third, project.pi_auth, {"queued"}))["reason"]
        ):
            assert time.monotonic() < deadline, waiting
            time.sleep(0.1)
        assert waiting["state"] == "queued" and waiting["executor_id"] is None, waiting
        assert "slurm_user_slots" in waiting["reason"], waiting

        cancelled = lab.api.post(f"/api/v1/jobs/{first}/cancel", headers=project.pi_auth)
        assert cancelled.status_code == 200, cancelled.text
        lab.wait(first, project.pi_auth, {"cancelled"})
        done = lab.wait(third, project.pi_auth, {"succeeded", "failed"})
        out = lab.api.get(f"/api/v1/jobs/{third}/logs", headers=project.pi_auth).json()["text"]
        assert done["state"] == "succeeded", out
        assert f"RUNS AS {first_uid}\n" in out, out  # the freed user, given again
        assert "READ" not in out and "only-it-knows" not in out, out
        assert out.count("DENIED") == 3, out
        assert lab.wait(second, project.pi_auth, {"running"})["state"] == "running"
    finally:
        for sleeper in sleepers:
            for pid in running(sleeper):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def laptop(tmp_path, database) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    """A facility whose local executor has no sandbox (no root, no bubblewrap), its one
    partition raised to CL-2 as a council motion would."""
    facility = open_facility(
        Settings(home=tmp_path / "home", database_url=database, sandbox="none")
    )
    assert facility.isolation is Isolation.NONE
    with facility.db.session() as session:
        operator = auth(bootstrap_operator(session) or "")
    app = create_app(facility, run_sequencer=False)
    with TestClient(app) as client:
        with facility.db.session() as db, db.begin():
            db.execute(update(Partition).values(certified_level=2))
        yield app, client, operator
    facility.close()


def test_without_a_sandbox_only_cl1_work_runs_and_nothing_is_charged(laptop):
    app, client, operator = laptop
    project = award_project(client, operator)
    officer = client.post(
        "/api/v1/people",
        json={"name": "Safety Officer", "roles": ["safety_officer"]},
        headers=operator,
    ).json()
    officer_auth = auth(client.post(
        f"/api/v1/people/{officer['id']}/tokens", json={"scopes": ["admin"]}, headers=operator
    ).json()["token"])  # fmt: skip
    cleared = client.post(
        f"/api/v1/people/{project.pi['id']}/clearances",
        json={"level": 2, "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
        headers=officer_auth,
    )
    assert cleared.status_code == 201, cleared.text
    body = {"project": project.name, "command": "touch ran", "accelerator": "cpu"}
    cl2 = client.post("/api/v1/jobs", json={**body, "level": "CL-2"}, headers=project.pi_auth)
    assert cl2.status_code == 201, cl2.text
    done = run_until(app.state.jobs, client, cl2.json()["id"], project.pi_auth, {"refused"})
    assert "not isolated" in done["reason"] or "unisolated" in done["reason"]
    assert "CL-1 only" in done["reason"]
    assert not (app.state.jobs.settings.jobs_path / str(done["id"])).exists()
    allocation = client.get(
        f"/api/v1/allocations/{project.allocation_id}", headers=project.pi_auth
    ).json()
    assert Decimal(allocation["used"].get("cpu", 0)) == 0
    assert Decimal(allocation["reserved"].get("cpu", 0)) == 0

    # CL-1 work runs, as the facility's user; never as root, though (CI runs as root).
    cl1 = client.post("/api/v1/jobs", json=body, headers=project.pi_auth)
    ends = {"succeeded", "refused"}
    done = run_until(app.state.jobs, client, cl1.json()["id"], project.pi_auth, ends)
    if os.geteuid() == 0:
        assert done["state"] == "refused" and "never run as root" in done["reason"]
    else:
        assert done["state"] == "succeeded"


def test_start_up_says_how_jobs_are_isolated(tmp_path):
    """`commonlab up` names the isolation at every start; laptop mode says plainly that jobs
    are not isolated and only CL-1 work runs, Slurm the users jobs run as (with a single one,
    that jobs run one at a time); a sandbox asked for and not available here, or run-as
    users that two jobs would share, stop start-up with one line."""
    from commonlab.errors import ConfigError
    from commonlab.serve import _isolation_line

    laptop = open_facility(Settings(home=tmp_path / "laptop", sandbox="none"))
    line = _isolation_line(laptop)
    laptop.close()
    assert "jobs are NOT isolated" in line and "only CL-1 work runs here" in line
    assert ("refuses every job" in line) == (os.geteuid() == 0)
    if sandboxes_here():
        chosen = open_facility(Settings(home=tmp_path / "lab"))
        assert chosen.isolation.isolates and "NOT" not in _isolation_line(chosen)
        assert "sandboxed" in _isolation_line(chosen) or "uid of their own" in _isolation_line(
            chosen
        )
        chosen.close()
    if os.geteuid() == 0:
        # Without a mount namespace a job needs this Python where its uid can reach it.
        plain = open_facility(Settings(home=tmp_path / "uid", sandbox="uid"))
        closed = closed_to_jobs()
        assert (f"{closed} is closed to other users" in _isolation_line(plain)) == bool(closed)
        plain.close()
        # ...and its own folder: a job is given its HOME by its path.
        shut = tmp_path / "shut"
        shut.mkdir(mode=0o700)
        closed_home = open_facility(Settings(home=shut / "uid", sandbox="uid"))
        line = _isolation_line(closed_home)
        closed_home.close()
        assert "is closed to other users, so a job can't reach its folder by its path" in line
        open_to_pass = Path(tempfile.mkdtemp(dir="/tmp"))
        try:
            open_to_pass.chmod(0o711)
            reachable = open_facility(Settings(home=open_to_pass / "uid", sandbox="uid"))
            assert "can't reach its folder" not in _isolation_line(reachable)
            reachable.close()
        finally:
            shutil.rmtree(open_to_pass)
    hpc = open_facility(Settings(home=tmp_path / "hpc", executor="slurm"))
    line = _isolation_line(hpc)
    hpc.close()
    assert "a Unix user no other running job has" in line and "cl-{project}-0" in line
    assert "up to 4 jobs at once per project" in line
    single = Settings(home=tmp_path / "hpc", executor="slurm", slurm_user="cl", slurm_user_slots=1)
    one = open_facility(single)
    assert "one job at a time in the whole facility" in _isolation_line(one)
    one.close()
    # A shared user with several slots would put two running jobs in one uid: refused.
    with pytest.raises(ConfigError, match=r"COMMONLAB_SLURM_USER_SLOTS=4: 4 slots need \{slot\}"):
        load_settings({"COMMONLAB_SLURM_USER": "cl-{project}"})
    with pytest.raises(ConfigError, match=r"only \{project\} and \{slot\}"):
        load_settings({"COMMONLAB_SLURM_USER": "cl-{user}-{slot}"})
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="needs root"):
            open_facility(Settings(home=tmp_path / "x", sandbox="uid"))
