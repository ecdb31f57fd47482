"""The `commonlab` command: a client of a facility's HTTP API, plus `up`."""
