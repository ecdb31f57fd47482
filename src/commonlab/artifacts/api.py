"""Artifacts routes under /api/v1/artifacts: thin — parse, call one service function, render.

Repositories are addressed as `/api/v1/artifacts/{models|datasets}/{namespace}/{name}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from commonlab.artifacts import service
from commonlab.artifacts.models import Repo, RepoKind, Version
from commonlab.artifacts.schemas import (
    FileOut,
    RepoCreate,
    RepoOut,
    TagOut,
    TagSet,
    UploadCreate,
    UploadOut,
    VersionCreate,
    VersionOut,
    VersionSummary,
)
from commonlab.artifacts.service import Registry, UploadStatus
from commonlab.http import CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page, paginate

__all__ = ["registry", "repo_out", "router", "version_out"]

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])


class Kinds(StrEnum):
    models = "models"
    datasets = "datasets"

    @property
    def kind(self) -> RepoKind:
        return RepoKind.MODEL if self is Kinds.models else RepoKind.DATASET


Namespace = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
Name = Annotated[str, Path(max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Rev = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
UploadId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


def registry(request: Request) -> Registry:
    return request.app.state.artifacts


Reg = Annotated[Registry, Depends(registry)]


def repo_out(repo: Repo) -> RepoOut:
    return RepoOut(
        id=repo.id,
        kind=RepoKind(repo.kind),
        namespace=repo.namespace,
        name=repo.name,
        repo_id=repo.repo_id,
        project=repo.project,
        owner=None if repo.project else repo.namespace,
        visibility=repo.visibility,
        level=repo.level,
        description=repo.description,
        created_at=repo.created_at,
        latest=repo.versions[-1].number if repo.versions else None,
        tags={tag.name: tag.version.number for tag in repo.tags},
    )


def version_out(version: Version) -> VersionOut:
    repo = version.repo
    return VersionOut(
        repo=repo.repo_id,
        kind=RepoKind(repo.kind),
        number=version.number,
        commit=version.commit,
        message=version.message,
        created_at=version.created_at,
        created_by=version.created_by,
        level=repo.level,
        licenses=version.licenses,
        license_flags=version.license_flags,
        job=version.job,
        total_bytes=version.total_bytes,
        statement_sha256=version.statement_sha256,
        card=version.card,
        files=[FileOut.model_validate(f, from_attributes=True) for f in version.files],
        tags=sorted(tag.name for tag in repo.tags if tag.version_id == version.id),
    )


def _upload_out(status_: UploadStatus, reg: Registry) -> UploadOut:
    return UploadOut(
        id=status_.id,
        state=status_.state,
        size=status_.size,
        received=status_.received,
        blake3=status_.blake3,
        chunk_bytes=reg.chunk_bytes,
        local_path=status_.local_path,
    )


# Repositories


@router.post("/repos", status_code=status.HTTP_201_CREATED, response_model=RepoOut)
def create_repo(req: RepoCreate, db: DbSession, principal: CurrentPrincipal) -> RepoOut:
    repo = service.create_repo(db, principal, req)
    return repo_out(repo)


@router.get("/repos", response_model=Page[RepoOut])
def list_repos(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    kind: RepoKind | None = None,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
) -> Page[RepoOut]:
    query = service.repos_query(principal, kind=kind, q=q)
    with db.begin():
        return paginate(db, query, Repo.id, page, repo_out)


@router.get("/{kinds}/{namespace}/{name}", response_model=RepoOut)
def get_repo(
    kinds: Kinds, namespace: Namespace, name: Name, db: DbSession, principal: CurrentPrincipal
) -> RepoOut:
    return repo_out(service.get_repo(db, principal, kinds.kind, namespace, name))


# Uploads


@router.post(
    "/{kinds}/{namespace}/{name}/uploads", status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
)  # fmt: skip
def start_upload(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    req: UploadCreate,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
) -> UploadOut:
    answer = service.start_upload(db, principal, reg, kinds.kind, namespace, name, req)
    return _upload_out(answer, reg)


@router.get("/uploads/{upload_id}", response_model=UploadOut)
def upload_status(
    upload_id: UploadId, db: DbSession, principal: CurrentPrincipal, reg: Reg
) -> UploadOut:
    return _upload_out(service.upload_status(db, principal, reg, upload_id), reg)


@router.put(
    "/uploads/{upload_id}",
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "required": True,
        }
    },
)
async def put_chunk(
    request: Request,
    upload_id: UploadId,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    offset: Annotated[int, Query(ge=0, le=1 << 44, description="where this chunk starts")],
) -> UploadOut:
    """Send the next chunk (at most `chunk_bytes`); the body is the raw bytes."""
    # The body streams into the part file: at most one batch of it is ever in memory.
    chunks = _BodyBatches(request)
    answer = await run_in_threadpool(
        service.put_chunk, db, principal, reg, upload_id, offset, chunks
    )
    return _upload_out(answer, reg)


class _BodyBatches:
    """A request body as a blocking iterator of its pieces, for a worker thread.

    The body arrives on the event loop in pieces of up to a few hundred KiB; the worker (which
    hashes and writes them) fetches ~4 MiB of them at a time, so it rarely crosses threads.
    """

    BATCH = 4 << 20

    def __init__(self, request: Request) -> None:
        self._pieces = request.stream().__aiter__()
        self._done = False

    async def _take(self) -> list[bytes]:
        # The pieces as they came: joining them would copy every byte once more.
        pieces: list[bytes] = []
        size = 0
        while size < self.BATCH:
            try:
                piece = await self._pieces.__anext__()
            except StopAsyncIteration:
                self._done = True
                break
            pieces.append(piece)
            size += len(piece)
        return pieces

    def __iter__(self) -> Iterator[bytes]:
        while not self._done:
            yield from anyio.from_thread.run(self._take)


# Versions


@router.post(
    "/{kinds}/{namespace}/{name}/versions", status_code=status.HTTP_201_CREATED,
    response_model=VersionOut,
)  # fmt: skip
def commit_version(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    req: VersionCreate,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
) -> VersionOut:
    version = service.commit_version(db, principal, reg, kinds.kind, namespace, name, req)
    return version_out(version)


@router.get("/{kinds}/{namespace}/{name}/versions", response_model=Page[VersionSummary])
def list_versions(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
) -> Page[VersionSummary]:
    repo = service.get_repo(db, principal, kinds.kind, namespace, name)
    from sqlalchemy import select

    query = select(Version).where(Version.repo_id == repo.id)
    with db.begin():
        return paginate(
            db,
            query,
            Version.number,
            page,
            lambda v: VersionSummary(
                number=v.number,
                commit=v.commit,
                message=v.message,
                created_at=v.created_at,
                total_bytes=v.total_bytes,
                files=len(v.files),
            ),
            cursor=lambda v: v.number,
        )


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}", response_model=VersionOut)
def get_version(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
) -> VersionOut:
    return version_out(service.get_version(db, principal, kinds.kind, namespace, name, rev))


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/signature")
def get_signature(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
) -> dict[str, Any]:
    """The version's DSSE envelope (an in-toto statement) and the facility's verifier key."""
    version = service.get_version(db, principal, kinds.kind, namespace, name, rev)
    return {
        "repository": f"{kinds.value}/{version.repo.repo_id}",
        "version": version.number,
        "commit": version.commit,
        "verifier_key": reg.signer.verifier_key(),
        "envelope": version.envelope,
    }


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/croissant")
def get_croissant(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
) -> JSONResponse:
    """The dataset version's Croissant 1.1 description (JSON-LD)."""
    version = service.get_version(db, principal, kinds.kind, namespace, name, rev)
    if version.croissant is None:
        from commonlab.errors import NotFound

        raise NotFound(f"{version.repo.repo_id}@{version.number} has no Croissant description")
    return JSONResponse(version.croissant, media_type="application/ld+json")


