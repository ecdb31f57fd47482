"""`commonlab up`: open the facility, create the first operator, optionally seed the demo,
and serve the API and portal with uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from commonlab.cli.client import Login, config_path, load_saved_login, save_login
from commonlab.compute.sandbox import Isolation, closed_to_jobs
from commonlab.config import load_settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator

__all__ = ["serve"]


def serve(*, host: str | None, port: int | None, demo: bool, console: Console) -> None:
    import uvicorn

    from commonlab.app import create_app

    settings = load_settings(host=host, port=port)
    # Whatever the facility writes from now on (objects, job folders, the database's journal)
    # is born readable by this user only: a job must never read it (docs/compute.md).
    os.umask(0o077)
    facility = open_facility(settings)
    url = settings.base_url
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    if token is not None:
        _announce_operator(console, token, url)
    if demo:
        from commonlab.demo import seed_demo

        with facility.db.session() as session:
            pi_token = seed_demo(session)
        if pi_token is not None:
            console.print("Seeded the demo facility (institutions, people, clearances).")
            console.print(
                Panel(
                    "Run a job as Wanjiru Kamau, PI of the demo project proj-1, on this "
                    "machine (from another shell):",
                    title="try a job",
                )
            )
            # Printed unwrapped, so the token survives copy and paste; with this facility's
            # URL and the full path of its CLI, so it works pasted anywhere, whatever login
            # the shell has saved.
            console.print(
                f"COMMONLAB_URL={url} COMMONLAB_TOKEN={pi_token} {cli_path()} job submit "
                "-p proj-1 --watch -- 'echo hello from the facility'",
                soft_wrap=True,
                highlight=False,
            )
    console.print(
        f"commonlab on [bold]{url}[/bold]  (portal {url}/, API {url}/api/v1/docs, "
        f"record {url}/log/checkpoint)\n"
        f"home {settings.home.resolve()}, database {settings.db_url.split('://')[0]}, "
        f"executor {settings.executor}"
    )
    console.print(_isolation_line(facility), highlight=False)
    uvicorn.run(create_app(facility), host=settings.host, port=settings.port, log_level="info")


def _isolation_line(facility: Facility) -> str:
    """How jobs are kept from the facility, said at every start; plainly when they are not."""
    settings = facility.settings
    if settings.executor == "slurm":
        users = settings.slurm_users("{project}")
        named = users[0] if len(users) == 1 else f"{users[0]} … {users[-1]}"
        line = (
            f"jobs run on Slurm each as a Unix user no other running job has ({named}, which "
            "the site creates), never as this facility's user"
        )
        scope = "per project" if "{project}" in settings.slurm_user else "in the whole facility"
        if len(users) > 1:
            return f"{line}: up to {len(users)} jobs at once {scope}"
        return (
            f"[bold yellow]{line}: one job at a time {scope}, the others wait (more need "
            "{slot} in slurm_user and slurm_user_slots)[/bold yellow]"
        )
    line = f"local jobs: {facility.isolation.describe()}"
    if facility.isolation is Isolation.UID and (closed := closed_to_jobs()):
        line += f"; {closed} is closed to other users, so a job can't run this `commonlab`"
    if facility.isolation.isolates:
        return line
    if os.geteuid() == 0:
        line += "; as root it refuses every job (a job never runs as root)"
    return f"[bold yellow]{line}[/bold yellow]"


def _announce_operator(console: Console, token: str, url: str) -> None:
    console.print(
        Panel(
            f"First start: created the operator account. Its admin token, shown only now:\n\n"
            f"[bold]{token}[/bold]",
            title="operator token",
        )
    )
    # A newcomer's second shell should just work: save it as this user's CLI login. A login
    # saved for this same address belonged to an earlier facility (this one was just created,
    # so no earlier token can work here): replace it. A login for another facility is kept,
    # and the command for this one is printed in full.
    saved = load_saved_login()
    if saved is None or saved.url == url or saved.token is None:
        path = save_login(Login(url=url, token=token))
        replaced = f" (it replaces the login for an earlier facility at {url})" if saved else ""
        console.print(
            f"Saved as your CLI login in {path}{replaced}: `{cli_path()} whoami` to check.",
            soft_wrap=True,
            highlight=False,
        )
    else:
        console.print(
            f"Your CLI login ({config_path()}) names another facility, {saved.url}, and was "
            f"kept. For this one: COMMONLAB_URL={url} COMMONLAB_TOKEN={token} {cli_path()} "
            "whoami",
            soft_wrap=True,
            highlight=False,
        )


def cli_path() -> str:
    """The full path of this installation's `commonlab`, so a printed command needs no PATH."""
    beside = Path(sys.executable).parent / "commonlab"
    return str(beside) if beside.exists() else "commonlab"
