"""Where a run can go: free accelerators per partition and per interconnect domain, best-fit
choice of a partition, and taking and giving back a gang's accelerators (one domain for a job
that needs one, else the fullest domains first so whole domains stay free)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commonlab.simulator.inputs import Partition

__all__ = ["Placement"]


class Placement:
    """The free accelerators of every partition and domain. `size`, `one_domain` and
    `eligible` are the run table's columns (indexed by run, growing when a run is requeued);
    `buckets[p][k]` holds the domains of partition p with exactly k free accelerators and
    `top[p]` bounds the largest k in use. With `track_domains` it also keeps which runs hold
    each domain (`domain_runs`), for preemption inside one domain."""

    __slots__ = (
        "allocation",
        "buckets",
        "dfree",
        "domain_runs",
        "eligible",
        "free",
        "free_total",
        "multi",
        "n_parts",
        "one_domain",
        "size",
        "starts_on",
        "top",
        "track_domains",
    )

    def __init__(
        self,
        parts: Sequence[Partition],
        *,
        size: list[int],
        one_domain: list[bool],
        eligible: list[tuple[int, ...]],
        track_domains: bool = False,
    ) -> None:
        self.size = size
        self.one_domain = one_domain
        self.eligible = eligible
        self.n_parts = len(parts)
        self.free = [p.size for p in parts]
        self.free_total = sum(self.free)
        self.multi = [len(p.domain_sizes) > 1 for p in parts]
        self.dfree = [list(p.domain_sizes) for p in parts]
        self.top = [p.largest_domain for p in parts]
        self.buckets: list[list[set[int]]] = []
        for p in parts:
            levels: list[set[int]] = [set() for _ in range(p.largest_domain + 1)]
            for d, cap in enumerate(p.domain_sizes):
                levels[cap].add(d)
            self.buckets.append(levels)
        # Per running run on a partition of several domains: (domain, accelerators) taken.
        self.allocation: dict[int, tuple[tuple[int, int], ...]] = {}
        # Starts per partition: an EASY reservation there is stale once another start happens.
        self.starts_on = [0] * len(parts)
        self.track_domains = track_domains
        self.domain_runs: list[list[set[int]]] = (
            [
                [set() for _ in p.domain_sizes] if m else []
                for p, m in zip(parts, self.multi, strict=True)
            ]
            if track_domains
            else []
        )

    def fits(self, j: int, p: int) -> bool:
        """Whether run j can start on partition p now."""
        need = self.size[j]
        if self.free[p] < need:
            return False
        if self.one_domain[j] and self.multi[p]:
            levels = self.buckets[p]
            top = self.top
            t = top[p]
            while t and not levels[t]:
                t -= 1
            top[p] = t
            return t >= need
        return True

    def choose(self, j: int, blocked: set[int] | None) -> int:
        """Best-fit partition for run j now (the least free that fits, outside `blocked`),
        or -1."""
        free = self.free
        best, best_free = -1, 1 << 62
        for p in self.eligible[j]:
            if blocked and p in blocked:
                continue
            if free[p] < best_free and self.fits(j, p):
                best, best_free = p, free[p]
        return best

    def best_domain(self, p: int, need: int) -> int:
        """A domain of p with the fewest free accelerators that still holds `need`, or -1."""
        levels = self.buckets[p]
        for k in range(need, self.top[p] + 1):
            if levels[k]:
                return next(iter(levels[k]))
        return -1

    def _move(self, p: int, d: int, delta: int) -> None:
        levels = self.buckets[p]
        dfree = self.dfree[p]
        old = dfree[d]
        levels[old].discard(d)
        dfree[d] = old + delta
        levels[old + delta].add(d)
        if old + delta > self.top[p]:
            self.top[p] = old + delta

    def take(self, j: int, p: int) -> None:
        """Give run j its accelerators on partition p (which it must fit)."""
        need = self.size[j]
        if self.multi[p]:
            move = self._move
            if self.one_domain[j]:
                d = self.best_domain(p, need)
                move(p, d, -need)
                taken: tuple[tuple[int, int], ...] = ((d, need),)
            else:
                # Pack: take from the fullest domains first, keeping whole domains free for
                # jobs that need one.
                parts: list[tuple[int, int]] = []
                remaining = need
                levels = self.buckets[p]
                for k in range(1, self.top[p] + 1):
                    while levels[k] and remaining:
                        d = next(iter(levels[k]))
                        share = min(k, remaining)
                        move(p, d, -share)
                        parts.append((d, share))
                        remaining -= share
                    if not remaining:
                        break
                taken = tuple(parts)
            self.allocation[j] = taken
            if self.track_domains:
                runs = self.domain_runs[p]
                for d, _ in taken:
                    runs[d].add(j)
        self.free[p] -= need
        self.free_total -= need
        self.starts_on[p] += 1

    def give_back(self, j: int, p: int) -> None:
        """Free the accelerators run j holds on partition p."""
        need = self.size[j]
        if self.multi[p]:
            move = self._move
            for d, share in self.allocation.pop(j):
                move(p, d, share)
                if self.track_domains:
                    self.domain_runs[p][d].discard(j)
        self.free[p] += need
        self.free_total += need
