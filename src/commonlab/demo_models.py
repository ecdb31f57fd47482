"""The demo's data, model and scores for `commonlab up --demo`: the demo PI publishes a small
multimodal corpus (text, images, speech; every record with its source and licence) and a QA
set, trains a tiny GPT-2 on the corpus with the built-in `train` workload and scores it with
`evaluate`, so a newcomer's datasets, models, lineage and leaderboard are not empty.

Everything goes through the same use cases as any publication or job (uploads, signed
versions, admission, the local executor), so the record shows it too. It runs once the
server answers (the jobs speak its API), skips what already exists, and without the ML
packages publishes the data and says how to install them instead of training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import blake3
from sqlalchemy.orm import Session

from commonlab.artifacts import service as artifacts
from commonlab.artifacts.schemas import RepoCreate, UploadCreate, VersionCreate
from commonlab.compute import service as compute
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.demo_media import jsonl, png, shard, speech, tone
from commonlab.errors import CommonlabError, NotFound
from commonlab.identity import service as identity
from commonlab.identity.schemas import TokenCreate
from commonlab.policy.principal import PUBLIC, SYSTEM, Principal, Role, Scope
from commonlab.workloads import service as workloads
from commonlab.workloads.config import Kind
from commonlab.workloads.schemas import WorkloadCreate

__all__ = [
    "CORPUS",
    "EVALS",
    "ML_MISSING",
    "MODEL",
    "QA",
    "DemoData",
    "build_demo_models",
    "demo_pi",
    "ml_installed",
    "publish_demo_data",
    "train_and_evaluate",
]

PI_NAME = "Wanjiru Kamau"
PROJECT = "proj-1"
CORPUS = f"datasets/{PROJECT}/kiswahili-multimodal"
QA = f"datasets/{PROJECT}/kiswahili-qa"
MODEL = f"models/{PROJECT}/tiny-gpt2-kiswahili"
EVALS = f"datasets/{PROJECT}/tiny-gpt2-kiswahili-evals"
TASK = "demo-kiswahili-qa"
TRAIN_JOB = "demo: train a tiny GPT-2"
EVALUATE_JOB = "demo: evaluate the tiny GPT-2"
# The corpus's search index (exact only: embedding it would load a second model at start).
INDEX = f"datasets/{PROJECT}/kiswahili-multimodal-index"
INDEX_JOB = "demo: index the corpus for search"
INDEX_CONFIG: dict[str, Any] = {"vocab_size": 2000, "semantic": False}
LICENSE = "CC0-1.0"
ML_MISSING = (
    "demo: torch and transformers are not installed, so the demo trains and evaluates no "
    "model; `pip install -e .[ml,data]` or `./scripts/up --demo` installs them (then restart)"
)

# Small enough to train in seconds on two shared cores, big enough to learn the phrases.
TRAIN_CONFIG: dict[str, Any] = {
    "task": "causal_lm",
    "seed": 0,
    "sequence_length": 32,
    "batch_size": 8,
    "max_steps": 60,
    "checkpoint_every": 30,
    "log_every": 5,
    "model": {"architecture": "gpt2", "size": {"n_layer": 2, "n_head": 2, "n_embd": 64}},
    "tokenizer": {"vocab_size": 400},
    "optimizer": {"learning_rate": 3e-3, "warmup_steps": 5, "schedule": "cosine"},
}
EVALUATE_CONFIG: dict[str, Any] = {
    "harness": "inspect",
    "task": TASK,
    "scorer": "includes",
    "max_new_tokens": 6,
    "device": "cpu",
}

# Kiswahili words and phrases with their English: written for this demo (CC0).
PHRASES = [
    ("maji", "water"), ("chakula", "food"), ("nyumba", "house"), ("mti", "tree"),
    ("kitabu", "book"), ("shule", "school"), ("mwalimu", "teacher"), ("mtoto", "child"),
    ("rafiki", "friend"), ("jua", "sun"), ("mwezi", "moon"), ("nyota", "star"),
    ("mvua", "rain"), ("bahari", "sea"), ("mlima", "mountain"), ("mto", "river"),
    ("ndege", "bird"), ("samaki", "fish"), ("simba", "lion"), ("tembo", "elephant"),
    ("moja", "one"), ("mbili", "two"), ("tatu", "three"), ("nne", "four"), ("tano", "five"),
    ("nyekundu", "red"), ("kijani", "green"), ("nyeusi", "black"), ("nyeupe", "white"),
    ("asante", "thank you"), ("karibu", "welcome"), ("habari", "news"), ("kesho", "tomorrow"),
    ("leo", "today"), ("jana", "yesterday"), ("usiku", "night"), ("asubuhi", "morning"),
    ("barabara", "road"), ("sokoni", "at the market"), ("daktari", "doctor"),
]  # fmt: skip
SENTENCES = [
    ("Habari ya asubuhi.", "Good morning."),
    ("Jina langu ni Wanjiru.", "My name is Wanjiru."),
    ("Ninapenda kusoma vitabu.", "I like reading books."),
    ("Mvua inanyesha leo.", "It is raining today."),
    ("Tutaonana kesho.", "We will see each other tomorrow."),
    ("Karibu nyumbani kwetu.", "Welcome to our home."),
    ("Watoto wanacheza shuleni.", "The children are playing at school."),
    ("Samaki wanaogelea mtoni.", "The fish are swimming in the river."),
    ("Jua linawaka sana.", "The sun is shining brightly."),
    ("Asante kwa chakula.", "Thank you for the food."),
    ("Mwalimu anafundisha darasani.", "The teacher is teaching in class."),
    ("Ndege wanaimba asubuhi.", "The birds sing in the morning."),
    ("Tembo ni mnyama mkubwa.", "The elephant is a big animal."),
    ("Tunakwenda sokoni leo.", "We are going to the market today."),
    ("Daktari yuko hospitalini.", "The doctor is at the hospital."),
    ("Usiku mwema.", "Good night."),
    ("Ninakunywa maji baridi.", "I am drinking cold water."),
    ("Mlima Kenya ni mrefu.", "Mount Kenya is tall."),
    ("Bahari ni kubwa na nzuri.", "The sea is big and beautiful."),
    ("Rafiki yangu anaitwa Baraka.", "My friend is called Baraka."),
]
# Every fourth word is asked back: the corpus holds the answer, so the score shows what the
# tiny model memorised, not that it translates.
QA_PAIRS = PHRASES[::4]
# (caption in Kiswahili and English, the stripes' colours top to bottom)
IMAGES = [
    ("Mistari ya rangi nyeusi, nyekundu na kijani. Stripes of black, red and green.",
     [(0, 0, 0), (187, 0, 0), (0, 102, 0)]),
    ("Mistari ya rangi ya bluu na nyeupe. Stripes of blue and white.",
     [(0, 56, 168), (255, 255, 255), (0, 56, 168)]),
    ("Mistari ya rangi ya njano na kijani. Stripes of yellow and green.",
     [(252, 209, 22), (0, 122, 61), (252, 209, 22)]),
]  # fmt: skip
SPOKEN = [text for text, _ in SENTENCES[:3]]
SOURCE_TEXT = "written for the commonlab demo"
SOURCE_IMAGE = "drawn for the commonlab demo (generated PNG)"
SOURCE_SPEECH = "synthesised for the commonlab demo with espeak-ng (Swahili voice)"
SOURCE_TONE = "synthesised for the commonlab demo (a pure tone)"


@dataclass(frozen=True)
class DemoData:
    """The published versions the demo's workloads read, pinned (`datasets/ns/name@N`)."""

    corpus: str
    qa: str


