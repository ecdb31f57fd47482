"""`commonlab up --demo` seeds a facility a newcomer can look at, all of it on the record."""

from __future__ import annotations

from commonlab.demo import seed_demo
from commonlab.identity.service import bootstrap_operator
from commonlab.record.verify import verify_store
from tests.helpers import sequence_now


def test_the_demo_facility(client, app, facility):
    with facility.db.session() as session:
        assert bootstrap_operator(session) is not None
    with facility.db.session() as session:
        assert seed_demo(session) is True
    with facility.db.session() as session:
        assert seed_demo(session) is False  # only on first start
    members = client.get("/api/v1/members").json()
    assert [m["code"] for m in members] == ["DE", "ES", "FR", "IT", "SE"]
    motions = client.get("/api/v1/motions").json()["items"]
    assert [m["status"] for m in motions] == ["passed", "open", "open"]
    assert client.get("/api/v1/regulations/in-force").json()["version"] == 1
    allocations = client.get("/api/v1/allocations").json()["items"]
    assert sorted(a["status"] for a in allocations) == [
        "active",
        "active",
        "active",
        "awaiting_council",
    ]
    sequence_now(app)
    with facility.db.session() as session:
        report = verify_store(session, facility.signer_verifier())
    assert report.ok, report.problems
    assert report.entries > 60
