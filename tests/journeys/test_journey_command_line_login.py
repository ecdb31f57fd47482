"""Journey: a researcher signs their command line in without copying a secret (issue 21).

She is signed in to the portal in her browser. In a second shell she runs `commonlab login`
(a real subprocess), which prints a code; she types it into the portal's /device page, sees
who asks and for what, and approves. The command receives a scoped, expiring token, saves it
as her login, and `commonlab whoami` then works with it. Her sessions page lists the new
token, and revoking it there signs the command line out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import httpx
import pytest

from commonlab.identity import device_grant
from tests.portal.helpers import sign_in_browser

pytestmark = pytest.mark.browser

USER_CODE = re.compile(r"\b([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})\b")


def _researcher(url: str, operator_token: str) -> tuple[dict, str]:
    operator = {"Authorization": f"Bearer {operator_token}"}
    person = httpx.post(
        f"{url}/api/v1/people", json={"name": "Imani Wekesa"}, headers=operator
    ).json()
    token = httpx.post(
        f"{url}/api/v1/people/{person['id']}/tokens",
        json={"name": "browser", "scopes": ["read", "write"], "expires_in_days": 7},
        headers=operator,
    ).json()["token"]
    return person, token


def test_commonlab_login_from_a_second_shell_approved_in_the_browser(
    browser_page, live_server, screenshot, tmp_path, monkeypatch
):
    # The facility asks the device to poll every second, not five: the journey is not a wait.
    monkeypatch.setattr(device_grant, "POLL_INTERVAL", 1)
    url = live_server.url
    person, browser_token = _researcher(url, live_server.operator_token)
    page = browser_page
    sign_in_browser(page, browser_token)

    # The second shell: its own saved login, nothing of the browser's.
    config = tmp_path / "second-shell" / "cli.toml"
    env = {**os.environ, "COMMONLAB_CLI_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    for name in ("COMMONLAB_TOKEN", "COMMONLAB_URL"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "commonlab.cli"]
    shell = subprocess.Popen(
        [*cli, "login", url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        printed: list[str] = []
        while not (found := USER_CODE.search("".join(printed))):
            line = shell.stdout.readline()
            assert line, f"`commonlab login` printed no code: {''.join(printed)}"
            printed.append(line)
        user_code = found.group(1)
        assert f"{url}/device" in "".join(printed)

        # In the browser: the code, who asks and for what, then approve.
        page.goto("/device")
        page.get_by_label("Code").fill(user_code.lower())
        page.get_by_role("button", name="Continue").click()
        assert page.locator("#device-user-code").inner_text() == user_code
        assert "the commonlab command line" in page.content()
        screenshot(page, "device-confirm")
        page.get_by_role("button", name="Approve").click()
        page.locator("#device-approved").wait_for()
        screenshot(page, "device-approved")

        rest, _ = shell.communicate(timeout=120)
    finally:
        if shell.poll() is None:
            shell.kill()
    output = "".join(printed) + rest
    assert shell.returncode == 0, output
    assert f"Logged in to {url} as Imani Wekesa" in output

    # The saved login is hers, private to her, and not the browser's token.
    saved = tomllib.loads(config.read_text())
    assert saved["url"] == url and saved["token"] != browser_token
    assert config.stat().st_mode & 0o077 == 0

    whoami = subprocess.run([*cli, "whoami"], env=env, capture_output=True, text=True, timeout=60)
    assert whoami.returncode == 0, whoami.stderr
    assert f"Imani Wekesa ({person['pseudonym']})" in whoami.stdout
    assert "token scopes: read, write" in whoami.stdout

    # Her sessions page lists the command line's token; revoking it signs the shell out.
    page.goto("/me/sessions")
    row = page.locator("tr", has_text="commonlab login (device grant")
    assert row.count() == 1
    screenshot(page, "sessions")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url("**/me/sessions?done=token")
    assert page.locator("tr", has_text="commonlab login (device grant").count() == 0
    after = subprocess.run([*cli, "whoami"], env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 1 and "revoked" in after.stderr
    still = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {browser_token}"})
    assert still.status_code == 200  # the browser's own token is untouched
