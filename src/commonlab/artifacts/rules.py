"""Pure rules of artifacts: who a repository's visibility shows it to, and whether one
audience reaches anyone another does not (what a job publishes must not)."""

from __future__ import annotations

from dataclasses import dataclass

from commonlab.artifacts.models import Visibility

__all__ = ["Audience", "reaches_beyond"]

# From the fewest viewers to the most: a person (or a project's curators), a project's
# members, everyone.
_WIDTH = {Visibility.PRIVATE: 0, Visibility.PROJECT: 1, Visibility.PUBLIC: 2}


@dataclass(frozen=True)
class Audience:
    """Who a repository's visibility shows it to: everyone (public); the members of its
    project (project); or only its owner (private: the person who owns it, or for a
    project's private repository the project's curators alone)."""

    visibility: Visibility
    project: str | None = None
    owner_id: int | None = None

    def describe(self) -> str:
        if self.visibility == Visibility.PUBLIC:
            return "public"
        if self.visibility == Visibility.PROJECT:
            return f"visible to project {self.project}'s members"
        return "private to its owner"


def reaches_beyond(target: Audience, source: Audience) -> bool:
    """Whether `target` shows what it holds to someone `source` does not.

    Visibility orders audiences (private < project < public); a wider one reaches beyond.
    Two audiences of one width are the same only with the same scope: one project's
    members are not another's, one owner is not another. A narrower audience reaches no
    one new: a private repository's owner publishing what a project showed them was a
    member who could read it."""
    target_width, source_width = _WIDTH[target.visibility], _WIDTH[source.visibility]
    if target_width != source_width:
        return target_width > source_width
    if target.visibility == Visibility.PUBLIC:
        return False
    if target.visibility == Visibility.PROJECT:
        return target.project != source.project
    return (target.project, target.owner_id) != (source.project, source.owner_id)
