"""Training-data search through the API, on SQLite and PostgreSQL: search with sources and
licences, containment (an index is read as its data is, and a private one is not even
named), tracing, membership, opt-outs and the deletion list, the signed filter, and bad
input refused with nothing changed.

The indexes here are built by the index workload's own code (`runtime.index.build`) and
published with the `indexes` relation, as the index job publishes them; tests/journeys walk
the same path through real jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commonlab.datasearch.content import content_sha256
from commonlab.datasearch.optout_filter import verify_filter
from commonlab.workloads.config import IndexConfig
from commonlab.workloads.runtime.index import build
from commonlab.workloads.runtime.paths import Paths
from tests.artifacts.helpers import push
from tests.helpers import person_with_token, problem, record_entries

PASSAGE = "the lighthouse keeper counted the gulls until the fog swallowed the harbour"
SECRET = "the vault code is written under the third stair of the old mill"
BOOK = "https://example.org/books/the-keeper/chapter-1"


def _records(special: dict[int, dict]) -> bytes:
    rows = [
        {
            "text": f"Story {n}: Amina walked to the market and bought {n} oranges.",
            "source": f"https://example.org/stories/{n}",
            "license": "CC-BY-4.0",
        }
        for n in range(24)
    ]
    for n, row in special.items():
        rows[n] = row
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


PUBLIC_DATA = _records(
    {
        5: {
            "text": f"At dusk {PASSAGE}, and then he slept.",
            "source": BOOK,
            "license": "CC-BY-4.0",
        },
        17: {"text": f"She remembered: {PASSAGE}.", "license": "CC-BY-4.0"},
        20: {"text": "A <script>alert(1)</script> story about the harbour.", "license": "CC0-1.0"},
    }
)
PRIVATE_DATA = _records({3: {"text": f"Note: {SECRET}.", "source": "internal-wiki"}})


def _index_files(
    tmp_path: Path, name: str, data: bytes, *, semantic: bool = False
) -> dict[str, bytes]:
    """The index job's output for a dataset holding `data/train.jsonl`."""
    root = tmp_path / name
    (root / "data" / "data").mkdir(parents=True)
    (root / "data" / "data" / "train.jsonl").write_bytes(data)
    paths = Paths(
        data=root / "data",
        model=None,
        out=root / "out",
        scratch=root / "scratch",
        metrics=root / "metrics.jsonl",
    )
    paths.out.mkdir()
    paths.scratch.mkdir()
    build(IndexConfig(vocab_size=300, min_frequency=1, semantic=semantic), paths)
    (paths.out / "results.json").unlink()
    return {p.name: p.read_bytes() for p in sorted(paths.out.iterdir())}


