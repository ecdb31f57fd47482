"""The one authorization point (policy/engine.py) against the real Cedar policy set.

Table-driven cases for every action and role, fail-closed cases, and hypothesis properties:
Cedar's decision equals a plain statement of the rule, and raising a clearance never hurts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from importlib.util import find_spec

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonlab.errors import AccessDenied, ConfigError
from commonlab.policy import (
    Action,
    Decision,
    Resource,
    authorize,
    policy_set_hash,
    validate_policy_set,
)
from commonlab.policy import decide as policy_decide
from commonlab.policy.engine import PolicyEngine
from commonlab.policy.levels import Clearance, Level, read_denials, write_denials
from commonlab.policy.principal import PUBLIC, SYSTEM, Principal, Role, Scope

# A clearance grant must say how long it lasts and what the regulation allows; the tests
# below are about who may grant, so they ask for a length within the limit.
_WITHIN_REGULATION = {"requested_days": 30, "max_clearance_days": 365}


def decide(principal, action, resource, context=None, **kwargs):
    if action is Action.ClearanceGrant:
        context = {**_WITHIN_REGULATION, **(context or {})}
    return policy_decide(principal, action, resource, context, **kwargs)


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)
SUBJECT = 99  # the person an identity action is about
ALL_ROLES = list(Role)


def person(
    pid: int = 7,
    *roles: Role,
    scope: Scope = Scope.ADMIN,
    clearance: Clearance | None = None,
    projects: Iterable[str] = (),
) -> Principal:
    return Principal(
        f"person-{pid}",
        person_id=pid,
        roles=frozenset(roles),
        scopes=frozenset({scope}),
        clearance=clearance,
        projects=frozenset(projects),
    )


def cleared(
    level: Level,
    *compartments: str,
    expires: datetime = LATER,
    projects: Iterable[str] = (),
    scope: Scope = Scope.WRITE,
) -> Principal:
    clearance = Clearance(level, expires, frozenset(compartments))
    return person(7, Role.RESEARCHER, scope=scope, clearance=clearance, projects=projects)


def allowed(principal, action, resource, context=None) -> bool:
    return decide(principal, action, resource, context, now=NOW).allowed


# --- the packaged policy set ------------------------------------------------------------


def _package_files() -> tuple[dict[str, bytes], bytes]:
    root = files("commonlab.policy")
    policies = {
        f"policies/{item.name}": item.read_bytes()
        for item in root.joinpath("policies").iterdir()
        if item.name.endswith(".cedar")
    }
    return policies, root.joinpath("commonlab.cedarschema").read_bytes()


def test_packaged_policy_set_validates_and_is_hashed():
    digest = validate_policy_set()
    assert digest == policy_set_hash()
    assert len(digest) == 64 and int(digest, 16) >= 0
    policies, schema = _package_files()
    assert {"policies/identity.cedar", "policies/containment.cedar"} <= policies.keys()
    # The documented framing: each file's name and length, then its bytes, in name order.
    expected = hashlib.sha256()
    for name, data in sorted({**policies, "commonlab.cedarschema": schema}.items()):
        expected.update(f"{name}\n{len(data)}\n".encode() + data)
    assert digest == expected.hexdigest()


def test_hash_changes_with_any_byte_of_policy_or_schema():
    policies, schema = _package_files()
    base = PolicyEngine(policies, schema).policy_hash
    touched = {**policies, "policies/record.cedar": policies["policies/record.cedar"] + b"\n"}
    assert PolicyEngine(touched, schema).policy_hash != base
    assert PolicyEngine(policies, schema + b"\n").policy_hash != base
    assert PolicyEngine(dict(policies), schema).policy_hash == base


def test_every_decision_carries_the_policy_hash():
    decision = decide(PUBLIC, Action.RecordRead, Resource.record(), now=NOW)
    assert decision == Decision(
        True, "the public record is public", ("record-read",), policy_set_hash()
    )


def test_every_action_has_a_scope_and_a_domain():
    for action in Action:
        assert isinstance(action.scope, Scope)
        # Every action belongs to a domain package (or to the lattice, which spans them).
        assert action.domain == "resource" or find_spec(f"commonlab.{action.domain}"), action
    assert Action("identity:person:create") is Action.PersonCreate
    assert Action.PersonCreate.scope is Scope.ADMIN


# --- identity actions, by role ------------------------------------------------------------

OP, SO, AUD = Role.OPERATOR, Role.SAFETY_OFFICER, Role.AUDITOR
EVERYONE = set(ALL_ROLES)

IDENTITY_CASES = [
    # action, resource about SUBJECT, roles allowed on others, self allowed, public allowed
    (Action.InstitutionCreate, Resource.institution(), {OP}, False, False),
    (Action.InstitutionUpdate, Resource.institution(5), {OP}, False, False),
    (Action.InstitutionRead, Resource.institution(5), EVERYONE, True, True),
    (Action.PersonCreate, Resource.people(), {OP}, False, False),
    (Action.PersonUpdate, Resource.person(SUBJECT), {OP}, True, False),
    (Action.PersonRead, Resource.person(SUBJECT), {OP, AUD, SO}, True, False),
    (Action.PersonList, Resource.people(), {OP, AUD, SO}, False, False),
    (Action.RoleGrant, Resource.person(SUBJECT), {OP}, False, False),
    (Action.RoleRevoke, Resource.person(SUBJECT), {OP}, False, False),
    (Action.TokenIssue, Resource.token(SUBJECT), {OP}, True, False),
    (Action.TokenList, Resource.token(SUBJECT), {OP}, True, False),
    (Action.TokenRevoke, Resource.token(SUBJECT, 3), {OP}, True, False),
    (Action.ClearanceGrant, Resource.clearance(SUBJECT, Level.CL2), {OP, SO}, False, False),
    (Action.ClearanceRevoke, Resource.clearance(SUBJECT, Level.CL2), {OP, SO}, False, False),
    (Action.ClearanceRead, Resource.clearance(SUBJECT), {OP, SO, AUD}, True, False),
    (Action.RecordRead, Resource.record(), EVERYONE, True, True),
    (Action.RecordCosign, Resource.record(12), {AUD}, False, False),
]


@pytest.mark.parametrize(
    ("action", "resource", "roles", "self_allowed", "public_allowed"),
    IDENTITY_CASES,
    ids=[str(case[0]) for case in IDENTITY_CASES],
)
def test_identity_action_by_each_role(action, resource, roles, self_allowed, public_allowed):
    for role in ALL_ROLES:
        assert allowed(person(7, role), action, resource) is (role in roles), role
    assert allowed(person(7), action, resource) is (roles >= EVERYONE)  # no role at all
    # The subject themself, holding no role.
    assert allowed(person(SUBJECT), action, resource) is self_allowed
    assert allowed(PUBLIC, action, resource) is public_allowed
    # Bootstrap: the system may do every identity action.
    if action.domain == "identity":
        assert allowed(SYSTEM, action, resource)


@pytest.mark.parametrize("action", [Action.RoleGrant, Action.RoleRevoke])
def test_operators_never_change_their_own_roles(action):
    decision = decide(person(SUBJECT, OP), action, Resource.person(SUBJECT), now=NOW)
    assert not decision.allowed
    assert decision.policy_ids == ("role-no-self",)
    assert decision.reason == "no one may grant or revoke their own roles; ask another operator"
    assert allowed(person(7, OP), action, Resource.person(SUBJECT))


CLEARANCE_GRANT_CASES = [
    # level, roles allowed without a council vote, roles allowed with one
    (Level.CL1, {OP, SO}, {OP, SO}),
    (Level.CL2, {OP, SO}, {OP, SO}),
    (Level.CL3, {SO}, {SO}),
    (Level.CL4, set(), {SO}),
]


@pytest.mark.parametrize(("level", "without_vote", "with_vote"), CLEARANCE_GRANT_CASES)
def test_clearance_grant_by_level(level, without_vote, with_vote):
    resource = Resource.clearance(SUBJECT, level)
    for role in ALL_ROLES:
        actor = person(7, role)
        assert allowed(actor, Action.ClearanceGrant, resource) is (role in without_vote)
        assert allowed(actor, Action.ClearanceGrant, resource, {"council_approved": False}) is (
            role in without_vote
        )
        assert allowed(actor, Action.ClearanceGrant, resource, {"council_approved": True}) is (
            role in with_vote
        )


@pytest.mark.parametrize("level", list(Level))
def test_no_one_grants_themselves_a_clearance(level):
    officer = person(SUBJECT, SO, OP)
    decision = decide(
        officer,
        Action.ClearanceGrant,
        Resource.clearance(SUBJECT, level),
        {"council_approved": True},
        now=NOW,
    )
    assert not decision.allowed
    assert decision.policy_ids == ("clearance-no-self-grant",)
    assert "no one may grant themselves a clearance" in decision.reason


IDENTITY_DENIAL_REASONS = [
    (
        person(7, Role.RESEARCHER),
        Action.InstitutionCreate,
        Resource.institution(),
        {},
        "only operators may create institutions",
    ),
    (
        person(7, AUD),
        Action.PersonUpdate,
        Resource.person(SUBJECT),
        {},
        "only operators, or the person themself, may update an account",
    ),
    (
        person(7, OP),
        Action.ClearanceGrant,
        Resource.clearance(SUBJECT, Level.CL3),
        {},
        "only safety officers may grant a CL-3 clearance",
    ),
    (
        person(7, SO),
        Action.ClearanceGrant,
        Resource.clearance(SUBJECT, Level.CL4),
        {},
        "a CL-4 clearance needs an approved council vote (council_approved) "
        "before a safety officer may grant it",
    ),
    (
        person(7, OP),
        Action.ClearanceGrant,
        Resource.clearance(SUBJECT, Level.CL4),
        {"council_approved": True},
        "only safety officers may grant a CL-4 clearance",
    ),
    (
        person(7, Role.PI),
        Action.ClearanceGrant,
        Resource.clearance(SUBJECT, Level.CL2),
        {},
        "only operators and safety officers may grant a CL-2 clearance",
    ),
    (
        person(7, Role.RESEARCHER),
        Action.RecordCosign,
        Resource.record(),
        {},
        "only auditors may cosign checkpoints",
    ),
    (
        PUBLIC,
        Action.PersonRead,
        Resource.person(SUBJECT),
        {},
        "sign in first: this action needs an account and a token; "
        "without one you may only read public things",
    ),
]


@pytest.mark.parametrize(
    ("actor", "action", "resource", "context", "reason"), IDENTITY_DENIAL_REASONS
)
def test_identity_denials_say_who_may(actor, action, resource, context, reason):
    decision = decide(actor, action, resource, context, now=NOW)
    assert not decision.allowed
    assert decision.reason == reason


def test_allow_names_the_deciding_policy():
    decision = decide(person(7, OP), Action.InstitutionCreate, Resource.institution(), now=NOW)
    assert decision.allowed
    assert decision.policy_ids == ("institution-manage",)
    assert decision.reason == "operators manage institutions"


# --- token scopes -------------------------------------------------------------------------

SCOPE_CASES = [
    (Scope.READ, Action.PersonRead, True),
    (Scope.READ, Action.PersonUpdate, False),
    (Scope.WRITE, Action.PersonUpdate, True),
    (Scope.WRITE, Action.PersonCreate, False),
    (Scope.ADMIN, Action.PersonCreate, True),
    (Scope.ADMIN, Action.PersonRead, True),
]


@pytest.mark.parametrize(("scope", "action", "ok"), SCOPE_CASES)
def test_token_scope_is_checked_before_cedar(scope, action, ok):
    actor = person(SUBJECT, OP, scope=scope)
    resource = Resource.people() if action is Action.PersonCreate else Resource.person(SUBJECT)
    assert allowed(actor, action, resource) is ok


def test_scope_denial_says_how_to_fix_it():
    decision = decide(person(7, OP, scope=Scope.READ), Action.PersonCreate, Resource.people())
    assert not decision.allowed
    assert decision.reason == (
        "this token has scope read; identity:person:create needs admin — "
        "issue a token with that scope"
    )
    no_scope = replace(person(7, OP), scopes=frozenset())
    assert decide(no_scope, Action.PersonRead, Resource.person(1)).reason.startswith(
        "this token has no scope; identity:person:read needs read"
    )
    both = replace(person(7, OP), scopes=frozenset({Scope.READ, Scope.WRITE}))
    reason = decide(both, Action.RoleGrant, Resource.person(1)).reason
    assert reason.startswith("this token has scope write;")


def test_public_and_system_carry_no_token():
    assert allowed(PUBLIC, Action.ResourceRead, Resource("artifact", "a", Level.CL1))
    assert allowed(SYSTEM, Action.PersonCreate, Resource.people())


# --- the public and the system ------------------------------------------------------------

PUBLIC_ACTIONS = {
    Action.InstitutionRead,
    Action.RecordRead,
    Action.ResourceRead,
    Action.GovernanceRead,
    Action.AllocationRead,
    Action.FleetRead,
}


@pytest.mark.parametrize("action", list(Action))
def test_the_public_may_only_read(action):
    resource = _resource_for(action)
    context = {"data_level": 1, "job_level": 1}
    decision = decide(PUBLIC, action, resource, context, now=NOW)
    assert decision.allowed is (action in PUBLIC_ACTIONS)
    if action not in PUBLIC_ACTIONS:
        assert decision.reason.startswith("sign in first")


@pytest.mark.parametrize("action", [Action.ResourceRead, Action.ResourceWrite, Action.RecordCosign])
def test_the_system_holds_no_clearance_and_no_role(action):
    # Trusted with identity:* for bootstrap; beyond CL-1 it is as cleared as the public.
    resource = _resource_for(action, level=Level.CL2)
    assert not allowed(SYSTEM, action, resource, {"data_level": 2})


def test_a_person_named_system_is_not_the_system():
    impostor = Principal("system", person_id=5, scopes=frozenset({Scope.ADMIN}))
    assert not allowed(impostor, Action.PersonCreate, Resource.people())


def _resource_for(action: Action, level: Level = Level.CL1) -> Resource:
    kind = action.value.split(":")[1] if action.domain == "identity" else ""
    if kind == "institution":
        return Resource.institution()
    if kind == "person" or kind == "role":
        return Resource.person(SUBJECT)
    if kind == "token":
        return Resource.token(SUBJECT)
    if kind == "clearance":
        return Resource.clearance(SUBJECT, level)
    if action.domain == "record":
        return Resource.record()
    if action is Action.JobPlace:
        return Resource.partition("gpu-a", level)
    return Resource("artifact", "a-1", level)


# --- resource kinds -----------------------------------------------------------------------

KIND_CASES = [
    (Action.ClearanceGrant, Resource.person(SUBJECT), "clearance actions apply"),
    (Action.RoleGrant, Resource.clearance(SUBJECT), "person and role actions apply"),
    (Action.TokenIssue, Resource.person(SUBJECT), "token actions apply"),
    (Action.InstitutionUpdate, Resource.record(), "institution actions apply"),
    (Action.RecordCosign, Resource.institution(1), "record actions apply"),
    (Action.JobPlace, Resource("artifact", "a", Level.CL4), "jobs are placed on partitions"),
]


@pytest.mark.parametrize(("action", "resource", "reason"), KIND_CASES)
def test_actions_on_the_wrong_kind_are_denied_even_for_the_system(action, resource, reason):
    for actor in (SYSTEM, person(7, OP, SO, AUD)):
        decision = decide(actor, action, resource, {"job_level": 1}, now=NOW)
        assert not decision.allowed
        assert reason in decision.reason


# --- the containment lattice --------------------------------------------------------------

ART = "artifact"
R, W, P = Action.ResourceRead, Action.ResourceWrite, Action.JobPlace
CL1, CL2, CL3, CL4 = Level


def art(level: Level, *compartments: str, project: str | None = None) -> Resource:
    return Resource(ART, "a", level, frozenset(compartments), project=project)


def gpu(level: Level) -> Resource:
    return Resource.partition("gpu-a", level)


JAN = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
LATTICE_CASES = [
    # name, principal, action, resource, context, allowed, reason fragment
    ("CL-1 read by anyone", person(7), R, art(CL1), {}, True, None),
    ("read equal", cleared(CL2), R, art(CL2), {}, True, None),
    ("read up", cleared(CL2), R, art(CL3), {}, False, "your clearance CL-2 is below this "),
    ("no clearance", person(7), R, art(CL2), {}, False, "you hold no clearance"),
    ("expired", cleared(CL3, expires=JAN), R, art(CL3), {}, False, "expired on 2026-01-01"),
    ("expires now", cleared(CL3, expires=NOW), R, art(CL3), {}, False, "your clearance expired"),
    ("expires in 1s", cleared(CL3, expires=NOW + SECOND), R, art(CL3), {}, True, None),
    ("compartment held", cleared(CL3, "bio", "chem"), R, art(CL3, "bio"), {}, True, None),
    ("compartment missing", cleared(CL3, "chem"), R, art(CL3, "bio"), {}, False, "lack compart"),
    ("member", cleared(CL2, projects={"p-12"}), R, art(CL2, project="p-12"), {}, True, None),
    ("not a member", cleared(CL2), R, art(CL2, project="p-12"), {}, False, "member of project"),
    ("CL-1 project is open", person(7), R, art(CL1, project="p-12"), {}, True, None),
    ("CL-4 needs a session", cleared(CL4), R, art(CL4), {}, False, "per-session grant"),
    ("CL-4 session false", cleared(CL4), R, art(CL4), {"session_grant": False}, False, "session"),
    ("CL-4 with session", cleared(CL4), R, art(CL4), {"session_grant": True}, True, None),
    ("CL-3 needs no session", cleared(CL4), R, art(CL3), {}, True, None),
    ("write same level", cleared(CL3), W, art(CL3), {"data_level": CL3}, True, None),
    ("write lower data up", cleared(CL3), W, art(CL3), {"data_level": CL1}, True, None),
    ("write-down", cleared(CL3), W, art(CL2), {"data_level": CL3}, False, "(no write-down)"),
    ("write-down to CL-1", cleared(CL3), W, art(CL1), {"data_level": "CL-2"}, False, "write-d"),
    ("write, no data level", cleared(CL3), W, art(CL3), {}, False, "level of the data"),
    ("write up needs reach", cleared(CL2), W, art(CL3), {"data_level": CL2}, False, "below"),
    ("write CL-1 by anyone", person(7), W, art(CL1), {"data_level": 1}, True, None),
    ("write CL-4 needs session", cleared(CL4), W, art(CL4), {"data_level": 4}, False, "session"),
    ("place equal", person(7), P, gpu(CL3), {"job_level": CL3}, True, None),
    ("place below", person(7), P, gpu(CL4), {"job_level": CL2}, True, None),
    ("place above", person(7), P, gpu(CL2), {"job_level": CL3}, False, "this CL-3 job cannot"),
    ("place, no job level", person(7), P, gpu(CL4), {}, False, "must say the job's level"),
]


@pytest.mark.parametrize(
    ("principal", "action", "resource", "context", "ok", "reason"),
    [case[1:] for case in LATTICE_CASES],
    ids=[case[0] for case in LATTICE_CASES],
)
def test_lattice(principal, action, resource, context, ok, reason):
    decision = decide(principal, action, resource, context, now=NOW)
    assert decision.allowed is ok, decision
    if reason is not None:
        assert reason in decision.reason


def test_a_deny_lists_everything_to_fix():
    actor = cleared(Level.CL2, expires=datetime(2026, 1, 1, tzinfo=UTC), projects={"p-1"})
    resource = Resource(ART, "a", Level.CL3, frozenset({"bio"}), project="p-12")
    decision = decide(actor, Action.ResourceRead, resource, now=NOW)
    assert decision.reason == (
        "your clearance CL-2 is below this resource's CL-3; "
        "your clearance expired on 2026-01-01 — ask a safety officer to renew it; "
        "you lack compartment 'bio'; you are not a member of project p-12"
    )
    assert decision.policy_ids == ()


def test_write_down_names_the_forbid_that_fired():
    decision = decide(
        cleared(Level.CL3),
        Action.ResourceWrite,
        Resource(ART, "a", Level.CL2),
        {"data_level": 3},
        now=NOW,
    )
    assert decision.policy_ids == ("containment-no-write-down",)


def test_authorize_raises_access_denied_with_the_reason():
    with pytest.raises(AccessDenied) as caught:
        authorize(cleared(Level.CL2), Action.ResourceRead, Resource(ART, "a", Level.CL3), now=NOW)
    assert caught.value.status == 403
    assert caught.value.message == "your clearance CL-2 is below this resource's CL-3"
    assert caught.value.extra["policy_hash"] == policy_set_hash()
    decision = authorize(
        cleared(Level.CL3), Action.ResourceRead, Resource(ART, "a", Level.CL3), now=NOW
    )
    assert decision.allowed and decision.policy_ids == ("containment-reach",)


def test_now_defaults_to_the_clock():
    expired = cleared(Level.CL3, expires=datetime.now(UTC) - timedelta(minutes=1))
    current = cleared(Level.CL3, expires=datetime.now(UTC) + timedelta(minutes=10))
    resource = Resource(ART, "a", Level.CL3)
    assert not decide(expired, Action.ResourceRead, resource).allowed
    assert decide(current, Action.ResourceRead, resource).allowed


# --- fail closed --------------------------------------------------------------------------


def test_unknown_action_is_denied():
    decision = decide(SYSTEM, "identity:person:delete", Resource.people(), now=NOW)
    assert not decision.allowed
    assert decision.reason == "unknown action 'identity:person:delete': no policy covers it"
    with pytest.raises(AccessDenied):
        authorize(SYSTEM, "nope", Resource.people(), now=NOW)


MALFORMED_CONTEXTS = [
    ({"council_aproved": True}, "council_aproved"),  # a typo never passes silently
    ({"session_grant": "yes"}, "is not valid for"),
    ({"data_level": 7}, "unknown containment level"),
    ({"now": 0}, "pass the time as now="),
]


@pytest.mark.parametrize(("context", "reason"), MALFORMED_CONTEXTS)
def test_malformed_context_is_denied(context, reason):
    decision = decide(
        cleared(Level.CL4), Action.ResourceRead, Resource(ART, "a", Level.CL1), context, now=NOW
    )
    assert not decision.allowed
    assert reason in decision.reason


def test_resource_levels_fail_closed():
    with pytest.raises(ValueError, match="unknown containment level"):
        Resource(ART, "a", 5)  # type: ignore[arg-type]
    assert Resource(ART, "a", "CL-3").level is Level.CL3  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Resource("", "a")


def _with(policies: dict[str, bytes], name: str, text: str) -> dict[str, bytes]:
    return {**policies, f"policies/{name}": text.encode()}


def test_empty_policy_set_is_a_config_error():
    _, schema = _package_files()
    with pytest.raises(ConfigError, match="empty"):
        PolicyEngine({}, schema)
    with pytest.raises(ConfigError, match="empty"):
        PolicyEngine({"policies/a.cedar": b"// nothing here\n"}, schema)


BROKEN_POLICY_SETS = [
    (
        "extra.cedar",
        "permit (principal, action, resource) when { principal.clearance };",
        "does not match the schema",
    ),
    (
        "extra.cedar",
        '@id("x") permit (principal, action, resource) when { resource.nope };',
        "does not match the schema",
    ),
    ("extra.cedar", "permit (principal, action, resource", "does not parse"),
    ("extra.cedar", "permit (principal, action, resource);", "has no @id"),
    ("extra.cedar", '@id("record-read") permit (principal, action, resource);', "share @id"),
    ("extra.cedar", '@id("y") forbid (principal, action, resource);', "has no @reason"),
    ("extra.cedar", '@id("t") permit (principal == ?principal, action, resource);', "templates"),
]


@pytest.mark.parametrize(("name", "text", "message"), BROKEN_POLICY_SETS)
def test_broken_policy_sets_do_not_load(name, text, message):
    policies, schema = _package_files()
    with pytest.raises(ConfigError, match=message):
        PolicyEngine(_with(policies, name, text), schema)


def test_schema_must_declare_every_action():
    policies, schema = _package_files()
    trimmed = schema.replace(b'"record:cosign", ', b"")
    policies = {
        name: text.replace(b'Action::"record:cosign"', b'Action::"record:read"')
        for name, text in policies.items()
    }
    with pytest.raises(ConfigError, match="actions missing from the Cedar schema: record:cosign"):
        PolicyEngine(policies, trimmed)


def test_broken_schema_is_a_config_error():
    policies, _ = _package_files()
    with pytest.raises(ConfigError, match="does not parse"):
        PolicyEngine(policies, b"entity Person = {")


def test_from_directory_reads_a_policy_tree(tmp_path):
    policies, schema = _package_files()
    (tmp_path / "policies").mkdir()
    for name, data in policies.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "commonlab.cedarschema").write_bytes(schema)
    (tmp_path / "policies" / "README").write_text("ignored")
    assert PolicyEngine.from_directory(tmp_path).policy_hash == policy_set_hash()
    with pytest.raises(ConfigError, match="cannot read"):
        PolicyEngine.from_directory(tmp_path / "missing")


def test_a_narrower_policy_set_denies_what_it_does_not_permit():
    _, schema = _package_files()
    only_records = PolicyEngine(
        {"policies/record.cedar": _package_files()[0]["policies/record.cedar"]}, schema
    )
    assert only_records.decide(PUBLIC, Action.RecordRead, Resource.record(), now=NOW).allowed
    decision = only_records.decide(
        person(7, OP), Action.InstitutionCreate, Resource.institution(), now=NOW
    )
    assert not decision.allowed
    assert decision.reason == "only operators may create institutions"


# --- properties: Cedar agrees with the rule, and the lattice is monotone ------------------

COMPARTMENTS = ["bio", "chem", "cyber"]
PROJECTS = ["p-1", "p-2", "p-3"]
compartments = st.frozensets(st.sampled_from(COMPARTMENTS))
levels = st.sampled_from(list(Level))
# Whole seconds around NOW, so that the boundary (expiry == now) is hit often.
offsets = st.one_of(st.integers(-3, 3), st.integers(-(10**8), 10**8))
clearances = st.one_of(
    st.none(),
    st.builds(
        lambda level, comps, offset: Clearance(level, NOW + timedelta(seconds=offset), comps),
        levels,
        compartments,
        offsets,
    ),
)
principals = st.builds(
    lambda clearance, projects: cleared_principal(clearance, projects),
    clearances,
    st.frozensets(st.sampled_from(PROJECTS)),
)
resources = st.builds(
    lambda level, comps, project: Resource(ART, "a", level, comps, project=project),
    levels,
    compartments,
    st.one_of(st.none(), st.sampled_from(PROJECTS)),
)
session_grants = st.one_of(st.none(), st.booleans())
moments = st.builds(lambda s: NOW + timedelta(seconds=s), st.integers(-3, 3))

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def cleared_principal(clearance: Clearance | None, projects: frozenset[str]) -> Principal:
    return person(7, Role.RESEARCHER, scope=Scope.WRITE, clearance=clearance, projects=projects)


def rule_read(p: Principal, r: Resource, now: datetime, session: bool | None) -> bool:
    """DESIGN.md's read rule, stated independently of policy/levels.py."""
    if r.level == Level.CL1:
        return True
    c = p.clearance
    return (
        c is not None
        and c.level >= r.level
        and now < c.expires_at
        and r.compartments <= c.compartments
        and (r.project is None or r.project in p.projects)
        and (r.level != Level.CL4 or session is True)
    )