@router.api_route(
    "/{kinds}/{namespace}/{name}/versions/{rev}/files/{path:path}", methods=["GET", "HEAD"]
)
def download_file(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
) -> FileResponse:
    version, entry, local = service.open_file(
        db, principal, reg, kinds.kind, namespace, name, rev, path
    )
    return file_response(version, entry, local)


def file_response(version: Version, entry: Any, local: Any) -> FileResponse:
    return FileResponse(
        local,
        media_type=entry.media_type,
        headers={
            "etag": f'"{entry.sha256}"',
            "x-repo-commit": version.commit,
            "x-commonlab-version": str(version.number),
            "x-content-sha256": entry.sha256,
            "x-content-blake3": entry.blake3,
            "cache-control": "public, max-age=31536000, immutable"
            if version.repo.visibility == "public" and version.repo.level == 1
            else "private, no-store",
        },
        content_disposition_type="attachment",
        filename=entry.path.rsplit("/", 1)[-1],
    )


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/lineage")
def get_lineage(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
) -> dict[str, Any]:
    """'up': what went into this version; 'down': what was built from it."""
    return service.lineage(db, principal, kinds.kind, namespace, name, rev, direction=direction)


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/prov")
def get_prov(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
) -> JSONResponse:
    """The lineage as W3C PROV-JSON."""
    graph = service.lineage(db, principal, kinds.kind, namespace, name, rev, direction=direction)
    return JSONResponse(
        service.prov_document(graph, base_url=reg.base_url), media_type="application/json"
    )


# Tags


@router.put("/{kinds}/{namespace}/{name}/tags/{tag}", response_model=TagOut)
def set_tag(
    kinds: Kinds,
    namespace: Namespace,
    name: Name,
    tag: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9._-]*$")],
    req: TagSet,
    db: DbSession,
    principal: CurrentPrincipal,
) -> TagOut:
    row, moved = service.set_tag(db, principal, kinds.kind, namespace, name, tag, req)
    return TagOut(name=row.name, version=req.version, moved=moved)


# The store


@router.post("/gc", summary="Remove objects that no version references (operators)")
def collect(db: DbSession, principal: CurrentPrincipal, reg: Reg) -> dict[str, int]:
    return service.collect_garbage(db, principal, reg)
