"""`commonlab job submit --watch` (and `job watch`) show the latest loss a job posted, beside
its progress: a live facility, a real job that posts its metrics with its own token."""

from __future__ import annotations

import shlex
import sys

from tests.cli.test_cli import run
from tests.compute.helpers import award_project
from tests.helpers import auth, http_client

# What a training loop does: post each step's loss with the job's own token and URL.
POST_LOSSES = """
import os, httpx
url = f"{os.environ['COMMONLAB_URL']}/api/v1/jobs/{os.environ['COMMONLAB_JOB_ID']}/metrics"
headers = {"Authorization": f"Bearer {os.environ['COMMONLAB_TOKEN']}"}
points = [{"step": s, "loss": 4.0 / (s + 1), "learning_rate": 0.001} for s in range(40)]
answer = httpx.post(url, json={"points": points}, headers=headers, timeout=30)
print("posted", answer.status_code)
"""


def test_watch_shows_the_latest_loss_the_job_posted(capsys, served, monkeypatch):
    api = http_client(base_url=served.url, timeout=30)
    project = award_project(api, auth(served.token))
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", project.pi_auth["Authorization"].split()[1])

    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(POST_LOSSES)}"
    code, out, err = run(
        capsys, "job", "submit", "-p", project.name, "--time", "2", "--watch", "--", command
    )
    assert code == 0, err + out
    assert "posted 200" in out
    assert "last loss 0.1 at step 39." in out

    # Watching it again after the end shows the same; a job that posted nothing shows none.
    job_id = api.get("/api/v1/jobs", headers=project.pi_auth).json()["items"][0]["id"]
    code, out, _ = run(capsys, "job", "watch", str(job_id))
    assert code == 0 and "last loss 0.1 at step 39." in out
    code, out, err = run(capsys, "job", "submit", "-p", project.name, "--watch", "--", "true")
    assert code == 0, err
    assert "charged 0.01 cpu-hours." in out and "loss" not in out
