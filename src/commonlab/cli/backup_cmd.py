"""`commonlab backup DEST` and `commonlab restore SRC`: on the facility's own machine, with its
home and database (as `admin recover` does), not over HTTP. See operations/backup.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from commonlab.cli.render import console
from commonlab.config import load_settings
from commonlab.operations.backup import backup as take_backup
from commonlab.operations.backup import restore as put_back
from commonlab.operations.backup import verify_backup

__all__ = ["register"]


def backup(
    dest: Annotated[Path, typer.Argument(help="a new or empty folder for the backup")],
) -> None:
    """Back up the running facility: its database (one consistent snapshot), object store and
    keys, with a manifest of SHA-256 hashes. It keeps running meanwhile."""

    with _progress() as progress:
        task = progress.add_task("copying objects", total=None)
        saved = take_backup(
            load_settings(),
            dest,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"[green]✓[/green] backup of the {saved.database} facility in {saved.path}: the record "
        f"at {saved.record_size} entries, {saved.files} files, {saved.bytes:,} bytes "
        f"(check it with `commonlab restore --check {saved.path}`)",
        highlight=False,
        soft_wrap=True,
    )


def restore(
    src: Annotated[Path, typer.Argument(help="a folder `commonlab backup` wrote")],
    check: Annotated[
        bool, typer.Option("--check", help="only verify the backup against its manifest")
    ] = False,
) -> None:
    """Put a backup back into this facility, which must be stopped. Every hash is checked
    before anything is written. At its next start the facility checks its record against
    the latest checkpoint a witness cosigned, and refuses a log that lost entries."""

    if check:
        manifest = verify_backup(src)
        console.print(
            f"[green]✓[/green] {src}: every file matches its manifest; a backup of "
            f"{manifest['origin']} taken {manifest['taken_at']} (record at "
            f"{manifest['record']['size']} entries, {manifest['database']})",
            highlight=False,
            soft_wrap=True,
        )
        return
    settings = load_settings()
    with _progress() as progress:
        task = progress.add_task("restoring objects", total=None)
        restored = put_back(
            settings,
            src,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"[green]✓[/green] restored the backup taken {restored.taken_at} into "
        f"{settings.home}: the record at {restored.record_size} entries, "
        f"{restored.objects_added} objects put back",
        highlight=False,
        soft_wrap=True,
    )
    if restored.witnessed_size is not None:
        console.print(
            f"[bold yellow]! A witness cosigned a checkpoint of {restored.witnessed_size} "
            f"entries; this backup's record holds {restored.record_size}. The facility will "
            "refuse to start on it: restore a newer backup, or start it with `commonlab up "
            "--force-fork` to continue this log as a fork, on the record.[/bold yellow]",
            highlight=False,
            soft_wrap=True,
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
