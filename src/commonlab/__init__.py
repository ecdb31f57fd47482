"""commonlab: the software that runs a public, open AI research facility."""

__version__ = "0.1.0"
