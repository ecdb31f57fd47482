"""Search over the data models were trained on (issue 18: training-data transparency).

The domain: indexes of dataset versions, published as artifacts by index jobs
(`workloads`), opened by the server (`opened`) to search, trace and answer membership
(`service`, `api`), and opt-outs with the deletion list every answer honours. The index
itself is `build_index` and `ExactIndex`; tracing is `trace`, semantic search `semantic`,
the signed filter of opted-out digests `optout_filter`.

The names below are loaded when first used: they need numpy (the `sim` extra) and
pydivsufsort (the `search` extra), and a core install imports this package to serve its
routes, which then say which extra is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "MAX_VOCAB_SIZE",
    "BuildProgress",
    "Context",
    "ExactIndex",
    "Hit",
    "Manifest",
    "build_index",
]

_HOMES = {
    "MAX_VOCAB_SIZE": "layout",
    "Manifest": "layout",
    "BuildProgress": "build",
    "build_index": "build",
    "Context": "exact",
    "ExactIndex": "exact",
    "Hit": "exact",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"commonlab.datasearch.{_HOMES[name]}"), name)
    if name in ("semantic", "trace", "optout_filter"):
        return importlib.import_module(f"commonlab.datasearch.{name}")
    raise AttributeError(f"module 'commonlab.datasearch' has no attribute {name!r}")
