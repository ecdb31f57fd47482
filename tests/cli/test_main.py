"""The command table of `commonlab`: every command module's commands are listed under it (a
command missing from the table would be reachable only after `--help` loaded everything), and
running one command loads its own module, not every other's."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import typer

import commonlab.cli
from commonlab.cli.main import COMMAND_MODULES, MAIN_COMMANDS


def _names(app: typer.Typer) -> set[str]:
    commands = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    return commands | {group.name for group in app.registered_groups}


def test_the_table_names_every_command_of_every_module_once():
    modules = {
        info.name
        for info in pkgutil.iter_modules(commonlab.cli.__path__)
        if not info.name.startswith("_")  # __main__ runs the command when imported
        and hasattr(importlib.import_module(f"commonlab.cli.{info.name}"), "register")
    }
    assert modules == set(COMMAND_MODULES)
    seen: list[str] = list(MAIN_COMMANDS)
    for module, words in COMMAND_MODULES.items():
        fresh = typer.Typer()
        importlib.import_module(f"commonlab.cli.{module}").register(fresh)
        assert _names(fresh) == set(words), module
        seen.extend(words)
    assert len(seen) == len(set(seen)), sorted(w for w in seen if seen.count(w) > 1)


def test_a_command_loads_its_own_module_only():
    probe = (
        "import sys\n"
        "from commonlab.cli.main import main\n"
        "try:\n"
        "    main(['job', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('commonlab.cli.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    loaded = out.strip().splitlines()[-1]
    assert "commonlab.cli.compute_cmd" in loaded
    for other in ("datasearch_cmd", "audit_cmd", "workload_cmd", "simulate_cmd"):
        assert f"commonlab.cli.{other}" not in loaded, loaded


def test_help_and_an_unknown_word_still_list_every_command():
    for argv in (["--help"], ["no-such-command"]):
        out = subprocess.run(
            [sys.executable, "-m", "commonlab.cli", *argv], capture_output=True, text=True
        )
        text = out.stdout + out.stderr
        if argv == ["--help"]:
            for word in ("job", "search", "audit", "backup", "login", "simulate-sweep"):
                assert word in text, word
        else:
            assert out.returncode != 0 and "no-such-command" in text