def _repo(client, headers, kind: str, name: str, **fields) -> str:
    response = client.post(
        "/api/v1/artifacts/repos", json={"kind": kind, "name": name, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return f"{kind}s/{response.json()['repo_id']}"


def _publish(client, headers, repo: str, files: dict[str, bytes], **fields) -> str:
    response = push(client, headers, repo, files, **fields)
    assert response.status_code == 201, response.text
    return f"{repo}@{response.json()['number']}"


class Lab:
    """A researcher's public dataset (two records quote the novel), its index and a model
    trained on it; and a private dataset with its index."""

    def __init__(self, client, operator, tmp_path: Path) -> None:
        self.client = client
        self.operator = operator
        _, self.owner = person_with_token(client, operator, "Amina Odhiambo")
        _, self.novelist = person_with_token(client, operator, "Nadia Haddad")
        h = self.owner
        self.dataset = _publish(
            client,
            h,
            _repo(client, h, "dataset", "stories"),
            {"data/train.jsonl": PUBLIC_DATA},
            licenses=["CC-BY-4.0"],
        )
        self.index = _publish(
            client,
            h,
            _repo(client, h, "dataset", "stories-index"),
            _index_files(tmp_path, "public", PUBLIC_DATA, semantic=True),
            lineage=[{"ref": self.dataset, "relation": "indexes"}],
        )
        self.model = _publish(
            client,
            h,
            _repo(client, h, "model", "stories-gpt2"),
            {"README.md": b"# a model\n"},
            lineage=[{"ref": self.dataset, "relation": "trained_on"}],
        )
        private = dict(visibility="private")
        self.private = _publish(
            client,
            h,
            _repo(client, h, "dataset", "notes", **private),
            {"data/train.jsonl": PRIVATE_DATA},
        )
        self.private_index = _publish(
            client,
            h,
            _repo(client, h, "dataset", "notes-index", **private),
            _index_files(tmp_path, "private", PRIVATE_DATA),
            lineage=[{"ref": self.private, "relation": "indexes"}],
        )

    def search(self, headers=None, **params):
        return self.client.get("/api/v1/search", params=params, headers=headers or {})


@pytest.fixture
def lab(client, operator, tmp_path) -> Lab:
    return Lab(client, operator, tmp_path)


# Search ----------------------------------------------------------------------------------------


def test_search_finds_the_passage_with_its_records_sources_and_licences(lab):
    found = lab.search(q=PASSAGE, dataset=lab.dataset, context=24).json()
    assert found["count"] == 2 and found["opted_out"] == 0
    assert found["datasets"] == [
        {"dataset": lab.dataset, "index": lab.index, "status": "searched", "job": None, "count": 2}
    ]
    by_record = {hit["record"]: hit for hit in found["hits"]}
    assert set(by_record) == {5, 17}
    assert by_record[5]["source"] == BOOK
    # Record 17 names no source: the version's declaration (none) applies, and says so.
    assert by_record[17]["source"] is None and by_record[17]["license"] == "CC-BY-4.0"
    assert by_record[5]["match"].strip() == PASSAGE
    assert "At dusk" in by_record[5]["before"] and "he slept" in by_record[5]["after"]
    ns, name = lab.dataset.split("/")[1:3]
    assert by_record[5]["url"] == (
        f"/artifacts/datasets/{ns}/{name.split('@')[0]}/versions/1/records/5?file=data/train.jsonl"
    )
    # A model's training data is searched through its lineage.
    assert lab.search(q=PASSAGE, model=lab.model).json()["count"] == 2
    # A passage at the start of a record and one inside it are both found.
    assert lab.search(q="Story 3: Amina walked", dataset=lab.dataset).json()["count"] == 1
    assert lab.search(q="walked to the market", dataset=lab.dataset).json()["count"] == 21


def test_a_private_index_is_searched_only_by_its_readers_and_never_named_to_others(lab):
    assert lab.search(lab.owner, q=SECRET, dataset=lab.private).json()["count"] == 1
    for who in ({}, lab.novelist):
        refused = lab.search(who, q=SECRET, dataset=lab.private)
        missing = lab.search(who, q=SECRET, dataset=lab.private.replace("notes", "nothing"))
        assert refused.status_code == missing.status_code == 404
        assert problem(refused)["detail"].replace("notes", "X") == problem(missing)[
            "detail"
        ].replace("nothing", "X")
    # A model trained on both: an outsider's search looks only in what they may read.
    h = lab.owner
    both = _publish(
        lab.client,
        h,
        _repo(lab.client, h, "model", "both"),
        {"README.md": b"#\n"},
        lineage=[
            {"ref": lab.dataset, "relation": "trained_on"},
            {"ref": lab.private, "relation": "trained_on"},
        ],
    )
    mine = lab.search(h, q=SECRET, model=both).json()
    theirs = lab.search(lab.novelist, q=SECRET, model=both).json()
    assert mine["count"] == 1 and len(mine["datasets"]) == 2
    assert theirs["count"] == 0 and [d["dataset"] for d in theirs["datasets"]] == [lab.dataset]
    assert "notes" not in json.dumps(theirs)


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"q": ""}, 422, "q"),
        ({"q": "   "}, 422, "empty"),
        ({"q": "x" * 2001}, 422, "q"),
        ({"q": "harbour"}, 422, "name a dataset version"),
        ({"q": "harbour", "dataset": "stories"}, 422, "dataset"),
        ({"q": "harbour", "dataset": "datasets/a/b@x"}, 422, "dataset"),
        ({"q": "harbour", "limit": 0}, 422, "limit"),
        ({"q": "harbour", "limit": 101}, 422, "limit"),
        ({"q": "harbour", "context": 201}, 422, "context"),
        ({"q": "harbour", "context": -1}, 422, "context"),
    ],
)
def test_bad_searches_get_a_clear_4xx(lab, params, status, says):
    if "dataset" not in params and "name a" not in says:
        params = {**params, "dataset": lab.dataset}
    response = lab.search(**params)
    assert response.status_code == status, response.text
    assert says in json.dumps(problem(response))


