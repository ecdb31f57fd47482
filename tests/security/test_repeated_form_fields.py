"""A form that sends a field of one value twice is refused (400, nothing changed), on every
portal form: which of the two values would count is not for the facility to guess. Fields
that are lists (a proposal's hours per class, a review's scores) still repeat as they must."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

from fastapi.routing import APIRoute
from sqlalchemy import func, select

from commonlab.portal.mount import PAGE_MODULES
from commonlab.record.models import Entry
from tests.portal.helpers import csrf_of, sign_in


def _portal_form_routes() -> list[str]:
    """Every POST path the portal serves, its path parameters filled with 1."""
    paths = []
    for pages in PAGE_MODULES:
        for route in pages.router.routes:
            if isinstance(route, APIRoute) and "POST" in route.methods:
                paths.append(re.sub(r"\{[^}]+\}", "1", route.path))
    return sorted(paths)


def _post(client, path: str, fields: list[tuple[str, str]]):
    """POST `fields` form-encoded in this order, repeats kept (as a hand-made request may)."""
    return client.post(
        path,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )


def _entries(facility) -> int:
    with facility.db.session() as db:
        return db.scalar(select(func.count()).select_from(Entry)) or 0


def test_every_portal_form_refuses_a_field_sent_twice(client, facility, operator_token):
    sign_in(client, operator_token)
    csrf = csrf_of(client.get("/me").text)
    paths = _portal_form_routes()
    assert len(paths) >= 20, paths  # the forms of every domain, not a few
    before = _entries(facility)
    for path in paths:
        answer = _post(client, path, [("csrf", csrf), ("csrf", csrf)])
        assert answer.status_code == 400, (path, answer.status_code)
        assert "sent the field 'csrf' more than once" in html.unescape(answer.text), path
    assert _entries(facility) == before
    assert "Facility operator" in client.get("/me").text  # signing out twice did not happen


def test_a_vote_with_two_choices_is_refused_and_a_sign_in_with_two_tokens_too(
    client, operator_token
):
    csrf = csrf_of(client.get("/signin").text)
    twice = _post(client, "/signin", [("csrf", csrf), ("token", "x"), ("token", operator_token)])
    assert twice.status_code == 400
    assert "sent the field 'token' more than once" in html.unescape(twice.text)
    assert "Facility operator" not in client.get("/me").text
    sign_in(client, operator_token)
    csrf = csrf_of(client.get("/me").text)
    vote = _post(client, "/motions/1/vote", [("csrf", csrf), ("choice", "yes"), ("choice", "no")])
    assert vote.status_code == 400
    assert "sent the field 'choice' more than once" in html.unescape(vote.text)
