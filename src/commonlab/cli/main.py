"""The `commonlab` command. `up` runs a facility here; every other command is an HTTP
client of a facility (this one or a remote one: `--url`, `COMMONLAB_URL`, or `login`)."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from commonlab.cli.client import (
    Client,
    CliError,
    Login,
    config_path,
    load_login,
    load_saved_login,
    save_login,
)
from commonlab.cli.render import print_json
from commonlab.errors import CommonlabError
from commonlab.extras import extra_for, missing_extra_message

__all__ = ["app", "main"]

app = typer.Typer(
    name="commonlab",
    help="Run and use a commonlab facility: an open, publicly overseen AI research facility.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="bind address [default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default 8000]")] = None,
    demo: Annotated[bool, typer.Option(help="seed a small demo facility on first start")] = False,
    force_fork: Annotated[
        bool,
        typer.Option(
            "--force-fork",
            help="start on a record shorter than, or different from, the latest checkpoint a "
            "witness cosigned (a restored older backup): a fork, written on the record",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=256, help="server processes on this port; one leads (docs/operators.md)"
        ),
    ] = 1,
) -> None:
    """Run the facility here: API and portal, on the embedded defaults unless configured."""
    # Imported here: the server's dependencies are loaded by `up` only, not by every command.
    from commonlab.serve import serve

    serve(
        host=host,
        port=port,
        demo=demo,
        console=console,
        remember_operator=_save_operator,
        force_fork=force_fork,
        workers=workers,
    )


def _save_operator(url: str, token: str) -> None:
    """A newcomer's second shell should just work: save the first operator's token as this
    user's CLI login. A login saved for this same address belonged to an earlier facility
    (this one was just created, so no earlier token can work here): replace it. A login for
    another facility is kept, and the command for this one is printed in full."""
    from commonlab.serve import cli_path  # loaded already: `up` is running

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


@app.command()
def whoami(url: Url = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Who the facility thinks you are (GET /api/v1/me)."""
    me = Client(load_login(url=url)).get("/api/v1/me")
    if as_json:
        print_json(me)
        return
    if not me["authenticated"]:
        console.print("You are the public (not signed in). Use `commonlab login`.")
        return
    person = me["person"]
    console.print(f"[bold]{person['name']}[/bold] ({person['pseudonym']})")
    console.print(f"roles: {', '.join(person['roles']) or 'none'}")
    console.print(f"token scopes: {', '.join(me['scopes'])}")
    clearance = me.get("clearance")
    if clearance:
        console.print(f"clearance: CL-{clearance['level']} until {clearance['expires_at'][:10]}")


# The module that registers each command, so that running one loads only its own: importing
# every command's module (and the domains' schemas behind them) cost a second at every start.
# Listed in the order `--help` shows them; tests/cli/test_main.py checks the table is whole.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "login_cmd": ("login", "logout"),
    "admin_cmd": ("institution", "person", "role", "token", "clearance", "admin"),
    "record_cmd": ("record",),
    "artifacts_cmd": ("dataset", "model", "verify"),
    "governance_cmd": ("member", "motion", "regulation", "vote"),
    "allocation_cmd": ("call", "proposal", "review", "allocation", "report"),
    "compute_cmd": ("job", "fleet"),
    "simulate_cmd": ("simulate",),
    "simulate_sweep": ("simulate-sweep",),
    "workload_cmd": ("train", "finetune", "evaluate", "workload"),
    "datasearch_cmd": ("index", "search", "trace", "membership", "optout"),
    "audit_cmd": ("audit",),
    "backup_cmd": ("backup", "restore"),
}
MAIN_COMMANDS = ("up", "whoami")  # defined above, in this module
_registered: set[str] = set()


def register_commands(argv: list[str]) -> None:
    """Register the module of the command `argv` names; every module for `--help`, a word
    no module claims (click then lists what there is), or no command at all."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    if word in MAIN_COMMANDS:
        return
    owners = [module for module, words in COMMAND_MODULES.items() if word in words]
    for module in owners or COMMAND_MODULES:
        if module not in _registered:
            importlib.import_module(f"commonlab.cli.{module}").register(app)
            _registered.add(module)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error a person can cause becomes one line and exit status 1."""
    register_commands(sys.argv[1:] if argv is None else argv)
    try:
        # Outside standalone mode click returns a command's `typer.Exit(code)` instead of
        # exiting with it (`job submit --watch` of a failed job must exit 1, not 0).
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except (CliError, CommonlabError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        extra = extra_for(exc.name)
        if extra is None or exc.name is None:
            raise  # not an optional package: a real bug, keep its traceback
        message = escape(missing_extra_message(exc.name, extra))
        err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        # Usage errors (click's, or the copy of click newer typer ships): one line too.
        message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if callable(message) and isinstance(code, int):
            err.print(f"[red]error:[/red] {message()} (see --help)", highlight=False)
            sys.exit(code)
        raise