def test_searching_a_dataset_without_an_index_says_how_to_build_one(lab):
    h = lab.owner
    bare = _publish(
        lab.client, h, _repo(lab.client, h, "dataset", "bare"), {"data/train.jsonl": PUBLIC_DATA}
    )
    response = lab.search(q="harbour", dataset=bare)
    assert response.status_code == 404
    assert f"commonlab index build {bare}" in problem(response)["detail"]
    # A version that is not an index, linked as one, is refused, not served.
    fake = _publish(
        lab.client,
        h,
        _repo(lab.client, h, "dataset", "fake-index"),
        {"manifest.json": b"{}"},
        lineage=[{"ref": bare, "relation": "indexes"}],
    )
    response = lab.search(q="harbour", dataset=bare)
    assert response.status_code == 422 and "not a search index" in problem(response)["detail"]
    assert fake


def test_semantic_search_finds_records_by_meaning_and_honours_optouts(lab, client):
    def by_meaning(**params):
        response = client.get("/api/v1/search/semantic", params={"dataset": lab.dataset, **params})
        assert response.status_code == 200, response.text
        return response.json()

    found = by_meaning(q="a man who tends a lighthouse watches seabirds in the mist", limit=3)
    assert {hit["record"] for hit in found["hits"][:2]} == {5, 17}
    top = found["hits"][0]
    assert 0 < top["score"] <= 1 and "lighthouse" in top["text"]
    assert top["license"] == "CC-BY-4.0" and top["url"].endswith("file=data/train.jsonl")
    # The private index has no semantic part, and says so to its reader.
    mine = client.get(
        "/api/v1/search/semantic", params={"dataset": lab.private, "q": "code"}, headers=lab.owner
    ).json()
    assert mine["datasets"][0]["status"] == "no semantic index" and mine["hits"] == []
    client.post("/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist)
    after = by_meaning(q="a man who tends a lighthouse watches seabirds in the mist", limit=3)
    assert not {hit["record"] for hit in after["hits"]} & {5, 17} and after["opted_out"] == 2
    for bad in ({"q": ""}, {"q": "x" * 2001}, {"q": "sea", "limit": 0}):
        response = client.get("/api/v1/search/semantic", params={"dataset": lab.dataset, **bad})
        assert response.status_code == 422


# Tracing and membership -----------------------------------------------------------------------


def test_trace_finds_the_copied_span_of_a_models_output(lab):
    output = f"Once upon a time {PASSAGE} while nobody watched."
    response = lab.client.post("/api/v1/trace", json={"model": lab.model, "text": output})
    assert response.status_code == 200, response.text
    spans = response.json()["spans"]
    assert spans, "the copied passage is found"
    longest = max(spans, key=lambda s: s["end"] - s["start"])
    assert PASSAGE in longest["text"] or longest["text"] in f"{PASSAGE}"
    assert len(longest["text"]) >= len(PASSAGE) - 2
    assert output[longest["start"] : longest["end"]] == longest["text"]
    assert {r["record"] for r in longest["records"]} <= {5, 17}
    for bad in (
        {"model": lab.model, "text": ""},
        {"model": lab.model, "text": "x" * 20_001},
        {"model": "models/a/b", "text": "hi"},
        {"model": lab.model, "text": "hi", "min_tokens": 0},
    ):
        assert lab.client.post("/api/v1/trace", json=bad).status_code == 422


def test_membership_by_record_digest_by_file_and_by_passage(lab):
    record = content_sha256(f"At dusk {PASSAGE}, and then he slept.")
    answer = lab.client.get(
        "/api/v1/membership", params={"model": lab.model, "sha256": record}
    ).json()
    assert answer["member"] is True
    assert [(e["record"], e["how"]) for e in answer["evidence"]] == [(5, "record")]
    import hashlib

    file_digest = hashlib.sha256(PUBLIC_DATA).hexdigest()
    answer = lab.client.get(
        "/api/v1/membership", params={"dataset": lab.dataset, "sha256": file_digest}
    ).json()
    assert [(e["file"], e["how"]) for e in answer["evidence"]] == [("data/train.jsonl", "file")]
    answer = lab.client.get(
        "/api/v1/membership", params={"model": lab.model, "passage": "never written anywhere"}
    ).json()
    assert answer["member"] is False and answer["evidence"] == []
    both = lab.client.get(
        "/api/v1/membership", params={"model": lab.model, "sha256": record, "passage": "x"}
    )
    assert both.status_code == 422


# Opt-outs ---------------------------------------------------------------------------------------


def test_an_optout_hides_its_records_at_once_and_is_recorded_as_commitments(lab, client, app):
    response = client.post(
        "/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist
    )
    assert response.status_code == 201, response.text
    optout = response.json()
    assert optout["records"] == 2 and optout["value"] == PASSAGE
    assert {(m["record"]) for m in optout["matches"]} == {5, 17}
    assert [m["model"] for m in optout["models"]] == [lab.model]
    assert optout["models"][0]["after_optout"] is False

    found = lab.search(q=PASSAGE, dataset=lab.dataset).json()
    assert found["count"] == 0 and found["opted_out"] == 2 and found["hits"] == []
    # The same content in a record the opt-out did not name is dropped too (by digest).
    assert lab.search(q="At dusk", dataset=lab.dataset).json()["count"] == 0

    [entry] = record_entries(client, app, type="datasearch:optout:filed")
    body = entry
    assert body["data"]["records"] == 2 and body["data"]["datasets"] == [lab.dataset]
    assert body["data"]["models_trained_before"] == [lab.model]
    assert PASSAGE not in json.dumps(entry) and "Nadia" not in json.dumps(entry)

    # The public sees the opt-out, not what it names; the filer and operators do.
    public = client.get(f"/api/v1/optouts/{optout['id']}").json()
    assert public["value"] is None and public["records"] == 2
    assert (
        client.get(f"/api/v1/optouts/{optout['id']}", headers=lab.operator).json()["value"]
        == PASSAGE
    )

    # An operator rejects it (say the filer did not write the book): it stops being honoured.
    decided = client.post(
        f"/api/v1/optouts/{optout['id']}/decision",
        json={"decision": "rejected", "reason": "not the author"},
        headers=lab.operator,
    )
    assert decided.status_code == 200 and decided.json()["state"] == "rejected"
    assert lab.search(q=PASSAGE, dataset=lab.dataset).json()["count"] == 2
    again = client.post(
        f"/api/v1/optouts/{optout['id']}/decision",
        json={"decision": "upheld", "reason": "x"},
        headers=lab.operator,
    )
    assert again.status_code == 409


def test_an_optout_of_private_data_shows_its_matches_only_to_readers(lab, client, app):
    filed = client.post(
        "/api/v1/optouts", json={"kind": "passage", "value": SECRET}, headers=lab.novelist
    ).json()
    # The filer may not read the data: no match is shown or counted to them, nor in clear
    # on the record (else opt-outs would be an oracle for what contained data holds).
    assert filed["records"] == 0 and filed["matches"] == []
    assert "notes" not in json.dumps(filed)
    owner_view = client.get(f"/api/v1/optouts/{filed['id']}", headers=lab.owner).json()
    assert [m["dataset"] for m in owner_view["matches"]] == [lab.private]
    assert owner_view["records"] == 1
    [entry] = record_entries(client, app, type="datasearch:optout:filed")
    assert entry["data"]["records"] == 0 and entry["data"]["datasets"] == []
    assert lab.search(lab.owner, q=SECRET, dataset=lab.private).json()["count"] == 0


def test_an_optout_matching_nothing_is_recorded_and_says_so(lab, client, app):
    response = client.post(
        "/api/v1/optouts",
        json={"kind": "url", "value": "https://nowhere.example/*"},
        headers=lab.novelist,
    )
    assert response.status_code == 201 and response.json()["records"] == 0
    assert len(record_entries(client, app, type="datasearch:optout:filed")) == 1
    by_source = client.post(
        "/api/v1/optouts",
        json={"kind": "url", "value": "https://example.org/books/*"},
        headers=lab.novelist,
    )
    assert [m["record"] for m in by_source.json()["matches"]] == [5]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "passage", "value": ""}, "value"),
        ({"kind": "passage", "value": "x" * 2001}, "value"),
        ({"kind": "sha256", "value": "abc"}, "64 hexadecimal"),
        ({"kind": "url", "value": "example.org/*"}, "https://"),
        ({"kind": "isbn", "value": "978"}, "kind"),
        ({"kind": "passage"}, "value"),
    ],
)
def test_bad_optouts_are_refused_and_write_nothing(lab, client, app, body, says):
    response = client.post("/api/v1/optouts", json=body, headers=lab.novelist)
    assert response.status_code == 422, response.text
    assert says in json.dumps(problem(response))
    assert client.get("/api/v1/optouts").json()["items"] == []
    assert record_entries(client, app, type="datasearch:optout") == []


