"""The delivery ledger: campaigns, one delivery per (campaign, subscriber), claims and
settlements, outbox rehearsals, each campaign's web version and featured articles.

Statuses of a delivery: ``models.DeliveryStatus``; of a campaign: ``CampaignStatus``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from ..addresses import canonical_address
from ..errors import SendConflict
from ..models import Audience, CampaignStatus, DeliveryStatus, Recipient, SendResult
from .connection import Connection
from .forgotten import Forgotten
from .leases import Leases, is_lost
from .records import (
    ArchivedCampaign,
    CampaignPage,
    CampaignRow,
    MessageTarget,
    now_iso,
    recipient_row,
    time_offset,
)
from .subscribers import Subscribers, audience_sql

PAUSED_BY_PERSON = "schedule"  # campaigns.paused_by of a campaign `schedule pause` paused
ENQUEUE_CHUNK = 5000  # readers read and written at a time when each has their own due time
ANALYZE_AFTER = 10_000  # deliveries enqueued at once from which their statistics are gathered
_TAKEN = (DeliveryStatus.SENT, DeliveryStatus.QUEUED)  # the provider took the message


class Ledger:
    """The ``campaigns``, ``deliveries``, ``rehearsals``, ``campaign_pages``,
    ``campaign_articles`` and ``digest_articles`` tables."""

    def __init__(
        self, db: Connection, subscribers: Subscribers, leases: Leases, forgotten: Forgotten
    ) -> None:
        self.db = db
        self.subscribers = subscribers
        self.leases = leases
        self.forgotten = forgotten

    # -- campaigns ----------------------------------------------------------------
    def campaign(self, slug: str) -> CampaignRow | None:
        row = self.db.execute("SELECT * FROM campaigns WHERE slug = ?", (slug,)).fetchone()
        return CampaignRow.of(row) if row else None

    def campaigns(self) -> list[CampaignRow]:
        return [CampaignRow.of(r) for r in self.db.execute("SELECT * FROM campaigns ORDER BY id")]

    def campaign_slug(self, campaign_id: int) -> str | None:
        """The slug of campaign ``campaign_id`` (None: no such campaign)."""
        row = self.db.execute("SELECT slug FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        return row[0] if row else None

    def ensure_campaign(self, slug: str, subject: str) -> CampaignRow:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO campaigns (slug, subject, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (slug, subject, now_iso()),
            )
        row = self.campaign(slug)
        assert row is not None
        return row

    def set_campaign_status(self, campaign_id: int, status: CampaignStatus) -> None:
        with self.db.transaction():
            self.db.execute("UPDATE campaigns SET status = ? WHERE id = ?", (status, campaign_id))

    def finish_if_done(self, campaign_id: int) -> bool:
        """Mark the campaign sent once nothing is pending or in flight (a campaign
        cancelled, or paused by a person, keeps its status)."""
        with self.db.transaction():
            left = self.db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? "
                "AND status IN ('pending', 'sending')",
                (campaign_id,),
            ).fetchone()[0]
            if left:
                return False
            self.db.execute(
                "UPDATE campaigns SET status = ?, finished_at = ? WHERE id = ? "
                "AND status != 'cancelled' AND paused_by IS NULL",
                (CampaignStatus.SENT, now_iso(), campaign_id),
            )
        return True

    def pause_for_failures(self, campaign_id: int) -> None:
        """Too many failed: paused until a person sends it again (never over a cancel)."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE campaigns SET status = ? WHERE id = ? AND status != 'cancelled'",
                (CampaignStatus.PAUSED, campaign_id),
            )

    # -- a person's pause, resume and cancel (`newsletter schedule`) ------------------
    def held(self, campaign_id: int) -> CampaignStatus | None:
        """PAUSED when a person paused the campaign, CANCELLED when it was cancelled:
        a sender stops before its next batch. None: it may go on."""
        row = self.db.execute(
            "SELECT status, paused_by FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        if row is None:
            return None
        if row["status"] == CampaignStatus.CANCELLED:
            return CampaignStatus.CANCELLED
        return CampaignStatus.PAUSED if row["paused_by"] else None

    def pause(self, slug: str, subject: str) -> CampaignRow:
        """A person pauses the campaign, before or during its send (a campaign never
        sent gets its row now, so that no send starts it)."""
        row = self.ensure_campaign(slug, subject)
        with self.db.transaction():
            self.db.execute(
                "UPDATE campaigns SET status = ?, paused_by = ? WHERE id = ? "
                "AND status NOT IN ('sent', 'cancelled')",
                (CampaignStatus.PAUSED, PAUSED_BY_PERSON, row.id),
            )
        return self.campaign(slug) or row

    def resume(self, campaign_id: int) -> None:
        """Undo a pause (a person's or one for failures): the next send or run goes on."""
        db = self.db
        with db.transaction():
            has_deliveries = db.execute(
                "SELECT 1 FROM deliveries WHERE campaign_id = ? LIMIT 1", (campaign_id,)
            ).fetchone()
            status = CampaignStatus.SENDING if has_deliveries else CampaignStatus.DRAFT
            db.execute(
                "UPDATE campaigns SET status = ?, paused_by = NULL WHERE id = ? "
                "AND status = 'paused'",
                (status, campaign_id),
            )
        if has_deliveries:  # everything settled while it was paused: it is sent
            self.finish_if_done(campaign_id)

    def cancel(self, slug: str, subject: str) -> int:
        """Cancel the campaign for good: its pending deliveries are settled ``skipped``
        ("cancelled"); those in flight settle as they come back. How many were skipped."""
        row = self.ensure_campaign(slug, subject)
        now = now_iso()
        with self.db.transaction():
            self.db.execute(
                "UPDATE campaigns SET status = ?, paused_by = NULL, finished_at = ? WHERE id = ?",
                (CampaignStatus.CANCELLED, now, row.id),
            )
            return self.db.execute(
                "UPDATE deliveries SET status = 'skipped', error = 'cancelled', updated_at = ? "
                "WHERE campaign_id = ? AND status = 'pending'",
                (now, row.id),
            ).rowcount

    # -- the web version ------------------------------------------------------------
    def save_campaign_page(
        self, campaign_id: int, subject: str, preheader: str, html: str, in_archive: bool = True
    ) -> bool:
        """Keep a campaign's web version, and whether the public archive lists it; the
        first one stays (True when this one was kept)."""
        with self.db.transaction():
            cur = self.db.execute(
                "INSERT INTO campaign_pages (campaign_id, subject, preheader, html, created_at, "
                "in_archive) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (campaign_id, subject, preheader, html, now_iso(), 1 if in_archive else 0),
            )
        return cur.rowcount > 0

    def campaign_page(self, slug: str) -> CampaignPage | None:
        """The web version stored for ``slug``, or None for a campaign never sent."""
        row = self.db.execute(
            "SELECT c.slug, p.subject, p.preheader, p.html, p.created_at "
            "FROM campaign_pages p JOIN campaigns c ON c.id = p.campaign_id WHERE c.slug = ?",
            (slug,),
        ).fetchone()
        return CampaignPage(**dict(row)) if row else None

    def served_page(self, slug: str, rehearsals: Collection[str]) -> CampaignPage | None:
        """The web version of ``slug`` that readers' links point to: only a campaign sent
        for real (its transport is not one of ``rehearsals``) has one, listed in the
        archive or not; a campaign only rehearsed has none."""
        row = self.db.execute(
            "SELECT c.slug, p.subject, p.preheader, p.html, p.created_at "
            "FROM campaign_pages p JOIN campaigns c ON c.id = p.campaign_id "
            f"WHERE c.slug = ? AND {_real('c.transport', rehearsals)}",
            (slug, *rehearsals),
        ).fetchone()
        return CampaignPage(**dict(row)) if row else None

    def archived_campaigns(self, rehearsals: Collection[str]) -> list[ArchivedCampaign]:
        """The campaigns of the public archive, newest first: those with a stored page
        that may be listed and that someone got from a real send (a delivery sent or
        queued through a transport that is not one of ``rehearsals``, the transports whose
        sends are rehearsals: a campaign only rehearsed is never published)."""
        real_c, real_d = _real("c.transport", rehearsals), _real("d.transport", rehearsals)
        rows = self.db.execute(
            "SELECT c.slug, p.subject, p.preheader, "
            "coalesce(c.started_at, p.created_at) AS sent_at, "
            "coalesce(c.finished_at, c.started_at, p.created_at) AS updated_at "
            "FROM campaign_pages p JOIN campaigns c ON c.id = p.campaign_id "
            f"WHERE p.in_archive = 1 AND {real_c} "
            "AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id "
            f"AND d.status IN ('sent', 'queued') AND {real_d}) "
            "ORDER BY coalesce(c.started_at, p.created_at) DESC, c.id DESC",
            (*rehearsals, *rehearsals),
        ).fetchall()
        return [ArchivedCampaign(**dict(r)) for r in rows]

    # -- the queue --------------------------------------------------------------------
    def enqueue(
        self,
        campaign: CampaignRow,
        audience: Audience,
        transport: str,
        due: Callable[[str | None], str] | None = None,
    ) -> int:
        """Freeze the audience: one pending delivery per recipient, made once per campaign.

        ``due`` gives each reader's due time from their time zone (a ``local_time``
        campaign; None: everyone is due now); the readers are then read and written a
        chunk at a time, in the same transaction."""
        where, params = audience_sql(audience)
        now = now_iso()
        db = self.db
        with db.transaction():
            status = db.execute(
                db.dialect.locked("SELECT status FROM campaigns WHERE id = ?"), (campaign.id,)
            ).fetchone()[0]
            if status != CampaignStatus.DRAFT:
                return 0
            if due is None:
                added = db.execute(
                    "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, "
                    f"updated_at) SELECT ?, s.id, s.email, 'pending', ? FROM subscribers s "
                    f"WHERE {where} ORDER BY s.id",
                    (campaign.id, now, *params),
                ).rowcount
            else:
                added = self._enqueue_due(campaign.id, where, params, due, now)
            db.execute(
                "UPDATE campaigns SET status = ?, transport = ?, started_at = ? WHERE id = ?",
                (CampaignStatus.SENDING, transport, now, campaign.id),
            )
        if added >= ANALYZE_AFTER and db.dialect.analyze:
            # the first claims are planned on statistics that know these rows
            db.execute("ANALYZE deliveries")
        return added

    def _enqueue_due(
        self,
        campaign_id: int,
        where: str,
        params: list[Any],
        due: Callable[[str | None], str],
        now: str,
    ) -> int:
        """The audience's deliveries, each with its reader's due time (keyset chunks)."""
        last, added = 0, 0
        while True:
            rows = self.db.execute(
                f"SELECT s.id, s.email, s.timezone FROM subscribers s WHERE {where} "
                "AND s.id > ? ORDER BY s.id LIMIT ?",
                (*params, last, ENQUEUE_CHUNK),
            ).fetchall()
            if not rows:
                return added
            self.db.copy_rows(
                "deliveries",
                ("campaign_id", "subscriber_id", "email", "status", "updated_at", "due_at"),
                [(campaign_id, r[0], r[1], "pending", now, due(r[2])) for r in rows],
            )
            added += len(rows)
            last = rows[-1][0]

    def requeue(self, campaign_id: int, statuses: Iterable[DeliveryStatus]) -> int:
        """Put settled deliveries with these statuses back in the queue (--retry-*)."""
        wanted = [str(s) for s in statuses]
        if not wanted:
            return 0
        marks = ", ".join("?" * len(wanted))
        with self.db.transaction():
            cur = self.db.execute(
                f"UPDATE deliveries SET status = 'pending', updated_at = ? "
                f"WHERE campaign_id = ? AND status IN ({marks})",
                (now_iso(), campaign_id, *wanted),
            )
            if cur.rowcount:
                self.db.execute(
                    "UPDATE campaigns SET status = ?, finished_at = NULL WHERE id = ?",
                    (CampaignStatus.SENDING, campaign_id),
                )
            return cur.rowcount

    def recover_abandoned(self, campaign_id: int, resend_safe: bool, lease_prefix: str) -> int:
        """Deliveries left ``sending`` by a sender that died.

        A live sender holds the lease ``<lease_prefix><holder>`` and renews it; a
        claim whose lease is gone, expired, or held by a dead process on this host
        is abandoned. Whether its request reached the provider is unknown, so it
        becomes ``unknown`` (never re-sent without --retry-unknown), unless the
        transport makes a repeat harmless, when it goes back to the queue.
        """
        holders = [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT claimed_by FROM deliveries WHERE campaign_id = ? "
                "AND status = 'sending'",
                (campaign_id,),
            )
        ]
        stale = []
        for holder in holders:
            lease = self.leases.find(f"{lease_prefix}{holder}")
            if lease is None or is_lost(lease):
                stale.append(holder)
        new_status = DeliveryStatus.PENDING if resend_safe else DeliveryStatus.UNKNOWN
        error = (
            None
            if resend_safe
            else "the sending process stopped before the provider's answer was recorded"
        )
        changed = 0
        with self.db.transaction():
            for holder in stale:
                match = "claimed_by = ?" if holder is not None else "claimed_by IS NULL"
                changed += self.db.execute(
                    "UPDATE deliveries SET status = ?, error = ?, claimed_by = NULL, "
                    f"updated_at = ? WHERE campaign_id = ? AND status = 'sending' AND {match}",
                    (
                        str(new_status),
                        error,
                        now_iso(),
                        campaign_id,
                        *((holder,) if holder is not None else ()),
                    ),
                ).rowcount
                self.db.execute("DELETE FROM locks WHERE name = ?", (f"{lease_prefix}{holder}",))
        return changed

    def claim(
        self,
        campaign_id: int,
        holder: str,
        limit: int,
        transport: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Recipient]:
        """Take up to ``limit`` pending deliveries due by ``now`` (default: the real time)
        for this process, lowest id first, for ``transport`` (recorded on each delivery).

        Recipients who left the audience since it was frozen (unsubscribed,
        bounced) are settled as ``skipped`` instead of claimed; when a whole batch of
        them was skipped, the next batch is taken, so that an empty answer always
        means nothing is left to claim.
        """
        due_by = _stored(now)
        stamp = now_iso()
        with self.db.transaction():
            while True:
                rows = self._pick(campaign_id, due_by, limit)
                claimed = self._mark(campaign_id, rows, holder, transport, stamp)
                if claimed or not rows or len(rows) < limit:
                    break
        tags = self.subscribers.tags_of([r["subscriber_id"] for r in claimed])
        return [recipient_row(r, tags, "subscriber_id") for r in claimed]

    def _pick(self, campaign_id: int, due_by: str, limit: int) -> list[Any]:
        """The lowest ``limit`` pending deliveries due by ``due_by`` that no other
        transaction holds, locked, with their readers' columns.

        The deliveries are chosen first, on their own index, then joined to their
        readers: a join planned the other way round would read the readers from the
        first id on every claim, and a claim near the end of a large campaign would
        read every reader before it. For the same reason the scan starts at the lowest
        pending reader (found on ``deliveries_pending``): with statistics that show
        most deliveries pending, PostgreSQL plans the pick as a walk of the primary
        key that filters out, on every claim, every delivery already sent."""
        db = self.db
        return db.execute(
            "WITH picked AS MATERIALIZED ("
            + db.dialect.locked(
                "SELECT d.subscriber_id FROM deliveries d "
                "WHERE d.campaign_id = ? AND d.status = 'pending' "
                "AND (d.due_at IS NULL OR d.due_at <= ?) "
                "AND d.subscriber_id >= (SELECT min(m.subscriber_id) FROM deliveries m "
                "WHERE m.campaign_id = ? AND m.status = 'pending') "
                "ORDER BY d.subscriber_id LIMIT ?",
                skip_locked=True,
            )
            + ") SELECT p.subscriber_id, s.email, s.first_name, s.last_name, s.status, "
            "s.erased_at, s.attributes, s.timezone FROM picked p "
            "JOIN subscribers s ON s.id = p.subscriber_id ORDER BY p.subscriber_id",
            (campaign_id, due_by, campaign_id, limit),
        ).fetchall()

    def _mark(
        self,
        campaign_id: int,
        rows: list[Any],
        holder: str,
        transport: str | None,
        stamp: str,
    ) -> list[Any]:
        """Claim the picked deliveries of active readers in one statement, and settle
        the others ``skipped`` with why; the claimed rows."""
        db = self.db
        skipped = [
            (stamp, _gone(r["status"], r["erased_at"]), campaign_id, r["subscriber_id"])
            for r in rows
            if r["status"] != "active"
        ]
        if skipped:
            db.executemany(
                "UPDATE deliveries SET status = 'skipped', updated_at = ?, error = ? "
                "WHERE campaign_id = ? AND subscriber_id = ?",
                skipped,
            )
        claimed = [r for r in rows if r["status"] == "active"]
        if claimed:
            db.execute(
                "UPDATE deliveries SET status = 'sending', claimed_by = ?, claimed_at = ?, "
                "attempts = attempts + 1, updated_at = ?, transport = coalesce(?, transport) "
                f"WHERE campaign_id = ? AND {db.dialect.among('subscriber_id')}",
                (
                    holder,
                    stamp,
                    stamp,
                    transport,
                    campaign_id,
                    db.dialect.ids([r["subscriber_id"] for r in claimed]),
                ),
            )
        return claimed

    def inactive(self, subscriber_ids: list[int]) -> dict[int, str]:
        """Of these subscribers, those no longer active (erased, unsubscribed, bounced,
        removed), with why: asked once per batch, just before it is sent."""
        if not subscriber_ids:
            return {}
        among, params = self.db.dialect.in_list("id", subscriber_ids)
        current = {
            r[0]: r
            for r in self.db.execute(
                f"SELECT id, status, erased_at FROM subscribers WHERE {among}", params
            )
        }
        gone = {}
        for sid in subscriber_ids:
            row = current.get(sid)
            if row is None:
                gone[sid] = "subscriber was removed"
            elif row["status"] != "active" or row["erased_at"]:
                gone[sid] = _gone(row["status"], row["erased_at"])
        return gone

    def settle(self, campaign_id: int, results: Iterable[SendResult]) -> None:
        """Record each recipient's outcome in one statement; suppress addresses the
        provider says are dead.

        The provider's raw answer is kept only for a message it did not take (sent and
        queued rows keep none: their message id says what there is to know). Someone
        erased while their message was out keeps no answer: their row records the
        outcome only, and the batch's other answers lose their address.
        """
        now = now_iso()
        results = list(results)
        if not results:
            return
        db = self.db
        with db.transaction():
            db.lock(("subscribers", "deliveries"), "ROW EXCLUSIVE")  # after a forget
            erased = self.forgotten.erased_among([r.subscriber_id for r in results])
            raws = [None if r.status in _TAKEN or r.raw is None else _json(r.raw) for r in results]
            trace = (
                self.forgotten.trace_in(
                    [(raw, r.error) for raw, r in zip(raws, results, strict=True)]
                )
                if erased
                else None
            )
            rows = []
            for r, raw in zip(results, raws, strict=True):
                error = r.error
                if r.subscriber_id in erased:
                    raw, error = None, error if r.status == DeliveryStatus.SKIPPED else None
                elif trace is not None:
                    raw, error = trace.scrub_stored(raw, "json"), trace.scrub_stored(error, "text")
                sent_at = now if r.status in _TAKEN else None
                rows.append((r.subscriber_id, str(r.status), r.message_id, error, raw, sent_at))
            self._write_settled(campaign_id, rows, now)
            db.executemany(
                "UPDATE subscribers SET status = 'bounced', updated_at = ? "
                "WHERE id = ? AND status = 'active'",
                [(now, r.subscriber_id) for r in results if r.suppress],
            )

    def _write_settled(self, campaign_id: int, rows: list[tuple[Any, ...]], now: str) -> None:
        """The settled rows (subscriber id, status, message id, error, answer, sent at):
        on PostgreSQL in one ``UPDATE ... FROM unnest(...)``, on SQLite as one prepared
        statement run for each row."""
        db = self.db
        if db.dialect.arrays:
            latest = {row[0]: row for row in rows}  # one answer per reader: the last
            columns = list(zip(*latest.values(), strict=True))
            db.execute(
                "UPDATE deliveries d SET status = v.status, provider_message_id = v.message_id, "
                "error = v.error, response = v.response, sent_at = v.sent_at, updated_at = ?, "
                "claimed_by = NULL FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], "
                "?::text[], ?::text[]) AS v(subscriber_id, status, message_id, error, response, "
                "sent_at) WHERE d.campaign_id = ? AND d.subscriber_id = v.subscriber_id",
                (now, *(list(c) for c in columns), campaign_id),
            )
            return
        db.executemany(
            "UPDATE deliveries SET status = ?, provider_message_id = ?, error = ?, "
            "response = ?, sent_at = ?, updated_at = ?, claimed_by = NULL "
            "WHERE campaign_id = ? AND subscriber_id = ?",
            [(*row[1:], now, campaign_id, row[0]) for row in rows],
        )

    def release(self, campaign_id: int, subscriber_ids: Iterable[int]) -> None:
        """Give claimed deliveries back to the queue: their request was never made."""
        now = now_iso()
        with self.db.transaction():
            self.db.executemany(
                "UPDATE deliveries SET status = 'pending', claimed_by = NULL, updated_at = ? "
                "WHERE campaign_id = ? AND subscriber_id = ? AND status = 'sending'",
                [(now, campaign_id, sid) for sid in subscriber_ids],
            )

    def erased_during(self, campaign_id: int, since: str) -> list[int]:
        """Recipients of the campaign erased since ``since`` (while it was being sent)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT d.subscriber_id FROM deliveries d JOIN subscribers s "
                "ON s.id = d.subscriber_id WHERE d.campaign_id = ? AND s.erased_at >= ?",
                (campaign_id, since),
            )
        ]

    # -- what `newsletter run` found done ------------------------------------------------
    def mark_done(self, key: str) -> None:
        """Remember that ``key`` (say, a period's digest with nothing to send) is done."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (f"done:{key}", now_iso()),
            )

    def is_done(self, key: str) -> bool:
        found = self.db.execute("SELECT 1 FROM settings WHERE key = ?", (f"done:{key}",)).fetchone()
        return found is not None

    # -- reading the ledger -------------------------------------------------------------
    def due_pending(self, campaign_id: int, now: dt.datetime) -> int:
        """Deliveries of the campaign with work to do by ``now``: pending and due, or
        claimed (``sending``: a live sender's, or a dead one's the next send recovers)."""
        return self.db.execute(
            "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND (status = 'sending' "
            "OR (status = 'pending' AND (due_at IS NULL OR due_at <= ?)))",
            (campaign_id, _stored(now)),
        ).fetchone()[0]

    def next_due(self, campaign_id: int) -> tuple[str | None, int]:
        """The earliest due time of the campaign's pending deliveries that wait for
        one, and how many wait: (None, 0) when none does."""
        row = self.db.execute(
            "SELECT min(due_at), count(due_at) FROM deliveries WHERE campaign_id = ? "
            "AND status = 'pending'",
            (campaign_id,),
        ).fetchone()
        return row[0], row[1]

    def delivery_counts(self, campaign_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status",
                (campaign_id,),
            )
        }

    def counts_by_campaign(self) -> dict[int, dict[str, int]]:
        """Every campaign's deliveries by status, by campaign id."""
        counts: dict[int, dict[str, int]] = {}
        for r in self.db.execute(
            "SELECT campaign_id, status, count(*) FROM deliveries GROUP BY campaign_id, status"
        ):
            counts.setdefault(r[0], {})[r[1]] = r[2]
        return counts

    def settlement_minutes(self, campaign_id: int) -> list[Any]:
        """The campaign's settled deliveries counted per (status, minute): rows of status,
        the time's first 16 characters, its offset (``records.time_offset``) and the
        count. The time is ``sent_at`` (else ``updated_at``) for those a provider took,
        ``updated_at`` for the rest: when they were settled."""
        at = (
            "CASE WHEN status IN ('sent', 'queued') THEN coalesce(sent_at, updated_at) "
            "ELSE updated_at END"
        )
        return self.db.execute(
            f"SELECT status, substr({at}, 1, 16) AS minute, {time_offset(at)} AS tail, "
            "count(*) FROM deliveries WHERE campaign_id = ? "
            "AND status NOT IN ('pending', 'sending', 'skipped') "
            "GROUP BY status, minute, tail",
            (campaign_id,),
        ).fetchall()

    def deliveries(self, campaign_id: int) -> Iterator[Any]:
        """The campaign's deliveries by subscriber: rows of email, status,
        provider_message_id, error, sent_at, attempts, subscriber_id and transport, by
        name or in that order."""
        yield from self.db.execute(
            "SELECT d.email, d.status, d.provider_message_id, d.error, d.sent_at, d.attempts, "
            "d.subscriber_id, d.transport FROM deliveries d WHERE d.campaign_id = ? "
            "ORDER BY d.subscriber_id",
            (campaign_id,),
        )

    def message_target(self, provider_message_id: str, email: str | None) -> MessageTarget | None:
        """The delivery of a provider message id; providers that give one id to a whole
        batch (SendGrid, Mailgun) need the address to tell the subscriber."""
        rows = self.db.execute(
            "SELECT campaign_id, subscriber_id, email FROM deliveries "
            "WHERE provider_message_id = ? LIMIT 1001",
            (provider_message_id,),
        ).fetchall()
        if not rows:
            return None
        if len(rows) == 1:
            return MessageTarget(rows[0][0], rows[0][1])
        key = canonical_address(email or "")
        match = next((r for r in rows if canonical_address(r[2]) == key), None)
        return MessageTarget(rows[0][0], match[1] if match else None)

    def history(self, subscriber_id: int) -> list[dict[str, Any]]:
        """Every campaign this subscriber was part of, and what happened to it."""
        rows = self.db.execute(
            "SELECT c.slug AS campaign, d.status, d.sent_at, d.error, d.provider_message_id "
            "FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id "
            "WHERE d.subscriber_id = ? ORDER BY d.campaign_id",
            (subscriber_id,),
        ).fetchall()
        events: dict[str, list[str]] = {}
        for r in self.db.execute(
            "SELECT c.slug, e.kind FROM events e JOIN campaigns c ON c.id = e.campaign_id "
            "WHERE e.subscriber_id = ? ORDER BY e.id",
            (subscriber_id,),
        ):
            events.setdefault(r[0], []).append(r[1])
        return [dict(r) | {"events": events.get(r["campaign"], [])} for r in rows]

    # -- rehearsals -------------------------------------------------------------------
    def only_rehearsed(
        self, campaign: CampaignRow, transport: str, rehearsals: Collection[str]
    ) -> bool:
        """Whether sending ``campaign`` through ``transport`` would be its first real send
        after it went only through one of ``rehearsals`` (the transports whose sends are
        rehearsals)."""
        if transport in rehearsals or campaign.transport not in rehearsals:
            return False
        other = self.db.execute(
            f"SELECT 1 FROM deliveries WHERE campaign_id = ? AND {_real('transport', rehearsals)} "
            "LIMIT 1",
            (campaign.id, *rehearsals),
        ).fetchone()
        return other is None

    def archive_rehearsal(self, campaign: CampaignRow) -> int:
        """Keep a summary of the rehearsal (``only_rehearsed``) and clear the ledger
        (deliveries and the stored web version) for the real send; the number of messages
        the rehearsal wrote."""
        db = self.db
        with db.transaction():
            row = db.execute(
                db.dialect.locked("SELECT status, transport FROM campaigns WHERE id = ?"),
                (campaign.id,),
            ).fetchone()
            if row["transport"] is None or row["transport"] != campaign.transport:
                return 0  # another sender archived it first
            busy = db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'sending'",
                (campaign.id,),
            ).fetchone()[0]
            if busy:
                raise SendConflict(
                    f"{campaign.slug} is still being written to the {campaign.transport} "
                    f"({busy} message(s) under way).",
                    "Wait for that rehearsal to finish, then send it again.",
                )
            written = db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'sent'",
                (campaign.id,),
            ).fetchone()[0]
            db.execute(
                "INSERT INTO rehearsals (campaign_id, transport, messages, started_at, "
                "finished_at, archived_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    campaign.id,
                    row["transport"],
                    written,
                    campaign.started_at,
                    campaign.finished_at,
                    now_iso(),
                ),
            )
            db.execute("DELETE FROM deliveries WHERE campaign_id = ?", (campaign.id,))
            # the real send stores its own web version (and archive choice): the campaign
            # may have changed since it was tried
            db.execute("DELETE FROM campaign_pages WHERE campaign_id = ?", (campaign.id,))
            db.execute(
                "UPDATE campaigns SET status = ?, transport = NULL, started_at = NULL, "
                "finished_at = NULL WHERE id = ?",
                (CampaignStatus.DRAFT, campaign.id),
            )
        return written

    def rehearsals(self, campaign_id: int) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute(
                "SELECT transport, messages, started_at, finished_at, archived_at "
                "FROM rehearsals WHERE campaign_id = ? ORDER BY archived_at",
                (campaign_id,),
            )
        ]

    # -- featured articles --------------------------------------------------------------
    def featured_before(self, period: str, rehearsals: Collection[str]) -> dict[str, str]:
        """Articles featured in digests of other periods, or in any campaign sent for real
        (not only through one of ``rehearsals``) other than this period's digest: each
        with the slug of the campaign that featured it (a sent one when there is one)."""
        found = {
            r[0]: f"digest-{r[1]}"
            for r in self.db.execute(
                "SELECT article, period FROM digest_articles WHERE period != ? ORDER BY period",
                (period,),
            )
        }
        found.update(
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT a.article, c.slug FROM campaign_articles a JOIN campaigns c "
                "ON c.id = a.campaign_id WHERE c.status != ? "
                f"AND {_real('c.transport', rehearsals)} AND c.slug != ? ORDER BY c.id",
                (CampaignStatus.DRAFT, *rehearsals, f"digest-{period}"),
            )
        )
        return found

    def record_campaign_articles(self, campaign_id: int, articles: Iterable[str]) -> None:
        """The articles a campaign features (once per campaign and article)."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO campaign_articles (campaign_id, article) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(campaign_id, a) for a in articles],
            )

    def record_digest(self, period: str, articles: list[str]) -> None:
        """The articles of a period's digest."""
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO digest_articles (period, article) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(period, a) for a in articles],
            )


def _real(column: str, rehearsals: Collection[str]) -> str:
    """SQL true when ``column`` names a transport whose sends are real: set (a campaign
    never sent has none) and not one of ``rehearsals``, each a ``?`` to bind in order."""
    if not rehearsals:
        return f"{column} IS NOT NULL"
    marks = ", ".join("?" for _ in rehearsals)
    return f"({column} IS NOT NULL AND {column} NOT IN ({marks}))"


def _stored(moment: dt.datetime | None) -> str:
    """A time as stored (ISO 8601 UTC, "Z"); the real time for None."""
    if moment is None:
        return now_iso()
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _json(raw: Any) -> str:
    """A provider's raw answer as stored."""
    return json.dumps(raw, ensure_ascii=False, default=str)


def _gone(status: str, erased_at: str | None) -> str:
    """Why a delivery is skipped: its reader's status, or their erasure."""
    return "subscriber was erased" if erased_at else f"subscriber is {status}"
