"""`commonlab dataset|model push|pull` and `commonlab verify`: moving artifacts between a
directory and a facility, with progress bars, and checking a local copy against its signed
manifest offline."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import blake3
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from commonlab.artifacts import metadata
from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.digest_cache import DigestCache
from commonlab.cli.render import console
from commonlab.errors import InvalidInput

__all__ = ["register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
LOCAL_DIR = ".commonlab"
READ_CHUNK = 1 << 20
HASH_BLOCK = 64 << 20
# Files in flight at once: while the facility checks one, the next is being sent.
SENDERS = 2
OCTETS = {"content-type": "application/octet-stream"}
_COPYING = threading.Lock()


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _local_files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file under root (sorted); a symlink is an error, not a file."""
    if not root.is_dir():
        raise CliError(f"{root} is not a directory")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (base == root and d == LOCAL_DIR))
        for name in [*dirnames, *filenames]:
            if (base / name).is_symlink():
                raise CliError(
                    f"{(base / name).relative_to(root)} is a symbolic link: copy the file it "
                    "points to instead (a version holds only regular files)"
                )
        for name in sorted(filenames):
            path = base / name
            found.append((path.relative_to(root).as_posix(), path))
    if not found:
        raise CliError(f"{root} holds no files to push")
    return sorted(found)


class _Bars:
    """The push's two progress bars. The hashing bar grows as files turn out to need hashing
    (on a shared file system most are copied in without it)."""

    def __init__(self, progress: Progress, total: int, *, hash_ahead: int) -> None:
        self.progress = progress
        self._to_hash = hash_ahead
        self._lock = threading.Lock()
        self.hashing = progress.add_task("hashing  ", total=hash_ahead, visible=hash_ahead > 0)
        self.sending = progress.add_task("uploading", total=total)

    def will_hash(self, size: int) -> None:
        with self._lock:
            self._to_hash += size
            self.progress.update(self.hashing, total=self._to_hash, visible=True)

    def hashed(self, n: int) -> None:
        self.progress.advance(self.hashing, n)

    def sent(self, n: int) -> None:
        self.progress.advance(self.sending, n)


def _digest(path: Path, bars: _Bars) -> dict[str, Any]:
    # BLAKE3 only, from the mapped file: the facility computes the SHA-256 as it checks the
    # bytes, so hashing here costs about as much as the copy. One thread: measured, spreading
    # it over every core was slower, not faster, while the copies and the facility's hashing
    # already keep the cores busy.
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        b3 = blake3.blake3()
        if size:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                for start in range(0, size, HASH_BLOCK):
                    block = view[start : start + HASH_BLOCK]
                    b3.update(block)
                    bars.hashed(len(block))
                    block.release()
                view.release()
    return {"size": size, "blake3": b3.hexdigest()}


def _split(repo: str) -> tuple[str | None, str]:
    if repo.count("/") > 1:
        raise CliError(f"--repo {repo!r}: give namespace/name, or just name for your own")
    ns, _, name = repo.rpartition("/")
    return ns or None, name


def _ensure_repo(client: Client, kind: str, ns: str | None, name: str, opts: dict[str, Any]) -> str:
    me = client.get("/api/v1/me")
    if not me.get("authenticated"):
        raise CliError("pushing needs a token: run `commonlab login` or set COMMONLAB_TOKEN")
    namespace = ns or me["pseudonym"]
    path = f"{kind}s/{namespace}/{name}"
    try:
        client.get(f"/api/v1/artifacts/{path}")
        return path
    except CliError as exc:
        if "(HTTP 404)" not in str(exc):
            raise
    body = {"kind": kind, "name": name, **opts}
    if namespace != me["pseudonym"]:
        body["project"] = namespace
    client.post("/api/v1/artifacts/repos", json=body)
    console.print(f"created the {kind} repository {namespace}/{name}")
    return path


