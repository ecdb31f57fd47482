"""Evaluations: an evaluate job publishes its scores with its own token, once, for exactly
what it was admitted to evaluate, naming a log it published itself; readers see them per
model, per task and on leaderboards, only where they may read the model and the dataset.
A contained model's evaluation shows to nobody who may not read it, nor in clear on the
record. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from commonlab.compute.service import certify_partition
from commonlab.identity import service as identity
from commonlab.policy.principal import motion_authority
from commonlab.record.models import Entry
from commonlab.workloads.evaluations import primary_metric, rank
from commonlab.workloads.models import Evaluation
from commonlab.workloads.schemas import EvaluationOut
from tests.artifacts.helpers import push, safetensors_bytes
from tests.compute.helpers import Project, award_project, entries, run_until
from tests.helpers import auth, person_with_token
from tests.portal.helpers import sign_in

ROOT = "ab" * 32
TASK = "arith"


@dataclass
class Lab:
    project: Project
    model: str  # models/<ns>/tiny@1
    dataset: str  # datasets/<ns>/arith@1
    logs: str  # datasets/<ns>/tiny-evals: where evaluate jobs push their logs
    level: int


@dataclass
class EvalJob:
    id: int
    token: dict[str, str]  # the job's own token, as handed over at its start


def _repo(client: Any, headers: dict[str, str], **body: Any) -> str:
    made = client.post("/api/v1/artifacts/repos", json=body, headers=headers)
    assert made.status_code == 201, made.text
    return f"{body['kind']}s/{made.json()['repo_id']}"


def _clear(client: Any, operator: dict[str, str], person_id: int, level: int) -> None:
    _, officer = person_with_token(client, operator, name=f"Officer {person_id}",
                                   roles=["safety_officer"], scopes=("admin",))  # fmt: skip
    granted = client.post(
        f"/api/v1/people/{person_id}/clearances",
        json={"level": level, "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
        headers=officer,
    )
    assert granted.status_code == 201, granted.text


def make_lab(client: Any, operator: dict[str, str], facility: Any, *, level: int = 1) -> Lab:
    """A project with a model, a public dataset of samples and a repository for logs: public
    CL-1 at `level` 1; at level 2 the model and the logs are the project's, CL-2."""
    project = award_project(client, operator)
    pi = project.pi_auth
    contained = {"visibility": "project", "level": 2} if level == 2 else {}
    if level == 2:
        _clear(client, operator, project.pi["id"], 2)
        with facility.db.session() as db, db.begin():
            certify_partition(db, motion_authority(0), "local", 2)
    model = _repo(client, pi, kind="model", name="tiny", project=project.name, **contained)
    assert push(client, pi, model, {"model.safetensors": safetensors_bytes()}).status_code == 201
    dataset = _repo(client, pi, kind="dataset", name="arith", project=project.name)
    samples = b'{"input": "1+1", "target": "2"}\n'
    assert push(client, pi, dataset, {"test.jsonl": samples}).status_code == 201
    logs = _repo(client, pi, kind="dataset", name="tiny-evals", project=project.name, **contained)
    return Lab(project, f"{model}@1", f"{dataset}@1", logs, level)


