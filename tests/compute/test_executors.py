"""The executor registry: every executor the settings may name has its kind there, and what
the facility asks of each before a job runs (the local fleet, passage to job folders)."""

from __future__ import annotations

from typing import get_args

import pytest

from commonlab.compute.executors.local import LocalExecutor
from commonlab.compute.executors.registry import EXECUTORS, kind_of
from commonlab.compute.executors.sandbox import Isolation
from commonlab.compute.executors.slurm.executor import SlurmExecutor
from commonlab.config import Settings
from commonlab.errors import ConfigError


def test_the_setting_names_exactly_the_registered_executors() -> None:
    accepted = set(get_args(Settings.model_fields["executor"].annotation))
    assert accepted == set(EXECUTORS)


def test_an_unknown_executor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no such executor"):
        kind_of("kubernetes")


def test_each_kind_says_what_the_facility_needs_to_know() -> None:
    local, slurm = kind_of("local"), kind_of("slurm")
    assert local.local_fleet and not slurm.local_fleet
    assert [local.reached_by_path(i) for i in Isolation] == [i is Isolation.UID for i in Isolation]
    assert all(slurm.reached_by_path(i) for i in Isolation)
    assert not LocalExecutor.run_as_users and LocalExecutor.accounts is None
    slurm_executor = SlurmExecutor()
    assert slurm_executor.run_as_users and slurm_executor.accounts is slurm_executor.cli
