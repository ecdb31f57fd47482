"""The fleet described as a document: sites, partitions, accelerator classes, interconnect
domains and the containment level each partition is certified for.

Pure data (Pydantic, no database). The compute domain loads its fleet from this schema and the
simulator reads the same files, so a facility can simulate exactly what it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from commonlab.bounded import Int64
from commonlab.policy.levels import Level
from commonlab.schemas import read_document

__all__ = ["FleetSpec", "PartitionSpec", "SiteSpec", "load_fleet"]

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Spec):
    name: Slug
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class PartitionSpec(_Spec):
    """Identical nodes at one site. Nodes are split into interconnect domains of
    `nodes_per_domain` consecutive nodes: a job asking for one domain stays inside one."""

    name: Slug
    site: Slug
    accelerator: Annotated[str, Field(min_length=1, max_length=32, description="class, e.g. H100")]
    nodes: Annotated[Int64, Field(ge=1, le=1_000_000)]
    accelerators_per_node: Annotated[Int64, Field(ge=0, le=64)]
    cpus_per_node: Annotated[Int64, Field(ge=1, le=4096)] = 64
    memory_gb_per_node: Annotated[Int64, Field(ge=1, le=65_536)] = 512
    nodes_per_domain: Annotated[Int64, Field(ge=1, le=1_000_000)] | None = None
    certified_level: Level = Level.CL1

    @field_validator("certified_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return Level.parse(value)

    @property
    def accelerators(self) -> int:
        return self.nodes * self.accelerators_per_node

    @property
    def domain_size(self) -> int:
        return self.nodes_per_domain or self.nodes


class FleetSpec(_Spec):
    sites: Annotated[list[SiteSpec], Field(min_length=1)]
    partitions: Annotated[list[PartitionSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> FleetSpec:
        site_names = [s.name for s in self.sites]
        if len(set(site_names)) != len(site_names):
            raise ValueError("site names must be unique")
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError("partition names must be unique")
        for partition in self.partitions:
            if partition.site not in site_names:
                raise ValueError(
                    f"partition {partition.name!r} names unknown site {partition.site!r}"
                )
        return self

    @property
    def accelerators(self) -> int:
        return sum(p.accelerators for p in self.partitions)

    def by_class(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for partition in self.partitions:
            counts[partition.accelerator] = (
                counts.get(partition.accelerator, 0) + partition.accelerators
            )
        return counts


def load_fleet(path: Path) -> FleetSpec:
    """Read a fleet from JSON or TOML; a bad file is one InvalidInput naming the field."""
    return read_document(path, FleetSpec, what="fleet")
