"""`commonlab simulate --motion N` against a live facility over HTTP: it reads the motion,
the regulation and scale in force, runs both on a tiny workload, prints them side by side
and attaches the comparison to the motion."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from commonlab.cli.main import main
from tests.cli.conftest import Served, cli_config, served  # noqa: F401 (fixtures)
from tests.helpers import http_client
from tests.simulator.whatifs import PROPOSED, found_council, table


class _Api:
    """The tests' HTTP calls to the served facility, shaped like a TestClient."""

    def __init__(self, url: str) -> None:
        self._http = http_client(base_url=url, timeout=30)

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return self._http.post(path, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self._http.get(path, **kwargs)  # type: ignore[arg-type]


def _workload(tmp_path: Path) -> tuple[Path, Path]:
    rows = "".join(
        f"{i},team{i % 10},{i * 20},{600 + (i * 37) % 900},{1 + i % 3}\n" for i in range(300)
    )
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,tenant,submit,runtime,accelerators\n" + rows)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[sites]]\nname = "here"\ncountry = "CH"\n\n[[partitions]]\nname = "p"\n'
        'site = "here"\naccelerator = "H100"\nnodes = 4\naccelerators_per_node = 4\n'
        "nodes_per_domain = 2\n"
    )
    return fleet, trace


def test_simulate_motion_attaches_the_comparison(
    served: Served,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = _Api(served.url)
    seats = found_council(api, {"Authorization": f"Bearer {served.token}"})
    motion = table(api, seats["DE"], "adopt_regulation", {"regulation": PROPOSED})
    other = table(
        api,
        seats["DE"],
        "set_contribution_scale",
        {"shares": {"IT": "20", "FR": "25", "DE": "25", "ES": "15", "SE": "15"}},
    )
    monkeypatch.setenv("COMMONLAB_TOKEN", seats["DE"]["Authorization"].removeprefix("Bearer "))
    fleet, trace = _workload(tmp_path)
    args = ["simulate", "--fleet", str(fleet), "--trace", str(trace), "--url", served.url]

    main([*args, "--motion", str(motion), "--load", "1.1", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "The regulation in force and the proposal" in printed
    assert "in force (v0)" in printed and "open_calls" in printed
    assert f"Attached simulation 1 to motion {motion}" in printed
    assert (tmp_path / "out" / "comparison.json").stat().st_size > 0

    [attached] = api.get(f"/api/v1/motions/{motion}/simulations").json()["items"]
    document = attached["document"]
    assert document["policy"] == "commonlab"
    assert document["workload"]["jobs"] == 300
    assert document["workload"]["traces"] == ["jobs.csv"]
    assert document["in_force"]["regulation"]["version"] == 0
    pools = document["proposed"]["figures"]["pools"]
    assert pools["open_calls"]["entitled"] == pytest.approx(0.4)
    assert document["in_force"]["figures"]["pools"]["open_calls"]["entitled"] == pytest.approx(0.3)
    assert set(pools) >= {"national:DE", "national:IT", "open_calls"}

    with pytest.raises(SystemExit) as exited:
        main([*args, "--motion", str(other)])
    assert exited.value.code == 1
    assert "only adopt_regulation motions" in capsys.readouterr().err
