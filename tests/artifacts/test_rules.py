"""artifacts.rules: the order of audiences, table-driven."""

from __future__ import annotations

import pytest

from commonlab.artifacts.models import Visibility
from commonlab.artifacts.rules import Audience, reaches_beyond

PUBLIC = Audience(Visibility.PUBLIC)
PROJECT_A = Audience(Visibility.PROJECT, "a")
PROJECT_B = Audience(Visibility.PROJECT, "b")
ALICE = Audience(Visibility.PRIVATE, None, 1)
BOB = Audience(Visibility.PRIVATE, None, 2)
CURATORS_A = Audience(Visibility.PRIVATE, "a", None)

CASES = [
    # target, source, reaches beyond
    (PUBLIC, PUBLIC, False),
    (PUBLIC, PROJECT_A, True),
    (PUBLIC, ALICE, True),
    (PROJECT_A, PUBLIC, False),
    (PROJECT_A, PROJECT_A, False),
    (PROJECT_B, PROJECT_A, True),
    (PROJECT_A, ALICE, True),
    (ALICE, PUBLIC, False),
    (ALICE, PROJECT_A, False),
    (ALICE, ALICE, False),
    (BOB, ALICE, True),
    (CURATORS_A, ALICE, True),
    (ALICE, CURATORS_A, True),
    (CURATORS_A, PROJECT_B, False),
]


@pytest.mark.parametrize(("target", "source", "wider"), CASES)
def test_reaches_beyond(target, source, wider):
    assert reaches_beyond(target, source) is wider


def test_every_visibility_has_a_width():
    for visibility in Visibility:
        assert reaches_beyond(Audience(visibility), Audience(visibility)) is False
