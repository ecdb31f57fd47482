"""Finding 3 of issue 13, replayed: a CL-3 person's job read a CL-2 dataset with its token
(not a declared input) and published the content as a public CL-1 dataset.

The rules: a job's token reads nothing above the job's level; every read a job makes is
known to the facility; what a job publishes is at least as contained as everything it read,
declared or not, and names those reads in its lineage. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from commonlab.artifacts import service as artifacts
from commonlab.artifacts.models import JobRead, Repo, RepoKind, Version
from commonlab.artifacts.service import RepoRef
from commonlab.compute.service import certify_partition
from commonlab.identity import service as identity
from commonlab.policy.principal import motion_authority
from commonlab.record.models import Entry
from tests.artifacts.helpers import push
from tests.compute.helpers import Project, award_project
from tests.helpers import auth, person_with_token, problem

SECRET = b'{"text": "the controlled corpus, word for word"}\n'


@dataclass
class Lab:
    project: Project
    secret: str  # datasets/<ns>/secret: CL-2, the project's
    public: str  # datasets/<ns>/open-copy: CL-1, public


def _clear(client: Any, operator: dict[str, str], person_id: int, level: int, **extra: Any):
    _, officer = person_with_token(client, operator, name=f"Officer {person_id}-{level}",
                                   roles=["safety_officer"], scopes=("admin",))  # fmt: skip
    granted = client.post(
        f"/api/v1/people/{person_id}/clearances",
        json={"level": level, "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
              **extra},
        headers=officer,
    )  # fmt: skip
    assert granted.status_code == 201, granted.text


def _repo(client: Any, headers: dict[str, str], **body: Any) -> str:
    made = client.post("/api/v1/artifacts/repos", json=body, headers=headers)
    assert made.status_code == 201, made.text
    return f"{body['kind']}s/{made.json()['repo_id']}"


@pytest.fixture
def lab(client, operator, facility) -> Lab:
    """A project whose PI holds CL-3, a CL-2 dataset of the project's, a public CL-1 one,
    and a partition certified for CL-2 (as a passed certify_partition motion leaves it)."""
    project = award_project(client, operator)
    _clear(client, operator, project.pi["id"], 3)
    pi = project.pi_auth
    secret = _repo(client, pi, kind="dataset", name="secret", project=project.name,
                   visibility="project", level=2)  # fmt: skip
    assert push(client, pi, secret, {"train.jsonl": SECRET}).status_code == 201
    public = _repo(client, pi, kind="dataset", name="open-copy", project=project.name,
                   visibility="public", level=1)  # fmt: skip
    with facility.db.session() as db, db.begin():
        certify_partition(db, motion_authority(0), "local", 2)
    return Lab(project, secret, public)


def job_token(client: Any, facility: Any, project: Project, *, level: int) -> tuple[int, str]:
    """Submit a job of the PI at `level` (no declared inputs) and hand it its token exactly
    as the job controller does at handover (identity.job_token with the job's key)."""
    made = client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": project.name, "command": "true", "accelerator": "cpu",
              "accelerators": 1, "time_limit_minutes": 5, "level": level},
        headers=project.pi_auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    with facility.db.session() as db, db.begin():
        token = identity.job_token(
            db,
            project.pi["id"],
            job_key=f"job/{job_id}",
            project=project.name,
            level=level,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            key=b"k" * 32,
        )
    return job_id, token


def snapshot(facility: Any, job_id: int | None = None) -> dict[str, Any]:
    """What a refused read or publish must leave as it was."""
    with facility.db.session() as db:
        reads = select(JobRead.repo_id, JobRead.version_id)
        if job_id is not None:
            reads = reads.where(JobRead.job_id == job_id)
        return {
            "versions": db.execute(select(Version.id, Version.repo_id)).all(),
            "reads": db.execute(reads.order_by(JobRead.id)).all(),
            "entries": db.scalar(select(func.count()).select_from(Entry)),
        }


def missing_body(client: Any, ref: str) -> dict[str, Any]:
    """The body of the answer for a repository that truly does not exist (named as `ref`)."""
    kinds, ns, name = ref.split("/")
    body = problem(client.get(f"/api/v1/artifacts/{kinds}/{ns}/{name}-none"))
    return {**body, "detail": body["detail"].replace(f"{name}-none", name)}


