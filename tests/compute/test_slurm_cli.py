"""The Slurm CLI wrapper: parsers on real Slurm 22.05 output (tests/compute/data), the error
mapping with stand-in binaries, and real jobs on the test cluster (marker `slurm`)."""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commonlab.compute.executors.slurm.cli import (
    SlurmCli,
    SlurmJob,
    SlurmRefused,
    SlurmUnavailable,
    _number,
    _parse_tres,
    _slurm_message,
    parse_sacct,
    parse_squeue,
)
from commonlab.compute.executors.slurm.executor import observed_from
from commonlab.compute.rules import JobState
from commonlab.errors import InvalidInput
from tests.slurm_fixtures import SlurmCluster, unique_name

DATA = Path(__file__).parent / "data"
NOBODY = pwd.getpwnam("nobody").pw_uid  # a user to submit as where no cluster is needed


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# Parsers --------------------------------------------------------------------------------------


def test_squeue_running_and_pending_jobs() -> None:
    now = _at(1795832946 + 10)
    jobs = parse_squeue((DATA / "squeue_live.json").read_text(), now=now)

    assert jobs[13] == SlurmJob(
        slurm_id=13,
        state="RUNNING",
        exit_code=None,
        elapsed_seconds=10,
        alloc_tres={"cpu": 2, "mem": 500, "node": 1, "billing": 2},
        start=_at(1795832946),
        end=None,  # squeue's end_time is the time limit running out, not an end
        reason="",
        account="cl-tests",
        submitted=_at(1795832946),
        requested_tres={"cpu": 2, "mem": 500, "node": 1, "billing": 2},
        priority=10000,  # the share controller reads it to tell a pinned job
    )
    pending = jobs[14]
    assert (pending.state, pending.reason, pending.start, pending.exit_code) == (
        "PENDING",
        "Resources",
        None,
        None,
    )
    assert pending.alloc_tres == {} and pending.elapsed_seconds == 0
    # What a waiting job asks for, which the share controller weighs.
    assert pending.requested_tres["cpu"] == 1 and not pending.requeued


def test_squeue_priority_reads_either_form_of_number() -> None:
    """v0.0.38 writes a plain integer; later versions `{"set", "infinite", "number"}`."""
    assert _number(10000) == 10000
    assert _number({"set": True, "infinite": False, "number": 4242}) == 4242
    assert _number({"set": False, "number": 7}) == 0
    assert _number(None) == 0 and _number("high") == 0


def test_a_job_slurm_requeued_after_it_ran_stays_running_for_commonlab() -> None:
    """The share controller's `scontrol requeue`: Slurm shows the job pending again (held a
    while, Reason BeginTime) with a restart count; commonlab has no way back to queued."""
    requeued = SlurmJob(7, "PENDING", None, 0, {}, None, None, "BeginTime", "p-x", restarts=1)

    seen = observed_from(requeued, "cpu")

    assert requeued.requeued and seen.state == JobState.RUNNING
    assert seen.reason == "Slurm requeued it (restart 1): it resumes from its checkpoint"
    fresh = SlurmJob(8, "PENDING", None, 0, {}, None, None, "Resources", "p-x")
    assert not fresh.requeued and observed_from(fresh, "cpu").state == JobState.QUEUED


def test_squeue_ended_jobs_decode_the_wait_status() -> None:
    jobs = parse_squeue((DATA / "squeue_ended.json").read_text(), now=datetime.now(UTC))

    assert {i: (j.state, j.exit_code) for i, j in jobs.items()} == {
        13: ("CANCELLED", 128 + 15),  # cancelled while running: SIGTERM
        14: ("CANCELLED", None),  # cancelled while pending: never ran
        15: ("COMPLETED", 0),
        16: ("FAILED", 3),  # `exit 3`: wait status 768
        17: ("FAILED", 128 + 9),  # `kill -9 $$`
        18: ("CANCELLED", 128 + 15),
    }
    assert jobs[13].elapsed_seconds == 3
    assert jobs[13].end == _at(1795832949)
    assert jobs[14].start is None and jobs[14].reason == ""  # a reason only while pending


