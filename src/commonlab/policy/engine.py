"""The one authorization point: every service asks `authorize()` before it changes anything.

Cedar decides against a policy set parsed and validated once per process; `explain` says why.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable

import cedarpy

from commonlab.errors import AccessDenied, ConfigError
from commonlab.policy.actions import Action
from commonlab.policy.explain import lattice_denials, scope_denial, who_may
from commonlab.policy.levels import Level, epoch_seconds
from commonlab.policy.principal import Principal
from commonlab.policy.resources import Resource

__all__ = [
    "Decision",
    "PolicyEngine",
    "authorize",
    "authorize_inside",
    "decide",
    "may_see_inside",
    "policy_set_hash",
    "validate_policy_set",
]

_SCHEMA_FILE = "commonlab.cedarschema"
_POLICY_DIR = "policies"
_LATTICE = frozenset({Action.ResourceRead, Action.ResourceWrite, Action.JobPlace})
# Forbids whose denial `explain.lattice_denials` states more precisely than their @reason.
_EXPLAINED_IN_PYTHON = frozenset({"containment-no-write-down"})
_CONTEXT_LEVELS = ("data_level", "job_level")
# Parsed entity sets kept, by their JSON text: a request's principal and resource repeat from
# one decision to the next (a job's admission asks four), and parsing them is half a decision.
_PARSED_ENTITIES = 4096
_ANSWERS = 4096


@dataclass(frozen=True)
class Decision:
    """What the policy said, why, which policies decided, and which policy set said it."""

    allowed: bool
    reason: str
    policy_ids: tuple[str, ...]
    policy_hash: str


@dataclass(frozen=True)
class _Policy:
    effect: str
    reason: str


class _MalformedRequest(Exception):
    """The caller built a request the schema cannot hold: a deny, not a crash."""


class PolicyEngine:
    """A validated, parsed Cedar policy set and schema. Build once, decide many times.

    Construction fails closed with ConfigError: an empty set, a parse error, a policy that
    does not validate against the schema, a policy without a unique @id, a forbid without a
    @reason, or an `Action` the schema does not declare.
    """

    def __init__(self, policies: Mapping[str, bytes], schema: bytes) -> None:
        self.policy_hash = _digest(policies, schema)
        texts = [policies[name].decode() for name in sorted(policies)]
        text = "\n".join(texts)
        if not text.strip():
            raise ConfigError("the policy set is empty: no policy would ever allow anything")
        try:
            self._schema = cedarpy.Schema.from_str(schema.decode())
            self._policies = cedarpy.PolicySet.from_str(text)
        except ValueError as exc:
            raise ConfigError(f"the Cedar policy set does not parse: {exc}") from exc
        if len(self._policies) == 0:
            raise ConfigError("the policy set is empty: no policy would ever allow anything")
        validation = cedarpy.validate_policies(text, self._schema)
        if not validation.validation_passed:
            named = validation.id_annotations_by_policy_id
            raise ConfigError(
                "the Cedar policy set does not match the schema: "
                + "; ".join(
                    f"[{named.get(e.policy_id, e.policy_id)}] {e.error}" for e in validation.errors
                )
            )
        self._by_cedar_id, self._by_id = _annotations(text)
        _check_actions_declared(self._schema)
        self._parsed = functools.lru_cache(maxsize=_PARSED_ENTITIES)(self._parse_entities)
        self._answers: dict[tuple[str, str], tuple[bool, tuple[str, ...], tuple[str, ...]]] = {}

    @classmethod
    def from_directory(cls, root: Traversable) -> PolicyEngine:
        """Load `root/policies/*.cedar` and `root/commonlab.cedarschema`."""
        try:
            policies = {
                f"{_POLICY_DIR}/{item.name}": item.read_bytes()
                for item in (root / _POLICY_DIR).iterdir()
                if item.name.endswith(".cedar")
            }
            schema = (root / _SCHEMA_FILE).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the policy set under {root}: {exc}") from exc
        return cls(policies, schema)

    def decide(
        self,
        principal: Principal,
        action: Action | str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
        *,
        now: datetime | None = None,
    ) -> Decision:
        """Ask the policy set; a denial carries a reason a person can act on."""
        try:
            action = Action(action)
        except ValueError:
            return self._deny(f"unknown action {action!r}: no policy covers it")
        if denial := scope_denial(principal, action):
            return self._deny(denial)
        now = now if now is not None else datetime.now(UTC)
        try:
            ctx = _context(context, now)
            request = {
                "principal": {"type": "Person", "id": principal.pseudonym},
                "action": {"type": "Action", "id": action.value},
                "resource": {"type": "Resource", "id": resource.uid},
                "context": ctx,
            }
            entities = _entities(principal, resource)
        except (_MalformedRequest, TypeError, ValueError) as exc:
            return self._deny(f"malformed authorization request: {exc}")
        allowed, cedar_ids, errors = self._answer(request, entities)
        if errors:
            # An erroring policy is skipped by Cedar; a skipped forbid must not let anyone in.
            return self._deny(
                "the policy set could not evaluate this request: " + "; ".join(errors)
            )
        ids = tuple(self._by_cedar_id.get(pid, pid) for pid in cedar_ids)
        if allowed:
            reason = "; ".join(self._reason(pid) for pid in ids)
            return Decision(True, reason, ids, self.policy_hash)
        reasons = [self._reason(pid) for pid in ids if pid not in _EXPLAINED_IN_PYTHON]
        if action in _LATTICE:
            reasons += lattice_denials(principal, action, resource, ctx, now=now)
        elif not reasons:
            reasons.append(who_may(action, resource, ctx))
        if not reasons:
            reasons.append(f"no policy permits {action} on {resource.kind} {resource.id}")
        return self._deny("; ".join(reasons), ids)

    def authorize(
        self,
        principal: Principal,
        action: Action | str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
        *,
        now: datetime | None = None,
    ) -> Decision:
        """`decide`, raising AccessDenied with the reason when the answer is no."""
        decision = self.decide(principal, action, resource, context, now=now)
        if not decision.allowed:
            raise AccessDenied(
                decision.reason, action=str(action), policy_hash=decision.policy_hash
            )
        return decision

    def _answer(
        self, request: dict[str, object], entities: str
    ) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
        """Cedar's answer (allowed, the deciding policies, errors), kept by the request's
        text: the same request against the same entities is the same answer, and the time
        in the context is whole seconds, so a burst of one person's submissions asks Cedar
        once a second rather than four times a job."""
        try:
            key: tuple[str, str] | None = (entities, json.dumps(request, sort_keys=True))
        except (TypeError, ValueError):
            key = None  # Cedar's own encoding says what is wrong with it
        if key is not None and (known := self._answers.get(key)) is not None:
            return known
        result = cedarpy.is_authorized(
            request, self._policies, self._parsed(entities), schema=self._schema
        )
        diagnostics = result.diagnostics
        answer = (result.allowed, tuple(diagnostics.reasons), tuple(diagnostics.errors))
        if key is not None:
            if len(self._answers) >= _ANSWERS:
                self._answers.clear()  # the seconds moved on: most are stale anyway
            self._answers[key] = answer
        return answer

    def _parse_entities(self, entities: str) -> cedarpy.Entities | str:
        """The entity set parsed and checked against the schema once, for every decision
        that names the same principal and resource. A set the schema refuses is left as
        text: Cedar then says why in the decision's diagnostics, a denial."""
        try:
            return cedarpy.Entities.from_json_str(entities, self._schema)
        except (ValueError, RuntimeError):
            return entities

    def _reason(self, policy_id: str) -> str:
        policy = self._by_id.get(policy_id)
        return policy.reason if policy and policy.reason else f"policy {policy_id}"

    def _deny(self, reason: str, policy_ids: tuple[str, ...] = ()) -> Decision:
        return Decision(False, reason, policy_ids, self.policy_hash)


