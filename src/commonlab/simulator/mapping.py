"""Which pool each trace tenant's work belongs to: the operator's explicit map (tenant names,
glob or regular-expression patterns, a `*` default, whole trace files), read from the
command line or a CSV file, and resolved against the pools of a regulation."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from commonlab.errors import InvalidInput

__all__ = ["DEFAULT", "PoolMap", "PoolRule", "parse_pair", "read_map_file", "resolve_pool"]

# The pattern of the default line: every tenant no other rule maps.
DEFAULT = "*"
# A pattern written `re:...` is a regular expression the whole tenant name must match.
_REGEX = "re:"
_NATIONAL = "national:"


@dataclass(frozen=True)
class PoolRule:
    """One line of the map: tenants matching `pattern` go to `pool`; `source` says where the
    line was written, for errors."""

    pattern: str
    pool: str
    source: str

    @property
    def exact(self) -> bool:
        return not self.pattern.startswith(_REGEX) and not any(c in self.pattern for c in "*?[")

    def matches(self, tenant: str) -> bool:
        if self.pattern.startswith(_REGEX):
            return re.fullmatch(self.pattern[len(_REGEX) :], tenant) is not None
        return fnmatchcase(tenant, self.pattern)


@dataclass(frozen=True)
class PoolMap:
    """Tenant rules and whole-file rules. A tenant goes to the pool of its file's rule, else
    of the rule naming it exactly, else of the one pattern matching it, else the default; two
    rules giving one tenant different pools are an error, not a precedence."""

    rules: tuple[PoolRule, ...] = ()
    files: tuple[PoolRule, ...] = ()

    def __post_init__(self) -> None:
        for rule in (*self.rules, *self.files):
            if rule.pattern.startswith(_REGEX):
                try:
                    re.compile(rule.pattern[len(_REGEX) :])
                except re.error as exc:
                    raise InvalidInput(
                        f"{rule.source}: {rule.pattern!r} is not a regular expression ({exc})"
                    ) from None

    @classmethod
    def of(cls, tenant_pools: dict[str, str] | None) -> PoolMap:
        """A map of exact tenant names (the library's `tenant_pools`)."""
        return cls(tuple(PoolRule(t, p, "tenant map") for t, p in (tenant_pools or {}).items()))

    def __bool__(self) -> bool:
        return bool(self.rules or self.files)

    def file_pool(self, path: Path) -> PoolRule | None:
        """The rule mapping the whole trace file `path` (named by path, file name or stem)."""
        names = {str(path), path.name, path.stem}
        return next((r for r in self.files if r.pattern in names), None)

    def tenant_rule(self, tenant: str) -> PoolRule | None:
        """The rule that gives `tenant` its pool, or None when no rule does."""
        exact = next((r for r in self.rules if r.exact and r.pattern == tenant), None)
        if exact:
            return exact
        patterns = [
            r for r in self.rules if not r.exact and r.pattern != DEFAULT and r.matches(tenant)
        ]
        if len({r.pool for r in patterns}) > 1:
            first, second = patterns[0], next(r for r in patterns if r.pool != patterns[0].pool)
            raise InvalidInput(
                f"tenant {tenant!r} is mapped twice: to {first.pool} by {first.pattern!r} "
                f"({first.source}) and to {second.pool} by {second.pattern!r} ({second.source})"
            )
        if patterns:
            return patterns[0]
        return next((r for r in self.rules if r.pattern == DEFAULT), None)

    def checked(self, pools: Sequence[str]) -> PoolMap:
        """This map with every pool resolved against `pools` (see `resolve_pool`), and a
        name or pattern written twice with two different pools refused."""

        def resolved(rules: Iterable[PoolRule]) -> tuple[PoolRule, ...]:
            return tuple(
                PoolRule(r.pattern, resolve_pool(r.pool, pools, where=r.source), r.source)
                for r in rules
            )

        rules, files = resolved(self.rules), resolved(self.files)
        _no_conflicts(rules, "tenant")
        _no_conflicts(files, "trace file")
        return PoolMap(rules, files)


def resolve_pool(name: str, pools: Sequence[str], *, where: str) -> str:
    """A pool of the regulation by its name, or a member state by its code (`DE` for
    `national:DE`); anything else is an error listing the pools."""
    if name in pools:
        return name
    if f"{_NATIONAL}{name}" in pools:
        return f"{_NATIONAL}{name}"
    raise InvalidInput(
        f"{where}: unknown pool {name!r}; the regulation's pools are {', '.join(pools)}"
    )


def _no_conflicts(rules: Sequence[PoolRule], what: str) -> None:
    seen: dict[str, PoolRule] = {}
    for rule in rules:
        earlier = seen.setdefault(rule.pattern, rule)
        if earlier.pool != rule.pool:
            raise InvalidInput(
                f"{what} {rule.pattern!r} is mapped twice: to {earlier.pool} ({earlier.source}) "
                f"and to {rule.pool} ({rule.source})"
            )


def parse_pair(text: str, *, option: str) -> PoolRule:
    """`NAME=POOL` as written after `option` on the command line."""
    name, sep, pool = text.partition("=")
    if not sep or not name.strip() or not pool.strip():
        raise InvalidInput(f"{option} {text!r}: write NAME=POOL (e.g. {option} team-a=national:DE)")
    return PoolRule(name.strip(), pool.strip(), f"{option} {text}")


def read_map_file(path: Path) -> tuple[PoolRule, ...]:
    """A CSV with the columns tenant and pool: a tenant name, a glob (`team-*`), a regular
    expression (`re:lab[0-9]+`) or `*` (every tenant no other line maps)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the map ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: the map is not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    if [c.strip() for c in reader.fieldnames or []][:2] != ["tenant", "pool"]:
        raise InvalidInput(f"{path}: the map's first line must be the header tenant,pool")
    rules = []
    for row in reader:
        where = f"{path} line {reader.line_num}"
        tenant, pool = (row.get("tenant") or "").strip(), (row.get("pool") or "").strip()
        if not tenant or not pool:
            raise InvalidInput(f"{where}: write a tenant (or pattern) and a pool")
        rules.append(PoolRule(tenant, pool, where))
    if not rules:
        raise InvalidInput(f"{path}: the map has no line after its header")
    return tuple(rules)
