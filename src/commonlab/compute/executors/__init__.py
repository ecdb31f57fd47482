"""Executors: the adapters that run admitted jobs (`base.py` is the interface they share,
`registry.py` the one list of them by name, `fake.py` one for tests that runs nothing)."""
