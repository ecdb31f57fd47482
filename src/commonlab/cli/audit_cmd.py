"""`commonlab audit URL`: re-derive the facility's public figures from its record alone and
print every place they differ from what the facility publishes (exit 1 on any)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from commonlab.audit.log import DirectorySource, HttpSource, LogError, read_log
from commonlab.audit.published import Published
from commonlab.audit.run import AuditReport, audit
from commonlab.cli.client import CliError
from commonlab.cli.render import console

__all__ = ["register"]


def audit_command(
    url: Annotated[str, typer.Argument(help="the facility's base URL, e.g. http://127.0.0.1:8000")],
    from_tiles: Annotated[
        Path | None,
        typer.Option(
            "--from-tiles",
            help="read the log from this mirror of its tiles (checkpoint, tile/…) "
            "instead of the facility",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="the log's verifier key (name+keyid+base64); default: the mirror's `key` "
            "file, else the facility's, trusted on first use"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Replay the public record and compare it with the facility's API and CSV exports."""
    http = httpx.Client(timeout=60.0)
    source = DirectorySource(from_tiles) if from_tiles else HttpSource(url, http)
    verifier_key = key or _verifier_key(url, from_tiles, http)
    say = (lambda _: None) if as_json else (lambda text: console.print(f"[dim]… {text}[/dim]"))
    try:
        say(f"reading the log at {source.where}")
        log = read_log(source, verifier_key)
    except LogError as exc:
        raise CliError(f"the record does not verify: {exc}") from None
    say(f"{log.size} entries verified against the signed checkpoint")
    report = audit(log, Published(url, http), progress=say)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


def _verifier_key(url: str, mirror: Path | None, http: httpx.Client) -> str:
    if mirror is not None and (mirror / "key").is_file():
        return (mirror / "key").read_text().strip()
    try:
        answer = http.get(url.rstrip("/") + "/api/v1/record/key")
        answer.raise_for_status()
        return answer.json()["verifier_key"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise CliError(f"no verifier key: give --key (the facility did not say: {exc})") from None


def _print(report: AuditReport) -> None:
    findings = report.findings
    summary = Table(title="What the record says, checked against the facility", show_lines=False)
    summary.add_column("part")
    summary.add_column("figures checked", justify="right")
    summary.add_column("differences", justify="right")
    for book, checked in findings.checked.items():
        differ = sum(1 for d in findings.differences if d.book == book)
        summary.add_row(book, str(checked), f"[red]{differ}[/red]" if differ else "0")
    console.print(summary)
    for difference in findings.differences:
        console.print(f"[red]✗[/red] {difference.line()}", highlight=False, emoji=False)
    for what in findings.on_commitments:
        console.print(f"[yellow]•[/yellow] rests on commitments: {what}", highlight=False)
    for note in findings.notes:
        console.print(f"[dim]• {note}[/dim]", highlight=False)
    if report.unread:
        unread = ", ".join(f"{t} ×{n}" for t, n in sorted(report.unread.items()))
        console.print(
            f"[dim]• entries no figure depends on: {unread}[/dim]", highlight=False, emoji=False
        )
    total = sum(findings.checked.values())
    if findings.ok:
        console.print(
            f"[green]✓[/green] {report.replayed} of {report.size} entries replayed; "
            f"{total} figures agree with the facility"
        )
    else:
        console.print(f"[red]✗ {len(findings.differences)} difference(s)[/red] in {total} figures")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
