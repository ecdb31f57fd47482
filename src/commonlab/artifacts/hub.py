"""The read side of the Hugging Face Hub API, so `huggingface_hub`, `transformers` and
`datasets` work unchanged with `HF_ENDPOINT` pointing at the facility.

Covered: listing and searching repositories (`/api/models`, `/api/datasets`: `search`,
`author`, `limit`, pages linked by a `Link: <...>; rel="next"` header, newest first),
repository info (`/api/{models,datasets}/{ns}/{name}[/revision/{rev}]`), the tree and
paths-info listings, and file resolution (`/{ns}/{name}/resolve/{rev}/{path}`, and under
`/datasets/`) with ETag (the SHA-256), X-Repo-Commit, Content-Length, Range and HEAD.
Errors carry the `X-Error-Code` the Hub clients map to their exceptions. Every read goes
through the same service functions (and so the same authorization and recording) as
/api/v1.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from commonlab.artifacts import service
from commonlab.artifacts.api import file_response, registry
from commonlab.artifacts.models import RepoKind, Version, Visibility
from commonlab.artifacts.schemas import NamePath, NamespacePath
from commonlab.artifacts.service import RepoRef, VersionRef
from commonlab.errors import CommonlabError, InvalidInput, NotFound, Unauthenticated
from commonlab.http import CurrentPrincipal, DbSession
from commonlab.record import format_time

__all__ = ["router"]


class _HubRoute(APIRoute):
    """Answers domain errors the way the Hub does, not as problem+json or portal pages: those
    of the route and of its locator (an unknown repository type). How to sign in is the
    facility's answer, as on every other route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def hub_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except Unauthenticated:
                raise
            except CommonlabError as exc:
                return _hub_error(exc)

        return hub_errors


router = APIRouter(include_in_schema=False, route_class=_HubRoute)

# No pattern, unlike the API's: a revision that names nothing is answered as the Hub answers
# it (RevisionNotFound, which the clients map), not refused as malformed.
Rev = Annotated[str, Path(max_length=64)]
_KINDS = {"models": RepoKind.MODEL, "datasets": RepoKind.DATASET}


def _repo(kinds: str, namespace: NamespacePath, name: NamePath) -> RepoRef:
    """`/api/{models|datasets}/{namespace}/{name}`, parsed once for every route under it."""
    if kinds not in _KINDS:
        raise NotFound(f"no such repository type {kinds!r}: use models or datasets")
    return RepoRef(_KINDS[kinds], namespace, name)


HubRepo = Annotated[RepoRef, Depends(_repo)]


def _version(repo: HubRepo, rev: Rev) -> VersionRef:
    return repo.at(rev)


HubVersion = Annotated[VersionRef, Depends(_version)]


def _dataset_version(namespace: NamespacePath, name: NamePath, rev: Rev) -> VersionRef:
    return RepoRef(RepoKind.DATASET, namespace, name).at(rev)


def _model_version(namespace: NamespacePath, name: NamePath, rev: Rev) -> VersionRef:
    return RepoRef(RepoKind.MODEL, namespace, name).at(rev)


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
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


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


# Listing --------------------------------------------------------------------------------------

# A page when the client names no limit (it then follows the next links to the end).
LIST_PAGE = 100
MAX_LIST_PAGE = 1000


def _summary(repo: Any) -> dict[str, Any]:
    """A repository as the Hub lists it: who, when, its newest version's commit and licence
    tags. Nothing read out of its files (a card): listing is knowing it exists, not reading
    what it holds."""
    newest = repo.newest
    item: dict[str, Any] = {
        "_id": f"{repo.kind}-{repo.id}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "private": repo.visibility != Visibility.PUBLIC,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "createdAt": format_time(repo.created_at),
        "tags": [f"license:{name.lower()}" for name in newest.licenses] if newest else [],
    }
    if newest is not None:
        item["sha"] = newest.commit
        item["lastModified"] = format_time(newest.created_at)
    if repo.kind == RepoKind.MODEL:
        item["modelId"] = repo.repo_id
    else:
        item["description"] = repo.description
    return item


@dataclass(frozen=True)
class _Listing:
    """What a Hub client asks a list for. `search` comes twice from `list_datasets` when it
    is given `dataset_name` too; `filter` (tags) is refused rather than ignored."""

    search: str | None
    author: str | None
    limit: int
    cursor: int | None


