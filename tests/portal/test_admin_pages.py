"""The operators' page through the ASGI app (SQLite and PostgreSQL): people with their roles,
institutions, working tokens and the nodes out of service, for operators only."""

from __future__ import annotations

from tests.portal.helpers import sign_in
from tests.portal.test_allocation_pages import _text


def test_an_operator_sees_people_tokens_and_drained_nodes(client, operator, operator_token):
    client.put(
        "/api/v1/fleet",
        json={
            "sites": [{"name": "bologna", "country": "IT"}],
            "partitions": [
                {"name": "booster", "site": "bologna", "accelerator": "H100", "nodes": 3,
                 "accelerators_per_node": 4}
            ],
        },
        headers=operator,
    )  # fmt: skip
    drained = client.post(
        "/api/v1/fleet/nodes/booster-2/state", json={"state": "drain"}, headers=operator
    )
    assert drained.status_code == 200, drained.text
    inst = client.post(
        "/api/v1/institutions",
        json={"name": "University of Nairobi", "country": "KE", "kind": "university"},
        headers=operator,
    ).json()
    person = client.post(
        "/api/v1/people",
        json={"name": "Asha Mwangi", "roles": ["reviewer"], "institution_id": inst["id"]},
        headers=operator,
    ).json()
    token = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    ).json()["token"]
    revoked = client.post(
        f"/api/v1/people/{person['id']}/tokens", json={"scopes": ["read"]}, headers=operator
    ).json()
    client.delete(f"/api/v1/tokens/{revoked['id']}", headers=operator)

    assert client.get("/admin", follow_redirects=False).status_code == 303  # sign in first
    sign_in(client, token)
    refused = client.get("/admin")
    assert refused.status_code == 403 and "operators" in refused.text

    sign_in(client, operator_token)
    assert 'href="/admin"' in client.get("/me").text
    page = client.get("/admin")
    assert page.status_code == 200, page.text[:300]
    text = _text(page.text)
    assert "Asha Mwangi" in text and "reviewer" in text and "Facility operator" in text
    assert "University of Nairobi KE · university" in text
    # The operator's token and Asha's working one; her revoked one is not counted.
    assert "Working tokens 2 people's, 0 running jobs'" in text
    assert "Nodes out of service 1" in text and "booster-2 booster drain" in text