def _ctx(session: bool | None, **extra: object) -> dict[str, object]:
    return {"session_grant": session, **extra} if session is not None else dict(extra)


@PROPERTY_SETTINGS
@given(principals, resources, moments, session_grants)
def test_cedar_read_equals_the_rule(p, r, now, session):
    decision = decide(p, Action.ResourceRead, r, _ctx(session), now=now)
    assert decision.allowed is rule_read(p, r, now, session)
    # The explanation is the Python statement of the same rule, and is empty only on allow.
    reasons = read_denials(
        p.clearance,
        r.level,
        r.compartments,
        now=now,
        project=r.project,
        projects=p.projects,
        session_grant=session is True,
    )
    assert (not reasons) is decision.allowed
    if reasons:
        assert decision.reason == "; ".join(reasons)


@PROPERTY_SETTINGS
@given(principals, resources, moments, session_grants, levels)
def test_cedar_write_equals_the_rule(p, r, now, session, data_level):
    decision = decide(p, Action.ResourceWrite, r, _ctx(session, data_level=data_level), now=now)
    assert decision.allowed is (rule_read(p, r, now, session) and data_level <= r.level)
    reasons = write_denials(
        p.clearance,
        r.level,
        r.compartments,
        data_level=data_level,
        now=now,
        project=r.project,
        projects=p.projects,
        session_grant=session is True,
    )
    assert (not reasons) is decision.allowed


