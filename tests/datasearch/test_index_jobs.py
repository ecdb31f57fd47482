"""Index jobs on the local executor, as a project runs them: the index of a project's
dataset is published into a repository no more visible than the data (it holds the data's
text), so a person outside the project can neither search it nor learn it exists."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.test_journey_2_a_researcher_gets_compute import as_person
from tests.workloads.conftest import cli_config, demo, served  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

SECRET = "the prototype turbine failed at 41 hertz during the night test"


def test_a_project_datasets_index_stays_inside_the_project(demo, capsys, monkeypatch, tmp_path):  # noqa: F811
    as_person(monkeypatch, demo, demo.pi_token)
    folder = tmp_path / "lab-notes"
    (folder / "data").mkdir(parents=True)
    rows = [{"text": f"Note {n}: calibration of rig {n} was routine."} for n in range(20)]
    rows[4] = {"text": f"Incident: {SECRET}."}
    (folder / "data" / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, _, err = run(
        capsys,
        "dataset",
        "push",
        str(folder),
        "--repo",
        "proj-1/lab-notes",
        "--visibility",
        "project",
        "-m",
        "notes",
    )
    assert code == 0, err
    code, out, err = run(
        capsys,
        "index",
        "build",
        "proj-1/lab-notes",
        "-p",
        "proj-1",
        "--vocab-size",
        "300",
        "--exact-only",
        "--watch",
    )
    assert code == 0 and "succeeded" in out, out + err

    api = http_client(base_url=demo.url, timeout=60)
    pi = {"Authorization": f"Bearer {demo.pi_token}"}
    index = api.get("/api/v1/artifacts/datasets/proj-1/lab-notes-index", headers=pi).json()
    assert index["visibility"] == "project" and index["project"] == "proj-1"
    found = api.get(
        "/api/v1/search", params={"q": SECRET, "dataset": "datasets/proj-1/lab-notes@1"}, headers=pi
    ).json()
    assert found["count"] == 1 and found["hits"][0]["record"] == 4

    outsider = {"Authorization": f"Bearer {demo.token_of('Francesca Conti')}"}
    for who in (outsider, {}):
        refused = api.get(
            "/api/v1/search",
            params={"q": SECRET, "dataset": "datasets/proj-1/lab-notes@1"},
            headers=who,
        )
        assert refused.status_code == 404
        assert (
            api.get("/api/v1/artifacts/datasets/proj-1/lab-notes-index", headers=who).status_code
            == 404
        )
    # What the record shows of it: an index version of a repository it may not name.
    page = api.get("/api/v1/record/entries", params={"type": "artifacts:version"}).text
    assert "lab-notes" not in page and SECRET not in page
