"""The artifacts book: which repositories and versions the record says were published, signed
by which key, at which level, under which licences and lineage; replayed, each signature
checked, and compared with what the facility publishes to anyone.

A version's entry carries its commit, the SHA-256 of its signed in-toto statement, the DSSE
signature and the key that made it. The statement itself is not on the record, so the audit
fetches the version's envelope from the facility and checks that it is the statement the
record committed to (its SHA-256) and that the record's signature, by the record's key, is a
signature over it (DSSE's pre-authentication encoding, re-implemented here). The key must be
the log's own: the one that signed the checkpoint the audit verified.

Only public CL-1 repositories are named on the record; every other one is `artifact/<id>`
with its name, licences, lineage and tags committed, so what is said of those rests on
commitments. The facility has no release path (a version moved from a contained level to a
public one with approvals): nothing on the record lowers a level, and a public version's
entry says its level itself, so the audit checks that level against the facility's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any

from commonlab.artifacts.events import ArtifactsEvent
from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published, PublishedError
from commonlab.audit.replay import Book, reads
from commonlab.record.note import NoteError, Verifier, parse_signature_line, parse_verifier_key

__all__ = ["ArtifactsBook", "PublishedVersion", "checkpoint_key", "signature_verdict"]

# DSSE (github.com/secure-systems-lab/dsse): what a version's signature is made over.
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
VALID = "valid"
PUBLIC_KINDS = ("datasets", "models")


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding, the bytes a DSSE signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def checkpoint_key(note: str) -> tuple[str, int] | None:
    """The (name, key ID) that signed the log's checkpoint: its origin line's signature."""
    text, _, signatures = note.partition("\n\n")
    origin = text.split("\n", 1)[0]
    for number, line in enumerate(signatures.splitlines(), start=1):
        try:
            signature, _ = parse_signature_line(line, number=number)
        except NoteError:
            continue
        if signature.name == origin:
            return origin, signature.key_id
    return None


def signature_verdict(key: str, signature: str, payload: bytes) -> str:
    """VALID when `signature` (base64) by `key` (a note verifier key) signs the DSSE
    encoding of `payload`; otherwise why not."""
    try:
        verifier = Verifier.from_key(key)
    except (NoteError, ValueError) as exc:
        return f"the key is not an Ed25519 verifier key ({exc})"
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return "the signature is not base64"
    if not verifier.verify(_pae(IN_TOTO_PAYLOAD, payload), raw):
        return "the signature does not verify over the statement"
    return VALID


@dataclass
class _Repo:
    subject: str  # datasets/ns/name, models/ns/name, or artifact/<id>
    level: str
    visibility: str
    kind: str | None  # None: committed (a non-public repository)
    latest: int = 0
    tags: dict[str, int] = field(default_factory=dict)

    @property
    def public(self) -> bool:
        return self.subject.startswith(tuple(f"{k}/" for k in PUBLIC_KINDS))


@dataclass(frozen=True)
class PublishedVersion:
    """One version as its publication entry says it."""

    ref: str  # subject@N
    repo: str
    number: int
    kind: str  # dataset or model, from the entry's type
    commit: str
    statement_sha256: str
    signature: str | None
    key: str | None
    files: int
    bytes: int
    level: str
    licenses: list[str] | None  # None: committed
    lineage: list[str] | None  # None: committed
    lineage_withheld: bool  # some sources are not public: committed
    schema: int


class ArtifactsBook(Book):
    name = "artifacts"

    def __init__(self, checkpoint_note: str | None = None) -> None:
        # The verified checkpoint: a version's key must be the one that signed it.
        self.log_key = checkpoint_key(checkpoint_note) if checkpoint_note else None
        self.repos: dict[str, _Repo] = {}
        self.versions: dict[str, PublishedVersion] = {}
        self.orphans: list[str] = []  # versions or tags of a repository never created

    # Replay ---------------------------------------------------------------------------------

    @reads(ArtifactsEvent.RepoCreated)
    def repo_created(self, entry: Entry) -> None:
        """A repository exists from here on, at the level and visibility it says; a public
        one by name (`datasets/ns/name`), any other only as `artifact/<id>`."""
        data = entry.data
        kind = data.get("kind")
        self.repos[entry.subject] = _Repo(
            subject=entry.subject,
            level=data["level"],
            visibility=data["visibility"],
            kind=kind if isinstance(kind, str) else None,
        )

    @reads(ArtifactsEvent.DatasetPublished, ArtifactsEvent.ModelPublished)
    def version_published(self, entry: Entry) -> None:
        """A version is published: its number, commit, signed statement digest, signature
        and key, file count and bytes, level, and (for a public one) licences and lineage."""
        data = entry.data
        repo_subject, _, number = entry.subject.rpartition("@")
        licenses, lineage = data.get("licenses"), data.get("lineage")
        version = PublishedVersion(
            ref=entry.subject,
            repo=repo_subject,
            number=int(number),
            kind="dataset" if entry.type == ArtifactsEvent.DatasetPublished else "model",
            commit=data["commit"],
            statement_sha256=data["statement_sha256"],
            signature=data.get("signature"),
            key=data.get("key"),
            files=data["files"],
            bytes=data["bytes"],
            level=data["level"],
            licenses=licenses if isinstance(licenses, list) else None,
            lineage=lineage if isinstance(lineage, list) else None,
            lineage_withheld="lineage_private" in data,
            schema=entry.schema,
        )
        self.versions[entry.subject] = version
        repo = self.repos.get(repo_subject)
        if repo is None:
            self.orphans.append(entry.subject)
            return
        repo.latest = max(repo.latest, version.number)

    @reads(ArtifactsEvent.TagCreated, ArtifactsEvent.TagMoved)
    def tag_set(self, entry: Entry) -> None:
        """A tag names a version of a repository from here on (a public tag by name)."""
        repo = self.repos.get(entry.subject)
        tag = entry.data.get("tag")
        if repo is None:
            self.orphans.append(f"{entry.subject} tag")
        elif isinstance(tag, str):
            repo.tags[tag] = entry.data["version"]

    # What the record says by itself -----------------------------------------------------------

    def _check_record(self, findings: Findings) -> None:
        for ref in self.orphans:
            findings.compare(self.name, f"{ref}: its repository's creation", "on the record", None)
        for version in self.versions.values():
            self._check_own_words(version, findings)
        hidden = [r for r in self.repos.values() if not r.public]
        if hidden:
            findings.rests_on_commitments(
                f"{len(hidden)} non-public repositories (artifact/<id>): their names, licences, "
                "lineage and tags, and what their versions' signatures sign"
            )
        if any(v.lineage_withheld for v in self.versions.values()):
            findings.rests_on_commitments(
                "the lineage of public versions that names sources which are not public"
            )
        findings.note(
            "no release path: the facility has no way to lower an artifact's level, and no "
            "entry on the record does; each public version's level is its entry's"
        )

    def _check_own_words(self, version: PublishedVersion, findings: Findings) -> None:
        """A version's commit is its statement's digest, cut; its key is the log's."""
        findings.compare(
            self.name,
            f"{version.ref} commit is its statement's digest",
            version.statement_sha256[:40],
            version.commit,
        )
        if version.key is None or version.signature is None:
            findings.note(f"{version.ref}: an entry of schema {version.schema} names no key")
            return
        if self.log_key is not None:
            findings.compare(
                self.name,
                f"{version.ref} signed by the log's key",
                "{}+{:08x}".format(*self.log_key),
                _key_identity(version.key),
            )

    # Against the facility -------------------------------------------------------------------

    def compare(self, published: Published, findings: Findings) -> None:
        self._check_record(findings)
        public = {s: r for s, r in self.repos.items() if r.public}
        self._compare_listings(public, published, findings)
        for repo in public.values():
            self._compare_repo(repo, published, findings)
        for version in self.versions.values():
            if version.repo in public:
                self._compare_version(version, published, findings)

    def _compare_listings(
        self, public: dict[str, _Repo], published: Published, findings: Findings
    ) -> None:
        listed = {
            f"{item['kind']}s/{item['repo_id']}"
            for item in published.pages("/api/v1/artifacts/repos")
        }
        findings.compare(self.name, "public repositories listed", sorted(public), sorted(listed))
        for kinds in PUBLIC_KINDS:
            on_hub = {f"{kinds}/{item['id']}": item.get("sha") for item in _hub(published, kinds)}
            newest = {s: self._newest_commit(s) for s in public if s.startswith(f"{kinds}/")}
            findings.compare(self.name, f"/api/{kinds} listing and newest commits", newest, on_hub)

    def _newest_commit(self, repo_subject: str) -> str | None:
        repo = self.repos[repo_subject]
        version = self.versions.get(f"{repo_subject}@{repo.latest}")
        return version.commit if version else None

    def _compare_repo(self, repo: _Repo, published: Published, findings: Findings) -> None:
        said = _get(published, f"/api/v1/artifacts/{repo.subject}")
        if said is None:
            findings.compare(self.name, f"{repo.subject}", "published", "not found")
            return
        findings.compare(self.name, f"{repo.subject} level", repo.level, _level(said["level"]))
        findings.compare(
            self.name, f"{repo.subject} visibility", repo.visibility, said["visibility"]
        )
        findings.compare(
            self.name, f"{repo.subject} latest version", repo.latest or None, said["latest"]
        )
        findings.compare(self.name, f"{repo.subject} tags", repo.tags, said["tags"])
        listed = {
            item["number"]: item["commit"]
            for item in published.pages(f"/api/v1/artifacts/{repo.subject}/versions")
        }
        on_record = {v.number: v.commit for v in self.versions.values() if v.repo == repo.subject}
        findings.compare(self.name, f"{repo.subject} versions and commits", on_record, listed)

    def _compare_version(
        self, version: PublishedVersion, published: Published, findings: Findings
    ) -> None:
        base = f"/api/v1/artifacts/{version.repo}/versions/{version.number}"
        said = _get(published, base)
        if said is None:
            findings.compare(self.name, version.ref, "published", "not found")
            return
        ref = version.ref
        findings.compare(self.name, f"{ref} commit", version.commit, said["commit"])
        findings.compare(self.name, f"{ref} level", version.level, _level(said["level"]))
        findings.compare(
            self.name, f"{ref} statement_sha256", version.statement_sha256, said["statement_sha256"]
        )
        findings.compare(self.name, f"{ref} files", version.files, len(said["files"]))
        findings.compare(self.name, f"{ref} bytes", version.bytes, said["total_bytes"])
        if version.licenses is not None:
            findings.compare(
                self.name, f"{ref} licences", sorted(version.licenses), sorted(said["licenses"])
            )
        if version.lineage is not None:
            lineage = published.json(f"{base}/lineage")
            edges = sorted(
                f"{e['relation']}:{e['to']}" for e in lineage["edges"] if e["from"] == ref
            )
            findings.compare(self.name, f"{ref} lineage", sorted(version.lineage), edges)
        self._compare_signature(version, published.json(f"{base}/signature"), findings)

    def _compare_signature(
        self, version: PublishedVersion, said: dict[str, Any], findings: Findings
    ) -> None:
        """The envelope the facility serves holds the statement the record names (its
        SHA-256), and the record's signature by the record's key signs it."""
        ref = version.ref
        envelope = said.get("envelope") or {}
        try:
            payload = base64.b64decode(envelope["payload"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            findings.compare(self.name, f"{ref} signed envelope", "a DSSE envelope", envelope)
            return
        findings.compare(
            self.name, f"{ref} envelope payload type", IN_TOTO_PAYLOAD, envelope.get("payloadType")
        )
        findings.compare(
            self.name,
            f"{ref} signed statement's SHA-256",
            version.statement_sha256,
            hashlib.sha256(payload).hexdigest(),
        )
        if version.key is None or version.signature is None:
            return
        findings.compare(
            self.name,
            f"{ref} signature",
            VALID,
            signature_verdict(version.key, version.signature, payload),
        )
        served = [s.get("sig") for s in envelope.get("signatures", [])]
        findings.compare(self.name, f"{ref} envelope's signature", [version.signature], served)
        findings.compare(self.name, f"{ref} verifier key", version.key, said.get("verifier_key"))


def _key_identity(key: str) -> str:
    """A verifier key as name+keyid (what a checkpoint signature line names)."""
    try:
        name, key_id, _, _ = parse_verifier_key(key)
    except (NoteError, ValueError):
        return f"not a verifier key: {key!r}"
    return f"{name}+{key_id:08x}"


def _level(level: int) -> str:
    return f"CL-{level}"


def _get(published: Published, path: str) -> Any:
    """A public route's answer, or None where the facility says there is no such thing."""
    try:
        return published.json(path)
    except PublishedError as exc:
        if "HTTP 404" in str(exc):
            return None
        raise


def _hub(published: Published, kinds: str) -> list[dict[str, Any]]:
    """Every repository the Hub listing shows (newest first; `cursor` is the last id seen)."""
    limit, items, cursor = 1000, [], None
    while True:
        after = {"cursor": cursor} if cursor else {}
        page = published.json(f"/api/{kinds}", limit=limit, **after)
        items.extend(page)
        if len(page) < limit:
            return items
        cursor = min(int(item["_id"].rpartition("-")[2]) for item in page)
