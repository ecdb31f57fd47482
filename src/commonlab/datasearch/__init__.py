"""Search over the data models were trained on (issue 18: training-data transparency).

Today: the exact-match index over token ids (`build_index`, `ExactIndex`): count, locate
and show in context any sequence of tokens in a dataset's records, at 5 bytes per token.
Index jobs, the API, tracing, semantic search, membership and opt-outs build on it.
"""

from commonlab.datasearch.build import BuildProgress, build_index
from commonlab.datasearch.exact import Context, ExactIndex, Hit
from commonlab.datasearch.layout import MAX_VOCAB_SIZE, Manifest

__all__ = [
    "MAX_VOCAB_SIZE",
    "BuildProgress",
    "Context",
    "ExactIndex",
    "Hit",
    "Manifest",
    "build_index",
]
