"""`commonlab login [URL]`: sign this command line in without copying a secret, through the
OAuth device authorization grant (RFC 8628). It prints a code and a page of the facility; the
person, signed in there in a browser, enters and approves the code; the command, polling at
the interval the facility asks for (slower whenever told `slow_down`), receives a scoped,
expiring token and saves it as the CLI's login, as `login --token` does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from commonlab.cli.client import Client, CliError, Login, load_saved_login, save_login

__all__ = ["CLIENT_ID", "METADATA_PATH", "device_login", "register", "revoke_own_token"]

CLIENT_ID = "commonlab-cli"
METADATA_PATH = "/.well-known/oauth-authorization-server"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_URL = "http://127.0.0.1:8000"
SLOW_DOWN_STEP = 5  # seconds, RFC 8628 §3.5

console = Console()


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)


def login(
    url: Annotated[
        str | None,
        typer.Argument(help="facility URL [default: --url, COMMONLAB_URL, 127.0.0.1:8000]"),
    ] = None,
    url_option: Annotated[
        str | None, typer.Option("--url", help="facility URL (the same as the argument)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="an API token to check and save, instead of approving in a browser"),
    ] = None,
    scope: Annotated[
        str, typer.Option(help="scopes to ask for, space-separated: read write admin")
    ] = "read write",
) -> None:
    """Sign this command line in to a facility and save the login for later commands.

    Prints a code to approve in a browser where you are signed in to the facility's portal;
    with --token, checks and saves that token instead."""
    if url and url_option and url.rstrip("/") != url_option.rstrip("/"):
        raise CliError("give the facility's URL once: as the argument or as --url")
    base = (url or url_option or os.environ.get("COMMONLAB_URL") or DEFAULT_URL).rstrip("/")
    secret = token.strip() if token is not None else device_login(base, scope=scope)
    creds = Login(url=base, token=secret)
    me = Client(creds).get("/api/v1/me")
    if not me.get("authenticated"):
        raise CliError("the facility did not accept this token")
    path = save_login(creds)
    console.print(f"Logged in to {creds.url} as {_who(me)}; saved in {path}", highlight=False)


def logout() -> None:
    """Revoke the saved login's token at its facility, and forget it here."""
    saved = load_saved_login()
    if saved is None or saved.token is None:
        console.print("Not logged in: nothing to do.")
        return
    try:
        revoked = revoke_own_token(Client(saved))
    except CliError as exc:
        if exc.status != 401:  # 401: the token works no more, so there is nothing to revoke
            raise
        revoked = False
    path = save_login(Login(url=saved.url, token=None))
    what = "revoked its token and forgot it" if revoked else "forgot its token"
    console.print(f"Logged out of {saved.url}: {what} ({path}).", highlight=False)


def revoke_own_token(client: Client) -> bool:
    """Revoke the token `client` acts with; False when it works no more already."""
    token = client.login.token or ""
    key_id = token.split("_")[1] if token.count("_") >= 2 else ""
    me = client.get("/api/v1/me")
    if not me.get("authenticated"):
        return False
    after: int | None = None
    while True:
        params = {"limit": 200, **({"after": after} if after is not None else {})}
        page = client.get(f"/api/v1/people/{me['person']['id']}/tokens", params=params)
        for item in page["items"]:
            if item["key_id"] == key_id:
                client.delete(f"/api/v1/tokens/{item['id']}")
                return True
        after = page.get("next")
        if after is None:
            raise CliError("the facility does not list this token: revoke it on /me/sessions")


def device_login(
    base: str,
    *,
    scope: str = "read write",
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Run the device grant against the facility at `base`; the token, once approved.
    `sleep` and `clock` are the waiting and the time it takes (time.sleep, time.monotonic)."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    with httpx.Client(base_url=base, timeout=30.0, transport=transport) as http:
        meta = _json(_send(http, "GET", METADATA_PATH), base)
        if DEVICE_CODE_GRANT not in meta.get("grant_types_supported", []):
            raise CliError(f"{base} does not offer the device grant: use --token instead")
        started = _json(
            _send(
                http,
                "POST",
                str(meta["device_authorization_endpoint"]),
                data={"client_id": CLIENT_ID, "scope": scope},
            ),
            base,
        )
        console.print(
            f"To sign in, open {started['verification_uri']} in a browser where you are "
            f"signed in to the facility, and enter the code\n\n    {started['user_code']}\n\n"
            f"(or open {started['verification_uri_complete']}). Waiting for approval…",
            highlight=False,
            soft_wrap=True,
        )
        interval = float(started.get("interval") or 5)
        deadline = clock() + float(started["expires_in"])
        form = {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": started["device_code"],
            "client_id": CLIENT_ID,
        }
        while clock() < deadline:
            sleep(interval)
            answer = _send(http, "POST", str(meta["token_endpoint"]), data=form)
            body = _json(answer, base, refusals_ok=True)
            if answer.status_code == 200:
                return str(body["access_token"])
            error = body.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += SLOW_DOWN_STEP
                continue
            raise CliError(f"sign-in refused: {body.get('error_description') or error}")
    raise CliError("the code expired before it was approved: run `commonlab login` again")


def _send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, path, **kwargs)
    except httpx.ConnectError:
        raise CliError(f"cannot reach {http.base_url}: is the facility running?") from None
    except httpx.HTTPError as exc:
        raise CliError(f"request to {http.base_url} failed: {exc}") from None


def _json(response: httpx.Response, base: str, *, refusals_ok: bool = False) -> dict[str, Any]:
    """The JSON object answered; a refusal is an error unless the caller reads OAuth's."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CliError(f"{base} answered {response.request.url} with HTTP {response.status_code}")
    if response.status_code >= 400 and not (refusals_ok and "error" in body):
        reason = body.get("error_description") or body.get("detail") or body.get("error")
        raise CliError(f"{reason} (HTTP {response.status_code})")
    return body


def _who(me: dict[str, Any]) -> str:
    person = me.get("person") or {}
    return f"{person.get('name')} ({person.get('pseudonym')})"
