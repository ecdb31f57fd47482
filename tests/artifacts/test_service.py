"""The artifacts use cases called directly (no HTTP), on both databases: create a repository,
upload, publish a version, tag it, trace its lineage, collect garbage — each with the record
entry it writes. Also how publishing and collecting meet the database: the work on files
happens outside any transaction, and files are deleted only once the rows naming them are
gone for good."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import blake3
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from commonlab.artifacts import gc, ports, publish
from commonlab.artifacts import service as artifacts
from commonlab.artifacts.models import Upload, VersionFile
from commonlab.artifacts.mount import registry_for
from commonlab.artifacts.schemas import RepoCreate, TagUpdate, UploadCreate, VersionCreate
from commonlab.artifacts.service import Registry, RepoKind, RepoRef
from commonlab.db import utcnow
from commonlab.errors import ConfigError, Conflict
from commonlab.facility import Facility
from commonlab.identity import service as identity
from commonlab.identity.schemas import PersonCreate, TokenCreate
from commonlab.policy.principal import Principal
from commonlab.record.models import Entry
from tests.artifacts.helpers import safetensors_bytes

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass
class Lab:
    facility: Facility
    db: Session
    registry: Registry
    operator: Principal
    researcher: Principal

    @property
    def ns(self) -> str:
        return self.researcher.pseudonym


@pytest.fixture
def lab(facility: Facility) -> Iterator[Lab]:
    with facility.db.session() as db:
        operator = identity.authenticate(db, identity.bootstrap_operator(db) or "")
        person = identity.create_person(db, operator, PersonCreate(name="Amina Odhiambo"))
        _, secret = identity.issue_token(
            db, operator, person.id, TokenCreate(scopes=["read", "write"])
        )
        researcher = identity.authenticate(db, secret)
        assert not db.in_transaction()  # each use case opens and ends its own
        yield Lab(facility, db, registry_for(facility), operator, researcher)


def read(lab: Lab, query: Any) -> list[Any]:
    """Rows read in a session of their own, beside the one the use cases run in."""
    with lab.facility.db.session() as db:
        return list(db.execute(query).all())


def written(lab: Lab, use_case: Callable[[], T]) -> tuple[T, list[dict[str, Any]]]:
    """Run one use case; its result and the record entries it wrote, oldest first."""
    [(before,)] = read(lab, select(func.coalesce(func.max(Entry.id), 0)))
    result = use_case()
    rows = read(lab, select(Entry.body).where(Entry.id > before).order_by(Entry.id))
    return result, [json.loads(body) for (body,) in rows]


def refused(lab: Lab, error: type[E], use_case: Callable[[], Any]) -> tuple[E, list[Any]]:
    """Run a use case that must be refused with `error`; the error and the entries written."""

    def run() -> E:
        with pytest.raises(error) as caught:
            use_case()
        return caught.value

    return written(lab, run)


def digests(data: bytes) -> dict[str, Any]:
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
    }


def make_repo(lab: Lab, kind: RepoKind, name: str, **fields: Any) -> RepoRef:
    artifacts.create_repo(lab.db, lab.researcher, RepoCreate(kind=kind, name=name, **fields))
    return RepoRef(kind, lab.ns, name)


def upload(lab: Lab, repo: RepoRef, data: bytes) -> str:
    """Upload one file in one chunk, as its owner; its BLAKE3."""
    started = artifacts.start_upload(
        lab.db, lab.researcher, lab.registry, repo, UploadCreate(**digests(data))
    )
    if started.id is not None:
        done = artifacts.put_chunk(lab.db, lab.researcher, lab.registry, started.id, 0, [data])
        assert done.state == "complete"
    return blake3.blake3(data).hexdigest()


def publish_files(lab: Lab, repo: RepoRef, files: dict[str, bytes], **fields: Any) -> Any:
    entries = [{"path": path, "blake3": upload(lab, repo, data)} for path, data in files.items()]
    req = VersionCreate.model_validate({"files": entries, **fields})
    return artifacts.commit_version(lab.db, lab.researcher, lab.registry, repo, req)


# Each use case and its entry -----------------------------------------------------------------


def test_creating_a_repository_records_it_named_only_when_public(lab: Lab) -> None:
    _, (entry,) = written(
        lab,
        lambda: artifacts.create_repo(
            lab.db, lab.researcher, RepoCreate(kind=RepoKind.DATASET, name="swahili-asr")
        ),
    )
    assert entry["type"] == "artifacts:repo:created"
    assert entry["subject"] == f"datasets/{lab.ns}/swahili-asr"
    assert entry["actor"] == {"id": lab.ns}
    assert entry["data"] == {
        "level": "CL-1",
        "visibility": "public",
        "repository": f"{lab.ns}/swahili-asr",
        "kind": "dataset",
    }

    hidden, (entry,) = written(
        lab,
        lambda: artifacts.create_repo(
            lab.db,
            lab.researcher,
            RepoCreate(kind=RepoKind.MODEL, name="draft", visibility="private"),
        ),
    )
    assert entry["subject"] == f"artifact/{hidden.id}"
    assert entry["data"]["visibility"] == "private"
    assert set(entry["data"]["repository"]) == {"commitment"}  # the name, committed to


def test_an_upload_writes_no_entry_and_its_bytes_wait_for_a_version(lab: Lab) -> None:
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    data = b'{"text": "habari"}\n'
    b3, entries = written(lab, lambda: upload(lab, repo, data))
    assert entries == []
    assert lab.registry.store.holds(b3, len(data))
    # Already held by one of its finished uploads: no second upload is opened.
    again = artifacts.start_upload(
        lab.db, lab.researcher, lab.registry, repo, UploadCreate(**digests(data))
    )
    assert again.id is None and again.state == "complete"


def test_publishing_a_version_records_its_signature_and_its_tag(lab: Lab) -> None:
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    data = b'{"text": "habari", "license": "CC-BY-4.0"}\n'
    entries_ = [{"path": "train.jsonl", "blake3": upload(lab, repo, data)}]
    req = VersionCreate.model_validate(
        {"files": entries_, "licenses": ["CC-BY-4.0"], "tag": "first", "message": "v1"}
    )
    version, (published, tagged) = written(
        lab, lambda: artifacts.commit_version(lab.db, lab.researcher, lab.registry, repo, req)
    )
    assert version.number == 1 and version.total_bytes == len(data)
    assert published["type"] == "artifacts:dataset:published"
    assert published["subject"] == f"datasets/{lab.ns}/corpus@1"
    signature = version.envelope["signatures"][0]
    assert published["data"] == {
        "commit": version.commit,
        "statement_sha256": version.statement_sha256,
        "signature": signature["sig"],
        "key": signature["keyid"],
        "files": 1,
        "bytes": len(data),
        "level": "CL-1",
        "licenses": ["CC-BY-4.0"],
        "lineage": [],
        "job": None,
    }
    assert tagged["type"] == "artifacts:tag:created"
    assert tagged["data"] == {"tag": "first", "version": 1, "commit": version.commit, "from": None}
    # The upload became the version's file.
    assert read(lab, select(func.count()).select_from(Upload)) == [(0,)]


def test_a_tag_is_moved_only_when_asked_and_the_move_is_recorded(lab: Lab) -> None:
    repo = make_repo(lab, RepoKind.MODEL, "tiny")
    publish_files(lab, repo, {"a.txt": b"one"})
    two = publish_files(lab, repo, {"a.txt": b"two"})
    (_, moved), (created,) = written(
        lab, lambda: artifacts.set_tag(lab.db, lab.researcher, repo, "stable", TagUpdate(version=1))
    )
    assert not moved and created["type"] == "artifacts:tag:created"
    assert created["subject"] == f"models/{lab.ns}/tiny"
    _, nothing = refused(
        lab,
        Conflict,
        lambda: artifacts.set_tag(lab.db, lab.researcher, repo, "stable", TagUpdate(version=2)),
    )
    assert nothing == []
    (_, moved), (entry,) = written(
        lab,
        lambda: artifacts.set_tag(
            lab.db, lab.researcher, repo, "stable", TagUpdate(version=2, move=True)
        ),
    )
    assert moved and entry["type"] == "artifacts:tag:moved"
    assert entry["data"] == {"tag": "stable", "version": 2, "commit": two.commit, "from": 1}


def test_lineage_is_on_the_record_and_drawn_as_prov(lab: Lab) -> None:
    data = make_repo(lab, RepoKind.DATASET, "corpus")
    publish_files(lab, data, {"train.jsonl": b'{"text": "habari"}\n'})
    model = make_repo(lab, RepoKind.MODEL, "asr")
    source = f"datasets/{lab.ns}/corpus@1"
    lineage = [{"ref": source, "relation": "trained_on"}]
    _, (published,) = written(
        lab,
        lambda: publish_files(lab, model, {"w.bin": b"weights"}, lineage=lineage, job="ext-1"),
    )
    assert published["type"] == "artifacts:model:published"
    assert published["data"]["lineage"] == [f"trained_on:{source}"]
    assert published["data"]["job"] == "ext-1"

    graph, entries = written(lab, lambda: artifacts.lineage(lab.db, lab.researcher, model.at("1")))
    assert entries == []  # reading a public CL-1 version is not recorded
    assert graph["root"] == f"models/{lab.ns}/asr@1"
    assert graph["edges"] == [
        {"from": graph["root"], "to": source, "relation": "trained_on", "job": "ext-1"}
    ]
    down = artifacts.lineage(lab.db, lab.researcher, data.at("1"), direction="down")
    assert {node["ref"] for node in down["nodes"]} == {source, graph["root"]}
    prov = artifacts.prov_document(graph, base_url="https://lab.example")
    assert "job:ext-1" in prov["activity"]
    assert any(d["prov:usedEntity"] == source for d in prov["wasDerivedFrom"].values())


def test_collecting_garbage_records_what_it_removed(lab: Lab) -> None:
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    publish_files(lab, repo, {"keep.txt": b"keep me"})
    store = lab.registry.store
    orphan = store.put_stream([b"nobody references me"])
    done, (entry,) = written(
        lab, lambda: artifacts.collect_garbage(lab.db, lab.operator, lab.registry)
    )
    assert done == {"removed": 1, "bytes": orphan.size, "expired_uploads": 0}
    assert entry["type"] == "artifacts:store:collected"
    assert entry["subject"] == "artifacts/store"
    assert entry["data"] == done
    assert entry["actor"]["role"] == "operator"
    assert not store.exists(orphan.blake3)
    assert store.exists(blake3.blake3(b"keep me").hexdigest())


# Publishing: the files outside the transaction -----------------------------------------------


def test_publishing_reads_hashes_and_syncs_the_files_outside_any_transaction(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync, a safetensors header, the card, record summaries, the signature and the
    Croissant description are all done with no transaction open: none holds a lock on the
    database while the disks work."""
    seen: dict[str, bool] = {}

    def watched(owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] = lab.db.in_transaction()
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    watched(lab.registry.store, "make_durable")
    watched(publish.metadata, "read_safetensors_header")
    watched(publish.metadata, "parse_card")
    watched(publish.dataset_rows, "summarize")
    watched(publish.signing, "sign_statement")
    watched(publish.croissant_doc, "describe")
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    files = {
        "README.md": b"---\nlicense: cc-by-4.0\n---\n# Corpus\n",
        "train.jsonl": b'{"text": "habari"}\n',
        "probe.safetensors": safetensors_bytes(),
    }
    _, entries = written(lab, lambda: publish_files(lab, repo, files))
    assert [e["type"] for e in entries] == ["artifacts:dataset:published"]
    assert seen == {
        "make_durable": False,
        "read_safetensors_header": False,
        "parse_card": False,
        "summarize": False,
        "sign_statement": False,
        "describe": False,
    }


