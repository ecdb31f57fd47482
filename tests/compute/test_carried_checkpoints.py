"""A resubmitted job starts with the `checkpoints/` folder its predecessor left, and nothing
else of it: the facility copies that folder with its own rights, so what an untrusted job left
there (links to the facility's files, folders reached through links, fifos) stays behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from commonlab.compute.executors.base import Handoff, carry_checkpoints
from tests.compute.helpers import award_project, run_until


def handoff(carried: Path | None) -> Handoff:
    return Handoff(
        job_id=2, name="cl-test-2", command="true", env={}, workdir=Path("/nonexistent"),
        partition="local", account="a", run_as=None, accelerator="cpu", accelerators=1,
        cpus=1, memory_gb=1, time_limit_minutes=1, level=1, carried=carried,
    )  # fmt: skip


def test_only_regular_files_and_real_folders_are_carried(tmp_path):
    secret = tmp_path / "facility-key"
    secret.write_text("the facility's signing key")
    (tmp_path / "facility").mkdir()
    (tmp_path / "facility" / "db").write_text("rows")
    left = tmp_path / "old" / "checkpoints"
    (left / "step-00000003").mkdir(parents=True)
    (left / "step-00000003" / "model.pt").write_bytes(b"weights")
    (left / "latest").write_text("step-00000003")
    (left / "key").symlink_to(secret)
    (left / "everything").symlink_to(tmp_path / "facility")
    os.mkfifo(left / "pipe")
    work = tmp_path / "new"
    work.mkdir()
    uid = 2_000_000_123 if os.getuid() == 0 else None

    assert carry_checkpoints(handoff(left), work, uid=uid, gid=uid) == 2
    got = work / "checkpoints"
    assert (got / "step-00000003" / "model.pt").read_bytes() == b"weights"
    assert (got / "latest").read_text() == "step-00000003"
    for name in ("key", "everything", "pipe"):
        assert not os.path.lexists(got / name), name
    if uid is not None:
        assert os.stat(got / "latest").st_uid == uid
        assert os.stat(got / "step-00000003").st_uid == uid
    assert stat.S_IMODE(os.stat(got).st_mode) == 0o700


def test_nothing_is_carried_from_a_link_or_a_missing_folder(tmp_path):
    real = tmp_path / "facility"
    real.mkdir()
    (real / "db").write_text("rows")
    (tmp_path / "checkpoints").symlink_to(real)
    work = tmp_path / "work"
    work.mkdir()
    assert carry_checkpoints(handoff(tmp_path / "checkpoints"), work, uid=None, gid=None) == 0
    assert carry_checkpoints(handoff(tmp_path / "none"), work, uid=None, gid=None) == 0
    assert carry_checkpoints(handoff(None), work, uid=None, gid=None) == 0
    assert not (work / "checkpoints").exists()


@pytest.mark.slow
def test_a_resubmitted_job_resumes_from_its_predecessors_checkpoints(client, operator, app):
    project = award_project(client, operator)
    # The first run leaves a checkpoint (and a link in it) and fails; the second finds it.
    command = (
        "if [ -f checkpoints/latest ]; then cat checkpoints/latest; "
        "[ -e checkpoints/host ] || echo 'no link carried'; "
        "[ -e scratch.txt ] || echo 'nothing else carried'; exit 0; fi; "
        "mkdir -p checkpoints && echo step-7 > checkpoints/latest && echo x > scratch.txt && "
        "ln -s /etc/hostname checkpoints/host && exit 3"
    )
    first = client.post(
        "/api/v1/jobs",
        json={"project": project.name, "accelerator": "cpu", "time_limit_minutes": 2,
              "command": command},
        headers=project.pi_auth,
    ).json()  # fmt: skip
    ended = run_until(app.state.jobs, client, first["id"], project.pi_auth, {"failed"})
    assert ended["exit_code"] == 3
    again = client.post(f"/api/v1/jobs/{first['id']}/resubmit", headers=project.pi_auth)
    assert again.status_code == 201, again.text
    second = again.json()["id"]
    run_until(app.state.jobs, client, second, project.pi_auth, {"succeeded"})
    out = client.get(f"/api/v1/jobs/{second}/logs", headers=project.pi_auth).json()["text"]
    assert out == "step-7\nno link carried\nnothing else carried\n"
