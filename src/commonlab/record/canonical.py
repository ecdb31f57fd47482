"""Canonical JSON bytes for the public record.

Owns the one serialisation every hashed or signed JSON value goes through:
RFC 8785 JSON Canonicalization Scheme (JCS), via the ``rfc8785`` package.
"""

from __future__ import annotations

import math
from typing import Any

import rfc8785

__all__ = ["canonical_json"]


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) encoding of ``value`` as UTF-8 bytes.

    Raises ValueError if ``value`` holds a NaN or infinite float (JSON cannot
    represent them) or anything else JCS cannot encode.
    """
    _reject_non_finite(value, "$")
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise value as RFC 8785 JSON: {exc}") from exc


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
