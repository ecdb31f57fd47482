"""Training-data search input and output shapes: a search's hits in context, a trace's
verbatim spans, a membership answer with its evidence, and opt-outs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from commonlab.schemas import Input

__all__ = [
    "MAX_PASSAGE_CHARS",
    "DatasetSearched",
    "EvidenceOut",
    "HitOut",
    "MembershipOut",
    "ModelTrainedOut",
    "OptOutCreate",
    "OptOutDecision",
    "OptOutKind",
    "OptOutMatchOut",
    "OptOutOut",
    "SearchOut",
    "SemanticHitOut",
    "SemanticOut",
    "SpanOut",
    "SpanRecordOut",
    "TraceOut",
    "TraceRequest",
]

# A query or an opt-out's passage: enough for a paragraph, bounded so a query's cost is.
MAX_PASSAGE_CHARS = 2000
# A model's output to trace: a few pages.
MAX_TRACE_CHARS = 20_000


class TraceRequest(Input):
    """A model's output to trace to its training data."""

    model: Annotated[
        str, StringConstraints(max_length=300, pattern=r"^models/[^@\s/]+/[^@\s/]+@[0-9]{1,9}$")
    ]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TRACE_CHARS)]
    min_tokens: Annotated[int, Field(ge=1, le=64)] = 6
    max_spans: Annotated[int, Field(ge=1, le=100)] = 20


class DatasetSearched(BaseModel):
    """One dataset version a search looked in (or could not): `index` is the index version
    searched; `status` is `searched`, `building` (an index job runs: `job`) or `no index`."""

    dataset: str
    index: str | None
    status: str
    job: int | None = None
    count: int = 0


class HitOut(BaseModel):
    """One occurrence: the record holding it (as the records API numbers it), where it came
    from and under which licence, and the text around it."""

    dataset: str
    file: str
    record: int
    source: str | None
    license: str | None
    before: str
    match: str
    after: str
    url: str


class SearchOut(BaseModel):
    query: str
    # Occurrences in the records the asker may see, less those opted out.
    count: int
    # Occurrences dropped because an opt-out names their record.
    opted_out: int
    datasets: list[DatasetSearched]
    hits: list[HitOut]


class SemanticHitOut(BaseModel):
    """A record near the query in meaning: its cosine similarity (1: the same direction) and
    the start of its text."""

    dataset: str
    file: str
    record: int
    source: str | None
    license: str | None
    score: float
    text: str
    url: str


class SemanticOut(BaseModel):
    query: str
    # Records dropped because an opt-out names them.
    opted_out: int
    datasets: list[DatasetSearched]
    hits: list[SemanticHitOut]


class SpanRecordOut(BaseModel):
    dataset: str
    file: str
    record: int
    source: str | None
    license: str | None
    url: str


class SpanOut(BaseModel):
    """A span of the traced text found verbatim in the training data: its characters
    [start, end) of the text, how often it occurs, how rare its tokens are (log10 of the
    span's unigram probability: lower is rarer), and records holding it."""

    start: int
    end: int
    text: str
    count: int
    log10_probability: float
    records: list[SpanRecordOut]


class TraceOut(BaseModel):
    model: str
    spans: list[SpanOut]
    datasets: list[DatasetSearched]


class EvidenceOut(BaseModel):
    """Why the answer is yes: the dataset version, file and (for a record or passage) the
    record; `how` is `file` (the file's SHA-256), `record` (a record's content digest) or
    `passage` (the passage occurs in it)."""

    dataset: str
    file: str
    record: int | None
    how: str
    url: str


class MembershipOut(BaseModel):
    """Whether the content was in the training data the asker may see, with the evidence.
    `unsearched` lists training datasets the passage could not be looked for in (no index)."""

    subject: str
    member: bool
    evidence: list[EvidenceOut]
    datasets: list[DatasetSearched]


class OptOutKind(StrEnum):
    PASSAGE = "passage"  # an exact passage of text
    SHA256 = "sha256"  # a record's content digest (`commonlab optout hash`) or a file's SHA-256
    URL = "url"  # a source URL pattern, `*` matching anything


Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class OptOutCreate(Input):
    """An opt-out: `value` is the passage, the SHA-256 (64 lowercase hex digits) or the URL
    pattern (`https://example.org/books/*`) that `kind` names."""

    kind: OptOutKind
    value: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_PASSAGE_CHARS, strip_whitespace=True)
    ]


class OptOutDecision(Input):
    decision: Annotated[str, StringConstraints(pattern=r"^(upheld|rejected)$")]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class OptOutMatchOut(BaseModel):
    dataset: str
    file: str
    record: int
    url: str


class ModelTrainedOut(BaseModel):
    model: str
    dataset: str
    # Whether the model was published after the opt-out was filed (trained on the data anyway).
    after_optout: bool
    created_at: datetime


class OptOutOut(BaseModel):
    """An opt-out as the asker may see it: what it names (`value`) only for the person who
    filed it, operators and auditors; matches only in datasets the asker may read, and
    `records` counts only those (a count of the others would tell anyone, by filing
    opt-outs, whether a passage is in data they may not read)."""

    id: int
    kind: str
    value: str | None
    state: str
    reason: str | None
    records: int
    matches: list[OptOutMatchOut]
    models: list[ModelTrainedOut] = Field(default_factory=list)
    created_at: datetime
    decided_at: datetime | None
