"""`commonlab up --demo` seeds a facility a newcomer can look at, all of it on the record."""

from __future__ import annotations

from commonlab.demo import seed_demo
from commonlab.identity.service import bootstrap_operator
from commonlab.record.verify import verify_store
from tests.compute.helpers import run_until
from tests.helpers import auth, sequence_now


def test_the_demo_facility(client, app, facility):
    with facility.db.session() as session:
        assert bootstrap_operator(session) is not None
    with facility.db.session() as session:
        pi_token = seed_demo(session)
    assert pi_token is not None
    with facility.db.session() as session:
        assert seed_demo(session) is None  # only on first start
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
    # The PI's token runs a job on the local machine, charged to her project's CPU hours.
    project = next(a["project"] for a in allocations if a["title"] == "Swahili speech recognition")
    job = client.post(
        "/api/v1/jobs",
        json={"project": project, "command": "echo hello", "accelerator": "cpu"},
        headers=auth(pi_token),
    )
    assert job.status_code == 201, job.text
    done = run_until(app.state.jobs, client, job.json()["id"], auth(pi_token), {"succeeded"})
    assert done["partition"] == "local"
    sequence_now(app)
    with facility.db.session() as session:
        report = verify_store(session, facility.signer_verifier())
    assert report.ok, report.problems
    assert report.entries > 60
