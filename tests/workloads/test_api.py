"""Admitting workloads through the API, on SQLite and PostgreSQL: a workload is an ordinary job
whose configuration is checked before anything is held, kept with the job, hashed on the
record; every refusal names what to fix and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commonlab.workloads.config import TrainConfig, config_hash
from commonlab.workloads.service import WORKLOAD_COMMAND
from tests.artifacts.helpers import push
from tests.compute.helpers import award_project
from tests.helpers import person_with_token, problem, record_entries

TINY = {
    "model": {"architecture": "gpt2", "size": {"n_layer": 1, "n_head": 2, "n_embd": 16}},
    "tokenizer": {"vocab_size": 300},
    "sequence_length": 16,
    "max_steps": 4,
}


@pytest.fixture
def project(client, operator):
    return award_project(client, operator)


def repo(client, headers, project, kind: str, name: str, **fields) -> str:
    made = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": kind, "name": name, "project": project.name, **fields},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    return f"{kind}s/{made.json()['repo_id']}"


@pytest.fixture
def corpus(client, project):
    data = repo(client, project.pi_auth, project, "dataset", "corpus")
    made = push(client, project.pi_auth, data, {"train.jsonl": b'{"text": "habari yako"}\n'})
    assert made.status_code == 201, made.text
    return f"{data}@1"


def admit(client, headers, kind, project, **fields):
    body = {"project": project.name, "config": TINY, "time_limit_minutes": 5, **fields}
    return client.post(f"/api/v1/workloads/{kind}", json=body, headers=headers)


def jobs_of(client, project) -> list[dict]:
    return client.get(
        "/api/v1/jobs", params={"project": project.name}, headers=project.pi_auth
    ).json()["items"]


def test_a_train_workload_is_a_job_with_its_configuration_kept_and_hashed(
    client, app, project, corpus
):
    made = admit(client, project.member_auth, "train", project, dataset=corpus,
                 out=f"models/{project.name}/tiny")  # fmt: skip
    assert made.status_code == 201, made.text
    workload = made.json()
    expected = TrainConfig.model_validate(TINY)
    assert workload["config"] == expected.model_dump(mode="json")
    assert workload["config_sha256"] == config_hash(expected)

    (job,) = jobs_of(client, project)
    assert job["id"] == workload["job_id"]
    assert job["command"] == WORKLOAD_COMMAND and job["inputs"] == [corpus]
    # The job reads its own configuration back (with its submitter's rights).
    again = client.get(f"/api/v1/workloads/{job['id']}", headers=project.member_auth)
    assert again.status_code == 200 and again.json() == workload

    (entry,) = record_entries(client, app, type="workloads:workload:admitted")
    assert entry["subject"] == f"job/{job['id']}"
    assert entry["data"]["config_sha256"] == workload["config_sha256"]
    assert entry["data"]["dataset"] == corpus  # public: named in clear
    # The configuration itself only as a commitment.
    assert set(entry["data"]["config"]) == {"commitment"}


@pytest.mark.parametrize(
    ("kind", "fields", "fragment"),
    [
        ("train", {"config": {"model": {"architecture": "bert"}}},
         "config.model.architecture: Input should be 'gpt2', 'llama' or 'wav2vec2'"),
        ("train", {"config": {"task": "asr"}}, "does not fit task 'asr': use wav2vec2"),
        ("train", {"config": {"max_steps": 0}}, "config.max_steps"),
        ("train", {"config": {"optimiser": {}}}, "config.optimiser"),
        ("train", {"config": {"sequence_length": "long"}}, "config.sequence_length"),
        ("train", {"dataset": None}, "dataset: train needs a dataset version"),
        ("train", {"out": "datasets/x/y"}, "out: train publishes to a model repository"),
        ("train", {"model": "models/x/y@1"}, "model: train starts from no model"),
        ("train", {"out": "models/someone-else/tiny"},
         "out: a workload of proj-1 publishes into its project's namespace"),
        ("finetune", {"config": {}}, "model: finetune needs a model version"),
        ("evaluate", {"config": {"task": "qa"}, "model": "models/x/y@1",
                      "out": "models/x/y"}, "out: evaluate publishes to a dataset repository"),
        ("evaluate", {"config": {}}, "config.task: Field required"),
        ("train", {"dataset": "datasets/x/y@main"}, "pin 'datasets/x/y@main' to a version"),
        ("train", {"nodes": 2}, "runs a job on at most 1 node, and this one asks for 2"),
        ("train", {"config": {"model": {"size": {"n_layers": 2}}}},
         "config.model.size has keys gpt2 does not know: n_layers (it knows: "),
        ("train", {"config": {"model": {"architecture": "llama"}}},
         "memory_gb: training this model (6,509,826,048 parameters) needs at least 98 GB"),
        ("train", {"config": {"task": "asr", "model": {"architecture": "wav2vec2",
                                                       "size": {"vocab_size": 9}}}},
         "config.model.size sets vocab_size, which the transcripts' characters decide"),
    ],
)  # fmt: skip
def test_a_mistake_is_refused_with_the_field_and_changes_nothing(
    client, app, project, corpus, kind, fields, fragment
):
    body = {"dataset": corpus, "out": f"models/{project.name}/tiny", **fields}
    body = {k: v for k, v in body.items() if v is not None}
    before = record_entries(client, app)
    refused = admit(client, project.pi_auth, kind, project, **body)
    assert refused.status_code == 422, refused.text
    assert fragment in problem(refused)["detail"]
    assert jobs_of(client, project) == []
    assert record_entries(client, app) == before


def test_an_unknown_kind_and_hostile_bodies_are_4xx(client, project, corpus):
    assert admit(client, project.pi_auth, "pretrain", project).status_code == 422
    for body in (
        [],
        {"project": project.name, "config": "x"},
        {"project": project.name, "config": {str(i): i for i in range(100)}},
        {"project": project.name, "config": TINY, "dataset": "../../etc@1"},
        {"project": project.name, "config": TINY, "accelerators": 0},
    ):
        response = client.post("/api/v1/workloads/train", json=body, headers=project.pi_auth)
        assert response.status_code == 422, (body, response.text)
    assert jobs_of(client, project) == []


def test_a_dataset_the_person_may_not_read_refuses_the_workload(client, operator, project):
    other = award_project(client, operator, found=False)
    hidden = repo(client, other.pi_auth, other, "dataset", "theirs", visibility="project")
    assert push(client, other.pi_auth, hidden, {"a.jsonl": b'{"text": "x"}\n'}).status_code == 201
    refused = admit(client, project.pi_auth, "train", project, dataset=f"{hidden}@1",
                    out=f"models/{project.name}/tiny")  # fmt: skip
    assert refused.status_code in (403, 404), refused.text
    assert jobs_of(client, project) == []


def test_a_dataset_above_the_workloads_level_refuses_it(client, operator):
    project = award_project(client, operator, level=2)
    _, officer = person_with_token(
        client, operator, "Safety Officer", ["safety_officer"], scopes=("admin",)
    )
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    granted = client.post(f"/api/v1/people/{project.pi['id']}/clearances",
                          json={"level": 2, "expires_at": expires}, headers=officer)  # fmt: skip
    assert granted.status_code == 201, granted.text
    contained = repo(client, project.pi_auth, project, "dataset", "contained", level=2)
    made = push(client, project.pi_auth, contained, {"a.jsonl": b'{"text": "x"}\n'})
    assert made.status_code == 201, made.text
    refused = admit(client, project.pi_auth, "train", project, dataset=f"{contained}@1",
                    out=f"models/{project.name}/tiny", level=1)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert "CL-2; a job reading it must run at CL-2" in problem(refused)["detail"]


def test_who_may_not_read_the_job_does_not_learn_its_workload(client, project, corpus):
    made = admit(client, project.pi_auth, "train", project, dataset=corpus,
                 out=f"models/{project.name}/tiny")  # fmt: skip
    job_id = made.json()["job_id"]
    assert client.get(f"/api/v1/workloads/{job_id}").status_code in (401, 404)
    denied = client.get(f"/api/v1/workloads/{job_id}", headers=project.outsider_auth)
    assert denied.status_code in (403, 404)
    assert "habari" not in denied.text and "gpt2" not in denied.text


def test_a_plain_job_runs_no_workload(client, project):
    job = client.post(
        "/api/v1/jobs",
        json={"project": project.name, "command": "true", "accelerator": "cpu"},
        headers=project.pi_auth,
    ).json()
    missing = client.get(f"/api/v1/workloads/{job['id']}", headers=project.pi_auth)
    assert missing.status_code == 404 and "runs no workload" in problem(missing)["detail"]