def _read(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The file's bytes [start, end) in blocks: a chunk is streamed, never held whole."""
    with path.open("rb") as fh:
        fh.seek(start)
        while start < end and (block := fh.read(min(READ_CHUNK * 4, end - start))):
            start += len(block)
            yield block


def _copy_local(path: Path, part: str, size: int, bars: _Bars) -> int | None:
    """Copy the file into the upload's part file on a shared file system, in the kernel.

    None when that path is not ours to write (another machine, another user): the bytes then
    go over HTTP. The facility checks them either way when the upload is finished.
    """
    try:
        fd = os.open(part, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "wb") as out, path.open("rb") as src:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        offset = os.fstat(out.fileno()).st_size
        if offset > size:
            return None
        bars.sent(offset)
        os.lseek(out.fileno(), offset, os.SEEK_SET)
        while offset < size:
            n = _copy_range(src.fileno(), out.fileno(), offset, size - offset)
            if n == 0:
                raise CliError(f"{path} shrank while it was being pushed: push it again")
            offset += n
            bars.sent(n)
    return offset


def _copy_range(src: int, dst: int, offset: int, count: int) -> int:
    step = min(count, 64 << 20)
    with contextlib.suppress(OSError):
        return os.copy_file_range(src, dst, step, offset)
    with contextlib.suppress(OSError):
        return os.sendfile(dst, src, offset, step)
    return os.write(dst, os.pread(src, min(step, READ_CHUNK * 4), offset))


def _finish_copied(client: Client, url: str, copied: int, bars: _Bars) -> dict[str, Any]:
    """Finish an upload whose bytes were copied in: an empty chunk at the end, and the
    facility checks what it holds. When it does not see the copy (not the same file system
    after all), the answer says where the upload stands and the bytes go over HTTP."""
    try:
        return client.request("PUT", url, params={"offset": copied}, content=b"", headers=OCTETS)
    except CliError as exc:
        if exc.status != 409:
            raise
    bars.sent(-copied)
    answer = client.get(url)
    bars.sent(answer["received"])
    return answer


def _send(client: Client, url: str, path: Path, answer: dict[str, Any], chunk_bytes: int,
          size: int, bars: _Bars) -> str:  # fmt: skip
    """Send the rest of an open upload over HTTP, resuming where the facility says it is;
    returns the BLAKE3 the facility computed."""
    offset = answer["received"]
    while offset < size:
        end = min(offset + chunk_bytes, size)
        for attempt in range(3):
            try:
                answer = client.request(
                    "PUT",
                    url,
                    params={"offset": offset},
                    content=_read(path, offset, end),
                    headers={**OCTETS, "content-length": str(end - offset)},
                )
                break
            except CliError as exc:
                if attempt == 2 or exc.status not in (None, 409, 500, 502, 503, 504):
                    raise  # refused (the bytes do not match, no such upload): say why
                # Cut off, or out of step: resume where the facility says the upload is.
                status = client.get(url)
                if status["received"] != offset:
                    answer = status
                    break
        bars.sent(answer["received"] - offset)
        offset = answer["received"]
    if answer.get("blake3") is None:  # resumed past the end: ask where it stands
        answer = client.get(url)
    return str(answer["blake3"])


def _upload(client: Client, repo: str, path: Path, digest: dict[str, Any], bars: _Bars, *,
            local: bool) -> str:  # fmt: skip
    """Send one file, declared by its digest, unless the repository already holds it;
    returns its BLAKE3."""
    answer = client.post(f"/api/v1/artifacts/{repo}/uploads", json=digest)
    if answer["state"] == "complete":
        bars.sent(digest["size"])  # the facility already holds these bytes
        return str(answer["blake3"])
    url = f"/api/v1/artifacts/uploads/{answer['id']}"
    if local:
        answer = _copy_in(client, url, path, answer, bars)
        if answer["state"] == "complete":
            return str(answer["blake3"])
    return _send(client, url, path, answer, answer["chunk_bytes"], digest["size"], bars)


def _copy_in(client: Client, url: str, path: Path, answer: dict[str, Any],
             bars: _Bars) -> dict[str, Any]:  # fmt: skip
    """On a shared file system, copy the file into the open upload's part file and finish
    it; returns where the upload stands (unchanged where the copy is not possible)."""
    size = answer["size"]
    if not (answer.get("local_path") and size):
        return answer
    before = os.stat(path)
    # One copy at a time: the next file's copy overlaps the facility checking this one.
    with _COPYING:
        copied = _copy_local(path, answer["local_path"], size, bars)
    if copied is None:
        return answer
    _unchanged_since(path, before)
    return _finish_copied(client, url, copied, bars)


def _upload_copying(client: Client, repo: str, path: Path, bars: _Bars) -> str:
    """Send one file new to the repository without hashing it first: on a shared file
    system it is copied into the upload in the kernel and hashed once, by the facility.

    Hashing here first is only worth it when the repository may hold the bytes already; the
    facility says when (a file of this size is held) and the file is then declared by its
    digest. Where the copy is not possible, the file is hashed here after all and sent over
    HTTP, and the facility's digest must match.
    """
    before = os.stat(path)
    try:
        answer = client.post(f"/api/v1/artifacts/{repo}/uploads", json={"size": before.st_size})
    except CliError as exc:
        if not exc.problem.get("digest_needed"):
            raise
        bars.will_hash(before.st_size)
        return _upload(client, repo, path, _digest(path, bars), bars, local=True)
    if answer["state"] == "complete":  # an empty file
        return str(answer["blake3"])
    size = before.st_size
    url = f"/api/v1/artifacts/uploads/{answer['id']}"
    answer = _copy_in(client, url, path, answer, bars)
    if answer["state"] == "complete":
        return str(answer["blake3"])
    bars.will_hash(size)
    expected = _digest(path, bars)["blake3"]
    stored = _send(client, url, path, answer, answer["chunk_bytes"], size, bars)
    if stored != expected:
        raise CliError(
            f"{path}: the facility holds bytes with BLAKE3 {stored}, not this file's "
            f"{expected} (did it change while it was pushed?): push it again"
        )
    return stored


def _unchanged_since(path: Path, before: os.stat_result) -> None:
    now = os.stat(path)
    if (now.st_size, now.st_mtime_ns, now.st_ino) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    ):
        raise CliError(f"{path} changed while it was being pushed: push it again")


