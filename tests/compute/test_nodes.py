"""Jobs on several nodes: the rule that bounds `nodes` (by the executor and by the largest
partition of the class, a 422 naming the limit), placement that fits each node, hours held
and charged for every node, the local executor's refusal (nothing written), the node count
on the record and on the job, and `--nodes` in what Slurm is given."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from commonlab.compute import rules, service
from commonlab.compute.executors.base import ExecutorRefused, Handoff, Observed
from commonlab.compute.executors.local import LocalExecutor
from commonlab.compute.executors.slurm.cli import SlurmCli
from commonlab.compute.executors.slurm.executor import SlurmExecutor
from commonlab.compute.fleet_spec import FleetSpec, PartitionSpec, SiteSpec
from commonlab.compute.models import Job
from commonlab.compute.rules import JobState, PartitionView, Shape
from commonlab.compute.schemas import JobCreate
from commonlab.config import Settings
from commonlab.errors import InvalidInput
from commonlab.facility import Facility
from tests.compute.helpers import Lab, award_project, entries, service_lab
from tests.helpers import problem
from tests.portal.helpers import sign_in

# A Slurm facility's CPU partition: four nodes of 8 cores and 32 GB.
NODES, CORES, MEMORY = 4, 8, 32


def _view(name: str = "cpu", *, nodes: int = NODES, up: int | None = None) -> PartitionView:
    return PartitionView(
        id=1,
        name=name,
        accelerator="cpu",
        certified_level=1,
        nodes=nodes,
        nodes_up=nodes if up is None else up,
        accelerators_per_node=CORES,
        cpus_per_node=CORES,
        memory_gb_per_node=MEMORY,
    )


# The rules, pure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "executor_limit", "refusal"),
    [
        (1, 1, None),  # one node is always for placement to judge
        (4, None, None),
        (5, None, "5 is more than any cpu partition has; the largest, cpu, has 4 nodes"),
        (2, 1, "runs a job on at most 1 node, and this one asks for 2"),
    ],
)
def test_nodes_are_bounded_by_the_executor_and_the_largest_partition(
    nodes: int, executor_limit: int | None, refusal: str | None
) -> None:
    fleet = [_view("small", nodes=2), _view("cpu", nodes=NODES)]
    if refusal is None:
        rules.check_nodes(nodes, "cpu", fleet, executor_limit=executor_limit)
        return
    with pytest.raises(ValueError, match=refusal) as refused:
        rules.check_nodes(nodes, "cpu", fleet, executor_limit=executor_limit)
    assert str(refused.value).startswith("nodes: ")


def test_on_several_nodes_each_node_must_hold_the_per_node_shape() -> None:
    fleet = [_view()]
    fits = Shape(accelerator="cpu", accelerators=CORES, cpus=CORES, memory_gb=MEMORY, nodes=4)
    assert rules.place(fits, 1, fleet).name == "cpu"
    # 9 cores a node is more than a node has, however many nodes the partition has.
    too_wide = Shape(
        accelerator="cpu", accelerators=CORES + 1, cpus=CORES + 1, memory_gb=1, nodes=2
    )
    with pytest.raises(ValueError, match="big enough"):
        rules.place(too_wide, 1, fleet)
    # Four nodes asked, three up: a wait for placement, not a bad request.
    with pytest.raises(ValueError, match="3 nodes up"):
        rules.place(fits, 1, [_view(up=3)])


def test_hours_held_scale_with_nodes_times_accelerators() -> None:
    one = rules.reserve_hours(8, 60)
    assert one == Decimal("8.00")
    assert rules.reserve_hours(8, 60, nodes=3) == 3 * one


# Through the services, on a Slurm facility's fleet ---------------------------------------------


@pytest.fixture
def lab(facility: Facility) -> Iterator[Lab]:
    with service_lab(facility) as lab:
        spec = FleetSpec(
            sites=[SiteSpec(name="bologna", country="IT")],
            partitions=[
                PartitionSpec(
                    name="cpu",
                    site="bologna",
                    accelerator="cpu",
                    nodes=NODES,
                    accelerators_per_node=CORES,
                    cpus_per_node=CORES,
                    memory_gb_per_node=MEMORY,
                )
            ],
        )
        service.apply_fleet(lab.db, lab.operator, spec)
        yield lab


def submit(lab: Lab, *, executor: str = "slurm", **overrides: Any) -> Job:
    spec = JobCreate.model_validate(
        {
            "name": "wide",
            "project": lab.project,
            "command": "srun hostname",
            "accelerator": "cpu",
            "accelerators": 2,
            "time_limit_minutes": 60,
            **overrides,
        }
    )
    return service.submit_job(lab.db, lab.pi, spec, executor=executor)


def test_a_job_on_several_nodes_holds_and_is_charged_for_every_node(lab: Lab) -> None:
    one = submit(lab)
    three = submit(lab, nodes=3)
    assert (one.nodes, three.nodes) == (1, 3)
    assert one.reserved_hours == Decimal("2.00")  # 2 cores for an hour
    assert three.reserved_hours == Decimal("6.00")  # on each of 3 nodes
    admitted = [e["data"] for e in entries(lab.db, "compute:job:admitted")]
    assert [(d["accelerators"], d["nodes"], d["reserved_hours"]) for d in admitted[-2:]] == [
        (2, 1, "2"),
        (2, 3, "6"),
    ]

    # Half an hour, with no count of the executor's own: each node's cores times the nodes.
    for job in (one, three):
        service.enqueue_admitted(lab.db)
        service.handed_over(lab.db, job.id, f"slurm-{job.id}")
        ran = Observed(state=JobState.SUCCEEDED, exit_code=0, elapsed_seconds=1800)
        assert service.apply_observed(lab.db, job.id, ran)
    with lab.db.begin():
        charged = [lab.db.get_one(Job, job.id).charged_hours for job in (one, three)]
    assert charged == [Decimal("1.00"), Decimal("3.00")]


def test_more_nodes_than_the_largest_partition_is_refused_naming_the_limit(lab: Lab) -> None:
    before = entries(lab.db, "")
    with pytest.raises(InvalidInput, match="the largest, cpu, has 4 nodes: ask for at most 4"):
        submit(lab, nodes=5)
    assert entries(lab.db, "") == before


def test_the_local_executor_refuses_several_nodes_and_writes_nothing(lab: Lab) -> None:
    before = entries(lab.db, "")
    with lab.db.begin():
        jobs_before = lab.db.query(Job).count()
    with pytest.raises(InvalidInput, match="at most 1 node, and this one asks for 2") as refused:
        submit(lab, executor="local", nodes=2)
    assert "several nodes need a Slurm facility" in refused.value.message
    assert entries(lab.db, "") == before  # no admission, no hold on the ledger
    with lab.db.begin():
        assert lab.db.query(Job).count() == jobs_before


def test_a_resubmission_asks_for_the_same_nodes(lab: Lab) -> None:
    job = submit(lab, nodes=2)
    service.enqueue_admitted(lab.db)
    service.handed_over(lab.db, job.id, "1")
    service.apply_observed(lab.db, job.id, Observed(state=JobState.CANCELLED))
    assert service.resubmission(lab.db, lab.pi, job.id).nodes == 2


def test_the_local_executor_itself_will_not_take_a_job_on_two_nodes(tmp_path: Path) -> None:
    handoff = Handoff(
        job_id=1, name="cl-1", command="true", env={}, workdir=tmp_path / "1", partition="local",
        account="a", run_as=None, accelerator="cpu", accelerators=1, cpus=1, memory_gb=1,
        time_limit_minutes=1, level=1, nodes=2,
    )  # fmt: skip
    with pytest.raises(ExecutorRefused, match="ask for one node"):
        LocalExecutor(slots=1).submit(handoff)
    assert not (tmp_path / "1").exists()


# Through the API -------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    """A facility on Slurm (nothing is handed to Slurm here: the controller never ticks)."""
    return Settings(home=tmp_path / "home", database_url=database, executor="slurm")


@pytest.fixture
def project(client: Any, operator: dict[str, str]) -> Any:
    fleet = {
        "sites": [{"name": "bologna", "country": "IT"}],
        "partitions": [
            {
                "name": "cpu",
                "site": "bologna",
                "accelerator": "cpu",
                "nodes": NODES,
                "accelerators_per_node": CORES,
                "cpus_per_node": CORES,
                "memory_gb_per_node": MEMORY,
            }
        ],
    }
    assert client.put("/api/v1/fleet", json=fleet, headers=operator).status_code == 200
    return award_project(client, operator, budget={"cpu": "100"})


def _job(client: Any, project: Any, **overrides: Any) -> Any:
    body = {
        "project": project.name,
        "command": "srun hostname",
        "accelerator": "cpu",
        "accelerators": 2,
        "time_limit_minutes": 30,
        **overrides,
    }
    return client.post("/api/v1/jobs", json=body, headers=project.pi_auth)


def test_the_api_shows_nodes_and_refuses_too_many_with_the_limit(client: Any, project: Any) -> None:
    made = _job(client, project, nodes=3)
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["nodes"] == 3 and job["accelerators"] == 2
    assert Decimal(job["reserved_hours"]) == Decimal("3.00")  # 3 nodes × 2 cores × ½ h
    shown = client.get(f"/api/v1/jobs/{job['id']}", headers=project.pi_auth).json()
    assert shown["nodes"] == 3
    # The portal says so too: on the job's page and in the list of jobs.
    sign_in(client, project.pi_auth["Authorization"].removeprefix("Bearer "))
    assert "3 nodes, each 2 cpu" in client.get(f"/jobs/{job['id']}").text
    assert "3 × 2 cpu" in client.get("/jobs").text

    refused = _job(client, project, nodes=NODES + 1)
    assert refused.status_code == 422
    assert "ask for at most 4" in problem(refused)["detail"]
    assert _job(client, project, nodes=0).status_code == 422  # at least one


# What Slurm is given -----------------------------------------------------------------------------


def test_sbatch_gets_the_nodes_and_each_nodes_share(tmp_path: Path) -> None:
    record = tmp_path / "args"
    sbatch = tmp_path / "bin" / "sbatch"
    sbatch.parent.mkdir()
    sbatch.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\necho "77;c"\n')
    sbatch.chmod(0o755)
    cli = SlurmCli(env={"PATH": f"{sbatch.parent}:/usr/bin:/bin"})
    cli.submit(
        "#!/bin/sh\nsrun hostname\n", account="a", partition="gpu", job_name="cl-9",
        time_limit_minutes=10, cpus=16, memory_mb=4096, gpus=4, workdir=tmp_path,
        stdout=tmp_path / "o", stderr=tmp_path / "e", nodes=3, uid=_nobody(),
    )  # fmt: skip
    args = record.read_text().splitlines()
    assert [
        a
        for a in args
        if a.split("=")[0] in {"--nodes", "--ntasks-per-node", "--cpus-per-task", "--mem"}
    ] == ["--nodes=3", "--ntasks-per-node=1", "--cpus-per-task=16", "--mem=4096M"]
    assert "--gres=gpu:4" in args  # each node's


@pytest.mark.skipif(os.getuid() != 0, reason="the Slurm executor submits as root with --uid")
def test_the_slurm_executor_hands_the_nodes_to_sbatch(tmp_path: Path) -> None:
    class Recording(SlurmCli):
        def __init__(self) -> None:
            super().__init__()
            self.asked: dict[str, Any] = {}

        def submit(self, script: str, **options: Any) -> int:
            self.asked.update(options)
            return 5

    cli = Recording()
    handoff = Handoff(
        job_id=9, name="cl-9", command="srun hostname", env={}, workdir=tmp_path / "9",
        partition="cpu", account="a", run_as="nobody", accelerator="cpu", accelerators=2,
        cpus=2, memory_gb=1, time_limit_minutes=5, level=1, nodes=3,
    )  # fmt: skip
    assert SlurmExecutor(cli).submit(handoff) == "5"
    assert cli.asked["nodes"] == 3 and cli.asked["cpus"] == 2


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid
