"""Listing and searching repositories with the real `huggingface_hub` client against a live
facility: `HfApi(endpoint=...).list_models` / `list_datasets` with search, author and
limit, pages followed through Link headers. A list shows only what the caller may read, by
the registry's one rule: the public sees public repositories; a member also sees their
project's, up to their clearance; nobody sees another project's or another person's private
ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils._pagination import paginate

from tests.artifacts.helpers import push
from tests.compute.helpers import award_project
from tests.helpers import auth, http_client, person_with_token


def bearer(headers):
    return headers["Authorization"].split()[1]


def make(api, headers, kind, name, **fields):
    made = api.post(
        "/api/v1/artifacts/repos", json={"kind": kind, "name": name, **fields}, headers=headers
    )
    assert made.status_code == 201, made.text
    return made.json()["repo_id"]


def clear(api, operator, headers, level):
    """A CL-`level` clearance for the holder of `headers`, granted by a safety officer."""
    _, officer = person_with_token(api, operator, "Safety Officer", ["safety_officer"],
                                   scopes=("admin",))  # fmt: skip
    person_id = api.get("/api/v1/me", headers=headers).json()["person"]["id"]
    granted = api.post(
        f"/api/v1/people/{person_id}/clearances",
        json={"level": level, "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
        headers=officer,
    )
    assert granted.status_code == 201, granted.text


@pytest.fixture
def world(live):
    """A researcher's public models and dataset; a project's own model, a CL-2 dataset of
    that project and a person's private model; a member, a stranger and another project."""
    api = http_client(base_url=live.url, timeout=30)
    operator = auth(live.token)
    lab = award_project(api, operator)
    other_lab = award_project(api, operator, found=False)
    researcher, r_auth = person_with_token(api, operator, "Neema Wairimu")
    ns = researcher["pseudonym"]
    clear(api, operator, lab.pi_auth, 2)  # the PI keeps the project's CL-2 data
    public = {
        "tiny": make(api, r_auth, "model", "tiny-gpt2", description="a one-layer GPT-2"),
        "asr": make(api, r_auth, "model", "whisper-swahili"),
        "bert": make(api, r_auth, "model", "bert-small"),
        "text": make(api, r_auth, "dataset", "swahili-text", description="radio transcripts"),
    }
    pushed = push(api, r_auth, f"models/{public['tiny']}", {"a.txt": b"weights"},
                  licenses=["Apache-2.0"])  # fmt: skip
    assert pushed.status_code == 201, pushed.text
    hidden = {
        "project": make(api, lab.pi_auth, "model", "lab-model", project=lab.name,
                        visibility="project"),
        "contained": make(api, lab.pi_auth, "dataset", "lab-data", project=lab.name,
                          visibility="project", level=2),
        "private": make(api, r_auth, "model", "notes", visibility="private"),
        "other": make(api, other_lab.pi_auth, "model", "rival", project=other_lab.name,
                      visibility="project"),
    }  # fmt: skip
    return {
        "url": live.url, "api": api, "operator": operator, "lab": lab, "other_lab": other_lab,
        "ns": ns, "r_token": bearer(r_auth), "public": public, "hidden": hidden,
    }  # fmt: skip


def hub(world, token=False):
    return HfApi(endpoint=world["url"], token=token)


def model_ids(world, token=False, **query):
    return {m.id for m in hub(world, token).list_models(**query)}


def dataset_ids(world, token=False, **query):
    return {d.id for d in hub(world, token).list_datasets(**query)}


def test_the_public_lists_public_repositories_only(world):
    public, hidden = world["public"], world["hidden"]
    assert model_ids(world) == {public["tiny"], public["asr"], public["bert"]}
    assert dataset_ids(world) == {public["text"]}
    tiny = next(m for m in hub(world).list_models(search="tiny"))
    assert (tiny.id, tiny.author, tiny.private) == (public["tiny"], world["ns"], False)
    assert tiny.sha and len(tiny.sha) == 40 and tiny.last_modified is not None
    assert tiny.tags == ["license:apache-2.0"] and tiny.created_at is not None
    assert hidden["project"] not in model_ids(world, search="lab")


def test_members_see_their_projects_repositories_up_to_their_clearance(world):
    lab, hidden, public = world["lab"], world["hidden"], world["public"]
    member = bearer(lab.member_auth)
    models = model_ids(world, member)
    assert models == {public["tiny"], public["asr"], public["bert"], hidden["project"]}
    assert next(iter(hub(world, member).list_models(author=lab.name))).private is True
    # The project's CL-2 dataset waits for a CL-2 clearance.
    assert dataset_ids(world, member) == {public["text"]}
    clear(world["api"], world["operator"], lab.member_auth, 2)
    assert dataset_ids(world, member) == {public["text"], hidden["contained"]}
    # Its owner lists a private repository; nobody else does.
    assert hidden["private"] in model_ids(world, world["r_token"])
    assert hidden["private"] not in models


def test_another_projects_private_repository_never_appears(world):
    hidden = world["hidden"]
    everyone_else = [False, bearer(world["lab"].outsider_auth), bearer(world["lab"].pi_auth)]
    for token in everyone_else:
        for query in ({}, {"search": "rival"}, {"author": world["other_lab"].name}):
            assert hidden["other"] not in model_ids(world, token, **query), (token, query)
    assert model_ids(world, False, author=world["other_lab"].name) == set()
    assert hidden["other"] in model_ids(world, bearer(world["other_lab"].pi_auth))


def test_search_author_and_limit(world):
    public, ns = world["public"], world["ns"]
    assert model_ids(world, search="TINY") == {public["tiny"]}
    assert model_ids(world, search="one-layer") == {public["tiny"]}  # its description too
    assert model_ids(world, search="swahili") == {public["asr"]}
    assert dataset_ids(world, search="swahili") == {public["text"]}
    assert dataset_ids(world, dataset_name="swahili") == {public["text"]}
    assert model_ids(world, author=ns) == {public["tiny"], public["asr"], public["bert"]}
    assert model_ids(world, author=ns, search="bert") == {public["bert"]}
    assert model_ids(world, author="nobody-here") == set()
    assert model_ids(world, search="no-such-model") == set()
    # Newest first, and no more than asked for.
    newest = list(hub(world).list_models(limit=2))
    assert [m.id for m in newest] == [public["bert"], public["asr"]]


def test_pages_are_linked_and_walked_by_the_client(world):
    answer = httpx.get(f"{world['url']}/api/models", params={"limit": 1})
    assert answer.status_code == 200 and len(answer.json()) == 1
    assert 'rel="next"' in answer.headers["link"] and "cursor=" in answer.headers["link"]
    # The client's own pagination follows the links to the end, one repository a page.
    walked = [item["id"] for item in paginate(f"{world['url']}/api/models", {"limit": 1}, {})]
    public = world["public"]
    assert walked == [public["bert"], public["asr"], public["tiny"]]
    last = httpx.get(f"{world['url']}/api/models", params={"limit": 3})
    assert "link" not in last.headers


def test_what_the_facility_cannot_honour_is_refused_not_ignored(world):
    with pytest.raises(HfHubHTTPError) as refused:
        list(hub(world).list_models(filter="text-generation"))
    assert refused.value.response.status_code == 422
    assert "filter" in str(refused.value)
    with pytest.raises(HfHubHTTPError):
        list(hub(world).list_datasets(dataset_name="a", search="b"))
    for params in ({"limit": 0}, {"limit": 1001}, {"cursor": "x"}):
        assert httpx.get(f"{world['url']}/api/models", params=params).status_code == 422
