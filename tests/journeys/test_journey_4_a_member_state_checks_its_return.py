"""Journey 4, a member state checks its return, on the demo facility: Italy's finance ministry
reads the member-states page — delivered versus entitled share per quarter and over the last
four, with the tolerance band — and the CSV export backs it: every figure on the page is the
API's and the CSV's, for the year and for each quarter; and an auditor recomputes the same
figures from the public record alone (`commonlab audit`) and finds no difference."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import date
from decimal import Decimal

import httpx

from commonlab.portal.allocation_views import _last_quarters
from tests.audit.logs import settled
from tests.cli.test_cli import run


def cells(row: str) -> list[str]:
    found = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in found]


def rows_of(page: str, table_class: str) -> dict[str, list[str]]:
    """A table's body rows by the state's code (the <code> after its name)."""
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', page, re.S)
    assert table, f"no table.{table_class} on the page"
    body = table.group(1).split("<tbody>")[1]
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        code = re.search(r'<code class="code-tag">([A-Z]{2})</code>', row).group(1)
        out[code] = cells(row)
    return out


def test_journey_4_a_member_state_checks_its_return(demo, capsys, monkeypatch):
    page = httpx.get(f"{demo.url}/members").text
    start, end = re.search(r"start=(\d{4}-\d\d-\d\d)&amp;end=(\d{4}-\d\d-\d\d)", page).groups()
    report = httpx.get(f"{demo.url}/api/v1/reports/shares", params={"start": start, "end": end})
    assert report.status_code == 200, report.text
    report = report.json()
    exported = httpx.get(
        f"{demo.url}/api/v1/reports/shares", params={"start": start, "end": end, "format": "csv"}
    )
    assert exported.headers["content-type"].startswith("text/csv")
    by_csv = {row["code"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    by_api = {s["code"]: s for s in report["states"]}
    assert set(by_csv) == set(by_api) == {"IT", "FR", "DE", "ES", "SE"}

    # The tolerance band the chart draws is the regulation's, as the API reports it.
    assert f"entitled share ± {report['tolerance_percent']} points" in html.unescape(page)

    # The year's table: each state's entitled share, hours, share, deviation and band.
    year = rows_of(page, "shares")
    for code, line in by_api.items():
        assert by_csv[code] == {k: str(v) for k, v in line.items()}
        _, entitled, hours, share, deviation, band = year[code]
        assert Decimal(entitled.rstrip("%")) == Decimal(line["entitled_percent"])
        assert Decimal(re.sub(r"\s", "", hours)) == Decimal(line["delivered_hours"])
        assert Decimal(share.rstrip("%")) == round(Decimal(line["delivered_percent"]), 2)
        assert Decimal(deviation) == round(Decimal(line["deviation"]), 2)
        assert (band == "Outside the band") == line["outside_band"]
    italy = by_api["IT"]
    assert Decimal(italy["delivered_hours"]) > 0  # Sapienza's project ran (the demo's usage)

    # Over time: each quarter's column is the API's share for that quarter.
    quarters = rows_of(page, "share-quarters")
    spans = _last_quarters(date.today())
    assert (spans[0][0].isoformat(), spans[-1][1].isoformat()) == (start, end)
    compared = 0
    for i, (q_start, q_end) in enumerate(spans):
        quarter = httpx.get(
            f"{demo.url}/api/v1/reports/shares",
            params={"start": q_start.isoformat(), "end": q_end.isoformat()},
        ).json()
        total = sum(Decimal(s["delivered_hours"]) for s in quarter["states"])
        for line in quarter["states"]:
            shown = quarters[line["code"]][2 + i]
            if total == 0:
                assert shown == "—"
            else:
                assert Decimal(shown.rstrip("%")) == round(Decimal(line["delivered_percent"]), 2)
                compared += 1
    assert compared >= 5  # this quarter, at least, has usage to compare

    # The ministry's own copy from the command line says the same.
    monkeypatch.setenv("COMMONLAB_URL", demo.url)
    code, out, err = run(capsys, "report", "shares", "--start", start, "--end", end, "--csv")
    assert code == 0, err
    assert {row["code"]: row for row in csv.DictReader(io.StringIO(out))} == by_csv
    # Kenya is no member state: the demo PI's hours are shown apart, never in a state's share.
    outside = {o["country"]: o for o in report["outside_members"]}
    assert "KE" in outside and "KE" not in by_api

    # An auditor recomputes the same figures from the public record alone: the log read
    # through its tiles and verified, replayed by code that shares nothing with the facility's,
    # and compared with the facility's figures, the share report's among them.
    settled(demo.served.facility, demo.url)
    code, out, err = run(capsys, "audit", demo.url, "--json")
    assert code == 0, out + err
    audited = json.loads(out)
    assert audited["ok"] is True and audited["differences"] == []
    assert audited["checked"].get("allocation", 0) > 0  # the share report's figures
