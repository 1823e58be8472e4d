"""Provider events as recorded: each stored once, applied to its subscriber by the rules
of ``event_rules.py``, and the webhook replay keys that keep a request from counting
twice."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import Any

from ..event_rules import effect_of, status_reason
from ..models import Event, EventOutcome, RecordedEvent, SubscriberStatus
from .connection import Connection
from .forgotten import Forgotten
from .ledger import Ledger
from .records import MessageTarget, now_iso, time_offset
from .subscribers import Subscribers


class EventLog:
    """The ``events`` and ``webhook_nonces`` tables."""

    NONCE_DAYS = 30  # past every provider's retries; Postmark's requests have no timestamp

    def __init__(
        self, db: Connection, subscribers: Subscribers, ledger: Ledger, forgotten: Forgotten
    ) -> None:
        self.db = db
        self.subscribers = subscribers
        self.ledger = ledger
        self.forgotten = forgotten
        self._nonces_purged_at: dt.datetime | None = None

    # -- replay keys ------------------------------------------------------------------
    def claim_nonces(self, provider: str, nonces: Iterable[str]) -> set[str]:
        """Record webhook replay keys at once; those recorded before (replays) are returned."""
        now = dt.datetime.now(dt.UTC)
        seen = set()
        with self.db.transaction():
            purged = self._nonces_purged_at
            if purged is None or now - purged > dt.timedelta(hours=1):
                self.db.execute(
                    "DELETE FROM webhook_nonces WHERE seen_at < ?",
                    ((now - dt.timedelta(days=self.NONCE_DAYS)).isoformat(),),
                )
                self._nonces_purged_at = now
            for nonce in sorted(set(nonces)):  # one order: concurrent claims never deadlock
                cur = self.db.execute(
                    "INSERT INTO webhook_nonces (provider, nonce, seen_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (provider, nonce, now.isoformat()),
                )
                if cur.rowcount == 0:
                    seen.add(nonce)
        return seen

    def release_nonces(self, provider: str, nonces: Iterable[str]) -> None:
        """Forget replay keys claimed for events that could not be recorded."""
        rows = [(provider, nonce) for nonce in nonces]
        if rows:
            with self.db.transaction():
                self.db.executemany(
                    "DELETE FROM webhook_nonces WHERE provider = ? AND nonce = ?", rows
                )

    # -- events -------------------------------------------------------------------------
    def record(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent:
        """Store an event (once) and apply it to its subscriber, in one transaction.

        An event about an erased person is kept as a count only (no address, detail or
        payload) and changes nothing; erased addresses another event's payload lists
        are replaced there.
        """
        db = self.db
        with db.transaction():
            # a forget under way finishes first (the order forget takes them in)
            db.lock(("subscribers", "events"), "ROW EXCLUSIVE")
            target = self._target(event)
            subscriber_id = target.subscriber_id
            erased = self.forgotten.about_erased(subscriber_id, event.email)
            email, detail, raw = event.email, event.detail, event.raw
            if erased:
                email, detail, raw = None, None, {}
                event = replace(event, url=None, user_agent=None)
            elif mentioned := self.forgotten.trace_in([raw, detail, event.url]):
                raw, detail = mentioned.scrub_json(raw), mentioned.scrub_json(detail)
                event = replace(event, url=mentioned.scrub_json(event.url))
            if not self._insert(event, target, email, detail, raw):
                return RecordedEvent(EventOutcome.ALREADY_RECORDED)
            if erased:
                return RecordedEvent(EventOutcome.ERASED)
            if subscriber_id is None:
                return RecordedEvent(EventOutcome.NO_SUBSCRIBER)
            return self._apply(event, subscriber_id, detail, soft_bounce_limit)

    def _insert(
        self, event: Event, target: MessageTarget, email: str | None, detail: Any, raw: Any
    ) -> bool:
        """Store the event; False when the provider's event id was stored before."""
        cur = self.db.execute(
            "INSERT INTO events (provider, kind, email, subscriber_id, campaign_id, "
            "provider_message_id, provider_event_id, occurred_at, detail, raw, received_at, "
            "url, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                event.provider,
                str(event.kind),
                email,
                target.subscriber_id,
                target.campaign_id,
                event.provider_message_id,
                event.provider_event_id,
                event.occurred_at,
                detail,
                json.dumps(raw, ensure_ascii=False, default=str),
                now_iso(),
                event.url,
                event.user_agent,
            ),
        )
        return cur.rowcount > 0

    def _apply(
        self, event: Event, subscriber_id: int, detail: str | None, limit: int
    ) -> RecordedEvent:
        """What the rules say the event does to the subscriber, done."""
        db = self.db
        row = db.execute(
            db.dialect.locked("SELECT status, soft_bounces FROM subscribers WHERE id = ?"),
            (subscriber_id,),
        ).fetchone()
        effect = effect_of(event.kind, SubscriberStatus(row[0]), row[1], limit)
        if effect.soft_bounces is not None:
            db.execute(
                "UPDATE subscribers SET soft_bounces = ? WHERE id = ?",
                (effect.soft_bounces, subscriber_id),
            )
        if effect.status is not None:
            reason = status_reason(effect, event.provider, event.kind, detail, limit)
            if self.subscribers.set_status(subscriber_id, effect.status, reason):
                # the membership history (and the list's month by month) sees it too
                db.execute(
                    "INSERT INTO subscriber_log (subscriber_id, action, at, source, detail) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (subscriber_id, str(effect.status), now_iso(), event.provider, reason),
                )
        if effect.soft_bounces is None:
            return RecordedEvent(effect.outcome)
        return RecordedEvent(effect.outcome, effect.soft_bounces, limit)

    def _target(self, event: Event) -> MessageTarget:
        """The (campaign, subscriber) an event is about: by the provider's message id, else
        by the ids our own headers carried, else by the address."""
        campaign_id = subscriber_id = None
        if event.provider_message_id:
            found = self.ledger.message_target(event.provider_message_id, event.email)
            if found:
                campaign_id, subscriber_id = found.campaign_id, found.subscriber_id
        if campaign_id is None and event.campaign:
            row = self.ledger.campaign(event.campaign)
            campaign_id = row.id if row else None
        if (
            subscriber_id is None
            and event.subscriber_id is not None
            and self.subscribers.exists(event.subscriber_id)
        ):
            subscriber_id = event.subscriber_id
        if subscriber_id is None and event.email:
            subscriber_id = self.subscribers.id_of(event.email)
        return MessageTarget(campaign_id, subscriber_id)

    def counts(self, campaign_id: int) -> dict[str, int]:
        """How many subscribers (or addresses) each kind of event of a campaign concerns."""
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT kind, count(DISTINCT coalesce(CAST(subscriber_id AS TEXT), email)) "
                "FROM events WHERE campaign_id = ? GROUP BY kind",
                (campaign_id,),
            )
        }

    # -- reports (report.py reads them; distinct readers: subscriber, else address) -------
    def reader_counts(
        self, campaign_id: int | None, groups: dict[str, tuple[str, ...]]
    ) -> dict[tuple[int, str], int]:
        """Distinct readers with at least one event of each group's kinds, per
        (campaign id, group name): of one campaign, or of every one (None)."""
        cases = " ".join(
            f"WHEN kind IN ({', '.join('?' * len(kinds))}) THEN CAST(? AS TEXT)"
            for kinds in groups.values()
        )
        params: list[Any] = [p for name, kinds in groups.items() for p in (*kinds, name)]
        where = "campaign_id IS NOT NULL"
        if campaign_id is not None:
            where, params = "campaign_id = ?", [*params, campaign_id]
        rows = self.db.execute(
            f"SELECT campaign_id, grp, count(DISTINCT reader) FROM (SELECT campaign_id, "
            f"CASE {cases} END AS grp, {reader()} AS reader FROM events WHERE {where}) g "
            "WHERE grp IS NOT NULL GROUP BY campaign_id, grp",
            params,
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def recorded(self, campaign_id: int, apart_from: str) -> int:
        """How many events of the campaign were recorded, those of ``apart_from`` (a
        provider name) left out."""
        row = self.db.execute(
            "SELECT count(*) FROM events WHERE campaign_id = ? AND provider != ?",
            (campaign_id, apart_from),
        ).fetchone()
        return int(row[0])

    def minutes(self, campaign_id: int) -> list[Any]:
        """The campaign's events counted per (kind, minute): rows of kind, the time's
        first 16 characters, its offset (``time_offset``) and the count; the time is
        when it occurred, else when it was received."""
        at = "coalesce(occurred_at, received_at)"
        return self.db.execute(
            f"SELECT kind, substr({at}, 1, 16) AS minute, {time_offset(at)} AS tail, count(*) "
            "FROM events WHERE campaign_id = ? GROUP BY kind, minute, tail",
            (campaign_id,),
        ).fetchall()

    def bounces(self, campaign_id: int, kinds: tuple[str, ...]) -> list[Any]:
        """The campaign's events of ``kinds`` (bounces), one row per (kind, reader,
        detail): the reader's key, the address (the event's, else the delivery's; None
        for an erased reader) and the detail."""
        marks = ", ".join("?" * len(kinds))
        return self.db.execute(
            f"SELECT DISTINCT e.kind, {reader('e.')} AS reader, "
            "CASE WHEN s.erased_at IS NULL THEN coalesce(e.email, d.email) END AS address, "
            "e.detail FROM events e "
            "LEFT JOIN deliveries d ON d.campaign_id = e.campaign_id "
            "AND d.subscriber_id = e.subscriber_id "
            "LEFT JOIN subscribers s ON s.id = e.subscriber_id "
            f"WHERE e.campaign_id = ? AND e.kind IN ({marks})",
            (campaign_id, *kinds),
        ).fetchall()

    def clicks(self, campaign_id: int) -> list[Any]:
        """The campaign's clicks: the reader's key, the link (``url``; ``detail``, where
        some providers put it before ``url`` existed), the user agent, when it occurred
        (else was received), and when the reader's message was sent."""
        return self.db.execute(
            f"SELECT {reader('e.')} AS reader, e.subscriber_id, e.url, e.detail, "
            "e.user_agent, coalesce(e.occurred_at, e.received_at) AS at, d.sent_at "
            "FROM events e LEFT JOIN deliveries d ON d.campaign_id = e.campaign_id "
            "AND d.subscriber_id = e.subscriber_id "
            "WHERE e.campaign_id = ? AND e.kind = 'clicked'",
            (campaign_id,),
        ).fetchall()

    def delivered_at(self, campaign_id: int, subscriber_ids: Collection[int]) -> dict[int, str]:
        """When the campaign's message to each of ``subscriber_ids`` was delivered: their
        earliest delivered event, by the times as written (a reader rarely has more than
        one). One scan of the campaign's delivered events, filtered here: no plan to
        go wrong on a database whose statistics are not made yet."""
        found: dict[int, str] = {}
        for row in self.db.execute(
            "SELECT subscriber_id, coalesce(occurred_at, received_at) FROM events "
            "WHERE campaign_id = ? AND kind = 'delivered'",
            (campaign_id,),
        ).fetchall():
            sid, at = row[0], row[1]  # (a PostgreSQL row iterates over its names)
            if sid in subscriber_ids and at is not None and (sid not in found or at < found[sid]):
                found[sid] = at
        return found


def reader(table: str = "") -> str:
    """SQL for the reader an event is about (its subscriber, else its address), for
    counting readers once; ``table`` the events table's alias and a dot, if any."""
    return f"coalesce(CAST({table}subscriber_id AS TEXT), {table}email)"
