"""Canonical JSON bytes for the public record.

Owns the one serialisation every hashed or signed JSON value goes through:
RFC 8785 JSON Canonicalization Scheme (JCS). Values made only of strings, safe integers,
booleans, null, lists and string-keyed objects take a fast path through the standard
library, which for exactly those values writes the same bytes as JCS (shown by a property
test against the ``rfc8785`` package); anything else (floats, astral-plane keys, lone
surrogates) goes through ``rfc8785``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import rfc8785

__all__ = ["canonical_entry", "canonical_json"]

# JCS numbers are IEEE doubles: integers beyond 2**53 would lose precision.
_MAX_SAFE_INT = 2**53 - 1
_fast_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) encoding of ``value`` as UTF-8 bytes.

    Raises ValueError if ``value`` holds a NaN or infinite float (JSON cannot
    represent them) or anything else JCS cannot encode.
    """
    if _is_plain(value):
        return _fast_encoder.encode(value).encode("utf-8")
    _reject_non_finite(value, "$")
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise value as RFC 8785 JSON: {exc}") from exc


def canonical_entry(
    *,
    type: str,
    time: str,
    actor: dict[str, str],
    subject: str,
    data: dict[str, Any],
    policy_set: str | None = None,
    schema: int | None = None,
) -> bytes:
    """`canonical_json` of a record entry, checking only the parts a caller supplies.

    The hot path of every append: the wrapper's own keys are fixed ASCII, so only the values
    need the plain-value check before the one-call encode. `policy_set` (the SHA-256 of the
    policy set the entry's decision was made under) and `schema` (the version of the entry
    schemas it was written under) are left out when None.
    """
    entry = {"type": type, "time": time, "actor": actor, "subject": subject, "data": data}
    if policy_set is not None:
        entry["policy_set"] = policy_set
    if schema is not None:
        entry["schema"] = schema
    if (
        _plain_text(type)
        and _plain_text(time)
        and _plain_text(subject)
        and (policy_set is None or _plain_text(policy_set))
        and _is_plain(actor)
        and _is_plain(data)
    ):
        return _fast_encoder.encode(entry).encode("utf-8")
    return canonical_json(entry)


def _is_plain(value: Any) -> bool:
    """True when the standard encoder's output is already canonical for `value`.

    Python sorts keys by code point and JCS by UTF-16 code unit; the two orders agree on
    the Basic Multilingual Plane. Python escapes control characters as JCS does (\\n, \\u001f),
    and leaves other characters as they are, as JCS does, except lone surrogates.
    """
    if value is None or value is True or value is False:
        return True
    kind = type(value)
    if kind is str:
        return _plain_text(value)
    if kind is int:
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if kind is list or kind is tuple:
        return all(_is_plain(item) for item in value)
    if kind is dict:
        return all(
            type(key) is str and _bmp_text(key) and _is_plain(item) for key, item in value.items()
        )
    return False


def _plain_text(text: str) -> bool:
    return text.isascii() or not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _bmp_text(text: str) -> bool:
    return text.isascii() or all(ord(ch) < 0xD800 for ch in text)


def _reject_non_finite(value: Any, path: str) -> None:
    # Walk first so the error names where the bad float is, not just that it exists.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"canonical JSON cannot encode {value!r} at {path}: "
            "NaN and infinity are not valid JSON numbers; use null or a string"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _reject_non_finite(item, f"{path}[{i}]")
