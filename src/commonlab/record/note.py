"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

Owns key encoding (signer and verifier key strings, key IDs), signing notes and
opening them, following the rules of Go's golang.org/x/mod/sumdb/note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Note",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "encode_signer_key",
    "encode_verifier_key",
    "generate_signer",
    "is_valid_name",
    "key_id",
    "open_note",
    "parse_signature_line",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100  # Go's sumdb/note limit; the spec requires accepting at least 16.

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"

# Unicode White_Space, which is what Go's unicode.IsSpace tests (str.isspace
# differs: it also matches U+001C..U+001F).
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class NoteError(ValueError):
    """A note, key or signature is malformed or does not verify."""


class UnverifiedNoteError(NoteError):
    """The note parsed, but no signature from a known key was on it."""

    def __init__(self, message: str, note: Note) -> None:
        super().__init__(message)
        self.note = note


class NoteSigner(Protocol):
    """Anything that can add a signature line: a name, a key ID and a sign function."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, msg: bytes) -> bytes: ...


class NoteVerifier(Protocol):
    """Anything that can check a signature line from one (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, msg: bytes, sig: bytes) -> bool: ...


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 32-bit key ID and the base64 payload as written."""

    name: str
    key_id: int
    base64: str

    def raw(self) -> bytes:
        """The signature bytes after the 4-byte key ID."""
        return base64.b64decode(self.base64)[4:]


@dataclass(frozen=True)
class Note:
    """An opened note: its text and the signatures found on it."""

    text: str
    signatures: tuple[Signature, ...] = ()  # verified by a known key
    unverified_signatures: tuple[Signature, ...] = field(default=())  # from unknown keys


# --- keys -------------------------------------------------------------------


def is_valid_name(name: str) -> bool:
    """Key names must be non-empty and hold no Unicode space and no '+'."""
    return bool(name) and "+" not in name and not any(c in _WHITE_SPACE for c in name)


def key_id(name: str, key: bytes) -> int:
    """SHA-256(name || 0x0A || key)[:4] as big-endian uint32; ``key`` = type byte || public key."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()
    return int.from_bytes(digest[:4], "big")


def encode_verifier_key(name: str, alg: int, public_key: bytes) -> str:
    """Verifier key string ``name+<hex key ID>+base64(alg || public key)``."""
    _require_name(name)
    key = bytes([alg]) + public_key
    return f"{name}+{key_id(name, key):08x}+{_b64(key)}"


def encode_signer_key(name: str, alg: int, seed: bytes, public_key: bytes) -> str:
    """Signer key string ``PRIVATE+KEY+name+<hex key ID>+base64(alg || seed)``."""
    _require_name(name)
    kid = key_id(name, bytes([alg]) + public_key)
    return f"{_PRIVATE_PREFIX}{name}+{kid:08x}+{_b64(bytes([alg]) + seed)}"


def parse_verifier_key(vkey: str) -> tuple[str, int, int, bytes]:
    """Split a verifier key into (name, key ID, algorithm byte, public key); check its key ID."""
    name, kid, key = _split_key(vkey, "verifier key")
    if key_id(name, key) != kid:
        raise NoteError(f"verifier key for {name!r}: key ID {kid:08x} does not match the key")
    return name, kid, key[0], key[1:]


def parse_signer_key(skey: str) -> tuple[str, int, int, bytes]:
    """Split a signer key into (name, claimed key ID, algorithm byte, private seed).

    The key ID covers the public key, so callers check it after deriving that.
    """
    if not skey.startswith(_PRIVATE_PREFIX):
        raise NoteError("signer key must start with 'PRIVATE+KEY+'")
    name, kid, key = _split_key(skey[len(_PRIVATE_PREFIX) :], "signer key")
    return name, kid, key[0], key[1:]


