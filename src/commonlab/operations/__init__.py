"""Running a facility as a fleet of processes, and the operator's instruments: the leader
lease (one sequencer, ticker and controller at a time across workers and hosts), backups and
their restore, metrics, readiness, structured logs and rate limits. See docs/operators.md."""
