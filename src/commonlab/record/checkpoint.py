"""Checkpoints (c2sp.org/tlog-checkpoint) and witness cosignatures (c2sp.org/tlog-cosignature).

Owns the checkpoint note body, its strict parser, log signing and opening, and
Ed25519 cosignature/v1 signing and verification (signature type 0x04).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from commonlab.record.note import (
    NoteError,
    NoteVerifier,
    Signature,
    Signer,
    Verifier,
    encode_signer_key,
    encode_verifier_key,
    is_valid_name,
    key_id,
    open_note,
    parse_signature_line,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "Checkpoint",
    "CheckpointError",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosign",
    "generate_witness",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_cosignature",
]

ALG_COSIGNATURE_V1 = 0x04
_MAX_SIZE = 2**63 - 1  # tree sizes are int64 in Go's tlog and C2SP tooling
_MAX_TIMESTAMP = 2**63 - 1  # tlog-cosignature: timestamp MUST NOT exceed 2^63 - 1
_COSIG_LEN = 8 + 64  # u64 timestamp || Ed25519 signature


class CheckpointError(ValueError):
    """A checkpoint body is malformed or is not the one expected."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= _MAX_SIZE
        ):
            raise CheckpointError(f"tree size must be an integer in 0..2^63-1, got {self.size!r}")
        if len(self.root_hash) != 32:
            raise CheckpointError(f"root hash must be 32 bytes, got {len(self.root_hash)}")
        for ext in self.extensions:
            _check_line(ext, "extension line")

    def body(self) -> str:
        """The note text: origin, size, base64 root, extensions; each line ends in newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly; raise CheckpointError naming the bad line."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"checkpoint needs origin, size and root lines, got {len(lines)} line(s)"
        )
    origin, size_line, root_line, *extensions = lines
    return Checkpoint(origin, _parse_size(size_line), _parse_root(root_line), tuple(extensions))


def _parse_size(line: str) -> int:
    if not line or any(c not in "0123456789" for c in line) or (line[0] == "0" and line != "0"):
        raise CheckpointError(
            f"tree size line must be a decimal without leading zeros, got {line!r}"
        )
    return int(line)


def _parse_root(line: str) -> bytes:
    try:
        root = base64.b64decode(line, validate=True) if line.isascii() else b""
    except binascii.Error:
        root = b""
    # Re-encoding catches non-canonical base64 that would make two texts for one root.
    if len(root) != 32 or base64.b64encode(root).decode("ascii") != line:
        raise CheckpointError(f"root hash line must be canonical base64 of 32 bytes, got {line!r}")
    return root


def _check_line(line: str, what: str) -> None:
    if not line:
        raise CheckpointError(f"checkpoint {what} must not be empty")
    bad = next((c for c in line if c < " "), None)
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {what} {line!r} contains control character U+{ord(bad):04X}"
        )


# --- log signatures ---------------------------------------------------------


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """The checkpoint as a signed note carrying the log's signature."""
    return sign_note(cp.body(), signer)


@dataclass(frozen=True)
class Cosignature:
    """A verified witness cosignature: who signed and the time they vouched for."""

    name: str
    key_id: int
    timestamp: int

    @classmethod
    def from_signature(cls, sig: Signature) -> Cosignature:
        """Decode a cosignature/v1 note signature (without checking it)."""
        payload = base64.b64decode(sig.base64)[4:]
        if len(payload) != _COSIG_LEN:
            raise NoteError(
                f"cosignature from {sig.name}: expected {_COSIG_LEN} bytes after the key ID, "
                f"got {len(payload)}"
            )
        return cls(sig.name, sig.key_id, int.from_bytes(payload[:8], "big"))


def open_checkpoint(
    msg: bytes,
    *,
    origin: str,
    verifier: Verifier | str,
    witnesses: Iterable[CosignatureVerifier | str] = (),
) -> tuple[Checkpoint, list[Cosignature]]:
    """Open a signed checkpoint from the log ``origin``.

    The log's signature is required; signatures from the given witnesses are
    verified and returned (a bad one raises NoteError), unknown ones ignored.
    """
    log = Verifier.from_key(verifier) if isinstance(verifier, str) else verifier
    cosigners = [CosignatureVerifier.from_key(w) if isinstance(w, str) else w for w in witnesses]
    verifiers: list[NoteVerifier] = [log, *cosigners]
    note = open_note(msg, verifiers=verifiers)
    if not any((s.name, s.key_id) == (log.name, log.key_id) for s in note.signatures):
        raise NoteError(f"checkpoint is not signed by the log key {log.name}+{log.key_id:08x}")
    cp = parse_checkpoint(note.text)
    if cp.origin != origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    witness_ids = {(w.name, w.key_id) for w in cosigners}
    cosigs = [
        Cosignature.from_signature(s) for s in note.signatures if (s.name, s.key_id) in witness_ids
    ]
    return cp, cosigs


