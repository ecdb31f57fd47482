"""Checkpoints (c2sp.org/tlog-checkpoint) and cosignatures (c2sp.org/tlog-cosignature)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from commonlab.record.checkpoint import (
    Checkpoint,
    CheckpointError,
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    cosign,
    generate_witness,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_cosignature,
)
from commonlab.record.note import (
    NoteError,
    Signer,
    UnverifiedNoteError,
    generate_signer,
    key_id,
    parse_signature_line,
    sign_note,
)

ORIGIN = "example.com/behind-the-sofa"
# The example checkpoint body from the C2SP tlog-checkpoint and tlog-cosignature specs.
SPEC_BODY = f"{ORIGIN}\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_COSIG_LINE = (
    "\u2014 witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)
ROOT = hashlib.sha256(b"root").digest()
URLSAFE_ROOT = base64.urlsafe_b64encode(
    bytes([0xFF] * 32)
).decode()  # '_' and '-' are not standard base64

LOG_SKEY, LOG_VKEY = generate_signer(ORIGIN)
W1_SKEY, W1_VKEY = generate_witness("witness.example/w1")
W2_SKEY, W2_VKEY = generate_witness("witness.example/w2")


# --- body and parsing -------------------------------------------------------


def test_body_matches_spec_example() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    cp = Checkpoint(ORIGIN, 20852163, root)
    assert cp.body() == SPEC_BODY
    assert parse_checkpoint(SPEC_BODY) == cp


def test_extensions_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two"))
    assert cp.body().endswith("ext one\next two\n")
    assert parse_checkpoint(cp.body()) == cp


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (SPEC_BODY[:-1], "newline"),
        (f"{ORIGIN}\n5\n", "origin, size and root"),
        (f"\n5\n{base64.b64encode(ROOT).decode()}\n", "origin"),
        (f"{ORIGIN}\n05\n{base64.b64encode(ROOT).decode()}\n", "leading zeros"),
        (f"{ORIGIN}\n+5\n{base64.b64encode(ROOT).decode()}\n", "decimal"),
        (f"{ORIGIN}\n 5\n{base64.b64encode(ROOT).decode()}\n", "decimal"),
        (f"{ORIGIN}\n\u0665\n{base64.b64encode(ROOT).decode()}\n", "decimal"),  # Arabic-Indic 5
        (f"{ORIGIN}\n\n{base64.b64encode(ROOT).decode()}\n", "decimal"),
        (f"{ORIGIN}\n{2**63}\n{base64.b64encode(ROOT).decode()}\n", "2\\^63"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode().rstrip('=')}\n", "32 bytes"),
        (f"{ORIGIN}\n5\n{URLSAFE_ROOT}\n", "32 bytes"),
        (f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n\n", "extension"),
    ],
)
def test_parse_errors(text: str, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        parse_checkpoint(text)


def test_non_canonical_base64_root_is_rejected() -> None:
    good = base64.b64encode(ROOT).decode()
    # Flip unused low bits of the last base64 digit before '=': same bytes, different text.
    last = good[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = good[:-2] + alphabet[alphabet.index(last) ^ 1] + "="
    assert base64.b64decode(twin) == ROOT
    with pytest.raises(CheckpointError):
        parse_checkpoint(f"{ORIGIN}\n5\n{twin}\n")


def test_constructor_validates() -> None:
    with pytest.raises(CheckpointError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, 1, ROOT[:16])


# --- log signatures ---------------------------------------------------------


def test_sign_and_open_round_trip() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    msg = sign_checkpoint(cp, Signer.from_key(LOG_SKEY))
    assert msg.startswith((cp.body() + "\n\u2014 " + ORIGIN + " ").encode())
    opened, cosigs = open_checkpoint(msg, origin=ORIGIN, verifier=LOG_VKEY)
    assert opened == cp
    assert cosigs == []


def test_open_rejects_wrong_origin_and_wrong_key() -> None:
    msg = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), Signer.from_key(LOG_SKEY))
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(msg, origin="example.com/other", verifier=LOG_VKEY)
    _, other_vkey = generate_signer(ORIGIN)
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(msg, origin=ORIGIN, verifier=other_vkey)


def test_open_requires_log_signature_not_just_a_witness() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    msg = sign_note(body, CosignatureSigner.from_key(W1_SKEY, clock=lambda: 1700000000))
    with pytest.raises(NoteError, match="not signed by the log key"):
        open_checkpoint(msg, origin=ORIGIN, verifier=LOG_VKEY, witnesses=[W1_VKEY])


def test_open_rejects_tampered_checkpoint() -> None:
    msg = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), Signer.from_key(LOG_SKEY))
    with pytest.raises(NoteError, match="invalid signature"):
        open_checkpoint(msg.replace(b"\n42\n", b"\n43\n"), origin=ORIGIN, verifier=LOG_VKEY)


# --- cosignatures -----------------------------------------------------------


def test_witness_keys_use_type_0x04() -> None:
    name, kid_hex, b64 = W1_VKEY.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x04 and len(raw) == 33
    assert int(kid_hex, 16) == key_id(name, raw)
    signer = CosignatureSigner.from_key(W1_SKEY)
    assert signer.key_id == CosignatureVerifier.from_key(W1_VKEY).key_id
    assert signer.verifier_key() == W1_VKEY
    # The same Ed25519 key under type 0x01 has a different ID: no cross-protocol reuse.
    with pytest.raises(NoteError, match="want 0x04"):
        CosignatureVerifier.from_key(LOG_VKEY)
    with pytest.raises(NoteError, match="want 0x01"):
        Signer.from_key(W1_SKEY)


def test_spec_cosignature_line_layout() -> None:
    # tlog-cosignature example: key ID || u64 timestamp 1679315147 || 64-byte signature.
    sig, raw = parse_signature_line(SPEC_COSIG_LINE)
    assert sig.name == "witness.example.com/w1"
    assert len(raw) == 72
    assert Cosignature.from_signature(sig) == Cosignature(
        "witness.example.com/w1", sig.key_id, 1679315147
    )


def test_cosign_and_verify() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = cosign(body, CosignatureSigner.from_key(W1_SKEY), timestamp=1679315147)
    assert line.startswith("\u2014 witness.example/w1 ") and line.endswith("\n")
    payload = base64.b64decode(line.split(" ")[2])
    assert payload[4:12] == (1679315147).to_bytes(8, "big")
    assert verify_cosignature(line, body, W1_VKEY) == 1679315147


def test_cosigned_message_is_exactly_as_specified() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = cosign(body, CosignatureSigner.from_key(W1_SKEY), timestamp=1679315147)
    sig = base64.b64decode(line.split(" ")[2])[12:]
    public = base64.b64decode(W1_VKEY.split("+", 2)[2])[1:]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(public).verify(
        sig, b"cosignature/v1\ntime 1679315147\n" + body.encode()
    )


def test_cosignature_fails_under_other_witness() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = cosign(body, CosignatureSigner.from_key(W1_SKEY), timestamp=1)
    with pytest.raises(NoteError, match="not witness"):
        verify_cosignature(line, body, W2_VKEY)
    # Same name, different key: still rejected.
    _, impostor = generate_witness("witness.example/w1")
    with pytest.raises(NoteError):
        verify_cosignature(line, body, impostor)


def test_cosignature_fails_for_changed_body_or_timestamp() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    line = cosign(body, CosignatureSigner.from_key(W1_SKEY), timestamp=1000)
    with pytest.raises(NoteError, match="invalid cosignature"):
        verify_cosignature(line, Checkpoint(ORIGIN, 43, ROOT).body(), W1_VKEY)
    name_part, b64 = line.rstrip("\n").rsplit(" ", 1)
    payload = bytearray(base64.b64decode(b64))
    payload[11] ^= 1  # timestamp 1000 -> 1001
    forged = f"{name_part} {base64.b64encode(bytes(payload)).decode()}\n"
    with pytest.raises(NoteError, match="invalid cosignature"):
        verify_cosignature(forged, body, W1_VKEY)


def test_cosign_rejects_bad_input() -> None:
    signer = CosignatureSigner.from_key(W1_SKEY)
    with pytest.raises(CheckpointError):
        cosign("not a checkpoint\n", signer, timestamp=1)
    with pytest.raises(NoteError, match="2\\^63"):
        cosign(Checkpoint(ORIGIN, 1, ROOT).body(), signer, timestamp=2**63)


def test_open_checkpoint_with_cosignatures() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    msg = sign_checkpoint(cp, Signer.from_key(LOG_SKEY))
    msg += cosign(cp.body(), CosignatureSigner.from_key(W1_SKEY), timestamp=111).encode()
    msg += cosign(cp.body(), CosignatureSigner.from_key(W2_SKEY), timestamp=222).encode()
    opened, cosigs = open_checkpoint(
        msg, origin=ORIGIN, verifier=LOG_VKEY, witnesses=[W1_VKEY, W2_VKEY]
    )
    assert opened == cp
    w1, w2 = CosignatureVerifier.from_key(W1_VKEY), CosignatureVerifier.from_key(W2_VKEY)
    assert cosigs == [
        Cosignature(w1.name, w1.key_id, 111),
        Cosignature(w2.name, w2.key_id, 222),
    ]
    # Unknown witnesses are ignored, not fatal.
    _, cosigs = open_checkpoint(msg, origin=ORIGIN, verifier=LOG_VKEY, witnesses=[W2_VKEY])
    assert [c.timestamp for c in cosigs] == [222]


def test_open_checkpoint_rejects_bad_cosignature_from_known_witness() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    msg = sign_checkpoint(cp, Signer.from_key(LOG_SKEY))
    msg += cosign(
        Checkpoint(ORIGIN, 41, ROOT).body(), CosignatureSigner.from_key(W1_SKEY), timestamp=1
    ).encode()
    with pytest.raises(NoteError, match=r"invalid signature for key witness\.example/w1"):
        open_checkpoint(msg, origin=ORIGIN, verifier=LOG_VKEY, witnesses=[W1_VKEY])


def test_cosignature_signer_works_inside_sign_note() -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT)
    msg = sign_note(
        cp.body(),
        Signer.from_key(LOG_SKEY),
        CosignatureSigner.from_key(W1_SKEY, clock=lambda: 1234.9),
    )
    _, cosigs = open_checkpoint(msg, origin=ORIGIN, verifier=LOG_VKEY, witnesses=[W1_VKEY])
    assert [c.timestamp for c in cosigs] == [1234]
