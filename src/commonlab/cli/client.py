"""The CLI's HTTP client: where the facility is, which token to send, waiting as the
facility's rate limit asks (429 with Retry-After), and turning a problem+json answer into one
line a person can act on."""

from __future__ import annotations

import os
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "CliError",
    "Client",
    "Login",
    "config_path",
    "load_login",
    "load_saved_login",
    "save_login",
]

DEFAULT_URL = "http://127.0.0.1:8000"
# A request the facility's rate limit refused (429) is sent again after its Retry-After, at
# most this often and only when the wait is at most this long: a longer one is the person's
# to choose. A refused request did nothing (the limit runs before anything else), so sending
# it again is safe whatever its method.
RATE_LIMIT_RETRIES = 3
LONGEST_RETRY_WAIT_S = 30.0


class CliError(Exception):
    """Printed as one line, exit status 1. From a refused request: its HTTP status and the
    problem document, for the few callers that act on a particular refusal."""

    def __init__(self, message: str, *, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem if isinstance(problem, dict) else {}


@dataclass(frozen=True)
class Login:
    url: str
    token: str | None


def config_path() -> Path:
    if explicit := os.environ.get("COMMONLAB_CLI_CONFIG"):
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "commonlab" / "cli.toml"


def _read_saved() -> dict[str, Any]:
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CliError(
            f"cannot read the saved login {path} ({reason}): fix it, delete it, or give "
            "COMMONLAB_URL and COMMONLAB_TOKEN"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path} is not valid TOML ({exc}): fix or delete it") from None


def load_saved_login() -> Login | None:
    """The login saved by `commonlab login` (or `up`), ignoring the environment."""
    saved = _read_saved()
    if not saved.get("url"):
        return None
    return Login(url=str(saved["url"]).rstrip("/"), token=saved.get("token") or None)


def load_login(*, url: str | None = None, token: str | None = None) -> Login:
    """Flags win over COMMONLAB_URL / COMMONLAB_TOKEN, which win over the saved login (not
    read when they give both: a job's home may hold none, or one it cannot read)."""
    url = url or os.environ.get("COMMONLAB_URL")
    if token is None:
        token = os.environ.get("COMMONLAB_TOKEN")
    if url and token is not None:
        return Login(url=url.rstrip("/"), token=token or None)
    saved = _read_saved()
    url = url or saved.get("url") or DEFAULT_URL
    if token is None and saved.get("url", "").rstrip("/") == url.rstrip("/"):
        token = saved.get("token")
    return Login(url=url.rstrip("/"), token=token or None)


def save_login(login: Login) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f'url = "{login.url}"\n' + (f'token = "{login.token}"\n' if login.token else "")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


class Client:
    def __init__(self, login: Login, *, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {login.token}"} if login.token else {}
        self.login = login
        self._http = httpx.Client(
            base_url=login.url, headers=headers, timeout=30.0, transport=transport
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        for _ in range(RATE_LIMIT_RETRIES):
            if not _waited_out(response):
                break
            response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(
                _problem_line(response), status=response.status_code, problem=_body(response)
            )
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.content

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """An answer whose body the caller reads as it comes (a file being downloaded),
        sent again after a 429 as `request` does; any other refusal is the caller's to read."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            with ExitStack() as opened:
                with self._reached():
                    response = opened.enter_context(self._http.stream(method, path, **kwargs))
                if attempt < RATE_LIMIT_RETRIES and _retry_after(response) is not None:
                    response.read()  # a refusal's few bytes, so the connection can be reused
                    if _waited_out(response):
                        continue
                yield response
                return

    @contextmanager
    def lines(self, path: str, **kwargs: Any) -> Iterator[Iterator[str]]:
        """A GET whose answer is read a line at a time as it comes (JSON lines): a refusal
        is one CliError as `request` raises, and so is a connection lost midway."""
        with self.stream("GET", path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(
                    _problem_line(response), status=response.status_code, problem=_body(response)
                )
            yield self._lines_of(response)

    def _lines_of(self, response: httpx.Response) -> Iterator[str]:
        with self._reached():
            yield from response.iter_lines()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._reached():
            return self._http.request(method, path, **kwargs)

    @contextmanager
    def _reached(self) -> Iterator[None]:
        """httpx's failures to reach the facility, as one line each."""
        try:
            yield
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach {self.login.url}: is the facility running (commonlab up)?"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.login.url} failed: {exc}") from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self._http.close()


def _waited_out(response: httpx.Response) -> bool:
    """When `response` is a 429 asking for a wait the CLI takes on its own: say so, wait it
    out and answer True (send the request again); otherwise False."""
    wait = _retry_after(response)
    if wait is None or wait > LONGEST_RETRY_WAIT_S:
        return False
    print(
        f"The facility limits how fast requests come: sending again in {wait:g} s.",
        file=sys.stderr,
    )
    time.sleep(wait)
    return True


def _retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429's Retry-After asks to wait (delay seconds or an HTTP date, RFC 9110
    section 10.2.3), or None: not a 429, or no wait it says readably."""
    if response.status_code != 429:
        return None
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _problem_line(response: httpx.Response) -> str:
    body = _body(response)
    if body is None:
        return f"HTTP {response.status_code} from {response.request.url}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return f"{detail or body} (HTTP {response.status_code})"
