from tests.helpers import record_entries


def test_operator_creates_institution_and_it_is_recorded(client, app, operator):
    response = client.post(
        "/api/v1/institutions",
        json={"name": "University of Nairobi", "country": "ke", "kind": "university"},
        headers=operator,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["country"] == "KE"
    entries = record_entries(client, app, type="identity:institution")
    assert [e["type"] for e in entries] == ["identity:institution:created"]
    assert entries[0]["data"] == {"name": "University of Nairobi", "country": "KE", "kind": "university"}
    assert entries[0]["actor"]["role"] == "operator"
