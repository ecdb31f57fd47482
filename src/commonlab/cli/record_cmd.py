"""`commonlab record ...`: the verifier key, verifying a log, watching one as a witness, and
mirroring one for `commonlab audit --from-tiles`."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from commonlab.audit.log import LogError
from commonlab.audit.mirror import mirror as mirror_log
from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json

__all__ = ["register"]

record = typer.Typer(help="The public record: its key, verifying it, watching it, mirroring it.")

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]


@record.command("key")
def key(url: Url = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the log's origin and verifier key (name+keyid+base64)."""
    answer = Client(load_login(url=url)).get("/api/v1/record/key")
    if as_json:
        print_json(answer)
        return
    console.print(f"origin        {answer['origin']}")
    console.print(f"verifier key  {answer['verifier_key']}", highlight=False, soft_wrap=True)


@record.command("verify")
def verify(
    url: Annotated[
        str | None,
        typer.Option("--url", help="verify a remote log over HTTP instead of the local store"),
    ] = None,
    verifier_key: Annotated[str | None, typer.Option("--key", help="expected verifier key")] = None,
) -> None:
    """Check the whole log from scratch: every entry, tile, root and checkpoint signature."""
    if url:
        _verify_remote(url, verifier_key)
        return
    _verify_local(verifier_key)


def _verify_local(verifier_key: str | None) -> None:
    from commonlab.config import load_settings
    from commonlab.facility import open_facility
    from commonlab.record import service as record
    from commonlab.record.note import Verifier
    from commonlab.record.verify import verify_store

    facility = open_facility(load_settings())
    try:
        verifier = Verifier.from_key(verifier_key or facility.signer.verifier_key())
        with facility.db.session() as session:
            total = record.sequenced_count(session)
            with _progress() as progress:
                task = progress.add_task("verifying entries", total=total)
                report = verify_store(
                    session, verifier, progress=lambda done: progress.update(task, completed=done)
                )
    finally:
        facility.close()
    console.print(
        f"{report.entries} entries, {report.checkpoints} checkpoints, {report.tiles} tiles "
        f"checked; {report.pending} entries waiting to be sequenced"
    )
    if not report.ok:
        for problem in report.problems[:50]:
            console.print(f"[red]✗[/red] {problem}")
        raise CliError(f"the log does not verify: {len(report.problems)} problem(s)")
    console.print("[green]✓ the log verifies[/green]")


def _verify_remote(url: str, verifier_key: str | None) -> None:
    import tempfile

    from commonlab.record.watch import LogForked, LogUnreachable, Watcher

    with tempfile.TemporaryDirectory() as tmp:
        watcher = Watcher(url, state_path=Path(tmp) / "state.json", verifier_key=verifier_key)
        try:
            seen = watcher.check_once()
        except (LogForked, LogUnreachable) as exc:
            raise CliError(str(exc)) from None
    console.print(f"[green]✓[/green] {seen.size} entries verified against the signed checkpoint")


@record.command("watch")
def watch(
    url: Annotated[str, typer.Argument(help="the facility's base URL")],
    state: Annotated[
        Path | None,
        typer.Option(
            help="where the last verified checkpoint is kept "
            "[default: one file per facility under $XDG_STATE_HOME/commonlab/watch]"
        ),
    ] = None,
    verifier_key: Annotated[
        str | None, typer.Option("--key", help="pin this verifier key (else trust on first use)")
    ] = None,
    interval: Annotated[float, typer.Option(min=1, help="seconds between checks")] = 60,
    once: Annotated[bool, typer.Option(help="check once and exit")] = False,
    cosign_key: Annotated[
        Path | None, typer.Option(help="a witness signer key file: cosign each verified checkpoint")
    ] = None,
) -> None:
    """Follow a log: verify each new checkpoint against the last one; fail loudly on a fork."""
    from commonlab.record.watch import KeyChanged, LogForked, LogUnreachable, Watcher

    watcher = Watcher(url, state_path=state or default_state_path(url), verifier_key=verifier_key)
    while True:
        try:
            seen = watcher.check_once()
        except KeyChanged as exc:
            raise CliError(str(exc)) from None
        except LogForked as exc:
            if exc.evidence is not None:  # two signed checkpoints that cannot both be true
                _alarm(url, exc)
            raise CliError(f"the log at {url} is inconsistent: {exc}") from None
        except LogUnreachable as exc:
            if once:
                raise CliError(str(exc)) from None
            # A facility that is down contradicts nothing: say so and keep watching.
            console.print(f"[yellow]![/yellow] {exc}; trying again in {interval:g} s")
            time.sleep(interval)
            continue
        grew = "" if seen.previous_size is None else f" (was {seen.previous_size})"
        console.print(
            f"✓ size {seen.size}{grew}, consistent; {seen.checked_entries} new entries checked"
        )
        if cosign_key is not None:
            _cosign(url, seen.note, cosign_key)
        if once:
            return
        time.sleep(interval)


