"""Signed manifests: an in-toto Statement v1 listing every file of a version by SHA-256,
in a DSSE envelope signed with the facility's Ed25519 key (the shape OpenSSF model-signing
uses). Pure: `commonlab verify` runs it offline against a local copy.

The predicate type is `https://commonlab.dev/artifacts/manifest/v1`; its predicate names the
repository, the version number and, per file, its size, BLAKE3 and media type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commonlab.record.canonical import canonical_json
from commonlab.record.note import NoteError, NoteSigner, Verifier

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "SignatureError",
    "VerifyReport",
    "make_statement",
    "open_envelope",
    "pae",
    "sign_statement",
    "verify_directory",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://commonlab.dev/artifacts/manifest/v1"
# Local bookkeeping a pull writes beside the files; never part of a manifest.
LOCAL_DIR = ".commonlab"


class SignatureError(ValueError):
    """An envelope is malformed, not signed by the expected key, or not a manifest."""


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def make_statement(
    *,
    repository: str,
    version: int,
    files: Sequence[Mapping[str, Any]],
    licenses: Sequence[str],
) -> dict[str, Any]:
    """The in-toto statement for a version: one subject per file, sorted by path."""
    ordered = sorted(files, key=lambda f: f["path"])
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in ordered],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "repository": repository,
            "version": version,
            "licenses": sorted(licenses),
            "files": [
                {
                    "path": f["path"],
                    "size": f["size"],
                    "blake3": f["blake3"],
                    "mediaType": f["media_type"],
                }
                for f in ordered
            ],
        },
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_statement(statement: Mapping[str, Any], signer: NoteSigner, vkey: str) -> dict[str, Any]:
    """A DSSE envelope over the statement's canonical JSON (RFC 8785)."""
    payload = canonical_json(dict(statement))
    sig = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": vkey, "sig": base64.b64encode(sig).decode()}],
    }


def statement_digest(envelope: Mapping[str, Any]) -> str:
    return hashlib.sha256(base64.b64decode(envelope["payload"])).hexdigest()


def open_envelope(envelope: Mapping[str, Any], verifier_key: str) -> dict[str, Any]:
    """The statement inside, if the facility key `verifier_key` signed it; else SignatureError."""
    try:
        verifier = Verifier.from_key(verifier_key)
    except NoteError as exc:
        raise SignatureError(f"not a verifier key: {exc}") from None
    try:
        if envelope["payloadType"] != PAYLOAD_TYPE:
            raise SignatureError(f"payload type is {envelope['payloadType']!r}, not in-toto")
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = list(envelope["signatures"])
    except (KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"malformed DSSE envelope ({exc})") from None
    message = pae(PAYLOAD_TYPE, payload)
    for entry in signatures:
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            continue
        if verifier.verify(message, sig):
            break
    else:
        raise SignatureError(f"no signature by {verifier.name} verifies this manifest")
    statement = json.loads(payload)
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != (
        PREDICATE_TYPE
    ):
        raise SignatureError("the signed payload is not a commonlab manifest statement")
    return statement


# Bookkeeping that download clients keep inside a copy: commonlab's own, and the Hub client's
# (`snapshot_download(local_dir=...)` writes `.cache/huggingface/`). Not part of the artifact.
CLIENT_DIRS = ((LOCAL_DIR,), (".cache", "huggingface"))


def _local_files(root: Path) -> Iterable[str]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(rel.parts[: len(skip)] == skip for skip in CLIENT_DIRS):
            continue
        if path.is_file() or path.is_symlink():
            yield rel.as_posix()


def verify_directory(statement: Mapping[str, Any], root: Path) -> VerifyReport:
    """Check every subject's SHA-256 against `root`, and that nothing else is there.

    Symbolic links are followed: a Hub cache snapshot is links into its blob store, and what
    a loader reads through a link is what must match."""
    problems: list[str] = []
    expected = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    for name, digest in sorted(expected.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
        if sha.hexdigest() != digest:
            problems.append(f"{name}: SHA-256 {sha.hexdigest()} is not the signed {digest}")
    for name in _local_files(root):
        if name not in expected:
            problems.append(f"{name}: not in the signed manifest")
    return VerifyReport(checked=len(expected), problems=tuple(problems))
