"""The opt-out filter: no false negatives, false positives near the rate it was sized for,
a byte format that round-trips and refuses anything malformed, reimplementable from its
docstring, and a signed envelope that only the facility's key opens.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from commonlab.artifacts.signing import pae
from commonlab.datasearch.optout_filter import (
    FILTER_MAGIC,
    MAX_FILTER_ITEMS,
    PAYLOAD_TYPE,
    OptoutFilter,
    SignedOptoutFilter,
    sign_filter,
    verify_filter,
)
from commonlab.errors import InvalidInput
from commonlab.record.canonical import canonical_json
from commonlab.record.note import Signer, generate_signer


def random_digests(seed: int, count: int) -> list[bytes]:
    raw = np.random.default_rng(seed).bytes(32 * count)
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


MEMBERS = random_digests(1, 10_000)


@pytest.fixture(scope="module")
def members_filter() -> OptoutFilter:
    return OptoutFilter.build(MEMBERS)


def test_every_member_is_found_in_bytes_and_in_hex(members_filter: OptoutFilter) -> None:
    assert members_filter.items == 10_000
    assert members_filter.might_contain_many(MEMBERS).all()
    assert all(members_filter.might_contain(d.hex()) for d in MEMBERS[:500])
    assert members_filter.might_contain(MEMBERS[0].hex().upper())


def test_sized_by_the_standard_formulas(members_filter: OptoutFilter) -> None:
    n, p = 10_000, 1e-6
    assert members_filter.bits == math.ceil(-n * math.log(p) / math.log(2) ** 2)
    assert members_filter.hashes == 20
    assert len(members_filter.data) == (members_filter.bits + 7) // 8
    assert members_filter.false_positive_rate == pytest.approx(p, rel=0.05)


@pytest.mark.parametrize("rate", [1e-2, 1e-3])
def test_false_positives_come_near_the_rate_sized_for(rate: float) -> None:
    optout_filter = OptoutFilter.build(MEMBERS, false_positive_rate=rate)
    outsiders = random_digests(2, 100_000)
    measured = optout_filter.might_contain_many(outsiders).mean()
    assert rate / 2 < measured < rate * 2


def test_at_the_default_rate_outsiders_are_almost_never_reported(
    members_filter: OptoutFilter,
) -> None:
    # 1e-6 x 100,000 expects 0.1 false positives.
    assert members_filter.might_contain_many(random_digests(3, 100_000)).sum() <= 2


def test_repeats_count_once_and_an_empty_filter_holds_nothing() -> None:
    digests = random_digests(4, 50)
    assert OptoutFilter.build(digests * 3) == OptoutFilter.build(digests)
    assert OptoutFilter.build(digests * 3).items == 50
    empty = OptoutFilter.build([])
    assert empty.items == 0
    assert not empty.might_contain_many(random_digests(5, 1000)).any()
    assert OptoutFilter.from_bytes(empty.to_bytes()) == empty


def reference_might_contain(raw: bytes, digest: bytes) -> bool:
    """The check as the module docstring describes it, written out independently."""
    magic, version, k, _, m, _ = struct.unpack(">8sHHIQQ", raw[:32])
    assert (magic, version) == (b"clOptout", 1)
    bits = raw[32:]
    h1, h2 = int.from_bytes(digest[0:8], "big"), int.from_bytes(digest[8:16], "big")
    positions = [(h1 + i * h2) % m for i in range(k)]
    return all((bits[p // 8] >> (p % 8)) & 1 for p in positions)


def test_the_documented_format_is_what_is_written(members_filter: OptoutFilter) -> None:
    raw = members_filter.to_bytes()
    outsiders = random_digests(6, 20_000)
    for digest in MEMBERS[:200]:
        assert reference_might_contain(raw, digest)
    assert [reference_might_contain(raw, d) for d in outsiders] == list(
        members_filter.might_contain_many(outsiders)
    )


def test_positions_stay_exact_at_the_largest_filter() -> None:
    # h1 mod m + i (h2 mod m) is computed in uint64: near m = 2**35 and k = 64 it must not wrap.
    from commonlab.datasearch.optout_filter import MAX_FILTER_BITS, _positions

    for digest in [bytes([0xFF] * 32), *random_digests(10, 20)]:
        h1, h2 = int.from_bytes(digest[0:8], "big"), int.from_bytes(digest[8:16], "big")
        for m in (MAX_FILTER_BITS, MAX_FILTER_BITS - 1, 64, 1_000_003):
            expected = [(h1 + i * h2) % m for i in range(64)]
            words = np.frombuffer(digest, dtype=">u8").reshape(1, 4)
            assert _positions(words, m, 64)[0].tolist() == expected


def test_bytes_round_trip(members_filter: OptoutFilter) -> None:
    raw = members_filter.to_bytes()
    assert raw.startswith(FILTER_MAGIC)
    assert OptoutFilter.from_bytes(raw) == members_filter
    odd = OptoutFilter.build(random_digests(7, 31), false_positive_rate=0.1)
    assert odd.bits % 8 != 0  # exercises the padding check below
    assert OptoutFilter.from_bytes(odd.to_bytes()) == odd


def header(**fields: int | bytes) -> bytes:
    values: dict[str, Any] = {
        "magic": FILTER_MAGIC,
        "version": 1,
        "k": 7,
        "reserved": 0,
        "m": 64,
        "n": 3,
    } | fields
    return struct.pack(">8sHHIQQ", *values.values())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "32-byte header"),
        (b"clOptout\x00", "32-byte header"),
        (header(magic=b"notAfilt") + bytes(8), "not an opt-out filter"),
        (header(version=2) + bytes(8), "version 2"),
        (header(k=0) + bytes(8), "k = 0"),
        (header(k=65) + bytes(8), "k = 65"),
        (header(m=63) + bytes(8), "m = 63"),
        (header(m=1 << 36) + bytes(8), "m = 68719476736"),
        (header(n=MAX_FILTER_ITEMS + 1) + bytes(8), "n = 100000001"),
        (header(reserved=1) + bytes(8), "reserved"),
        (header() + bytes(7), "39 bytes, its header says 40"),
        (header() + bytes(9), "41 bytes"),
        (header(m=65) + bytes(8) + b"\x02", "bits past m"),
    ],
)
def test_malformed_bytes_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        OptoutFilter.from_bytes(raw)


def test_well_formed_odd_sizes_are_read() -> None:
    assert OptoutFilter.from_bytes(header(m=65) + bytes(8) + b"\x01").bits == 65


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        (b"\x00" * 31, "32 bytes"),
        ("ab" * 31, "64 hex digits"),
        ("zz" * 32, "64 hex digits"),
        (12345, "32 bytes"),
    ],
)
def test_bad_digests_are_refused(digest: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=f"digest 1: .*{message}"):
        OptoutFilter.build([MEMBERS[0], digest])
    with pytest.raises(InvalidInput, match=message):
        OptoutFilter.build([]).might_contain(digest)


@pytest.mark.parametrize("rate", [0.0, 1e-13, 0.6, float("nan"), "0.01"])
def test_rates_out_of_range_are_refused(rate: Any) -> None:
    with pytest.raises(InvalidInput, match="false_positive_rate"):
        OptoutFilter.build([], false_positive_rate=rate)


# --- signing ----------------------------------------------------------------

ISSUED = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture(scope="module")
def facility_key() -> tuple[Signer, str]:
    skey, vkey = generate_signer("commonlab.test")
    return Signer.from_key(skey), vkey


def signed(optout_filter: OptoutFilter, key: tuple[Signer, str]) -> dict[str, Any]:
    signer, vkey = key
    return sign_filter(optout_filter, signer, vkey, issued_at=ISSUED, optouts=4)


def test_a_signed_filter_verifies_and_carries_its_facts(
    members_filter: OptoutFilter, facility_key: tuple[Signer, str]
) -> None:
    envelope = json.loads(json.dumps(signed(members_filter, facility_key)))  # as published
    assert envelope["payloadType"] == PAYLOAD_TYPE
    opened = verify_filter(envelope, facility_key[1])
    assert opened == SignedOptoutFilter(
        filter=members_filter,
        issued_at="2026-03-01T10:30:00Z",
        optouts=4,
        false_positive_rate=members_filter.false_positive_rate,
    )
    assert opened.filter.might_contain(MEMBERS[9])
    facts = json.loads(base64.b64decode(envelope["payload"]))
    assert set(facts) == {"filter", "items", "false_positive_rate", "issued_at", "optouts"}
    assert base64.b64decode(envelope["payload"]) == canonical_json(facts)


def test_a_tampered_payload_is_refused(facility_key: tuple[Signer, str]) -> None:
    optout_filter = OptoutFilter.build(random_digests(8, 100))
    envelope = signed(optout_filter, facility_key)
    facts = json.loads(base64.b64decode(envelope["payload"]))
    # Clearing the filter's bits would let opted-out content through: refused.
    cleared = OptoutFilter(
        bits=optout_filter.bits,
        hashes=optout_filter.hashes,
        items=optout_filter.items,
        data=bytes(len(optout_filter.data)),
    )
    for change in (
        {"filter": base64.b64encode(cleared.to_bytes()).decode()},
        {"optouts": 3},
        {"issued_at": "2027-01-01T00:00:00Z"},
    ):
        tampered = copy.deepcopy(envelope)
        tampered["payload"] = base64.b64encode(canonical_json(facts | change)).decode()
        with pytest.raises(InvalidInput, match=r"no signature by commonlab\.test verifies"):
            verify_filter(tampered, facility_key[1])
    flipped = copy.deepcopy(envelope)
    sig = bytearray(base64.b64decode(flipped["signatures"][0]["sig"]))
    sig[0] ^= 1
    flipped["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(InvalidInput, match="no signature"):
        verify_filter(flipped, facility_key[1])


def test_another_key_is_refused(facility_key: tuple[Signer, str]) -> None:
    envelope = signed(OptoutFilter.build(random_digests(9, 10)), facility_key)
    _, other = generate_signer("commonlab.test")  # same name, another key
    with pytest.raises(InvalidInput, match=r"no signature by commonlab\.test verifies"):
        verify_filter(envelope, other)
    with pytest.raises(InvalidInput, match="not a verifier key"):
        verify_filter(envelope, "not-a-key")


def test_another_payload_type_is_refused(facility_key: tuple[Signer, str]) -> None:
    envelope = signed(OptoutFilter.build([]), facility_key)
    # The facility key also signs manifests: one of those is not an opt-out filter.
    envelope["payloadType"] = "application/vnd.in-toto+json"
    with pytest.raises(InvalidInput, match=r"payload type 'application/vnd\.in-toto"):
        verify_filter(envelope, facility_key[1])


@pytest.mark.parametrize(
    "envelope",
    [
        [],
        {"payloadType": PAYLOAD_TYPE},
        {"payloadType": PAYLOAD_TYPE, "payload": "!!", "signatures": []},
        {"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": [{"sig": 5}]},
        {"payloadType": PAYLOAD_TYPE, "payload": "", "signatures": "abc"},
    ],
)
def test_malformed_envelopes_are_refused(envelope: Any, facility_key: tuple[Signer, str]) -> None:
    with pytest.raises(InvalidInput, match="DSSE"):
        verify_filter(envelope, facility_key[1])


def sign_payload(facts: dict[str, Any], signer: Signer, vkey: str) -> dict[str, Any]:
    payload = canonical_json(facts)
    signature = signer.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": vkey, "sig": base64.b64encode(signature).decode()}],
    }


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"items": 0}, "not an opt-out filter"),
        ({"filter": "AAAA", "items": 0, "issued_at": "", "optouts": 0}, "32-byte header"),
        (
            {
                "filter": base64.b64encode(OptoutFilter.build([]).to_bytes()).decode(),
                "items": 5,
                "issued_at": "2026-03-01T10:30:00Z",
                "optouts": 0,
                "false_positive_rate": 0,
            },
            "says 5 items, its filter 0",
        ),
    ],
)
def test_a_signed_payload_that_is_not_a_filter_is_refused(
    facts: dict[str, Any], message: str, facility_key: tuple[Signer, str]
) -> None:
    with pytest.raises(InvalidInput, match=message):
        verify_filter(sign_payload(facts, *facility_key), facility_key[1])


def test_signing_needs_an_aware_time_and_a_count(facility_key: tuple[Signer, str]) -> None:
    signer, vkey = facility_key
    empty = OptoutFilter.build([])
    with pytest.raises(InvalidInput, match="time zone"):
        sign_filter(empty, signer, vkey, issued_at=datetime(2026, 1, 1), optouts=0)
    with pytest.raises(InvalidInput, match="optouts"):
        sign_filter(empty, signer, vkey, issued_at=datetime.now(UTC), optouts=-1)
