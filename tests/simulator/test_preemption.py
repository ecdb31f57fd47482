"""Preemption, checked by hand: by `drf` (Kueue's reclaimWithinCohort) a pool below its
quota with work waiting takes back what another pool borrowed, newest runs first, the cut
runs' accelerator-time is lost and the jobs run again from the start; by `commonlab` (the
share controller's plan) the jobs resume from their last checkpoint."""

from __future__ import annotations

import pytest

from commonlab.compute.share_controller import ReclaimSettings
from commonlab.simulator.engine import Policy
from commonlab.simulator.metrics import measure
from commonlab.simulator.policies import CommonlabPolicy
from tests.simulator.helpers import fleet, run

POOLS = {"pools": ("pa", "pb"), "entitled": (0.5, 0.5), "tenant_pools": {"a": "pa", "b": "pb"}}


def _borrow_then_reclaim(
    spec, b_size: int, *, one_domain: bool = False, policy: str | Policy = "drf"
):
    # Pool a borrows the whole machine (quota 2 of 4); pool b asks at t=10.
    jobs = [
        {"submit": 0, "runtime": 100, "size": 1, "tenant": "a", "one_domain": one_domain}
        for _ in range(4)
    ]
    jobs.append(
        {"submit": 10, "runtime": 50, "size": b_size, "tenant": "b", "one_domain": one_domain}
    )
    return run(spec, jobs, policy, **POOLS)


def test_a_pool_below_its_quota_reclaims_borrowed_accelerators() -> None:
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    workload, outcome, _ = _borrow_then_reclaim(spec, 2)
    # The first reclaim pass (t=30) preempts a's two newest runs; b runs 30-80; a's two
    # jobs wait (a is at its quota) until b's accelerators free at t=80, and run again.
    assert outcome.preemptions == 2
    assert outcome.cut_job.tolist() == [3, 2]
    assert outcome.cut_start.tolist() == [0, 0] and outcome.cut_end.tolist() == [30, 30]
    assert outcome.lost_accelerator_seconds == 60
    assert outcome.start.tolist() == [0, 0, 80, 80, 30]
    assert outcome.end.tolist() == [100, 100, 180, 180, 80]
    figures = measure(workload, outcome, capacity=4, entitled=[0.5, 0.5])
    assert figures["preemptions"] == 2 and figures["preempted_jobs"] == 2
    assert figures["lost_accelerator_hours"] * 3600 == pytest.approx(60)
    assert figures["per_pool"]["pa"]["preemptions"] == 2
    assert figures["per_pool"]["pb"]["lost_accelerator_hours"] == 0
    # Queueing delay leaves out the 30 s the cut runs held: (0+0+50+50+20)/5.
    assert figures["mean_wait_h"] * 3600 == pytest.approx(24)
    # While jobs arrive (t=0-10) all four accelerators are busy, but the work of the two
    # runs cut at t=30 is lost.
    assert figures["utilisation_busy"] == pytest.approx(1.0)
    assert figures["utilisation"] == pytest.approx(0.5)
    # Up to the last start (t=80): 2x80 for a's first two jobs and 2x50 for b, of 4x80.
    assert figures["utilisation_to_last_start"] == pytest.approx(260 / 320)


def test_reclaim_in_one_domain_preempts_only_inside_it() -> None:
    # Two domains of two accelerators: b's one-domain job needs both of one domain.
    spec = fleet(
        {
            "name": "p",
            "accelerator": "H100",
            "nodes": 4,
            "accelerators_per_node": 1,
            "nodes_per_domain": 2,
        }
    )
    _, outcome, _ = _borrow_then_reclaim(spec, 2, one_domain=True)
    assert outcome.preemptions == 2
    assert outcome.start.tolist()[4] == 30


def test_a_pool_never_preempts_beyond_its_quota() -> None:
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    _, outcome, _ = _borrow_then_reclaim(spec, 3)  # 3 > b's quota of 2
    assert outcome.preemptions == 0
    assert outcome.start.tolist()[4] == 100


@pytest.mark.parametrize("policy", ["fifo", "multifactor", CommonlabPolicy(reclaim=None)])
def test_the_other_policies_never_preempt(policy: str | Policy) -> None:
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    jobs = [{"submit": 0, "runtime": 100, "size": 1, "tenant": "a"} for _ in range(4)]
    jobs.append({"submit": 10, "runtime": 50, "size": 2, "tenant": "b"})
    _, outcome, _ = run(spec, jobs, policy, **POOLS)
    assert outcome.preemptions == 0
    assert outcome.start.tolist()[4] == 100


def test_commonlab_preempts_for_the_fair_split_and_resumes_from_the_checkpoint() -> None:
    # Pool a holds all four accelerators with 10-hour jobs; at t=7300 pool b asks for two.
    # The controller's plan (at the tick b's arrival brings) gives each pool its fair two,
    # caps a at 2 and preempts two of a's runs: they checkpointed every hour, so each keeps
    # 7200 s, loses 100 s and 300 s to restart, and ends 400 s later than uncut. drf (no
    # checkpoints) loses the whole 7300 s of each.
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    jobs = [{"submit": 0, "runtime": 36_000, "size": 1, "tenant": "a"} for _ in range(4)]
    jobs += [{"submit": 7_300, "runtime": 3_600, "size": 1, "tenant": "b"} for _ in range(2)]
    policy = CommonlabPolicy(reclaim=ReclaimSettings(budget=1.0), checkpoint_s=3_600, restart_s=300)
    workload, outcome, _ = run(spec, jobs, policy, **POOLS)
    assert outcome.cut_job.tolist() == [3, 2]  # the newest (last started) first
    assert outcome.cut_end.tolist() == [7_300, 7_300]
    assert outcome.cut_kept.tolist() == [7_200, 7_200]
    assert outcome.lost_accelerator_seconds == 2 * (100 + 300)
    # b runs at once; a's cut jobs wait under the cap until b's end, then run the 28,800 s
    # left after their checkpoint plus the restart.
    assert outcome.start.tolist() == [0, 0, 10_900, 10_900, 7_300, 7_300]
    assert outcome.end.tolist() == [36_000, 36_000, 40_000, 40_000, 10_900, 10_900]
    figures = measure(workload, outcome, capacity=4, entitled=[0.5, 0.5])
    assert figures["per_pool"]["pa"]["lost_accelerator_hours"] * 3600 == pytest.approx(200)
    _, from_scratch, _ = run(spec, jobs, "drf", **POOLS)
    assert from_scratch.lost_accelerator_seconds == 2 * 7_300
    assert from_scratch.end.tolist()[2:4] == [46_900, 46_900]


def test_commonlab_without_checkpoints_restarts_from_the_beginning() -> None:
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    jobs = [{"submit": 0, "runtime": 36_000, "size": 1, "tenant": "a"} for _ in range(4)]
    jobs += [{"submit": 7_300, "runtime": 3_600, "size": 1, "tenant": "b"} for _ in range(2)]
    policy = CommonlabPolicy(reclaim=ReclaimSettings(budget=1.0), checkpoint_s=None)
    _, outcome, _ = run(spec, jobs, policy, **POOLS)
    assert outcome.cut_kept.tolist() == [0, 0]
    assert outcome.lost_accelerator_seconds == 2 * 7_300
    assert outcome.end.tolist()[2:4] == [46_900, 46_900]
