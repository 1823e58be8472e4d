"""Membership: sign-ups, confirmations and staff actions, each a row of ``subscriber_log``.

The log is the consent proof (when, from which page, under which form wording, from
which client — a keyed hash, never the address) and the history of a membership. A
sign-up's rows are written when the person confirms (``signup_requests.py`` keeps the
request until then, and counts the sign-up limits).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from ..models import SubscriberStatus
from .connection import Connection
from .forgotten import Forgotten
from .subscribers import Subscribers


class LogAction(StrEnum):
    SIGNUP = "signup"  # the form was sent (consent given), from ``source``
    CONFIRMATION_SENT = "confirmation_sent"  # a confirmation email went (or was tried)
    CONFIRMATION_FAILED = "confirmation_failed"  # ... and the transport refused it
    CONFIRMED = "confirmed"  # the link was followed and the form posted: active
    WELCOME_SENT = "welcome_sent"
    ADDED = "added"  # by staff (`subscribers add`)
    RESUBSCRIBED = "resubscribed"  # by staff (`subscribers resubscribe`)
    UNSUBSCRIBED = "unsubscribed"
    # written when a provider event changes the status (``source``: the provider)
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class SignupOutcome(StrEnum):
    """What a sign-up did (never shown to the visitor: their page is always the same)."""

    CONFIRMATION = "confirmation"  # pending: a confirmation email is queued
    RECENT = "recent"  # pending; a confirmation went to this mailbox within the day
    ACTIVE = "active"  # already subscribed: nothing sent
    SUPPRESSED = "suppressed"  # bounced or complained: nothing recorded or sent
    ERASED = "erased"  # erased on request: nothing recorded or sent
    CLIENT_LIMIT = "client_limit"  # too many sign-ups from this client this hour
    NETWORK_LIMIT = "network_limit"  # too many sign-ups from this client's network
    ADDRESS_LIMIT = "address_limit"  # too many sign-ups of this mailbox this hour


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Membership:
    """The ``subscriber_log`` table and the status changes it records."""

    def __init__(self, db: Connection, subscribers: Subscribers, forgotten: Forgotten) -> None:
        self.db = db
        self.subscribers = subscribers
        self.forgotten = forgotten

    def log(
        self,
        subscriber_id: int,
        action: LogAction,
        at: str,
        *,
        source: str | None = None,
        form_version: str | None = None,
        client_hash: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Add a row (in a transaction of its own, or the caller's); its id."""
        with self.db.transaction():
            row = self.db.execute(
                "INSERT INTO subscriber_log (subscriber_id, action, at, source, form_version, "
                "client_hash, detail) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (subscriber_id, str(action), at, source, form_version, client_hash, detail),
            ).fetchone()
        return int(row[0])

    def entries(self, subscriber_id: int) -> list[dict[str, Any]]:
        """The membership history of one subscriber, oldest first."""
        rows = self.db.execute(
            "SELECT action, at, source, form_version, detail FROM subscriber_log "
            "WHERE subscriber_id = ? ORDER BY id",
            (subscriber_id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def _locked_status(self, subscriber_id: int) -> SubscriberStatus | None:
        """The subscriber's status, their row locked to the end of the transaction (None:
        no such subscriber, or erased)."""
        db = self.db
        db.lock(("subscribers",), "ROW EXCLUSIVE")
        row = db.execute(
            db.dialect.locked("SELECT status FROM subscribers WHERE id = ? AND erased_at IS NULL"),
            (subscriber_id,),
        ).fetchone()
        return None if row is None else SubscriberStatus(row["status"])

    def _activate(
        self, subscriber_id: int, action: LogAction, reason: str, consent_source: str, at: str
    ) -> None:
        """Make the subscriber active with this consent, and log why (in the caller's
        transaction)."""
        self.db.execute(
            "UPDATE subscribers SET status = 'active', status_reason = ?, status_changed_at = ?, "
            "updated_at = ?, subscribed_at = ?, consent_source = ? WHERE id = ?",
            (reason, at, at, at, consent_source, subscriber_id),
        )
        self.log(subscriber_id, action, at, detail=consent_source)

    # -- staff ------------------------------------------------------------------
    def add(
        self,
        email: str,
        first_name: str,
        last_name: str,
        tags: tuple[str, ...],
        consent_source: str,
        now: dt.datetime,
    ) -> tuple[SubscriberStatus | None, int | None]:
        """Add one person as active. (None, id) when added; (their status, id) when the
        address is already known and nothing was changed; (None, None) when erased."""
        at = iso(now)
        db = self.db
        with db.transaction():
            db.lock(("subscribers",), "ROW EXCLUSIVE")
            if self.forgotten.includes(email):
                return None, None
            row = self.subscribers._row(email)
            if row is not None:
                return SubscriberStatus(row["status"]), int(row["id"])
            sid = int(
                db.execute(
                    "INSERT INTO subscribers (email, email_key, first_name, last_name, status, "
                    "attributes, subscribed_at, consent_source, status_reason, "
                    "status_changed_at, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 'active', '{}', ?, ?, 'added by staff', ?, ?, ?) "
                    "RETURNING id",
                    (email, email.lower(), first_name, last_name, at, consent_source, at, at, at),
                ).fetchone()[0]
            )
            for tag in dict.fromkeys(tags):
                db.execute(
                    "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (sid, tag),
                )
            self.log(sid, LogAction.ADDED, at, detail=consent_source)
        return None, sid

    def resubscribe(
        self, subscriber_id: int, consent_source: str, now: dt.datetime
    ) -> SubscriberStatus | None:
        """An unsubscribed person back to active; the status before (None: not found)."""
        at = iso(now)
        db = self.db
        with db.transaction():
            before = self._locked_status(subscriber_id)
            if before is None:
                return None
            if before is SubscriberStatus.UNSUBSCRIBED:
                self._activate(
                    subscriber_id, LogAction.RESUBSCRIBED, "resubscribed", consent_source, at
                )
        return before

    # -- the list month by month (report.overview) ----------------------------------
    def monthly(self, actions: tuple[str, ...]) -> dict[tuple[str, str], int]:
        """Distinct subscribers per (month YYYY-MM, action) with a row of ``actions``."""
        marks = ", ".join("?" * len(actions))
        rows = self.db.execute(
            "SELECT substr(at, 1, 7) AS month, action, count(DISTINCT subscriber_id) "
            f"FROM subscriber_log WHERE action IN ({marks}) GROUP BY month, action",
            actions,
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def imported_monthly(self) -> dict[str, int]:
        """Subscribers per month of their creation that came by neither a sign-up nor a
        staff add: an import (imports write no log row). A sign-up not yet confirmed
        (its log rows come with the confirmation) is none."""
        rows = self.db.execute(
            "SELECT substr(s.created_at, 1, 7) AS month, count(*) FROM subscribers s "
            "WHERE coalesce(s.status_reason, '') NOT IN ('signed up', 'forgotten sign-up') "
            "AND NOT EXISTS (SELECT 1 FROM subscriber_log l WHERE l.subscriber_id = s.id "
            "AND l.action IN (?, ?)) GROUP BY month",
            (str(LogAction.SIGNUP), str(LogAction.ADDED)),
        )
        return {r[0]: r[1] for r in rows}

    def erasures(self, actions: tuple[str, ...]) -> list[tuple[str, str | None]]:
        """Each erased subscriber: (when erased, their last row of ``actions`` before
        that, or None; a sign-up never confirmed, which has no row, as ``signup``)."""
        marks = ", ".join("?" * len(actions))
        rows = self.db.execute(
            "SELECT s.erased_at, CASE WHEN s.status_reason = 'forgotten sign-up' THEN ? "
            "ELSE (SELECT l.action FROM subscriber_log l "
            f"WHERE l.subscriber_id = s.id AND l.action IN ({marks}) AND l.at <= s.erased_at "
            "ORDER BY l.at DESC, l.id DESC LIMIT 1) END FROM subscribers s "
            "WHERE s.erased_at IS NOT NULL",
            (str(LogAction.SIGNUP), *actions),
        )
        return [(r[0], r[1]) for r in rows]

    def first_activity(self) -> str | None:
        """The earliest time anything happened to the list or a campaign started."""
        row = self.db.execute(
            "SELECT min(t) FROM (SELECT min(at) AS t FROM subscriber_log "
            "UNION ALL SELECT min(created_at) FROM subscribers "
            "UNION ALL SELECT min(started_at) FROM campaigns) m"
        ).fetchone()
        return row[0] if row else None
