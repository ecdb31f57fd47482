"""Small helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from fastapi.testclient import TestClient

# The member states most council tests found the council with; contributions sum to 100.
FOUNDERS = [
    {"code": "IT", "name": "Italy", "contribution": "25"},
    {"code": "FR", "name": "France", "contribution": "25"},
    {"code": "DE", "name": "Germany", "contribution": "20"},
    {"code": "ES", "name": "Spain", "contribution": "15"},
    {"code": "SE", "name": "Sweden", "contribution": "15"},
]
_STATE_NAMES = {m["code"]: m["name"] for m in FOUNDERS} | {"KE": "Kenya"}


def founders(*codes: str) -> list[dict[str, str]]:
    """Member states that found a council with equal contributions (100 split evenly)."""
    assert 100 % len(codes) == 0, "equal contributions must sum to exactly 100"
    share = str(100 // len(codes))
    return [{"code": code, "name": _STATE_NAMES[code], "contribution": share} for code in codes]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_institutions(client: TestClient, operator: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Three institutions in three states, registered by the operator: country → institution."""
    made = {}
    for name, country, kind in [
        ("University of Nairobi", "KE", "university"),
        ("Sapienza", "IT", "university"),
        ("Inria", "FR", "research_lab"),
    ]:
        response = client.post(
            "/api/v1/institutions",
            json={"name": name, "country": country, "kind": kind},
            headers=operator,
        )
        assert response.status_code == 201, response.text
        made[country] = dict(response.json())
    return made


def new_person(
    client: TestClient,
    operator: dict[str, str],
    name: str = "Wanjiru Kamau",
    roles: Sequence[str] = (),
    institution_id: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A person the operator registers through the API."""
    body = {"name": name, "roles": list(roles), **fields}
    if institution_id is not None:
        body["institution_id"] = institution_id
    response = client.post("/api/v1/people", json=body, headers=operator)
    assert response.status_code == 201, response.text
    return dict(response.json())


def token_for(
    client: TestClient,
    operator: dict[str, str],
    person_id: int,
    *,
    scopes: Sequence[str] = ("read", "write"),
) -> str:
    """A bearer token the operator issues to `person_id`."""
    response = client.post(
        f"/api/v1/people/{person_id}/tokens", json={"scopes": list(scopes)}, headers=operator
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def person_with_token(
    client: TestClient,
    operator: dict[str, str],
    name: str = "Amina Odhiambo",
    roles: Sequence[str] = (),
    institution_id: int | None = None,
    *,
    scopes: Sequence[str] = ("read", "write"),
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new person and the Authorization header of a token of theirs."""
    person = new_person(client, operator, name, roles, institution_id)
    return person, auth(token_for(client, operator, person["id"], scopes=scopes))


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
    """The problem+json body of an error response, checked to be one, less its request id
    (checked to be the answer's own): two refusals that say the same differ only there."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = json.loads(response.text)
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == response.status_code
    request_id = body.pop("request_id", None)
    assert request_id is None or request_id == response.headers.get("x-request-id"), body
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


# Clients made by `http_client`, closed after every test by tests/conftest.py.
OPEN_CLIENTS: list[httpx.Client] = []


def http_client(**options: Any) -> httpx.Client:
    """An httpx client closed when the test ends: one left open leaks its socket, and the
    warning that leak raises surfaces in whichever later test the garbage collector happens
    to run in, failing it."""
    client = httpx.Client(**options)
    OPEN_CLIENTS.append(client)
    return client


def bench_script(name: str) -> ModuleType:
    """bench/<name>.py loaded as a module, for the tests that run a bench on something
    small so that it cannot rot as the code it calls changes."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
