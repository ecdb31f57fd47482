"""Governance: member states, the contribution scale, the council, motions, votes, and the
regulations the rest of the system obeys."""
