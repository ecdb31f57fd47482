"""EASY backfill, every `backfill_interval` seconds while jobs wait: the first job of the
pass that cannot start gets a reservation (when and where it will start at the latest, as
running jobs end at their runtime), and jobs after it start only where they cannot delay it.
The reservation is kept from pass to pass until a start on its partition outdates it."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from commonlab.simulator.engine.queues import sorted_heap

if TYPE_CHECKING:
    from commonlab.simulator.engine.core import Engine
    from commonlab.simulator.engine.queues import Entry

__all__ = ["Backfill", "Reservation"]

Reservation = tuple[float, int, int]  # (start at the latest, partition, spare accelerators)


class Backfill:
    """Counts the jobs it started (`backfilled`) and keeps the last reservation as [job,
    partition, time, spare accelerators, starts its partition had seen then]."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backfilled = 0
        self._kept: list = [-1, -1, math.inf, -1, -1]

    def reservation(self, j: int) -> Reservation:
        """EASY reservation for run j: when it can start at the latest (running runs ending
        at their runtime), on which partition, and how many accelerators of that partition
        are spare then (-1 when j needs one domain: no spare is lent). (inf, -1, -1) when
        no running run frees enough."""
        runs, placement = self.engine.runs, self.engine.placement
        size, running, placed = runs.size, runs.running, runs.placed
        need = size[j]
        domain = runs.one_domain[j]
        mine = set(runs.eligible[j])
        avail = {p: placement.free[p] for p in mine}
        multi, dfree, allocation = placement.multi, placement.dfree, placement.allocation
        davail: dict[tuple[int, int], int] = {}
        for end, k in sorted_heap(runs.completions):
            if not running[k]:
                continue
            p = placed[k]
            if p not in mine:
                continue
            avail[p] += size[k]
            if domain and multi[p]:
                for d, take in allocation[k]:
                    got = davail.get((p, d), dfree[p][d]) + take
                    davail[(p, d)] = got
                    if got >= need:
                        return end, p, -1
            elif avail[p] >= need:
                return end, p, (-1 if domain else avail[p] - need)
        return math.inf, -1, -1

    def run(self) -> None:
        engine = self.engine
        queues, placement, runs = engine.queues, engine.placement, engine.runs
        queue, head, waiting = queues.queue, queues.head, queues.waiting
        priority, queued_at = queues.priority, queues.queued_at
        choose, fits, start = placement.choose, placement.fits, engine.start
        size, runtime, one_domain, eligible = (
            runs.size,
            runs.runtime,
            runs.one_domain,
            runs.eligible,
        )
        kept = self._kept
        window, caps = engine.settings.backfill_window, engine.policy.caps
        heads: Iterator[Entry]
        if engine.policy.dynamic or engine.n_keys <= engine.settings.scan_queues:
            cursor = queues.heads()
            heads = iter(())
        else:
            # Many queues whose priorities change only at a tick: read their heads from the
            # ranked heap lazily rather than scanning every queue.
            cursor = []
            heads = queues.ranked_heads()
        pending = next(heads, None)
        examined = 0
        reserved_part, reserved_until, spare = -1, math.inf, -1
        reserved, reserved_job = False, -1
        touched = set()
        # The smallest size found to fit none of a set of eligible partitions but the
        # reserved one (per set; jobs bound to one domain apart), and the smallest found not
        # to fit the reserved partition (per binding).
        unfit_any: dict[tuple[int, ...], int] = {}
        unfit_whole: dict[tuple[int, ...], int] = {}
        unfit_reserved = {False: math.inf, True: math.inf}
        avoid: set[int] = set()
        # Per queue whose scan skipped started runs: how far the pass read it.
        read_to: dict[int, int] = {}
        now = engine.state.now
        while (cursor or pending) and examined < window and placement.free_total:
            if pending is not None and (not cursor or pending[:2] < cursor[0][:2]):
                key, i = pending[3], head[pending[3]]
                pending = next(heads, None)
            else:
                _, _, key, i = heapq.heappop(cursor)
            q = queue[key]
            j = q[i]
            if caps is not None and waiting[j] and engine.over_cap(j):
                # Its pool is at its cap (GrpTRES): the pass leaves the whole queue, of one
                # pool (and with a size factor of one size, so all of it is over the cap).
                continue
            # The next waiting run of the same queue joins the cursor (queues.push_next,
            # inlined: this runs for every entry a pass scans, started ones included).
            nxt = i + 1
            while nxt < len(q) and not waiting[q[nxt]]:
                nxt += 1
            if nxt > i + 1:
                read_to[key] = nxt
            if nxt < len(q):
                k = q[nxt]
                heapq.heappush(cursor, (-priority(key, k), queued_at[k], key, nxt))
            if not waiting[j]:
                continue
            examined += 1
            if not reserved:
                p = choose(j, None)
                if p >= 0:
                    start(j, p)
                    touched.add(key)
                    continue
                if kept[0] == j and kept[4] == placement.starts_on[kept[1]] and kept[2] > now:
                    # Nothing started on its partition since: the reservation holds.
                    reserved_part, reserved_until, spare = kept[1], kept[2], kept[3]
                else:
                    reserved_until, reserved_part, spare = self.reservation(j)
                reserved = True
                reserved_job = j
                avoid = {reserved_part}
                continue
            # Prefer partitions the reservation does not need; else fit around it. Nothing
            # ends during a pass, so a size that fits nowhere stays unfit for the rest of it
            # and so does any larger one: such jobs are turned away without a search.
            need, whole = size[j], one_domain[j]
            parts = eligible[j]
            unfit = unfit_whole if whole else unfit_any
            p = -1
            if need < unfit.get(parts, need + 1):
                p = choose(j, avoid)
                if p < 0:
                    unfit[parts] = need
            if p < 0 and reserved_part in parts and need < unfit_reserved[whole]:
                if not fits(j, reserved_part):
                    unfit_reserved[whole] = need
                elif now + runtime[j] <= reserved_until:
                    p = reserved_part
                elif not whole and need <= spare:
                    spare -= need
                    p = reserved_part
            if p >= 0:
                start(j, p)
                self.backfilled += 1
                touched.add(key)
        if reserved and reserved_part >= 0:
            kept[:] = [
                reserved_job,
                reserved_part,
                reserved_until,
                spare,
                placement.starts_on[reserved_part],
            ]
            state = engine.state
            state.reserved, state.reserved_pool = reserved_job, runs.pool[reserved_job]
            state.reserved_size = size[reserved_job]
        for key, end in read_to.items():
            queues.drop_started(key, end)
        for key in touched:
            queues.touch(key)
