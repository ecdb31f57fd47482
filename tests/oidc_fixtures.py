"""The real OpenID Connect provider ./scripts/oidc_up starts (Debian's glewlwyd on loopback),
as fixtures: no mock of the provider anywhere.

`oidc` (session) reads the provider's provider.json (starting it with scripts/oidc_up when it
is installed but down; each xdist worker has its own, see `_instance`); tests skip on a laptop
without glewlwyd and fail under CI=true.
glewlwyd matches redirect URIs exactly, port included, so each served facility registers a
client of its own (`register_client`) through the provider's administration API.

`sign_in_at_provider` walks the provider's own sign-in API the way its login page does (the
password, the consent to the client, then the authorization request), for tests that need a
real code without a browser; the journeys use Chromium on the provider's real pages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from commonlab.config import OidcProvider
from commonlab.identity import federation

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
OIDC_DIR = Path(os.environ.get("COMMONLAB_OIDC_DIR", "/var/tmp/commonlab-oidc"))
OIDC_PORT = int(os.environ.get("COMMONLAB_OIDC_PORT", "4593"))


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class Glewlwyd:
    """The provider, as provider.json describes it."""

    issuer: str
    orcid_issuer: str
    orcid_id: str
    username: str
    password: str
    affiliation: str
    admin_username: str
    admin_password: str

    @property
    def base(self) -> str:
        return self.issuer.rsplit("/api/", 1)[0]

    @contextmanager
    def admin(self) -> Iterator[httpx.Client]:
        """The provider's administration API, signed in as its admin."""
        with httpx.Client(base_url=self.base, timeout=15) as web:
            answer = web.post(
                "/api/auth/",
                json={"username": self.admin_username, "password": self.admin_password},
            )
            assert answer.status_code == 200, answer.text
            yield web

    def register_client(self, redirect_uri: str) -> Client:
        """A confidential client of this provider for one served facility's callback."""
        client = Client(f"commonlab-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex, redirect_uri)
        with self.admin() as web:
            answer = web.post(
                "/api/client/",
                json={
                    "client_id": client.client_id,
                    "name": "commonlab (a test's facility)",
                    "enabled": True,
                    "confidential": True,
                    "client_secret": client.client_secret,
                    "token_endpoint_auth_method": ["client_secret_basic"],
                    "redirect_uri": [redirect_uri],
                    "authorization_type": ["code"],
                    "scope": ["openid"],
                },
            )
        assert answer.status_code == 200, answer.text
        return client

    def add_user(self, affiliation: str | None = None) -> tuple[str, str]:
        """A user of the provider of one's own: (username, password)."""
        username, password = f"u{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        user: dict[str, Any] = {
            "username": username,
            "password": password,
            "enabled": True,
            "name": f"Researcher {username}",
            "email": f"{username}@example.org",
            "scope": ["openid"],
        }
        if affiliation is not None:
            user["schac_home_organization"] = affiliation
        with self.admin() as web:
            answer = web.post("/api/user/", json=user)
        assert answer.status_code == 200, answer.text
        return username, password

    def update_user(self, username: str, **fields: Any) -> None:
        """Change a user's fields at the provider (their name, e-mail, ...), as its admin."""
        with self.admin() as web:
            user = web.get(f"/api/user/{username}")
            assert user.status_code == 200, user.text
            changed = {**user.json(), **fields}
            answer = web.put(f"/api/user/{username}", json=changed)
        assert answer.status_code == 200, answer.text

    def provider(
        self,
        client: Client,
        *,
        name: str = "uni-a",
        display_name: str = "University A",
        kind: str = "oidc",
        issuer: str | None = None,
        **overrides: Any,
    ) -> OidcProvider:
        """The facility's setting for this provider and client."""
        return OidcProvider(
            name=name,
            display_name=display_name,
            kind=kind,  # type: ignore[arg-type]
            issuer=issuer or (self.orcid_issuer if kind == "orcid" else self.issuer),
            client_id=client.client_id,
            client_secret=client.client_secret,
            scopes=("openid",),
            **overrides,
        )


def _read(path: Path) -> Glewlwyd:
    data = json.loads(path.read_text())
    fields = Glewlwyd.__dataclass_fields__
    return Glewlwyd(**{k: v for k, v in data.items() if k in fields})


def _answers(issuer: str) -> bool:
    try:
        return httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=3).is_success
    except httpx.HTTPError:
        return False


def _instance(worker_id: str) -> tuple[Path, int]:
    """This worker's provider: its folder and port. glewlwyd on SQLite takes one writer at a
    time (its database layer sets no busy timeout, so a second writer's query fails), so
    each xdist worker runs its own; a run without xdist uses the one scripts/test started."""
    if not worker_id.startswith("gw"):
        return OIDC_DIR, OIDC_PORT
    number = int(worker_id.removeprefix("gw"))
    return OIDC_DIR.with_name(f"{OIDC_DIR.name}-{worker_id}"), OIDC_PORT + 1 + number


@pytest.fixture(scope="session")
def oidc(worker_id: str) -> Glewlwyd:
    folder, port = _instance(worker_id)
    path = folder / "provider.json"
    if not (path.exists() and _answers(_read(path).issuer)) and shutil.which("glewlwyd"):
        environment = {
            **os.environ,
            "COMMONLAB_OIDC_DIR": str(folder),
            "COMMONLAB_OIDC_PORT": str(port),
        }
        subprocess.run(
            [str(ROOT / "scripts" / "oidc_up")], env=environment, check=False, capture_output=True
        )
    if not path.exists() or not _answers(_read(path).issuer):
        message = f"no OpenID Connect provider at {folder}: run ./scripts/oidc_up"
        if IN_CI:
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    federation.forget_providers()
    return _read(path)


def sign_in_at_provider(
    provider: Glewlwyd,
    authorization_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    client_id: str,
) -> str:
    """Follow the facility's authorization URL as a person would: sign in at the provider
    with a password, consent to the client, and return where the provider sends the browser
    back (the facility's callback, with its code and state)."""
    with httpx.Client(base_url=provider.base, timeout=15) as web:
        answer = web.post(
            "/api/auth/",
            json={
                "username": username or provider.username,
                "password": password or provider.password,
            },
        )
        assert answer.status_code == 200, answer.text
        answer = web.put(f"/api/auth/grant/{client_id}", json={"scope": "openid"})
        assert answer.status_code == 200, answer.text
        # What the provider's login page adds once the person has signed in and consented.
        back = web.get(authorization_url + "&g_continue", follow_redirects=False)
        assert back.status_code == 302, (back.status_code, back.text[:300])
        location = back.headers["location"]
        assert "code=" in location, location
        return location


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