def test_a_job_token_reads_nothing_above_the_job_level(client, facility, lab):
    """Rule (a): the CL-3 PI's CL-1 job cannot read the project's CL-2 dataset by any
    route; each answers as if it did not exist, and nothing is noted or recorded."""
    job_id, token = job_token(client, facility, lab.project, level=1)
    before = snapshot(facility)
    ns_name = lab.secret.removeprefix("datasets/")
    for url in (
        f"/api/v1/artifacts/{lab.secret}",
        f"/api/v1/artifacts/{lab.secret}/versions/1",
        f"/api/v1/artifacts/{lab.secret}/versions/1/files/train.jsonl",
        f"/api/v1/artifacts/{lab.secret}/versions/1/records?file=train.jsonl",
    ):
        refused = client.get(url, headers=auth(token))
        assert refused.status_code == 404, (url, refused.text)
        assert problem(refused) == missing_body(client, lab.secret), url
    for url in (
        f"/api/datasets/{ns_name}",
        f"/api/datasets/{ns_name}/tree/main",
        f"/datasets/{ns_name}/resolve/main/train.jsonl",
    ):
        refused = client.get(url, headers=auth(token))
        assert refused.status_code == 404 and SECRET not in refused.content, url
        assert refused.headers["x-error-code"] == "RepoNotFound"
    # The PI, acting themself, reads it: the job's level, not the person's, bounds the token.
    assert client.get(f"/api/v1/artifacts/{lab.secret}", headers=lab.project.pi_auth).is_success
    after = snapshot(facility)
    assert after["reads"] == before["reads"] and after["versions"] == before["versions"]
    assert snapshot(facility, job_id)["reads"] == []


READ_ROUTES = {
    "download": "/api/v1/artifacts/{repo}/versions/1/files/train.jsonl",
    "metadata": "/api/v1/artifacts/{repo}/versions/1",
    "records": "/api/v1/artifacts/{repo}/versions/1/records?file=train.jsonl",
    "record": "/api/v1/artifacts/{repo}/versions/1/records/0?file=train.jsonl",
    "hub-info": "/api/{repo}",
    "hub-tree": "/api/{repo}/tree/main",
    "hub-resolve": "/datasets/{ns_name}/resolve/main/train.jsonl",
    "hub-paths-info": "/api/{repo}/paths-info/main",
    "versions": "/api/v1/artifacts/{repo}/versions",
    "lineage": "/api/v1/artifacts/{repo}/versions/1/lineage",
    "prov": "/api/v1/artifacts/{repo}/versions/1/prov",
}


@pytest.mark.parametrize("route", sorted(READ_ROUTES))
def test_every_read_a_job_makes_is_known_to_the_facility(client, facility, lab, route):
    job_id, token = job_token(client, facility, lab.project, level=2)
    url = READ_ROUTES[route].format(repo=lab.secret, ns_name=lab.secret.split("/", 1)[1])
    fetch = client.post if route == "hub-paths-info" else client.get
    got = fetch(url, headers=auth(token))
    assert got.status_code == 200, got.text
    with facility.db.session() as db:
        version_id = db.scalar(select(Version.id).order_by(Version.id).limit(1))
        reads = db.execute(select(JobRead.job_id, JobRead.version_id)).all()
    # A list of versions reads the repository, not one version of it.
    assert (job_id, None if route == "versions" else version_id) in reads
    # Read again: noted once.
    assert fetch(url, headers=auth(token)).status_code == 200
    again = snapshot(facility, job_id)["reads"]
    assert len(again) == len(set(again))


