"""The operator's map of tenants and trace files to pools, and its mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator.mapping import PoolMap, PoolRule, parse_pair, read_map_file
from commonlab.simulator.workload import build_workload
from tests.simulator.helpers import trace

POOLS = ["national:DE", "national:FR", "open_calls"]


def _jobs(*tenants: str) -> list[dict]:
    return [{"submit": i, "runtime": 60, "size": 1, "tenant": t} for i, t in enumerate(tenants)]


def _pools_of(workload) -> dict[str, str]:
    """Each tenant (without its trace's prefix) and the pool its jobs went to."""
    return {
        workload.tenants[t].split("/", 1)[1]: workload.pools[p]
        for t, p in zip(workload.tenant, workload.pool, strict=True)
    }


def _map(*pairs: str, files: tuple[str, ...] = ()) -> PoolMap:
    return PoolMap(
        tuple(parse_pair(p, option="--map") for p in pairs),
        tuple(parse_pair(f, option="--trace-pool") for f in files),
    )


def test_names_then_patterns_then_the_default() -> None:
    mapping = _map("lab-1=DE", "lab-*=national:FR", "re:ops[0-9]+=open_calls", "*=national:DE")
    workload = build_workload(
        [trace(_jobs("lab-1", "lab-2", "ops17", "other"))], pools=POOLS, pool_map=mapping
    )
    assert _pools_of(workload) == {
        "lab-1": "national:DE",  # by name, before the lab-* pattern
        "lab-2": "national:FR",
        "ops17": "open_calls",
        "other": "national:DE",
    }
    assert "1 by name, 2 by pattern, 1 by the * default" in " ".join(workload.how)
    assert not any("round-robin" in w for w in workload.warnings)


def test_a_whole_trace_file_to_one_pool() -> None:
    mapping = _map(files=("a.csv=FR", "b=open_calls"))
    workload = build_workload(
        [trace(_jobs("x", "y"), name="a"), trace(_jobs("x"), name="b")],
        pools=POOLS,
        pool_map=mapping,
    )
    by_trace = {
        workload.tenants[t]: workload.pools[p]
        for t, p in zip(workload.tenant, workload.pool, strict=True)
    }
    assert by_trace == {"a/x": "national:FR", "a/y": "national:FR", "b/x": "open_calls"}
    assert any("national:DE get no work" in w for w in workload.warnings)


@pytest.mark.parametrize(
    ("mapping", "tenants", "message"),
    [
        (("a=XX",), ("a",), "--map a=XX: unknown pool 'XX'; the regulation's pools are"),
        (
            ("a=DE", "a=FR"),
            ("a",),
            "tenant 'a' is mapped twice: to national:DE (--map a=DE) and to national:FR",
        ),
        (
            ("a*=DE", "*b=FR"),
            ("ab",),
            "tenant 'ab' is mapped twice: to national:DE by 'a*' (--map a*=DE) and to "
            "national:FR by '*b'",
        ),
        (("a=DE",), ("a", "b"), "tenant 'b' of t.csv is in no line of the map"),
        (("re:([=DE",), ("a",), "is not a regular expression"),
    ],
)
def test_mistakes_in_the_map_are_one_line_errors(
    mapping: tuple[str, ...], tenants: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        build_workload([trace(_jobs(*tenants))], pools=POOLS, pool_map=_map(*mapping))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_tenant_of_a_mapped_file_mapped_elsewhere_by_name_is_an_error() -> None:
    with pytest.raises(InvalidInput, match=r"'x' of t\.csv is mapped twice: to national:FR"):
        build_workload(
            [trace(_jobs("x"))], pools=POOLS, pool_map=_map("x=DE", "*=DE", files=("t=FR",))
        )
    # The default line does not compete with a file's pool.
    workload = build_workload(
        [trace(_jobs("x"))], pools=POOLS, pool_map=_map("*=DE", files=("t=FR",))
    )
    assert _pools_of(workload) == {"x": "national:FR"}


def test_the_same_pool_written_two_ways_is_one_mapping() -> None:
    workload = build_workload(
        [trace(_jobs("a"))], pools=POOLS, pool_map=_map("a=DE", "a=national:DE")
    )
    assert _pools_of(workload) == {"a": "national:DE"}


def test_pairs_need_a_name_and_a_pool() -> None:
    for text in ("a", "=DE", "a="):
        with pytest.raises(InvalidInput, match="write NAME=POOL"):
            parse_pair(text, option="--map")


def test_the_map_file(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("\ufefftenant,pool\nlab-*,DE\n*,open_calls\n")  # Excel's BOM
    assert read_map_file(path) == (
        PoolRule("lab-*", "DE", f"{path} line 2"),
        PoolRule("*", "open_calls", f"{path} line 3"),
    )
    path.write_text("name,pool\na,DE\n")
    with pytest.raises(InvalidInput, match="first line must be the header tenant,pool"):
        read_map_file(path)
    path.write_text("tenant,pool\na,\n")
    with pytest.raises(InvalidInput, match=r"map.csv line 2: write a tenant \(or pattern\)"):
        read_map_file(path)
    path.write_bytes(b"tenant,pool\n\xff\xfe,DE\n")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_map_file(path)
