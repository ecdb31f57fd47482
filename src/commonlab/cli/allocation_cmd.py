"""Calls, proposals, review, allocations and share reports from the command line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json, print_table

__all__ = ["register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]
Start = Annotated[
    str | None, typer.Option(help="first day, YYYY-MM-DD [default: this quarter's first]")
]
End = Annotated[
    str | None, typer.Option(help="day after the last, YYYY-MM-DD [default: next quarter's first]")
]

call = typer.Typer(help="Calls for proposals.")
proposal = typer.Typer(help="Proposals: submit, show.")
review = typer.Typer(help="Review: assign reviewers (with their conflicts), score.")
allocation = typer.Typer(help="Allocations and their usage.")
report = typer.Typer(help="Reports: member-state shares.")


def _client(url: str | None) -> Client:
    return Client(load_login(url=url))


def _document(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise CliError("give a JSON object")
    return value


@call.command("create")
def call_create(
    spec: Annotated[str, typer.Argument(help="the call as JSON, or @file.json")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Open a call (operators)."""
    created = _client(url).post("/api/v1/calls", json=_document(spec))
    if as_json:
        print_json(created)
        return
    console.print(f"Call {created['id']} opened: {created['title']} ({created['pool']})")


@call.command("list")
def call_list(url: Url = None, as_json: Json = False) -> None:
    """Calls for proposals."""
    items = _client(url).get("/api/v1/calls", params={"limit": 500})["items"]
    if as_json:
        print_json(items)
        return
    rows = [{**c, "budget": ", ".join(f"{k} {v} h" for k, v in c["budget"].items())} for c in items]
    print_table(rows, ["id", "title", "pool", "budget", "closes_at"], title="Calls")


