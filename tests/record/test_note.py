"""Signed notes, checked against the published golang.org/x/mod/sumdb/note example."""

from __future__ import annotations

import base64

import pytest

from commonlab.record.note import (
    MAX_SIGNATURES,
    NoteError,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    generate_signer,
    is_valid_name,
    key_id,
    open_note,
    sign_note,
)

# From the golang.org/x/mod/sumdb/note package documentation and note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"
PUBLISHED = (TEXT + "\n" + PETER_SIG).encode()

PETER = Signature("PeterNeumann", 0xC74F20A3, PETER_B64)
ENOCH = Signature("EnochRoot", 0xAF0CFE78, ENOCH_B64)


def peter() -> Verifier:
    return Verifier.from_key(PETER_VKEY)


def enoch() -> Verifier:
    return Verifier.from_key(ENOCH_VKEY)


# --- the published example --------------------------------------------------


def test_sign_reproduces_published_signature_byte_for_byte() -> None:
    assert sign_note(TEXT, Signer.from_key(PETER_SKEY)) == PUBLISHED


def test_open_verifies_published_note() -> None:
    note = open_note(PUBLISHED, verifiers=[peter()])
    assert note.text == TEXT
    assert note.signatures == (PETER,)
    assert note.unverified_signatures == ()


def test_signer_and_verifier_keys_agree() -> None:
    signer = Signer.from_key(PETER_SKEY)
    assert (signer.name, signer.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert signer.verifier_key() == PETER_VKEY
    assert peter().key_id == 0xC74F20A3


def test_one_verified_one_unknown() -> None:
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), verifiers=[peter()])
    assert note.signatures == (PETER,)
    assert note.unverified_signatures == (ENOCH,)


def test_both_verified() -> None:
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), verifiers=[peter(), enoch()])
    assert note.signatures == (PETER, ENOCH)
    assert note.unverified_signatures == ()


def test_no_known_signer_is_rejected_but_carries_note() -> None:
    with pytest.raises(UnverifiedNoteError, match="no verifiable signatures") as info:
        open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), verifiers=[])
    assert info.value.note.unverified_signatures == (PETER, ENOCH)
    assert isinstance(info.value, NoteError)


def test_duplicate_verifier_is_ambiguous_only_when_used() -> None:
    with pytest.raises(NoteError, match="ambiguous key EnochRoot\\+af0cfe78"):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), verifiers=[enoch(), peter(), enoch()])
    open_note(PUBLISHED, verifiers=[enoch(), peter(), enoch()])


def test_duplicate_signatures_are_collapsed() -> None:
    # Mirrors Go's TestOpen: repeated known sigs count once, repeated unknown lines once.
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    note = open_note(msg.encode(), verifiers=[peter()])
    assert note.signatures == (PETER,)
    assert [s.base64 for s in note.unverified_signatures] == [
        ENOCH_B64,
        ENOCH_B64[: 60 - 12] + "ABCD" + ENOCH_B64[60 - 12 :],
    ]


# --- tampering and malformed input ------------------------------------------


def test_tampered_text_fails() -> None:
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3"):
        open_note(PUBLISHED.replace(b"answer", b"Answer"), verifiers=[peter()])


def test_tampered_signature_fails() -> None:
    msg = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3"):
        open_note(msg.encode(), verifiers=[peter()])


def test_signature_from_other_key_with_same_name_is_ignored() -> None:
    skey, vkey = generate_signer("PeterNeumann")
    forged = sign_note(TEXT, Signer.from_key(skey))
    with pytest.raises(UnverifiedNoteError):
        open_note(forged, verifiers=[peter()])
    assert open_note(forged, verifiers=[Verifier.from_key(vkey)]).text == TEXT


