"""The training-data search pages (through the ASGI app): a passage found in a model's
training data with each hit in context (escaped: the text is data), linked to its record with
its source and licence; the refusals (no index, an index building, bad input) as pages with
their status; tracing an output; the opt-outs, filed through a form that needs a sign-in and
the CSRF token, each showing the models trained on what it matched; a private dataset never
named to an outsider; the decision form for operators only.

The data: a demo facility whose PI publishes a public dataset quoting a novel twice, a
project-only dataset quoting it once, a public model trained on both (and on a dataset
without an index), and an index of each dataset, built here by the index workload's own code
and pushed as a version linked `indexes`, as the index job publishes it."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from commonlab.datasearch import service as datasearch
from commonlab.datasearch.schemas import MAX_PASSAGE_CHARS, DatasetSearched, HitOut, SpanOut
from commonlab.demo import seed_demo
from commonlab.identity import service as identity
from commonlab.identity.models import Person
from commonlab.identity.schemas import TokenCreate
from commonlab.identity.service import bootstrap_operator
from commonlab.policy.principal import SYSTEM, Scope
from commonlab.portal.datasearch_views import (
    Segment,
    in_context,
    marked_segments,
    status_line,
    version_url,
    web_url,
)
from commonlab.workloads.config import IndexConfig
from commonlab.workloads.runtime.index import RESULTS, build
from commonlab.workloads.runtime.paths import Paths
from tests.artifacts.helpers import push, safetensors_bytes
from tests.helpers import auth
from tests.portal.helpers import csrf_of, sign_in

PASSAGE = "the lighthouse keeper counted the gulls until the fog swallowed the harbour"
BOOK = "https://example.org/books/the-keeper"
STORIES = "datasets/proj-1/stories@1"
DIARIES = "datasets/proj-1/diaries@1"
UNINDEXED = "datasets/proj-1/unindexed@1"
MODEL = "models/proj-1/storyteller@1"
STORY_RECORD = "/artifacts/datasets/proj-1/stories/versions/1/records/{}?file=data/train.jsonl"


def story_rows() -> list[dict[str, str]]:
    """A public dataset: the novel quoted in records 3 and 8, one of them after markup."""
    rows = [
        {"text": f"Story {n}: Amina walked to the market and bought {n} oranges for the road.",
         "source": f"https://example.org/stories/{n}", "license": "CC-BY-4.0"}
        for n in range(12)
    ]  # fmt: skip
    rows[3] = {"text": f"<script>alert(1)</script> At dusk {PASSAGE}, and then he slept.",
               "source": f"{BOOK}/chapter-1", "license": "CC-BY-4.0"}  # fmt: skip
    rows[8] = {"text": f"She remembered the line: {PASSAGE}.",
               "source": "javascript:alert(2)", "license": "CC-BY-SA-4.0"}  # fmt: skip
    return rows


def diary_rows() -> list[dict[str, str]]:
    """A project-only dataset: the novel quoted once."""
    rows = [{"text": f"Diary entry {n}: the ledger of the night shift at the pier."}
            for n in range(8)]  # fmt: skip
    rows[5] = {"text": f"Copied out tonight: {PASSAGE}."}
    return rows


def jsonl(rows: list[dict[str, str]]) -> bytes:
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def built_index(root: Path, data: bytes, *, semantic: bool = False) -> dict[str, bytes]:
    """The files an index job publishes for a dataset holding `data/train.jsonl`."""
    (root / "in" / "data").mkdir(parents=True)
    (root / "in" / "data" / "train.jsonl").write_bytes(data)
    paths = Paths(data=root / "in", model=None, out=root / "out", scratch=root / "scratch",
                  metrics=root / "metrics.jsonl")  # fmt: skip
    build(IndexConfig(vocab_size=300, semantic=semantic), paths)
    return {p.name: p.read_bytes() for p in paths.out.iterdir() if p.name != RESULTS}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Each dataset's index, built once for the module (building is the slow part)."""
    root = tmp_path_factory.mktemp("indexes")
    return {
        "stories": built_index(root / "stories", jsonl(story_rows()), semantic=True),
        "diaries": built_index(root / "diaries", jsonl(diary_rows())),
    }


