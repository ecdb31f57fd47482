"""Artifacts routes under /api/v1/artifacts: thin — parse, call one service function, render.

Repositories are addressed as `/api/v1/artifacts/{models|datasets}/{namespace}/{name}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated, Any
from urllib.parse import quote

import anyio.from_thread
from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from commonlab.artifacts import dataset_rows, service
from commonlab.artifacts.models import Repo, RepoKind, Version
from commonlab.artifacts.schemas import (
    FileOut,
    RecordFileOut,
    RecordFilesOut,
    RecordOut,
    RecordPageOut,
    RecordSummary,
    RepoCreate,
    RepoOut,
    RepoPath,
    TagOut,
    TagUpdate,
    UploadCreate,
    UploadOut,
    VersionCreate,
    VersionOut,
    VersionPath,
    VersionSummaryOut,
)
from commonlab.artifacts.service import Registry, UploadStatus, VersionView
from commonlab.bounded import Int64
from commonlab.errors import AccessDenied, NotFound
from commonlab.http import BYTES_RESPONSES, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page

__all__ = [
    "STORED_BYTES_HEADERS",
    "media_response",
    "registry",
    "repo_out",
    "router",
    "version_out",
]

# Every byte served from the store is someone's upload: never sniffed into another type,
# and, opened in a browser on the facility's origin, unable to run script, load anything or
# be framed. Downloads, Hub resolves and record members all send these.
STORED_BYTES_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'; frame-ancestors 'none'",
}

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])


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
        latest=repo.newest.number if repo.newest else None,
        tags={tag.name: tag.version.number for tag in repo.tags},
    )


def version_out(view: VersionView) -> VersionOut:
    version = view.version
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
        card=view.card,
        files=[
            FileOut(
                path=f.path,
                size=f.size,
                blake3=f.blake3,
                sha256=f.sha256,
                media_type=f.media_type,
                meta=view.meta(f),
            )
            for f in version.files
        ],
        tags=sorted(tag.name for tag in repo.tags if tag.version_id == version.id),
        withheld=view.withheld,
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
    repos, after = service.list_repos(
        db, principal, kind=kind, q=q, after=page.after, limit=page.limit
    )
    return Page[RepoOut](items=[repo_out(r) for r in repos], next=_cursor(after))


def _cursor(after: int | None) -> str | None:
    return None if after is None else str(after)


@router.get("/{kinds}/{namespace}/{name}", response_model=RepoOut)
def get_repo(repo: RepoPath, db: DbSession, principal: CurrentPrincipal) -> RepoOut:
    return repo_out(service.get_repo(db, principal, repo))


# Uploads


@router.post(
    "/{kinds}/{namespace}/{name}/uploads", status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
)  # fmt: skip
def start_upload(
    repo: RepoPath, req: UploadCreate, db: DbSession, principal: CurrentPrincipal, reg: Reg
) -> UploadOut:
    answer = service.start_upload(db, principal, reg, repo, req)
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
    offset: Annotated[Int64, Query(ge=0, le=1 << 44, description="where this chunk starts")],
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
    repo: RepoPath, req: VersionCreate, db: DbSession, principal: CurrentPrincipal, reg: Reg
) -> VersionOut:
    version = service.commit_version(db, principal, reg, repo, req)
    return version_out(VersionView(version, withheld=None))


@router.get("/{kinds}/{namespace}/{name}/versions", response_model=Page[VersionSummaryOut])
def list_versions(
    repo: RepoPath, db: DbSession, principal: CurrentPrincipal, page: Pagination
) -> Page[VersionSummaryOut]:
    versions, after = service.list_versions(db, principal, repo, after=page.after, limit=page.limit)
    return Page[VersionSummaryOut](
        items=[
            VersionSummaryOut(
                number=v.number,
                commit=v.commit,
                message=v.message,
                created_at=v.created_at,
                total_bytes=v.total_bytes,
                files=len(v.files),
            )
            for v in versions
        ],
        next=_cursor(after),
    )


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}", response_model=VersionOut)
def get_version(version: VersionPath, db: DbSession, principal: CurrentPrincipal) -> VersionOut:
    return version_out(service.read_version(db, principal, version))


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/signature")
def get_signature(
    ref: VersionPath, db: DbSession, principal: CurrentPrincipal, reg: Reg
) -> dict[str, Any]:
    """The version's DSSE envelope (an in-toto statement) and the facility's verifier key."""
    version = service.get_version(db, principal, ref)
    return {
        "repository": f"{ref.repo.kind}s/{version.repo.repo_id}",
        "version": version.number,
        "commit": version.commit,
        "verifier_key": reg.signer.verifier_key(),
        "envelope": version.envelope,
    }


@router.get(
    "/{kinds}/{namespace}/{name}/versions/{rev}/croissant",
    responses={200: {"content": {"application/ld+json": {"schema": {"type": "object"}}}}},
)
def get_croissant(version: VersionPath, db: DbSession, principal: CurrentPrincipal) -> JSONResponse:
    """The dataset version's Croissant 1.1 description (JSON-LD). Its record sets are read
    from the files: it is served to those who may read their content."""
    view = service.read_version(db, principal, version)
    if view.withheld is not None:
        raise AccessDenied(view.withheld)
    if view.croissant is None:
        version = view.version
        raise NotFound(f"{version.repo.repo_id}@{version.number} has no Croissant description")
    return JSONResponse(view.croissant, media_type="application/ld+json")


# One route per method: each gets an operation id of its own in the OpenAPI document.
@router.get(
    "/{kinds}/{namespace}/{name}/versions/{rev}/files/{path:path}",
    response_class=Response,
    responses=BYTES_RESPONSES,
)
@router.head(
    "/{kinds}/{namespace}/{name}/versions/{rev}/files/{path:path}",
    response_class=Response,
    responses=BYTES_RESPONSES,
)
def download_file(
    request: Request,
    ref: VersionPath,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
) -> Response:
    version, entry, local = service.open_file(db, principal, reg, ref, path)
    return file_response(request, version, entry, local)


def file_response(request: Request, version: Version, entry: Any, local: Any) -> Response:
    """A version's file, whole or a byte range, sent as stored bytes (media_response) with
    the digests and commit the Hub clients check."""
    data = dataset_rows.MemberData(media_type=entry.media_type, size=entry.size, path=local)
    response = media_response(
        request, data, public=_public(version), filename=entry.path.rsplit("/", 1)[-1]
    )
    response.headers.update(
        {
            "etag": f'"{entry.sha256}"',
            "x-repo-commit": version.commit,
            "x-commonlab-version": str(version.number),
            "x-content-sha256": entry.sha256,
            "x-content-blake3": entry.blake3,
        }
    )
    return response


def _public(version: Version) -> bool:
    return version.repo.visibility == "public" and version.repo.level == 1


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/lineage")
def get_lineage(
    version: VersionPath,
    db: DbSession,
    principal: CurrentPrincipal,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
) -> dict[str, Any]:
    """'up': what went into this version; 'down': what was built from it."""
    return service.lineage(db, principal, version, direction=direction)


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/prov")
def get_prov(
    version: VersionPath,
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
) -> JSONResponse:
    """The lineage as W3C PROV-JSON."""
    graph = service.lineage(db, principal, version, direction=direction)
    return JSONResponse(
        service.prov_document(graph, base_url=reg.base_url), media_type="application/json"
    )


# Records of a dataset version

RecordFile = Annotated[
    str, Query(min_length=1, max_length=1024, description="the file's path in the version")
]


def _records_base(version: Version) -> str:
    repo = version.repo
    return f"/api/v1/artifacts/{repo.kind}s/{repo.repo_id}/versions/{version.number}"


@router.get(
    "/{kinds}/{namespace}/{name}/versions/{rev}/record-files", response_model=RecordFilesOut
)
def list_record_files(
    ref: VersionPath, db: DbSession, principal: CurrentPrincipal
) -> RecordFilesOut:
    """The files of a dataset version whose records can be listed and shown."""
    version = service.get_version(db, principal, ref)
    return RecordFilesOut(
        files=[
            RecordFileOut(path=f.path, format=fmt, size=f.size, media_type=f.media_type)
            for f in version.files
            if (fmt := dataset_rows.record_format(f.path))
        ]
    )


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/records", response_model=RecordPageOut)
def list_records(
    ref: VersionPath, file: RecordFile, db: DbSession, principal: CurrentPrincipal, reg: Reg,
    offset: Annotated[Int64, Query(ge=0, le=1 << 40)] = 0,
    limit: Annotated[Int64, Query(ge=1, le=dataset_rows.MAX_PAGE)] = 20,
) -> RecordPageOut:  # fmt: skip
    """A page of a file's records (JSONL and Parquet rows, WebDataset samples), each with its
    source and licence."""
    _, local, fallback = service.open_records(db, principal, reg, ref, file)
    page = dataset_rows.read_page(local, file, offset=offset, limit=limit, fallback=fallback)
    return RecordPageOut(
        file=file,
        format=dataset_rows.record_format(file) or "",
        offset=offset,
        limit=limit,
        total=page.total,
        has_more=page.has_more,
        records=[
            RecordSummary(
                index=r.index,
                key=r.key,
                preview=r.preview,
                kinds=r.kinds,
                **dataset_rows.provenance(r),
            )
            for r in page.records
        ],
    )


@router.get("/{kinds}/{namespace}/{name}/versions/{rev}/records/{index}", response_model=RecordOut)
def get_record(
    ref: VersionPath, index: Annotated[Int64, Path(ge=0, le=1 << 40)], file: RecordFile,
    db: DbSession, principal: CurrentPrincipal, reg: Reg,
) -> RecordOut:  # fmt: skip
    """One record in full: its text fields, and a URL for each media member."""
    version, local, fallback = service.open_records(db, principal, reg, ref, file)
    record = dataset_rows.read_record(local, file, index, fallback=fallback)
    has_next = dataset_rows.has_record(local, file, index + 1)
    return dataset_rows.record_out(record, file, _records_base(version), has_next=has_next)


@router.get(
    "/{kinds}/{namespace}/{name}/versions/{rev}/records/{index}/media",
    response_class=Response,
    responses=BYTES_RESPONSES,
)
@router.head(
    "/{kinds}/{namespace}/{name}/versions/{rev}/records/{index}/media",
    response_class=Response,
    responses=BYTES_RESPONSES,
)
def get_record_media(
    request: Request,
    ref: VersionPath, index: Annotated[Int64, Path(ge=0, le=1 << 40)], file: RecordFile,
    member: Annotated[str, Query(min_length=1, max_length=256)],
    db: DbSession, principal: CurrentPrincipal, reg: Reg,
) -> Response:  # fmt: skip
    """One member of a record (an image, audio, video, a text field) with its media type;
    byte ranges are honoured, so players can seek."""
    version, local, fallback = service.open_records(db, principal, reg, ref, file)
    data = dataset_rows.member_data(local, file, index, member, fallback=fallback)
    return media_response(request, data, public=_public(version), filename=f"{index}.{member}")


def media_response(
    request: Request, data: dataset_rows.MemberData, *, public: bool, filename: str
) -> Response:
    """Stored bytes (a file, a record's member), whole or one byte range, GET or HEAD: the
    one way the store's bytes leave the facility, each with STORED_BYTES_HEADERS."""
    response = _media_response(request, data, public=public, filename=filename)
    if data.file is not None and not isinstance(response, StreamingResponse):
        data.file.close()  # a HEAD or a 416: the unpacked member is not sent
    return response


def _media_response(
    request: Request, data: dataset_rows.MemberData, *, public: bool, filename: str
) -> Response:
    headers = {
        "accept-ranges": "bytes",
        # Even a member that slipped past the type check could not run script or be framed.
        **STORED_BYTES_HEADERS,
        "cache-control": "public, max-age=31536000, immutable" if public else "private, no-store",
        "content-disposition": (
            "inline" if data.inline else f"attachment; filename*=UTF-8''{quote(filename)}"
        ),
    }
    start, end = 0, data.size
    status_code = 200
    wanted = request.headers.get("range")
    if wanted:
        span = _byte_range(wanted, data.size)
        if span is None:
            return Response(
                status_code=416, headers={**headers, "content-range": f"bytes */{data.size}"}
            )
        if span != (0, data.size):
            start, end = span
            status_code = 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{data.size}"
    headers["content-length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status_code, headers=headers, media_type=data.media_type)
    if data.data is not None:
        return Response(
            data.data[start:end], status_code=status_code, headers=headers,
            media_type=data.media_type,
        )  # fmt: skip
    chunks = (
        _unpacked_range(data.file, start, end - start)
        if data.file is not None
        else _file_range(data.path, data.offset + start, end - start)
    )
    return StreamingResponse(
        chunks,
        status_code=status_code,
        headers=headers,
        media_type=data.media_type,
    )


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` range as [start, end); None when it cannot be satisfied. Several
    ranges are answered with the whole member, as RFC 9110 allows."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return (0, size)
    first, _, last = spec.strip().partition("-")
    try:
        if not first:  # the last N bytes
            n = int(last)
            return (max(size - n, 0), size) if n > 0 and size else None
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    except ValueError:
        return (0, size)
    if start >= size or start < 0 or end <= start:
        return None
    return (start, end)


def _file_range(path: Any, offset: int, count: int) -> Iterator[bytes]:
    # Opened when the response starts sending, closed by _unpacked_range once it is sent.
    yield from _unpacked_range(open(path, "rb"), offset, count)  # noqa: SIM115


def _unpacked_range(file: IO[bytes], offset: int, count: int) -> Iterator[bytes]:
    """`count` bytes of an open file from `offset`, in 1 MiB pieces; the file (a shard's
    member unpacked into a spool, or a stored object) is closed once they are sent."""
    try:
        file.seek(offset)
        while count > 0:
            chunk = file.read(min(count, 1 << 20))
            if not chunk:
                return
            count -= len(chunk)
            yield chunk
    finally:
        file.close()


# Tags


@router.put("/{kinds}/{namespace}/{name}/tags/{tag}", response_model=TagOut)
def set_tag(
    repo: RepoPath,
    tag: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9._-]*$")],
    req: TagUpdate,
    db: DbSession,
    principal: CurrentPrincipal,
) -> TagOut:
    row, moved = service.set_tag(db, principal, repo, tag, req)
    return TagOut(name=row.name, version=req.version, moved=moved)


# The store


@router.post("/gc", summary="Remove objects that no version references (operators)")
def collect(db: DbSession, principal: CurrentPrincipal, reg: Reg) -> dict[str, int]:
    return service.collect_garbage(db, principal, reg)
