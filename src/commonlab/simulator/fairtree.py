"""Slurm's Fair Tree fair-share factor, flattened to two levels: pools under the root, tenants
(accounts) under their pool. Pure: shares and decayed usage in, one factor per tenant out."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["fair_tree_factors"]


def _level_order(shares: Sequence[float], usage: Sequence[float]) -> list[int]:
    """Siblings by Level FS = S / U, highest first (S and U normalised among siblings; an
    unused sibling ranks above every used one, larger share first)."""
    total_share = sum(shares) or 1.0
    total_usage = sum(usage)

    def level_fs(i: int) -> tuple[float, float]:
        s = shares[i] / total_share
        if usage[i] <= 0 or total_usage <= 0:
            return (float("inf"), s)
        return (s / (usage[i] / total_usage), s)

    return sorted(range(len(shares)), key=level_fs, reverse=True)


def fair_tree_factors(
    *,
    pool_shares: Sequence[float],
    tenant_pool: Sequence[int],
    tenant_usage: Sequence[float],
) -> list[float]:
    """Fair-share factor in (0, 1] per tenant: tenants are ranked by a depth-first walk that
    visits pools, then a pool's tenants, in Level FS order; factor = rank / number of tenants
    (the first visited gets 1). Tenants of one pool share it equally."""
    pools = len(pool_shares)
    members: list[list[int]] = [[] for _ in range(pools)]
    for tenant, pool in enumerate(tenant_pool):
        members[pool].append(tenant)
    pool_usage = [sum(tenant_usage[t] for t in m) for m in members]
    # A pool without tenants takes no part in the ranking.
    active = [p for p in range(pools) if members[p]]
    order = _level_order([pool_shares[p] for p in active], [pool_usage[p] for p in active])
    n = len(tenant_pool)
    factors = [0.0] * n
    rank = n
    for position in order:
        tenants = members[active[position]]
        inner = _level_order([1.0] * len(tenants), [tenant_usage[t] for t in tenants])
        for i in inner:
            factors[tenants[i]] = rank / n
            rank -= 1
    return factors
