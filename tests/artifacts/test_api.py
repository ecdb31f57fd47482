"""Artifacts routes end to end through the API, on SQLite and PostgreSQL: repositories,
resumable uploads, signed versions, tags, downloads by level, lineage, the collector — and
bad input refused with nothing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commonlab.artifacts import service as artifacts
from commonlab.artifacts import signing
from commonlab.artifacts.models import Version
from commonlab.identity import service as identity
from tests.artifacts.helpers import digests, push, safetensors_bytes, upload
from tests.helpers import person_with_token, problem, record_entries

TEXT = b'{"text": "habari ya asubuhi", "source": "radio-1", "license": "CC-BY-4.0"}\n' * 3


@pytest.fixture
def researcher(client, operator):
    person, headers = person_with_token(client, operator)
    return {"person": person, "headers": headers, "ns": person["pseudonym"]}


def make_repo(client, headers, kind="dataset", name="swahili-asr", **fields):
    response = client.post(
        "/api/v1/artifacts/repos", json={"kind": kind, "name": name, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return f"{kind}s/{body['repo_id']}"


def versions_count(client, headers, repo):
    return client.get(f"/api/v1/artifacts/{repo}", headers=headers).json()["latest"]


# Repositories and versions ---------------------------------------------------------------------


def test_push_signs_records_and_serves_a_version(client, app, researcher, facility):
    h = researcher["headers"]
    repo = make_repo(client, h)
    response = push(
        client, h, repo, {"train.jsonl": TEXT, "README.md": b"# Swahili ASR\n"},
        message="first", licenses=["cc-by-4.0"], tag="v1",
    )  # fmt: skip
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["number"] == 1 and len(version["commit"]) == 40
    assert version["licenses"] == ["CC-BY-4.0"] and version["license_flags"] == []
    assert [f["path"] for f in version["files"]] == ["README.md", "train.jsonl"]
    assert version["tags"] == ["v1"]

    sig = client.get(f"/api/v1/artifacts/{repo}/versions/1/signature").json()
    statement = signing.open_envelope(sig["envelope"], facility.signer.verifier_key())
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == {
        "README.md": digests(b"# Swahili ASR\n")["sha256"],
        "train.jsonl": digests(TEXT)["sha256"],
    }

    entries = record_entries(client, app, type="artifacts:")
    published = [e for e in entries if e["type"] == "artifacts:dataset:published"]
    assert len(published) == 1
    assert published[0]["data"]["statement_sha256"] == version["statement_sha256"]
    assert published[0]["subject"] == f"{repo}@1"
    assert any(e["type"] == "artifacts:tag:created" for e in entries)

    got = client.get(f"/api/v1/artifacts/{repo}/versions/v1/files/train.jsonl")
    assert got.status_code == 200 and got.content == TEXT
    assert got.headers["etag"] == f'"{digests(TEXT)["sha256"]}"'
    assert got.headers["x-repo-commit"] == version["commit"]
    part = client.get(
        f"/api/v1/artifacts/{repo}/versions/1/files/train.jsonl", headers={"Range": "bytes=0-9"}
    )
    assert part.status_code == 206 and part.content == TEXT[:10]
    head = client.head(f"/api/v1/artifacts/{repo}/versions/main/files/train.jsonl")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(TEXT)


def test_a_second_version_stores_only_what_changed(client, researcher, facility, app):
    h = researcher["headers"]
    repo = make_repo(client, h)
    big = bytes(range(256)) * 400
    assert push(client, h, repo, {"a.bin": big, "b.bin": b"one"}).status_code == 201
    store = app.state.artifacts.store
    before = set(store.all_objects())
    # The unchanged file needs no upload: the repository already holds it.
    answer = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(big), headers=h)
    assert answer.json()["state"] == "complete" and answer.json()["id"] is None
    # Declared without a BLAKE3, the SHA-256 and size decide, and the answer names the
    # address to commit.
    by_sha = {k: v for k, v in digests(big).items() if k != "blake3"}
    answer = client.post(f"/api/v1/artifacts/{repo}/uploads", json=by_sha, headers=h).json()
    assert answer["state"] == "complete" and answer["blake3"] == digests(big)["blake3"]
    other_size = {**by_sha, "size": len(big) + 1}
    answer = client.post(f"/api/v1/artifacts/{repo}/uploads", json=other_size, headers=h).json()
    assert answer["state"] == "open"
    assert push(client, h, repo, {"a.bin": big, "b.bin": b"two"}).status_code == 201
    assert len(set(store.all_objects()) - before) == 1


def test_resumable_upload_and_wrong_offset(client, researcher, app):
    h = researcher["headers"]
    repo = make_repo(client, h)
    data = b"x" * 1000
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(data), headers=h).json()
    put = lambda offset, chunk: client.put(  # noqa: E731
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": offset}, content=chunk,
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert put(0, data[:400]).json()["received"] == 400
    # The interrupted upload is not a version, and cannot be committed yet.
    commit = client.post(
        f"/api/v1/artifacts/{repo}/versions",
        json={"files": [{"path": "x.bin", "blake3": digests(data)["blake3"]}]},
        headers=h,
    )
    assert commit.status_code == 422 and "upload the file first" in problem(commit)["detail"]
    wrong = put(0, data[:400])
    assert wrong.status_code == 409 and problem(wrong)["received"] == 400
    status = client.get(f"/api/v1/artifacts/uploads/{up['id']}", headers=h).json()
    assert status["received"] == 400 and status["state"] == "open"
    done = put(400, data[400:]).json()
    assert done["state"] == "complete" and done["blake3"] == digests(data)["blake3"]
    too_much = put(1000, b"more")
    assert too_much.status_code == 409


def test_a_chunk_streams_to_the_store_in_batches(client, researcher):
    """A chunk larger than one batch, sent as a stream without a declared length."""
    h = researcher["headers"]
    repo = make_repo(client, h)
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB: three batches of the route's reader
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(data), headers=h).json()
    pieces = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    done = client.put(
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": 0}, content=pieces,
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "complete" and done.json()["blake3"] == digests(data)["blake3"]


def test_bytes_that_do_not_match_their_sha256_are_refused(client, researcher, app):
    h = researcher["headers"]
    repo = make_repo(client, h)
    claimed = {**digests(b"the real bytes"), "blake3": None}
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=claimed, headers=h).json()
    response = client.put(
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": 0}, content=b"other bytes!!!",
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 422 and "SHA-256" in problem(response)["detail"]
    assert list(app.state.artifacts.store.all_objects()) == []
    assert client.get(f"/api/v1/artifacts/uploads/{up['id']}", headers=h).status_code == 404


def test_bytes_that_do_not_match_their_blake3_are_refused(client, researcher, app):
    h = researcher["headers"]
    repo = make_repo(client, h)
    claimed = {**digests(b"the real bytes"), "sha256": None}
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=claimed, headers=h).json()
    response = client.put(
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": 0}, content=b"other bytes!!!",
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 422 and "BLAKE3" in problem(response)["detail"]
    assert list(app.state.artifacts.store.all_objects()) == []


def test_an_upload_without_a_digest_is_stored_by_its_bytes_unless_its_size_is_held(
    client, researcher
):
    """Without a digest the facility hashes what it receives (the CLI's shared-file-system
    path). When a version of the repository holds a file of the same size the bytes may be
    held already: the facility asks for a digest (409, digest_needed) and opens nothing."""
    h = researcher["headers"]
    repo = make_repo(client, h)
    data = b"bila hash" * 500
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json={"size": len(data)}, headers=h)
    assert up.status_code == 201 and up.json()["state"] == "open", up.text
    done = client.put(
        f"/api/v1/artifacts/uploads/{up.json()['id']}", params={"offset": 0}, content=data,
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert done.status_code == 200 and done.json()["blake3"] == digests(data)["blake3"]
    # Before a version holds it, another file of that size is opened without a digest too
    # (the shards of one push are often of one size).
    twin = client.post(f"/api/v1/artifacts/{repo}/uploads", json={"size": len(data)}, headers=h)
    assert twin.status_code == 201 and twin.json()["state"] == "open"
    published = client.post(
        f"/api/v1/artifacts/{repo}/versions",
        json={"files": [{"path": "a.txt", "blake3": done.json()["blake3"]}]},
        headers=h,
    )
    assert published.status_code == 201, published.text

    again = client.post(f"/api/v1/artifacts/{repo}/uploads", json={"size": len(data)}, headers=h)
    assert again.status_code == 409 and again.json()["digest_needed"] is True
    assert "declare this file's blake3" in again.json()["detail"]
    # Declared, the held bytes need no sending; another size opens an upload as before.
    held = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(data), headers=h)
    assert held.json()["state"] == "complete"
    other = client.post(f"/api/v1/artifacts/{repo}/uploads", json={"size": 7}, headers=h)
    assert other.json()["state"] == "open"


def test_blake3_only_upload_records_the_sha256_the_facility_computed(client, researcher):
    """The CLI declares only BLAKE3 (the cheapest digest to compute); the facility computes
    the SHA-256 from the bytes it received, and the version lists it."""
    h = researcher["headers"]
    repo = make_repo(client, h)
    data = b"habari" * 1000
    only_b3 = {k: v for k, v in digests(data).items() if k != "sha256"}
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=only_b3, headers=h).json()
    assert up["state"] == "open" and up["local_path"].endswith(f"{up['id']}.part")
    client.put(
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": 0}, content=data,
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    # Before any version: the finished upload already answers "held" for the same bytes.
    again = client.post(f"/api/v1/artifacts/{repo}/uploads", json=only_b3, headers=h).json()
    assert again["state"] == "complete" and again["blake3"] == only_b3["blake3"]
    version = client.post(
        f"/api/v1/artifacts/{repo}/versions",
        json={"files": [{"path": "a.txt", "blake3": only_b3["blake3"]}]},
        headers=h,
    ).json()
    assert version["files"][0]["sha256"] == digests(data)["sha256"]


def test_a_client_sharing_the_file_system_writes_the_part_file_itself(client, researcher, app):
    """The local fast path: the bytes are copied into the upload's part file, an empty chunk
    at offset=size finishes it, and the facility checks them like any others."""
    h = researcher["headers"]
    repo = make_repo(client, h)
    data = bytes(range(256)) * 300
    wrong = bytes(reversed(data))
    finish = lambda up, offset: client.put(  # noqa: E731
        f"/api/v1/artifacts/uploads/{up['id']}", params={"offset": offset}, content=b"",
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    declared = {k: v for k, v in digests(data).items() if k != "sha256"}
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=declared, headers=h).json()
    part = Path(up["local_path"])
    part.write_bytes(data[:100])
    short = finish(up, len(data))
    assert short.status_code == 409 and problem(short)["received"] == 100
    part.write_bytes(wrong)  # the right size, the wrong bytes: refused, nothing stored
    refused = finish(up, len(data))
    assert refused.status_code == 422 and "BLAKE3" in problem(refused)["detail"]
    assert list(app.state.artifacts.store.all_objects()) == [] and not part.exists()

    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=declared, headers=h).json()
    Path(up["local_path"]).write_bytes(data)
    done = finish(up, len(data))
    assert done.status_code == 200 and done.json()["state"] == "complete"
    assert done.json()["local_path"] is None
    store = app.state.artifacts.store
    assert store.path(declared["blake3"]).read_bytes() == data


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/abs/x", "a/../b", "a/./b", "a//b", "a\\b", ".commonlab/x", "a\x00"]
)
def test_hostile_paths_are_refused_and_nothing_changes(client, researcher, app, path):
    h = researcher["headers"]
    repo = make_repo(client, h)
    b3 = upload(client, h, repo, b"data")
    response = client.post(
        f"/api/v1/artifacts/{repo}/versions",
        json={"files": [{"path": path, "blake3": b3}]},
        headers=h,
    )
    assert response.status_code == 422, response.text
    problem(response)
    assert versions_count(client, h, repo) is None


def test_a_path_cannot_be_both_file_and_folder(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    b3 = upload(client, h, repo, b"data")
    files = [{"path": "a", "blake3": b3}, {"path": "a/b", "blake3": b3}]
    response = client.post(f"/api/v1/artifacts/{repo}/versions", json={"files": files}, headers=h)
    assert response.status_code == 422


def test_tags_do_not_move_silently(client, app, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    push(client, h, repo, {"a": b"1"}, tag="stable")
    push(client, h, repo, {"a": b"2"})
    refused = client.put(f"/api/v1/artifacts/{repo}/tags/stable", json={"version": 2}, headers=h)
    assert refused.status_code == 409 and "move=true" in problem(refused)["detail"]
    assert client.get(f"/api/v1/artifacts/{repo}").json()["tags"] == {"stable": 1}
    also = push(client, h, repo, {"a": b"3"}, tag="stable")
    assert also.status_code == 409 and versions_count(client, h, repo) == 2
    moved = client.put(
        f"/api/v1/artifacts/{repo}/tags/stable", json={"version": 2, "move": True}, headers=h
    )
    assert moved.status_code == 200 and moved.json() == {
        "name": "stable", "version": 2, "moved": True
    }  # fmt: skip
    entries = record_entries(client, app, type="artifacts:tag:moved")
    assert entries[-1]["data"] == {
        "tag": "stable", "version": 2, "commit": entries[-1]["data"]["commit"], "from": 1
    }  # fmt: skip
    bad = client.put(f"/api/v1/artifacts/{repo}/tags/main", json={"version": 1}, headers=h)
    assert bad.status_code == 422


def test_repository_names_are_unique_and_checked(client, researcher):
    h = researcher["headers"]
    make_repo(client, h, name="asr")
    again = client.post(
        "/api/v1/artifacts/repos", json={"kind": "dataset", "name": "ASR"}, headers=h
    )
    assert again.status_code == 409
    for body in (
        {"kind": "dataset", "name": "../x"},
        {"kind": "weights", "name": "x"},
        {"kind": "model", "name": "x", "level": 5},
        {"kind": "model", "name": "x", "surprise": 1},
        {"kind": "model", "name": "x", "visibility": "project"},
    ):
        response = client.post("/api/v1/artifacts/repos", json=body, headers=h)
        assert response.status_code == 422, body
        problem(response)


def test_the_public_cannot_write_and_others_cannot_publish(client, operator, researcher):
    repo = make_repo(client, researcher["headers"])
    anonymous = client.post("/api/v1/artifacts/repos", json={"kind": "model", "name": "m"})
    assert anonymous.status_code == 403
    _, other = person_with_token(client, operator, name="Someone Else")
    response = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(b"x"), headers=other)
    assert response.status_code == 403
    assert "owner" in problem(response)["detail"]
    _, reader = person_with_token(client, operator, name="Read Only", scopes=("read",))
    response = client.post(
        "/api/v1/artifacts/repos", json={"kind": "model", "name": "m"}, headers=reader
    )
    assert response.status_code == 403 and "scope" in problem(response)["detail"]


def test_private_repositories_are_hidden(client, operator, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h, name="notes", visibility="private")
    push(client, h, repo, {"a.txt": b"secret"})
    assert client.get(f"/api/v1/artifacts/{repo}").status_code == 404
    assert client.get(f"/api/v1/artifacts/{repo}/versions/1/files/a.txt").status_code == 404
    _, other = person_with_token(client, operator, name="Someone Else")
    # One who may not read it may not know it exists: the answer of a missing repository.
    assert client.get(f"/api/v1/artifacts/{repo}", headers=other).status_code == 404
    assert client.get(f"/api/v1/artifacts/{repo}", headers=h).status_code == 200
    listed = client.get("/api/v1/artifacts/repos").json()["items"]
    assert all(item["name"] != "notes" for item in listed)
    mine = client.get("/api/v1/artifacts/repos", headers=h).json()["items"]
    assert [item["name"] for item in mine] == ["notes"]


# Containment levels --------------------------------------------------------------------------


def cleared(client, operator, level):
    _, officer_h = person_with_token(
        client, operator, name="Safety Officer", roles=["safety_officer"], scopes=("admin",)
    )
    person, h = person_with_token(client, operator, name="Cleared Researcher")
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    response = client.post(
        f"/api/v1/people/{person['id']}/clearances",
        json={"level": level, "expires_at": expires},
        headers=officer_h,
    )
    assert response.status_code == 201, response.text
    return person, h


def test_cl2_downloads_are_recorded_before_they_are_served(client, app, operator):
    person, h = cleared(client, operator, 2)
    repo = make_repo(client, h, name="controlled", visibility="private", level=2)
    push(client, h, repo, {"a.txt": b"controlled"})
    got = client.get(f"/api/v1/artifacts/{repo}/versions/1/files/a.txt", headers=h)
    assert got.status_code == 200 and got.content == b"controlled"
    downloads = record_entries(client, app, type="artifacts:file:downloaded")
    assert len(downloads) == 1 and downloads[0]["actor"]["id"] == person["pseudonym"]
    assert downloads[0]["data"]["level"] == "CL-2"
    assert "commitment" in downloads[0]["data"]["path"]


def test_cl3_content_is_never_served_and_the_attempt_is_recorded(client, app, operator):
    _, h = cleared(client, operator, 3)
    repo = make_repo(client, h, kind="model", name="frontier", visibility="private", level=3)
    assert push(client, h, repo, {"w.safetensors": safetensors_bytes()}).status_code == 201
    meta = client.get(f"/api/v1/artifacts/{repo}/versions/1", headers=h)
    assert meta.status_code == 200
    refused = client.get(f"/api/v1/artifacts/{repo}/versions/1/files/w.safetensors", headers=h)
    assert refused.status_code == 403
    assert "never served for download" in problem(refused)["detail"]
    entries = record_entries(client, app, type="artifacts:")
    assert [e["type"] for e in entries if "download" in e["type"]] == [
        "artifacts:file:download-refused"
    ]
    assert any(e["type"] == "artifacts:version:read" for e in entries)


def test_no_clearance_no_contained_repository(client, researcher):
    response = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "model", "name": "m", "level": 2, "visibility": "private"},
        headers=researcher["headers"],
    )
    assert response.status_code == 403


# Cards and metadata --------------------------------------------------------------------------


def test_model_card_and_safetensors_metadata(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h, kind="model", name="tiny")
    card = b"---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# Tiny\n"
    weights = safetensors_bytes({"commonlab.job": "job-7"})
    response = push(client, h, repo, {"README.md": card, "model.safetensors": weights},
                    licenses=["GPL-2.0-only", "CC-BY-SA-4.0", "Made-Up-1.0"],
                    job="job-7")  # fmt: skip
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["card"]["meta"]["library_name"] == "transformers"
    assert body["licenses"] == ["Apache-2.0", "CC-BY-SA-4.0", "GPL-2.0-only", "Made-Up-1.0"]
    flags = " | ".join(body["license_flags"])
    assert "unknown licence 'Made-Up-1.0'" in flags and "incompatible" in flags
    weights_meta = next(f for f in body["files"] if f["path"] == "model.safetensors")["meta"]
    assert weights_meta == {"tensors": 1, "metadata": {"commonlab.job": "job-7"}}


@pytest.mark.parametrize(
    ("stamp", "job", "fragment"),
    [
        ({"commonlab.version": "2"}, None, "this is version 1"),
        ({"commonlab.repository": "models/someone/else"}, None, "not 'models/"),
        ({"commonlab.job": "job-7"}, None, "the version names no job"),
        ({"commonlab.job": "job-7"}, "job-8", "names job job-8"),
    ],
)
def test_weights_stamped_as_another_version_or_job_are_refused(
    client, researcher, stamp, job, fragment
):
    h = researcher["headers"]
    repo = make_repo(client, h, kind="model", name="stamped")
    response = push(client, h, repo, {"model.safetensors": safetensors_bytes(stamp)}, job=job)
    assert response.status_code == 422 and fragment in problem(response)["detail"], response.text
    assert "push --stamp" in problem(response)["detail"]
    assert versions_count(client, h, repo) is None


@pytest.mark.parametrize(
    "raw",
    [b"\x00" * 4, b"\xff" * 8 + b"{}", b"\x02\x00\x00\x00\x00\x00\x00\x00[]",
     safetensors_bytes()[:-1]],
)  # fmt: skip
def test_a_corrupt_safetensors_header_is_refused(client, researcher, raw):
    h = researcher["headers"]
    repo = make_repo(client, h, kind="model", name="broken")
    response = push(client, h, repo, {"model.safetensors": raw})
    assert response.status_code == 422 and "safetensors" in problem(response)["detail"]
    assert versions_count(client, h, repo) is None


def test_a_card_with_broken_front_matter_is_refused(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h, kind="model", name="m")
    response = push(client, h, repo, {"README.md": b"---\nlicense: [unclosed\n---\nbody"})
    assert response.status_code == 422 and "front matter" in problem(response)["detail"]


def test_datasets_get_a_validated_croissant_description(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    response = push(
        client, h, repo, {"data/train.jsonl": TEXT}, licenses=["CC-BY-4.0"],
        croissant={"description": "Swahili radio", "rai:dataCollection": "recorded broadcasts"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    doc = client.get(f"/api/v1/artifacts/{repo}/versions/1/croissant").json()
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert doc["distribution"][0]["sha256"] == digests(TEXT)["sha256"]
    fields = {f["name"] for f in doc["recordSet"][0]["field"]}
    assert fields == {"text", "source", "license"}
    assert doc["rai:dataCollection"] == "recorded broadcasts"


def test_an_invalid_croissant_description_is_refused(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    for croissant in ({"distribution": []}, {"name": 5}):
        response = push(client, h, repo, {"train.jsonl": TEXT}, croissant=croissant)
        assert response.status_code == 422, response.text
    assert versions_count(client, h, repo) is None


# Lineage -------------------------------------------------------------------------------------


def test_lineage_up_and_down_and_prov(client, researcher):
    h = researcher["headers"]
    data = make_repo(client, h)
    source = {"name": "radio-1", "url": "https://radio.example", "license": "CC-BY-4.0"}
    push(client, h, data, {"train.jsonl": TEXT}, sources=[source])
    model = make_repo(client, h, kind="model", name="tiny")
    ref = f"{data}@1"
    response = push(
        client, h, model, {"model.safetensors": safetensors_bytes()}, job="job-42",
        lineage=[{"ref": ref, "relation": "trained_on"}],
    )  # fmt: skip
    assert response.status_code == 201, response.text
    up = client.get(f"/api/v1/artifacts/{model}/versions/1/lineage").json()
    assert {n["ref"] for n in up["nodes"]} == {f"{model}@1", ref}
    source_node = next(n for n in up["nodes"] if n["ref"] == ref)
    assert source_node["sources"][0]["name"] == "radio-1"
    assert up["edges"] == [
        {"from": f"{model}@1", "to": ref, "relation": "trained_on", "job": "job-42"}
    ]
    down = client.get(f"/api/v1/artifacts/{data}/versions/1/lineage?direction=down").json()
    assert {n["ref"] for n in down["nodes"]} == {f"{model}@1", ref}
    prov = client.get(f"/api/v1/artifacts/{model}/versions/1/prov").json()
    assert {"entity", "activity", "used", "wasGeneratedBy", "wasDerivedFrom"} <= prov.keys()
    assert "job:job-42" in prov["activity"]
    assert any(d["prov:usedEntity"] == ref for d in prov["wasDerivedFrom"].values())
    bad = push(client, h, model, {"a": b"1"}, lineage=[{"ref": "datasets/x/y@1"}])
    assert bad.status_code == 404
    malformed = push(client, h, model, {"a": b"1"}, lineage=[{"ref": "nonsense"}])
    assert malformed.status_code == 422


# The collector --------------------------------------------------------------------------------


def test_gc_waits_for_open_uploads_and_removes_only_unreferenced(client, app, operator, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    push(client, h, repo, {"keep.txt": b"keep me"})
    store = app.state.artifacts.store
    orphan = store.put_stream([b"nobody references me"])
    up = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digests(b"pending"), headers=h)
    refused = client.post("/api/v1/artifacts/gc", headers=operator)
    assert refused.status_code == 409 and store.exists(orphan.blake3)
    client.put(
        f"/api/v1/artifacts/uploads/{up.json()['id']}", params={"offset": 0}, content=b"pending",
        headers={**h, "content-type": "application/octet-stream"},
    )  # fmt: skip
    assert client.post("/api/v1/artifacts/gc", headers=h).status_code == 403
    done = client.post("/api/v1/artifacts/gc", headers=operator)
    assert done.status_code == 200, done.text
    assert done.json()["removed"] == 1
    assert not store.exists(orphan.blake3)
    assert store.exists(digests(b"keep me")["blake3"])
    assert store.exists(digests(b"pending")["blake3"])  # a finished upload awaits its commit
    assert record_entries(client, app, type="artifacts:store:collected")[0]["data"]["removed"] == 1


# Bad input on every route ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,url,body",
    [
        ("get", "/api/v1/artifacts/weights/a/b", None),
        ("get", "/api/v1/artifacts/models/a/b", None),
        ("get", "/api/v1/artifacts/models/..%2F/b", None),
        ("get", "/api/v1/artifacts/repos?kind=weights", None),
        ("get", "/api/v1/artifacts/uploads/nope", None),
        ("put", "/api/v1/artifacts/uploads/nope?offset=0", None),
        ("put", "/api/v1/artifacts/uploads/nope?offset=-1", None),
        ("post", "/api/v1/artifacts/datasets/a/b/uploads", {"size": -1, "sha256": "x"}),
        ("post", "/api/v1/artifacts/datasets/a/b/versions", {"files": []}),
        ("put", "/api/v1/artifacts/datasets/a/b/tags/x", {"version": 0}),
        ("get", "/api/v1/artifacts/datasets/a/b/versions/1/lineage?direction=sideways", None),
    ],
)
def test_bad_requests_are_4xx_problems(client, researcher, method, url, body):
    kwargs = {"json": body} if body is not None else {}
    response = getattr(client, method)(url, headers=researcher["headers"], **kwargs)
    assert 400 <= response.status_code < 500, response.text
    problem(response)


def test_unknown_revision_and_file_are_404(client, researcher):
    h = researcher["headers"]
    repo = make_repo(client, h)
    push(client, h, repo, {"a.txt": b"a"})
    for url in (f"{repo}/versions/9", f"{repo}/versions/nope", f"{repo}/versions/1/files/b.txt"):
        response = client.get(f"/api/v1/artifacts/{url}")
        assert response.status_code == 404
        assert json.loads(response.text)["detail"]


def test_a_publish_fsyncs_the_objects_its_uploads_placed(client, researcher, app, monkeypatch):
    """Uploads are placed without fsync; the publish that takes them makes them durable, and
    does not redo it for files an earlier version already made durable."""
    h = researcher["headers"]
    repo = make_repo(client, h)
    store = app.state.artifacts.store
    synced: list[set[str]] = []
    real = store.make_durable
    monkeypatch.setattr(store, "make_durable", lambda b3s: (synced.append(set(b3s)), real(b3s)))
    assert push(client, h, repo, {"a": b"kept", "b": b"one"}).status_code == 201
    assert synced == [{digests(b"kept")["blake3"], digests(b"one")["blake3"]}]
    assert push(client, h, repo, {"a": b"kept", "b": b"two"}).status_code == 201
    assert synced[1] == {digests(b"two")["blake3"]}


def test_a_list_shows_each_repository_s_newest_version_without_reading_its_history(
    client, facility, researcher
):
    h = researcher["headers"]
    repo = make_repo(client, h, name="long-history")
    empty = make_repo(client, h, name="no-versions-yet")
    push(client, h, repo, {"a": b"1"}, tag="stable")
    for body in (b"2", b"3", b"4"):
        assert push(client, h, repo, {"a": body}).status_code == 201
    page = client.get("/api/v1/artifacts/repos", headers=h).json()["items"]
    listed = {f"datasets/{r['repo_id']}": r for r in page}
    assert (listed[repo]["latest"], listed[repo]["tags"]) == (4, {"stable": 1})
    assert listed[empty]["latest"] is None

    with facility.db.session() as db:
        principal = identity.authenticate(db, h["Authorization"].split()[1])
        page, _ = artifacts.list_repos(db, principal)  # (held: the session's map is weak)
        loaded = sorted(o.number for o in db.identity_map.values() if isinstance(o, Version))
    assert loaded == [1, 4]  # the newest, and the one a tag names: never versions 2 and 3