@PROPERTY_SETTINGS
@given(principals, levels, levels)
def test_cedar_placement_equals_the_rule(p, job, partition):
    decision = decide(
        p, Action.JobPlace, Resource.partition("gpu", partition), {"job_level": job}, now=NOW
    )
    assert decision.allowed is (job <= partition)


def _raise(clearance: Clearance | None, level: Level, comps: frozenset[str], extra_s: int):
    """A clearance at least as strong as `clearance` in every respect."""
    if clearance is None:
        return Clearance(level, NOW + timedelta(seconds=extra_s), comps)
    return Clearance(
        max(clearance.level, level),
        clearance.expires_at + timedelta(seconds=extra_s),
        clearance.compartments | comps,
    )


@PROPERTY_SETTINGS
@given(
    principals,
    resources,
    moments,
    session_grants,
    levels,
    levels,
    compartments,
    st.integers(0, 10**6),
    st.sampled_from([Action.ResourceRead, Action.ResourceWrite]),
)
def test_raising_a_clearance_never_turns_allow_into_deny(
    p, r, now, session, data_level, level, comps, extra_s, action
):
    context = _ctx(session, data_level=data_level)
    before = decide(p, action, r, context, now=now).allowed
    stronger = replace(p, clearance=_raise(p.clearance, level, comps, extra_s))
    after = decide(stronger, action, r, context, now=now).allowed
    assert after or not before


