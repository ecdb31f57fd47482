"""Record routes: the C2SP tiled log under /log/ (byte-exact, for independent verifiers) and
convenience JSON under /api/v1/record."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from commonlab.bounded import Int64
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import paginate
from commonlab.record import log
from commonlab.record.models import Entry
from commonlab.record.openings import open_commitment
from commonlab.record.witnesses import accept_cosignature, list_witnesses, register_witness

__all__ = ["log_router", "router"]

log_router = APIRouter(prefix="/log", tags=["record: tiled log"])
router = APIRouter(prefix="/api/v1/record", tags=["record"])

IMMUTABLE = "public, max-age=31536000, immutable"
Size = Annotated[Int64 | None, Query(ge=0, le=MAX_ID, description="tree size; latest if omitted")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@log_router.get(
    "/checkpoint",
    summary="The latest signed checkpoint (C2SP tlog-checkpoint)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def checkpoint(db: DbSession) -> Response:
    return Response(
        log.checkpoint_with_cosignatures(db),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@log_router.get(
    "/tile/{path:path}",
    summary="A tile or entry bundle (C2SP tlog-tiles)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
def tile(path: str, db: DbSession) -> Response:
    data, full = log.tile_bytes(db, "tile/" + path)
    cache = IMMUTABLE if full else "no-cache"
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": cache})


@router.get("/key", summary="The log's origin and verifier key")
def key(request: Request) -> dict[str, str]:
    signer = request.app.state.facility.signer
    return {
        "origin": signer.name,
        "verifier_key": signer.verifier_key(),
        "checkpoint_url": "/log/checkpoint",
        "tiles": "C2SP tlog-tiles under /log/tile/",
    }


@router.get("/checkpoint", summary="The latest checkpoint, parsed")
def checkpoint_json(db: DbSession) -> dict[str, Any]:
    note = log.checkpoint_with_cosignatures(db).decode()
    origin, size, root = note.split("\n")[:3]
    return {"origin": origin, "size": int(size), "root_hash": root, "note": note}


@router.get("/entries", summary="Sequenced entries, oldest first, filtered by type or subject")
def entries(
    db: DbSession,
    page: Pagination,
    type: Annotated[
        str | None, Query(max_length=80, description="a type or prefix, e.g. identity:token")
    ] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    query = log.entries_query(type_prefix=type, subject=subject)
    with db.begin():
        result = paginate(db, query, Entry.seq, page, log.entry_json, cursor=lambda e: e.seq)
    return result.model_dump()


@router.get("/entries/{index}", summary="One entry by its index in the log")
def entry(index: Annotated[Int64, Path(ge=0, le=MAX_ID)], db: DbSession) -> dict[str, Any]:
    return log.entry_json(log.entry_at(db, index))


@router.get("/proofs/inclusion", summary="Inclusion proof for an entry (RFC 9162 §2.1.3)")
def inclusion_proof(
    request: Request,
    db: DbSession,
    index: Annotated[Int64 | None, Query(ge=0, le=MAX_ID)] = None,
    hash: Annotated[str | None, Query(max_length=64, description="leaf hash, hex")] = None,
    size: Size = None,
) -> dict[str, Any]:
    proofs = request.app.state.facility.proofs
    proof = log.inclusion(db, proofs, index=index, leaf_hash_hex=hash, size=size)
    return {
        "index": proof.index,
        "size": proof.size,
        "leaf_hash": proof.leaf_hash.hex(),
        "root_hash": _b64(proof.root_hash),
        "proof": [_b64(h) for h in proof.proof],
    }


@router.get("/proofs/consistency", summary="Consistency proof between two sizes (§2.1.4)")
def consistency_proof(
    request: Request,
    db: DbSession,
    old: Annotated[Int64, Query(ge=0, le=MAX_ID)],
    new: Size = None,
) -> dict[str, Any]:
    proof = log.consistency(db, request.app.state.facility.proofs, old=old, new=new)
    return {
        "old_size": proof.old_size,
        "new_size": proof.new_size,
        "old_root": _b64(proof.old_root),
        "new_root": _b64(proof.new_root),
        "proof": [_b64(h) for h in proof.proof],
    }


class WitnessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    verifier_key: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class CosignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: Annotated[Int64, Field(ge=0, le=MAX_ID)]
    cosignature: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


@router.get("/witnesses", summary="Witness keys whose cosignatures the facility accepts")
def witnesses(db: DbSession) -> list[dict[str, Any]]:
    return [
        {"name": w.name, "verifier_key": w.verifier_key, "registered_at": w.registered_at}
        for w in list_witnesses(db)
    ]


@router.post("/witnesses", status_code=201, summary="Register a witness key")
def add_witness(req: WitnessIn, db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    witness = register_witness(db, principal, name=req.name, verifier_key=req.verifier_key)
    return {"name": witness.name, "verifier_key": witness.verifier_key}


@router.post("/cosignatures", status_code=201, summary="Submit a witness cosignature")
def add_cosignature(req: CosignatureIn, db: DbSession, request: Request) -> dict[str, Any]:
    # Anyone may deliver a cosignature: it is only kept if a registered witness key made it.
    cosignature = accept_cosignature(
        db,
        size=req.size,
        line=req.cosignature,
        remember_in=request.app.state.facility.witnessed_path,
    )
    return {"size": cosignature.checkpoint_size, "witness": cosignature.witness}


@router.get(
    "/entries/{index}/openings/{field}",
    summary="Open a private commitment (operators and auditors; the opening is recorded)",
)
def open_private_field(
    index: Annotated[Int64, Path(ge=0, le=MAX_ID)],
    field: Annotated[str, Path(max_length=100)],
    db: DbSession,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    opening = open_commitment(db, principal, index=index, field=field)
    return {
        "index": opening.index,
        "field": opening.field,
        "value": opening.value,
        "salt": opening.salt_hex,
        "commitment": opening.commitment,
        "check": "commitment == 'sha256:' + hex(SHA-256(salt bytes || RFC 8785 JSON of value))",
    }
