"""The read side of the Hugging Face Hub API, so `huggingface_hub`, `transformers` and
`datasets` work unchanged with `HF_ENDPOINT` pointing at the facility.

Covered: repository info (`/api/{models,datasets}/{ns}/{name}[/revision/{rev}]`), the tree
and paths-info listings, and file resolution (`/{ns}/{name}/resolve/{rev}/{path}`, and under
`/datasets/`) with ETag (the SHA-256), X-Repo-Commit, Content-Length, Range and HEAD.
Errors carry the `X-Error-Code` the Hub clients map to their exceptions. Every read goes
through the same service functions (and so the same authorization and recording) as
/api/v1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from commonlab.artifacts import service
from commonlab.artifacts.api import file_response, registry
from commonlab.artifacts.models import RepoKind, Version, Visibility
from commonlab.errors import AccessDenied, CommonlabError, NotFound, Unauthenticated
from commonlab.http import CurrentPrincipal, DbSession
from commonlab.record import format_time

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Namespace = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
Name = Annotated[str, Path(max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Rev = Annotated[str, Path(max_length=64)]
_KINDS = {"models": RepoKind.MODEL, "datasets": RepoKind.DATASET}


def _hub_error(exc: CommonlabError) -> Response:
    code = None
    if isinstance(exc, service.FileNotInVersion):
        code = "EntryNotFound"
    elif isinstance(exc, service.RevisionNotFound):
        code = "RevisionNotFound"
    elif isinstance(exc, NotFound):
        code = "RepoNotFound"
    headers = {"X-Error-Code": code} if code else {}
    headers["X-Error-Message"] = exc.message.encode("ascii", "replace").decode()
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


def _hub_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Answer domain errors the way the Hub does, not as problem+json or portal pages."""

    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except CommonlabError as exc:
            return _hub_error(exc)

    return wrapper


def _siblings(version: Version) -> list[dict[str, Any]]:
    return [
        {
            "rfilename": f.path,
            "size": f.size,
            "blobId": f.sha256[:40],
            "lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 134},
        }
        for f in version.files
    ]


def _info(view: service.VersionView) -> dict[str, Any]:
    version = view.version
    repo = version.repo
    card = (view.card or {}).get("meta") or {}
    info: dict[str, Any] = {
        "_id": f"{repo.kind}-{repo.id}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": version.commit,
        "lastModified": format_time(version.created_at),
        "createdAt": format_time(repo.created_at),
        "private": repo.visibility != Visibility.PUBLIC,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [f"license:{name.lower()}" for name in version.licenses],
        "cardData": card,
        "siblings": _siblings(version),
        "usedStorage": version.total_bytes,
    }
    if repo.kind == RepoKind.MODEL:
        info["modelId"] = repo.repo_id
        if "library_name" in card:
            info["library_name"] = card["library_name"]
        if "pipeline_tag" in card:
            info["pipeline_tag"] = card["pipeline_tag"]
    return info


def _entries(version: Version, folder: str, *, recursive: bool) -> list[dict[str, Any]]:
    """Files and folders under `folder` ('' for the root), as the tree API lists them."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    files, folders = [], set()
    for f in version.files:
        if not f.path.startswith(prefix):
            continue
        rest = f.path[len(prefix) :]
        if "/" in rest and not recursive:
            folders.add(prefix + rest.split("/", 1)[0])
            continue
        if recursive:
            parts = rest.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folders.add(prefix + "/".join(parts[:i]))
        files.append(_file_entry(f))
    dirs = [{"type": "directory", "oid": version.commit, "path": d} for d in sorted(folders)]
    return dirs + files


def _file_entry(f: Any) -> dict[str, Any]:
    return {
        "type": "file",
        "oid": f.sha256[:40],
        "size": f.size,
        "path": f.path,
        "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 134},
    }


def _kind(kinds: str) -> RepoKind:
    if kinds not in _KINDS:
        raise NotFound(f"no such repository type {kinds!r}: use models or datasets")
    return _KINDS[kinds]


@router.get("/api/{kinds}/{namespace}/{name}")
@_hub_errors
async def repo_info(
    kinds: str, namespace: Namespace, name: Name, db: DbSession, principal: CurrentPrincipal
) -> Any:
    return await _repo_info(kinds, namespace, name, "main", db, principal)


@router.get("/api/{kinds}/{namespace}/{name}/revision/{rev}")
@_hub_errors
async def revision_info(
    kinds: str,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    return await _repo_info(kinds, namespace, name, rev, db, principal)


async def _repo_info(
    kinds: str, namespace: str, name: str, rev: str, db: Any, principal: Any
) -> Response:
    view = await run_in_threadpool(
        service.read_version, db, principal, _kind(kinds), namespace, name, rev
    )
    return JSONResponse(_info(view))


@router.get("/api/{kinds}/{namespace}/{name}/tree/{rev}")
@_hub_errors
async def tree_root(
    request: Request,
    kinds: str,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    return await _tree(request, kinds, namespace, name, rev, "", db, principal)


@router.get("/api/{kinds}/{namespace}/{name}/tree/{rev}/{path:path}")
@_hub_errors
async def tree(
    request: Request,
    kinds: str,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    return await _tree(request, kinds, namespace, name, rev, path, db, principal)


async def _tree(
    request: Request, kinds: str, namespace: str, name: str, rev: str, path: str, db: Any,
    principal: Any,
) -> Response:  # fmt: skip
    version = await run_in_threadpool(
        service.get_version, db, principal, _kind(kinds), namespace, name, rev
    )
    recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
    entries = _entries(version, path, recursive=recursive)
    if path.strip("/") and not entries:
        raise service.FileNotInVersion(f"{version.repo.repo_id} has no folder {path!r}")
    return JSONResponse(entries)


@router.post("/api/{kinds}/{namespace}/{name}/paths-info/{rev}")
@_hub_errors
async def paths_info(
    request: Request,
    kinds: str,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        wanted = body.get("paths", []) if isinstance(body, dict) else []
    else:
        form = await request.form()
        wanted = [str(p) for p in form.getlist("paths")]
    version = await run_in_threadpool(
        service.get_version, db, principal, _kind(kinds), namespace, name, rev
    )
    by_path = {f.path: f for f in version.files}
    folders = {"/".join(f.path.split("/")[:i]) for f in version.files
               for i in range(1, f.path.count("/") + 1)}  # fmt: skip
    answer = []
    for item in wanted[:1000]:
        item = str(item).strip("/")
        if item in by_path:
            answer.append(_file_entry(by_path[item]))
        elif item in folders:
            answer.append({"type": "directory", "oid": version.commit, "path": item})
    return JSONResponse(answer)


async def _resolve(
    request: Request, kind: RepoKind, namespace: str, name: str, rev: str, path: str, db: Any,
    principal: Any,
) -> Response:  # fmt: skip
    reg = registry(request)
    version, entry, local = await run_in_threadpool(
        service.open_file, db, principal, reg, kind, namespace, name, rev, path
    )
    return file_response(request, version, entry, local)


@router.api_route("/datasets/{namespace}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
@_hub_errors
async def resolve_dataset_file(
    request: Request,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    return await _resolve(request, RepoKind.DATASET, namespace, name, rev, path, db, principal)


@router.api_route("/{namespace}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
@_hub_errors
async def resolve_model_file(
    request: Request,
    namespace: Namespace,
    name: Name,
    rev: Rev,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    return await _resolve(request, RepoKind.MODEL, namespace, name, rev, path, db, principal)


_ = AccessDenied
