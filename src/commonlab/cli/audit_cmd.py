"""`commonlab audit URL`: re-derive the facility's public figures from its record alone and
print every place they differ from what the facility publishes (exit 1 on any)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from commonlab.audit.log import DirectorySource, HttpSource, LogError, read_log
from commonlab.audit.log import Progress as AuditProgress
from commonlab.audit.mirror import facility_key
from commonlab.audit.published import Published
from commonlab.audit.run import AuditReport, audit
from commonlab.cli.client import CliError
from commonlab.cli.record_cmd import default_state_path
from commonlab.cli.render import console
from commonlab.record.watch import KeyChanged, LogForked, LogUnreachable, Watcher, WatchState

__all__ = ["register"]

err_console = Console(stderr=True)


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
    state: Annotated[
        Path | None,
        typer.Option(
            help="the last checkpoint verified from this facility, shared with `record watch` "
            "[default: one file per facility under $XDG_STATE_HOME/commonlab/watch]"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Replay the public record and compare it with the facility's API and CSV exports."""
    http = httpx.Client(timeout=60.0)
    if from_tiles is not None:
        source = DirectorySource(from_tiles)
        verifier_key = key or _mirror_key(from_tiles)
    else:
        source = HttpSource(url, http)
        verifier_key = _consistent_with_last_time(url, key, state or default_state_path(url), http)
    with _bars(quiet=as_json) as progress:
        try:
            log = read_log(source, verifier_key, progress=progress)
        except LogError as exc:
            raise CliError(f"the record does not verify: {exc}") from None
        report = audit(log, Published(url, http), progress=progress)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


@contextmanager
def _bars(*, quiet: bool) -> Iterator[AuditProgress]:
    """One progress bar per step of the audit (verifying, replaying, comparing), on stderr."""
    if quiet:
        yield lambda what, done, total: None
        return
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bars:

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

        yield progress


def _consistent_with_last_time(url: str, key: str | None, state: Path, http: httpx.Client) -> str:
    """Check the facility's checkpoint against the last one verified from it (by an audit or
    `record watch`): a log that shrank or forked since is refused before anything is
    replayed, since a shorter log re-signed would otherwise audit clean. Returns the verifier
    key, pinned on first use."""
    first_use = WatchState.load(state) is None
    if key is None and first_use:
        # A URL that is no facility says so here, not as a "contradiction".
        try:
            key = facility_key(url, http)
        except LogError as exc:
            raise CliError(str(exc)) from None
    watcher = Watcher(url, state_path=state, verifier_key=key, http=http, check_entries=False)
    try:
        watcher.check_once()
    except KeyChanged as exc:
        if first_use:  # nothing was verified before: it is --key that does not fit
            raise CliError(
                f"the checkpoint at {url} is not signed by the key given with --key: check "
                "the key (`commonlab record key --url URL` prints the facility's)"
            ) from None
        raise CliError(f"the log at {url} contradicts the one verified before: {exc}") from None
    except LogForked as exc:
        raise CliError(f"the log at {url} contradicts the one verified before: {exc}") from None
    except (LogUnreachable, ValueError) as exc:
        raise CliError(f"cannot read the log at {url}: {exc}") from None
    pinned = WatchState.load(state)
    assert pinned is not None  # check_once saved it
    return pinned.verifier_key


def _mirror_key(mirror: Path) -> str:
    try:
        return (mirror / "key").read_text().strip()
    except OSError:
        raise CliError(f"no verifier key: give --key, or put it in {mirror / 'key'}") from None


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
