"""How `workload run` starts the runtime: one process, torchrun on one node, or `srun` with a
torchrun agent on every node meeting at a c10d rendezvous on the first node (pure: the
command lines and where the nodes meet, read from Slurm's environment)."""

from __future__ import annotations

import pytest

from commonlab.cli.client import CliError
from commonlab.cli.workload_cmd import (
    Rendezvous,
    _placement,
    first_node,
    launch_command,
    rendezvous_port,
)

ARGS = ["train", "--config", "config.json", "--data", "inputs/dataset"]
RUNTIME = ["-m", "commonlab.workloads.runtime", *ARGS]


def test_one_process_runs_the_runtime_directly() -> None:
    assert launch_command(ARGS, python="/py", processes=1) == ["/py", *RUNTIME]


def test_several_processes_on_one_node_run_under_a_standalone_torchrun() -> None:
    assert launch_command(ARGS, python="/py", processes=4, cpus_per_task=8) == [
        "/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", *RUNTIME,
    ]  # fmt: skip


def test_several_nodes_run_one_torchrun_agent_a_node_under_srun() -> None:
    meet = Rendezvous(host="gpu07", port=29734, run_id="slurm-1234")
    command = launch_command(
        ARGS, python="/py", processes=4, nodes=3, rendezvous=meet, cpus_per_task=32
    )
    assert command == [
        "srun", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
        "--cpus-per-task=32",
        "/py", "-m", "torch.distributed.run", "--nnodes=3", "--nproc_per_node=4",
        "--rdzv-backend=c10d", "--rdzv-endpoint=gpu07:29734", "--rdzv-id=slurm-1234",
        *RUNTIME,
    ]  # fmt: skip


def test_a_single_node_cluster_stands_in_two_nodes_with_two_tasks() -> None:
    meet = Rendezvous(host="localhost", port=29500, run_id="t")
    command = launch_command(
        ARGS, python="/py", processes=1, nodes=2, rendezvous=meet, tasks_per_node=2
    )
    assert command[:5] == ["srun", "--nodes=1", "--ntasks=2", "--ntasks-per-node=2",
                           "--kill-on-bad-exit=1"]  # fmt: skip
    assert "--nnodes=2" in command and "--nproc_per_node=1" in command


def test_several_nodes_without_a_rendezvous_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a rendezvous"):
        launch_command(ARGS, python="/py", processes=1, nodes=2)


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [
        ("localhost", "localhost"),
        ("a,b", "a"),
        ("gpu[07-09,12],cpu1", "gpu07"),
        ("node[3,5-6]", "node3"),
        ("rack1-n[1-4]-ib", "rack1-n1-ib"),
        ("[1-2]", "1"),
    ],
)
def test_the_first_node_of_a_slurm_node_list(nodelist: str, first: str) -> None:
    assert first_node(nodelist) == first


def test_a_node_list_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Slurm node list"):
        first_node(",a")


def test_the_rendezvous_port_follows_the_slurm_job_id() -> None:
    assert rendezvous_port(1234) == 29734
    assert rendezvous_port(2234) == rendezvous_port(1234)  # the documented collision
    assert all(29500 <= rendezvous_port(n) < 30500 for n in (0, 999, 10**9))


SLURM = {"SLURM_JOB_ID": "1234", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "cn[041-042]"}


def test_a_job_on_two_nodes_meets_on_its_first_node() -> None:
    placement = _placement({"nodes": 2}, SLURM)
    assert placement.nodes == 2
    assert placement.rendezvous == Rendezvous(host="cn041", port=29734, run_id="slurm-1234")


def test_one_node_needs_no_rendezvous_under_slurm_or_not() -> None:
    one = {**SLURM, "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "cn041"}
    assert _placement({"nodes": 1}, one).rendezvous is None
    assert _placement({"nodes": 1}, {}).nodes == 1
    assert _placement({}, {}).nodes == 1  # a facility from before nodes existed


def test_several_nodes_outside_slurm_are_refused_with_what_to_do() -> None:
    with pytest.raises(CliError, match=r"outside Slurm.*resubmit it with --nodes 1"):
        _placement({"nodes": 2}, {})


def test_slurm_giving_another_number_of_nodes_is_refused() -> None:
    with pytest.raises(CliError, match="admitted this job on 3 nodes but Slurm gave it 2"):
        _placement({"nodes": 3}, SLURM)