Say = Callable[[str], None]


def search_installed() -> bool:
    """Whether this Python can build a search index (the `search` extra)."""
    return importlib.util.find_spec("pydivsufsort") is not None


def ml_installed() -> bool:
    """Whether this Python can run the training and evaluation workloads (the jobs run
    under it too)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))


# Making the data ---------------------------------------------------------------------------------


def text_records() -> list[dict[str, str]]:
    """About sixty short lines, each with where it came from and its licence."""
    words = [f"Kiswahili: {sw}. English: {en}." for sw, en in PHRASES]
    sentences = [f"{sw} ({en})" for sw, en in SENTENCES]
    return [{"text": line, "source": SOURCE_TEXT, "license": LICENSE} for line in words + sentences]


def qa_records() -> list[dict[str, str]]:
    return [
        {"input": f"Kiswahili: {sw}. English:", "target": en, "source": SOURCE_TEXT,
         "license": LICENSE}
        for sw, en in QA_PAIRS
    ]  # fmt: skip


def media_samples() -> list[dict[str, Any]]:
    """WebDataset samples: images with bilingual captions, and speech with its transcript
    (a tone, said to be one, where espeak-ng is missing); each with a `.json` of its source
    and licence."""
    samples: list[dict[str, Any]] = []
    for i, (caption, stripes) in enumerate(IMAGES):
        samples.append({
            "__key__": f"image-{i:03d}",
            "png": png(stripes),
            "txt": caption,
            "json": {"source": SOURCE_IMAGE, "license": LICENSE},
        })  # fmt: skip
    for i, text in enumerate(SPOKEN):
        spoken = speech(text)
        if spoken is None:
            hz = 330.0 + 110 * i
            audio, transcript, source = tone(hz=hz), f"A {hz:.0f} Hz tone.", SOURCE_TONE
        else:
            audio, transcript, source = spoken, text, SOURCE_SPEECH
        samples.append({
            "__key__": f"speech-{i:03d}",
            "wav": audio,
            "txt": transcript,
            "json": {"source": source, "license": LICENSE},
        })  # fmt: skip
    return samples


CORPUS_CROISSANT = {
    "name": "Kiswahili multimodal demo corpus",
    "description": (
        "Short Kiswahili words and sentences with their English, striped images with "
        "bilingual captions, and Kiswahili speech with transcripts: the demo facility's "
        "first dataset. Every record states its source and licence."
    ),
    "keywords": ["Kiswahili", "Swahili", "demo", "multimodal"],
    "rai:dataCollection": "Written and synthesised for the commonlab demo; no personal data.",
    "rai:dataUseCases": "Trying the facility: training and evaluating a tiny language model.",
}
QA_CROISSANT = {
    "name": "Kiswahili QA demo set",
    "description": (
        "Kiswahili words to translate into English (input/target pairs), drawn from the demo "
        "corpus: a score on it shows what a model memorised of that corpus."
    ),
    "rai:dataUseCases": "Evaluating the demo's tiny model with Inspect.",
}


# Publishing --------------------------------------------------------------------------------------


def _latest(db: Session, actor: Principal, path: str) -> int | None:
    """The newest version number of the repository `path` (kinds/ns/name), None when it does
    not exist or has no version yet."""
    db.expire_all()  # a job publishes through another session: read what it wrote
    try:
        newest = artifacts.get_repo(db, actor, _repo(path)).newest
    except NotFound:
        return None
    return newest.number if newest is not None else None


def _repo(path: str) -> artifacts.RepoRef:
    kinds, namespace, name = path.split("/")
    return artifacts.RepoRef(artifacts.RepoKind(kinds.removesuffix("s")), namespace, name)


def _publish(
    db: Session,
    registry: artifacts.Registry,
    pi: Principal,
    path: str,
    files: dict[str, bytes],
    *,
    description: str,
    message: str,
    croissant: dict[str, Any],
) -> str:
    """Make the repository (if new) and publish `files` as its first version; the pinned
    reference. One already published is kept as it is."""
    number = _latest(db, pi, path)
    if number is not None:
        return f"{path}@{number}"
    repo = _repo(path)
    try:
        artifacts.create_repo(
            db,
            pi,
            RepoCreate(
                kind=repo.kind, name=repo.name, project=repo.namespace, description=description
            ),
        )
    except CommonlabError as exc:
        if "already exists" not in exc.message:  # made by a start that stopped mid-way
            raise
    entries = []
    for name, data in files.items():
        digest = blake3.blake3(data).hexdigest()
        started = artifacts.start_upload(
            db,
            pi,
            registry,
            repo,
            UploadCreate(size=len(data), sha256=hashlib.sha256(data).hexdigest(), blake3=digest),
        )
        if started.id is not None:  # None: the repository holds these bytes already
            artifacts.put_chunk(db, pi, registry, started.id, 0, [data])
        entries.append({"path": name, "blake3": digest})
    version = artifacts.commit_version(
        db,
        pi,
        registry,
        repo,
        VersionCreate.model_validate(
            {
                "files": entries,
                "message": message,
                "licenses": [LICENSE],
                "croissant": croissant,
                "sources": [{"name": "commonlab demo"}],
            }
        ),
    )
    return f"{path}@{version.number}"


def publish_demo_data(db: Session, registry: artifacts.Registry, pi: Principal) -> DemoData:
    """As the demo PI: the multimodal corpus (data/text.jsonl and a WebDataset shard of
    images and speech) and the QA set, each published once, with Croissant descriptions."""
    corpus = _publish(
        db,
        registry,
        pi,
        CORPUS,
        {
            "data/text.jsonl": jsonl(text_records()),
            "data/media-000000.tar": shard(media_samples()),
        },
        description="Kiswahili text, images and speech for the demo, every record licensed.",
        message="Kiswahili words and sentences, captioned images and speech (demo)",
        croissant=CORPUS_CROISSANT,
    )
    qa = _publish(
        db,
        registry,
        pi,
        QA,
        {"data/qa.jsonl": jsonl(qa_records())},
        description="Kiswahili words to translate: the demo's evaluation task.",
        message="Kiswahili to English QA pairs (demo)",
        croissant=QA_CROISSANT,
    )
    return DemoData(corpus=corpus, qa=qa)


# Training and evaluating -------------------------------------------------------------------------


class _Stopped(Exception):
    """The server is shutting down: the demo stops waiting."""


def _run_workload(
    db: Session,
    pi: Principal,
    kind: Kind,
    request: WorkloadCreate,
    *,
    executor: str,
    say: Say,
    announce: Callable[[int], str],
    should_stop: Callable[[], bool],
    poll_seconds: float,
) -> bool:
    """Admit the workload (or find the one a previous start admitted, still unfinished) and
    wait for its job; whether it succeeded (a failure is said, with how to read its log)."""
    job_id = _unfinished_job(db, pi, request.name or "")
    if job_id is None:
        job, _ = workloads.admit_workload(db, pi, kind, request, executor=executor)
        job_id = job.id
    say(announce(job_id))
    while True:
        db.expire_all()  # the job controller moves the job in sessions of its own
        job = compute.get_job(db, pi, job_id)
        if JobState(job.state) in TERMINAL:
            break
        if should_stop():
            raise _Stopped
        time.sleep(poll_seconds)
    if job.state == JobState.SUCCEEDED:
        return True
    why = f": {job.reason}" if job.reason else ""
    say(
        f"demo: the {kind} job {job_id} ended {job.state}{why}; "
        f"see `commonlab job logs {job_id} --stderr`"
    )
    return False


def _unfinished_job(db: Session, pi: Principal, name: str) -> int | None:
    for job in compute.jobs_of_project(db, pi, PROJECT):
        if job.name == name and JobState(job.state) not in TERMINAL:
            return job.id
    return None


def train_and_evaluate(
    db: Session,
    registry: artifacts.Registry,
    pi: Principal,
    data: DemoData,
    *,
    executor: str,
    say: Say,
    should_stop: Callable[[], bool] = lambda: False,
    poll_seconds: float = 1.0,
) -> dict[str, float] | None:
    """Train the tiny GPT-2 on the corpus and evaluate it on the QA set, each as a job on
    `executor`, skipping what is published already; the evaluation's metrics, or None when
    a job failed (said through `say`)."""
    waiting = {"executor": executor, "say": say, "should_stop": should_stop,
               "poll_seconds": poll_seconds}  # fmt: skip
    model = _latest(db, pi, MODEL)
    if model is None:
        trained = _run_workload(
            db,
            pi,
            Kind.TRAIN,
            WorkloadCreate(
                project=PROJECT,
                config=TRAIN_CONFIG,
                dataset=data.corpus,
                out=MODEL,
                name=TRAIN_JOB,
                time_limit_minutes=20,
            ),
            announce=lambda job: f"demo: training a tiny GPT-2 on {data.corpus} as job {job}",
            **waiting,
        )
        model = _latest(db, pi, MODEL)
        if not trained or model is None:
            return None
        say(f"demo: model published: {MODEL}@{model} (lineage: trained on {data.corpus})")
    model_ref = f"{MODEL}@{model}"
    if _latest(db, pi, EVALS) is None:
        evaluated = _run_workload(
            db,
            pi,
            Kind.EVALUATE,
            WorkloadCreate(
                project=PROJECT,
                config=EVALUATE_CONFIG,
                dataset=data.qa,
                model=model_ref,
                out=EVALS,
                name=EVALUATE_JOB,
                time_limit_minutes=20,
            ),
            announce=lambda job: f"demo: evaluating {model_ref} on {data.qa} as job {job}",
            **waiting,
        )
        if not evaluated or _latest(db, pi, EVALS) is None:
            return None
    metrics = _evaluation_metrics(db, registry, pi)
    scores = ", ".join(f"{name} {value:.3g}" for name, value in metrics.items())
    say(f"demo: evaluated {model_ref} on {TASK}: {scores or 'no metrics'}")
    if _latest(db, pi, INDEX) is None and search_installed():
        indexed = _run_workload(
            db,
            pi,
            Kind.INDEX,
            WorkloadCreate(
                project=PROJECT,
                config=INDEX_CONFIG,
                dataset=data.corpus,
                out=INDEX,
                name=INDEX_JOB,
                time_limit_minutes=20,
            ),
            announce=lambda job: f"demo: indexing {data.corpus} for search as job {job}",
            **waiting,
        )
        if indexed:
            say(f"demo: search {model_ref}'s training data at /search or with `commonlab search`")
    return metrics


def _evaluation_metrics(
    db: Session, registry: artifacts.Registry, pi: Principal
) -> dict[str, float]:
    """The metrics in the published evaluation's results.json."""
    ref = artifacts.parse_ref(f"{EVALS}@{_latest(db, pi, EVALS)}")
    _, _, local = artifacts.open_file(db, pi, registry, ref, "results.json")
    return dict(json.loads(local.read_text()).get("metrics", {}))


