"""Open models and data: a content-addressed store, dataset and model repositories with
immutable signed versions, cards, Croissant descriptions, lineage and a Hub-compatible API."""