def _push(kind: str, directory: Path, repo: str, url: str | None, **options: Any) -> str:
    client = Client(load_login(url=url))
    ns, name = _split(repo)
    files = _local_files(directory)
    create = {k: options.pop(k) for k in ("visibility", "level") if options.get(k) is not None}
    repo_path = _ensure_repo(client, kind, ns, name, create)
    if options.pop("stamp", False):
        _stamp_weights(client, repo_path, files, options.get("job"))
    stats = {rel: path.stat() for rel, path in files}
    total = sum(st.st_size for st in stats.values())
    local = bool(options.pop("local", True))
    # Files unchanged since the last push are declared by the digest they had then.
    cache = DigestCache(directory / LOCAL_DIR)
    known = {rel: cache.get(rel, stats[rel]) for rel, _ in files}
    hasher = ThreadPoolExecutor(1, thread_name_prefix="hash")
    senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="send")
    try:
        with _bar() as progress:
            unknown = sum(stats[rel].st_size for rel, _ in files if known[rel] is None)
            bars = _Bars(progress, total, hash_ahead=0 if local else unknown)

            def declared(rel: str, path: Path) -> str:
                digest = {"size": stats[rel].st_size, "blake3": known[rel]}
                return _upload(client, repo_path, path, digest, bars, local=local)

            if local:
                # Shared file system first: copied in without hashing (see _upload_copying).
                sent = [senders.submit(declared, rel, p) if known[rel]
                        else senders.submit(_upload_copying, client, repo_path, p, bars)
                        for rel, p in files]  # fmt: skip
            else:
                # A file's digest is declared before its bytes are sent (it decides whether
                # they need sending at all), so a thread hashes ahead while earlier files are
                # sent, and two files are in flight: one checked while the next is sent.
                def send(rel: str, path: Path) -> str:
                    if known[rel] is None:
                        known[rel] = hashed[rel].result()["blake3"]
                    return declared(rel, path)

                hashed = {rel: hasher.submit(_digest, p, bars)
                          for rel, p in files if known[rel] is None}  # fmt: skip
                sent = [senders.submit(send, rel, p) for rel, p in files]
            addresses = {rel: future.result() for (rel, _), future in zip(files, sent, strict=True)}
    finally:
        hasher.shutdown(cancel_futures=True)
        senders.shutdown(cancel_futures=True)
    for rel, _ in files:
        cache.put(rel, stats[rel], addresses[rel])
    cache.save(keep={rel for rel, _ in files})
    body: dict[str, Any] = {
        "files": [{"path": rel, "blake3": addresses[rel]} for rel, _ in files],
        "message": options.get("message") or "",
        "licenses": options.get("licenses") or [],
    }
    if options.get("tag"):
        body["tag"] = options["tag"]
    if options.get("job"):
        body["job"] = options["job"]
    if options.get("lineage"):
        body["lineage"] = [_lineage(item) for item in options["lineage"]]
    if options.get("croissant"):
        body["croissant"] = json.loads(Path(options["croissant"]).read_text())
    version = client.post(f"/api/v1/artifacts/{repo_path}/versions", json=body)
    console.print(
        f"[green]✓[/green] {repo_path}@{version['number']} published and signed: "
        f"{len(files)} files, {total} bytes, commit {version['commit']}"
    )
    for flag in version.get("license_flags", []):
        console.print(f"[yellow]![/yellow] {flag}")
    return f"{repo_path}@{version['number']}"


