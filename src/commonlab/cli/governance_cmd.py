"""The council from the command line: members, motions, votes, regulations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json, print_table
from commonlab.governance.schemas import MotionKind

__all__ = ["register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]

member = typer.Typer(help="Member states and their delegates.")
motion = typer.Typer(help="Council motions: table, list, show, close.")
regulation = typer.Typer(help="The regulation in force, its history and diffs.")


def _client(url: str | None) -> Client:
    return Client(load_login(url=url))


def _members_rows(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "code": m["code"],
            "name": m["name"],
            "contribution %": m["contribution"],
            "delegates": [d["name"] for d in m["delegates"]],
        }
        for m in members
    ]


@member.command("list")
def member_list(url: Url = None, as_json: Json = False) -> None:
    """Member states, their contribution shares and delegates."""
    members = _client(url).get("/api/v1/members")
    if as_json:
        print_json(members)
        return
    print_table(
        _members_rows(members),
        ["code", "name", "contribution %", "delegates"],
        title="Member states",
    )


@member.command("found")
def member_found(
    members: Annotated[
        list[str],
        typer.Argument(help="CODE=NAME=PERCENT for each founding state, e.g. IT=Italy=25"),
    ],
    url: Url = None,
) -> None:
    """Found the council (operators, once): the founding states and their contribution scale."""
    body = []
    for item in members:
        parts = item.split("=")
        if len(parts) != 3:
            raise CliError(f"{item!r}: write each founding state as CODE=NAME=PERCENT")
        body.append({"code": parts[0], "name": parts[1], "contribution": parts[2]})
    result = _client(url).post("/api/v1/members", json={"members": body})
    print_table(
        _members_rows(result),
        ["code", "name", "contribution %", "delegates"],
        title="Member states",
    )


@member.command("delegate")
def member_delegate(code: str, person_id: int, url: Url = None) -> None:
    """Record that a member state appointed this person as its delegate."""
    _client(url).post(f"/api/v1/members/{code}/delegates", json={"person_id": person_id})
    console.print(f"Person {person_id} now sits for {code.upper()}.")


MOTION_COLUMNS = ["id", "kind", "title", "status", "closes_at", "tally"]


def _motion_row(m: dict[str, Any]) -> dict[str, Any]:
    counts = {"yes": 0, "no": 0, "abstain": 0}
    for v in m["votes"]:
        counts[v["choice"]] += 1
    return {**m, "tally": f"{counts['yes']} yes · {counts['no']} no · {counts['abstain']} abstain"}


@motion.command("table")
def motion_table(
    kind: Annotated[
        str,
        # From the facility's own list of kinds, so the help cannot fall behind it.
        typer.Argument(help=", ".join(kind.value for kind in MotionKind)),
    ],
    title: Annotated[str, typer.Option(help="a one-line title")],
    payload: Annotated[str, typer.Option(help="the motion's payload as JSON, or @file.json")],
    days: Annotated[
        float, typer.Option(min=0.001, max=90, help="how long the vote stays open")
    ] = 7,
    text: Annotated[str, typer.Option(help="the motion's text")] = "",
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Table a motion for the state you sit for; voting opens now."""
    raw = Path(payload[1:]).read_text() if payload.startswith("@") else payload
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--payload is not valid JSON ({exc.msg} at position {exc.pos})") from None
    closes = datetime.now(UTC) + timedelta(days=days)
    created = _client(url).post(
        "/api/v1/motions",
        json={
            "kind": kind,
            "title": title,
            "text": text,
            "payload": body,
            "closes_at": closes.isoformat(),
        },
    )
    if as_json:
        print_json(created)
        return
    console.print(
        f"Motion {created['id']} tabled ({created['rule']} majority); "
        f"voting closes {created['closes_at'][:16]} UTC."
    )


@motion.command("list")
def motion_list(
    status: Annotated[str | None, typer.Option(help="open, passed, failed or lapsed")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Motions, oldest first."""
    client = _client(url)
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {
            k: v
            for k, v in {"status": status, "after": cursor, "limit": 500}.items()
            if v is not None
        }
        page = client.get("/api/v1/motions", params=params)
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    if as_json:
        print_json(items)
        return
    print_table([_motion_row(m) for m in items], MOTION_COLUMNS, title="Motions")


@motion.command("show")
def motion_show(motion_id: int, url: Url = None, as_json: Json = False) -> None:
    """A motion, its tally and roll call."""
    m = _client(url).get(f"/api/v1/motions/{motion_id}")
    if as_json:
        print_json(m)
        return
    console.print(
        f"[bold]Motion {m['id']}: {m['title']}[/bold]  ({m['kind']}, {m['rule']} majority)"
    )
    console.print(
        f"tabled by {m['tabled_by']} for {m['tabled_for']}; "
        f"open {m['opens_at'][:16]} → {m['closes_at'][:16]} UTC"
    )
    console.print(f"status: {m['status']}" + (f" — {m['result']['reason']}" if m["result"] else ""))
    print_table(m["votes"], ["member", "choice", "delegate", "cast_at"], title="Roll call")


@motion.command("close")
def motion_close(motion_id: int, url: Url = None) -> None:
    """Close a vote whose time is up; a passing motion takes effect at once."""
    m = _client(url).post(f"/api/v1/motions/{motion_id}/close")
    console.print(f"Motion {m['id']}: {m['status']} — {m['result']['reason']}")


def vote(
    motion_id: int,
    choice: Annotated[str, typer.Argument(help="yes, no or abstain")],
    url: Url = None,
) -> None:
    """Cast (or change) your state's vote on a motion."""
    m = _client(url).post(f"/api/v1/motions/{motion_id}/votes", json={"choice": choice})
    console.print(f"Voted {choice} on motion {m['id']}: {_motion_row(m)['tally']} so far.")


@regulation.command("show")
def regulation_show(
    version: Annotated[
        int | None, typer.Argument(help="a version; the one in force if left out")
    ] = None,
    url: Url = None,
) -> None:
    """A regulation version as JSON (the one in force by default)."""
    path = "/api/v1/regulations/in-force" if version is None else f"/api/v1/regulations/{version}"
    print_json(_client(url).get(path))


@regulation.command("history")
def regulation_history(url: Url = None) -> None:
    """Every adopted version, newest first."""
    rows = _client(url).get("/api/v1/regulations")
    print_table(
        [{**r, "title": r["document"]["title"], "sha256": r["sha256"][:12] + "…"} for r in rows],
        ["version", "title", "adopted_at", "sha256"],
        title="Regulations",
    )


@regulation.command("diff")
def regulation_diff(old: int, new: int, url: Url = None) -> None:
    """What changed between two versions."""
    changes = _client(url).get("/api/v1/regulations/diff", params={"from": old, "to": new})[
        "changes"
    ]
    print_table(changes, ["field", "from", "to"], title=f"Regulation {old} → {new}")


def register(app: typer.Typer) -> None:
    app.add_typer(member, name="member")
    app.add_typer(motion, name="motion")
    app.add_typer(regulation, name="regulation")
    app.command("vote")(vote)
