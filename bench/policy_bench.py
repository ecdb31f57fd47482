"""Authorization throughput: the policy set parsed once vs re-parsed on every call.

Run: PYTHONPATH=src .venv/bin/python bench/policy_bench.py [--seconds 2]
Prints decisions/s for `policy.decide` (cached PolicySet and Schema) beside the same code
path handed the policy text each call (the baseline), and the bare Cedar call both ways.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import cedarpy

from commonlab.policy import engine
from commonlab.policy.actions import Action
from commonlab.policy.levels import Clearance, Level
from commonlab.policy.principal import PUBLIC, Principal, Role, Scope
from commonlab.policy.resources import Resource

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _requests() -> list[tuple[Principal, Action, Resource, dict[str, object]]]:
    researcher = Principal(
        "r-7",
        person_id=7,
        roles=frozenset({Role.RESEARCHER}),
        scopes=frozenset({Scope.WRITE}),
        clearance=Clearance(Level.CL3, NOW + timedelta(days=90), frozenset({"bio"})),
        projects=frozenset({"p-12"}),
    )
    operator = Principal(
        "op-1", person_id=1, roles=frozenset({Role.OPERATOR}), scopes=frozenset({Scope.ADMIN})
    )
    secret = Resource("artifact", "a-1", Level.CL3, frozenset({"bio"}), project="p-12")
    return [
        (researcher, Action.ResourceRead, secret, {}),  # allow
        (researcher, Action.ResourceRead, Resource("artifact", "a-2", Level.CL4), {}),  # deny
        (researcher, Action.ResourceWrite, secret, {"data_level": Level.CL3}),  # allow
        (researcher, Action.JobPlace, Resource.partition("gpu-a", Level.CL2), {"job_level": 3}),
        (operator, Action.PersonCreate, Resource.people(), {}),  # allow
        (researcher, Action.PersonCreate, Resource.people(), {}),  # deny (scope)
        (operator, Action.RoleGrant, Resource.person(1), {}),  # deny (self)
        (PUBLIC, Action.RecordRead, Resource.record(), {}),  # allow
    ]


def _rate(call: Callable[[], object], seconds: float) -> float:
    call()  # warm up
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            call()
        count += 20
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    root = files("commonlab.policy")
    policy_text = "\n".join(
        p.read_text()
        for p in sorted(root.joinpath("policies").iterdir(), key=lambda p: p.name)
        if p.name.endswith(".cedar")
    )
    schema_text = root.joinpath("commonlab.cedarschema").read_text()
    cached = engine.PolicyEngine.from_directory(root)
    # The baseline: the same decide() code, but Cedar gets the policy text to parse each call.
    reparsing = engine.PolicyEngine.from_directory(root)
    reparsing._policies = policy_text  # type: ignore[assignment]

    requests = _requests()
    for principal, action, resource, context in requests:
        a = cached.decide(principal, action, resource, context, now=NOW)
        b = reparsing.decide(principal, action, resource, context, now=NOW)
        assert a == b, (a, b)

    def cycle(fn: Callable[[int], object]) -> Callable[[], object]:
        state = {"i": 0}

        def call() -> object:
            state["i"] = (state["i"] + 1) % len(requests)
            return fn(state["i"])

        return call

    def via(eng: engine.PolicyEngine) -> Callable[[int], object]:
        return lambda i: eng.decide(*requests[i][:3], requests[i][3], now=NOW)

    # The bare Cedar call for one request, outside decide(): what the engine pays Cedar.
    principal, action, resource, context = requests[0]
    cedar_request = {
        "principal": {"type": "Person", "id": principal.pseudonym},
        "action": {"type": "Action", "id": action.value},
        "resource": {"type": "Resource", "id": resource.uid},
        "context": engine._context(context, NOW),
    }
    entities = engine._entities(principal, resource)
    policy_set = cedarpy.PolicySet.from_str(policy_text)
    schema = cedarpy.Schema.from_str(schema_text)

    handle = cedarpy.Entities.from_json_str(entities, schema)

    def bare(policies: object, ents: object, sch: object) -> Callable[[], object]:
        return lambda: cedarpy.is_authorized(cedar_request, policies, ents, sch)  # type: ignore[arg-type]

    seconds = args.seconds
    rows = [
        (
            "policy.decide (8-request mix)",
            _rate(cycle(via(cached)), seconds),
            _rate(cycle(via(reparsing)), seconds),
        ),
        (
            "cedar only, entities per call",
            _rate(bare(policy_set, entities, schema), seconds),
            _rate(bare(policy_text, entities, schema), seconds),
        ),
        (
            "cedar only, entities pre-parsed",
            _rate(bare(policy_set, handle, schema), seconds),
            _rate(bare(policy_text, handle, schema), seconds),
        ),
        (
            "cedar only, schema text too",
            _rate(bare(policy_set, entities, schema), seconds),
            _rate(bare(policy_text, entities, schema_text), seconds),
        ),
    ]
    print(
        f"commonlab policy bench — {len(policy_set)} policies, cedarpy "
        f"{_version('cedarpy')}, Python {platform.python_version()}, {platform.machine()}"
    )
    print(f"{'decisions/s':<32}{'parsed once':>14}{'re-parsed':>14}{'speed-up':>10}")
    for name, fast, slow in rows:
        print(f"{name:<32}{fast:>14,.0f}{slow:>14,.0f}{fast / slow:>9.1f}x")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
