"""Lineage: what went into a version (down to dataset versions and their sources) and what
was built from it, drawn as one principal may see it (a version they may not read is a
'withheld' node), and the same graph as W3C PROV-JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts.models import LineageEdge, Relation, Version
from commonlab.artifacts.refs import VersionRef
from commonlab.artifacts.refs import parse_ref as parse_version_ref
from commonlab.artifacts.repos import (
    authorize_read,
    content_denial,
    find_repo,
    note_job_read,
    readable,
)
from commonlab.artifacts.versions import (
    VersionFacts,
    facts_of,
    record_licenses,
    record_sources,
    ref_of,
    resolve,
)
from commonlab.errors import AccessDenied, NotFound
from commonlab.policy.principal import Principal

__all__ = [
    "MAX_LINEAGE_NODES",
    "derived_versions",
    "lineage",
    "links",
    "prov_document",
    "training_data",
]

MAX_LINEAGE_NODES = 10_000


def lineage(
    db: Session, actor: Principal, ref: VersionRef, *, direction: str = "up"
) -> dict[str, Any]:
    """'up': what went into it, down to dataset versions and their sources; 'down': what was
    built from it. A version the principal may not read is a 'withheld' node without its
    name, and so is every edge's end at it: the API, PROV and the portal all draw this."""
    with db.begin():
        repo = find_repo(db, ref.repo)
        authorize_read(actor, repo)
        root = resolve(db, repo, ref.rev)
        note_job_read(db, actor, repo, root)
        nodes: dict[int, dict[str, Any]] = {root.id: _node(actor, root)}
        edges: list[dict[str, Any]] = []
        frontier = [root]
        while frontier and len(nodes) < MAX_LINEAGE_NODES:
            current = frontier.pop()
            if nodes[current.id].get("withheld"):
                continue  # what lies beyond a withheld version is not the principal's to see
            column = LineageEdge.version_id if direction == "up" else LineageEdge.source_id
            for edge in db.scalars(select(LineageEdge).where(column == current.id)):
                other = edge.source if direction == "up" else edge.version
                if other.id not in nodes:
                    nodes[other.id] = _node(actor, other)
                    frontier.append(other)
                edges.append(_edge(edge, nodes[edge.version_id], nodes[edge.source_id]))
        return {
            "root": ref_of(root),
            "direction": direction,
            "nodes": sorted(nodes.values(), key=lambda n: n["ref"]),
            "edges": edges,
        }


def derived_versions(
    db: Session,
    actor: Principal,
    ref: str,
    relations: set[Relation],
    *,
    transitive: bool = False,
) -> list[VersionFacts]:
    """The versions built from the version `ref` names by one of `relations` (with
    `transitive`, and from those by the same relations, onwards) that `actor` may read,
    newest first; in the caller's transaction. A version `actor` may not read is left out
    without a trace, and so is what was built from it. NotFound when `ref` is not readable."""
    named = parse_version_ref(ref)
    repo = find_repo(db, named.repo)
    authorize_read(actor, repo)
    root = resolve(db, repo, named.rev)
    found: dict[int, Version] = {}
    frontier = [root]
    while frontier and len(found) < MAX_LINEAGE_NODES:
        current = frontier.pop()
        edges = db.scalars(
            select(LineageEdge).where(
                LineageEdge.source_id == current.id,
                LineageEdge.relation.in_([r.value for r in relations]),
            )
        )
        for edge in edges:
            built = edge.version
            if built.id in found or built.id == root.id or not readable(actor, built.repo):
                continue
            found[built.id] = built
            if transitive:
                frontier.append(built)
    newest_first = sorted(found.values(), key=lambda v: (v.created_at, v.id), reverse=True)
    return [facts_of(version) for version in newest_first]


def training_data(db: Session, actor: Principal, model_ref: str) -> list[VersionFacts]:
    """The dataset versions the model version `model_ref` names was trained on, and those
    the models it derives from (a fine-tune's base, onwards) were trained on, that `actor`
    may read; in the caller's transaction. NotFound when `model_ref` is not readable."""
    named = parse_version_ref(model_ref)
    repo = find_repo(db, named.repo)
    authorize_read(actor, repo)
    seen = {resolve(db, repo, named.rev).id}
    frontier = list(seen)
    datasets: dict[int, Version] = {}
    while frontier and len(seen) < MAX_LINEAGE_NODES:
        edges = db.scalars(select(LineageEdge).where(LineageEdge.version_id == frontier.pop()))
        for edge in edges:
            source = edge.source
            if source.id in seen or not readable(actor, source.repo):
                continue
            seen.add(source.id)
            if edge.relation == Relation.TRAINED_ON and source.repo.kind == "dataset":
                datasets[source.id] = source
            elif edge.relation == Relation.DERIVED_FROM and source.repo.kind == "model":
                frontier.append(source.id)
    return [facts_of(v) for v in sorted(datasets.values(), key=lambda v: v.id)]


