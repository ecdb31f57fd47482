"""`commonlab index`, `search`, `trace`, `membership` and `optout`: build a search index of a
dataset version as a job, find a passage in a model's training data, trace a model's output
to it, ask whether content was in it, and opt content out.

Searching happens on the facility (the index is an artifact it holds open); a file given to
`membership`, `optout file` or `optout check` is hashed here and only its digest is sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from commonlab.cli import compute_cmd
from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json, print_table
from commonlab.cli.workload_cmd import pin
from commonlab.datasearch.content import text_sha256_of_file
from commonlab.errors import InvalidInput

__all__ = ["register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's answer")]
Model = Annotated[
    str | None, typer.Option("--model", "-m", help="models/ns/name@N: search its training data")
]
Dataset = Annotated[str | None, typer.Option("--dataset", "-d", help="datasets/ns/name@N")]
# A file hashed here, read in pieces: a book or a shard, not loaded whole.
_CHUNK = 1 << 20


def _client(url: str | None) -> Client:
    return Client(load_login(url=url))


def _where(client: Client, model: str | None, dataset: str | None) -> dict[str, str]:
    if (model is None) == (dataset is None):
        raise CliError("name a model (--model models/ns/name@N) or a dataset (--dataset …)")
    if model is not None:
        return {"model": pin(client, "models", model) or ""}
    return {"dataset": pin(client, "datasets", dataset) or ""}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _readable(path: Path) -> Path:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    return path


# index build ------------------------------------------------------------------------------------

index_app = typer.Typer(help="Search indexes of dataset versions, built as jobs.")


@index_app.command("build")
def index_build(
    target: Annotated[
        str, typer.Argument(help="datasets/ns/name[@N], or models/ns/name@N: its training data")
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="the project to charge")],
    out: Annotated[
        str | None, typer.Option(help="the index's repository (name: the project's); NAME-index")
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="tokens the index's tokenizer learns")] = 32_000,
    semantic: Annotated[
        bool, typer.Option("--semantic/--exact-only", help="also index by meaning (embeddings)")
    ] = True,
    memory_gb: Annotated[int, typer.Option("--memory-gb", help="memory in GB")] = 4,
    minutes: Annotated[int, typer.Option("--time", "-t", help="time limit in minutes")] = 60,
    level: Annotated[
        str | None, typer.Option(help="containment level (default: the dataset's)")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="follow it to the end")] = False,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Build an exact-match (and, unless --exact-only, semantic) search index of a dataset
    version, as a job charged to the project; it publishes the index as a dataset version
    linked to what it indexes. Given a model, one job for each dataset of its training data
    that has no index yet. Records opted out are left out by the facility."""
    client = _client(url)
    if target.startswith("models/"):
        pinned_model = pin(client, "models", target)
        statuses = client.get("/api/v1/indexes", params={"model": pinned_model})
        datasets = [s["dataset"] for s in statuses if s["status"] == "no index"]
        for s in statuses:
            if s["status"] != "no index":
                where = s["index"] or f"(job {s['job']})"
                console.print(f"{s['dataset']}: {s['status']} {where}")
        if not datasets:
            console.print(f"every dataset of {target}'s training data you may read is indexed")
            return
    else:
        datasets = [pin(client, "datasets", target) or ""]
    config = {"vocab_size": vocab_size, "semantic": semantic}
    for pinned in datasets:
        repo = pinned.partition("@")[0]
        name = out or f"{repo.rsplit('/', 1)[1]}-index"
        where = name if name.startswith("datasets/") else f"datasets/{project}/{name}"
        level_ = level or f"CL-{client.get(f'/api/v1/artifacts/{repo}')['level']}"
        _admit(
            client,
            "index",
            project,
            pinned,
            where,
            config,
            memory_gb=memory_gb,
            minutes=minutes,
            level=level_,
            watch=watch,
            as_json=as_json,
        )


@index_app.command("status")
def index_status(
    model: Model = None, dataset: Dataset = None, url: Url = None, as_json: AsJson = False
) -> None:
    """Which dataset versions a search would look in, and their indexes."""
    client = _client(url)
    statuses = client.get("/api/v1/indexes", params=_where(client, model, dataset))
    if as_json:
        print_json(statuses)
        return
    rows = [
        {
            "dataset": s["dataset"],
            "status": s["status"],
            "index": s["index"] or (f"job {s['job']}" if s["job"] else ""),
        }
        for s in statuses
    ]
    print_table(rows, ["dataset", "status", "index"], title="Indexes")