@functools.cache
def _default_engine() -> PolicyEngine:
    # Parsed once per process: re-parsing the text each call is ~50x slower (bench/).
    return PolicyEngine.from_directory(files("commonlab.policy"))


def decide(
    principal: Principal,
    action: Action | str,
    resource: Resource,
    context: Mapping[str, object] | None = None,
    *,
    now: datetime | None = None,
) -> Decision:
    """Ask the facility's policy set; returns the Decision, allowed or not."""
    return _default_engine().decide(principal, action, resource, context, now=now)


def authorize(
    principal: Principal,
    action: Action | str,
    resource: Resource,
    context: Mapping[str, object] | None = None,
    *,
    now: datetime | None = None,
) -> Decision:
    """The one authorization point: returns the Decision, or raises AccessDenied(reason)."""
    return _default_engine().authorize(principal, action, resource, context, now=now)


def authorize_inside(principal: Principal, action: Action | str, resource: Resource) -> None:
    """`action` on what a contained resource holds (a job's spec and logs, a project's
    insides): the action's own rule, then reading at the resource's level and compartments —
    a member not cleared for the level sees only what the public sees. The system is bounded
    by the action alone. Raises AccessDenied(reason)."""
    authorize(principal, action, resource)
    if not principal.is_system:
        authorize(principal, Action.ResourceRead, resource)


def may_see_inside(principal: Principal, action: Action | str, resource: Resource) -> bool:
    """Whether `authorize_inside` would allow it (for what a page or a list leaves out)."""
    return decide(principal, action, resource).allowed and (
        principal.is_system or decide(principal, Action.ResourceRead, resource).allowed
    )