@PROPERTY_SETTINGS
@given(
    principals,
    resources,
    moments,
    session_grants,
    levels,
    st.sampled_from(COMPARTMENTS),
    st.sampled_from([Action.ResourceRead, Action.ResourceWrite]),
)
def test_adding_a_compartment_never_turns_deny_into_allow(
    p, r, now, session, data_level, compartment, action
):
    context = _ctx(session, data_level=data_level)
    before = decide(p, action, r, context, now=now).allowed
    narrower = replace(r, compartments=r.compartments | {compartment})
    after = decide(p, action, narrower, context, now=now).allowed
    assert before or not after


@PROPERTY_SETTINGS
@given(principals, resources, session_grants, st.integers(0, 10**6))
def test_time_passing_never_turns_deny_into_allow(p, r, session, later_s):
    before = decide(p, Action.ResourceRead, r, _ctx(session), now=NOW).allowed
    after = decide(
        p, Action.ResourceRead, r, _ctx(session), now=NOW + timedelta(seconds=later_s)
    ).allowed
    assert before or not after


def test_not_even_the_system_grants_cl4_without_the_council() -> None:
    from commonlab.policy import Action, Resource, decide
    from commonlab.policy.levels import Level
    from commonlab.policy.principal import SYSTEM

    resource = Resource.clearance(7, Level.CL4)
    days = {"requested_days": 10, "max_clearance_days": 30}
    refused = decide(SYSTEM, Action.ClearanceGrant, resource, {**days, "council_approved": False})
    assert not refused.allowed
    approved = {**days, "council_approved": True}
    assert decide(SYSTEM, Action.ClearanceGrant, resource, approved).allowed
    assert decide(SYSTEM, Action.ClearanceGrant, Resource.clearance(7, Level.CL3), days).allowed


def test_the_regulation_caps_clearance_length() -> None:
    from commonlab.policy import Action, Resource
    from commonlab.policy.levels import Level
    from commonlab.policy.principal import SYSTEM

    resource = Resource.clearance(7, Level.CL2)
    too_long = policy_decide(
        SYSTEM, Action.ClearanceGrant, resource, {"requested_days": 31, "max_clearance_days": 30}
    )
    assert not too_long.allowed
    assert "regulation in force" in too_long.reason
    unstated = policy_decide(SYSTEM, Action.ClearanceGrant, resource, {})
    assert not unstated.allowed  # fail closed: a grant must say how long it lasts