def test_who_may_file_and_decide(lab, client):
    anonymous = client.post("/api/v1/optouts", json={"kind": "passage", "value": PASSAGE})
    assert anonymous.status_code == 403 and "sign in" in problem(anonymous)["detail"]
    filed = client.post(
        "/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist
    ).json()
    for who in (lab.novelist, lab.owner):
        response = client.post(
            f"/api/v1/optouts/{filed['id']}/decision",
            json={"decision": "upheld", "reason": "mine"},
            headers=who,
        )
        assert response.status_code == 403
    assert client.get("/api/v1/optouts/999").status_code == 404
    assert client.get(f"/api/v1/optouts/{filed['id']}", headers=lab.owner).json()["value"] is None


def test_the_signed_filter_holds_opted_out_digests(lab, client, facility):
    client.post("/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist)
    envelope = client.get("/api/v1/optouts/filter").json()
    signed = verify_filter(envelope, facility.signer.verifier_key())
    assert signed.optouts == 1
    assert signed.filter.might_contain(content_sha256(f"At dusk {PASSAGE}, and then he slept."))
    assert not signed.filter.might_contain(content_sha256("Story 1: something else entirely"))


# A core install ---------------------------------------------------------------------------------

CORE_ONLY = """
import sys
for name in ("numpy", "pydivsufsort", "tokenizers", "usearch"):
    sys.modules[name] = None
import commonlab.app
from commonlab.cli.main import main
main(["search", "--help"])
"""


def test_a_core_install_serves_and_says_which_extra_search_needs(lab, monkeypatch):
    import subprocess
    import sys

    started = subprocess.run([sys.executable, "-c", CORE_ONLY], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    response = lab.search(q=PASSAGE, dataset=lab.dataset)
    assert response.status_code == 503
    assert "commonlab[ml,sim,search]" in problem(response)["detail"]


def test_the_servers_query_bound_is_the_indexs():
    from commonlab.datasearch import exact, opened

    assert opened.MAX_QUERY_TOKENS == exact.MAX_QUERY_TOKENS


# The audit --------------------------------------------------------------------------------------


def _audit_optouts(client, app, facility):
    from commonlab.audit.datasearch import DatasearchBook
    from commonlab.audit.findings import Findings
    from commonlab.audit.published import Published
    from commonlab.audit.replay import Replay
    from tests.audit.audited import TEST_SERVER, claims, read_test_log

    book = DatasearchBook()
    Replay([book]).feed(read_test_log(client, app, facility).entries)
    findings = Findings()
    book.compare(Published(TEST_SERVER, client), findings)
    return claims(findings, "datasearch"), findings.checked.get("datasearch", 0)


def test_the_audit_finds_the_optouts_the_record_holds_and_names_a_quiet_change(
    lab, client, app, facility
):
    from sqlalchemy import text

    first = client.post(
        "/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist
    ).json()
    client.post(
        "/api/v1/optouts",
        json={"kind": "url", "value": "https://nowhere.example/*"},
        headers=lab.novelist,
    )
    client.post(
        f"/api/v1/optouts/{first['id']}/decision",
        json={"decision": "rejected", "reason": "not the author"},
        headers=lab.operator,
    )
    differences, checked = _audit_optouts(client, app, facility)
    assert differences == {} and checked >= 9
    # Behind the service's back: the rejection undone, and the other opt-out dropped.
    with facility.db.session() as session, session.begin():
        session.execute(
            text(
                "UPDATE datasearch_optouts SET state = 'filed', reason = NULL "
                f"WHERE id = {first['id']}"
            )
        )
        session.execute(text(f"DELETE FROM datasearch_optouts WHERE id <> {first['id']}"))
    differences, _ = _audit_optouts(client, app, facility)
    assert differences[f"optout/{first['id']} state"] == ("rejected", "filed")
    assert differences[f"optout/{first['id']} reason"] == ("not the author", None)
    assert differences["opt-outs"][0] == sorted([first["id"], first["id"] + 1])


# Index jobs -------------------------------------------------------------------------------------


def test_an_index_job_is_admitted_with_the_deletion_list_and_search_says_it_is_building(
    lab, client, operator
):
    from tests.compute.helpers import award_project

    project = award_project(client, operator)
    h = project.member_auth
    repo = _repo(client, h, "dataset", "corpus", project=project.name)
    dataset = _publish(client, h, repo, {"data/train.jsonl": PUBLIC_DATA})
    asked = {
        "project": project.name,
        "dataset": dataset,
        "config": {"vocab_size": 300},
        "out": f"datasets/{project.name}/corpus-index",
    }
    # With no opt-out filed, an exclude job has nothing to do: refused, nothing held.
    refused = client.post(
        "/api/v1/workloads/exclude", headers=h, json={**asked, "out": repo, "config": {}}
    )
    assert refused.status_code == 422
    assert "nothing to exclude" in problem(refused)["detail"]
    assert (
        client.get("/api/v1/jobs", params={"project": project.name}, headers=h).json()["items"]
        == []
    )

    client.post("/api/v1/optouts", json={"kind": "passage", "value": PASSAGE}, headers=lab.novelist)
    response = client.post("/api/v1/workloads/index", json=asked, headers=h)
    assert response.status_code == 201, response.text
    admitted = response.json()
    # The facility added what opt-outs exclude, whatever the submitter sent.
    digest = content_sha256(f"At dusk {PASSAGE}, and then he slept.")
    assert digest in admitted["config"]["exclude"]["sha256"]
    searching = lab.search(h, q="harbour", dataset=dataset)
    assert searching.status_code == 409
    assert f"by job {admitted['job_id']}" in problem(searching)["detail"]


def test_digests_of_contained_matches_reach_neither_the_filter_nor_a_jobs_config(
    lab, client, operator, facility
):
    from tests.compute.helpers import award_project

    secret_record = content_sha256(f"Note: {SECRET}.")
    client.post("/api/v1/optouts", json={"kind": "passage", "value": SECRET}, headers=lab.novelist)
    signed = verify_filter(
        client.get("/api/v1/optouts/filter").json(), facility.signer.verifier_key()
    )
    assert not signed.filter.might_contain(secret_record) and signed.filter.items == 0
    project = award_project(client, operator)
    h = project.member_auth
    repo = _repo(client, h, "dataset", "corpus", project=project.name)
    dataset = _publish(client, h, repo, {"data/train.jsonl": PUBLIC_DATA})
    asked = {
        "project": project.name,
        "dataset": dataset,
        "config": {"vocab_size": 300},
        "out": f"datasets/{project.name}/corpus-index",
    }
    admitted = client.post("/api/v1/workloads/index", json=asked, headers=h).json()
    assert admitted["config"]["exclude"]["sha256"] == []


def test_search_drops_by_digest_only_what_the_searcher_may_know_was_opted_out(
    lab, client, tmp_path
):
    client.post("/api/v1/optouts", json={"kind": "passage", "value": SECRET}, headers=lab.novelist)
    # The novelist publishes the private record's text in a dataset of her own.
    copied = _records({9: {"text": f"Note: {SECRET}."}})
    h = lab.novelist
    mine = _publish(client, h, _repo(client, h, "dataset", "copies"), {"data/train.jsonl": copied})
    _publish(
        client,
        h,
        _repo(client, h, "dataset", "copies-index"),
        _index_files(tmp_path, "copies", copied),
        lineage=[{"ref": mine, "relation": "indexes"}],
    )
    # Dropping it for her would tell her the contained data held it and was opted out.
    theirs = lab.search(h, q=SECRET, dataset=mine).json()
    assert theirs["count"] == 1 and theirs["opted_out"] == 0
    # The private data's owner knows the digest: the same content is dropped for them.
    owners = lab.search(lab.owner, q=SECRET, dataset=mine).json()
    assert owners["count"] == 0 and owners["opted_out"] == 1
