"""How a repository and one of its versions are named: `RepoRef` (kind, namespace, name) and
`VersionRef` (a repository and a revision), parsed once where a request or a reference string
enters and passed whole to every use case. Pure: nothing here reads the database."""

from __future__ import annotations

from dataclasses import dataclass

from commonlab.artifacts.models import RepoKind

__all__ = ["RepoRef", "VersionRef", "parse_ref"]


@dataclass(frozen=True)
class RepoRef:
    """A repository: `datasets/ns/name` is RepoRef(RepoKind.DATASET, "ns", "name")."""

    kind: RepoKind
    namespace: str
    name: str

    def at(self, rev: str | None) -> VersionRef:
        """One of its versions: a number, a tag, a commit prefix, or None for the newest."""
        return VersionRef(self, rev)

    def __str__(self) -> str:
        return f"{self.kind}s/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class VersionRef:
    """A repository and a revision of it (None: the newest, as 'main')."""

    repo: RepoRef
    rev: str | None

    @property
    def number(self) -> int | None:
        """The version number when the revision is one (`@3`), else None."""
        return int(self.rev) if self.rev is not None and self.rev.isdigit() else None

    def __str__(self) -> str:
        return f"{self.repo}@{self.rev or 'main'}"


def parse_ref(ref: str) -> VersionRef:
    """`datasets/ns/name@3` → datasets/ns/name at version 3; ValueError when it is not one."""
    kinds, _, rest = ref.partition("/")
    repo_id, _, number = rest.rpartition("@")
    namespace, _, name = repo_id.partition("/")
    repo = RepoRef(RepoKind(kinds.removesuffix("s")), namespace, name)
    return repo.at(str(int(number)))