def _listing(
    search: Annotated[list[str] | None, Query(max_length=2)] = None,
    author: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_PAGE)] = LIST_PAGE,
    cursor: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    tags: Annotated[list[str] | None, Query(alias="filter", max_length=64)] = None,
) -> _Listing:
    if tags:
        raise InvalidInput(
            "filter: this facility does not filter repositories by tag; use search or author"
        )
    terms = [term.strip() for term in search or [] if term.strip()]
    if len(terms) > 1:
        raise InvalidInput("search: give one search term (dataset_name and search are one)")
    return _Listing(terms[0][:200] if terms else None, author or None, limit, cursor)


Listing = Annotated[_Listing, Depends(_listing)]


@router.get("/api/models")
async def list_models(
    request: Request, db: DbSession, principal: CurrentPrincipal, listing: Listing
) -> Any:
    return await _list(request, RepoKind.MODEL, db, principal, listing)


@router.get("/api/datasets")
async def list_datasets(
    request: Request, db: DbSession, principal: CurrentPrincipal, listing: Listing
) -> Any:
    return await _list(request, RepoKind.DATASET, db, principal, listing)


async def _list(
    request: Request, kind: RepoKind, db: Any, principal: Any, listing: _Listing
) -> Response:
    """One page of the repositories of `kind` the caller may read (the registry's one rule,
    as every list), newest first; a `Link` header names the next page while there is one."""
    repos, after = await run_in_threadpool(
        service.list_repos,
        db,
        principal,
        kind=kind,
        q=listing.search,
        namespace=listing.author,
        after=listing.cursor,
        limit=listing.limit,
        newest_first=True,
    )
    headers = {}
    if after is not None:
        following = request.url.include_query_params(cursor=str(after))
        headers["Link"] = f'<{following}>; rel="next"'
    return JSONResponse([_summary(repo) for repo in repos], headers=headers)


# The principal comes first in each route: an unusable token is refused before the locator
# is looked at.


@router.get("/api/{kinds}/{namespace}/{name}")
async def repo_info(db: DbSession, principal: CurrentPrincipal, repo: HubRepo) -> Any:
    return await _repo_info(repo.at("main"), db, principal)


@router.get("/api/{kinds}/{namespace}/{name}/revision/{rev}")
async def revision_info(db: DbSession, principal: CurrentPrincipal, ref: HubVersion) -> Any:
    return await _repo_info(ref, db, principal)


async def _repo_info(ref: VersionRef, db: Any, principal: Any) -> Response:
    view = await run_in_threadpool(service.read_version, db, principal, ref)
    return JSONResponse(_info(view))


@router.get("/api/{kinds}/{namespace}/{name}/tree/{rev}")
async def tree_root(
    request: Request, db: DbSession, principal: CurrentPrincipal, ref: HubVersion
) -> Any:
    return await _tree(request, ref, "", db, principal)


@router.get("/api/{kinds}/{namespace}/{name}/tree/{rev}/{path:path}")
async def tree(
    request: Request, path: str, db: DbSession, principal: CurrentPrincipal, ref: HubVersion
) -> Any:
    return await _tree(request, ref, path, db, principal)


async def _tree(request: Request, ref: VersionRef, path: str, db: Any, principal: Any) -> Response:
    version = await run_in_threadpool(service.get_version, db, principal, ref)
    recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
    entries = _entries(version, path, recursive=recursive)
    if path.strip("/") and not entries:
        raise service.FileNotInVersion(f"{version.repo.repo_id} has no folder {path!r}")
    return JSONResponse(entries)


@router.post("/api/{kinds}/{namespace}/{name}/paths-info/{rev}")
async def paths_info(
    request: Request, db: DbSession, principal: CurrentPrincipal, ref: HubVersion
) -> Any:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        wanted = body.get("paths", []) if isinstance(body, dict) else []
    else:
        form = await request.form()
        wanted = [str(p) for p in form.getlist("paths")]
    version = await run_in_threadpool(service.get_version, db, principal, ref)
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
    request: Request, ref: VersionRef, path: str, db: Any, principal: Any
) -> Response:
    reg = registry(request)
    version, entry, local = await run_in_threadpool(
        service.open_file, db, principal, reg, ref, path
    )
    return file_response(request, version, entry, local)


@router.api_route("/datasets/{namespace}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
async def resolve_dataset_file(
    request: Request,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
    ref: Annotated[VersionRef, Depends(_dataset_version)],
) -> Any:
    return await _resolve(request, ref, path, db, principal)


@router.api_route("/{namespace}/{name}/resolve/{rev}/{path:path}", methods=["GET", "HEAD"])
async def resolve_model_file(
    request: Request,
    path: str,
    db: DbSession,
    principal: CurrentPrincipal,
    ref: Annotated[VersionRef, Depends(_model_version)],
) -> Any:
    return await _resolve(request, ref, path, db, principal)