def _admit(
    client: Client,
    kind: str,
    project: str,
    dataset: str,
    out: str,
    config: dict[str, Any],
    *,
    memory_gb: int,
    minutes: int,
    level: str,
    watch: bool,
    as_json: bool,
) -> None:
    admitted = client.post(
        f"/api/v1/workloads/{kind}",
        json={
            "project": project,
            "config": config,
            "dataset": dataset,
            "out": out,
            "memory_gb": memory_gb,
            "time_limit_minutes": minutes,
            "level": level,
        },
    )
    if as_json:
        print_json(admitted)
        return
    job_id = admitted["job_id"]
    what = "an index of" if kind == "index" else "a version without the opted-out records of"
    console.print(f"job {job_id} builds {what} {dataset}; it publishes to {admitted['out']}.")
    if watch:
        raise typer.Exit(compute_cmd.follow_job(client, job_id))
    console.print(f"Follow it with `commonlab job watch {job_id}`.")


# search, trace, membership ---------------------------------------------------------------------


def search(
    query: Annotated[str, typer.Argument(help="the passage to find, verbatim")],
    model: Model = None,
    dataset: Dataset = None,
    limit: Annotated[int, typer.Option(help="occurrences shown (1 to 100)")] = 10,
    context: Annotated[int, typer.Option(help="tokens shown each side (0 to 200)")] = 24,
    meaning: Annotated[
        bool, typer.Option("--meaning", help="records near in meaning, not verbatim")
    ] = False,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Find a passage in a dataset version's records, or in a model's training data: how
    often it occurs, and each occurrence in context with its record, source and licence.
    With --meaning, the records nearest in meaning instead (semantic search)."""
    client = _client(url)
    if meaning:
        _search_by_meaning(client, query, _where(client, model, dataset), limit, as_json)
        return
    params = {**_where(client, model, dataset), "q": query, "limit": limit, "context": context}
    found = client.get("/api/v1/search", params=params)
    if as_json:
        print_json(found)
        return
    for searched in found["datasets"]:
        note = {
            "searched": f"{searched['count']:,} occurrence(s) in {searched['index']}",
            "building": f"its index is being built by job {searched['job']}",
            "no index": "not indexed: `commonlab index build` it",
        }[searched["status"]]
        console.print(f"{searched['dataset']}: {note}")
    opted = (
        f" ({found['opted_out']:,} more in opted-out records, not shown)"
        if found["opted_out"]
        else ""
    )
    console.print(f"[bold]{found['count']:,}[/bold] occurrence(s){opted}")
    base = client.login.url
    for hit in found["hits"]:
        console.print(
            f"\n[bold]{hit['dataset']}[/bold] {escape(hit['file'])} record {hit['record']} — "
            f"source {escape(hit['source'] or 'not stated')}, licence "
            f"{escape(hit['license'] or 'not stated')}"
        )
        console.print(
            f"  …{escape(hit['before'])}[reverse]{escape(hit['match'])}[/reverse]"
            f"{escape(hit['after'])}…"
        )
        console.print(f"  {base}{hit['url']}", style="dim", soft_wrap=True)


def _search_by_meaning(
    client: Client, query: str, where: dict[str, str], limit: int, as_json: bool
) -> None:
    found = client.get("/api/v1/search/semantic", params={**where, "q": query, "limit": limit})
    if as_json:
        print_json(found)
        return
    for searched in found["datasets"]:
        if searched["status"] != "searched":
            console.print(f"{searched['dataset']}: {searched['status']}")
    base = client.login.url
    for hit in found["hits"]:
        console.print(
            f"\n[bold]{hit['score']:.3f}[/bold] {hit['dataset']} {escape(hit['file'])} record "
            f"{hit['record']} — source {escape(hit['source'] or 'not stated')}, licence "
            f"{escape(hit['license'] or 'not stated')}"
        )
        console.print(f"  {escape(hit['text'][:200])}")
        console.print(f"  {base}{hit['url']}", style="dim", soft_wrap=True)
    if not found["hits"]:
        console.print("no record found")


def trace(
    model: Annotated[str, typer.Option("--model", "-m", help="models/ns/name@N")],
    text: Annotated[str | None, typer.Argument(help="the model's output")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="read the output here")] = None,
    min_tokens: Annotated[int, typer.Option(help="shortest span reported, in tokens")] = 6,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Find the spans of a model's output that occur verbatim in its training data, the
    rarest first, each with records that hold it."""
    if (text is None) == (file is None):
        raise CliError("give the output as an argument or with --file, one of them")
    if file is not None:
        text = _readable(file).read_text(encoding="utf-8", errors="replace")
    client = _client(url)
    pinned = pin(client, "models", model)
    found = client.post(
        "/api/v1/trace", json={"model": pinned, "text": text, "min_tokens": min_tokens}
    )
    if as_json:
        print_json(found)
        return
    spans = found["spans"]
    if not spans:
        console.print(
            f"no span of {min_tokens}+ tokens occurs verbatim in {pinned}'s training data"
        )
        return
    marked, at = [], 0
    for span in sorted(spans, key=lambda s: s["start"]):
        if span["start"] < at:
            continue
        marked += [
            escape((text or "")[at : span["start"]]),
            f"[reverse]{escape(span['text'])}[/reverse]",
        ]
        at = span["end"]
    console.print("".join(marked) + escape((text or "")[at:]))
    rows = [
        {
            "span": s["text"][:60],
            "count": s["count"],
            "rarity": s["log10_probability"],
            "records": ", ".join(f"{r['dataset']} {r['file']}#{r['record']}" for r in s["records"]),
        }
        for s in spans
    ]
    print_table(rows, ["span", "count", "rarity", "records"], title="Verbatim spans, rarest first")


def membership(
    model: Model = None,
    dataset: Dataset = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="a file: hashed here")] = None,
    sha256: Annotated[str | None, typer.Option(help="a SHA-256 digest")] = None,
    passage: Annotated[str | None, typer.Option(help="a passage of text")] = None,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Was this file, record or passage in a dataset version or a model's training data?
    A file is checked by its SHA-256 and, for text, by the digest of its text as a record."""
    if sum(x is not None for x in (file, sha256, passage)) != 1:
        raise CliError("give one of --file, --sha256 or --passage")
    client = _client(url)
    where = _where(client, model, dataset)
    asks = [{"passage": passage}] if passage is not None else []
    if sha256 is not None:
        asks.append({"sha256": sha256})
    if file is not None:
        asks.append({"sha256": _file_sha256(_readable(file))})
        # Not text: only the file's own digest can match.
        with contextlib.suppress(InvalidInput, UnicodeDecodeError):
            asks.append({"sha256": text_sha256_of_file(file)})
    answers = [client.get("/api/v1/membership", params={**where, **ask}) for ask in asks]
    if as_json:
        print_json(answers if len(answers) > 1 else answers[0])
        return
    evidence = [e for a in answers for e in a["evidence"]]
    subject = answers[0]["subject"]
    if not evidence:
        unsearched = [
            d["dataset"] for a in answers for d in a["datasets"] if d["status"] != "searched"
        ]
        console.print(f"[bold]no[/bold]: not found in {subject}'s data you may read")
        if unsearched and passage is not None:
            console.print(f"not searched (no index): {', '.join(sorted(set(unsearched)))}")
        return
    console.print(f"[bold]yes[/bold]: found in {subject}'s data")
    for e in evidence:
        where_ = f"record {e['record']}" if e["record"] is not None else "the whole file"
        console.print(f"  {e['dataset']} {escape(e['file'])}, {where_} (by {e['how']})")


# optout ---------------------------------------------------------------------------------------

optout_app = typer.Typer(help="Opt content out of training data, and follow opt-outs.")


@optout_app.command("file")
def optout_file(
    passage: Annotated[str | None, typer.Option(help="an exact passage")] = None,
    sha256: Annotated[str | None, typer.Option(help="a record's or file's SHA-256")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="a text file: its digest")
    ] = None,
    url_pattern: Annotated[
        str | None, typer.Option("--source", help="a source URL pattern, * matching anything")
    ] = None,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Ask that content be left out of training data from now on. The facility matches it
    against every index at once; the record holds the request with you and what it names
    only as commitments. Later versions of the data, and indexes, leave the records out."""
    given = {"passage": passage, "sha256": sha256, "file": file, "url": url_pattern}
    named = {k: v for k, v in given.items() if v is not None}
    if len(named) != 1:
        raise CliError("give one of --passage, --sha256, --file or --source")
    [(kind, value)] = named.items()
    if kind == "file":
        kind, value = "sha256", text_sha256_of_file(_readable(Path(value)))
    filed = _client(url).post("/api/v1/optouts", json={"kind": kind, "value": str(value)})
    if as_json:
        print_json(filed)
        return
    _show_optout(filed)


