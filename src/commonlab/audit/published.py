"""What the facility publishes, read as anyone may: public GET routes, no token.

The audit compares the replayed record with these; a route that fails is itself a finding
(`PublishedError`), not a crash.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Published", "PublishedError"]


class PublishedError(Exception):
    """A public route did not answer as documented."""


@dataclass
class Published:
    url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def json(self, path: str, **params: Any) -> Any:
        return self._get(path, params).json()

    def csv(self, path: str, **params: Any) -> list[dict[str, str]]:
        text = self._get(path, {**params, "format": "csv"}).text
        return list(csv.DictReader(io.StringIO(text)))

    def pages(self, path: str, **params: Any) -> list[Any]:
        """Every item of a paginated list route (`items`, and `next` passed back as `after`)."""
        items: list[Any] = []
        after = None
        while True:
            page = self.json(path, **params, limit=500, **({"after": after} if after else {}))
            items.extend(page["items"])
            after = page.get("next")
            if not after:
                return items

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        target = self.url.rstrip("/") + path
        try:
            response = self.http.get(target, params=params)
        except httpx.HTTPError as exc:
            raise PublishedError(f"GET {path} did not answer ({exc})") from None
        if response.status_code != 200:
            raise PublishedError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
        return response
