"""What an action is about: the resource half of an authorization request.

Pure data; `policy.engine` turns it into the Cedar entity `Resource::"<kind>/<id>"`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from commonlab.policy.levels import Level

__all__ = ["Resource"]

# Collections and things not yet created (a new person, the list of people) use this id.
_ANY = "*"


@dataclass(frozen=True)
class Resource:
    """A securable thing: its kind, id, containment level, compartments, project and owner.

    `owner` is the person id the thing belongs to (a person is their own owner), so policies
    can say "the person themself". A clearance resource's `level` is the level being granted.
    """

    kind: str
    id: str
    level: Level = Level.CL1
    compartments: frozenset[str] = field(default_factory=frozenset)
    project: str | None = None
    owner: int | None = None

    def __post_init__(self) -> None:
        # Fail closed on a level that is not one of the four (a bare 5, "CL-9").
        if not isinstance(self.level, Level):
            object.__setattr__(self, "level", Level.parse(self.level))
        if not isinstance(self.compartments, frozenset):
            object.__setattr__(self, "compartments", frozenset(self.compartments))
        if not self.kind or "/" in self.kind:
            raise ValueError(f"resource kind {self.kind!r} must be non-empty without '/'")

    @property
    def uid(self) -> str:
        """The Cedar entity id: `<kind>/<id>`."""
        return f"{self.kind}/{self.id}"

    @classmethod
    def institution(cls, institution_id: int | str = _ANY) -> Resource:
        """An institution; `Resource.institution()` for one not yet created."""
        return cls("institution", str(institution_id))

    @classmethod
    def person(cls, person_id: int) -> Resource:
        """A person's account (read, update, roles): the person owns it."""
        return cls("person", str(person_id), owner=person_id)

    @classmethod
    def people(cls) -> Resource:
        """All people: creating one, listing them."""
        return cls("person", _ANY)

    @classmethod
    def token(cls, owner: int, token_id: int | str = _ANY) -> Resource:
        """A person's API token; `token_id` omitted for issuing or listing their tokens."""
        return cls("token", f"{owner}:{token_id}", owner=owner)

    @classmethod
    def clearance(
        cls, person_id: int, level: Level = Level.CL1, compartments: frozenset[str] = frozenset()
    ) -> Resource:
        """A person's clearance; `level` is the level being granted (or held, for read)."""
        return cls(
            "clearance", str(person_id), level=level, compartments=compartments, owner=person_id
        )

    @classmethod
    def record(cls, entry: int | str = _ANY) -> Resource:
        """The public record, or one entry in it."""
        return cls("record", str(entry))

    @classmethod
    def fleet(cls) -> Resource:
        """The fleet: sites, partitions, nodes, and the executor's accounts."""
        return cls("fleet", _ANY)

    @classmethod
    def job(
        cls,
        project: str,
        level: Level = Level.CL1,
        owner: int | None = None,
        job_id: int | str = _ANY,
    ) -> Resource:
        """A job of a project, at its containment level; `owner` is who submitted it."""
        return cls("job", str(job_id), level=level, project=project, owner=owner)

    @classmethod
    def allocation(cls, allocation_id: int) -> Resource:
        """An allocation (an award's hours): what the council approves above its threshold."""
        return cls("allocation", str(allocation_id))

    @classmethod
    def partition(cls, name: str, certified: Level) -> Resource:
        """A compute partition; its level is the level it is certified for."""
        return cls("partition", name, level=certified)