@dataclass
class Lab:
    app: Any
    facility: Any
    operator: str
    pi: str
    novelist: str  # a person in no project: an outsider to proj-1's own data

    def visitor(self, token: str | None = None) -> TestClient:
        """A browser of its own (its own cookies), signed in with `token` if one is given."""
        client = TestClient(self.app, raise_server_exceptions=False)
        if token is not None:
            sign_in(client, token)
        return client


def _token_of(facility: Any, name: str) -> str:
    with facility.db.session() as session:
        with session.begin():
            person_id = session.scalar(select(Person.id).where(Person.name == name))
        _, token = identity.issue_token(
            session, SYSTEM, person_id, TokenCreate(name="pages", scopes=[Scope.READ, Scope.WRITE])
        )
    return token


def _repo(client: TestClient, pi: dict[str, str], kind: str, name: str, **fields: Any) -> str:
    made = client.post("/api/v1/artifacts/repos",
                       json={"kind": kind, "name": name, "project": "proj-1", **fields},
                       headers=pi)  # fmt: skip
    assert made.status_code == 201, made.text
    return f"{kind}s/{made.json()['repo_id']}"


def _publish(client, pi, repo: str, files: dict[str, bytes], **fields: Any) -> None:
    pushed = push(client, pi, repo, files, **fields)
    assert pushed.status_code == 201, pushed.text


@pytest.fixture
def lab(app, client, facility, indexes) -> Lab:
    with facility.db.session() as session:
        operator = bootstrap_operator(session)
    with facility.db.session() as session:
        pi_token = seed_demo(session)
    assert operator and pi_token
    pi = auth(pi_token)
    stories = _repo(client, pi, "dataset", "stories")
    _publish(client, pi, stories, {"data/train.jsonl": jsonl(story_rows())}, licenses=["CC-BY-4.0"])
    diaries = _repo(client, pi, "dataset", "diaries", visibility="project")
    _publish(client, pi, diaries, {"data/train.jsonl": jsonl(diary_rows())})
    unindexed = _repo(client, pi, "dataset", "unindexed")
    _publish(client, pi, unindexed, {"data/train.jsonl": jsonl(story_rows()[:2])})
    model = _repo(client, pi, "model", "storyteller")
    trained_on = [
        {"ref": f"{data}@1", "relation": "trained_on"} for data in (stories, diaries, unindexed)
    ]
    _publish(client, pi, model, {"model.safetensors": safetensors_bytes()}, lineage=trained_on)
    for name, fields in (("stories", {}), ("diaries", {"visibility": "project"})):
        index = _repo(client, pi, "dataset", f"{name}-index", **fields)
        _publish(client, pi, index, indexes[name],
                 lineage=[{"ref": f"datasets/proj-1/{name}@1", "relation": "indexes"}])  # fmt: skip
    return Lab(app, facility, operator, pi_token, _token_of(facility, "Francesca Conti"))


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def search(client: TestClient, **params: Any) -> Any:
    response = client.get("/search", params=params)
    assert response.headers["content-type"].startswith("text/html"), response.text[:200]
    return response


def page_csrf(page: str) -> str:
    """The CSRF token every page carries (a page shown to the public may have no form)."""
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def file_through_the_form(client: TestClient, kind: str, value: str) -> Any:
    form = client.get("/optouts").text
    return client.post(
        "/optouts",
        data={"csrf": page_csrf(form), "kind": kind, "value": value},
        follow_redirects=False,
    )


# What the pages make of the service's answers (pure) ----------------------------------------


