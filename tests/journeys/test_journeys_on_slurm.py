"""Journeys 2 and 3 with the facility's own workloads on the real single-node Slurm
(scripts/slurm_up): the demo facility served on a port, its jobs handed to Slurm under their
project's account and run as the site's run-as user, reaching the facility over HTTP with
their own token like any job elsewhere would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from commonlab.config import Settings
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from tests.cli.conftest import Served, free_port, serving
from tests.journeys.conftest import Demo
from tests.journeys.test_journey_2_a_researcher_gets_compute import walk_journey_2
from tests.journeys.test_journey_3_a_model_and_its_data import SPEECH, TEXT, walk_journey_3

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def slurm_demo(slurm_cluster, tmp_path) -> Iterator[Demo]:
    """`commonlab up --demo` with `executor = "slurm"`: the seeded facility, served."""
    port = free_port()
    settings = Settings(
        home=tmp_path / "home",
        port=port,
        sequencer_interval_ms=5,
        executor="slurm",
        job_root=slurm_cluster.job_dir("journeys"),
        slurm_user=slurm_cluster.run_as,
        slurm_user_slots=1,
        slurm_account_prefix=f"j{uuid.uuid4().hex[:6]}-",
    )
    facility = open_facility(settings)
    with facility.db.session() as session:
        operator = bootstrap_operator(session)
    with facility.db.session() as session:
        pi_token = seed_demo(session)
    assert operator and pi_token
    with serving(facility, port) as url:
        headers = {"Authorization": f"Bearer {operator}"}
        applied = httpx.put(f"{url}/api/v1/fleet", json=slurm_cluster.fleet(), headers=headers)
        assert applied.status_code == 200, applied.text
        synced = httpx.post(f"{url}/api/v1/fleet/accounts/sync", json={}, headers=headers,
                            timeout=60)  # fmt: skip
        assert synced.status_code == 200, synced.text
        yield Demo(served=Served(url=url, token=operator, facility=facility, settings=settings),
                   pi_token=pi_token)  # fmt: skip
    facility.close()


@pytest.mark.parametrize("modality", [TEXT, SPEECH], ids=lambda m: m.name)
def test_journey_3_on_slurm(slurm_demo, capsys, monkeypatch, tmp_path, modality):
    walk_journey_3(slurm_demo, capsys, monkeypatch, tmp_path, modality)


def test_journey_2_on_slurm(slurm_demo, capsys, monkeypatch, tmp_path):
    def sync_accounts() -> None:
        """The operator mirrors the new allocation into Slurm's accounts (the job controller
        also does every `account_sync_minutes`)."""
        synced = httpx.post(f"{slurm_demo.url}/api/v1/fleet/accounts/sync", json={},
                            headers={"Authorization": f"Bearer {slurm_demo.served.token}"},
                            timeout=60)  # fmt: skip
        assert synced.status_code == 200, synced.text

    walk_journey_2(slurm_demo, capsys, monkeypatch, tmp_path, before_the_job=sync_accounts)
