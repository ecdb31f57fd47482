"""`commonlab simulate --motion N` against a live facility over HTTP: it reads the motion,
the regulation and scale in force, runs both on a tiny workload, prints them side by side
and attaches the comparison to the motion."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from commonlab.cli.main import main
from tests.cli.conftest import Served, cli_config, served  # noqa: F401 (fixtures)
from tests.compute.helpers import award_project
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
    # A facility that has run nothing yet: the published trace, and the CLI says so.
    assert "hold 0 that ran (of 0 submitted)" in printed
    assert "replaying the published trace(s) jobs.csv instead" in printed
    assert "The regulation in force and the proposal" in printed
    assert "in force (v0)" in printed and "open_calls" in printed
    assert f"Attached simulation 1 to motion {motion}" in printed
    assert (tmp_path / "out" / "comparison.json").stat().st_size > 0

    [attached] = api.get(f"/api/v1/motions/{motion}/simulations").json()["items"]
    document = attached["document"]
    assert document["policy"] == "commonlab"
    assert document["workload"]["jobs"] == 300
    assert document["workload"]["traces"] == ["jobs.csv"]
    assert document["workload"]["source"] == {
        "kind": "trace",
        "from": None,
        "to": None,
        "jobs": 300,
    }
    assert document["in_force"]["regulation"]["version"] == 0
    pools = document["proposed"]["figures"]["pools"]
    assert pools["open_calls"]["entitled"] == pytest.approx(0.4)
    assert document["in_force"]["figures"]["pools"]["open_calls"]["entitled"] == pytest.approx(0.3)
    assert set(pools) >= {"national:DE", "national:IT", "open_calls"}

    with pytest.raises(SystemExit) as exited:
        main([*args, "--motion", str(other)])
    assert exited.value.code == 1
    assert "only adopt_regulation motions" in capsys.readouterr().err


def _run_jobs(api: _Api, operator: dict[str, str], count: int) -> list[dict]:
    """`count` one-core jobs of one new project (an open call's), submitted together and run
    to the end by the facility's own job controller on the local machine."""
    project = award_project(api, operator, found=False)
    ids = []
    for i in range(count):
        made = api.post(
            "/api/v1/jobs",
            json={
                "name": f"work-{i}",
                "project": project.name,
                "command": "sleep 0.3",
                "accelerator": "cpu",
                "accelerators": 1,
                "time_limit_minutes": 5,
            },
            headers=project.member_auth,
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    deadline = time.monotonic() + 60
    while True:
        jobs = [api.get(f"/api/v1/jobs/{i}", headers=project.member_auth).json() for i in ids]
        if all(j["state"] == "succeeded" for j in jobs):
            return jobs
        assert time.monotonic() < deadline, [j["state"] for j in jobs]
        time.sleep(0.2)


def test_simulate_motion_replays_the_facilitys_own_jobs_by_default(
    served: Served,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = _Api(served.url)
    operator = {"Authorization": f"Bearer {served.token}"}
    seats = found_council(api, operator)
    ran = _run_jobs(api, operator, 4)
    motion = table(api, seats["DE"], "adopt_regulation", {"regulation": PROPOSED})
    monkeypatch.setenv("COMMONLAB_TOKEN", seats["DE"]["Authorization"].removeprefix("Bearer "))

    main(["simulate", "--motion", str(motion), "--url", served.url])  # no fleet, no trace
    printed = capsys.readouterr().out
    assert "replays the facility's own jobs submitted" in printed
    assert "4 jobs that ran, each in the pool its project draws on" in printed
    assert f"Attached simulation 1 to motion {motion}" in printed

    [attached] = api.get(f"/api/v1/motions/{motion}/simulations").json()["items"]
    workload = attached["document"]["workload"]
    assert workload["source"]["kind"] == "facility" and workload["source"]["jobs"] == 4
    assert workload["jobs"] == 4
    fleet = api.get("/api/v1/fleet").json()
    assert workload["fleet_accelerators"] == fleet["accelerators"]  # the fleet as it is
    for side in ("in_force", "proposed"):
        pools = attached["document"][side]["figures"]["pools"]
        assert pools["open_calls"]["jobs"] == 4  # each job kept its project's pool
        assert sum(p["jobs"] for p in pools.values()) == 4
    today = date.fromisoformat(ran[0]["submitted_at"][:10])
    window = f"{today - timedelta(days=91)}–{today}"  # the last 92 days, today included
    assert workload["traces"] == [f"the facility's own jobs, {window}"]
    # Four short jobs on the local machine: whichever the page shows, it says which it replayed.
    page = api.get(f"/motions/{motion}").text
    assert "Workload: replays the facility&#39;s own jobs of" in page or (
        "Workload: replays the facility's own jobs of" in page
    )
    assert ("No difference to show" in printed) == ("No difference to show" in page)

    # A window chosen on the command line replays the jobs of those days.
    day = today.isoformat()
    main(["simulate", "--motion", str(motion), "--url", served.url, "--since", day])
    assert f"the facility's own jobs submitted {day}" in capsys.readouterr().out.replace("\n", " ")

    # Options that reshape a published trace have no meaning for the facility's own jobs.
    with pytest.raises(SystemExit):
        main(["simulate", "--motion", str(motion), "--url", served.url, "--load", "1.1"])
    refused = capsys.readouterr().err
    assert "own jobs replay as they were, so --load (made to shape a published trace)" in refused
    assert "--workload trace" in refused


def test_a_young_facility_without_a_trace_says_what_to_pass(
    served: Served,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = _Api(served.url)
    seats = found_council(api, {"Authorization": f"Bearer {served.token}"})
    motion = table(api, seats["DE"], "adopt_regulation", {"regulation": PROPOSED})
    monkeypatch.setenv("COMMONLAB_TOKEN", seats["DE"]["Authorization"].removeprefix("Bearer "))
    base = ["simulate", "--motion", str(motion), "--url", served.url]

    for extra, said in [
        ([], "hold 0 that ran (of 0 submitted): nothing of its own to replay; pass --trace FILE"),
        (["--workload", "facility"], "nothing of its own to replay"),
        (["--workload", "trace"], "--workload trace needs a published trace: pass --trace FILE"),
        (["--workload", "mine"], "--workload must be one of auto, facility, trace"),
        (["--since", "2026-12-05", "--until", "2026-12-01"], "end (2026-12-01) must be after"),
        (["--since", "2020-01-01", "--until", "2026-01-01"], "at most 366 are exported at once"),
        (["--since", "2026-01-01", "--workload", "trace", "--trace", "x.csv"], "not with --w"),
        (["--since", "2026-10-01", "--until", "2026-12-01"], "hold 0 that ran (of 0 submitted)"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main([*base, *extra])
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert said in err, err
        assert len(err.strip().splitlines()) == 1 or "Traceback" not in err
    assert api.get(f"/api/v1/motions/{motion}/simulations").json()["items"] == []
    with pytest.raises(SystemExit) as exited:
        main([*base, "--since", "yesterday"])
    assert exited.value.code == 2  # the command line's own usage error
    assert "yesterday" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--since", "2026-10-01", "--fleet", "f.toml", "--trace", "t.csv"])
    assert "--since and --until choose the facility's jobs a --motion replays" in (
        capsys.readouterr().err
    )


def test_a_workload_too_light_to_show_a_difference_says_so(
    served: Served,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = _Api(served.url)
    seats = found_council(api, {"Authorization": f"Bearer {served.token}"})
    motion = table(api, seats["DE"], "adopt_regulation", {"regulation": PROPOSED})
    monkeypatch.setenv("COMMONLAB_TOKEN", seats["DE"]["Authorization"].removeprefix("Bearer "))
    fleet, _ = _workload(tmp_path)
    light = tmp_path / "light.csv"  # three one-accelerator jobs an hour apart on 16
    light.write_text(
        "job_id,tenant,submit,runtime,accelerators\n"
        + "".join(f"{i},team{i},{i * 3600},60,1\n" for i in range(3))
    )
    args = ["--url", served.url, "--fleet", str(fleet), "--trace", str(light)]
    main(["simulate", "--motion", str(motion), *args])
    printed = capsys.readouterr().out
    assert "No difference to show: no job waited under either regulation" in printed
    assert "The regulation in force and the proposal" not in printed  # no equal columns
    assert f"Attached simulation 1 to motion {motion}" in printed


class _CutAfter(httpx.SyncByteStream):
    """An answer body that breaks after its first lines, as a dropped connection does."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines

    def __iter__(self):
        yield from self.lines
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def test_the_export_read_as_it_comes_is_one_line_when_cut_or_refused() -> None:
    from commonlab.cli.client import Client, CliError, Login
    from commonlab.cli.simulate_motion import _facility_jobs
    from commonlab.errors import InvalidInput

    window = (
        b'{"window": {"from": "2026-09-06T00:00:00+00:00", "to": "2026-12-07T00:00:00+00:00"}}\n'
    )
    job = (
        b'{"job": {"job_id": 1, "tenant": "t1", "pool": "open_calls", "submit": 0.0, '
        b'"runtime": 60.0, "accelerators": 1, "class": "cpu", "wait": 0.0}}\n'
    )
    totals = b'{"totals": {"jobs": 1, "replayable": 1, "left_out": {}}}\n'

    def answer(body: httpx.SyncByteStream | bytes, status: int = 200):
        def handle(request: httpx.Request) -> httpx.Response:
            assert request.url.params["format"] == "ndjson"
            if isinstance(body, bytes):
                return httpx.Response(
                    status, content=body, headers={"content-type": "application/json"}
                )
            return httpx.Response(status, stream=body)

        return Client(
            Login(url="http://facility", token="t"), transport=httpx.MockTransport(handle)
        )

    own = _facility_jobs(answer(window + job + totals), {})
    assert (len(own.trace), own.jobs, own.tenant_pools) == (1, 1, {"t1": "open_calls"})
    with pytest.raises(CliError, match="request to http://facility failed: peer closed"):
        _facility_jobs(answer(_CutAfter([window, job])), {})
    # Ended cleanly but early (the facility stopped between two pieces): no totals.
    with pytest.raises(InvalidInput, match="cut short"):
        _facility_jobs(answer(window + job), {})
    refused = answer(b'{"detail": "the window is too long"}', status=422)
    with pytest.raises(CliError, match=r"the window is too long \(HTTP 422\)"):
        _facility_jobs(refused, {})