def _span(text: str, start: int) -> SpanOut:
    return SpanOut(start=start, end=start + len(text), text=text, count=1,
                   log10_probability=-9.0, records=[])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "spans", "expected"),
    [
        # Offsets are on the stripped text, as the service traced it.
        ("  ab cd ef\n", [_span("cd", 3)], [Segment("ab "), Segment("cd", 1), Segment(" ef")]),
        # Numbered as the table numbers them (rarest first), marked in reading order.
        ("ab cd ef", [_span("ef", 6), _span("ab", 0)],
         [Segment("ab", 2), Segment(" cd "), Segment("ef", 1)]),
        # Overlapping: the first to start is marked; the other stays in the table only.
        ("ab cd ef", [_span("cd ef", 3), _span("ab cd", 0)],
         [Segment("ab cd", 2), Segment(" ef")]),
        # Offsets that do not hold the span's text are not trusted.
        ("ab cd ef", [_span("zz", 3)], [Segment("ab cd ef")]),
        ("ab", [], [Segment("ab")]),
    ],
)  # fmt: skip
def test_marked_segments(text, spans, expected):
    assert marked_segments(text, spans) == expected


@pytest.mark.parametrize(
    ("source", "link"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("http://example.org/a", "http://example.org/a"),
        ("javascript:alert(1)", None),
        ("https://example.org/a b", None),
        ("radio-1", None),
        (None, None),
    ],
)
def test_only_web_addresses_become_links(source, link):
    assert web_url(source) == link


def test_the_mark_covers_the_passage_not_the_space_before_it():
    hit = HitOut(dataset=STORIES, file="f", record=0, source=None, license=None,
                 before="At dusk", match=" the keeper\n", after="slept", url="/r")  # fmt: skip
    assert in_context(hit) == ("At dusk ", "the keeper", "\nslept")
    blank = hit.model_copy(update={"match": "  "})
    assert in_context(blank) == ("At dusk", "  ", "slept")


def test_each_dataset_searched_says_how_it_fared():
    searched = status_line(DatasetSearched(dataset=STORIES, index="datasets/p/i@1",
                                           status="searched", count=1))  # fmt: skip
    assert searched.text == "1 occurrence, in index datasets/p/i@1" and searched.command is None
    building = status_line(DatasetSearched(dataset=STORIES, index=None, status="building", job=7))
    assert "being built by job 7" in building.text
    missing = status_line(DatasetSearched(dataset=STORIES, index=None, status="no index"))
    assert missing.command == f"commonlab index build {STORIES} -p PROJECT"
    assert version_url(STORIES) == "/artifacts/datasets/proj-1/stories/versions/1"


# Search -------------------------------------------------------------------------------------------


def test_a_passage_found_in_a_models_training_data_in_context_with_its_records(lab):
    page = search(lab.visitor(), q=PASSAGE, model=MODEL)
    assert page.status_code == 200
    body, words = page.text, text_of(page.text)
    assert f"2 occurrences in the training data of {MODEL}" in words
    # Each hit: the match marked, the text around it escaped (a record is data, not markup).
    marks = re.findall(r"<mark>(.*?)</mark>", body, re.S)
    assert len(marks) == 2 and all(PASSAGE in m for m in marks)
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # Linked to its record and its dataset version, with its source and licence.
    for record in (3, 8):
        assert f'href="{STORY_RECORD.format(record)}"' in body
    assert f'<a href="{BOOK}/chapter-1" rel="nofollow noopener noreferrer">' in body
    assert "javascript:alert(2)" in words and 'href="javascript:' not in body
    assert "CC-BY-4.0" in words and "CC-BY-SA-4.0" in words
    assert 'href="/artifacts/datasets/proj-1/stories/versions/1"' in body
    # Every training dataset says how it fared, the one without an index with the command.
    assert f"{STORIES} : 2 occurrences, in index datasets/proj-1/stories-index@1" in words
    assert f"<code>commonlab index build {UNINDEXED} -p PROJECT</code>" in body
    # The form keeps what was asked.
    assert f'value="{MODEL}"' in body and f'value="{PASSAGE}"' in body


