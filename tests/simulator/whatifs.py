"""A council with an adopt_regulation motion, and what-if bodies, for the API and portal
tests of simulations attached to motions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from commonlab.regulation.document import Regulation, default_regulation, regulation_hash
from tests import helpers

PROPOSED = {
    "title": "More for open calls",
    "capacity": {
        "national_pools": "40",
        "open_calls": "40",
        "smes_and_public_bodies": "15",
        "directors_reserve": "5",
    },
}


def found_council(client: Any, operator: dict[str, str]) -> dict[str, dict[str, str]]:
    """A founded council of five, one delegate each; returns code → the delegate's headers."""
    tokens = helpers.found_council(client, operator, helpers.FOUNDERS)
    return {code: helpers.auth(token) for code, token in tokens.items()}


def table(client: Any, headers: dict[str, str], kind: str, payload: dict[str, Any]) -> int:
    body = {
        "kind": kind,
        "title": f"A {kind.replace('_', ' ')} motion",
        "payload": payload,
        "closes_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    }
    response = client.post("/api/v1/motions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _figures(waits: dict[str, float], entitled: dict[str, float]) -> dict[str, Any]:
    return {
        "utilisation": 0.8,
        "idle_while_waiting_fraction": 0.01,
        "mean_jct_h": 1.5,
        "p99_jct_h": 9.0,
        "mean_wait_h": sum(waits.values()) / len(waits),
        "p99_wait_h": 2.0,
        "makespan_days": 1.2,
        "max_shortfall_hour": 0.05,
        "jain_hour": 0.9,
        "pools": {
            pool: {
                "entitled": entitled[pool],
                "jobs": 100,
                "mean_wait_h": wait,
                "p99_wait_h": wait * 3,
                "delivered": 0.25,
                "max_abs_deviation_hour": 0.04,
            }
            for pool, wait in waits.items()
        },
    }


def whatif_body() -> dict[str, Any]:
    """A comparison of PROPOSED with the provisional regulation (version 0)."""
    provisional = default_regulation()
    return {
        "policy": "commonlab",
        "workload": {
            "traces": ["jobs.csv"],
            "jobs": 400,
            "accelerators_requested": 900,
            "submission_hours": 3.3,
            "fleet_accelerators": 16,
            "how": ["stacked 1 copy of jobs.csv", "dealt 4 clusters to 4 pools"],
            "set_aside": {},
            "contribution_scale": {"IT": "25", "FR": "25", "DE": "20", "ES": "15", "SE": "15"},
        },
        "in_force": {
            "regulation": {
                "title": provisional.title,
                "sha256": regulation_hash(provisional),
                "version": 0,
            },
            "figures": _figures(
                {"national:IT": 0.5, "open_calls": 1.25}, {"national:IT": 0.1, "open_calls": 0.3}
            ),
        },
        "proposed": {
            "regulation": {
                "title": PROPOSED["title"],
                "sha256": regulation_hash(Regulation.model_validate(PROPOSED)),
            },
            "figures": _figures(
                {"national:IT": 0.75, "open_calls": 0.5}, {"national:IT": 0.1, "open_calls": 0.4}
            ),
        },
    }


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` set to `value`."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[key]
    node[last] = value
    return result