def test_sacct_ended_jobs() -> None:
    jobs = parse_sacct((DATA / "sacct_ended.txt").read_text())

    assert {i: (j.state, j.exit_code, j.elapsed_seconds) for i, j in jobs.items()} == {
        13: ("CANCELLED", 0, 3),  # "CANCELLED by 0"; accounting keeps the job's own 0:0
        14: ("CANCELLED", None, 0),
        15: ("COMPLETED", 0, 0),
        16: ("FAILED", 3, 0),
        17: ("FAILED", 128 + 9, 0),  # ExitCode 0:9
        18: ("CANCELLED", 0, 0),
    }
    assert jobs[15].alloc_tres == {"billing": 1, "cpu": 1, "mem": 500, "node": 1}
    assert jobs[15].start == jobs[15].end == _at(1795832953)
    assert jobs[14].start is None and jobs[14].end == _at(1795832949)
    assert all(job.account == "cl-tests" and job.finished for job in jobs.values())


def test_a_requeued_job_is_its_last_run_with_the_time_of_every_run() -> None:
    jobs = parse_sacct((DATA / "sacct_requeued.txt").read_text())

    (job,) = jobs.values()
    assert (job.state, job.exit_code, job.elapsed_seconds) == ("CANCELLED", 0, 3 + 6)
    assert (job.start, job.end) == (_at(1796647838), _at(1796647844))
    # A run a node failure ended is the facility's loss, not the researcher's.
    failed = (DATA / "sacct_requeued.txt").read_text().replace("REQUEUED", "NODE_FAIL")
    assert parse_sacct(failed)[6431].elapsed_seconds == 6


def test_sacct_live_jobs() -> None:
    jobs = parse_sacct((DATA / "sacct_live.txt").read_text())

    assert (jobs[13].state, jobs[13].end, jobs[13].elapsed_seconds) == ("RUNNING", None, 3)
    assert (jobs[14].state, jobs[14].start, jobs[14].exit_code) == ("PENDING", None, None)
    assert not jobs[13].finished


def test_sacct_json_loses_exit_codes_which_is_why_sacct_is_read_parsable() -> None:
    """Saved from this Slurm: the job ran `exit 3`; `sacct -P` says 3:0, the JSON says 0."""
    document = json.loads((DATA / "sacct_exit3.json").read_text())
    (job,) = document["jobs"]
    assert job["state"]["current"] == "FAILED"
    assert job["exit_code"] == {"status": "SUCCESS", "return_code": 0}
    assert parse_sacct((DATA / "sacct_ended.txt").read_text())[16].exit_code == 3


def test_sacct_line_of_another_shape_is_not_guessed_at() -> None:
    with pytest.raises(SlurmUnavailable, match="cannot read"):
        parse_sacct("13|RUNNING|0:0\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu=2,mem=2000M,node=1,billing=2", {"cpu": 2, "mem": 2000, "node": 1, "billing": 2}),
        ("cpu=8,mem=2G,gres/gpu=4,node=1", {"cpu": 8, "mem": 2048, "gres/gpu": 4, "node": 1}),
        ("mem=1.5G", {"mem": 1536}),
        ("", {}),
    ],
)
def test_tres_strings(text: str, expected: dict[str, int]) -> None:
    assert _parse_tres(text) == expected


def test_slurm_message_is_one_line_without_prefixes() -> None:
    stderr = (
        "sacctmgr: error: Sending PersistInit msg: Connection refused\n"
        "sacctmgr: error: Problem talking to the database: Connection refused\n"
    )
    assert _slurm_message(stderr) == (
        "Sending PersistInit msg: Connection refused; "
        "Problem talking to the database: Connection refused"
    )


# Errors, with stand-in binaries ---------------------------------------------------------------


