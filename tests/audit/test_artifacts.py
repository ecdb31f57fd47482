"""The artifacts book (on the whole demo: tests/audit/test_the_whole_demo.py): a licence or a
tag changed in the database behind the service's back is named, and so is a signature on the
record that does not sign the served statement, or that a key other than the log's made."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from commonlab.audit.artifacts import VALID, ArtifactsBook, checkpoint_key, signature_verdict
from commonlab.audit.log import Entry
from commonlab.audit.replay import Replay
from commonlab.record.note import Signer
from tests.artifacts.helpers import push
from tests.audit.audited import (
    audit_test_facility,
    claims,
    read_test_log,
    with_entry,
)
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.helpers import person_with_token

TEXT = b'{"text": "habari ya asubuhi", "source": "radio-1", "license": "CC-BY-4.0"}\n' * 3


# A facility of the test's own ------------------------------------------------------------------


@pytest.fixture
def published(client, operator):
    """A public dataset with one version, licensed CC-BY-4.0, tagged v1."""
    _, headers = person_with_token(client, operator)
    made = client.post(
        "/api/v1/artifacts/repos", json={"kind": "dataset", "name": "swahili"}, headers=headers
    )
    assert made.status_code == 201, made.text
    repo = f"datasets/{made.json()['repo_id']}"
    version = push(client, headers, repo, {"train.jsonl": TEXT}, licenses=["CC-BY-4.0"], tag="v1")
    assert version.status_code == 201, version.text
    return repo


def test_a_facility_that_agrees_has_no_differences(client, app, facility, published):
    findings = audit_test_facility(client, app, facility)
    assert claims(findings, "artifacts") == {}
    assert findings.checked["artifacts"] > 20


def test_a_licence_changed_in_the_database_is_named(client, app, facility, published):
    with facility.db.session() as session, session.begin():
        session.execute(text("UPDATE artifacts_versions SET licenses = '[\"MIT\"]'"))
    findings = audit_test_facility(client, app, facility)
    assert claims(findings, "artifacts") == {
        f"{published}@1 licences": (["CC-BY-4.0"], ["MIT"]),
    }


def test_a_tag_moved_in_the_database_is_named(client, app, facility, published):
    with facility.db.session() as session, session.begin():
        session.execute(text("DELETE FROM artifacts_tags"))
    findings = audit_test_facility(client, app, facility)
    assert claims(findings, "artifacts") == {f"{published} tags": ({"v1": 1}, {})}


def _publication(log) -> Entry:
    [entry] = [e for e in log.entries if e.type == "artifacts:dataset:published"]
    return entry


def test_a_forged_signature_on_the_record_is_named(client, app, facility, published):
    log = read_test_log(client, app, facility)
    entry = _publication(log)
    forged = base64.b64encode(bytes(64)).decode()
    findings = audit_test_facility(
        client, app, facility, with_entry(log, entry.index, signature=forged)
    )
    found = claims(findings, "artifacts")
    assert set(found) == {f"{published}@1 signature", f"{published}@1 envelope's signature"}
    assert found[f"{published}@1 signature"] == (
        VALID,
        "the signature does not verify over the statement",
    )


def test_a_signature_by_another_key_is_named_though_it_verifies(client, app, facility, published):
    """A valid signature by a key the facility does not sign its log with is still a
    difference: anyone can make a key of the same name."""
    log = read_test_log(client, app, facility)
    entry = _publication(log)
    payload = base64.b64decode(
        client.get(f"/api/v1/artifacts/{published}/versions/1/signature").json()["envelope"][
            "payload"
        ]
    )
    other = Signer(facility.signer.name, Ed25519PrivateKey.generate())
    kind = b"application/vnd.in-toto+json"
    signed = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    sig = base64.b64encode(other.sign(signed)).decode()
    assert signature_verdict(other.verifier_key(), sig, payload) == VALID
    forged = with_entry(log, entry.index, signature=sig, key=other.verifier_key())
    found = claims(audit_test_facility(client, app, facility, forged), "artifacts")
    assert set(found) == {
        f"{published}@1 signed by the log's key",
        f"{published}@1 envelope's signature",
        f"{published}@1 verifier key",
    }
    log_key = "{}+{:08x}".format(*checkpoint_key(log.note))
    assert found[f"{published}@1 signed by the log's key"] == (
        log_key,
        f"{other.name}+{other.key_id:08x}",
    )


def test_a_version_of_a_repository_never_created_is_named(client, app, facility, published):
    log = read_test_log(client, app, facility)
    book = ArtifactsBook(log.note)
    Replay([book]).feed(e for e in log.entries if e.type != "artifacts:repo:created")
    assert book.orphans == [f"{published}@1", f"{published} tag"]