def test_records_near_in_meaning_with_their_sources(lab):
    page = search(
        lab.visitor(),
        q="a man who tends a lighthouse watches seabirds in the mist",
        model=MODEL,
        mode="meaning",
        limit=2,
    )
    assert page.status_code == 200, page.text[:500]
    body, words = page.text, text_of(page.text)
    assert "near “a man who tends a lighthouse" in words and "similarity" in words
    for record in (3, 8):
        assert f'href="{STORY_RECORD.format(record)}"' in body
    assert 'value="meaning" checked' in body
    assert "<script>alert(1)" not in body
    # The member's other dataset is indexed verbatim only, and says how to add meaning.
    member = search(lab.visitor(lab.pi), q="seabirds", model=MODEL, mode="meaning")
    assert "searches only verbatim" in text_of(member.text)
    assert search(lab.visitor(), q="x", model=MODEL, mode="loose").status_code == 400


def test_an_outsider_never_sees_the_private_dataset_a_member_does(lab):
    outsider = search(lab.visitor(lab.novelist), q=PASSAGE, model=MODEL)
    assert outsider.status_code == 200
    assert "diaries" not in outsider.text
    assert "2 occurrences" in text_of(outsider.text)
    assert 'id="occurrences-chart"' not in outsider.text  # one dataset searched: no chart
    member = search(lab.visitor(lab.pi), q=PASSAGE, model=MODEL)
    words = text_of(member.text)
    assert "3 occurrences" in words and f"{DIARIES} : 1 occurrence" in words
    diary_record = "/artifacts/datasets/proj-1/diaries/versions/1/records/5?file=data/train.jsonl"
    assert f'href="{diary_record}"' in member.text
    # Two datasets searched: a bar each, with its numbers as text too.
    chart = member.text[member.text.index('id="occurrences-chart"') :]
    assert chart.count("<rect") == 2


def test_the_version_pages_offer_search_and_trace(lab):
    client = lab.visitor()
    model = client.get("/artifacts/models/proj-1/storyteller/versions/1").text
    search_form = model[model.index('action="/search"') :]
    assert f'name="model" value="{MODEL}"' in search_form[:400]
    assert "Search its training data" in model
    trace_form = model[model.index('action="/trace"') :]
    assert 'name="csrf"' in trace_form[:300] and f'name="model" value="{MODEL}"' in trace_form
    assert "Trace an output" in model
    dataset = client.get("/artifacts/datasets/proj-1/stories/versions/1").text
    assert "Search these records" in dataset and f'name="dataset" value="{STORIES}"' in dataset
    # The dataset's own search, as its form sends it.
    found = search(client, dataset=STORIES, q="Amina walked to the market")
    assert "10 occurrences" in text_of(found.text)
    assert "The first 10 of 10" not in text_of(found.text)
    few = search(client, dataset=STORIES, q="Amina walked to the market", limit=3)
    assert "The first 3 of 10 shown" in text_of(few.text) and few.text.count("<mark>") == 3


