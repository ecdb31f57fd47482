"""Which projects a person is a member of, asked when identity builds a principal.

Projects and their members are allocation's (it awards them), and allocation sits above
identity: identity declares this port and `wiring.connect()` plugs allocation's answer in.
Asked before it is connected, it raises rather than guess a principal's projects.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from commonlab.errors import ConfigError

__all__ = ["ProjectsOf", "projects_of", "provide_projects"]

# (session, person id) -> the projects the person is a member of, in the caller's transaction
ProjectsOf = Callable[[Session, int], frozenset[str]]

_answer: ProjectsOf | None = None


def provide_projects(answer: ProjectsOf) -> None:
    """Plug in who answers (allocation); connecting again replaces the answer."""
    global _answer
    _answer = answer


def projects_of(db: Session, person_id: int) -> frozenset[str]:
    """The projects `person_id` is a member of (in the caller's transaction)."""
    if _answer is None:
        raise ConfigError(
            "identity's project-membership port is not connected: nothing says which projects "
            "a person belongs to (call commonlab.wiring.connect() when the facility opens)"
        )
    return _answer(db, person_id)
