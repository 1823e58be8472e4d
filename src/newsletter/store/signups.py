"""Membership: sign-ups, confirmations and staff actions, each a row of ``subscriber_log``.

The log is the consent proof (when, from which page, under which form wording, from
which client — a keyed hash, never the address) and the history of a membership. The
sign-up limits are counted from it inside the sign-up's own transaction, so several
``serve`` processes share them and two requests cannot both pass a limit of one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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

    CONFIRMATION = "confirmation"  # pending, and a confirmation email is to go now
    RECENT = "recent"  # pending; a confirmation went within the day: none now
    CAPPED = "capped"  # pending; the hourly cap on confirmation emails is reached
    ACTIVE = "active"  # already subscribed: nothing sent
    SUPPRESSED = "suppressed"  # bounced or complained: nothing recorded or sent
    ERASED = "erased"  # erased on request: nothing recorded or sent
    CLIENT_LIMIT = "client_limit"  # too many sign-ups from this client this hour
    ADDRESS_LIMIT = "address_limit"  # too many sign-ups of this address this hour


@dataclass(frozen=True, slots=True)
class Consent:
    """What a sign-up form says of the person's consent."""

    source: str  # the page the form was on (no query string), or "" when unknown
    form_version: str
    client_hash: str  # HMAC of the client's address under the project secret


@dataclass(frozen=True, slots=True)
class SignupLimits:
    per_client_per_hour: int
    per_address_per_hour: int
    confirmations_per_hour: int
    confirmation_interval_hours: int = 24


