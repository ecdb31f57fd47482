"""Which optional extra brings a missing package: a command that needs one says, in one line,
what to install, instead of dying with an import traceback.

The answer is read from commonlab's own installed metadata (`extra == "..."` markers), so it
cannot drift from pyproject.toml."""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata

__all__ = ["extra_for", "missing_extra_message"]

# Extras that only bundle others for development; never the one to name to a user.
_BUNDLES = frozenset({"test"})
_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@cache
def _extras_by_module() -> dict[str, str]:
    """Top-level import name -> the first extra that installs it."""
    found: dict[str, str] = {}
    for requirement in metadata.requires("commonlab") or ():
        name, _, marker = requirement.partition(";")
        extra = _MARKER.search(marker)
        if extra is None or extra.group(1) in _BUNDLES:
            continue
        dist = re.split(r"[\s\[<>=!~;]", name.strip(), maxsplit=1)[0]
        found.setdefault(dist.lower().replace("-", "_"), extra.group(1))
    return found


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top package)."""
    if not module:
        return None
    return _extras_by_module().get(module.split(".", 1)[0].lower())


def missing_extra_message(module: str, extra: str) -> str:
    return (
        f"this command needs the optional '{extra}' packages ({module} is not installed): "
        f"pip install 'commonlab[{extra}]' (in a checkout: .venv/bin/pip install -e '.[{extra}]')"
    )