def policy_set_hash() -> str:
    """SHA-256 (hex) over the policy files and the schema; recorded with every decision."""
    return _default_engine().policy_hash


def validate_policy_set() -> str:
    """Parse and validate the packaged policy set; ConfigError says what is wrong.

    The app calls this at start so a bad policy stops it there, not at the first request.
    Returns the policy set's hash.
    """
    return _default_engine().policy_hash


def _digest(policies: Mapping[str, bytes], schema: bytes) -> str:
    # Name and length frame each file, so moving text between files changes the hash.
    files_ = {**policies, _SCHEMA_FILE: schema}
    digest = hashlib.sha256()
    for name in sorted(files_):
        data = files_[name]
        digest.update(f"{name}\n{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def _annotations(text: str) -> tuple[dict[str, str], dict[str, _Policy]]:
    """Map Cedar's positional ids to @id, and each @id to its effect and @reason."""
    est = json.loads(cedarpy.policies_to_json_str(text))
    if est.get("templates"):
        raise ConfigError("policy templates are not used by commonlab; write static policies")
    by_cedar_id: dict[str, str] = {}
    by_id: dict[str, _Policy] = {}
    for cedar_id, policy in est.get("staticPolicies", {}).items():
        annotations = policy.get("annotations") or {}
        policy_id = annotations.get("id")
        if not policy_id:
            raise ConfigError(f"a {policy['effect']} policy has no @id; give every policy one")
        if policy_id in by_id:
            raise ConfigError(f"two policies share @id({policy_id!r}); ids must be unique")
        reason = annotations.get("reason") or ""
        if policy["effect"] == "forbid" and not reason:
            # A forbid's @reason is what the denied person reads: it must say what to do.
            raise ConfigError(f"forbid policy {policy_id!r} has no @reason; give it one")
        by_cedar_id[cedar_id] = policy_id
        by_id[policy_id] = _Policy(policy["effect"], reason)
    return by_cedar_id, by_id


def _check_actions_declared(schema: cedarpy.Schema) -> None:
    # A probe policy per action: the validator names every action the schema lacks.
    actions = list(Action)
    probe = "\n".join(f'permit (principal, action == Action::"{a}", resource);' for a in actions)
    result = cedarpy.validate_policies(probe, schema)
    if not result.validation_passed:
        missing = sorted(
            {str(actions[int(e.policy_id.removeprefix("policy"))]) for e in result.errors}
        )
        raise ConfigError(f"actions missing from the Cedar schema: {', '.join(missing)}")


def _context(context: Mapping[str, object] | None, now: datetime) -> dict[str, object]:
    ctx = {key: value for key, value in (context or {}).items() if value is not None}
    if "now" in ctx:
        raise _MalformedRequest("pass the time as now=..., not in the context")
    for key in _CONTEXT_LEVELS:
        if key in ctx:
            ctx[key] = int(Level.parse(ctx[key]))
    ctx["now"] = epoch_seconds(now)
    return ctx


def _entities(principal: Principal, resource: Resource) -> str:
    clearance = principal.clearance
    if principal.is_public:
        kind = "public"
    elif principal.is_system:
        kind = "system"
    elif principal.is_motion:
        kind = "motion"
    else:
        kind = "person"
    person: dict[str, object] = {
        "kind": kind,
        "roles": sorted(str(role) for role in principal.roles),
        "clearance_level": int(clearance.level) if clearance else 0,
        "clearance_expires": epoch_seconds(clearance.expires_at) if clearance else 0,
        "compartments": sorted(clearance.compartments) if clearance else [],
    }
    if principal.person_id is not None:
        person["person_id"] = principal.person_id
    if principal.job_id is not None:
        person["job_id"] = principal.job_id
    if principal.motion_id is not None:
        person["motion_id"] = principal.motion_id
    thing: dict[str, object] = {
        "kind": resource.kind,
        "level": int(resource.level),
        "compartments": sorted(resource.compartments),
    }
    if resource.owner is not None:
        thing["owner"] = resource.owner
    projects = set(principal.projects)
    if resource.project is not None:
        thing["project"] = {"__entity": {"type": "Project", "id": resource.project}}
        projects.add(resource.project)
    entities = [
        {
            "uid": {"type": "Person", "id": principal.pseudonym},
            "attrs": person,
            "parents": [{"type": "Project", "id": p} for p in sorted(principal.projects)],
        },
        {"uid": {"type": "Resource", "id": resource.uid}, "attrs": thing, "parents": []},
        *(
            {"uid": {"type": "Project", "id": p}, "attrs": {}, "parents": []}
            for p in sorted(projects)
        ),
    ]
    return json.dumps(entities)
