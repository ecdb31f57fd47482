"""Issue 13, finding 5, replayed: private names never enter the public record.

Through the real API (on SQLite and PostgreSQL) a project makes things that are not public,
each with a name no one could guess: a CL-2 project dataset, CL-1 private and project
datasets, a CL-3 dataset, a clearance's compartment, a person's e-mail, a job's command and
environment, a tag, a file path, a proposal's text, a review, a reply, a conflict. Then every
use case that writes entries about them runs: admission of a job naming them as inputs, a
public model published with lineage to them, a project model made by that job, tags,
downloads and reads, proposals, reviews, conflicts, clearances, a certification motion, a
cancel. Every entry's exact bytes are scanned: none of the names appears; a public dataset's
name does (the scan sees lineage and inputs in clear). The lineage the public sees (API,
PROV, portal) withholds the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from commonlab.record.models import Entry
from tests.artifacts.helpers import push, safetensors_bytes
from tests.compute.helpers import Project, award_project
from tests.governance.test_api import close_now, table, vote
from tests.helpers import auth, found_council, person_with_token, sequence_now, token_for

COUNCIL = [
    {"code": "IT", "name": "Italy", "contribution": "25"},
    {"code": "FR", "name": "France", "contribution": "25"},
    {"code": "DE", "name": "Germany", "contribution": "25"},
    {"code": "ES", "name": "Spain", "contribution": "25"},
]

# What is not public, named so that no entry could contain it by chance.
SAUCE = "secret-sauce-xyz"  # CL-2 project dataset
BLEND = "project-blend-jjj"  # CL-1, visible to the project only
PRIVATE = "private-corpus-qqq"  # CL-1, visible to its owner only
CONTAINED = "contained-pathogen-kkk"  # CL-3
PROJECT_MODEL = "secret-model-mmm"  # CL-2 model the job made (private to the PI)
COMPARTMENT = "omega-programme-qqq"
NAME = "Carol Zzyzx-Hidden"
EMAILS = ("carol.secret@example.org", "carol.moved-secret@example.org")
COMMAND_SECRET = "SECRET_TOKEN_abc123xyz"
ENV_SECRET = "envsecret-987zyx"
TAG = "secret-tag-vvv"
PATH = "secret-path-ppp.txt"
PROPOSAL_TEXT = ("Proposal Secret Title ttt", "abstract-secret-uuu")
REVIEW = "review-comment-secret-rrr"
REPLY = "reply-secret-www"
CONFLICT = "conflict-reason-secret-sss"
SECRETS = (
    SAUCE, BLEND, PRIVATE, CONTAINED, PROJECT_MODEL, COMPARTMENT, NAME, *EMAILS,
    COMMAND_SECRET, ENV_SECRET, TAG, PATH, *PROPOSAL_TEXT, REVIEW, REPLY, CONFLICT,
)  # fmt: skip
# Public, and so named in clear: the control that the scan reads lineage and inputs.
OPEN = "open-corpus-public"


@dataclass
class Lab:
    project: Project
    public_model: str
    open_data: str


def _repo(client, headers, name, *, kind="dataset", **fields) -> str:
    made = client.post(
        "/api/v1/artifacts/repos", json={"kind": kind, "name": name, **fields}, headers=headers
    )
    assert made.status_code == 201, made.text
    return f"{kind}s/{made.json()['repo_id']}"


def _pushed(client, headers, repo, files, **fields) -> str:
    made = push(client, headers, repo, files, **fields)
    assert made.status_code == 201, made.text
    return f"{repo}@{made.json()['number']}"


def _ok(response, status=(200, 201)):
    assert response.status_code in status, response.text
    return response.json()


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.fixture
def lab(client, operator, facility) -> Lab:
    council = {c: auth(t) for c, t in found_council(client, operator, COUNCIL).items()}
    proj = award_project(client, operator, found=False)
    pi = proj.pi_auth

    # The council certifies the local partition for CL-2 work (so a CL-2 job is admitted).
    motion = _ok(
        table(client, council["IT"], "certify_partition", {"partition": "local", "level": 2})
    )
    for code in council:
        _ok(vote(client, council[code], motion["id"], "yes"))
    close_now(facility, motion["id"])

    # People: contacts, a compartment, clearances for CL-2 (the PI) and CL-3.
    officer_row, _ = person_with_token(client, operator, "Safety Officer", ["safety_officer"])
    officer = auth(token_for(client, operator, officer_row["id"], scopes=("admin",)))
    carol = _ok(client.post(
        "/api/v1/people", json={"name": NAME, "email": EMAILS[0], "roles": ["researcher"]},
        headers=operator,
    ))  # fmt: skip
    _ok(client.patch(f"/api/v1/people/{carol['id']}", json={"email": EMAILS[1]}, headers=operator))
    carol_h = auth(token_for(client, operator, carol["id"]))
    for person_id, level in ((proj.pi["id"], 2), (carol["id"], 3)):
        _ok(client.post(
            f"/api/v1/people/{person_id}/clearances",
            json={"level": level, "compartments": [COMPARTMENT], "expires_at": _in_days(30)},
            headers=officer,
        ))  # fmt: skip

    # Data: public, private, project-only, CL-2 project, CL-3.
    line = b'{"text": "habari"}\n'
    open_data = _pushed(client, pi, _repo(client, pi, OPEN, visibility="public"), {"a.jsonl": line})
    private = _pushed(client, pi, _repo(client, pi, PRIVATE, visibility="private"),
                      {"a.jsonl": line})  # fmt: skip
    blend = _pushed(client, pi, _repo(client, pi, BLEND, project=proj.name, visibility="project"),
                    {"a.jsonl": line})  # fmt: skip
    sauce_repo = _repo(client, pi, SAUCE, project=proj.name, visibility="project", level=2)
    sauce = _pushed(client, pi, sauce_repo, {PATH: b"the recipe"})
    contained_repo = _repo(
        client, carol_h, CONTAINED, visibility="private", level=3, compartments=[COMPARTMENT]
    )
    _pushed(client, carol_h, contained_repo, {PATH: b"contained"})

    # Tags, reads and downloads, a refused one among them.
    _ok(client.put(f"/api/v1/artifacts/{sauce_repo}/tags/{TAG}", json={"version": 1}, headers=pi))
    _ok(client.get(f"/api/v1/artifacts/{sauce_repo}/versions/{TAG}", headers=pi))
    got = client.get(f"/api/v1/artifacts/{sauce_repo}/versions/1/files/{PATH}", headers=pi)
    assert got.status_code == 200 and got.content == b"the recipe"
    refused = client.get(
        f"/api/v1/artifacts/{contained_repo}/versions/1/files/{PATH}", headers=carol_h
    )
    assert refused.status_code == 403, refused.text

    # A CL-2 job that reads all of them (public, private, project-only, CL-2), cancelled.
    job = _ok(client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": proj.name, "command": f"train --key {COMMAND_SECRET}",
              "env": {"API_KEY": ENV_SECRET}, "accelerator": "cpu", "accelerators": 1,
              "time_limit_minutes": 5, "level": 2, "inputs": [open_data, private, blend, sauce]},
        headers=pi,
    ))  # fmt: skip
    # The PI's own, private: the job read the PI's private dataset, so what it makes may be
    # shown to no one more (no write-down of visibility; a project model is refused).
    project_model = _repo(client, pi, PROJECT_MODEL, kind="model", visibility="private", level=2)
    _pushed(client, pi, project_model, {"model.safetensors": safetensors_bytes()},
            job=str(job["id"]), lineage=[{"ref": sauce, "relation": "trained_on"}])  # fmt: skip
    _ok(client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=pi))

    # A public model trained on public, private and project-only data.
    public_model = _repo(client, pi, "open-model", kind="model", visibility="public")
    sources = [{"ref": ref, "relation": "trained_on"} for ref in (open_data, private, blend)]
    _pushed(client, pi, public_model, {"model.safetensors": safetensors_bytes()}, lineage=sources)

    # A proposal that is not decided: its text, a review, a reply and a conflict.
    calls = _ok(client.get("/api/v1/calls", headers=operator))["items"]
    reviewer, reviewer_h = person_with_token(client, operator, "Second Reviewer", ["reviewer"])
    _ok(client.post("/api/v1/conflicts", json={"person_id": carol["id"], "reason": CONFLICT},
                    headers=reviewer_h))  # fmt: skip
    proposal = _ok(client.post(
        "/api/v1/proposals",
        json={"call_id": calls[0]["id"], "institution_id": proj.pi["institution_id"],
              "title": PROPOSAL_TEXT[0], "abstract": PROPOSAL_TEXT[1],
              "requested": {"cpu": "1"}, "starts_on": date.today().isoformat(),
              "ends_on": (date.today() + timedelta(days=30)).isoformat(),
              "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"}},
        headers=pi,
    ))  # fmt: skip
    pid = proposal["id"]
    _ok(client.post(f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": reviewer["id"]},
                    headers=operator))  # fmt: skip
    review = {"scores": {"excellence": 3}, "comment": REVIEW}
    _ok(client.post(f"/api/v1/proposals/{pid}/review", json=review, headers=reviewer_h))
    _ok(client.post(f"/api/v1/proposals/{pid}/replies", json={"text": REPLY}, headers=pi))
    return Lab(project=proj, public_model=public_model, open_data=open_data)


def _entries(facility) -> list[tuple[str, str]]:
    """Every record entry's type and exact bytes, as the record stores and serves them."""
    with facility.db.session() as session:
        return [(t, body.decode()) for t, body in session.execute(select(Entry.type, Entry.body))]