# The whole stage, as `commonlab up --demo` runs it ------------------------------------------------


def demo_pi(db: Session, token: str | None) -> Principal | None:
    """The demo PI acting: through the token the demo seeded for her, or (on a later start)
    a new one issued to her on the record; None when this facility has no demo PI."""
    if token is None:
        with db.begin():
            person_id = next(
                (p.id for p in identity.people_with_role(db, Role.PI) if p.name == PI_NAME), None
            )
        if person_id is None:
            return None
        _, token = identity.issue_token(
            db,
            SYSTEM,
            person_id,
            TokenCreate(name="demo models", scopes=[Scope.READ, Scope.WRITE], expires_in_days=1),
        )
    return identity.authenticate(db, token)


def build_demo_models(
    db: Session,
    registry: artifacts.Registry,
    *,
    pi_token: str | None,
    executor: str,
    say: Say,
    ml: bool | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    poll_seconds: float = 1.0,
) -> None:
    """Publish the demo's data, then train and evaluate its model (`ml`: whether the ML
    packages are installed; found out when None). Whatever is published already is kept;
    nothing is done, and no token issued, when all of it is. Never raises: the facility
    serves on whatever happens here, and the reason is said."""
    ml = ml_installed() if ml is None else ml
    try:
        paths = (CORPUS, QA, MODEL, EVALS) + ((INDEX,) if search_installed() else ())
        published = [_latest(db, PUBLIC, path) is not None for path in paths]
        if all(published[:2]) and (all(published) or not ml):
            if not ml and not all(published):
                say(ML_MISSING)
            return
        pi = demo_pi(db, pi_token)
        if pi is None:
            return  # not a facility the demo seeded
        data = publish_demo_data(db, registry, pi)
        if not all(published[:2]):
            say(f"demo: published {data.corpus} (text, images, speech) and {data.qa}")
        if not ml:
            say(ML_MISSING)
            return
        train_and_evaluate(
            db,
            registry,
            pi,
            data,
            executor=executor,
            say=say,
            should_stop=should_stop,
            poll_seconds=poll_seconds,
        )
    except _Stopped:
        return
    except Exception as exc:  # the server keeps serving; the reason is said, not lost
        message = exc.message if isinstance(exc, CommonlabError) else repr(exc)
        say(f"demo: could not finish the demo's data and model: {message}")
