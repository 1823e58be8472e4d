"""The database: subscribers, campaigns and the delivery ledger, on SQLite or PostgreSQL.

``open_store(url)`` is the way in. The ``Store`` it gives is the modules the database is
made of, one concern each (docs/architecture.md lists them), over one connection: callers
use its parts directly, ``store.subscribers.find(email)``, ``store.ledger.claim(...)``,
and a transaction one part opens covers whatever the others do inside it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from .connection import Connection, connect
from .event_log import EventLog
from .forgotten import Forgotten
from .leases import Lease, Leases, new_holder
from .ledger import Ledger
from .link_secret import LinkSecret
from .migrations import migrate
from .records import (
    CampaignPage,
    CampaignRow,
    Erasure,
    ImportSummary,
    KeptStatus,
    MessageTarget,
    now_iso,
)
from .sequences import Sequences
from .signup_requests import SignupRequests
from .signups import Membership
from .subscribers import Subscribers

__all__ = [
    "CampaignPage",
    "CampaignRow",
    "Erasure",
    "ImportSummary",
    "KeptStatus",
    "Lease",
    "MessageTarget",
    "Sequences",
    "SignupRequests",
    "Store",
    "new_holder",
    "now_iso",
    "open_store",
]


class Store:
    """The database behind every command, SQLite or PostgreSQL: its parts over one
    connection (``db``, whose ``dialect`` says how SQL differs), the schema migrated
    on open."""

    def __init__(self, db: Connection) -> None:
        self.db = db
        self.secret = LinkSecret(db)
        self.forgotten = Forgotten(db, self.secret)
        self.leases = Leases(db)
        self.subscribers = Subscribers(db, self.forgotten)
        self.ledger = Ledger(db, self.subscribers, self.leases, self.forgotten)
        self.events = EventLog(db, self.subscribers, self.ledger, self.forgotten)
        self.membership = Membership(db, self.subscribers, self.forgotten)
        self.sequences = Sequences(db)
        self.signup_requests = SignupRequests(db, self.subscribers, self.forgotten, self.membership)
        self.migrated = migrate(db)  # the migrations this open applied, in order

    def transaction(self) -> AbstractContextManager[Connection]:
        """``with store.transaction():`` BEGIN ... COMMIT, or ROLLBACK on error; the
        parts' own transactions inside it join it."""
        return self.db.transaction()

    def close(self) -> None:
        self.db.close()


def open_store(url: str) -> Store:
    """The store for a database URL (sqlite:///PATH or postgresql://...); the schema is
    migrated on open."""
    return Store(connect(url))
