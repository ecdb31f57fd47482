"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sequence_now(app: Any) -> int:
    """Fold every committed entry into the tree and sign, as the sequencer thread would."""
    return int(app.state.sequencer.run_once())


def record_entries(client: TestClient, app: Any, **filters: Any) -> list[dict[str, Any]]:
    """Every sequenced record entry (sequencing first), filtered like the API filters."""
    sequence_now(app)
    items: list[dict[str, Any]] = []
    after = None
    while True:
        params = {**filters, "limit": 500, **({"after": after} if after is not None else {})}
        page = client.get("/api/v1/record/entries", params=params).json()
        items.extend(item["entry"] for item in page["items"])
        after = page["next"]
        if after is None:
            return items


def problem(response: Any) -> dict[str, Any]:
    """The problem+json body of an error response, checked to be one."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = json.loads(response.text)
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == response.status_code
    return body


def found_council(
    client: TestClient, operator: dict[str, str], founders: list[dict[str, str]]
) -> dict[str, str]:
    """Found the council through the API with one delegate per state; code → their token."""
    response = client.post("/api/v1/members", json={"members": founders}, headers=operator)
    assert response.status_code == 201, response.text
    tokens = {}
    for member in founders:
        person = client.post(
            "/api/v1/people",
            json={"name": f"Delegate of {member['name']}", "roles": ["delegate"]},
            headers=operator,
        ).json()
        appointed = client.post(
            f"/api/v1/members/{member['code']}/delegates",
            json={"person_id": person["id"]},
            headers=operator,
        )
        assert appointed.status_code == 201, appointed.text
        tokens[member["code"]] = client.post(
            f"/api/v1/people/{person['id']}/tokens",
            json={"scopes": ["read", "write"]},
            headers=operator,
        ).json()["token"]
    return tokens


def close_when_due(db: Any, motion_id: int, *, hours: float = 1) -> None:
    """Close a motion as its deadline would (`hours` from now), unless it is decided already:
    the vote of the last member state closes a motion at once."""
    from datetime import UTC, datetime, timedelta

    from commonlab.governance.models import Motion
    from commonlab.governance.service import close_motion
    from commonlab.policy.principal import SYSTEM

    with db.session() as session:
        with session.begin():
            status = session.get_one(Motion, motion_id).status
        if status == "open":
            close_motion(session, SYSTEM, motion_id, now=datetime.now(UTC) + timedelta(hours=hours))