def test_a_version_published_meanwhile_takes_the_number_and_this_one_is_signed_again(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(lab, RepoKind.MODEL, "tiny")
    real_prepare = publish._prepare
    raced = []

    def prepare_while_another_publishes(registry: Any, plan: Any, req: Any) -> Any:
        prepared = real_prepare(registry, plan, req)
        if not raced:
            raced.append(plan.number)
            with lab.facility.db.session() as other:
                b3 = blake3.blake3(b"first").hexdigest()
                req_ = VersionCreate.model_validate({"files": [{"path": "a", "blake3": b3}]})
                artifacts.commit_version(other, lab.researcher, lab.registry, repo, req_)
        return prepared

    upload(lab, repo, b"first")
    upload(lab, repo, b"second")
    monkeypatch.setattr(publish, "_prepare", prepare_while_another_publishes)
    b3 = blake3.blake3(b"second").hexdigest()
    req = VersionCreate.model_validate({"files": [{"path": "a", "blake3": b3}]})
    version, entries = written(
        lab, lambda: artifacts.commit_version(lab.db, lab.researcher, lab.registry, repo, req)
    )
    assert raced == [1] and version.number == 2
    assert entries[-1]["subject"] == f"models/{lab.ns}/tiny@2"
    statement = artifacts.open_envelope(version.envelope, lab.registry.signer.verifier_key())
    assert statement["predicate"]["version"] == 2


def test_a_facility_job_is_refused_while_the_job_inputs_port_is_unconnected(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(lab, RepoKind.MODEL, "tiny")
    monkeypatch.setattr(ports, "_job_inputs", None)
    error, entries = refused(
        lab, ConfigError, lambda: publish_files(lab, repo, {"a": b"1"}, job="7")
    )
    assert entries == []
    assert "the job-inputs port is not connected" in error.message


# Garbage collection: files go only after the commit ------------------------------------------


def _expired_upload(lab: Lab, repo: RepoRef) -> str:
    """An upload opened and left: its row and part file, made a day and more old."""
    started = artifacts.start_upload(
        lab.db, lab.researcher, lab.registry, repo, UploadCreate(**digests(b"abandoned"))
    )
    assert started.id is not None
    with lab.facility.db.session() as db, db.begin():
        db.execute(
            update(Upload)
            .where(Upload.id == started.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    return started.id


def _no_row_names_a_missing_file(lab: Lab) -> None:
    store = lab.registry.store
    for b3, size in read(lab, select(VersionFile.blake3, VersionFile.size)):
        assert store.holds(b3, size)
    for upload_id, state, b3, size in read(
        lab, select(Upload.id, Upload.state, Upload.blake3, Upload.size)
    ):
        assert store.part_path(upload_id).exists() if state == "open" else store.holds(b3, size)


def test_a_collection_that_does_not_commit_deletes_nothing(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    store = lab.registry.store
    orphan = store.put_stream([b"nobody references me"])
    upload_id = _expired_upload(lab, repo)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away before the commit")

    monkeypatch.setattr(gc.record, "append", fail)
    _, entries = refused(
        lab, RuntimeError, lambda: artifacts.collect_garbage(lab.db, lab.operator, lab.registry)
    )
    assert entries == []
    assert store.exists(orphan.blake3)
    # The expired upload's row is still there, and so is its file.
    assert read(lab, select(Upload.id)) == [(upload_id,)]
    assert store.part_path(upload_id).exists()
    _no_row_names_a_missing_file(lab)


def test_a_crash_after_the_commit_leaves_files_the_next_collection_removes(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(lab, RepoKind.DATASET, "corpus")
    publish_files(lab, repo, {"keep.txt": b"keep me"})
    store = lab.registry.store
    orphan = store.put_stream([b"nobody references me"])
    upload_id = _expired_upload(lab, repo)

    def crash(b3: str) -> int:
        raise KeyboardInterrupt  # the process dies between the commit and the deletes

    monkeypatch.setattr(store, "remove", crash)
    _, (entry,) = refused(
        lab,
        KeyboardInterrupt,
        lambda: artifacts.collect_garbage(lab.db, lab.operator, lab.registry),
    )
    # Committed: the expired upload is forgotten and the entry written; the files are left.
    assert entry["data"] == {"removed": 1, "bytes": orphan.size, "expired_uploads": 1}
    assert store.exists(orphan.blake3)
    _no_row_names_a_missing_file(lab)

    monkeypatch.undo()
    done, (entry,) = written(
        lab, lambda: artifacts.collect_garbage(lab.db, lab.operator, lab.registry)
    )
    assert done == {"removed": 1, "bytes": orphan.size, "expired_uploads": 0}
    assert not store.exists(orphan.blake3)
    assert not store.part_path(upload_id).exists()
    assert store.exists(blake3.blake3(b"keep me").hexdigest())
    _no_row_names_a_missing_file(lab)
