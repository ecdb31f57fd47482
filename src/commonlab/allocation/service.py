"""Allocation's public face: the use cases and reads other domains, the API and the portal
call. Each lives in the module of its idea, and each use case opens one transaction,
authorizes first and writes its record entry in that transaction (the arithmetic is `rules`):

- `proposals`: calls, proposals and the panel's decision;
- `review`: conflict-free review — declared conflicts, assignment, scores, replies, ranking;
- `allocations`: awarded allocations, sub-allocations, members, which one pays for a job,
  and the project as its people see it;
- `ledger`: hours held, settled and released (once), and the balances beside them;
- `reports`: member-state shares and usage reports.
"""

from __future__ import annotations

from commonlab.allocation.access import may_see_inside
from commonlab.allocation.allocations import (
    MyProject,
    ProjectPage,
    Tranche,
    activate_allocation,
    active_allocations,
    add_member,
    allocation_for_job,
    allocations_query,
    awarded_projects,
    check_awaiting_council,
    countries_of,
    funding_of,
    get_allocation,
    get_tranches,
    my_projects,
    project_page,
    projects_of,
    sub_allocate,
)
from commonlab.allocation.ledger import (
    Hold,
    check_holds,
    close_reservation,
    hold_hours,
    rebuild_balances,
    release,
    reserve,
    settle,
    usage,
    write_holds,
)
from commonlab.allocation.proposals import (
    calls_query,
    create_call,
    decide_proposal,
    get_call,
    get_proposal,
    list_calls,
    my_proposals,
    submit_proposal,
)
from commonlab.allocation.reports import (
    OUTSIDE_MEMBERS,
    REPORT_GROUPS,
    delivered_hours,
    share_accounting,
    usage_report,
)
from commonlab.allocation.review import (
    SuggestedReviewer,
    assign_reviewer,
    declare_conflict,
    eligible_reviewers,
    rank_call,
    reply,
    review_queue,
    score_review,
    suggested_reviewers,
)

__all__ = [
    "OUTSIDE_MEMBERS",
    "REPORT_GROUPS",
    "Hold",
    "MyProject",
    "ProjectPage",
    "SuggestedReviewer",
    "Tranche",
    "activate_allocation",
    "active_allocations",
    "add_member",
    "allocation_for_job",
    "allocations_query",
    "assign_reviewer",
    "awarded_projects",
    "calls_query",
    "check_awaiting_council",
    "check_holds",
    "close_reservation",
    "countries_of",
    "create_call",
    "decide_proposal",
    "declare_conflict",
    "delivered_hours",
    "eligible_reviewers",
    "funding_of",
    "get_allocation",
    "get_call",
    "get_proposal",
    "get_tranches",
    "hold_hours",
    "list_calls",
    "may_see_inside",
    "my_projects",
    "my_proposals",
    "project_page",
    "projects_of",
    "rank_call",
    "rebuild_balances",
    "release",
    "reply",
    "reserve",
    "review_queue",
    "score_review",
    "settle",
    "share_accounting",
    "sub_allocate",
    "submit_proposal",
    "suggested_reviewers",
    "usage",
    "usage_report",
    "write_holds",
]
