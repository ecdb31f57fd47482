"""The public record: an append-only, verifiable log of everything the facility does.

Other domains write through `record.append(db, event, actor=..., subject=..., data=...)`
inside their own transaction; see `service.py`.
"""

from commonlab.record.service import PUBLIC_ROLES, actor_ref, append, format_time

__all__ = ["PUBLIC_ROLES", "actor_ref", "append", "format_time"]