def test_no_private_name_enters_the_record(lab, app, facility):
    sequence_now(app)
    entries = _entries(facility)
    leaks = [(secret, kind) for kind, body in entries for secret in SECRETS if secret in body]
    assert leaks == []
    # The use cases above all wrote their entries, so the scan covered them.
    kinds = {kind for kind, _ in entries}
    assert {
        "artifacts:repo:created", "artifacts:dataset:published", "artifacts:model:published",
        "artifacts:tag:created", "artifacts:file:downloaded", "artifacts:file:download-refused",
        "artifacts:version:read", "compute:job:admitted", "compute:job:cancelled",
        "allocation:ledger:reserved", "allocation:ledger:released",
        "allocation:proposal:submitted", "allocation:review:submitted",
        "allocation:reply:given", "allocation:conflict:declared", "identity:person:created",
        "identity:person:updated", "identity:clearance:granted",
        "compute:partition:certified",
    } <= kinds  # fmt: skip
    # What is public stays in clear, what is not is committed to, not dropped.
    published = [b for k, b in entries if k == "artifacts:model:published" and OPEN in b]
    assert len(published) == 1 and '"lineage_private":{"commitment":"sha256:' in published[0]
    [admitted] = [b for k, b in entries if k == "compute:job:admitted"]
    assert OPEN in admitted and '"inputs_private":{"commitment":"sha256:' in admitted