def push_directory(kind: str, directory: Path, repo: str, **options: Any) -> str:
    """Publish `directory` as the next version of the `kind` repository `repo` (ns/name),
    creating the repository when it does not exist; the version's reference
    (`models/ns/name@4`). Options as `push` takes them: message, lineage, job, licenses,
    level, stamp."""
    return _push(kind, directory, repo, None, **options)


def _stamp_weights(
    client: Client, repo_path: str, files: list[tuple[str, Path]], job: str | None
) -> None:
    """Write into every safetensors file the version it is about to become (and the job
    that made it); the facility refuses the push if another version is published first."""
    latest = client.get(f"/api/v1/artifacts/{repo_path}")["latest"] or 0
    stamp = {metadata.STAMP_REPOSITORY: repo_path, metadata.STAMP_VERSION: str(latest + 1)}
    if job:
        stamp[metadata.STAMP_JOB] = job
    weights = [path for rel, path in files if rel.endswith(".safetensors")]
    for path in weights:
        try:
            metadata.stamp_safetensors(path, stamp)
        except InvalidInput as exc:
            raise CliError(exc.message) from None
    console.print(
        f"stamped {len(weights)} safetensors file(s) as {repo_path}@{latest + 1}"
        + (f", made by job {job}" if job else "")
    )


def _from_job_environment(
    kind: str, job: str | None, lineage: list[str] | None
) -> tuple[str | None, list[str] | None]:
    job_id = os.environ.get("COMMONLAB_JOB_ID", "").strip()
    if job is not None or not job_id:
        return job, lineage
    inputs = os.environ.get("COMMONLAB_INPUTS", "").split()
    if not lineage and inputs:
        relation = "trained_on" if kind == "model" else "derived_from"
        lineage = [f"{relation}:{ref}" for ref in inputs]
    console.print(
        f"inside job {job_id}: the version names it"
        + (f" and {len(lineage)} input(s) as its lineage" if lineage else "")
    )
    return job_id, lineage


def _lineage(item: str) -> dict[str, str]:
    relation, sep, ref = item.partition(":")
    if not sep or "@" not in ref:
        raise CliError(f"--from {item!r}: write relation:kinds/ns/name@version, e.g. "
                       "trained_on:datasets/lab/asr@3")  # fmt: skip
    return {"ref": ref, "relation": relation}


def pull_version(kind: str, ref: str, directory: Path, url: str | None) -> None:
    """Download version `ref` (namespace/name[@rev]) of a `kind` repository into `directory`,
    checking every file against the manifest."""
    login = load_login(url=url)
    client = Client(login)
    repo_id, _, rev = ref.partition("@")
    ns, name = _split(repo_id)
    if ns is None:
        raise CliError(f"{ref!r}: give namespace/name[@version]")
    base = f"/api/v1/artifacts/{kind}s/{ns}/{name}/versions/{rev or 'main'}"
    version = client.get(base)
    signature = client.get(f"{base}/signature")
    directory.mkdir(parents=True, exist_ok=True)
    with _bar() as progress:
        task = None  # the bar appears once the facility starts sending, not before a refusal
        for f in version["files"]:
            target = directory / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            sha = hashlib.sha256()
            # Through the CLI's client: a file refused by the rate limit is asked for again.
            with client.stream("GET", f"{base}/files/{f['path']}", timeout=60) as response:
                if response.status_code >= 400:
                    response.read()
                    detail = response.json().get("detail", response.text)
                    raise CliError(f"{f['path']}: {detail} (HTTP {response.status_code})")
                if task is None:
                    task = progress.add_task("downloading", total=version["total_bytes"])
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes(READ_CHUNK):
                        out.write(chunk)
                        sha.update(chunk)
                        progress.advance(task, len(chunk))
            if sha.hexdigest() != f["sha256"]:
                partial.unlink()
                raise CliError(f"{f['path']}: the bytes received do not match the manifest")
            partial.replace(target)
    local = directory / LOCAL_DIR
    local.mkdir(exist_ok=True)
    (local / "signature.json").write_text(json.dumps(signature, indent=2))
    console.print(
        f"[green]✓[/green] {kind}s/{ns}/{name}@{version['number']} in {directory} "
        f"({len(version['files'])} files); check it any time with "
        f"`commonlab verify {kind}s/{ns}/{name}@{version['number']} {directory}`"
    )


