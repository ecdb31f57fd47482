"""Identity administration from the command line: institutions, people, roles, tokens,
clearances. Each command is one API call and a rendering of its answer, except
`admin recover`, which works on the facility's own machine without any token."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json, print_table

__all__ = ["register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]

institution = typer.Typer(help="Institutions: universities, labs, SMEs, public bodies, NGOs.")
person = typer.Typer(help="People and their accounts.")
role = typer.Typer(help="Grant and revoke roles.")
token = typer.Typer(help="API tokens: issue (shown once), list, revoke.")
clearance = typer.Typer(help="Containment clearances: grant, list, revoke.")
facility_admin = typer.Typer(
    help="On the facility's own machine, with its home: recover operator access."
)


def _client(url: str | None) -> Client:
    return Client(load_login(url=url))


def _show(value: Any, as_json: bool, columns: list[str], title: str) -> None:
    if as_json:
        print_json(value)
    else:
        print_table(value if isinstance(value, list) else [value], columns, title=title)


def _all_pages(client: Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "after": cursor, "limit": 500}
        page = client.get(path, params={k: v for k, v in query.items() if v is not None})
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            return items


INSTITUTION_COLUMNS = ["id", "name", "country", "kind"]
PERSON_COLUMNS = ["id", "pseudonym", "name", "institution_id", "roles", "active"]
TOKEN_COLUMNS = ["id", "name", "key_id", "scopes", "expires_at", "revoked_at"]
CLEARANCE_COLUMNS = ["id", "level", "compartments", "expires_at", "revoked_at"]


@institution.command("create")
def institution_create(
    name: str,
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. KE")],
    kind: Annotated[str, typer.Option(help="university|research_lab|sme|government|ngo")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Register an institution."""
    row = _client(url).post(
        "/api/v1/institutions", json={"name": name, "country": country, "kind": kind}
    )
    _show(row, as_json, INSTITUTION_COLUMNS, "Institution")


