"""A workload on several nodes through the API, on a Slurm facility's fleet (nothing is handed
to Slurm: the controller never ticks here): the job keeps its nodes and holds hours for each;
too many nodes, several nodes for an evaluation, or several on the local executor are
refused with the limit, changing nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from commonlab.config import Settings
from tests.artifacts.helpers import push
from tests.compute.helpers import award_project
from tests.helpers import problem, record_entries
from tests.workloads.test_api import TINY, repo

FLEET = {
    "sites": [{"name": "bologna", "country": "IT"}],
    "partitions": [
        {
            "name": "cpu",
            "site": "bologna",
            "accelerator": "cpu",
            "nodes": 4,
            "accelerators_per_node": 8,
            "cpus_per_node": 8,
            "memory_gb_per_node": 32,
        }
    ],
}


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database, executor="slurm")


@pytest.fixture
def project(client: Any, operator: dict[str, str]) -> Any:
    assert client.put("/api/v1/fleet", json=FLEET, headers=operator).status_code == 200
    return award_project(client, operator, budget={"cpu": "100"})


@pytest.fixture
def corpus(client: Any, project: Any) -> str:
    data = repo(client, project.pi_auth, project, "dataset", "corpus")
    made = push(client, project.pi_auth, data, {"train.jsonl": b'{"text": "habari yako"}\n'})
    assert made.status_code == 201, made.text
    return f"{data}@1"


def admit(client: Any, project: Any, kind: str, **fields: Any) -> Any:
    body = {"project": project.name, "config": TINY, "time_limit_minutes": 30, **fields}
    return client.post(f"/api/v1/workloads/{kind}", json=body, headers=project.pi_auth)


def test_a_training_on_two_nodes_is_a_job_on_two_nodes(client: Any, project: Any, corpus: str):
    made = admit(client, project, "train", dataset=corpus, out=f"models/{project.name}/wide",
                 accelerators=4, nodes=2)  # fmt: skip
    assert made.status_code == 201, made.text
    job = client.get(f"/api/v1/jobs/{made.json()['job_id']}", headers=project.pi_auth).json()
    assert (job["nodes"], job["accelerators"]) == (2, 4)
    assert Decimal(job["reserved_hours"]) == Decimal("4.00")  # 2 nodes × 4 cores × ½ h


@pytest.mark.parametrize(
    ("kind", "fields", "fragment"),
    [
        ("train", {"nodes": 5}, "the largest, cpu, has 4 nodes: ask for at most 4"),
        ("train", {"nodes": 0}, "nodes: Input should be greater than or equal to 1"),
        ("evaluate", {"nodes": 2, "model": "models/x/y@1", "config": {"task": "qa"}},
         "nodes: evaluate runs in one process on one node; ask for 1"),
    ],
)  # fmt: skip
def test_nodes_out_of_range_are_refused_with_the_limit(
    client: Any, app: Any, project: Any, corpus: str, kind: str, fields: dict, fragment: str
) -> None:
    out = f"{'datasets' if kind == 'evaluate' else 'models'}/{project.name}/out"
    before = record_entries(client, app)
    refused = admit(client, project, kind, dataset=corpus, out=out, **fields)
    assert refused.status_code == 422, refused.text
    assert fragment in problem(refused)["detail"]
    assert record_entries(client, app) == before