def _kind_group(kind: str) -> typer.Typer:
    group = typer.Typer(help=f"{kind.capitalize()} repositories: push a directory, pull a version.")

    @group.command("push")
    def push(
        directory: Annotated[Path, typer.Argument(help="the directory to publish")],
        repo: Annotated[str, typer.Option("--repo", help="namespace/name (or name: yours)")],
        message: Annotated[str, typer.Option("--message", "-m")] = "",
        tag: Annotated[str | None, typer.Option(help="tag the new version")] = None,
        license_: Annotated[
            list[str] | None, typer.Option("--license", help="SPDX id (repeatable)")
        ] = None,
        lineage: Annotated[
            list[str] | None,
            typer.Option("--from", help="relation:kinds/ns/name@version (repeatable)"),
        ] = None,
        job: Annotated[str | None, typer.Option(help="the job that produced it")] = None,
        stamp: Annotated[
            bool,
            typer.Option(
                help="write the version (and --job) into the safetensors files' metadata "
                "before pushing (rewrites their headers in place)"
            ),
        ] = False,
        croissant: Annotated[
            Path | None, typer.Option(help="JSON file of declared Croissant fields")
        ] = None,
        visibility: Annotated[str | None, typer.Option(help="for a new repository")] = None,
        level: Annotated[int | None, typer.Option(help="for a new repository: 1..4")] = None,
        local: Annotated[
            bool,
            typer.Option(
                help="when this machine shares the facility's file system, copy files into "
                "the store in the kernel instead of over HTTP (checked the same way)"
            ),
        ] = True,
        url: Url = None,
    ) -> None:
        """Upload a directory (resumable, deduplicated) and publish it as a signed version.

        Inside a facility job, the version names that job and, unless --from is given, what
        it read ($COMMONLAB_JOB_ID, $COMMONLAB_INPUTS): a model as trained on them, a
        dataset as derived from them."""
        job, lineage = _from_job_environment(kind, job, lineage)
        _push(
            kind, directory, repo, url, message=message, tag=tag, licenses=license_,
            lineage=lineage, job=job, croissant=croissant, visibility=visibility, level=level,
            local=local, stamp=stamp,
        )  # fmt: skip

    @group.command("pull")
    def pull(
        ref: Annotated[str, typer.Argument(help="namespace/name[@version|tag|commit]")],
        directory: Annotated[Path, typer.Argument(help="where to put the files")],
        url: Url = None,
    ) -> None:
        """Download a version, checking every file's SHA-256 against the manifest."""
        pull_version(kind, ref, directory, url)

    return group


def verify(
    ref: Annotated[str, typer.Argument(help="[models/|datasets/]namespace/name@version")],
    directory: Annotated[Path, typer.Argument(help="the local copy to check")],
    key: Annotated[
        str | None, typer.Option(help="the facility's verifier key (name+id+base64)")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="signature bundle (default: DIR/.commonlab/signature.json)")
    ] = None,
    url: Url = None,
) -> None:
    """Check a local copy against its signed manifest: offline with --bundle and --key."""
    from commonlab.artifacts.signing import SignatureError, open_envelope, verify_directory

    kinds, _, rest = ref.partition("/")
    if kinds not in ("models", "datasets"):
        kinds, rest = "models", ref
    repo_id, _, rev = rest.partition("@")
    saved = bundle or directory / LOCAL_DIR / "signature.json"
    if saved.exists():
        signature = json.loads(saved.read_text())
    else:
        client = Client(load_login(url=url))
        path = f"/api/v1/artifacts/{kinds}/{repo_id}/versions/{rev or 'main'}/signature"
        signature = client.get(path)
    expected = f"{kinds}/{repo_id}"
    try:
        statement = open_envelope(signature["envelope"], key or signature["verifier_key"])
    except (SignatureError, KeyError) as exc:
        raise CliError(f"the signature does not verify: {exc}") from None
    predicate = statement["predicate"]
    if predicate["repository"] != expected or (rev.isdigit() and predicate["version"] != int(rev)):
        raise CliError(
            f"the bundle signs {predicate['repository']}@{predicate['version']}, not {ref}"
        )
    report = verify_directory(statement, directory)
    for problem in report.problems:
        console.print(f"[red]✗[/red] {problem}")
    if not report.ok:
        raise CliError(f"{directory} does not match the signed manifest of {ref}")
    console.print(
        f"[green]✓[/green] {report.checked} files match the manifest of "
        f"{predicate['repository']}@{predicate['version']} signed by "
        f"{(key or signature['verifier_key']).split('+')[0]}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(_kind_group("dataset"), name="dataset")
    app.add_typer(_kind_group("model"), name="model")
    app.command("verify")(verify)
