"""The datasearch domain as other packages use it: searching (`search`: verbatim and by
meaning, tracing, membership, which datasets a search looks in), opt-outs (`optouts`: filing,
decisions, the exclusions index and exclude jobs are admitted with, the signed filter), and
where a search looks and what it leaves out (`targets`: index versions, the deletion list).

Each use case authorizes first (reading an index is reading its data: a download), and
every answer honours the deletion list at once. Import from here, not from the modules.
"""

from __future__ import annotations

from commonlab.datasearch.optouts import (
    decide_optout,
    exclusions_for,
    file_optout,
    get_optout,
    list_optouts,
    signed_filter,
)
from commonlab.datasearch.search import index_status, membership, search, semantic_search, trace
from commonlab.datasearch.targets import (
    MAX_CONTEXT_TOKENS,
    MAX_HITS_SHOWN,
    honoured_digests,
    note_index_build,
)

__all__ = [
    "MAX_CONTEXT_TOKENS",
    "MAX_HITS_SHOWN",
    "decide_optout",
    "exclusions_for",
    "file_optout",
    "get_optout",
    "honoured_digests",
    "index_status",
    "list_optouts",
    "membership",
    "note_index_build",
    "search",
    "semantic_search",
    "signed_filter",
    "trace",
]
