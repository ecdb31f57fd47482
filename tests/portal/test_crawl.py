"""Every link on every portal page leads somewhere, for every kind of visitor.

A crawler walks the demo facility from the home page as the public and signed in as each of
its roles, following every link to a page of the site, and asserts that none answers 404 or
a server error: a page links only to what its viewer may see."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from sqlalchemy import select

from commonlab.demo import seed_demo
from commonlab.identity import service as identity
from commonlab.identity.models import Person
from commonlab.identity.schemas import TokenCreate
from commonlab.identity.service import bootstrap_operator
from commonlab.policy.principal import SYSTEM, Scope
from tests.artifacts.helpers import push, safetensors_bytes
from tests.helpers import auth, sequence_now
from tests.portal.helpers import sign_in

HREF = re.compile(r'(?:href|src)="([^"]+)"')
# A page of the site is followed; these are only checked to answer (they are not HTML pages
# with links, or — the sign-out — would end the visit).
CHECK_ONLY = ("/api/", "/log/", "/static/", "/.well-known/")
NEVER = ("/signout",)
MAX_PAGES = 400  # per visitor: the demo's pages and a sample of each long list
ROLES = {
    "pi": "Wanjiru Kamau",
    "researcher": "Otieno Odhiambo",
    "delegate": "Giulia Rossi",
    "reviewer": "Asha Mwangi",
    "safety officer": "Amélie Durand",
    "auditor": "Marco Bianchi",
}


@pytest.fixture
def demo_tokens(app, client, facility):
    """The demo facility with a public model made by a job of its PI, and a token for the
    operator and for one person of each role."""
    with facility.db.session() as session:
        tokens = {"operator": bootstrap_operator(session)}
    with facility.db.session() as session:
        pi_token = seed_demo(session)
    assert pi_token is not None
    _publish_a_model_made_by_a_job(client, auth(pi_token))
    with facility.db.session() as session:
        for role, name in ROLES.items():
            with session.begin():
                person_id = session.scalar(select(Person.id).where(Person.name == name))
            _, tokens[role] = identity.issue_token(
                session, SYSTEM, person_id, TokenCreate(name="crawl", scopes=[Scope.READ])
            )
    sequence_now(app)  # as the facility's sequencer would have: the record has a checkpoint
    return tokens


def _publish_a_model_made_by_a_job(client, pi) -> None:
    job = client.post(
        "/api/v1/jobs",
        json={"project": "proj-1", "command": "true", "accelerator": "cpu"},
        headers=pi,
    )
    assert job.status_code == 201, job.text
    made = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "model", "name": "tiny", "project": "proj-1", "visibility": "public"},
        headers=pi,
    )
    assert made.status_code == 201, made.text
    model = f"models/{made.json()['repo_id']}"
    files = {"model.safetensors": safetensors_bytes()}
    pushed = push(client, pi, model, files, job=str(job.json()["id"]))
    assert pushed.status_code == 201, pushed.text


def crawl(client) -> dict[str, tuple[int, str]]:
    """Status of every page reached from the home page, with the page that linked to it."""
    seen: dict[str, tuple[int, str]] = {}
    queue = deque([("/", "(start)")])
    pages = 0
    while queue and pages < MAX_PAGES:
        path, source = queue.popleft()
        if path in seen:
            continue
        response = client.get(path, follow_redirects=True)
        seen[path] = (response.status_code, source)
        html = "text/html" in response.headers.get("content-type", "")
        if path.startswith(CHECK_ONLY) or not html:
            continue
        pages += 1
        for href in HREF.findall(response.text):
            target = urldefrag(urljoin("http://testserver" + path, href.replace("&amp;", "&")))[0]
            parts = urlsplit(target)
            if parts.netloc != "testserver" or parts.path.startswith(NEVER):
                continue
            local = parts.path + (f"?{parts.query}" if parts.query else "")
            if local not in seen:
                queue.append((local, path))
    return seen


@pytest.mark.parametrize("visitor", ["public", "operator", *ROLES])
def test_no_page_links_to_a_missing_or_forbidden_page(client, demo_tokens, visitor):
    if visitor != "public":
        sign_in(client, demo_tokens[visitor])
    seen = crawl(client)
    assert len(seen) > 20  # the crawl reached the site, not just the home page
    broken = {path: found for path, found in seen.items() if found[0] == 404 or found[0] >= 500}
    assert not broken, f"as {visitor}: " + "; ".join(
        f"{path} answered {status} (linked from {source})"
        for path, (status, source) in sorted(broken.items())
    )


def test_the_site_has_a_favicon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/")
