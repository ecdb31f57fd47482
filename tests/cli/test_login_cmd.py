"""`commonlab login` through the device grant against a real facility over HTTP: the code it
prints, the pace it polls at (slower at each slow_down), the token it receives, and each
refusal as one line. Waiting is injected (`sleep`, `clock`), so no test waits for real."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from commonlab.cli import login_cmd
from commonlab.cli.client import Client, CliError, Login
from commonlab.cli.main import main
from commonlab.db import utcnow
from commonlab.identity import device_grant
from commonlab.identity import service as identity
from commonlab.identity.device_models import DeviceGrant
from tests.cli.conftest import free_port

CODE = re.compile(r"\b([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})\b")


class Waiting:
    """The CLI's sleep and clock: time passes only when it sleeps; on its first sleep,
    `then(user_code)` does what the person in the browser does."""

    def __init__(self, capsys, then=None):
        self.capsys, self.then = capsys, then
        self.now, self.sleeps, self.printed = 0.0, [], ""

    def sleep(self, seconds):
        if not self.sleeps:
            self.printed = self.capsys.readouterr().out
            if self.then is not None:
                self.then(CODE.search(self.printed).group(1))
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def as_operator(served, act):
    def then(user_code):
        with served.facility.db.session() as db:
            act(db, identity.authenticate(db, served.token), user_code)

    return then


def test_login_prints_the_code_and_receives_a_token_once_approved(capsys, served):
    waiting = Waiting(capsys, as_operator(served, device_grant.approve))
    token = login_cmd.device_login(served.url, sleep=waiting.sleep, clock=waiting.clock)
    assert f"{served.url}/device" in waiting.printed and CODE.search(waiting.printed)
    assert waiting.sleeps == [5]  # the interval the facility asked for, before the first poll
    me = Client(Login(url=served.url, token=token)).get("/api/v1/me")
    assert me["person"]["name"] == "Facility operator" and me["scopes"] == ["read", "write"]


def test_login_slows_down_when_told_and_gives_up_when_the_code_expires(capsys, served):
    # Nobody approves, and the waiting is not real: every poll after the first is too soon
    # for the facility, which answers slow_down; the CLI adds 5 s each time, until expiry.
    waiting = Waiting(capsys)
    with pytest.raises(CliError, match="expired before it was approved"):
        login_cmd.device_login(served.url, sleep=waiting.sleep, clock=waiting.clock)
    assert waiting.sleeps[:5] == [5, 5, 10, 15, 20]
    assert sum(waiting.sleeps[:-1]) < 600 <= sum(waiting.sleeps)


@pytest.mark.parametrize(
    ("act", "refusal"),
    [
        (device_grant.deny, "denied in the browser"),
        (lambda db, _, code: _expire(db), "request expired"),
    ],
)
def test_a_denied_or_expired_request_is_one_line(capsys, served, act, refusal):
    waiting = Waiting(capsys, as_operator(served, act))
    with pytest.raises(CliError, match=f"sign-in refused: .*{refusal}"):
        login_cmd.device_login(served.url, sleep=waiting.sleep, clock=waiting.clock)


def _expire(db):
    with db.begin():
        db.execute(update(DeviceGrant).values(expires_at=utcnow()))


def run(capsys, *argv):
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, *capsys.readouterr()


def test_the_url_is_given_once(capsys, served):
    code, _, err = run(capsys, "login", served.url, "--url", "http://elsewhere.example")
    assert code == 1 and "give the facility's URL once" in err and len(err.splitlines()) == 1


def test_an_unreachable_facility_is_one_line(capsys):
    code, _, err = run(capsys, "login", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach" in err and len(err.splitlines()) == 1


def test_an_unknown_scope_is_refused_in_one_line(capsys, served):
    code, _, err = run(capsys, "login", served.url, "--scope", "read root")
    assert code == 1 and "unknown scope 'root'" in err and len(err.splitlines()) == 1


def test_logout_revokes_the_saved_token_and_forgets_it(capsys, served, cli_config):
    waiting = Waiting(capsys, as_operator(served, device_grant.approve))
    token = login_cmd.device_login(served.url, sleep=waiting.sleep, clock=waiting.clock)
    cli_config.write_text(f'url = "{served.url}"\ntoken = "{token}"\n')
    code, out, _ = run(capsys, "logout")
    assert code == 0 and "revoked its token" in out
    assert "token" not in cli_config.read_text()
    me = Client(Login(url=served.url, token=served.token)).get("/api/v1/me")
    assert me["authenticated"]  # the operator's own token is untouched
    with pytest.raises(CliError, match="revoked"):
        Client(Login(url=served.url, token=token)).get("/api/v1/me")
    code, out, _ = run(capsys, "logout")
    assert code == 0 and "Not logged in" in out
