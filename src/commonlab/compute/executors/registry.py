"""The executors a facility may run, by the name the setting `executor` gives: a new one is
its own files and one line here. The rest of commonlab asks the executor (or its kind, before
one exists) what it needs, never compares the setting with a name."""

from __future__ import annotations

from commonlab.compute.executors import local
from commonlab.compute.executors.base import Executor, ExecutorKind
from commonlab.compute.executors.slurm import executor as slurm
from commonlab.config import Settings
from commonlab.errors import ConfigError

__all__ = ["EXECUTORS", "kind_of", "make_executor"]

EXECUTORS: dict[str, ExecutorKind] = {
    kind.name: kind
    for kind in (
        local.KIND,
        slurm.KIND,
    )
}


def kind_of(name: str) -> ExecutorKind:
    try:
        return EXECUTORS[name]
    except KeyError:
        known = ", ".join(sorted(EXECUTORS))
        raise ConfigError(f"COMMONLAB_EXECUTOR={name!r}: no such executor ({known})") from None


def make_executor(settings: Settings) -> Executor:
    """The executor the settings name, ready to hand jobs to."""
    return kind_of(settings.executor).make(settings)