@pytest.mark.parametrize("publisher", ["job-token", "pi-naming-the-job"])
def test_a_job_cannot_publish_what_it_read_below_its_level(client, facility, lab, publisher):
    """Rule (c), the finding itself: the CL-2 job downloads the CL-2 dataset it never
    declared and publishes the bytes as a public CL-1 dataset, with its own token or by its
    PI naming it. Refused, naming the read that asks for CL-2; nothing is published."""
    job_id, token = job_token(client, facility, lab.project, level=2)
    stolen = client.get(
        f"/api/v1/artifacts/{lab.secret}/versions/1/files/train.jsonl", headers=auth(token)
    )
    assert stolen.status_code == 200 and stolen.content == SECRET
    headers, job = (
        (auth(token), None) if publisher == "job-token" else (lab.project.pi_auth, str(job_id))
    )
    before = snapshot(facility)
    refused = push(client, headers, lab.public, {"copy.jsonl": stolen.content},
                   **({"job": job} if job else {}))  # fmt: skip
    assert refused.status_code == 422, refused.text
    detail = problem(refused)["detail"]
    assert f"job {job_id} read {lab.secret}@1 (CL-2)" in detail and "CL-1" in detail, detail
    after = snapshot(facility)
    assert after["versions"] == before["versions"]
    assert client.get(f"/api/v1/artifacts/{lab.public}").json()["latest"] is None
    published = client.get("/api/v1/record/entries", params={"type": "artifacts:dataset:published"})
    assert all(lab.public.split("/")[-1] not in str(item) for item in published.json()["items"])


def test_a_job_token_cannot_claim_another_job(client, facility, lab):
    job_id, token = job_token(client, facility, lab.project, level=2)
    other = client.get(f"/api/v1/artifacts/{lab.secret}/versions/1", headers=auth(token))
    assert other.status_code == 200
    refused = push(client, auth(token), lab.public, {"x.txt": b"x"}, job="external-run-7")
    assert refused.status_code == 422 and f"job {job_id}" in problem(refused)["detail"]


def test_what_a_job_publishes_at_its_reads_level_names_them_in_its_lineage(client, facility, lab):
    """Publishing at the level of what was read is allowed, and the undeclared read enters
    the lineage by itself ('read', by the job)."""
    job_id, token = job_token(client, facility, lab.project, level=2)
    assert client.get(
        f"/api/v1/artifacts/{lab.secret}/versions/1/files/train.jsonl", headers=auth(token)
    ).is_success
    derived = _repo(client, lab.project.pi_auth, kind="dataset", name="derived",
                    project=lab.project.name, visibility="project", level=2)  # fmt: skip
    made = push(client, auth(token), derived, {"clean.jsonl": b'{"text": "cleaned"}\n'})
    assert made.status_code == 201, made.text
    assert made.json()["job"] == str(job_id)
    graph = client.get(
        f"/api/v1/artifacts/{derived}/versions/1/lineage", headers=lab.project.pi_auth
    ).json()
    assert {"from": f"{derived}@1", "to": f"{lab.secret}@1", "relation": "read",
            "job": str(job_id)} in graph["edges"]  # fmt: skip


def test_read_cannot_be_declared_by_hand(client, facility, lab):
    refused = push(client, lab.project.pi_auth, lab.public, {"x.txt": b"x"},
                   lineage=[{"ref": f"{lab.secret}@1", "relation": "read"}])  # fmt: skip
    assert refused.status_code == 422 and "facility saw" in refused.text


AUDIENCE_CASES = {
    # read from a repository shown to ..., published into one shown to ...
    "project-to-public": ({"project": True, "visibility": "project"}, "open-copy", "public"),
    "private-to-public": ({"visibility": "private"}, "open-copy", "public"),
    "private-to-project": ({"visibility": "private"}, "members", "visible to project"),
}


