"""Sequences in the database: when each sequence and step was first seen, who entered
which sequence when, and a step's deliveries, added as its readers become due.

A step is a campaign (slug ``<sequence>--<step>``) whose deliveries are inserted a few
at a time, each at most once ever (``ON CONFLICT DO NOTHING`` on the deliveries' key);
they are then sent, claimed and settled like any campaign's. Times are ISO 8601 UTC
strings (``...Z``), compared as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..models import Audience, CampaignStatus
from .connection import Connection
from .subscribers import audience_sql

# subscriber_log actions that make a reader active, and so enter them into a sequence
ENTERING_ACTIONS = ("confirmed", "added", "resubscribed")
_CHUNK = 500


class Sequences:
    """The ``sequences``, ``sequence_steps`` and ``sequence_entries`` tables."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    # -- first seen -------------------------------------------------------------------
    def first_seen(self, name: str, at: str) -> str:
        """When ``run`` first saw sequence ``name`` (``at`` if this is the first time)."""
        return self._first_seen("sequences", "name", name, at)

    def step_first_seen(self, slug: str, at: str) -> str:
        """When ``run`` first saw step ``slug`` (``at`` if this is the first time)."""
        return self._first_seen("sequence_steps", "slug", slug, at)

    def seen(self, name: str) -> str | None:
        """When sequence ``name`` was first seen; None: never yet."""
        return self._seen("sequences", "name", name)

    def step_seen(self, slug: str) -> str | None:
        """When step ``slug`` was first seen; None: never yet."""
        return self._seen("sequence_steps", "slug", slug)

    def _first_seen(self, table: str, key: str, value: str, at: str) -> str:
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO {table} ({key}, first_seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (value, at),
            )
        found = self._seen(table, key, value)
        assert found is not None
        return found

    def _seen(self, table: str, key: str, value: str) -> str | None:
        row = self.db.execute(
            f"SELECT first_seen_at FROM {table} WHERE {key} = ?", (value,)
        ).fetchone()
        return row[0] if row else None

    # -- entering ---------------------------------------------------------------------
    def sync(self, name: str, audience: Audience, since: str, until: str) -> int:
        """Enter the readers who became active (confirmed, added by staff, resubscribed)
        between ``since`` and ``until`` and are active and in ``audience`` now; each
        enters once, at the first such moment. The number that entered."""
        where, params = audience_sql(audience)
        marks = ", ".join("?" * len(ENTERING_ACTIONS))
        with self.db.transaction():
            cur = self.db.execute(
                "INSERT INTO sequence_entries (sequence, subscriber_id, entered_at) "
                "SELECT ?, l.subscriber_id, min(l.at) FROM subscriber_log l "
                "JOIN subscribers s ON s.id = l.subscriber_id "
                f"WHERE l.action IN ({marks}) AND l.at >= ? AND l.at <= ? AND {where} "
                "AND NOT EXISTS (SELECT 1 FROM sequence_entries e WHERE e.sequence = ? "
                "AND e.subscriber_id = l.subscriber_id) "
                "GROUP BY l.subscriber_id ON CONFLICT DO NOTHING",
                (name, *ENTERING_ACTIONS, since, until, *params, name),
            )
            return max(cur.rowcount, 0)

    def enter(self, name: str, email_keys: Iterable[str], at: str) -> int:
        """Enter the active readers with these addresses (``email_key``s) at ``at``;
        those already in the sequence keep their time. The number that entered."""
        keys = list(dict.fromkeys(email_keys))
        entered = 0
        with self.db.transaction():
            for i in range(0, len(keys), _CHUNK):
                part = keys[i : i + _CHUNK]
                cur = self.db.execute(
                    "INSERT INTO sequence_entries (sequence, subscriber_id, entered_at) "
                    "SELECT ?, s.id, ? FROM subscribers s WHERE s.status = 'active' "
                    f"AND s.erased_at IS NULL AND s.email_key IN ({', '.join('?' * len(part))}) "
                    "ON CONFLICT DO NOTHING",
                    (name, at, *part),
                )
                entered += max(cur.rowcount, 0)
        return entered

    def entries(self, name: str) -> list[tuple[int, str]]:
        """(subscriber id, entered at) of everyone in sequence ``name``."""
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT subscriber_id, entered_at FROM sequence_entries WHERE sequence = ? "
                "ORDER BY subscriber_id",
                (name,),
            )
        ]

    # -- a step's readers ---------------------------------------------------------------
    def enqueue_step(
        self,
        campaign_id: int,
        name: str,
        audiences: Sequence[Audience],
        window: tuple[str, str],
        transport: str,
        now: str,
    ) -> int:
        """Add a pending delivery of the step for each reader of sequence ``name`` who
        entered within ``window`` (earliest, latest: the grace rule and due-ness), is
        active and in every one of ``audiences``, and never had this step; the step's
        campaign is ``sending`` from its first reader on (and stays so). A paused step
        gets none."""
        where, params = _all_of(audiences)
        db = self.db
        with db.transaction():
            status = db.execute(
                db.dialect.locked("SELECT status FROM campaigns WHERE id = ?"), (campaign_id,)
            ).fetchone()[0]
            if status not in (CampaignStatus.DRAFT, CampaignStatus.SENDING, CampaignStatus.SENT):
                return 0  # paused (or stopped for good): a person decides
            cur = db.execute(
                "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, updated_at) "
                "SELECT ?, s.id, s.email, 'pending', ? FROM sequence_entries e "
                "JOIN subscribers s ON s.id = e.subscriber_id "
                f"WHERE e.sequence = ? AND e.entered_at >= ? AND e.entered_at <= ? AND {where} "
                "ORDER BY s.id ON CONFLICT DO NOTHING",
                (campaign_id, now, name, *window, *params),
            )
            added = max(cur.rowcount, 0)
            if added and status != CampaignStatus.SENDING:
                db.execute(
                    "UPDATE campaigns SET status = ?, transport = ?, "
                    "started_at = coalesce(started_at, ?), finished_at = NULL WHERE id = ?",
                    (CampaignStatus.SENDING, transport, now, campaign_id),
                )
            return added

    def waiting(
        self,
        campaign_id: int | None,
        name: str,
        audiences: Sequence[Audience],
        since: str,
        until: str | None = None,
    ) -> tuple[int, str | None]:
        """Readers of sequence ``name`` who entered at or after ``since`` (the grace
        rule) and, with ``until``, by then (due-ness), are still active and in
        ``audiences``, and have no delivery of the step yet: how many, and the earliest
        entry among them."""
        where, params = _all_of(audiences)
        by = "" if until is None else "AND e.entered_at <= ? "
        row = self.db.execute(
            "SELECT count(*), min(e.entered_at) FROM sequence_entries e "
            "JOIN subscribers s ON s.id = e.subscriber_id "
            f"WHERE e.sequence = ? AND e.entered_at >= ? {by}AND {where} "
            "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = ? "
            "AND d.subscriber_id = e.subscriber_id)",
            (
                name,
                since,
                *(() if until is None else (until,)),
                *params,
                -1 if campaign_id is None else campaign_id,
            ),
        ).fetchone()
        return int(row[0]), row[1]


def _all_of(audiences: Sequence[Audience]) -> tuple[str, list[object]]:
    """The condition on ``subscribers s`` that selects the readers in every audience."""
    parts = [audience_sql(a) for a in audiences] or [audience_sql(Audience())]
    return " AND ".join(f"({w})" for w, _ in parts), [p for _, ps in parts for p in ps]