def test_lineage_withholds_what_the_viewer_may_not_read(lab, client):
    """The public model's lineage, as the public, an outsider and its PI see it."""
    base = f"/api/v1/artifacts/{lab.public_model}/versions/1"
    page_url = f"/artifacts/{lab.public_model}/versions/1"
    for viewer in ({}, lab.project.outsider_auth):
        graph = _ok(client.get(f"{base}/lineage", headers=viewer))
        withheld = {n["ref"] for n in graph["nodes"] if n.get("withheld")}
        assert len(withheld) == 2 and all(ref.startswith("artifact/") for ref in withheld)
        shown = {n["ref"] for n in graph["nodes"]}
        assert {e["to"] for e in graph["edges"]} == shown - {graph["root"]}
        assert all(e["job"] is None for e in graph["edges"] if e["to"] in withheld)
        prov = client.get(f"{base}/prov", headers=viewer)
        page = client.get(page_url, headers=viewer)
        for text in (str(graph), prov.text, page.text):
            assert OPEN in text
            assert [s for s in SECRETS if s in text] == []
    # Its PI may read every source, and sees them named.
    graph = _ok(client.get(f"{base}/lineage", headers=lab.project.pi_auth))
    assert not [n for n in graph["nodes"] if n.get("withheld")]
    assert PRIVATE in str(graph["edges"]) and BLEND in str(graph["edges"])