@dataclass(frozen=True, slots=True)
class SignupDecision:
    outcome: SignupOutcome
    subscriber_id: int | None = None
    log_id: int | None = None  # the confirmation_sent row, to mark a failure on


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

    def _count(self, where: str, params: tuple[Any, ...]) -> int:
        return int(
            self.db.execute(
                f"SELECT count(*) FROM subscriber_log WHERE {where}", params
            ).fetchone()[0]
        )

    # -- sign-up ----------------------------------------------------------------
    def sign_up(
        self,
        email: str,
        first_name: str,
        last_name: str,
        consent: Consent,
        limits: SignupLimits,
        now: dt.datetime,
    ) -> SignupDecision:
        """Record a sign-up (``email`` already validated): a new or unsubscribed person
        becomes ``pending``; whether a confirmation email is to go now."""
        at = iso(now)
        hour_ago = iso(now - dt.timedelta(hours=1))
        db = self.db
        with db.transaction():
            # one sign-up at a time, across processes: the limits are counted, then used
            db.lock(("subscribers",), "ROW EXCLUSIVE")
            db.lock(("subscriber_log",), "SHARE ROW EXCLUSIVE")
            if self.forgotten.includes(email):
                return SignupDecision(SignupOutcome.ERASED)
            if self._client_over_limit(consent.client_hash, limits, hour_ago):
                return SignupDecision(SignupOutcome.CLIENT_LIMIT)
            row = self.subscribers._row(email)
            if row is None:
                sid = self._insert_pending(email, first_name, last_name, at)
                status = SubscriberStatus.PENDING
            else:
                sid, status = int(row["id"]), SubscriberStatus(row["status"])
                refused = self._refused(sid, status, limits, hour_ago)
                if refused is not None:
                    return refused
                if status is SubscriberStatus.UNSUBSCRIBED:  # a new consent: confirm again
                    self._pending_again(row, first_name, last_name, at)
            self.log(
                sid,
                LogAction.SIGNUP,
                at,
                source=consent.source or None,
                form_version=consent.form_version,
                client_hash=consent.client_hash or None,
                detail="already active" if status is SubscriberStatus.ACTIVE else None,
            )
            if status is SubscriberStatus.ACTIVE:
                return SignupDecision(SignupOutcome.ACTIVE, sid)
            return self._confirmation(sid, limits, now, hour_ago)

    def _client_over_limit(self, client_hash: str, limits: SignupLimits, hour_ago: str) -> bool:
        """Whether this client (when known) signed up as often as it may this hour."""
        return bool(client_hash) and (
            self._count(
                "action = ? AND client_hash = ? AND at >= ?",
                (str(LogAction.SIGNUP), client_hash, hour_ago),
            )
            >= limits.per_client_per_hour
        )

    def _refused(
        self, sid: int, status: SubscriberStatus, limits: SignupLimits, hour_ago: str
    ) -> SignupDecision | None:
        """Why a known person's sign-up is refused (suppressed, or this address's limit
        this hour); None when it goes on."""
        if status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
            return SignupDecision(SignupOutcome.SUPPRESSED, sid)
        signups = self._count(
            "subscriber_id = ? AND action = ? AND at >= ?",
            (sid, str(LogAction.SIGNUP), hour_ago),
        )
        if signups >= limits.per_address_per_hour:
            return SignupDecision(SignupOutcome.ADDRESS_LIMIT, sid)
        return None

    def _insert_pending(self, email: str, first_name: str, last_name: str, at: str) -> int:
        """A new person, pending their confirmation; their id."""
        return int(
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, first_name, last_name, "
                "status, attributes, status_reason, status_changed_at, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', '{}', 'signed up', ?, ?, ?) "
                "RETURNING id",
                (email, email.lower(), first_name, last_name, at, at, at),
            ).fetchone()[0]
        )

    def _pending_again(self, row: Any, first_name: str, last_name: str, at: str) -> None:
        """An unsubscribed person who signed up again: pending, names kept unless given."""
        self.db.execute(
            "UPDATE subscribers SET status = 'pending', status_reason = ?, "
            "status_changed_at = ?, updated_at = ?, first_name = ?, last_name = ? "
            "WHERE id = ?",
            (
                "signed up again",
                at,
                at,
                first_name or row["first_name"],
                last_name or row["last_name"],
                int(row["id"]),
            ),
        )

    def _confirmation(
        self, sid: int, limits: SignupLimits, now: dt.datetime, hour_ago: str
    ) -> SignupDecision:
        """Whether a confirmation email goes to a pending person now: not when one went
        (or they confirmed) within the interval, nor past the hourly cap on all of them."""
        since = iso(now - dt.timedelta(hours=limits.confirmation_interval_hours))
        if self._count(
            "subscriber_id = ? AND action IN (?, ?) AND at >= ?",
            (sid, str(LogAction.CONFIRMATION_SENT), str(LogAction.CONFIRMED), since),
        ):
            return SignupDecision(SignupOutcome.RECENT, sid)
        sent = self._count(
            "action IN (?, ?) AND at >= ?",
            (str(LogAction.CONFIRMATION_SENT), str(LogAction.CONFIRMATION_FAILED), hour_ago),
        )
        if sent >= limits.confirmations_per_hour:
            return SignupDecision(SignupOutcome.CAPPED, sid)
        log_id = self.log(sid, LogAction.CONFIRMATION_SENT, iso(now))
        return SignupDecision(SignupOutcome.CONFIRMATION, sid, log_id)

    def mark_failed(self, log_id: int, reason: str) -> None:
        """The confirmation email of ``log_id`` did not go: a later sign-up may try again."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE subscriber_log SET action = ?, detail = ? WHERE id = ?",
                (str(LogAction.CONFIRMATION_FAILED), reason[:300], log_id),
            )

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

    def confirm(self, subscriber_id: int, now: dt.datetime) -> SubscriberStatus | None:
        """A pending subscriber confirmed: active, with the consent of their last sign-up.
        The status before (None: no such subscriber, or erased)."""
        at = iso(now)
        db = self.db
        with db.transaction():
            before = self._locked_status(subscriber_id)
            if before is None:
                return None
            if before is not SubscriberStatus.PENDING:
                return before
            signup = db.execute(
                "SELECT source, form_version FROM subscriber_log WHERE subscriber_id = ? "
                "AND action = ? ORDER BY id DESC LIMIT 1",
                (subscriber_id, str(LogAction.SIGNUP)),
            ).fetchone()
            source = "sign-up form"
            if signup is not None:
                source += f" {signup['form_version'] or ''}".rstrip()
                if signup["source"]:
                    source += f" on {signup['source']}"
            self._activate(subscriber_id, LogAction.CONFIRMED, "confirmed", source, at)
        return before

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
        staff add: an import (imports write no log row)."""
        rows = self.db.execute(
            "SELECT substr(s.created_at, 1, 7) AS month, count(*) FROM subscribers s "
            "WHERE NOT EXISTS (SELECT 1 FROM subscriber_log l WHERE l.subscriber_id = s.id "
            "AND l.action IN (?, ?)) GROUP BY month",
            (str(LogAction.SIGNUP), str(LogAction.ADDED)),
        )
        return {r[0]: r[1] for r in rows}

    def erasures(self, actions: tuple[str, ...]) -> list[tuple[str, str | None]]:
        """Each erased subscriber: (when erased, their last row of ``actions`` before
        that, or None)."""
        marks = ", ".join("?" * len(actions))
        rows = self.db.execute(
            "SELECT s.erased_at, (SELECT l.action FROM subscriber_log l "
            f"WHERE l.subscriber_id = s.id AND l.action IN ({marks}) AND l.at <= s.erased_at "
            "ORDER BY l.at DESC, l.id DESC LIMIT 1) FROM subscribers s "
            "WHERE s.erased_at IS NOT NULL",
            actions,
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
