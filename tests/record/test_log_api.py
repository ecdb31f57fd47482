"""The record as served: checkpoints, tiles and entry bundles byte-exact to C2SP, proofs that
verify, witnesses and cosignatures, and refusals of bad input. SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest

from commonlab import record
from commonlab.config import Settings
from commonlab.policy.principal import SYSTEM
from commonlab.record.checkpoint import CosignatureSigner, cosign, generate_witness, open_checkpoint
from commonlab.record.merkle import (
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from commonlab.record.tiles import decode_entry_bundle
from commonlab.record.watch import Watcher
from tests.helpers import problem, sequence_now
from tests.record.events import SampleEvent


@pytest.fixture
def settings(tmp_path, database):
    """These tests count entries from an empty log. On the local executor a facility's first
    start records the machine as its fleet; a facility on Slurm records nothing at start."""
    return Settings(home=tmp_path / "home", database_url=database, executor="slurm")


def append_many(facility, count, *, kind=SampleEvent.Entry):
    with facility.db.session() as session, session.begin():
        for i in range(count):
            record.append(session, kind, actor=SYSTEM, subject=f"thing/{i}", data={"i": i})


def bodies_in_order(client, app):
    sequence_now(app)
    out, after = [], None
    while True:
        params = {"limit": 500, **({"after": after} if after is not None else {})}
        page = client.get("/api/v1/record/entries", params=params).json()
        out.extend(page["items"])
        after = page["next"]
        if after is None:
            return out


def test_checkpoint_is_signed_by_the_published_key(client, app, facility):
    append_many(facility, 3)
    sequence_now(app)
    key = client.get("/api/v1/record/key").json()
    assert key["origin"] == facility.origin
    note = client.get("/log/checkpoint")
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint, _ = open_checkpoint(
        note.content, origin=key["origin"], verifier=key["verifier_key"]
    )
    assert checkpoint.size == 3


def test_tiles_and_bundles_are_byte_exact(client, app, facility):
    append_many(facility, 300)
    sequence_now(app)
    items = bodies_in_order(client, app)
    leaves = [bytes.fromhex(item["leaf_hash"]) for item in items]
    assert len(leaves) == 300
    full = client.get("/log/tile/0/000")
    assert full.content == b"".join(leaves[:256])
    assert "immutable" in full.headers["cache-control"]
    partial = client.get("/log/tile/0/001.p/44")
    assert partial.content == b"".join(leaves[256:300])
    assert client.get("/log/tile/1/000.p/1").content == root_from_leaf_hashes(leaves[:256])
    bundle = decode_entry_bundle(client.get("/log/tile/entries/000").content)
    assert [leaf_hash(entry) for entry in bundle] == leaves[:256]
    # A narrower partial than stored is a prefix; the bundle too.
    assert client.get("/log/tile/0/001.p/2").content == b"".join(leaves[256:258])
    short = decode_entry_bundle(client.get("/log/tile/entries/001.p/3").content)
    assert len(short) == 3


@pytest.mark.parametrize(
    "path",
    [
        "/log/tile/0/001",  # the full tile does not exist yet
        "/log/tile/0/001.p/45",  # wider than the tree
        "/log/tile/0/1",  # non-canonical index
        "/log/tile/0/x000/001",
        "/log/tile/0/000.p/0",
        "/log/tile/0/000.p/256",
        "/log/tile/64/000",
        "/log/tile/entries/002",
        "/log/tile/nonsense",
        "/log/tile/0/../../etc/passwd",
    ],
)
def test_missing_or_malformed_tiles_are_404(client, app, facility, path):
    append_many(facility, 300)
    sequence_now(app)
    assert client.get(path).status_code == 404


def test_inclusion_proofs_verify_by_index_and_by_hash(client, app, facility):
    append_many(facility, 37)
    sequence_now(app)
    items = bodies_in_order(client, app)
    for index in (0, 5, 36):
        proof = client.get("/api/v1/record/proofs/inclusion", params={"index": index}).json()
        verify_inclusion(
            bytes.fromhex(proof["leaf_hash"]),
            proof["index"],
            proof["size"],
            [base64.b64decode(h) for h in proof["proof"]],
            base64.b64decode(proof["root_hash"]),
        )
    by_hash = client.get(
        "/api/v1/record/proofs/inclusion", params={"hash": items[7]["leaf_hash"], "size": 20}
    ).json()
    assert by_hash["index"] == 7 and by_hash["size"] == 20


def test_consistency_proofs_verify(client, app, facility):
    append_many(facility, 10)
    sequence_now(app)
    append_many(facility, 25)
    sequence_now(app)
    proof = client.get("/api/v1/record/proofs/consistency", params={"old": 10}).json()
    verify_consistency(
        proof["old_size"],
        proof["new_size"],
        [base64.b64decode(h) for h in proof["proof"]],
        base64.b64decode(proof["old_root"]),
        base64.b64decode(proof["new_root"]),
    )


def test_a_consistency_proof_starts_at_the_old_size_asked_for(client, app, facility):
    """A proof from the wrong old tree still verifies against itself: only its old size and
    root, compared with what was signed then, show the server honoured `old`."""
    key = client.get("/api/v1/record/key").json()

    def signed() -> tuple[int, bytes]:
        note = client.get("/log/checkpoint").content
        checkpoint, _ = open_checkpoint(note, origin=key["origin"], verifier=key["verifier_key"])
        return checkpoint.size, checkpoint.root_hash

    append_many(facility, 10)
    sequence_now(app)
    then = signed()
    append_many(facility, 25)
    sequence_now(app)
    now = signed()
    leaves = [bytes.fromhex(item["leaf_hash"]) for item in bodies_in_order(client, app)]
    for old, old_root in [(then[0], then[1]), (7, root_from_leaf_hashes(leaves[:7]))]:
        proof = client.get("/api/v1/record/proofs/consistency", params={"old": old}).json()
        assert proof["old_size"] == old
        assert base64.b64decode(proof["old_root"]) == old_root
        assert (proof["new_size"], base64.b64decode(proof["new_root"])) == now
        verify_consistency(
            old, now[0], [base64.b64decode(h) for h in proof["proof"]], old_root, now[1]
        )


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/record/proofs/inclusion", {"index": 99}, 404),
        ("/api/v1/record/proofs/inclusion", {"index": 3, "size": 2}, 422),
        ("/api/v1/record/proofs/inclusion", {"index": 1, "size": 999}, 422),
        ("/api/v1/record/proofs/inclusion", {}, 422),
        ("/api/v1/record/proofs/inclusion", {"index": 1, "hash": "00" * 32}, 422),
        ("/api/v1/record/proofs/inclusion", {"hash": "zz"}, 422),
        ("/api/v1/record/proofs/inclusion", {"hash": "ab" * 32}, 404),
        ("/api/v1/record/proofs/inclusion", {"index": -1}, 422),
        ("/api/v1/record/proofs/inclusion", {"index": 2**70}, 422),
        ("/api/v1/record/proofs/consistency", {"old": 9, "new": 4}, 422),
        ("/api/v1/record/proofs/consistency", {"old": 1, "new": 99}, 422),
        ("/api/v1/record/proofs/consistency", {}, 422),
        ("/api/v1/record/entries/99", {}, 404),
        ("/api/v1/record/entries/-3", {}, 422),
        ("/api/v1/record/entries", {"limit": 0}, 422),
    ],
)
def test_bad_record_queries_are_4xx(client, app, facility, path, params, status):
    append_many(facility, 5)
    sequence_now(app)
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    problem(response)


def test_entries_filter_by_type_prefix_and_subject(client, app, facility):
    append_many(facility, 3, kind=SampleEvent.Alpha)
    append_many(facility, 2, kind=SampleEvent.Beta)
    sequence_now(app)
    alpha = client.get("/api/v1/record/entries", params={"type": "test:alpha"}).json()["items"]
    assert len(alpha) == 3
    both = client.get("/api/v1/record/entries", params={"type": "test"}).json()["items"]
    assert len(both) == 5
    one = client.get("/api/v1/record/entries", params={"subject": "thing/1"}).json()["items"]
    assert [i["entry"]["type"] for i in one] == ["test:alpha", "test:beta"]
    entry = client.get("/api/v1/record/entries/4").json()
    assert entry["entry"]["data"] == {"i": 1} and entry["index"] == 4


def test_a_rolled_back_change_leaves_no_entry(client, app, facility):
    with facility.db.session() as session, pytest.raises(RuntimeError), session.begin():
        record.append(session, SampleEvent.Doomed, actor=SYSTEM, subject="x", data={})
        raise RuntimeError("the change failed after its entry was written")
    assert sequence_now(app) == 0
    assert client.get("/api/v1/record/entries").json()["items"] == []


def test_entries_are_canonical_json_and_private_fields_are_commitments(facility, app, client):
    with facility.db.session() as session, session.begin():
        record.append(
            session,
            SampleEvent.Private,
            actor=SYSTEM,
            subject="tenant/1",
            data={"b": 1, "a": [1, 2]},
            private={"secret": "the tenant's data"},
        )
    sequence_now(app)
    bundle = decode_entry_bundle(client.get("/log/tile/entries/000.p/1").content)
    text = bundle[0].decode()
    assert text.startswith(
        '{"actor":{"id":"system"},"data":{"a":[1,2],"b":1,"secret":{"commitment":"sha256:'
    )
    assert "the tenant's data" not in text


# Witnesses -----------------------------------------------------------------------------------


def test_witness_cosigns_and_the_checkpoint_carries_it(client, app, facility, operator, tmp_path):
    skey, vkey = generate_witness("audit.example.ee")
    response = client.post(
        "/api/v1/record/witnesses",
        json={"name": "audit.example.ee", "verifier_key": vkey},
        headers=operator,
    )
    assert response.status_code == 201, response.text
    append_many(facility, 4)
    sequence_now(app)
    watcher = Watcher("http://testserver", state_path=tmp_path / "w.json", http=client)
    seen = watcher.check_once()
    body = seen.note.split("\n\n", 1)[0] + "\n"
    line = cosign(body, CosignatureSigner.from_key(skey), timestamp=1_700_000_000)
    accepted = client.post(
        "/api/v1/record/cosignatures", json={"size": seen.size, "cosignature": line}
    )
    assert accepted.status_code == 201, accepted.text
    served = client.get("/log/checkpoint").content
    _, cosigs = open_checkpoint(
        served,
        origin=facility.origin,
        verifier=facility.signer.verifier_key(),
        witnesses=[vkey],
    )
    assert [c.timestamp for c in cosigs] == [1_700_000_000]


def test_bad_witnesses_and_cosignatures_are_refused(client, app, facility, operator):
    skey, vkey = generate_witness("w1")
    assert (
        client.post(
            "/api/v1/record/witnesses", json={"name": "w1", "verifier_key": vkey}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/record/witnesses", json={"name": "w2", "verifier_key": vkey}, headers=operator
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/record/witnesses",
            json={"name": "w1", "verifier_key": facility.signer.verifier_key()},
            headers=operator,
        ).status_code
        == 422
    )
    client.post(
        "/api/v1/record/witnesses", json={"name": "w1", "verifier_key": vkey}, headers=operator
    )
    sequence_now(app)
    size = client.get("/api/v1/record/checkpoint").json()["size"]
    body = client.get("/log/checkpoint").text.split("\n\n", 1)[0] + "\n"
    stranger_key, _ = generate_witness("stranger")
    for line, fragment in [
        (cosign(body, CosignatureSigner.from_key(stranger_key), timestamp=1), "not a registered"),
        ("— w1 " + base64.b64encode(bytes(76)).decode() + "\n", "does not verify"),
        ("garbage", "signature line"),
    ]:
        response = client.post(
            "/api/v1/record/cosignatures", json={"size": size, "cosignature": line}
        )
        assert response.status_code == 422, response.text
        assert fragment in problem(response)["detail"]
    good = cosign(body, CosignatureSigner.from_key(skey), timestamp=5)
    assert (
        client.post(
            "/api/v1/record/cosignatures", json={"size": size + 50, "cosignature": good}
        ).status_code
        == 404
    )
    other_body = body.replace(f"\n{size}\n", f"\n{size + 1}\n")
    forged = cosign(other_body, CosignatureSigner.from_key(skey), timestamp=5)
    assert (
        client.post(
            "/api/v1/record/cosignatures", json={"size": size, "cosignature": forged}
        ).status_code
        == 422
    )


def test_an_auditor_opens_a_commitment_and_the_opening_is_recorded(client, app, operator):
    import hashlib

    from commonlab.record.canonical import canonical_json
    from tests.helpers import auth, record_entries

    person = client.post(
        "/api/v1/people",
        json={"name": "Marco Bianchi", "email": "m@mef.gov.it", "roles": ["auditor"]},
        headers=operator,
    ).json()
    auditor = auth(
        client.post(
            f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
        ).json()["token"]
    )
    sequence_now(app)
    created = client.get(
        "/api/v1/record/entries", params={"subject": f"person/{person['pseudonym']}"}
    ).json()["items"][0]
    url = f"/api/v1/record/entries/{created['index']}/openings/email"
    assert client.get(url).status_code == 403
    opened = client.get(url, headers=auditor).json()
    assert opened["value"] == "m@mef.gov.it"
    digest = hashlib.sha256(
        bytes.fromhex(opened["salt"]) + canonical_json(opened["value"])
    ).hexdigest()
    assert created["entry"]["data"]["email"]["commitment"] == f"sha256:{digest}"
    assert (
        client.get(
            f"/api/v1/record/entries/{created['index']}/openings/nothing", headers=auditor
        ).status_code
        == 404
    )
    opened_entries = record_entries(client, app, type="record:commitment:opened")
    assert [e["data"] for e in opened_entries] == [{"field": "email"}]
    assert "m@mef.gov.it" not in str(opened_entries)


def test_a_savepoint_rollback_takes_back_only_its_own_entries(client, app, facility):
    with facility.db.session() as session, session.begin():
        record.append(session, SampleEvent.Kept, actor=SYSTEM, subject="a", data={})
        with pytest.raises(RuntimeError), record.savepoint(session):
            record.append(session, SampleEvent.Undone, actor=SYSTEM, subject="b", data={})
            raise RuntimeError("the effect failed")
        record.append(session, SampleEvent.Kept, actor=SYSTEM, subject="c", data={})
    sequence_now(app)
    items = client.get("/api/v1/record/entries").json()["items"]
    assert [(i["entry"]["type"], i["entry"]["subject"]) for i in items] == [
        ("test:kept", "a"),
        ("test:kept", "c"),
    ]
