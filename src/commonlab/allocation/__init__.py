"""Allocation: open calls, proposals, conflict-free review, allocations, the usage ledger and
member-state share accounting."""
