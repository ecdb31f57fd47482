"""`commonlab up`: open the facility, create the first operator, optionally seed the demo,
and serve the API and portal with uvicorn. What a client keeps (the CLI's saved login) is
the caller's: the operator's first token is handed to `remember_operator`."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from commonlab.compute.executors.registry import kind_of
from commonlab.config import load_settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.operations.instruments import serving_setup

__all__ = ["serve"]


def serve(
    *,
    host: str | None,
    port: int | None,
    demo: bool,
    console: Console,
    remember_operator: Callable[[str, str], None] | None = None,
    force_fork: bool = False,
    workers: int = 1,
) -> None:
    """Run the facility. On its first start `remember_operator(url, token)` is given the
    operator's admin token, shown once here (the CLI saves it as this user's login).

    With `workers` > 1, uvicorn runs that many worker processes on one socket, each building
    its app with `worker_app`; what must happen once (migrations, the first operator, the
    demo's seed, the local fleet) happens here first, in the parent."""
    import uvicorn

    from commonlab.app import create_app, prepare_fleet

    settings = load_settings(host=host, port=port)
    # Whatever the facility writes from now on (objects, job folders, the database's journal)
    # is born readable by this user only: a job must never read it (docs/compute.md).
    os.umask(0o077)
    # Refuses a record that contradicts what a witness cosigned, unless forced (facility.py).
    facility = open_facility(settings, force_fork=force_fork)
    # Closed when the server stops: `up` run inside another process (a test) leaves no
    # database connection or lock behind.
    with contextlib.closing(facility):
        url = settings.base_url
        with facility.db.session() as session:
            token = bootstrap_operator(session)
        if token is not None:
            _announce_operator(console, token)
            if remember_operator is not None:
                remember_operator(url, token)
        pi_token = None
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
        for fork in facility.forks:
            console.print(
                f"[bold red]The record was forked at entry {fork['index']} ({fork['time']}): "
                f"{fork['reason']}[/bold red]",
                highlight=False,
            )
        prepare_fleet(facility)
        if workers > 1:
            _serve_workers(facility, workers, demo=demo, pi_token=pi_token, console=console)
            return
        # No access log: every running job speaks the API (its inputs, metrics, what it
        # publishes), and a line per request would bury what the facility itself says. A reverse
        # proxy in front of a facility keeps the access log where one is wanted.
        config = uvicorn.Config(
            create_app(facility),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            log_config=serving_setup(settings),  # JSON lines with request ids; workers' metrics
        )
        server = uvicorn.Server(config)
        if demo:
            _start_demo_models(
                facility,
                pi_token,
                console,
                started=lambda: bool(server.started),
                stopping=lambda: bool(server.should_exit),
            )
        server.run()


def worker_app() -> Any:
    """The app of one worker of `up --workers N`: uvicorn calls this in each worker process.
    Its settings come from the environment, as the parent's did (with the parent's --host and
    --port put there); the parent has migrated and bootstrapped the facility already."""
    from commonlab.app import create_app

    os.umask(0o077)
    return create_app(open_facility(load_settings()))


def _serve_workers(
    facility: Facility, workers: int, *, demo: bool, pi_token: str | None, console: Console
) -> None:
    """Several uvicorn workers on one socket. Each serves requests and appends entries; of
    them (and of any other host's), one at a time leads (operations/leader.py)."""
    import uvicorn

    settings = facility.settings
    os.environ["COMMONLAB_HOST"] = settings.host
    os.environ["COMMONLAB_PORT"] = str(settings.port)
    console.print(f"{workers} worker processes; one leads at a time (docs/operators.md)")
    stopping = threading.Event()
    if demo:
        _start_demo_models(
            facility,
            pi_token,
            console,
            started=lambda: _answers(settings.host, settings.port),
            stopping=stopping.is_set,
        )
    else:
        facility.close()  # each worker opens its own connections
    try:
        uvicorn.run(
            "commonlab.serve:worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
            access_log=False,
            log_config=serving_setup(settings),  # JSON lines with request ids; workers' metrics
            # A worker that does not answer uvicorn's ping within this is killed and started
            # again. Its first seconds go to importing the server, and on a busy machine the
            # default 5 s killed workers before they ever served, over and over.
            timeout_worker_healthcheck=60,
        )
    finally:
        stopping.set()


def _answers(host: str, port: int) -> bool:
    """Whether something accepts connections on the port (a worker is up)."""
    address = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def _start_demo_models(
    facility: Facility,
    pi_token: str | None,
    console: Console,
    *,
    started: Callable[[], bool],
    stopping: Callable[[], bool],
) -> None:
    """Publish the demo's data and train and evaluate its model in the background, once the
    server answers: the jobs speak its API, and a newcomer's first page must not wait."""
    from commonlab.artifacts.mount import registry_for
    from commonlab.demo_models import build_demo_models

    def work() -> None:
        while not started():
            if stopping():
                return
            time.sleep(0.1)
        with facility.db.session() as session:
            build_demo_models(
                session,
                registry_for(facility),
                pi_token=pi_token,
                executor=facility.settings.executor,
                say=lambda line: console.print(line, highlight=False, soft_wrap=True),
                should_stop=stopping,
            )

    threading.Thread(target=work, name="demo-models", daemon=True).start()


def _isolation_line(facility: Facility) -> str:
    """How jobs are kept from the facility, said at every start; plainly when they are not."""
    settings = facility.settings
    line, warn = kind_of(settings.executor).describe_isolation(settings, facility.isolation)
    return f"[bold yellow]{line}[/bold yellow]" if warn else line


def _announce_operator(console: Console, token: str) -> None:
    console.print(
        Panel(
            f"First start: created the operator account. Its admin token, shown only now:\n\n"
            f"[bold]{token}[/bold]",
            title="operator token",
        )
    )


def cli_path() -> str:
    """The full path of this installation's `commonlab`, so a printed command needs no PATH."""
    beside = Path(sys.executable).parent / "commonlab"
    return str(beside) if beside.exists() else "commonlab"