def generate_signer(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key pair for ``name``: (signer key, verifier key). Keep the first secret."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes_raw()
    return (
        encode_signer_key(name, ALG_ED25519, seed, public),
        encode_verifier_key(name, ALG_ED25519, public),
    )


class Signer:
    """Signs note text with an Ed25519 key (signature type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _require_name(name)
        self.name = name
        self._private = private_key
        public = private_key.public_key().public_bytes_raw()
        self.key_id = key_id(name, bytes([ALG_ED25519]) + public)

    @classmethod
    def from_key(cls, skey: str) -> Signer:
        """Load a ``PRIVATE+KEY+...`` signer key string."""
        name, kid, alg, seed = parse_signer_key(skey)
        if alg != ALG_ED25519:
            raise NoteError(
                f"signer key for {name!r}: unsupported algorithm 0x{alg:02x}, want 0x01"
            )
        signer = cls(name, _private_from_seed(seed, name))
        if signer.key_id != kid:
            raise NoteError(f"signer key for {name!r}: key ID {kid:08x} does not match the key")
        return signer

    def sign(self, msg: bytes) -> bytes:
        return self._private.sign(msg)

    def verifier_key(self) -> str:
        """The matching public verifier key string."""
        public = self._private.public_key().public_bytes_raw()
        return encode_verifier_key(self.name, ALG_ED25519, public)


class Verifier:
    """Checks Ed25519 (type 0x01) note signatures from one named key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _require_name(name)
        self.name = name
        self.key_id = key_id(name, bytes([ALG_ED25519]) + public_key)
        self._public = _public_from_bytes(public_key, name)

    @classmethod
    def from_key(cls, vkey: str) -> Verifier:
        """Load a ``name+keyid+base64`` verifier key string."""
        name, _, alg, public = parse_verifier_key(vkey)
        if alg != ALG_ED25519:
            raise NoteError(
                f"verifier key for {name!r}: unsupported algorithm 0x{alg:02x}, want 0x01"
            )
        return cls(name, public)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        return _ed25519_verify(self._public, msg, sig)


# --- signing and opening ----------------------------------------------------


def sign_note(text: str, *signers: NoteSigner) -> bytes:
    """Sign ``text`` with each signer and return the encoded note.

    ``text`` must end in a newline and hold no control characters other than newline.
    """
    _check_text(text)
    if not signers:
        raise NoteError("sign_note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures, got {len(signers)}")
    msg = text.encode("utf-8")
    lines, seen = [], set()
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if not is_valid_name(signer.name):
            raise NoteError(f"invalid signer name {signer.name!r}")
        if ident in seen:
            raise NoteError(f"signer {signer.name}+{signer.key_id:08x} given twice")
        seen.add(ident)
        payload = signer.key_id.to_bytes(4, "big") + signer.sign(msg)
        lines.append(f"{_SIG_PREFIX}{signer.name} {_b64(payload)}\n")
    return msg + b"\n" + "".join(lines).encode("utf-8")


def open_note(msg: bytes, *, verifiers: Iterable[NoteVerifier]) -> Note:
    """Parse ``msg`` and check every signature made by a known verifier.

    Signatures from unknown keys are kept as unverified.  Raises NoteError if
    the note is malformed, a known key's signature is invalid, or no known key
    signed it (UnverifiedNoteError, which carries the parsed note).
    """
    text, sig_block = _split_note(msg)
    known = _index_verifiers(verifiers)
    text_bytes = text.encode("utf-8")
    verified: list[Signature] = []
    unverified: list[Signature] = []
    seen_keys: set[tuple[str, int]] = set()
    seen_lines: set[str] = set()
    for count, line in enumerate(sig_block.split("\n")[:-1], start=1):
        sig, raw = parse_signature_line(line, number=count)
        if count > MAX_SIGNATURES:
            raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
        candidates = known.get((sig.name, sig.key_id))
        if candidates is None:
            if line not in seen_lines:  # drop exact repeats, as Go does
                seen_lines.add(line)
                unverified.append(sig)
            continue
        ident = f"{sig.name}+{sig.key_id:08x}"
        if len(candidates) > 1:
            raise NoteError(
                f"ambiguous key {ident}: more than one verifier has that name and key ID"
            )
        if (sig.name, sig.key_id) in seen_keys:
            continue  # only the first signature by a key counts, as in Go
        seen_keys.add((sig.name, sig.key_id))
        if not candidates[0].verify(text_bytes, raw):
            raise NoteError(f"invalid signature for key {ident}")
        verified.append(sig)
    note = Note(text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError("note has no verifiable signatures from the given keys", note)
    return note


def _split_note(msg: bytes) -> tuple[str, str]:
    try:
        decoded = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            f"malformed note: not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    _check_no_controls(decoded)
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, sigs = decoded[: split + 1], decoded[split + 2 :]
    if not sigs.endswith("\n"):
        raise NoteError("malformed note: signature block is empty or lacks a final newline")
    return text, sigs


def parse_signature_line(line: str, *, number: int = 1) -> tuple[Signature, bytes]:
    """Parse ``— <name> <base64>`` (no trailing newline) into the Signature and its raw bytes.

    ``number`` is only used to say which line was bad in error messages.
    """
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"malformed note: signature line {number} does not start with '\u2014 '")
    name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    payload = _b64decode(b64)
    if payload is None or not is_valid_name(name) or len(payload) < 5:
        raise NoteError(f"malformed note: signature line {number} is not '\u2014 <name> <base64>'")
    sig = Signature(name, int.from_bytes(payload[:4], "big"), b64)
    return sig, payload[4:]


def _index_verifiers(
    verifiers: Iterable[NoteVerifier],
) -> dict[tuple[str, int], list[NoteVerifier]]:
    # Duplicates only fail if a note actually uses that key (Go's "ambiguous key").
    index: dict[tuple[str, int], list[NoteVerifier]] = {}
    for v in verifiers:
        index.setdefault((v.name, v.key_id), []).append(v)
    return index


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note text is not valid Unicode (lone surrogate)") from None
    _check_no_controls(text)


def _check_no_controls(s: str) -> None:
    for i, c in enumerate(s):
        if c < " " and c != "\n":
            raise NoteError(f"malformed note: control character U+{ord(c):04X} at offset {i}")


# --- small helpers ----------------------------------------------------------


def _split_key(key: str, what: str) -> tuple[str, int, bytes]:
    # name+hash+base64; the base64 may itself contain '+', so split twice only.
    name, _, rest = key.partition("+")
    hex_id, _, b64 = rest.partition("+")
    if not is_valid_name(name):
        raise NoteError(f"{what}: invalid key name {name!r} (non-empty, no spaces, no '+')")
    if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
        raise NoteError(f"{what} for {name!r}: key ID must be 8 hex digits, got {hex_id!r}")
    raw = _b64decode(b64)
    if not raw:
        raise NoteError(f"{what} for {name!r}: key material is not valid non-empty base64")
    return name, int(hex_id, 16), raw


def _require_name(name: str) -> None:
    if not is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}: must be non-empty, without spaces or '+'")


def _private_from_seed(seed: bytes, name: str) -> Ed25519PrivateKey:
    if len(seed) != 32:
        raise NoteError(f"signer key for {name!r}: Ed25519 seed must be 32 bytes, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_from_bytes(public: bytes, name: str) -> Ed25519PublicKey:
    if len(public) != 32:
        raise NoteError(
            f"verifier key for {name!r}: Ed25519 key must be 32 bytes, got {len(public)}"
        )
    try:
        return Ed25519PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise NoteError(f"verifier key for {name!r}: {exc}") from None


def _ed25519_verify(public: Ed25519PublicKey, msg: bytes, sig: bytes) -> bool:
    if len(sig) != 64:
        return False
    try:
        public.verify(sig, msg)
    except InvalidSignature:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(s: str) -> bytes | None:
    """Strict standard base64 (padding required, no stray characters); None if invalid."""
    if not s.isascii():
        return None
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error:
        return None