@optout_app.command("show")
def optout_show(
    optout_id: Annotated[int, typer.Argument(help="the opt-out's number", min=1)],
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """An opt-out: what it matched, and the models trained on that data."""
    found = _client(url).get(f"/api/v1/optouts/{optout_id}")
    if as_json:
        print_json(found)
        return
    _show_optout(found)


def _show_optout(optout: dict[str, Any]) -> None:
    records = optout["records"]
    console.print(
        f"opt-out {optout['id']} ({optout['kind']}), {optout['state']}: "
        + (
            f"matched {records:,} record(s)"
            if records
            else "matched no record you may read (it is recorded all the same)"
        )
    )
    for match in optout["matches"]:
        console.print(f"  {match['dataset']} {escape(match['file'])} record {match['record']}")
    if records > len(optout["matches"]):
        console.print(f"  and {records - len(optout['matches']):,} more")
    for model in optout["models"]:
        when = "after the opt-out" if model["after_optout"] else "before the opt-out"
        console.print(f"  trained on it {when}: {model['model']} (from {model['dataset']})")


@optout_app.command("list")
def optout_list(url: Url = None, as_json: AsJson = False) -> None:
    """Opt-outs, newest first."""
    page = _client(url).get("/api/v1/optouts")
    if as_json:
        print_json(page)
        return
    rows = [
        {
            "id": o["id"],
            "kind": o["kind"],
            "state": o["state"],
            "records": o["records"],
            "models": len(o["models"]),
            "filed": o["created_at"][:19],
        }
        for o in page["items"]
    ]
    print_table(rows, ["id", "kind", "state", "records", "models", "filed"], title="Opt-outs")


@optout_app.command("decide")
def optout_decide(
    optout_id: Annotated[int, typer.Argument(help="the opt-out's number", min=1)],
    reject: Annotated[bool, typer.Option("--reject/--uphold", help="reject it, or uphold it")],
    reason: Annotated[str, typer.Option(help="why (on the record)")],
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Uphold or reject an opt-out (operators); recorded with the reason."""
    decided = _client(url).post(
        f"/api/v1/optouts/{optout_id}/decision",
        json={"decision": "rejected" if reject else "upheld", "reason": reason},
    )
    if as_json:
        print_json(decided)
        return
    _show_optout(decided)


@optout_app.command("apply")
def optout_apply(
    dataset: Annotated[str, typer.Argument(help="datasets/ns/name[@N]: the version to clean")],
    project: Annotated[str, typer.Option("--project", "-p", help="the project to charge")],
    memory_gb: Annotated[int, typer.Option("--memory-gb", help="memory in GB")] = 4,
    minutes: Annotated[int, typer.Option("--time", "-t", help="time limit in minutes")] = 60,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="follow it to the end")] = False,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Publish the next version of a dataset without the records opt-outs name, as a job
    (the version named stays as published: versions never change)."""
    client = _client(url)
    pinned = pin(client, "datasets", dataset) or ""
    repo = pinned.partition("@")[0]
    level = f"CL-{client.get(f'/api/v1/artifacts/{repo}')['level']}"
    _admit(
        client,
        "exclude",
        project,
        pinned,
        repo,
        {},
        memory_gb=memory_gb,
        minutes=minutes,
        level=level,
        watch=watch,
        as_json=as_json,
    )


@optout_app.command("hash")
def optout_hash(
    file: Annotated[Path, typer.Argument(help="a text file (a passage, a chapter)")],
) -> None:
    """The content digest of a text file as the facility computes a record's: what an
    opt-out or a membership question by digest names."""
    try:
        print(text_sha256_of_file(_readable(file)))
    except (InvalidInput, UnicodeDecodeError) as exc:
        raise CliError(f"{file}: {getattr(exc, 'message', 'not UTF-8 text')}") from None


@optout_app.command("check")
def optout_check(
    file: Annotated[Path, typer.Argument(help="a file to check")],
    filter_file: Annotated[
        Path | None, typer.Option("--filter", help="a saved filter (else fetched)")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="the facility's verifier key (else fetched)")
    ] = None,
    url: Url = None,
) -> None:
    """Whether a file (or its text) is opted out, checked against the facility's signed
    filter, offline when --filter and --key are given. A filter never misses what it holds;
    it may say "maybe" of what it does not, at the rate it states."""
    # The filter needs numpy (the `sim` extra): loaded by the one command that checks it.
    from commonlab.datasearch.optout_filter import verify_filter

    if filter_file is not None and key is not None:
        envelope = json.loads(_readable(filter_file).read_text())
    else:
        client = _client(url)
        envelope = client.get("/api/v1/optouts/filter")
        key = key or client.get("/api/v1/record/key")["verifier_key"]
    try:
        signed = verify_filter(envelope, key or "")
    except InvalidInput as exc:
        raise CliError(f"the filter does not verify: {exc.message}") from None
    digests = [_file_sha256(_readable(file))]
    with contextlib.suppress(InvalidInput, UnicodeDecodeError):
        digests.append(text_sha256_of_file(file))
    hit = any(signed.filter.might_contain(d) for d in digests)
    issued = signed.issued_at
    if hit:
        console.print(
            f"[bold]opted out[/bold] (filter of {issued}, false positives at "
            f"{signed.false_positive_rate:.0e}: confirm with the facility)"
        )
    else:
        console.print(f"not opted out as of {issued}")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search)
    app.command("trace")(trace)
    app.command("membership")(membership)
    app.add_typer(optout_app, name="optout")