def links(
    db: Session, actor: Principal, relation: Relation
) -> list[tuple[VersionFacts, VersionFacts]]:
    """Every (version, source) pair joined by `relation` whose both ends `actor` may read,
    newest version first; in the caller's transaction."""
    edges = db.scalars(
        select(LineageEdge)
        .where(LineageEdge.relation == relation.value)
        .order_by(LineageEdge.version_id.desc())
        .limit(MAX_LINEAGE_NODES)
    )
    return [
        (facts_of(edge.version), facts_of(edge.source))
        for edge in edges
        if readable(actor, edge.version.repo) and readable(actor, edge.source.repo)
    ]


def _edge(edge: LineageEdge, version: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """An edge between two drawn nodes, named as they are: its job only when both are shown
    (the job that made a withheld version is as withheld as the version)."""
    withheld = version.get("withheld") or source.get("withheld")
    return {
        "from": version["ref"],
        "to": source["ref"],
        "relation": edge.relation,
        "job": None if withheld else edge.job,
    }


def _node(actor: Principal, version: Version) -> dict[str, Any]:
    ref = ref_of(version)
    try:
        authorize_read(actor, version.repo)
    except (AccessDenied, NotFound):
        return {"ref": f"artifact/{version.repo.id}@{version.number}", "withheld": True}
    return {
        "ref": ref,
        "kind": version.repo.kind,
        "commit": version.commit,
        "licenses": version.licenses,
        "job": version.job,
        "sources": version.sources,
        # What the records say is read from their content: shown with the content only.
        **(
            {}
            if content_denial(actor, version.repo)
            else {
                "record_sources": record_sources(version.files),
                "record_licenses": record_licenses(version.files),
            }
        ),
        "created_at": record.format_time(version.created_at),
    }


def prov_document(graph: dict[str, Any], *, base_url: str) -> dict[str, Any]:
    """A lineage graph as W3C PROV-JSON: versions are entities, jobs are activities."""
    entity: dict[str, Any] = {}
    activity: dict[str, Any] = {}
    used: dict[str, Any] = {}
    generated: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    for node in graph["nodes"]:
        attrs: dict[str, Any] = {"prov:type": node.get("kind", "withheld")}
        if not node.get("withheld"):
            attrs["prov:label"] = node["ref"]
            attrs["commonlab:commit"] = node["commit"]
            attrs["commonlab:licenses"] = " ".join(node["licenses"])
            if node.get("record_licenses"):
                attrs["commonlab:recordLicenses"] = " ".join(sorted(node["record_licenses"]))
            if node.get("record_sources"):
                attrs["commonlab:recordSources"] = " ".join(node["record_sources"])
            if node.get("job"):
                job = f"job:{node['job']}"
                activity.setdefault(job, {"prov:type": "commonlab:job"})
                generated[f"_:gen{len(generated)}"] = {
                    "prov:entity": node["ref"],
                    "prov:activity": job,
                }
            for i, source in enumerate(node.get("sources") or []):
                src_id = f"source:{node['ref']}#{i}"
                entity[src_id] = {
                    "prov:type": "commonlab:source",
                    **{f"commonlab:{k}": str(v) for k, v in source.items()},
                }
                derived[f"_:src{len(derived)}"] = {
                    "prov:generatedEntity": node["ref"],
                    "prov:usedEntity": src_id,
                }
        entity[node["ref"]] = attrs
    for i, edge in enumerate(graph["edges"]):
        derived[f"_:der{i}"] = {
            "prov:generatedEntity": edge["from"],
            "prov:usedEntity": edge["to"],
            "prov:type": f"commonlab:{edge['relation']}",
        }
        if edge.get("job"):
            job = f"job:{edge['job']}"
            activity.setdefault(job, {"prov:type": "commonlab:job"})
            used[f"_:use{i}"] = {"prov:activity": job, "prov:entity": edge["to"]}
    return {
        "prefix": {
            "commonlab": f"{base_url}/ns/prov#",
            "models": f"{base_url}/artifacts/models/",
            "datasets": f"{base_url}/artifacts/datasets/",
            "job": f"{base_url}/jobs/",
            "source": f"{base_url}/sources/",
        },
        "entity": entity,
        "activity": activity,
        "used": used,
        "wasGeneratedBy": generated,
        "wasDerivedFrom": derived,
    }
