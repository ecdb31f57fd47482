"""The operator's instruments on the app: Prometheus metrics at /metrics, readiness at
/api/v1/ready, structured JSON logs with a request id."""

from __future__ import annotations

from fastapi import FastAPI

from commonlab.facility import Facility

__all__ = ["install_instruments"]


def install_instruments(app: FastAPI, facility: Facility) -> None:
    """Add the metrics, readiness and request-id middleware and routes to the app."""
