"""What a simulation reads besides its traces: the fleet (compute's fleet document, or a
trace's node list) as partitions and interconnect domains, and the entitled share of every
pool from a regulation and a contribution scale."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.errors import InvalidInput
from commonlab.regulation.document import ContributionScale, Regulation
from commonlab.schemas import read_document
from commonlab.simulator.textfile import Table, read_document_text, shown

__all__ = [
    "Entitlements",
    "Partition",
    "RegulationDocument",
    "entitlements",
    "load_fleet",
    "load_regulation",
    "partitions",
    "pool_of_member",
    "read_node_list",
]

NATIONAL_PREFIX = "national:"


@dataclass(frozen=True)
class Partition:
    """One fleet partition as the engine sees it: a class and its interconnect domains (runs
    of `nodes_per_domain` consecutive nodes; the last one is smaller when they do not divide)."""

    name: str
    accelerator: str
    domain_sizes: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.domain_sizes)

    @property
    def largest_domain(self) -> int:
        return max(self.domain_sizes)


NODE_LIST_COLUMNS = ("sn", "gpu", "model")
# The densest servers carry 8 to 16 accelerators; a few hundred is a typo, not a node.
MAX_GPUS_PER_NODE = 1_024


def load_fleet(path: Path) -> FleetSpec:
    """A fleet document in compute's schema (TOML or JSON), or a node list of the Alibaba
    trace (`openb_node_list_*.csv`: sn, cpu_milli, memory_mib, gpu, model), read as the
    original cluster: one partition per (GPU model, GPUs per node), each node its own
    interconnect domain (a pod never spans nodes); nodes without GPUs are left out."""
    if path.suffix.lower() != ".csv":
        text = read_document_text(path, what="fleet")
        return read_document(path, FleetSpec, what="fleet", text=text)
    groups = read_node_list(path)
    parts = [
        {
            "name": re.sub(r"[^a-z0-9_.-]", "-", f"{model.lower()}-{gpus}"),
            "site": "alibaba",
            "accelerator": model,
            "nodes": nodes,
            "accelerators_per_node": gpus,
            "nodes_per_domain": 1,
        }
        for (model, gpus), nodes in sorted(groups.items())
    ]
    return FleetSpec.model_validate(
        {"sites": [{"name": "alibaba", "country": "CN"}], "partitions": parts}
    )


def read_node_list(path: Path) -> Counter[tuple[str, int]]:
    """How many nodes of each (GPU model, GPUs per node) a node list holds; nodes without
    GPUs are left out."""
    groups: Counter[tuple[str, int]] = Counter()
    seen: dict[str, int] = {}  # node name -> its line: a node listed twice would count twice
    with Table(
        path, what="node list", rows_are="nodes", delimiter=",", required=NODE_LIST_COLUMNS
    ) as table:
        name_at, gpu_at, model_at = (table.index[c] for c in ("sn", "gpu", "model"))
        for line, fields in table:
            name = fields[name_at].strip()
            if name in seen:
                raise table.error(f"sn {shown(name)} repeats line {seen[name]}; each node once")
            seen[name] = line
            text = fields[gpu_at].strip()
            try:
                gpus = int(text)
            except ValueError:
                raise table.error(f"gpu must be an integer, not {shown(text)}") from None
            if not 0 <= gpus <= MAX_GPUS_PER_NODE:
                raise table.error(
                    f"gpu {shown(text)} is out of range: 0 to {MAX_GPUS_PER_NODE} per node"
                )
            if gpus:
                groups[(fields[model_at].strip(), gpus)] += 1
    if not groups:
        raise InvalidInput(f"{path}: no node has GPUs")
    return groups


def partitions(fleet: FleetSpec) -> list[Partition]:
    """The fleet's partitions that have accelerators, in document order."""
    result = []
    for spec in fleet.partitions:
        if spec.accelerators == 0:
            continue
        per_domain = min(spec.domain_size, spec.nodes)
        whole, rest = divmod(spec.nodes, per_domain)
        sizes = [per_domain * spec.accelerators_per_node] * whole
        if rest:
            sizes.append(rest * spec.accelerators_per_node)
        result.append(Partition(spec.name, spec.accelerator, tuple(sizes)))
    if not result:
        raise InvalidInput("fleet: no partition has accelerators")
    return result


class RegulationDocument(BaseModel):
    """What `--regulation` reads: the regulation and the contribution scale adopted with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regulation: Regulation
    contribution_scale: ContributionScale


@dataclass(frozen=True)
class Entitlements:
    """Entitled share of capacity per pool, as fractions summing to 1. Member states are the
    pools `national:<CC>`; the others are open_calls, smes_and_public_bodies and
    directors_reserve."""

    shares: dict[str, float]
    tolerance: float

    @property
    def pools(self) -> list[str]:
        return list(self.shares)


def pool_of_member(code: str) -> str:
    return f"{NATIONAL_PREFIX}{code}"


def entitlements(document: RegulationDocument) -> Entitlements:
    """National pools split by the contribution scale; the other pools as the split says."""
    regulation, scale = document.regulation, document.contribution_scale
    try:
        scale.check(ceiling=regulation.contribution_ceiling_percent)
    except ValueError as exc:
        raise InvalidInput(f"contribution_scale.shares: {exc}") from None
    split = regulation.capacity.pools()
    shares: dict[str, float] = {}
    national = split.pop("national_pools")
    for code, share in sorted(scale.shares.items()):
        if share > 0:
            shares[pool_of_member(code)] = float(national * share / Decimal(10_000))
    for pool, percent in split.items():
        if percent > 0:
            shares[pool] = float(percent / 100)
    tolerance = float(regulation.allocation.share_tolerance_percent / 100)
    return Entitlements(shares=shares, tolerance=tolerance)


def load_regulation(path: Path) -> RegulationDocument:
    """Read `{"regulation": {...}, "contribution_scale": {"shares": {...}}}` (JSON, or TOML
    when the name ends in .toml)."""
    text = read_document_text(path, what="regulation")
    return read_document(path, RegulationDocument, what="regulation", check=_not_bare, text=text)


def _not_bare(data: Any) -> None:
    if isinstance(data, dict) and "capacity" in data and "regulation" not in data:
        raise ValueError(
            'a bare regulation; wrap it as {"regulation": ..., '
            '"contribution_scale": {"shares": {"DE": 20, ...}}}'
        )