@pytest.mark.parametrize("publisher", ["job-token", "pi-naming-the-job"])
@pytest.mark.parametrize("case", sorted(AUDIENCE_CASES))
def test_a_job_cannot_publish_what_it_read_to_a_wider_audience(
    client, facility, lab, case, publisher
):
    """Write-down of visibility: a CL-1 job reads a CL-1 dataset that only the project (or
    only its owner) may see and publishes it somewhere more visible, with its own token or
    by its PI naming it. The levels agree; the audience does not. Refused, naming the read;
    nothing published, nothing recorded."""
    source_body, target_name, target_says = AUDIENCE_CASES[case]
    pi, project = lab.project.pi_auth, lab.project.name
    if source_body.pop("project", False):
        source_body["project"] = project
    source = _repo(client, pi, kind="dataset", name=f"held-{case}", level=1, **source_body)
    assert push(client, pi, source, {"train.jsonl": SECRET}).status_code == 201
    if target_name == "open-copy":
        target = lab.public
    else:
        target = _repo(client, pi, kind="dataset", name=target_name, project=project,
                       visibility="project", level=1)  # fmt: skip
    job_id, token = job_token(client, facility, lab.project, level=1)
    stolen = client.get(
        f"/api/v1/artifacts/{source}/versions/1/files/train.jsonl", headers=auth(token)
    )
    assert stolen.status_code == 200 and stolen.content == SECRET
    headers, job = (auth(token), None) if publisher == "job-token" else (pi, str(job_id))
    before = snapshot(facility)
    refused = push(client, headers, target, {"copy.jsonl": stolen.content},
                   **({"job": job} if job else {}))  # fmt: skip
    assert refused.status_code == 422, refused.text
    detail = problem(refused)["detail"]
    assert f"job {job_id} read {source}@1 (" in detail and target_says in detail, detail
    assert snapshot(facility) == before
    assert client.get(f"/api/v1/artifacts/{target}", headers=pi).json()["latest"] is None


def test_a_job_publishes_what_it_read_to_an_audience_no_wider(client, facility, lab):
    """What the project showed the job may go to the project again, or to its PI alone."""
    pi, project = lab.project.pi_auth, lab.project.name
    source = _repo(client, pi, kind="dataset", name="members-only", project=project,
                   visibility="project", level=1)  # fmt: skip
    assert push(client, pi, source, {"train.jsonl": SECRET}).status_code == 201
    same = _repo(client, pi, kind="dataset", name="same", project=project,
                 visibility="project", level=1)  # fmt: skip
    mine = _repo(client, pi, kind="dataset", name="mine", visibility="private", level=1)
    _, token = job_token(client, facility, lab.project, level=1)
    assert client.get(f"/api/v1/artifacts/{source}/versions/1", headers=auth(token)).is_success
    for target in (same, mine):
        made = push(client, auth(token), target, {"clean.jsonl": b'{"text": "cleaned"}\n'})
        assert made.status_code == 201, made.text


def repository_reads(facility: Any, job_id: int) -> list[Any]:
    with facility.db.session() as db:
        only_repo = (JobRead.job_id == job_id, JobRead.version_id.is_(None))
        return db.execute(select(JobRead.repo_id).where(*only_repo)).all()


@pytest.mark.parametrize("round_", range(3))  # each race is a fresh chance to interleave
def test_concurrent_reads_of_a_repository_by_one_job_are_noted_once(client, facility, lab, round_):
    """Many reads of the repository alone (its list of versions) by one job, all at once,
    each in a session of its own: one row, however they interleave."""
    job_id, token = job_token(client, facility, lab.project, level=2)
    _, ns, name = lab.secret.split("/")
    readers = 8
    barrier = threading.Barrier(readers)
    failures: list[BaseException] = []

    def read() -> None:
        with facility.db.session() as db:
            principal = identity.authenticate(db, token)
            barrier.wait()
            try:
                artifacts.list_versions(db, principal, RepoRef(RepoKind.DATASET, ns, name))
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(repository_reads(facility, job_id)) == 1


def test_the_database_itself_refuses_a_second_repository_read_of_a_job(client, facility, lab):
    """Whatever code writes it: NULL version ids are not distinct to this rule."""
    job_id, token = job_token(client, facility, lab.project, level=2)
    assert client.get(f"/api/v1/artifacts/{lab.secret}/versions", headers=auth(token)).is_success
    [(repo_id,)] = repository_reads(facility, job_id)
    with facility.db.session() as db, pytest.raises(IntegrityError), db.begin():
        db.add(JobRead(job_id=job_id, repo_id=repo_id, version_id=None))
    assert repository_reads(facility, job_id) == [(repo_id,)]
    # Another repository, or a version of this one, is another row.
    with facility.db.session() as db, db.begin():
        other = db.scalar(select(Repo.id).where(Repo.id != repo_id).limit(1))
        db.add(JobRead(job_id=job_id, repo_id=other, version_id=None))
        version = db.scalar(select(Version.id).where(Version.repo_id == repo_id))
        db.add(JobRead(job_id=job_id, repo_id=repo_id, version_id=version))
