"""The signed membership filter of opted-out content: a Bloom filter over the SHA-256
digests of opted-out files and records, which the facility publishes signed so that anyone
can check offline whether content is opted out (no false negatives; false positives at a
stated rate, so a "maybe" is confirmed against the facility's list).

The format, for a reimplementation. `to_bytes` is a 32-byte header, then the bits:

    magic    8 bytes  b"clOptout"
    version  uint16   1
    k        uint16   index positions per digest, 1 to 64
    reserved uint32   0
    m        uint64   bits in the filter, 64 to 2**35
    n        uint64   distinct digests added
    bits     ceil(m / 8) bytes: bit p is (bits[p // 8] >> (p % 8)) & 1; the unused high
             bits of the last byte are 0

all integers big-endian. A digest d (32 bytes) sets, and is checked at, the k positions

    h1 = int.from_bytes(d[0:8], "big"), h2 = int.from_bytes(d[8:16], "big")
    position_i = (h1 + i * h2) mod m    for i = 0 .. k-1, in exact integer arithmetic

(double hashing: a SHA-256 digest is already uniform, so its first two 64-bit words serve as
two independent hashes). A digest might be in the filter iff all k of its bits are set.

Sizing for n digests and a false-positive rate p, the standard optimum:
m = ceil(-n ln p / (ln 2)^2) bits and k = round(-log2 p), so about 28.8 bits (3.6 bytes) a
digest and k = 20 at the default p = 1e-6.

Signing: a DSSE envelope, as the facility signs dataset manifests (`artifacts/signing.py`,
the same `pae` and the same facility Ed25519 key, whose verifier key a checker already holds
to check manifests and checkpoints), of the canonical JSON (RFC 8785)

    {"filter": base64(to_bytes), "items": n, "false_positive_rate": expected rate,
     "issued_at": RFC 3339 UTC time, "optouts": opt-out requests it covers}

with payload type `PAYLOAD_TYPE`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from commonlab.artifacts.signing import pae
from commonlab.errors import InvalidInput
from commonlab.record.canonical import canonical_json
from commonlab.record.note import MAX_SIGNATURES, NoteError, NoteSigner, Verifier

__all__ = [
    "DEFAULT_FALSE_POSITIVE_RATE",
    "DIGEST_BYTES",
    "FILTER_MAGIC",
    "FILTER_VERSION",
    "MAX_FILTER_BITS",
    "MAX_FILTER_ITEMS",
    "PAYLOAD_TYPE",
    "OptoutFilter",
    "SignedOptoutFilter",
    "sign_filter",
    "verify_filter",
]

PAYLOAD_TYPE = "application/vnd.commonlab.optout-filter+json"
FILTER_MAGIC = b"clOptout"
FILTER_VERSION = 1
DIGEST_BYTES = 32
DEFAULT_FALSE_POSITIVE_RATE = 1e-6

MAX_FILTER_ITEMS = 100_000_000
MIN_FILTER_BITS = 64
# 4 GiB of bits: 10^8 digests at a rate of 1e-12. Also keeps h1 mod m + i * (h2 mod m) well
# inside 64 bits, so numpy computes the positions exactly.
MAX_FILTER_BITS = 1 << 35
MAX_HASHES = 64
# Rates outside this range make no sense for a published filter: above, most checks say
# "maybe"; below, k and m grow for nothing a SHA-256 collision would not already give.
MIN_FALSE_POSITIVE_RATE = 1e-12
MAX_FALSE_POSITIVE_RATE = 0.5
MAX_OPTOUTS = 1 << 53  # a JSON-safe integer

_HEADER = struct.Struct(">8sHHIQQ")
# Digests hashed to positions per numpy pass: bounds the memory a build or check holds.
_CHUNK = 1 << 16


@dataclass(frozen=True)
class OptoutFilter:
    """A Bloom filter of SHA-256 digests (see the module docstring for its exact format).

    `might_contain` is False only for a digest that was never added."""

    bits: int  # m
    hashes: int  # k
    items: int  # n
    data: bytes  # ceil(m / 8) bytes

    @classmethod
    def build(
        cls,
        digests: Iterable[bytes | str],
        *,
        false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE,
    ) -> OptoutFilter:
        """A filter of `digests` (32 raw bytes or 64 hex digits each; repeats count once),
        sized so that a digest not among them is reported with `false_positive_rate`."""
        if not (
            isinstance(false_positive_rate, float | int)
            and MIN_FALSE_POSITIVE_RATE <= false_positive_rate <= MAX_FALSE_POSITIVE_RATE
        ):
            raise InvalidInput(
                f"false_positive_rate {false_positive_rate!r}: give a rate from "
                f"{MIN_FALSE_POSITIVE_RATE} to {MAX_FALSE_POSITIVE_RATE}"
            )
        unique = np.unique(_digest_array(digests), axis=0)
        items = len(unique)
        bits = max(
            MIN_FILTER_BITS,
            math.ceil(-items * math.log(false_positive_rate) / math.log(2) ** 2),
        )
        hashes = max(1, round(-math.log2(false_positive_rate)))
        data = np.zeros((bits + 7) // 8, dtype=np.uint8)
        for first in range(0, items, _CHUNK):
            positions = _positions(unique[first : first + _CHUNK], bits, hashes).ravel()
            # One bit value at a time, so that repeated bytes in one fancy assignment all
            # write the same value (numpy keeps only one write per repeated index).
            for bit in range(8):
                chosen = positions[(positions & 7) == bit] >> 3
                data[chosen] |= np.uint8(1 << bit)
        return cls(bits=bits, hashes=hashes, items=items, data=data.tobytes())

    def might_contain(self, digest: bytes | str) -> bool:
        """False if `digest` was surely not added; True if it was, or (at the filter's
        false-positive rate) was not."""
        return bool(self.might_contain_many([digest])[0])

    def might_contain_many(self, digests: Iterable[bytes | str]) -> np.ndarray:
        """`might_contain` of each digest, as a boolean array in the order given."""
        array = _digest_array(digests)
        data = np.frombuffer(self.data, dtype=np.uint8)
        answers = np.empty(len(array), dtype=bool)
        for first in range(0, len(array), _CHUNK):
            positions = _positions(array[first : first + _CHUNK], self.bits, self.hashes)
            set_bits = (data[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
            answers[first : first + _CHUNK] = set_bits.all(axis=1)
        return answers

    @property
    def false_positive_rate(self) -> float:
        """The expected rate for what it holds: (1 - e^(-k n / m))^k."""
        return (1.0 - math.exp(-self.hashes * self.items / self.bits)) ** self.hashes

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(FILTER_MAGIC, FILTER_VERSION, self.hashes, 0, self.bits, self.items)
        return header + self.data

    @classmethod
    def from_bytes(cls, raw: bytes) -> OptoutFilter:
        """The filter `to_bytes` wrote; InvalidInput for anything else."""
        if len(raw) < _HEADER.size:
            raise InvalidInput(
                f"an opt-out filter starts with a {_HEADER.size}-byte header; got {len(raw)} bytes"
            )
        magic, version, hashes, reserved, bits, items = _HEADER.unpack_from(raw)
        if magic != FILTER_MAGIC:
            raise InvalidInput(f"not an opt-out filter: it starts with {magic!r}")
        if version != FILTER_VERSION:
            raise InvalidInput(
                f"opt-out filter version {version}: this commonlab reads version {FILTER_VERSION}"
            )
        problems = [
            f"k = {hashes}, not 1 to {MAX_HASHES}" if not 1 <= hashes <= MAX_HASHES else "",
            f"m = {bits}, not {MIN_FILTER_BITS} to {MAX_FILTER_BITS}"
            if not MIN_FILTER_BITS <= bits <= MAX_FILTER_BITS
            else "",
            f"n = {items}, more than {MAX_FILTER_ITEMS}" if items > MAX_FILTER_ITEMS else "",
            f"reserved field {reserved}, not 0" if reserved else "",
        ]
        if any(problems):
            raise InvalidInput(f"malformed opt-out filter: {'; '.join(p for p in problems if p)}")
        expected = _HEADER.size + (bits + 7) // 8
        if len(raw) != expected:
            raise InvalidInput(
                f"malformed opt-out filter: {len(raw)} bytes, its header says {expected}"
            )
        data = bytes(raw[_HEADER.size :])
        if bits % 8 and data[-1] >> (bits % 8):
            raise InvalidInput("malformed opt-out filter: bits past m are set")
        return cls(bits=bits, hashes=hashes, items=items, data=data)


@dataclass(frozen=True)
class SignedOptoutFilter:
    """A filter whose envelope verified, with what the facility signed about it."""

    filter: OptoutFilter
    issued_at: str
    optouts: int
    false_positive_rate: float


def sign_filter(
    optout_filter: OptoutFilter,
    signer: NoteSigner,
    verifier_key: str,
    *,
    issued_at: datetime,
    optouts: int,
) -> dict[str, Any]:
    """A DSSE envelope over the filter and its facts, signed by `signer` (the facility's
    key, named in the envelope by its `verifier_key`). `optouts` is how many opt-out
    requests the filter covers; `issued_at` must carry a time zone."""
    if issued_at.tzinfo is None:
        raise InvalidInput("issued_at needs a time zone: pass an aware datetime")
    if isinstance(optouts, bool) or not isinstance(optouts, int) or not 0 <= optouts < MAX_OPTOUTS:
        raise InvalidInput(f"optouts {optouts!r}: give a count from 0 to {MAX_OPTOUTS - 1}")
    payload = canonical_json(
        {
            "filter": base64.b64encode(optout_filter.to_bytes()).decode("ascii"),
            "items": optout_filter.items,
            "false_positive_rate": optout_filter.false_positive_rate,
            "issued_at": issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "optouts": optouts,
        }
    )
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": verifier_key, "sig": base64.b64encode(signature).decode()}],
    }


def verify_filter(envelope: Mapping[str, Any], verifier_key: str) -> SignedOptoutFilter:
    """The filter in `envelope` if the key `verifier_key` (a `name+id+base64` verifier key
    string) signed it; InvalidInput, saying what is wrong, otherwise."""
    try:
        verifier = Verifier.from_key(verifier_key)
    except NoteError as exc:
        raise InvalidInput(f"not a verifier key: {exc}") from None
    if not isinstance(envelope, Mapping):
        raise InvalidInput("an opt-out filter envelope is a JSON object (DSSE)")
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise InvalidInput(
            f"payload type {payload_type!r}: an opt-out filter envelope has {PAYLOAD_TYPE!r}"
        )
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        entries = list(envelope["signatures"])[: MAX_SIGNATURES + 1]
        signatures = [base64.b64decode(entry["sig"], validate=True) for entry in entries]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise InvalidInput(f"malformed DSSE envelope ({exc!r}): payload and signatures") from None
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInput(f"an envelope with more than {MAX_SIGNATURES} signatures: refused")
    message = pae(PAYLOAD_TYPE, payload)
    if not any(verifier.verify(message, signature) for signature in signatures):
        raise InvalidInput(
            f"no signature by {verifier.name} verifies this opt-out filter: it was altered, "
            "or another key signed it"
        )
    # Signed by the facility, so its shape is checked only to fail with a clear message.
    try:
        facts = json.loads(payload)
        optout_filter = OptoutFilter.from_bytes(base64.b64decode(facts["filter"], validate=True))
        signed = SignedOptoutFilter(
            filter=optout_filter,
            issued_at=str(facts["issued_at"]),
            optouts=int(facts["optouts"]),
            false_positive_rate=float(facts["false_positive_rate"]),
        )
        items = int(facts["items"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise InvalidInput(f"the signed payload is not an opt-out filter ({exc!r})") from None
    if items != optout_filter.items:
        raise InvalidInput(
            f"the signed payload says {items} items, its filter {optout_filter.items}"
        )
    return signed


def _digest_array(digests: Iterable[bytes | str]) -> np.ndarray:
    """The digests as an (N, 4) uint64 array of big-endian words, checked and bounded."""
    raw = bytearray()
    for number, digest in enumerate(digests):
        if number >= MAX_FILTER_ITEMS:
            raise InvalidInput(f"more than {MAX_FILTER_ITEMS} digests: a filter holds at most that")
        raw += _digest_bytes(digest, number)
    return np.frombuffer(bytes(raw), dtype=">u8").reshape(-1, DIGEST_BYTES // 8)


def _digest_bytes(digest: bytes | str, number: int) -> bytes:
    if isinstance(digest, str):
        try:
            digest = bytes.fromhex(digest) if len(digest) == 2 * DIGEST_BYTES else b""
        except ValueError:
            digest = b""
        if not digest:
            raise InvalidInput(f"digest {number}: a SHA-256 digest is 64 hex digits")
    if not isinstance(digest, bytes | bytearray | memoryview) or len(digest) != DIGEST_BYTES:
        raise InvalidInput(f"digest {number}: a SHA-256 digest is {DIGEST_BYTES} bytes")
    return bytes(digest)


def _positions(words: np.ndarray, bits: int, hashes: int) -> np.ndarray:
    """The (N, k) bit positions of digests given as (N, 4) big-endian uint64 words.

    (h1 + i h2) mod m is computed as (h1 mod m + i (h2 mod m)) mod m, the same number, whose
    terms stay below 2**35 + 63 * 2**35 < 2**64."""
    modulus = np.uint64(bits)
    h1 = words[:, 0].astype(np.uint64) % modulus
    h2 = words[:, 1].astype(np.uint64) % modulus
    steps = np.arange(hashes, dtype=np.uint64)
    return (h1[:, None] + steps[None, :] * h2[:, None]) % modulus
