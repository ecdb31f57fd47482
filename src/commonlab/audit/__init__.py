"""`commonlab audit`: re-derive the facility's public figures from its record alone.

The audit reads the log through its public tiles and entry bundles only (`log.py`), checks
them against the signed checkpoint, replays every entry into the public state it implies
(one `Book` per domain, `replay.py`), and compares that state with what the facility
publishes through its API and CSV exports (`published.py`), one line per difference
(`findings.py`). It imports nothing from the services that wrote the record: only the entry
schemas (each domain's `events.py`) and the record's pure proof code. A second, independent
implementation of each rule is the point: two programs that agree are evidence, one program
checking itself is not.
"""