@record.command("mirror")
def mirror(
    url: Annotated[str, typer.Argument(help="the facility's base URL")],
    directory: Annotated[Path, typer.Argument(help="the mirror's folder (made if missing)")],
    verifier_key: Annotated[
        str | None,
        typer.Option(
            "--key", help="the log's verifier key (else the mirror's, else trust on first use)"
        ),
    ] = None,
) -> None:
    """Copy the log's checkpoint, tiles, entry bundles and key into a folder, verified; run it
    again to fetch only what is new. Then: `commonlab audit URL --from-tiles DIR`."""
    with _progress() as progress:
        task = progress.add_task("mirroring tiles", total=None)
        try:
            report = mirror_log(
                url,
                directory,
                verifier_key=verifier_key,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except LogError as exc:
            raise CliError(f"the mirror was not updated: {exc}") from None
        except OSError as exc:
            raise CliError(f"cannot write the mirror in {directory}: {exc.strerror}") from None
    grew = "" if report.previous_size is None else f" (was {report.previous_size})"
    console.print(
        f"[green]✓[/green] {report.size} entries{grew} verified and mirrored in {directory}: "
        f"{report.fetched} files fetched, {report.kept} already there, "
        f"{report.removed} narrower tiles replaced"
    )


@record.command("witness-key")
def witness_key(
    name: Annotated[str, typer.Argument(help="the witness's name, e.g. audit.example.org")],
    out: Annotated[
        Path, typer.Option(help="where to write the secret signer key (created, mode 0600)")
    ] = Path("witness.key"),
) -> None:
    """Make a witness's key pair: the secret half for `record watch --cosign-key`, the verifier
    key for the council's `register_witness` motion."""
    from commonlab.record.checkpoint import generate_witness

    if not name or any(c.isspace() or c == "+" for c in name):
        raise CliError(f"{name!r} is not a witness name: no spaces, no '+'")
    signer, verifier = generate_witness(name)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(
            f"{out} exists: a witness key is never overwritten; name another --out"
        ) from None
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(signer + "\n")
    console.print(f"secret signer key written to {out} (keep it; cosign with --cosign-key {out})")
    console.print("verifier key, for the council's register_witness motion:")
    console.print(verifier, highlight=False, soft_wrap=True)


def _alarm(url: str, exc: Exception) -> None:
    """What a watcher exists for, said so that nobody scrolls past it: on stderr, in red."""
    from rich.console import Console
    from rich.panel import Panel

    kind = str(exc).split(":", 1)[0]
    Console(stderr=True).print(
        Panel(
            f"{exc}\n\nThe facility at {url} contradicts what this watcher verified before. "
            "Keep the state file and the evidence; tell the facility's council and the "
            "other witnesses. This watcher stops here: it will not follow this log again "
            "until someone decides, in public, what happened.",
            title=f"[bold]{kind}: THE PUBLIC RECORD WAS REWRITTEN[/bold]",
            style="bold red",
        ),
        highlight=False,
    )


def default_state_path(url: str) -> Path:
    """One state file per facility in the user's state directory (XDG), never the working
    directory: a witness follows several logs, and a checkout is no place for its state."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", url.split("://", 1)[-1].rstrip("/"))
    return base / "commonlab" / "watch" / f"{slug}.json"


def _cosign(url: str, note: str, key_file: Path) -> None:
    from commonlab.record.checkpoint import CosignatureSigner, cosign

    signer = CosignatureSigner.from_key(key_file.read_text().strip())
    body = note.split("\n\n", 1)[0] + "\n"
    line = cosign(body, signer, timestamp=int(time.time()))
    size = int(body.split("\n")[1])
    Client(load_login(url=url)).post(
        "/api/v1/record/cosignatures", json={"size": size, "cosignature": line}
    )
    console.print(f"  cosigned size {size} as {signer.name}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(record, name="record")
