"""Finding 7 of issue 13, replayed: lists and search showed the names and descriptions of
repositories in compartments the viewer lacks, and a CL-3 version's card body and its
records' sources came back as metadata.

The rules: lists, search and metadata are filtered by the same decision as a read; what one
may not read answers exactly as a missing repository does (404, the same body), whichever
route is asked (REST, the Hub-compatible API, the portal); what was read out of files at
publish goes with the files' content. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from commonlab.artifacts.models import Repo
from commonlab.compute.models import Job
from commonlab.compute.service import WITHHELD_INPUT, certify_partition
from commonlab.policy.principal import motion_authority
from commonlab.record.models import Entry
from tests.artifacts.helpers import digests, push
from tests.cli.test_cli import run
from tests.compute.helpers import Project, award_project
from tests.helpers import auth, person_with_token, problem
from tests.portal.helpers import sign_in
from tests.security import test_ledger
from tests.security.test_write_down import _clear, _repo, job_token, snapshot

live = test_ledger.live  # the test's own app, served on a socket (for the CLI)

NAME, WORDS = "pathogen-notes", "gain-of-function protocol"
CARD = b"---\nlicense: cc-by-4.0\n---\n# Notes\nSECRET-CARD-BODY: how it was done\n"
RECORDS = b'{"text": "step one", "source": "secret-source-xyz", "license": "cc-by-4.0"}\n'


@dataclass
class Hidden:
    project: Project
    repo: str  # datasets/<project>/pathogen-notes: CL-2, compartment bio
    viewers: dict[str, dict[str, str]]


@pytest.fixture
def hidden(client, operator, facility) -> Hidden:
    """A CL-2 dataset in compartment 'bio', and people who may not read it: the public, a
    project member cleared CL-2 without 'bio', an outsider, an operator without clearance,
    and the CL-1 job of its own PI (who holds CL-3 with 'bio')."""
    project = award_project(client, operator)
    _clear(client, operator, project.pi["id"], 3, compartments=["bio"])
    member = client.get("/api/v1/me", headers=project.member_auth).json()["person"]
    _clear(client, operator, member["id"], 2)
    repo = _repo(client, project.pi_auth, kind="dataset", name=NAME, project=project.name,
                 visibility="project", level=2, compartments=["bio"],
                 description=WORDS)  # fmt: skip
    made = push(client, project.pi_auth, repo, {"README.md": CARD, "train.jsonl": RECORDS})
    assert made.status_code == 201, made.text
    _, token = job_token(client, facility, project, level=1)
    viewers = {
        "public": {},
        "member-without-compartment": project.member_auth,
        "outsider": project.outsider_auth,
        "operator-without-clearance": operator,
        "job-below-the-level": auth(token),
    }
    return Hidden(project, repo, viewers)


VIEWERS = [
    "public",
    "member-without-compartment",
    "outsider",
    "operator-without-clearance",
    "job-below-the-level",
]

LISTS = [
    "/api/v1/artifacts/repos",
    "/api/v1/artifacts/repos?kind=dataset",
    "/api/v1/artifacts/repos?q=pathogen",
    "/api/v1/artifacts/repos?q=gain-of-function",
    "/api/v1/artifacts/repos?limit=1",
]

# Every route that reads a repository, a version or what is in it; {r} is datasets/ns/name,
# {n} is ns/name.
READS = [
    ("GET", "/api/v1/artifacts/{r}"),
    ("GET", "/api/v1/artifacts/{r}/versions"),
    ("GET", "/api/v1/artifacts/{r}/versions/1"),
    ("GET", "/api/v1/artifacts/{r}/versions/main"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/signature"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/croissant"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/files/train.jsonl"),
    ("HEAD", "/api/v1/artifacts/{r}/versions/1/files/train.jsonl"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/lineage"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/prov"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/record-files"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/records?file=train.jsonl"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/records/0?file=train.jsonl"),
    ("GET", "/api/v1/artifacts/{r}/versions/1/records/0/media?file=train.jsonl&member=text"),
    ("POST", "/api/v1/artifacts/{r}/uploads"),
    ("POST", "/api/v1/artifacts/{r}/versions"),
    ("PUT", "/api/v1/artifacts/{r}/tags/stable"),
]
HUB_READS = [
    ("GET", "/api/datasets/{n}"),
    ("GET", "/api/datasets/{n}/revision/main"),
    ("GET", "/api/datasets/{n}/tree/main"),
    ("POST", "/api/datasets/{n}/paths-info/main"),
    ("GET", "/datasets/{n}/resolve/main/train.jsonl"),
    ("HEAD", "/datasets/{n}/resolve/main/train.jsonl"),
]
PORTAL_READS = [
    "/artifacts/{r}",
    "/artifacts/{r}/versions/1",
    "/artifacts/{r}/versions/1/records?file=train.jsonl",
    "/artifacts/{r}/versions/1/records/0?file=train.jsonl",
]
BODIES = {
    "/uploads": digests(b"x"),
    "/versions": {"files": [{"path": "x", "blake3": digests(b"x")["blake3"]}]},
    "/tags/stable": {"version": 1},
}


def _ask(client: Any, method: str, url: str, headers: dict[str, str]) -> Any:
    body = next((b for end, b in BODIES.items() if url.endswith(end)), None)
    return client.request(method, url, headers=headers, json=body)


def _urls(template: str, repo: str) -> tuple[str, str]:
    """The URL for the hidden repository, and the same for one that does not exist."""
    kinds, ns, name = repo.split("/")
    fill = {"r": repo, "n": f"{ns}/{name}"}
    missing = {"r": f"{kinds}/{ns}/{name}-none", "n": f"{ns}/{name}-none"}
    return template.format(**fill), template.format(**missing)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_what_one_may_not_read_is_neither_listed_nor_found(client, facility, hidden, viewer):
    headers = hidden.viewers[viewer]
    before = snapshot(facility)
    for url in LISTS:
        listed = client.get(url, headers=headers)
        assert listed.status_code == 200, (url, listed.text)
        assert NAME not in listed.text and WORDS not in listed.text, (viewer, url)
    for method, template in READS:
        url, missing_url = _urls(template, hidden.repo)
        got, missing = (
            _ask(client, method, url, headers),
            _ask(client, method, missing_url, headers),
        )
        assert got.status_code == missing.status_code == 404, (viewer, method, url, got.text)
        if method != "HEAD":
            assert problem(got) == _renamed(problem(missing)), (viewer, method, url)
    for method, template in HUB_READS:
        url, missing_url = _urls(template, hidden.repo)
        got, missing = (
            _ask(client, method, url, headers),
            _ask(client, method, missing_url, headers),
        )
        assert got.status_code == missing.status_code == 404, (viewer, method, url, got.text)
        assert got.headers["x-error-code"] == missing.headers["x-error-code"] == "RepoNotFound"
        assert got.content.replace(b"-none", b"") == missing.content.replace(b"-none", b"")
    after = snapshot(facility)
    assert after == before, "a refused read changed rows, the job's reads or the record"


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _renamed(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v.replace(f"{NAME}-none", NAME) if isinstance(v, str) else v
            for k, v in body.items()}  # fmt: skip


@pytest.mark.parametrize("viewer", ["public", "member-without-compartment"])
def test_the_portal_neither_lists_nor_shows_it(client, hidden, viewer):
    if viewer != "public":
        sign_in(client, _token(hidden.viewers[viewer]))
    for url in ("/artifacts", "/artifacts?q=pathogen", "/artifacts?kind=dataset"):
        page = client.get(url)
        assert page.status_code == 200 and NAME not in page.text and WORDS not in page.text
    for template in PORTAL_READS:
        url, missing_url = _urls(template, hidden.repo)
        got, missing = client.get(url), client.get(missing_url)
        assert got.status_code == missing.status_code == 404, (viewer, url)
        assert got.text == missing.text.replace(f"{NAME}-none", NAME), (viewer, url)


def test_those_who_may_read_it_still_find_it(client, hidden):
    """The control: the PI (CL-3, compartment bio) lists, searches and opens it."""
    pi = hidden.project.pi_auth
    for url in LISTS[:4]:
        assert NAME in client.get(url, headers=pi).text, url
    assert client.get(f"/api/v1/artifacts/{hidden.repo}", headers=pi).status_code == 200


def test_lists_page_through_what_is_hidden(client, operator, hidden):
    """Many hidden repositories before a visible one: a page still fills, and the cursor
    walks to the end without naming any hidden one."""
    pi = hidden.project.pi_auth
    for i in range(3):
        _repo(client, pi, kind="dataset", name=f"{NAME}-{i}", project=hidden.project.name,
              visibility="project", level=2, compartments=["bio"])  # fmt: skip
    _, someone = person_with_token(client, operator, name="Someone")
    _repo(client, someone, kind="dataset", name="open-a", visibility="public")
    _repo(client, someone, kind="dataset", name="open-b", visibility="public")
    seen, after = [], None
    while True:
        params = {"limit": 1, **({"after": after} if after else {})}
        page = client.get("/api/v1/artifacts/repos", params=params).json()
        seen += [item["name"] for item in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ["open-a", "open-b"]


def test_what_was_read_out_of_contained_files_goes_with_their_content(client, operator, hidden):
    """A CL-3 version's card body, records' sources and Croissant schema are its content:
    the cleared PI sees its manifest, not them; a CL-1 public one shows them to anyone."""
    pi = hidden.project.pi_auth
    repo = _repo(client, pi, kind="dataset", name="frontier", project=hidden.project.name,
                 visibility="project", level=3, compartments=["bio"])  # fmt: skip
    assert push(client, pi, repo, {"README.md": CARD, "train.jsonl": RECORDS}).status_code == 201
    meta = client.get(f"/api/v1/artifacts/{repo}/versions/1", headers=pi)
    assert meta.status_code == 200
    body = meta.json()
    assert body["card"] is None and body["withheld"]
    assert {f["path"] for f in body["files"]} == {"README.md", "train.jsonl"}
    assert all(f["meta"] == {} for f in body["files"])
    base = f"/api/v1/artifacts/{repo}/versions/1"
    for url in (base, f"{base}/lineage", f"{base}/prov", f"/api/{repo}"):
        got = client.get(url, headers=pi)
        assert got.status_code == 200, url
        assert "SECRET-CARD-BODY" not in got.text and "secret-source-xyz" not in got.text, url
    croissant = client.get(f"/api/v1/artifacts/{repo}/versions/1/croissant", headers=pi)
    assert croissant.status_code == 403 and "never served" in problem(croissant)["detail"]
    sign_in(client, _token(pi))
    page = client.get(f"/artifacts/{repo}/versions/1")
    assert page.status_code == 200
    assert "SECRET-CARD-BODY" not in page.text and "secret-source-xyz" not in page.text
    client.cookies.clear()
    # The same files, open: the card and what the records say are shown.
    _, someone = person_with_token(client, operator, name="Someone Open")
    open_repo = _repo(client, someone, kind="dataset", name="open-notes", visibility="public")
    assert push(client, someone, open_repo, {"README.md": CARD, "train.jsonl": RECORDS}).is_success
    shown = client.get(f"/api/v1/artifacts/{open_repo}/versions/1").json()
    assert "SECRET-CARD-BODY" in shown["card"]["body"] and shown["withheld"] is None
    lineage = client.get(f"/api/v1/artifacts/{open_repo}/versions/1/lineage").text
    assert "secret-source-xyz" in lineage


@pytest.fixture
def job_reading_it(client, facility, hidden) -> tuple[int, str]:
    """A CL-2 job of the PI's that declared the hidden dataset and a public one as inputs
    (cancelled: ended, so that it may be resubmitted)."""
    pi, project = hidden.project.pi_auth, hidden.project.name
    public = _repo(client, pi, kind="dataset", name="open-words", project=project,
                   visibility="public", level=1)  # fmt: skip
    assert push(client, pi, public, {"a.txt": b"open"}).status_code == 201
    with facility.db.session() as db, db.begin():
        certify_partition(db, motion_authority(0), "local", 2)
    made = client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": project, "command": "true", "accelerator": "cpu",
              "accelerators": 1, "time_limit_minutes": 5, "level": 2,
              "inputs": [f"{hidden.repo}@1", f"{public}@1"]},
        headers=pi,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    # Ended, so that it may be resubmitted.
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=pi).status_code == 200
    return job_id, f"{public}@1"


def test_a_jobs_inputs_are_named_only_to_who_may_read_them(
    client, facility, hidden, job_reading_it, live, capsys, monkeypatch
):
    """A CL-2 job's page is for its project's members cleared CL-2, but the names of its
    inputs are the artifacts': a member without the input's compartment sees it withheld,
    by the API (one job, the list), the CLI and the portal; and may not resubmit it (the
    refusal names nothing)."""
    job_id, public = job_reading_it
    headers = hidden.viewers["member-without-compartment"]
    expected = [WITHHELD_INPUT, public]
    one = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert one.status_code == 200 and one.json()["inputs"] == expected, one.text
    listed = client.get("/api/v1/jobs", params={"project": hidden.project.name}, headers=headers)
    assert [j["inputs"] for j in listed.json()["items"] if j["id"] == job_id] == [expected]
    monkeypatch.setenv("COMMONLAB_TOKEN", headers["Authorization"].split()[1])
    code, out, err = run(capsys, "job", "show", str(job_id), "--json", "--url", live.url)
    assert code == 0 and json.loads(out)["inputs"] == expected, err
    sign_in(client, _token(headers))
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200 and NAME not in page.text
    before = snapshot(facility), jobs_and_entries(facility)
    refused = client.post(f"/api/v1/jobs/{job_id}/resubmit", headers=headers)
    assert refused.status_code == 403 and NAME not in refused.text, refused.text
    assert (snapshot(facility), jobs_and_entries(facility)) == before
    # Its PI, who may read both, sees both.
    mine = client.get(f"/api/v1/jobs/{job_id}", headers=hidden.project.pi_auth).json()
    assert mine["inputs"] == [f"{hidden.repo}@1", public]


def jobs_and_entries(facility: Any) -> tuple[int, int]:
    with facility.db.session() as db:
        jobs = db.scalar(select(func.count()).select_from(Job))
        return jobs, db.scalar(select(func.count()).select_from(Entry))


def repos_and_entries(facility: Any) -> tuple[int, int]:
    with facility.db.session() as db:
        repos = db.scalar(select(func.count()).select_from(Repo))
        return repos, db.scalar(select(func.count()).select_from(Entry))


def creating(client: Any, headers: dict[str, str], name: str, **body: Any) -> Any:
    return client.post(
        "/api/v1/artifacts/repos", json={"kind": "dataset", "name": name, **body}, headers=headers
    )


@pytest.mark.parametrize("name", [NAME, NAME.upper(), "a-free-name"])
def test_creating_a_repository_tells_no_one_a_hidden_name_is_taken(client, facility, hidden, name):
    """A project member without the compartment tries to create the hidden dataset's name in
    the project (the probe that answered 409 'already exists'). Whatever name is tried, the
    answer is the same refusal, naming nothing it may not know; nothing is created or
    recorded."""
    member = hidden.viewers["member-without-compartment"]
    before = repos_and_entries(facility)
    refused = creating(client, member, name, project=hidden.project.name)
    assert refused.status_code == 403, refused.text
    free = creating(client, member, "another-free-name", project=hidden.project.name)
    assert problem(refused) == problem(free)
    assert "already exists" not in refused.text and NAME not in refused.text.lower()
    assert repos_and_entries(facility) == before


def test_a_jobs_token_learns_no_hidden_name_of_its_owner(client, facility, hidden):
    """The PI's CL-1 job (untrusted code) probes the PI's own namespace, which holds a CL-2
    private dataset: the same refusal whatever the name."""
    pi = hidden.project.pi_auth
    _repo(client, pi, kind="dataset", name="my-notes", visibility="private", level=2)
    token = hidden.viewers["job-below-the-level"]
    before = repos_and_entries(facility)
    answers = [problem(creating(client, token, name, visibility="private"))
               for name in ("my-notes", "MY-NOTES", "free-name")]  # fmt: skip
    assert answers[0]["status"] == 403 and answers[0] == answers[1] == answers[2], answers
    assert repos_and_entries(facility) == before


def test_who_may_read_a_namespace_still_creates_in_it_and_clashes_openly(client, hidden):
    """The PI reads all the project holds: creates there, and a clash is a plain 409. The
    member still creates models there (no hidden model), and datasets in their own space."""
    pi, member, project = hidden.project.pi_auth, hidden.project.member_auth, hidden.project.name
    assert creating(client, pi, "more-notes", project=project).status_code == 201
    clash = creating(client, pi, NAME, project=project)
    assert clash.status_code == 409 and "already exists" in clash.text
    model = {"kind": "model", "name": "mine", "project": project}
    assert client.post("/api/v1/artifacts/repos", json=model, headers=member).status_code == 201
    assert creating(client, member, NAME, visibility="private").status_code == 201
