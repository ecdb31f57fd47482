"""Portal pages for open models and datasets: browse and search, a repository, a version with
its card, files, licences, lineage and signature status, and a dataset's records (text, an
image, an audio or video player, each with its source and licence). Server-rendered; no page
needs JavaScript. Views are thin: they call the artifacts service as the viewer and render."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from commonlab.artifacts import service
from commonlab.artifacts.schemas import RepoPath, VersionPath
from commonlab.artifacts.service import RepoKind
from commonlab.compute import service as compute
from commonlab.errors import AccessDenied, NotFound
from commonlab.http import DbSession
from commonlab.portal.evaluations_views import score_text
from commonlab.portal.pages import CurrentViewer, Viewer, render_page
from commonlab.portal.templating import PAGE_HEADERS
from commonlab.workloads import service as workloads

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
RecordFile = Annotated[str, Query(min_length=1, max_length=1024)]
RECORDS_PER_PAGE = 25
# The record page plays audio and video from this facility, and nothing else.
_RECORD_CSP = PAGE_HEADERS["Content-Security-Policy"] + "; media-src 'self'"


def _page(request: Request, viewer: Viewer, name: str, **context: Any) -> Response:
    return render_page(request, viewer, name, nav="artifacts", **context)


@router.get("/artifacts")
def browse(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    kind: Annotated[str | None, Query(pattern="^(model|dataset)?$")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = None,
) -> Response:
    kind_ = RepoKind(kind) if kind else None
    repos, _ = service.list_repos(
        db,
        viewer.principal,
        kind=kind_,
        q=(q or "").strip() or None,
        limit=PAGE_SIZE,
        newest_first=True,
    )
    rows = [
        {
            "kinds": f"{r.kind}s",
            "repo_id": r.repo_id,
            "kind": r.kind,
            "level": r.level,
            "visibility": r.visibility,
            "description": r.description,
            "latest": r.newest.number if r.newest else None,
        }
        for r in repos
    ]
    return _page(request, viewer, "artifacts.html", rows=rows, kind=kind or "", q=q or "")


@router.get("/models")
def models() -> RedirectResponse:
    """The addresses people type: the registry's list of models."""
    return RedirectResponse("/artifacts?kind=model", status_code=308)


@router.get("/datasets")
def datasets() -> RedirectResponse:
    return RedirectResponse("/artifacts?kind=dataset", status_code=308)


@router.get("/artifacts/{kinds}/{namespace}/{name}")
def repo_page(ref: RepoPath, db: DbSession, viewer: CurrentViewer) -> Response:
    repo = service.get_repo(db, viewer.principal, ref)
    if repo.newest is None:
        return RedirectResponse("/artifacts?q=" + ref.name, status_code=303)
    return RedirectResponse(
        f"/artifacts/{ref}/versions/{repo.newest.number}",
        status_code=303,
    )


def _job_page(db: DbSession, principal: Any, job: str | None) -> str | None:
    """The page of the facility job that made a version, when the viewer may see it: a link
    only where it leads somewhere (a job's page is for its project's members)."""
    if not job or not job.isdigit():
        return None
    try:
        compute.get_job(db, principal, int(job))
    except (NotFound, AccessDenied):
        return None
    return f"/jobs/{job}"


@router.get("/artifacts/{kinds}/{namespace}/{name}/versions/{rev}")
def version_page(
    request: Request,
    ref: VersionPath,
    db: DbSession,
    viewer: CurrentViewer,
) -> Response:
    principal = viewer.principal
    repo_ref, kinds = ref.repo, f"{ref.repo.kind}s"
    view = service.read_version(db, principal, ref)
    version = view.version
    # Read before anything below can end a transaction in a refusal (which expires `version`).
    evaluations = (
        workloads.evaluations_of_model(db, principal, f"{repo_ref}@{version.number}")
        if kinds == "models"
        else []
    )
    up = service.lineage(db, principal, repo_ref.at(str(version.number)))
    down = service.lineage(db, principal, repo_ref.at(str(version.number)), direction="down")
    key = request.app.state.facility.signer.verifier_key()
    try:
        statement = service.open_envelope(version.envelope, key)
        signed = {f["path"]: f["sha256"] for f in (
            {"path": s["name"], "sha256": s["digest"]["sha256"]} for s in statement["subject"]
        )}  # fmt: skip
        matches = signed == {f.path: f.sha256 for f in version.files}
        signature = {"ok": matches, "why": "" if matches else "the manifest differs from the files"}
    except service.SignatureError as exc:
        signature = {"ok": False, "why": str(exc)}
    repo = version.repo
    return _page(
        request,
        viewer,
        "artifact_version.html",
        kinds=kinds,
        repo=repo,
        version=version,
        card=view.card,
        versions=[v.number for v in repo.versions],
        tags=sorted(t.name for t in repo.tags if t.version_id == version.id),
        upstream=[n for n in up["nodes"] if n["ref"] != up["root"]],
        downstream=[n for n in down["nodes"] if n["ref"] != down["root"]],
        edges=up["edges"],
        signature=signature,
        verifier_key=key,
        job_page=_job_page(db, principal, version.job),
        evaluations=evaluations,
        score=score_text,
        hub_url=("" if kinds == "models" else "datasets/") + repo.repo_id,
        record_files=[
            {
                "path": f.path,
                "format": fmt,
                "size": f.size,
                "summary": view.meta(f).get("records"),
                "error": view.meta(f).get("records_error"),
            }
            for f in version.files
            if kinds == "datasets" and (fmt := service.record_format(f.path))
        ],
    )


@router.get("/artifacts/{kinds}/{namespace}/{name}/versions/{rev}/records")
def records_page(
    request: Request,
    ref: VersionPath,
    file: RecordFile,
    db: DbSession,
    viewer: CurrentViewer,
    offset: Annotated[int, Query(ge=0, le=1 << 40)] = 0,
) -> Response:
    registry, kinds = request.app.state.artifacts, f"{ref.repo.kind}s"
    version, local, fallback = service.open_records(db, viewer.principal, registry, ref, file)
    page = service.read_page(local, file, offset=offset, limit=RECORDS_PER_PAGE, fallback=fallback)
    return _page(
        request,
        viewer,
        "dataset_records.html",
        kinds=kinds,
        repo=version.repo,
        version=version,
        file=file,
        format=service.record_format(file),
        page=page,
        per_page=RECORDS_PER_PAGE,
        quoted=urlencode({"file": file}),
    )


@router.get("/artifacts/{kinds}/{namespace}/{name}/versions/{rev}/records/{index}")
def record_page(
    request: Request,
    ref: VersionPath,
    index: Annotated[int, Path(ge=0, le=1 << 40)],
    file: RecordFile,
    db: DbSession,
    viewer: CurrentViewer,
) -> Response:
    registry, kinds = request.app.state.artifacts, f"{ref.repo.kind}s"
    version, local, fallback = service.open_records(db, viewer.principal, registry, ref, file)
    record = service.read_record(local, file, index, fallback=fallback)
    base = f"/api/v1/artifacts/{kinds}/{version.repo.repo_id}/versions/{version.number}"
    response = _page(
        request,
        viewer,
        "dataset_record.html",
        kinds=kinds,
        repo=version.repo,
        version=version,
        file=file,
        record=service.record_out(
            record, file, base, has_next=service.has_record(local, file, index + 1)
        ),
        quoted=urlencode({"file": file}),
    )
    response.headers["Content-Security-Policy"] = _RECORD_CSP
    return response