def test_too_many_signatures() -> None:
    msg = (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1)).encode()
    for verifiers in ([peter()], []):
        with pytest.raises(NoteError, match="more than 100 signatures"):
            open_note(msg, verifiers=verifiers)
    open_note((TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode(), verifiers=[peter()])


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "\u2014 Bad Name " + PETER_B64 + "\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + "- PeterNeumann " + PETER_B64 + "\n",  # hyphen, not em dash
        TEXT + "\n" + "\u2014 PeterNeumann " + PETER_B64.rstrip("=") + "\n",  # unpadded
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # too short to hold key ID + signature
        TEXT + "\n" + "\u2014 PeterNeumann \n",
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
    ],
)
def test_malformed_notes(msg: str) -> None:
    with pytest.raises(NoteError, match="malformed note"):
        open_note(msg.encode(), verifiers=[peter()])


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + PUBLISHED, verifiers=[peter()])


def test_text_may_contain_blank_lines() -> None:
    skey, vkey = generate_signer("example.com/log")
    text = "first\n\nsecond\n\n"
    note = open_note(sign_note(text, Signer.from_key(skey)), verifiers=[Verifier.from_key(vkey)])
    assert note.text == text


@pytest.mark.parametrize("text", ["no newline", "tab\there\n", "", "nul\x00\n"])
def test_sign_rejects_bad_text(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, Signer.from_key(PETER_SKEY))


def test_sign_with_several_signers_and_rejects_duplicates() -> None:
    skey, vkey = generate_signer("witness.example/w1")
    signers = (Signer.from_key(PETER_SKEY), Signer.from_key(skey))
    msg = sign_note(TEXT, *signers)
    assert msg.startswith(PUBLISHED)  # Ed25519 is deterministic, so the first line is unchanged
    note = open_note(msg, verifiers=[peter(), Verifier.from_key(vkey)])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "witness.example/w1"]
    with pytest.raises(NoteError, match="given twice"):
        sign_note(TEXT, signers[0], signers[0])
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note(TEXT)


# --- keys -------------------------------------------------------------------


def test_generated_keys_round_trip() -> None:
    skey, vkey = generate_signer("commonlab.example/record")
    assert skey.startswith("PRIVATE+KEY+commonlab.example/record+")
    signer, verifier = Signer.from_key(skey), Verifier.from_key(vkey)
    assert signer.key_id == verifier.key_id
    assert signer.verifier_key() == vkey
    raw = base64.b64decode(vkey.split("+", 2)[2])
    assert raw[0] == 0x01 and len(raw) == 33
    assert key_id("commonlab.example/record", raw) == verifier.key_id


@pytest.mark.parametrize(
    "name", ["", "has space", "a+b", "tab\tname", "nbsp\u00a0name", "ideo\u3000space"]
)
def test_bad_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(NoteError):
        generate_signer(name)


def test_verifier_key_manglings_are_rejected() -> None:
    # As Go's TestNewVerifier: every proper substring and every single-byte bump fails.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    Verifier.from_key(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        bumped = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            Verifier.from_key(bumped)
    # Wrong key length / unknown algorithm, each with a matching key ID.
    with pytest.raises(NoteError):
        Verifier.from_key(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
    with pytest.raises(NoteError):
        Verifier.from_key("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_signer_key_manglings_are_rejected() -> None:
    for i in range(len(PETER_SKEY)):
        bumped = PETER_SKEY[:i] + chr(ord(PETER_SKEY[i]) + 1) + PETER_SKEY[i + 1 :]
        with pytest.raises(NoteError):
            Signer.from_key(bumped)
    for cut in range(1, len(PETER_SKEY)):
        with pytest.raises(NoteError):
            Signer.from_key(PETER_SKEY[:cut])
        with pytest.raises(NoteError):
            Signer.from_key(PETER_SKEY[cut:])


def test_key_id_with_python_int_parsing_quirks_is_rejected() -> None:
    # int(x, 16) accepts '+', '_' and spaces; key IDs must be exactly 8 hex digits.
    for kid in ("+c74f20a", "c74f_20a3", " c74f20a"):
        with pytest.raises(NoteError, match="8 hex digits"):
            Verifier.from_key(f"PeterNeumann+{kid}+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
