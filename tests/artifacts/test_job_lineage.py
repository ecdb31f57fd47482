"""A version that names a facility job: the job must be the publisher's own, and the
lineage may name only what the job read (its inputs, checked at admission against its
containment level). Inside a job the CLI fills both in from the job's environment."""

from __future__ import annotations

import pytest

from commonlab.cli import artifacts_cmd
from tests.artifacts.helpers import push, safetensors_bytes
from tests.compute.helpers import award_project
from tests.portal.helpers import sign_in


@pytest.fixture
def trained(client, operator):
    """A project's dataset and a job of its PI that reads it."""
    proj = award_project(client, operator)
    pi = proj.pi_auth
    made = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "dataset", "name": "corpus", "project": proj.name},
        headers=pi,
    )
    assert made.status_code == 201, made.text
    data = f"datasets/{made.json()['repo_id']}"
    assert push(client, pi, data, {"train.jsonl": b'{"text": "habari"}\n'}).status_code == 201
    job = client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": proj.name, "command": "true", "accelerator": "cpu",
              "accelerators": 1, "time_limit_minutes": 5, "inputs": [f"{data}@1"]},
        headers=pi,
    )  # fmt: skip
    assert job.status_code == 201, job.text
    model = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "model", "name": "tiny", "project": proj.name},
        headers=pi,
    ).json()["repo_id"]
    return proj, data, str(job.json()["id"]), f"models/{model}"


def test_a_model_names_the_job_that_trained_it_and_what_the_job_read(client, trained):
    proj, data, job, model = trained
    made = push(
        client, proj.pi_auth, model, {"model.safetensors": safetensors_bytes()}, job=job,
        lineage=[{"ref": f"{data}@1", "relation": "trained_on"}],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    graph = client.get(f"/api/v1/artifacts/{model}/versions/1/lineage", headers=proj.pi_auth)
    assert {"from": f"{model}@1", "to": f"{data}@1", "relation": "trained_on", "job": job} in (
        graph.json()["edges"]
    )
    # The public learns which job made it, without a link to a page it may not see; the
    # project's PI gets the link.
    page = client.get(f"/artifacts/{model}/versions/1").text
    assert f'href="/jobs/{job}"' not in page and f"job {job} of this facility" in page
    client.cookies.clear()
    sign_in(client, proj.pi_auth["Authorization"].split()[1])
    page = client.get(f"/artifacts/{model}/versions/1").text
    assert f'href="/jobs/{job}"' in page


@pytest.mark.parametrize(
    ("who", "job", "lineage", "fragment"),
    [
        ("member", None, True, "is not a job of yours"),
        ("pi", "999999", True, "is not a job of yours"),
        ("pi", None, "other", "did not read"),
    ],
)
def test_a_job_claim_that_does_not_hold_is_refused_and_changes_nothing(
    client, trained, who, job, lineage, fragment
):
    proj, data, real_job, model = trained
    headers = proj.pi_auth if who == "pi" else proj.member_auth
    other = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "dataset", "name": "unread", "project": proj.name},
        headers=proj.pi_auth,
    ).json()["repo_id"]
    assert push(client, proj.pi_auth, f"datasets/{other}", {"x.txt": b"x"}).status_code == 201
    source = f"datasets/{other}@1" if lineage == "other" else f"{data}@1"
    made = push(
        client, headers, model, {"model.safetensors": safetensors_bytes()}, job=job or real_job,
        lineage=[{"ref": source, "relation": "trained_on"}],
    )  # fmt: skip
    assert made.status_code == 422 and fragment in made.json()["detail"], made.text
    assert client.get(f"/api/v1/artifacts/{model}", headers=proj.pi_auth).json()["latest"] is None


def test_inside_a_job_the_cli_names_the_job_and_its_inputs(monkeypatch):
    monkeypatch.setenv("COMMONLAB_JOB_ID", "17")
    monkeypatch.setenv("COMMONLAB_INPUTS", "datasets/lab/a@1 datasets/lab/b@3")
    assert artifacts_cmd._from_job_environment("model", None, None) == (
        "17",
        ["trained_on:datasets/lab/a@1", "trained_on:datasets/lab/b@3"],
    )
    assert artifacts_cmd._from_job_environment("dataset", None, None)[1] == [
        "derived_from:datasets/lab/a@1",
        "derived_from:datasets/lab/b@3",
    ]
    # What the command line says wins; outside a job nothing is added.
    assert artifacts_cmd._from_job_environment("model", None, ["evaluates:models/x/y@1"]) == (
        "17",
        ["evaluates:models/x/y@1"],
    )
    assert artifacts_cmd._from_job_environment("model", "ext-1", None) == ("ext-1", None)
    monkeypatch.delenv("COMMONLAB_JOB_ID")
    assert artifacts_cmd._from_job_environment("model", None, None) == (None, None)