# --- witness cosignatures (cosignature/v1, Ed25519) ----------------------------


def generate_witness(name: str) -> tuple[str, str]:
    """A fresh witness key pair: (signer key, verifier key), both with type byte 0x04."""
    private = Ed25519PrivateKey.generate()
    seed, public = private.private_bytes_raw(), private.public_key().public_bytes_raw()
    return (
        encode_signer_key(name, ALG_COSIGNATURE_V1, seed, public),
        encode_verifier_key(name, ALG_COSIGNATURE_V1, public),
    )


class CosignatureSigner:
    """Makes cosignature/v1 signatures; also usable as a signer in ``sign_note``.

    ``sign`` stamps the current time from ``clock``; use ``sign_at`` to pick it.
    """

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey, *, clock: Callable[[], float] = time.time
    ) -> None:
        _require_name(name)
        public = private_key.public_key().public_bytes_raw()
        self.name = name
        self.key_id = key_id(name, bytes([ALG_COSIGNATURE_V1]) + public)
        self._private = private_key
        self._clock = clock

    @classmethod
    def from_key(cls, skey: str, *, clock: Callable[[], float] = time.time) -> CosignatureSigner:
        name, kid, alg, seed = parse_signer_key(skey)
        if alg != ALG_COSIGNATURE_V1:
            raise NoteError(f"witness key for {name!r}: signature type 0x{alg:02x}, want 0x04")
        if len(seed) != 32:
            raise NoteError(
                f"witness key for {name!r}: Ed25519 seed must be 32 bytes, got {len(seed)}"
            )
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed), clock=clock)
        if signer.key_id != kid:
            raise NoteError(f"witness key for {name!r}: key ID {kid:08x} does not match the key")
        return signer

    def sign_at(self, body: bytes, timestamp: int) -> bytes:
        """timestamp (u64 big-endian) || Ed25519 signature over the cosigned message."""
        _check_timestamp(timestamp)
        sig = self._private.sign(_cosigned_message(body, timestamp))
        return timestamp.to_bytes(8, "big") + sig

    def sign(self, msg: bytes) -> bytes:
        return self.sign_at(msg, int(self._clock()))

    def verifier_key(self) -> str:
        public = self._private.public_key().public_bytes_raw()
        return encode_verifier_key(self.name, ALG_COSIGNATURE_V1, public)


class CosignatureVerifier:
    """Checks cosignature/v1 signatures from one witness; usable in ``open_note``."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _require_name(name)
        if len(public_key) != 32:
            raise NoteError(
                f"witness key for {name!r}: Ed25519 key must be 32 bytes, got {len(public_key)}"
            )
        self.name = name
        self.key_id = key_id(name, bytes([ALG_COSIGNATURE_V1]) + public_key)
        self._public = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_key(cls, vkey: str) -> CosignatureVerifier:
        name, _, alg, public = parse_verifier_key(vkey)
        if alg != ALG_COSIGNATURE_V1:
            raise NoteError(
                f"witness verifier key for {name!r}: signature type 0x{alg:02x}, want 0x04"
            )
        return cls(name, public)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        if len(sig) != _COSIG_LEN:
            return False
        timestamp = int.from_bytes(sig[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            self._public.verify(sig[8:], _cosigned_message(msg, timestamp))
        except InvalidSignature:
            return False
        return True


def cosign(checkpoint_body: str, signer: CosignatureSigner, *, timestamp: int) -> str:
    """The witness's signature line (with trailing newline) to append to the signed checkpoint."""
    parse_checkpoint(checkpoint_body)  # witnesses only ever vouch for well-formed checkpoints
    payload = signer.key_id.to_bytes(4, "big") + signer.sign_at(
        checkpoint_body.encode("utf-8"), timestamp
    )
    return f"\u2014 {signer.name} {base64.b64encode(payload).decode('ascii')}\n"


def verify_cosignature(line: str, checkpoint_body: str, witness_vkey: str) -> int:
    """Check one cosignature line against a checkpoint body; return its timestamp."""
    witness = CosignatureVerifier.from_key(witness_vkey)
    sig, raw = parse_signature_line(line.removesuffix("\n"))
    if (sig.name, sig.key_id) != (witness.name, witness.key_id):
        raise NoteError(
            f"cosignature is from {sig.name}+{sig.key_id:08x}, "
            f"not witness {witness.name}+{witness.key_id:08x}"
        )
    if not witness.verify(checkpoint_body.encode("utf-8"), raw):
        raise NoteError(f"invalid cosignature from witness {witness.name}+{witness.key_id:08x}")
    return int.from_bytes(raw[:8], "big")


def _cosigned_message(body: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp must be in 0..2^63-1, got {timestamp}")


def _require_name(name: str) -> None:
    if not is_valid_name(name):
        raise NoteError(f"invalid witness name {name!r}: must be non-empty, without spaces or '+'")