def _fake_bin(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_missing_binaries_are_unavailable(tmp_path: Path) -> None:
    cli = SlurmCli(env={"PATH": str(tmp_path)})
    with pytest.raises(SlurmUnavailable, match="scontrol is not on PATH"):
        cli.ping()
    with pytest.raises(SlurmUnavailable, match="sacct is not on PATH"):
        cli.jobs([1])


def test_a_command_that_hangs_is_unavailable(tmp_path: Path) -> None:
    _fake_bin(tmp_path / "bin", "sacct", "sleep 10")
    cli = SlurmCli(timeout=0.3, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    with pytest.raises(SlurmUnavailable, match=r"sacct did not answer within 0\.3s"):
        cli.jobs([1])


def test_a_controller_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    _fake_bin(
        tmp_path / "bin",
        "sbatch",
        'echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller'
        ' (connect failure)" >&2; exit 1',
    )
    cli = SlurmCli(env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        _submit(cli, tmp_path, account="a")


def test_a_refusal_carries_slurms_words(tmp_path: Path) -> None:
    _fake_bin(
        tmp_path / "bin",
        "sbatch",
        'echo "sbatch: error: Batch job submission failed: Invalid account or account/partition'
        ' combination specified" >&2; exit 1',
    )
    cli = SlurmCli(env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    with pytest.raises(SlurmRefused) as refused:
        _submit(cli, tmp_path, account="nosuch")
    assert refused.value.slurm_message == (
        "Batch job submission failed: Invalid account or account/partition combination specified"
    )
    assert refused.value.status == 409


def test_submit_arguments_and_a_clean_job_environment(tmp_path: Path) -> None:
    """sbatch gets the script on stdin and an export file that replaces this process's
    environment, so nothing of the submitter's (tokens, database URLs) reaches the job."""
    record = tmp_path / "record"
    _fake_bin(
        tmp_path / "bin",
        "sbatch",
        f'printf "%s\\n" "$@" > {record}/args; cat > {record}/script\n'
        f'for a in "$@"; do case $a in --export-file=*) cp "${{a#*=}}" {record}/env;; esac; done\n'
        'echo "4242;commonlab"',
    )
    record.mkdir()
    cli = SlurmCli(env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "SECRET_TOKEN": "hush"})

    job_id = cli.submit(
        "#!/bin/bash\necho hi\n",
        account="p-demo",
        partition="cpu",
        job_name="cl-7",
        time_limit_minutes=15,
        cpus=2,
        memory_mb=3000,
        gpus=1,
        workdir=tmp_path,
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
        uid=NOBODY,
        comment="commonlab job 7",
        environment={"COMMONLAB_JOB": "7", "ODD": "a,b c"},
    )

    assert job_id == 4242
    args = (record / "args").read_text().splitlines()
    assert args[:-1] == [
        "--parsable",
        "--account=p-demo",
        "--partition=cpu",
        "--job-name=cl-7",
        "--time=15",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=2",
        "--mem=3000M",
        f"--chdir={tmp_path}",
        f"--output={tmp_path / 'out'}",
        f"--error={tmp_path / 'err'}",
        "--requeue",
        "--gres=gpu:1",
        f"--uid={NOBODY}",
        f"--gid={pwd.getpwnam('nobody').pw_gid}",
        "--comment=commonlab job 7",
    ]
    assert args[-1].startswith("--export-file=")
    assert (record / "script").read_text() == "#!/bin/bash\necho hi\n"
    env = dict(item.split("=", 1) for item in (record / "env").read_text().split("\0") if item)
    assert env["COMMONLAB_JOB"] == "7" and env["ODD"] == "a,b c"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin" and env["USER"] == "nobody"
    assert "SECRET_TOKEN" not in env


def test_a_job_environment_name_that_slurm_cannot_carry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot be passed"):
        _submit(SlurmCli(), tmp_path, account="a", environment={"A=B": "x"})


def test_a_job_never_runs_as_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="never run as root"):
        _submit(SlurmCli(env={"PATH": "/nonexistent"}), tmp_path, account="a", uid=0)


def test_no_ids_asks_nothing() -> None:
    assert SlurmCli(env={"PATH": "/nonexistent"}).jobs([]) == {}


# The real cluster -----------------------------------------------------------------------------


def _submit(
    cli: SlurmCli,
    workdir: Path,
    *,
    account: str,
    script: str = "#!/bin/bash\nhostname\n",
    cluster: SlurmCluster | None = None,
    cpus: int = 1,
    environment: dict[str, str] | None = None,
    uid: int | None = NOBODY,
) -> int:
    return cli.submit(
        script,
        account=account,
        partition="cpu",
        job_name=unique_name("cl-test"),
        time_limit_minutes=5,
        cpus=cpus,
        memory_mb=200,
        gpus=0,
        workdir=workdir,
        stdout=workdir / "stdout",
        stderr=workdir / "stderr",
        uid=cluster.uid if cluster else uid,
        comment="commonlab test",
        environment=environment,
    )


def _wait_for(
    cli: SlurmCli, slurm_id: int, states: Collection[str], *, seconds: float = 90
) -> SlurmJob:
    deadline = time.monotonic() + seconds
    while True:
        job = cli.jobs([slurm_id]).get(slurm_id)
        if job is not None and job.state in states:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {slurm_id} did not reach {sorted(states)}: last seen {job}")
        time.sleep(0.5)


@pytest.mark.slurm
def test_a_job_runs_to_completion_as_the_run_as_user(
    slurm_cluster: SlurmCluster, slurm_account: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hush")  # the service's own environment
    cli = SlurmCli()
    cli.ping()
    workdir = slurm_cluster.job_dir("hostname")
    before = datetime.now(UTC) - timedelta(seconds=2)

    slurm_id = _submit(
        cli,
        workdir,
        account=slurm_account,
        cluster=slurm_cluster,
        script=(
            "#!/bin/bash\nhostname\nid -un\n"
            'echo "secret=${SECRET_TOKEN:-none} mine=$MINE format=${SLURM_TIME_FORMAT:-unset}"\n'
        ),
        environment={"MINE": "yes"},
    )
    job = _wait_for(cli, slurm_id, {"COMPLETED", "FAILED"})

    assert (job.state, job.exit_code, job.account) == ("COMPLETED", 0, slurm_account)
    assert job.alloc_tres["cpu"] == 1 and job.alloc_tres["mem"] == 200
    assert job.start is not None and job.end is not None and before <= job.start <= job.end
    assert job.elapsed_seconds == int((job.end - job.start).total_seconds())
    lines = (workdir / "stdout").read_text().splitlines()
    assert lines[1:] == [slurm_cluster.run_as, "secret=none mine=yes format=unset"]


@pytest.mark.slurm
def test_a_failing_job_reports_its_exit_code(
    slurm_cluster: SlurmCluster, slurm_account: str
) -> None:
    cli = SlurmCli()
    workdir = slurm_cluster.job_dir("exit3")
    slurm_id = _submit(
        cli, workdir, account=slurm_account, cluster=slurm_cluster, script="#!/bin/bash\nexit 3\n"
    )
    job = _wait_for(cli, slurm_id, {"COMPLETED", "FAILED"})
    assert (job.state, job.exit_code) == ("FAILED", 3)


@pytest.mark.slurm
def test_cancel_a_running_job_and_cancel_it_again(
    slurm_cluster: SlurmCluster, slurm_account: str
) -> None:
    cli = SlurmCli()
    workdir = slurm_cluster.job_dir("sleep")
    slurm_id = _submit(
        cli,
        workdir,
        account=slurm_account,
        cluster=slurm_cluster,
        script="#!/bin/bash\nsleep 300\n",
    )
    running = _wait_for(cli, slurm_id, {"RUNNING"})
    assert running.exit_code is None and running.end is None and running.start is not None

    cli.cancel(slurm_id)
    cancelled = _wait_for(cli, slurm_id, {"CANCELLED"})
    assert cancelled.finished and cancelled.end is not None
    cli.cancel(slurm_id)  # already ended: not an error


@pytest.mark.slurm
def test_an_unknown_account_is_refused(slurm_cluster: SlurmCluster) -> None:
    workdir = slurm_cluster.job_dir("refused")
    with pytest.raises(SlurmRefused, match="Invalid account") as refused:
        _submit(SlurmCli(), workdir, account=unique_name("nosuch"), cluster=slurm_cluster)
    assert refused.value.command == "sbatch"


@pytest.mark.slurm
def test_a_job_slurm_never_had_is_absent(slurm_cluster: SlurmCluster) -> None:
    assert SlurmCli().jobs([987_654_321]) == {}


@pytest.mark.slurm
def test_a_broken_configuration_is_unavailable(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    bogus = tmp_path / "slurm.conf"
    bogus.write_text("ClusterName=nowhere\nSlurmctldHost=127.0.0.2\n")
    cli = SlurmCli(timeout=20, env={"SLURM_CONF": str(bogus)})
    with pytest.raises(SlurmUnavailable):
        cli.ping()
    with pytest.raises(SlurmUnavailable):
        cli.jobs([1])


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_survives_a_restart_of_the_daemons(
    slurm_cluster: SlurmCluster, slurm_account: str
) -> None:
    cli = SlurmCli()
    workdir = slurm_cluster.job_dir("restart")
    slurm_id = _submit(
        cli,
        workdir,
        account=slurm_account,
        cluster=slurm_cluster,
        script="#!/bin/bash\nsleep 8\necho done\n",
    )
    _wait_for(cli, slurm_id, {"RUNNING"})

    slurm_cluster.restart_daemons()

    job = _wait_for(cli, slurm_id, {"COMPLETED", "FAILED", "NODE_FAIL", "CANCELLED"})
    assert (job.state, job.exit_code) == ("COMPLETED", 0)
    assert (workdir / "stdout").read_text() == "done\n"
    assert os.stat(workdir / "stdout").st_uid == slurm_cluster.uid
