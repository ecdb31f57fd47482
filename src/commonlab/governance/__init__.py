"""Governance: member states, the contribution scale, the council, motions, votes, and what a
passed motion does (adopting a regulation, kept by regulation/, is one of them)."""