@proposal.command("submit")
def proposal_submit(
    spec: Annotated[str, typer.Argument(help="the proposal as JSON, or @file.json")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Submit a proposal to an open call (as its PI)."""
    created = _client(url).post("/api/v1/proposals", json=_document(spec))
    if as_json:
        print_json(created)
        return
    console.print(f"Proposal {created['id']} submitted to call {created['call_id']}.")


@proposal.command("show")
def proposal_show(proposal_id: int, url: Url = None) -> None:
    """A proposal, its reviews and replies (PI, team, reviewers and operators)."""
    print_json(_client(url).get(f"/api/v1/proposals/{proposal_id}"))


@proposal.command("reply")
def proposal_reply(proposal_id: int, text: str, url: Url = None) -> None:
    """Reply to the reviews of your proposal (the PI's right to reply)."""
    _client(url).post(f"/api/v1/proposals/{proposal_id}/replies", json={"text": text})
    console.print(f"Reply to the reviews of proposal {proposal_id} recorded.")


@proposal.command("decide")
def proposal_decide(
    proposal_id: int,
    award: Annotated[bool, typer.Option("--award/--reject", help="the panel's decision")],
    url: Url = None,
) -> None:
    """Record the panel's decision (operators); an award above the threshold waits for a vote."""
    answer = _client(url).post(f"/api/v1/proposals/{proposal_id}/decision", json={"award": award})
    granted = answer["allocation"]
    if granted is None:
        console.print(f"Proposal {proposal_id} rejected.")
    else:
        console.print(
            f"Proposal {proposal_id} awarded: {granted['project']} is {granted['status']}."
        )


@call.command("rank")
def call_rank(call_id: int, url: Url = None) -> None:
    """The panel's ranking of a call's proposals by weighted score (operators)."""
    rows = _client(url).get(f"/api/v1/calls/{call_id}/ranking")
    print_table(rows, ["rank", "proposal", "title", "score"], title=f"Call {call_id}")


@review.command("candidates")
def review_candidates(proposal_id: int, url: Url = None) -> None:
    """Every reviewer, and why any of them is excluded from this proposal."""
    rows = _client(url).get(f"/api/v1/proposals/{proposal_id}/reviewers")
    print_table(
        [{**r, "conflicts": "; ".join(r["conflicts"]) or "none"} for r in rows],
        ["person_id", "name", "eligible", "conflicts"],
        title=f"Reviewers for proposal {proposal_id}",
    )


@review.command("suggest")
def review_suggest(proposal_id: int, url: Url = None) -> None:
    """Reviewers free of conflicts with this proposal and not yet on it, least loaded first
    (operators). Assign one with `review assign`."""
    rows = _client(url).get(f"/api/v1/proposals/{proposal_id}/reviewers/suggested")
    print_table(
        rows,
        ["person_id", "name", "open_reviews", "done_reviews"],
        headers={"person_id": "id", "open_reviews": "open", "done_reviews": "done"},
        title=f"Suggested reviewers for proposal {proposal_id}",
    )


@review.command("assign")
def review_assign(proposal_id: int, reviewer_id: int, url: Url = None) -> None:
    """Assign a reviewer; refused with the reasons when there is a conflict of interest."""
    _client(url).post(
        f"/api/v1/proposals/{proposal_id}/reviewers", json={"reviewer_id": reviewer_id}
    )
    console.print(f"Reviewer {reviewer_id} assigned to proposal {proposal_id}.")


@review.command("score")
def review_score(
    proposal_id: int,
    scores: Annotated[list[str], typer.Argument(help="criterion=1..5 for each criterion")],
    comment: Annotated[str, typer.Option()] = "",
    url: Url = None,
) -> None:
    """Score a proposal you are assigned to."""
    parsed: dict[str, int] = {}
    for item in scores:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise CliError(f"{item!r}: write each score as criterion=1..5")
        parsed[name] = int(value)
    _client(url).post(
        f"/api/v1/proposals/{proposal_id}/review", json={"scores": parsed, "comment": comment}
    )
    console.print(f"Scores for proposal {proposal_id} submitted.")


@allocation.command("show")
def allocation_show(allocation_id: int, url: Url = None, as_json: Json = False) -> None:
    """An allocation: budget, hours used and reserved, and its quarterly tranches."""
    client = _client(url)
    a = client.get(f"/api/v1/allocations/{allocation_id}")
    tranches = client.get(f"/api/v1/allocations/{allocation_id}/tranches")
    if as_json:
        print_json({**a, "tranches": tranches})
        return
    console.print(
        f"[bold]{a['project']}[/bold] {a['title']} — {a['status']}, "
        f"{a['starts_on']} → {a['ends_on']}"
    )
    rows = [
        {
            "class": cls,
            "budget": hours,
            "used": a["used"].get(cls, "0"),
            "reserved": a["reserved"].get(cls, "0"),
        }
        for cls, hours in a["budget"].items()
    ]
    print_table(rows, ["class", "budget", "used", "reserved"], title="Accelerator-hours")
    # Seven short columns fit 80: a quarter ends where the next one starts.
    print_table(
        [
            {**t, "quarter": f"Q{t['quarter'] + 1}{' (now)' if t['current'] else ''}"}
            for t in tranches
        ],
        ["quarter", "accelerator", "starts_on", "released", "drawn", "reserved", "remaining"],
        headers={
            "accelerator": "class",
            "starts_on": "starts",
            "released": "tranche",
            "reserved": "held",
            "remaining": "left",
        },
        title="Quarterly tranches (hours)",
    )


@allocation.command("add-member")
def allocation_add_member(allocation_id: int, person_id: int, url: Url = None) -> None:
    """Add a person to your project (as its PI)."""
    answer = _client(url).post(
        f"/api/v1/allocations/{allocation_id}/members", json={"person_id": person_id}
    )
    console.print(f"Person {person_id} is now a member of {answer['project']}.")


@allocation.command("reserve")
def allocation_reserve(
    allocation_id: int,
    hours: Annotated[str, typer.Argument(help="accelerator-hours to hold")],
    accelerator: Annotated[str, typer.Option(help="accelerator class")] = "H100",
    job: Annotated[str, typer.Option(help="the job the hours are for")] = "manual",
    url: Url = None,
) -> None:
    """Reserve hours on an allocation (operators; jobs do this at admission)."""
    answer = _client(url).post(
        f"/api/v1/allocations/{allocation_id}/reservations",
        json={"accelerator": accelerator, "hours": hours, "job": job},
    )
    console.print(f"Reservation {answer['reservation']}: {answer['hours']} {accelerator} hours.")


@allocation.command("settle")
def allocation_settle(reservation_id: int, hours: str, url: Url = None) -> None:
    """Charge what a job used against its reservation, exactly once (operators)."""
    answer = _client(url).post(f"/api/v1/ledger/{reservation_id}/settle", json={"hours": hours})
    console.print(f"Charged {answer['hours']} hours (ledger line {answer['ledger']}).")


@report.command("usage")
def report_usage(
    start: Start = None,
    end: End = None,
    by: Annotated[str, typer.Option(help="member, institution, call or project")] = "project",
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    url: Url = None,
) -> None:
    """Awarded budget and delivered hours, grouped (this quarter unless --start/--end)."""
    start, end = _period(start, end)
    params = {"start": start, "end": end, "by": by, "format": "csv" if csv else "json"}
    answer = _client(url).get("/api/v1/reports/usage", params=params)
    if csv:
        console.print(answer.decode() if isinstance(answer, bytes) else answer, end="")
        return
    print_table(
        answer["rows"],
        ["group", "allocations", "budget_hours", "delivered_hours"],
        title=f"Usage by {by}, {start} → {end}",
    )


@report.command("shares")
def report_shares(
    start: Start = None,
    end: End = None,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    url: Url = None,
) -> None:
    """Delivered versus entitled share per member state (this quarter unless --start/--end)."""
    start, end = _period(start, end)
    params = {"start": start, "end": end, "format": "csv" if csv else "json"}
    answer = _client(url).get("/api/v1/reports/shares", params=params)
    if csv:
        console.print(answer.decode() if isinstance(answer, bytes) else answer, end="")
        return
    rows = [{**s, "flag": "outside band" if s["outside_band"] else ""} for s in answer["states"]]
    print_table(
        rows,
        ["code", "entitled_percent", "delivered_percent", "delivered_hours", "flag"],
        title=f"Member-state shares {start} → {end} (±{answer['tolerance_percent']}%)",
    )
    outside = answer.get("outside_members") or []
    if outside:
        hours = ", ".join(f"{o['country']} {o['delivered_hours']} h" for o in outside)
        console.print(
            f"Delivered outside the member states: {hours} (from the facility's open share, "
            "counted in no member state's share)",
            highlight=False,
        )


def _period(start: str | None, end: str | None) -> tuple[str, str]:
    """The dates given, checked; what is left out is the current quarter's [first day, first
    day of the next)."""
    today = date.today()
    first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    following = date(first.year + first.month // 10, (first.month + 2) % 12 + 1, 1)
    chosen = []
    for value, default in ((start, first), (end, following)):
        try:
            chosen.append(default if value is None else date.fromisoformat(value))
        except ValueError:
            raise CliError(f"{value!r} is not a date: write YYYY-MM-DD") from None
    if chosen[0] >= chosen[1]:
        raise CliError(f"--start {chosen[0]} is not before --end {chosen[1]}")
    return chosen[0].isoformat(), chosen[1].isoformat()


def register(app: typer.Typer) -> None:
    app.add_typer(call, name="call")
    app.add_typer(proposal, name="proposal")
    app.add_typer(review, name="review")
    app.add_typer(allocation, name="allocation")
    app.add_typer(report, name="report")