def test_refusals_are_pages_with_their_status_and_the_form(lab, facility):
    client = lab.visitor()
    # No index yet: 404, with the command that builds one.
    response = search(client, q="Amina", dataset=UNINDEXED)
    assert response.status_code == 404
    assert f"<code>commonlab index build {UNINDEXED}</code>" in response.text
    assert 'role="alert"' in response.text and 'value="Amina"' in response.text
    # An index still being built: 409, naming the job.
    job = client.post("/api/v1/jobs", json={"project": "proj-1", "command": "true",
                      "accelerator": "cpu"}, headers=auth(lab.pi)).json()["id"]  # fmt: skip
    with facility.db.session() as session, session.begin():
        datasearch.note_index_build(session, job, UNINDEXED)
    response = search(client, q="Amina", dataset=UNINDEXED)
    assert response.status_code == 409
    assert f"still being built ({UNINDEXED} by job {job})" in text_of(response.text)
    # Bad input: 422, saying what to fix.
    for params, says in (
        ({"q": "x" * (MAX_PASSAGE_CHARS + 1), "dataset": STORIES}, "give at most 2000"),
        ({"q": "   ", "dataset": STORIES}, "the query is empty"),
        ({"q": "Amina", "ref": "proj-1/stories"}, "name a model version"),
        ({"q": "Amina", "ref": "datasets/proj-1/stories"}, "is not a version reference"),
        ({"q": "Amina"}, "name the model"),
        ({"q": "Amina", "model": MODEL, "dataset": STORIES}, "not both"),
    ):
        response = search(client, **params)
        assert response.status_code == 422, (params, response.status_code)
        assert says.lower() in text_of(response.text).lower(), (params, text_of(response.text))
        assert 'id="search-error"' in response.text and 'action="/search"' in response.text
    # A version the viewer may not read is not found, as if it did not exist.
    response = search(client, q="Amina", dataset=DIARIES)
    assert response.status_code == 404 and "Copied out" not in response.text
    # Nothing asked: the form alone.
    response = search(client)
    assert response.status_code == 200 and 'role="alert"' not in response.text


def test_trace_marks_the_spans_found_verbatim_rarest_first(lab):
    client = lab.visitor()
    form = client.get("/trace", params={"model": MODEL})
    assert form.status_code == 200 and f'value="{MODEL}"' in form.text
    output = f"Once, <b>bold</b> as ever, {PASSAGE}. The end."
    refused = client.post("/trace", data={"model": MODEL, "text": output})
    assert refused.status_code == 403  # no CSRF token
    csrf = csrf_of(form.text)
    traced = client.post("/trace", data={"csrf": csrf, "model": MODEL, "text": output})
    assert traced.status_code == 200, text_of(traced.text)
    marks = re.findall(r"<mark>(.*?)</mark>", traced.text, re.S)
    assert marks and any("lighthouse keeper counted the gulls" in m for m in marks)
    assert "&lt;b&gt;bold&lt;/b&gt;" in traced.text and "<b>bold" not in traced.text
    # The span runs on to the full stop, which only record 8 has after the passage.
    table = traced.text[traced.text.index('id="spans"') :]
    assert 'id="span-1"' in table and STORY_RECORD.format(8) in table
    assert STORY_RECORD.format(3) not in table
    assert f"{STORIES} : searched, in index" in text_of(traced.text)
    assert 'href="#span-1"' in traced.text
    # Refusals: on the page, with their status.
    missing = client.post("/trace", data={"csrf": csrf, "model": "", "text": output})
    assert missing.status_code == 422 and "Name the model version" in text_of(missing.text)
    too_long = client.post("/trace", data={"csrf": csrf, "model": MODEL, "text": "x" * 20_001})
    assert too_long.status_code == 422 and "at most 20000" in text_of(too_long.text)


# Opt-outs -------------------------------------------------------------------------------------


def test_filing_an_opt_out_needs_a_sign_in_and_the_csrf_token(lab):
    public = lab.visitor()
    listing = public.get("/optouts").text
    assert 'action="/optouts"' not in listing and 'href="/signin"' in listing
    refused = file_through_the_form(public, "passage", PASSAGE)
    assert refused.status_code == 401
    novelist = lab.visitor(lab.novelist)
    assert 'action="/optouts"' in novelist.get("/optouts").text
    for csrf in ("", "0" * 64):
        response = novelist.post("/optouts", data={"csrf": csrf, "kind": "passage",
                                 "value": PASSAGE}, follow_redirects=False)  # fmt: skip
        assert response.status_code == 403
    bad = file_through_the_form(novelist, "sha256", "not-a-digest")
    assert bad.status_code == 422 and "64 hexadecimal digits" in text_of(bad.text)
    assert "not-a-digest</textarea>" in bad.text  # what was typed stays in the form
    assert public.get("/api/v1/optouts").json()["items"] == []  # nothing was filed