@institution.command("list")
def institution_list(
    country: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option(help="name contains")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List institutions (all pages)."""
    rows = _all_pages(
        _client(url), "/api/v1/institutions", {"country": country, "kind": kind, "q": q}
    )
    _show(rows, as_json, INSTITUTION_COLUMNS, "Institutions")


@person.command("create")
def person_create(
    name: str,
    email: Annotated[str | None, typer.Option()] = None,
    orcid: Annotated[str | None, typer.Option()] = None,
    institution_id: Annotated[int | None, typer.Option("--institution")] = None,
    roles: Annotated[list[str] | None, typer.Option("--role", help="repeatable")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Create a person's account."""
    body = {
        "name": name,
        "email": email,
        "orcid": orcid,
        "institution_id": institution_id,
        "roles": roles or [],
    }
    row = _client(url).post("/api/v1/people", json={k: v for k, v in body.items() if v})
    _show(row, as_json, PERSON_COLUMNS, "Person")


@person.command("list")
def person_list(
    institution_id: Annotated[int | None, typer.Option("--institution")] = None,
    role_name: Annotated[str | None, typer.Option("--role")] = None,
    q: Annotated[str | None, typer.Option(help="name contains")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List people (operators, auditors and safety officers only)."""
    rows = _all_pages(
        _client(url),
        "/api/v1/people",
        {"institution_id": institution_id, "role": role_name, "q": q},
    )
    _show(rows, as_json, PERSON_COLUMNS, "People")


@person.command("show")
def person_show(person_id: int, url: Url = None, as_json: Json = False) -> None:
    """Show one person."""
    _show(_client(url).get(f"/api/v1/people/{person_id}"), as_json, PERSON_COLUMNS, "Person")


@role.command("grant")
def role_grant(person_id: int, role_name: str, url: Url = None, as_json: Json = False) -> None:
    """Grant a role: researcher, pi, reviewer, delegate, operator, safety_officer, auditor."""
    row = _client(url).post(f"/api/v1/people/{person_id}/roles", json={"role": role_name})
    _show(row, as_json, PERSON_COLUMNS, "Person")


@role.command("revoke")
def role_revoke(person_id: int, role_name: str, url: Url = None, as_json: Json = False) -> None:
    """Revoke a role."""
    row = _client(url).delete(f"/api/v1/people/{person_id}/roles/{role_name}")
    _show(row, as_json, PERSON_COLUMNS, "Person")


@token.command("issue")
def token_issue(
    person_id: Annotated[
        int | None, typer.Argument(help="whose token; yourself if left out")
    ] = None,
    name: Annotated[str, typer.Option()] = "cli",
    scopes: Annotated[list[str] | None, typer.Option("--scope", help="read|write|admin")] = None,
    days: Annotated[int, typer.Option(help="valid for this many days (1-365)")] = 90,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Issue an API token. Its secret is printed once and never again."""
    client = _client(url)
    person_id = person_id or _my_id(client)
    issued = client.post(
        f"/api/v1/people/{person_id}/tokens",
        json={"name": name, "scopes": scopes or ["read"], "expires_in_days": days},
    )
    if as_json:
        print_json(issued)
        return
    console.print(
        f"Token {issued['key_id']} ({', '.join(issued['scopes'])}), "
        f"expires {issued['expires_at'][:10]}."
    )
    console.print("Copy it now; it is not shown again:")
    console.print(issued["token"], highlight=False, soft_wrap=True)


@token.command("list")
def token_list(
    person_id: Annotated[int | None, typer.Argument()] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List a person's tokens (never their secrets)."""
    client = _client(url)
    rows = _all_pages(client, f"/api/v1/people/{person_id or _my_id(client)}/tokens", {})
    _show(rows, as_json, TOKEN_COLUMNS, "Tokens")


@token.command("revoke")
def token_revoke(token_id: int, url: Url = None, as_json: Json = False) -> None:
    """Revoke a token at once."""
    _show(_client(url).delete(f"/api/v1/tokens/{token_id}"), as_json, TOKEN_COLUMNS, "Token")


@clearance.command("grant")
def clearance_grant(
    person_id: int,
    level: Annotated[int, typer.Option(min=1, max=4, help="containment level 1-4")],
    days: Annotated[int, typer.Option(min=1, max=3650, help="valid for this many days")] = 180,
    compartments: Annotated[list[str] | None, typer.Option("--compartment")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Grant a clearance (supersedes the person's current one)."""
    expires = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    row = _client(url).post(
        f"/api/v1/people/{person_id}/clearances",
        json={"level": level, "compartments": compartments or [], "expires_at": expires},
    )
    _show(row, as_json, CLEARANCE_COLUMNS, "Clearance")


@clearance.command("list")
def clearance_list(person_id: int, url: Url = None, as_json: Json = False) -> None:
    """A person's clearances, current and past."""
    rows = _all_pages(_client(url), f"/api/v1/people/{person_id}/clearances", {})
    _show(rows, as_json, CLEARANCE_COLUMNS, "Clearances")


@clearance.command("revoke")
def clearance_revoke(clearance_id: int, url: Url = None, as_json: Json = False) -> None:
    """Revoke a clearance at once."""
    row = _client(url).delete(f"/api/v1/clearances/{clearance_id}")
    _show(row, as_json, CLEARANCE_COLUMNS, "Clearance")


@facility_admin.command("recover")
def admin_recover(
    person_id: Annotated[
        int | None,
        typer.Option("--person", help="give the token to this person (made an active operator)"),
    ] = None,
    name: Annotated[
        str, typer.Option(help="the name of the operator created when there is none")
    ] = "Facility operator",
) -> None:
    """Issue a new operator admin token when no operator can act any more.

    Run it on the facility's machine as the user that runs it, with the same COMMONLAB_HOME
    (or COMMONLAB_CONFIG) as `commonlab up`: it opens the facility's home and database
    directly. The token is printed once; its issue is on the public record."""
    from commonlab.identity.service import recover_operator

    facility = _open_facility_home()
    try:
        with facility.db.session() as session:
            person, secret = recover_operator(session, person_id=person_id, name=name)
            pseudonym = person.pseudonym
        facility.sequence_now()  # signed into the record now, not at next start
    finally:
        facility.close()
    console.print(
        f"Issued an operator admin token to {pseudonym} (valid 365 days). "
        "The issue is on the public record. Copy it now; it is not shown again:"
    )
    console.print(secret, highlight=False, soft_wrap=True)


def _open_facility_home() -> Any:
    """The facility whose home this machine holds, opened as `commonlab up` opens it; a
    CliError saying what is missing when there is none (never a new, empty facility)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from commonlab.config import load_settings
    from commonlab.facility import open_facility

    settings = load_settings()
    home = settings.home.resolve()
    where = "run this on the facility's machine with the COMMONLAB_HOME of `commonlab up`"
    if not home.is_dir():
        raise CliError(f"cannot open the facility's home: {home} does not exist ({where})")
    if not os.access(home, os.R_OK | os.W_OK | os.X_OK):
        raise CliError(
            f"cannot open the facility's home {home}: permission denied (run this as the "
            "user that runs the facility)"
        )
    if not settings.key_path.is_file():
        raise CliError(
            f"{home} holds no facility: its record key {settings.key_path} is missing ({where})"
        )
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not os.path.isfile(url.database or ""):
        raise CliError(f"{home} holds no facility: its database {url.database} is missing")
    try:
        return open_facility(settings)
    except SQLAlchemyError as exc:
        raise CliError(f"cannot open the facility's database: {exc.__class__.__name__}") from None


def _my_id(client: Client) -> int:
    me = client.get("/api/v1/me")
    if not me["authenticated"]:
        raise CliError("not signed in: run `commonlab login` or pass a person id")
    return int(me["person"]["id"])


def register(app: typer.Typer) -> None:
    app.add_typer(institution, name="institution")
    app.add_typer(person, name="person")
    app.add_typer(role, name="role")
    app.add_typer(token, name="token")
    app.add_typer(clearance, name="clearance")
    app.add_typer(facility_admin, name="admin")