def evaluate_job(client: Any, facility: Any, lab: Lab, **config: Any) -> EvalJob:
    """An evaluate workload of the PI's, admitted through the workloads API, and the token the
    job controller would hand it (identity.job_token with the job's key)."""
    made = client.post(
        "/api/v1/workloads/evaluate",
        json={"project": lab.project.name, "config": {"task": TASK, **config},
              "dataset": lab.dataset, "model": lab.model, "out": lab.logs, "level": lab.level,
              "time_limit_minutes": 5},
        headers=lab.project.pi_auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    return EvalJob(job_id, auth(_job_token(facility, lab, job_id)))


def _job_token(facility: Any, lab: Lab, job_id: int) -> str:
    with facility.db.session() as db, db.begin():
        return identity.job_token(
            db,
            lab.project.pi["id"],
            job_key=f"job/{job_id}",
            project=lab.project.name,
            level=lab.level,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            key=b"k" * 32,
        )


def push_log(client: Any, lab: Lab, job: EvalJob) -> str:
    """The job pushes its log beside the model, as `commonlab workload run` does."""
    files = {"log.json": b"{}", "samples.jsonl": b'{"id": 1}\n', "results.json": b"{}"}
    made = push(client, job.token, lab.logs, files,
                lineage=[{"ref": lab.model, "relation": "evaluates"}])  # fmt: skip
    assert made.status_code == 201, made.text
    return f"{lab.logs}@{made.json()['number']}"


def body(lab: Lab, job: EvalJob, log: str | None = None, /, **changes: Any) -> dict[str, Any]:
    return {
        "job": job.id,
        "task": TASK,
        "harness": "inspect",
        "model": lab.model,
        "dataset": lab.dataset,
        "log": log,
        "metrics": {"accuracy": 0.75, "stderr": 0.01},
        "samples": 4,
        "sample_root": ROOT,
        **changes,
    }


def snapshot(facility: Any) -> tuple[int, int]:
    """How many evaluations and record entries there are: a refusal leaves both."""
    with facility.db.session() as db:
        return (
            db.scalar(select(func.count()).select_from(Evaluation)),
            db.scalar(select(func.count()).select_from(Entry)),
        )


def recorded(facility: Any) -> list[dict[str, Any]]:
    with facility.db.session() as db:
        return entries(db, "workloads:evaluation")


@pytest.fixture
def lab(client, operator, facility) -> Lab:
    return make_lab(client, operator, facility)


@pytest.fixture
def job(client, facility, lab) -> EvalJob:
    return evaluate_job(client, facility, lab)


# Publishing ------------------------------------------------------------------------------------


def test_the_job_publishes_its_scores_with_its_own_token(client, facility, lab, job):
    log = push_log(client, lab, job)
    made = client.post("/api/v1/evaluations", json=body(lab, job, log), headers=job.token)
    assert made.status_code == 201, made.text
    out = made.json()
    assert out["job"] == job.id and out["model"] == lab.model and out["log"] == log
    assert out["metrics"] == {"accuracy": 0.75, "stderr": 0.01} and out["sample_root"] == ROOT
    assert out["level"] == 1 and out["project"] == lab.project.name
    [entry] = recorded(facility)
    assert entry["subject"] == f"evaluation/{out['id']}"
    assert entry["data"]["job"] == f"job/{job.id}"
    assert entry["data"]["sample_root"] == ROOT and entry["data"]["model"] == lab.model
    assert entry["data"]["metrics"] == {"accuracy": 0.75, "stderr": 0.01}
    # Anyone reads it: the model, the dataset and the log are public.
    listed = client.get("/api/v1/evaluations", params={"model": lab.model}).json()
    assert [e["id"] for e in listed["items"]] == [out["id"]] and listed["next"] is None
    board = client.get(f"/api/v1/leaderboards/{TASK}").json()
    assert board["metric"] == "accuracy"
    assert [(s["rank"], s["score"]) for s in board["standings"]] == [(1, 0.75)]
    assert client.get("/api/v1/leaderboards").json()[0]["task"] == TASK


def test_the_submitter_may_publish_for_their_own_job_without_a_log(client, lab, job):
    made = client.post("/api/v1/evaluations", json=body(lab, job), headers=lab.project.pi_auth)
    assert made.status_code == 201, made.text
    assert made.json()["log"] is None and made.json()["log_withheld"] is False


def test_a_resubmitted_evaluate_job_publishes_as_its_original_would(client, app, facility, lab):
    """A resubmission is a new job running its original's workload (its configuration is
    kept once, on the original): the new job publishes its scores like the first would."""
    first = evaluate_job(client, facility, lab)
    # Served by no HTTP server, the job cannot reach the facility and ends failed.
    run_until(app.state.jobs, client, first.id, lab.project.pi_auth,
              {"failed", "succeeded", "cancelled", "timed_out"})  # fmt: skip
    again = client.post(f"/api/v1/jobs/{first.id}/resubmit", headers=lab.project.pi_auth)
    assert again.status_code == 201, again.text
    second = EvalJob(again.json()["id"], auth(_job_token(facility, lab, again.json()["id"])))
    workload = client.get(f"/api/v1/workloads/{second.id}", headers=second.token)
    assert workload.status_code == 200 and workload.json()["kind"] == "evaluate"
    made = client.post("/api/v1/evaluations", json=body(lab, second), headers=second.token)
    assert made.status_code == 201, made.text
    assert made.json()["job"] == second.id


@pytest.mark.parametrize(
    ("who", "status", "fragment"),
    [
        ("anonymous", 401, "needs the evaluate job's token"),
        ("outsider", 403, "is not one of your jobs"),
        ("member", 403, "is not one of your jobs"),
        ("other_project", 403, "is not one of your jobs"),
        ("read_only", 403, "write scope"),
        ("other_job", 403, "this token is job"),
    ],
)
def test_only_the_job_or_its_submitter_publishes(
    client, operator, facility, lab, job, who, status, fragment
):
    headers = {
        "anonymous": {},
        "outsider": lab.project.outsider_auth,
        "member": lab.project.member_auth,
        "read_only": auth(identity_token(client, operator, lab.project.pi["id"], scopes=["read"])),
    }.get(who)
    if who == "other_project":
        headers = award_project(client, operator, found=False).pi_auth
    if who == "other_job":
        headers = evaluate_job(client, facility, lab).token
    before = snapshot(facility)
    refused = client.post("/api/v1/evaluations", json=body(lab, job), headers=headers)
    assert refused.status_code == status and fragment in refused.json()["detail"], refused.text
    assert snapshot(facility) == before


def identity_token(client: Any, operator: dict[str, str], person_id: int, **kw: Any) -> str:
    made = client.post(f"/api/v1/people/{person_id}/tokens", json=kw, headers=operator)
    assert made.status_code == 201, made.text
    return made.json()["token"]


def test_a_job_that_is_not_an_evaluate_workload_publishes_nothing(client, facility, lab):
    plain = client.post(
        "/api/v1/jobs",
        json={"name": "plain", "project": lab.project.name, "command": "true",
              "accelerator": "cpu", "accelerators": 1, "time_limit_minutes": 5},
        headers=lab.project.pi_auth,
    )  # fmt: skip
    assert plain.status_code == 201, plain.text
    job = EvalJob(plain.json()["id"], auth(_job_token(facility, lab, plain.json()["id"])))
    before = snapshot(facility)
    refused = client.post("/api/v1/evaluations", json=body(lab, job), headers=job.token)
    assert refused.status_code == 422, refused.text
    assert "runs no workload; only an evaluate workload" in refused.json()["detail"]
    assert snapshot(facility) == before


def test_what_is_posted_must_be_what_the_job_was_admitted_to_evaluate(
    client, operator, facility, lab, job
):
    other_model = _repo(client, lab.project.pi_auth, kind="model", name="other",
                        project=lab.project.name)  # fmt: skip
    assert push(client, lab.project.pi_auth, other_model,
                {"model.safetensors": safetensors_bytes()}).status_code == 201  # fmt: skip
    before = snapshot(facility)
    for change, field in [
        ({"model": f"{other_model}@1"}, "model"),
        ({"dataset": f"{lab.dataset[:-2]}@2"}, "dataset"),
        ({"task": "other-task"}, "task"),
        ({"harness": "lm_eval"}, "harness"),
    ]:
        refused = client.post("/api/v1/evaluations", json=body(lab, job, **change),
                              headers=job.token)  # fmt: skip
        detail = refused.json()["detail"]
        assert refused.status_code == 422, refused.text
        assert detail.startswith(f"{field}: job {job.id} was admitted to evaluate"), detail
    assert snapshot(facility) == before


def test_the_log_must_be_a_version_the_job_published(client, facility, lab, job):
    by_pi = push(client, lab.project.pi_auth, lab.logs, {"log.json": b"{}"})
    assert by_pi.status_code == 201, by_pi.text
    before = snapshot(facility)
    refused = client.post("/api/v1/evaluations", json=body(lab, job, f"{lab.logs}@1"),
                          headers=job.token)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert f"was not published by job {job.id}" in refused.json()["detail"]
    missing = client.post("/api/v1/evaluations", json=body(lab, job, f"{lab.logs}@9"),
                          headers=job.token)  # fmt: skip
    assert missing.status_code == 404 and "no revision '9'" in missing.json()["detail"]
    assert snapshot(facility) == before


def test_one_evaluation_per_job(client, facility, lab, job):
    first = client.post("/api/v1/evaluations", json=body(lab, job), headers=job.token)
    assert first.status_code == 201, first.text
    before = snapshot(facility)
    again = client.post("/api/v1/evaluations", json=body(lab, job, metrics={"accuracy": 1.0}),
                        headers=job.token)  # fmt: skip
    assert again.status_code == 409 and "already published" in again.json()["detail"]
    assert snapshot(facility) == before


def _raw(client: Any, headers: dict[str, str], document: dict[str, Any]) -> Any:
    # json.dumps writes NaN and Infinity as bare words, as hostile clients may.
    return client.post("/api/v1/evaluations", content=json.dumps(document),
                       headers={**headers, "content-type": "application/json"})  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metrics": {"accuracy": float("nan")}}, "metrics.accuracy"),
        ({"metrics": {"accuracy": float("inf")}}, "metrics.accuracy"),
        ({"metrics": {"accuracy": 1e16}}, "metrics.accuracy"),
        ({"metrics": {"accuracy": True}}, "metrics.accuracy"),
        ({"metrics": {"accuracy": "0.5"}}, "metrics.accuracy"),
        ({"metrics": {}}, "metrics"),
        ({"metrics": {f"m{i}": 0.5 for i in range(33)}}, "metrics"),
        ({"metrics": {"<script>": 0.5}}, "metrics"),
        ({"metrics": {"a" * 65: 0.5}}, "metrics"),
        ({"samples": -1}, "samples"),
        ({"samples": 10**9 + 1}, "samples"),
        ({"samples": "4"}, "samples"),
        ({"sample_root": "AB" * 32}, "sample_root"),
        ({"sample_root": "ab" * 31}, "sample_root"),
        ({"task": "Arith"}, "task"),
        ({"task": "a" * 81}, "task"),
        ({"harness": "pytest"}, "harness"),
        ({"model": "models/../x@1"}, "model"),
        ({"model": "models/ns/tiny@main"}, "model"),
        ({"model": "datasets/ns/tiny@1"}, "model"),
        ({"dataset": "datasets/ns/d@１"}, "dataset"),
        ({"log": "models/ns/x@1"}, "log"),
        ({"job": "1"}, "job"),
        ({"job": 2**63}, "job"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    client, facility, lab, job, change, field
):
    before = snapshot(facility)
    refused = _raw(client, job.token, body(lab, job, **change))
    assert refused.status_code == 422, refused.text
    assert field in refused.json()["detail"], refused.text
    assert snapshot(facility) == before


# Reading ---------------------------------------------------------------------------------------


def test_a_leaderboard_ranks_best_first_and_lists_page_by_page(client, facility, lab):
    scores = [0.5, 0.9, 0.7]
    for accuracy in scores:
        job = evaluate_job(client, facility, lab)
        scored = body(lab, job, metrics={"accuracy": accuracy})
        made = client.post("/api/v1/evaluations", json=scored, headers=job.token)
        assert made.status_code == 201, made.text
    board = client.get(f"/api/v1/leaderboards/{TASK}").json()
    assert [s["score"] for s in board["standings"]] == [0.9, 0.7, 0.5]
    assert [s["rank"] for s in board["standings"]] == [1, 2, 3]
    assert len(client.get(f"/api/v1/leaderboards/{TASK}?limit=1").json()["standings"]) == 1
    seen, after = [], None
    while True:
        cursor = {"after": after} if after else {}
        page = client.get("/api/v1/evaluations", params={"task": TASK, "limit": 2, **cursor})
        assert page.status_code == 200, page.text
        seen += [e["metrics"]["accuracy"] for e in page.json()["items"]]
        after = page.json()["next"]
        if after is None:
            break
    assert seen == scores
    assert client.get("/api/v1/leaderboards/none-such").json()["standings"] == []


def test_a_contained_models_scores_show_only_to_those_who_may_read_it(client, operator, facility):
    lab = make_lab(client, operator, facility, level=2)
    job = evaluate_job(client, facility, lab)
    log = push_log(client, lab, job)
    secret_metrics = {"accuracy": 0.123456}
    made = client.post("/api/v1/evaluations", json=body(lab, job, log, metrics=secret_metrics),
                       headers=job.token)  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["level"] == 2

    # On the record: the job in clear, everything else only as commitments.
    [entry] = recorded(facility)
    assert entry["data"]["job"] == f"job/{job.id}"
    assert all(set(v) == {"commitment"} for k, v in entry["data"].items() if k != "job")
    raw = json.dumps(entry)
    assert ROOT not in raw and lab.model not in raw and "0.123456" not in raw

    # The public and an outsider see nothing of it, anywhere.
    model_page = lab.model.replace("@", "/versions/")
    for headers in ({}, lab.project.outsider_auth):
        assert client.get("/api/v1/evaluations", headers=headers).json()["items"] == []
        listed = client.get("/api/v1/evaluations", params={"model": lab.model}, headers=headers)
        assert listed.json()["items"] == []
        assert client.get(f"/api/v1/leaderboards/{TASK}", headers=headers).json() == {
            "task": TASK, "metric": None, "standings": []}  # fmt: skip
        assert client.get("/api/v1/leaderboards", headers=headers).json() == []
    for page in ("/leaderboards", f"/leaderboards/{TASK}"):
        html = client.get(page).text
        assert lab.model not in html and "0.1235" not in html
    assert client.get(f"/artifacts/{model_page}").status_code == 404

    # The cleared PI sees it: the API, the leaderboard, the model's page.
    pi = lab.project.pi_auth
    assert client.get(f"/api/v1/leaderboards/{TASK}", headers=pi).json()["standings"][0][
        "score"] == 0.123456  # fmt: skip
    sign_in(client, pi["Authorization"].split()[1])
    page = client.get(f"/artifacts/{model_page}").text
    assert ROOT in page and log in page and "0.1235" in page


# Pages -----------------------------------------------------------------------------------------


def test_the_leaderboard_pages_and_the_model_page_show_the_scores(client, facility, lab, job):
    log = push_log(client, lab, job)
    made = client.post("/api/v1/evaluations", json=body(lab, job, log), headers=job.token)
    assert made.status_code == 201, made.text
    index = client.get("/leaderboards")
    assert index.status_code == 200 and f'href="/leaderboards/{TASK}"' in index.text
    assert 'href="/leaderboards" aria-current="page"' in index.text
    board = client.get(f"/leaderboards/{TASK}")
    assert board.status_code == 200
    assert "<svg" in board.text and "<script" not in board.text
    assert "accuracy on arith, best first" in board.text and "0.75" in board.text
    model = client.get(f"/artifacts/{lab.model.replace('@', '/versions/')}")
    assert model.status_code == 200
    assert 'id="evaluation-scores"' in model.text and ROOT in model.text
    assert f'href="/artifacts/{lab.logs}/versions/1"' in model.text
    assert "accuracy 0.75" in model.text and f'href="/leaderboards/{TASK}"' in model.text
    # A dataset's page has no scores section; an empty board says so.
    assert 'id="evaluations"' not in client.get(
        f"/artifacts/{lab.dataset.replace('@', '/versions/')}").text  # fmt: skip
    assert "No evaluations you may see" in client.get("/leaderboards/none-such").text
    assert client.get("/leaderboards/Bad%20Task").status_code == 400


# The ranking rule ------------------------------------------------------------------------------


def _out(id_: int, **metrics: float) -> EvaluationOut:
    return EvaluationOut(
        id=id_, job=id_, task=TASK, harness="inspect", model=f"models/a/m@{id_}",
        dataset="datasets/a/d@1", log=None, log_withheld=False, metrics=metrics, samples=1,
        sample_root=ROOT, level=1, project=None, created_at=datetime.now(UTC),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reported", "metric"),
    [
        ([{"accuracy": 1.0, "mean": 2.0}], "accuracy"),
        ([{"mean": 2.0}, {"score": 1.0}], "mean"),
        ([{"score": 1.0, "bleu": 3.0}], "score"),
        ([{"acc": 0.5, "acc_stderr": 0.1, "mean": 1.0}], "acc"),
        ([{"rouge": 1.0}, {"bleu": 3.0}], "bleu"),
        ([{"mean": 1.0}, {"accuracy": 0.1}], "accuracy"),
        ([], None),
    ],
)
def test_the_primary_metric_is_the_first_of_accuracy_acc_mean_score(reported, metric):
    assert primary_metric(reported) == metric


def test_rank_is_best_first_ties_to_the_earlier_and_unscored_last():
    standings = rank([_out(1, accuracy=0.5), _out(2, mean=0.9), _out(3, accuracy=0.8),
                      _out(4, accuracy=0.8)], "accuracy")  # fmt: skip
    assert [(s.rank, s.evaluation.id, s.score) for s in standings] == [
        (1, 3, 0.8), (2, 4, 0.8), (3, 1, 0.5), (None, 2, None)]  # fmt: skip