def test_an_opt_out_hides_its_records_and_names_the_models_trained_on_them(lab):
    novelist = lab.visitor(lab.novelist)
    filed = file_through_the_form(novelist, "passage", PASSAGE)
    assert filed.status_code == 303, text_of(filed.text)
    where = filed.headers["location"]
    assert re.fullmatch(r"/optouts/\d+\?filed=1", where)
    page = novelist.get(where).text
    words = text_of(page)
    assert "it matched 2 records in data you may read" in words
    assert PASSAGE in words  # the filer sees what it names
    for record in (3, 8):
        assert f'href="{STORY_RECORD.format(record)}"' in page
    # The match in project-only data is neither named nor counted to an outsider: an opt-out
    # would otherwise tell what contained data holds.
    assert "diaries" not in page and "Records matched 2 in data you may read" in words
    assert f'<a href="/artifacts/models/proj-1/storyteller/versions/1">{MODEL}</a>' in page
    assert "trained before the opt-out" in words

    # The public: the opt-out, not what it names.
    public = lab.visitor()
    shown = public.get(where.split("?")[0]).text
    assert PASSAGE not in text_of(shown) and "Kept private" in shown
    assert "trained before the opt-out" in text_of(shown) and MODEL in shown
    assert "Your opt-out is filed" not in public.get(where).text  # the address alone says nothing
    listing = text_of(public.get("/optouts").text)
    assert "passage filed 2 1" in listing
    # Search honours it at once: counted apart, not shown.
    found = search(public, q=PASSAGE, model=MODEL)
    assert "0 occurrences" in text_of(found.text) and "<mark>" not in found.text
    assert "2 more in opted-out records, not shown" in text_of(found.text)
    # A member of the project sees the private record it matched too.
    member = text_of(lab.visitor(lab.pi).get(where.split("?")[0]).text)
    assert f"record 5 of data/train.jsonl in {DIARIES}" in member
    assert "Records matched 3 in data you may read" in member


def test_only_an_operator_may_decide(lab):
    novelist = lab.visitor(lab.novelist)
    where = file_through_the_form(novelist, "passage", PASSAGE).headers["location"].split("?")[0]
    decision = f"{where}/decision"
    page = novelist.get(where).text
    assert f'action="{decision}"' not in page
    refused = novelist.post(decision, data={"csrf": csrf_of(page), "decision": "rejected",
                            "reason": "mine"}, follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403

    operator = lab.visitor(lab.operator)
    page = operator.get(where).text
    assert f'action="{decision}"' in page and PASSAGE in text_of(page)  # operators see it
    no_reason = operator.post(decision, data={"csrf": csrf_of(page), "decision": "rejected",
                              "reason": ""}, follow_redirects=False)  # fmt: skip
    assert no_reason.status_code == 422 and "Reason:" in text_of(no_reason.text)
    decided = operator.post(decision, data={"csrf": csrf_of(page), "decision": "rejected",
                            "reason": "The filer does not hold this text."},
                            follow_redirects=False)  # fmt: skip
    assert decided.status_code == 303
    after = text_of(operator.get(decided.headers["location"]).text)
    assert "The decision is recorded: rejected" in after
    assert "The filer does not hold this text." in after and f'action="{decision}"' not in after
    again = operator.post(decision, data={"csrf": csrf_of(page), "decision": "upheld",
                          "reason": "second thoughts"}, follow_redirects=False)  # fmt: skip
    assert again.status_code == 409 and "already rejected" in text_of(again.text)
    # A rejected opt-out is no longer honoured: search shows the records again.
    found = text_of(search(lab.visitor(), q=PASSAGE, model=MODEL).text)
    assert "2 occurrences" in found and "opted-out records" not in found
