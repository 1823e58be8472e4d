"""The database: subscribers, campaigns and the delivery ledger, on SQLite or PostgreSQL.

``open_store(url)`` is the way in; the modules, one concern each, are listed in
docs/architecture.md.
"""

from __future__ import annotations

from .connection import connect
from .facade import SQLiteStore
from .leases import Lease, new_holder
from .records import (
    CampaignPage,
    CampaignRow,
    Erasure,
    ImportSummary,
    KeptStatus,
    MessageTarget,
    now_iso,
)

__all__ = [
    "CampaignPage",
    "CampaignRow",
    "Erasure",
    "ImportSummary",
    "KeptStatus",
    "Lease",
    "MessageTarget",
    "SQLiteStore",
    "new_holder",
    "now_iso",
    "open_store",
]


def open_store(url: str) -> SQLiteStore:
    """The store for a database URL (sqlite:///PATH or postgresql://...); the schema is
    migrated on open."""
    return SQLiteStore(connect(url))
