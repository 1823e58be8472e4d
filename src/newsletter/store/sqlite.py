"""SQLite storage: one file, WAL mode, every multi-row change in one transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SendConflict
from ..models import (
    Audience,
    DeliveryStatus,
    Event,
    EventKind,
    Recipient,
    SendResult,
    Subscriber,
    SubscriberStatus,
)
from .migrations import MIGRATIONS

# Statuses an import may never turn back into "active".
_STICKY = {
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
    SubscriberStatus.COMPLAINED,
}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class ImportSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_status: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)


def email_hash(email: str) -> str:
    """A one-way hash of an address: enough to refuse it again, not to recover it."""
    return hashlib.sha256(f"newsletter-forgotten:{email.strip().lower()}".encode()).hexdigest()


@dataclass
class CampaignRow:
    id: int
    slug: str
    subject: str
    status: str
    transport: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class CampaignPage:
    """A campaign's web version as stored when its send began: the email for no one."""

    slug: str
    subject: str
    preheader: str
    html: str
    created_at: str


class SQLiteStore:
    """The database behind every command; ``path`` is created with its folder.

    The SQL is written once for SQLite and PostgreSQL (``PostgresStore``); the few
    places where they differ are the attributes below.
    """

    dialect = "sqlite"
    begin = "BEGIN IMMEDIATE"  # take the write lock at once: no upgrade deadlocks
    primary_key = "INTEGER PRIMARY KEY"
    skip_locked = ""  # PostgreSQL: rows another sender holds are skipped, not waited for
    for_update = ""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA secure_delete=ON")  # erased data leaves no bytes behind
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"The database {path} cannot be opened: {exc}.",
                "Check [database] url in newsletter.toml; the file must be a SQLite database.",
            ) from None
        self.migrate()

    def close(self) -> None:
        self.db.close()

    # -- schema -------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded, in order; return their names."""
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {r[0] for r in self.db.execute("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                for statement in filter(str.strip, sql.split(";")):
                    self.db.execute(statement.replace("INTEGER PRIMARY KEY", self.primary_key))
                self.db.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, now_iso()),
                )
            applied.append(name)
        return applied

    def transaction(self) -> _Transaction:
        return _Transaction(self.db, self.begin)

    # -- settings and secrets -----------------------------------------------
    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def link_secret(self) -> str:
        """$NEWSLETTER_SECRET, else a random secret made once and kept in the database."""
        from_env = os.environ.get("NEWSLETTER_SECRET", "").strip()
        if from_env:
            return from_env
        with self.transaction():
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES ('link_secret', ?) "
                "ON CONFLICT DO NOTHING",
                (secrets.token_hex(32),),
            )
        return self.setting("link_secret") or ""

    # -- subscribers --------------------------------------------------------
    IMPORT_CHUNK = 5000

    def import_subscribers(self, subscribers: Iterable[Subscriber]) -> ImportSummary:
        """Insert or update, in one transaction, a chunk of rows at a time (bulk inserts;
        COPY on PostgreSQL); sticky statuses are never undone."""
        summary = ImportSummary()
        forgotten = {r[0] for r in self.db.execute("SELECT email_hash FROM forgotten")}
        chunk: dict[str, Subscriber] = {}
        with self.transaction():
            for sub in subscribers:
                key = sub.email.lower()
                if forgotten and email_hash(key) in forgotten:
                    summary.forgotten.append(sub.email)
                    continue
                if key in chunk or len(chunk) >= self.IMPORT_CHUNK:
                    self._import_chunk(chunk, summary)  # a repeat updates what came before
                    chunk = {}
                chunk[key] = sub
            if chunk:
                self._import_chunk(chunk, summary)
        return summary

    def _import_chunk(self, chunk: dict[str, Subscriber], summary: ImportSummary) -> None:
        now = now_iso()
        keys = list(chunk)
        marks = ", ".join("?" * len(keys))
        existing = {
            r["email_key"]: r
            for r in self.db.execute(
                f"SELECT * FROM subscribers WHERE email_key IN ({marks})", keys
            )
        }
        new = [chunk[k] for k in keys if k not in existing]
        if new:
            self.copy_rows(
                "subscribers",
                (
                    "email",
                    "email_key",
                    "first_name",
                    "last_name",
                    "status",
                    "attributes",
                    "subscribed_at",
                    "consent_source",
                    "created_at",
                    "updated_at",
                ),
                [
                    (
                        sub.email,
                        sub.email.lower(),
                        sub.first_name,
                        sub.last_name,
                        str(sub.status),
                        json.dumps(sub.attributes, sort_keys=True, ensure_ascii=False),
                        sub.subscribed_at or now,
                        sub.consent_source,
                        now,
                        now,
                    )
                    for sub in new
                ],
            )
            summary.added += len(new)
            tagged = [sub for sub in new if sub.tags]
            if tagged:
                tmarks = ", ".join("?" * len(tagged))
                ids = {
                    r[1]: r[0]
                    for r in self.db.execute(
                        f"SELECT id, email_key FROM subscribers WHERE email_key IN ({tmarks})",
                        [sub.email.lower() for sub in tagged],
                    )
                }
                self.copy_rows(
                    "subscriber_tags",
                    ("subscriber_id", "tag"),
                    [(ids[sub.email.lower()], tag) for sub in tagged for tag in sub.tags],
                )
        if not existing:
            return
        ids = [row["id"] for row in existing.values()]
        tags: dict[int, set[str]] = {i: set() for i in ids}
        for r in self.db.execute(
            f"SELECT subscriber_id, tag FROM subscriber_tags WHERE subscriber_id IN "
            f"({', '.join('?' * len(ids))})",
            ids,
        ):
            tags[r[0]].add(r[1])
        updates, new_tags = [], []
        for key, row in existing.items():
            sub = chunk[key]
            status = SubscriberStatus(row["status"])
            if status in _STICKY and sub.status != status:
                summary.kept_status.append(f"{sub.email} stays {status}")
                new_status = status
            else:
                new_status = sub.status
            merged_attrs = {**json.loads(row["attributes"]), **sub.attributes}
            values = {
                "first_name": sub.first_name or row["first_name"],
                "last_name": sub.last_name or row["last_name"],
                "status": str(new_status),
                "attributes": json.dumps(merged_attrs, sort_keys=True, ensure_ascii=False),
                "subscribed_at": sub.subscribed_at or row["subscribed_at"],
                "consent_source": sub.consent_source or row["consent_source"],
            }
            missing_tags = set(sub.tags) - tags[row["id"]]
            if all(row[k] == v for k, v in values.items()) and not missing_tags:
                summary.unchanged += 1
                continue
            updates.append((*values.values(), now, row["id"]))
            new_tags += [(row["id"], t) for t in missing_tags]
            summary.updated += 1
        if updates:
            self.db.executemany(
                "UPDATE subscribers SET first_name = ?, last_name = ?, status = ?, "
                "attributes = ?, subscribed_at = ?, consent_source = ?, updated_at = ? "
                "WHERE id = ?",
                updates,
            )
        if new_tags:
            self.db.executemany(
                "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                new_tags,
            )

    def copy_rows(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert many new rows at once (PostgreSQL overrides this with COPY)."""
        self.db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows,
        )

    def _tags(self, subscriber_id: int) -> set[str]:
        return {
            r[0]
            for r in self.db.execute(
                "SELECT tag FROM subscriber_tags WHERE subscriber_id = ?", (subscriber_id,)
            )
        }

    def _set_tags(self, subscriber_id: int | None, tags: Iterable[str], replace: bool) -> None:
        if replace:
            self.db.execute("DELETE FROM subscriber_tags WHERE subscriber_id = ?", (subscriber_id,))
        self.db.executemany(
            "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(subscriber_id, t) for t in tags],
        )

    def subscribers(
        self, status: str | None = None, tag: str | None = None
    ) -> Iterator[Subscriber]:
        """Subscribers in id order, streamed."""
        sql = "SELECT s.* FROM subscribers s WHERE coalesce(s.status_reason, '') != 'forgotten'"
        params: list[Any] = []
        if status:
            sql += " AND s.status = ?"
            params.append(status)
        if tag:
            sql += (
                " AND EXISTS (SELECT 1 FROM subscriber_tags t"
                " WHERE t.subscriber_id = s.id AND t.tag = ?)"
            )
            params.append(tag.lower())
        sql += " ORDER BY s.id"
        for row in self.db.execute(sql, params):
            yield self._subscriber(row)

    def subscriber(self, email: str) -> Subscriber | None:
        row = self.db.execute(
            "SELECT * FROM subscribers WHERE email_key = ?", (email.strip().lower(),)
        ).fetchone()
        return self._subscriber(row) if row else None

    def _subscriber(self, row: sqlite3.Row) -> Subscriber:
        return Subscriber(
            id=row["id"],
            email=row["email"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            tags=tuple(sorted(self._tags(row["id"]))),
            status=SubscriberStatus(row["status"]),
            subscribed_at=row["subscribed_at"],
            consent_source=row["consent_source"],
            attributes=json.loads(row["attributes"]),
        )

    def audience_sample(self, audience: Audience, n: int) -> list[str]:
        where, params = _audience_sql(audience)
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT s.email FROM subscribers s WHERE {where} ORDER BY s.id LIMIT ?",
                (*params, n),
            )
        ]

    def audience_recipients(self, audience: Audience, chunk: int = 1000) -> Iterator[Recipient]:
        """The campaign's audience as recipients (with tags), streamed in id order."""
        where, params = _audience_sql(audience)
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT s.id, s.email, s.first_name, s.last_name, s.attributes "
                f"FROM subscribers s WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?",
                (*params, last, chunk),
            ).fetchall()
            if not rows:
                return
            tags = self._tags_of([r["id"] for r in rows])
            for r in rows:
                yield Recipient(
                    r["id"],
                    r["email"],
                    r["first_name"],
                    r["last_name"],
                    json.loads(r["attributes"]),
                    tuple(sorted(tags.get(r["id"], ()))),
                )
            last = rows[-1]["id"]

    def count_audience(self, audience: Audience) -> int:
        where, params = _audience_sql(audience)
        return self.db.execute(
            f"SELECT count(*) FROM subscribers s WHERE {where}", params
        ).fetchone()[0]

    # -- campaigns ----------------------------------------------------------
    def campaign(self, slug: str) -> CampaignRow | None:
        row = self.db.execute("SELECT * FROM campaigns WHERE slug = ?", (slug,)).fetchone()
        return CampaignRow(**dict(row)) if row else None

    def campaigns(self) -> list[CampaignRow]:
        return [
            CampaignRow(**dict(r)) for r in self.db.execute("SELECT * FROM campaigns ORDER BY id")
        ]

    def ensure_campaign(self, slug: str, subject: str) -> CampaignRow:
        with self.transaction():
            self.db.execute(
                "INSERT INTO campaigns (slug, subject, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (slug, subject, now_iso()),
            )
        row = self.campaign(slug)
        assert row is not None
        return row

    def save_campaign_page(self, campaign_id: int, subject: str, preheader: str, html: str) -> bool:
        """Keep a campaign's web version; the first one stays (True when this one was kept)."""
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO campaign_pages (campaign_id, subject, preheader, html, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (campaign_id, subject, preheader, html, now_iso()),
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

    def enqueue(self, campaign: CampaignRow, audience: Audience, transport: str) -> int:
        """Freeze the audience: one pending delivery per recipient, made once per campaign."""
        where, params = _audience_sql(audience)
        now = now_iso()
        with self.transaction():
            status = self.db.execute(
                f"SELECT status FROM campaigns WHERE id = ?{self.for_update}", (campaign.id,)
            ).fetchone()[0]
            if status != "draft":
                return 0
            cur = self.db.execute(
                "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, updated_at) "
                f"SELECT ?, s.id, s.email, 'pending', ? FROM subscribers s WHERE {where} "
                "ORDER BY s.id",
                (campaign.id, now, *params),
            )
            self.db.execute(
                "UPDATE campaigns SET status = 'sending', transport = ?, started_at = ? "
                "WHERE id = ?",
                (transport, now, campaign.id),
            )
            return cur.rowcount

    def requeue(self, campaign_id: int, statuses: Iterable[DeliveryStatus]) -> int:
        """Put settled deliveries with these statuses back in the queue (--retry-*)."""
        wanted = [str(s) for s in statuses]
        if not wanted:
            return 0
        marks = ", ".join("?" * len(wanted))
        with self.transaction():
            cur = self.db.execute(
                f"UPDATE deliveries SET status = 'pending', updated_at = ? "
                f"WHERE campaign_id = ? AND status IN ({marks})",
                (now_iso(), campaign_id, *wanted),
            )
            if cur.rowcount:
                self.db.execute(
                    "UPDATE campaigns SET status = 'sending', finished_at = NULL WHERE id = ?",
                    (campaign_id,),
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
        host = socket.gethostname()
        now = dt.datetime.now(dt.UTC)
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
            lease = self.db.execute(
                "SELECT * FROM locks WHERE name = ?", (f"{lease_prefix}{holder}",)
            ).fetchone()
            if (
                lease is None
                or dt.datetime.fromisoformat(lease["expires_at"]) < now
                or (lease["host"] == host and not _pid_alive(lease["pid"]))
            ):
                stale.append(holder)
        new_status = "pending" if resend_safe else "unknown"
        error = (
            None
            if resend_safe
            else ("the sending process stopped before the provider's answer was recorded")
        )
        changed = 0
        with self.transaction():
            for holder in stale:
                match = "claimed_by = ?" if holder is not None else "claimed_by IS NULL"
                changed += self.db.execute(
                    "UPDATE deliveries SET status = ?, error = ?, claimed_by = NULL, "
                    f"updated_at = ? WHERE campaign_id = ? AND status = 'sending' AND {match}",
                    (
                        new_status,
                        error,
                        now_iso(),
                        campaign_id,
                        *((holder,) if holder is not None else ()),
                    ),
                ).rowcount
                self.db.execute("DELETE FROM locks WHERE name = ?", (f"{lease_prefix}{holder}",))
        return changed

    def pending_count(self, campaign_id: int) -> int:
        return self.db.execute(
            "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'pending'",
            (campaign_id,),
        ).fetchone()[0]

    def claim(self, campaign_id: int, holder: str, limit: int) -> list[Recipient]:
        """Take up to ``limit`` pending deliveries for this process, lowest id first.

        Recipients who left the audience since it was frozen (unsubscribed,
        bounced) are settled as ``skipped`` instead of claimed.
        """
        now = now_iso()
        with self.transaction():
            rows = self.db.execute(
                "SELECT d.subscriber_id, s.email, s.first_name, s.last_name, s.status, "
                "s.attributes FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.campaign_id = ? AND d.status = 'pending' ORDER BY d.subscriber_id LIMIT ?"
                + self.skip_locked,
                (campaign_id, limit),
            ).fetchall()
            skipped = [
                (now, f"subscriber is {r['status']}", campaign_id, r["subscriber_id"])
                for r in rows
                if r["status"] != "active"
            ]
            if skipped:
                self.db.executemany(
                    "UPDATE deliveries SET status = 'skipped', updated_at = ?, error = ? "
                    "WHERE campaign_id = ? AND subscriber_id = ?",
                    skipped,
                )
            claimed = [r for r in rows if r["status"] == "active"]
            self.db.executemany(
                "UPDATE deliveries SET status = 'sending', claimed_by = ?, claimed_at = ?, "
                "attempts = attempts + 1, updated_at = ? "
                "WHERE campaign_id = ? AND subscriber_id = ?",
                [(holder, now, now, campaign_id, r["subscriber_id"]) for r in claimed],
            )
        tags = self._tags_of([r["subscriber_id"] for r in claimed])
        return [
            Recipient(
                subscriber_id=r["subscriber_id"],
                email=r["email"],
                first_name=r["first_name"],
                last_name=r["last_name"],
                attributes=json.loads(r["attributes"]),
                tags=tuple(sorted(tags.get(r["subscriber_id"], ()))),
            )
            for r in claimed
        ]

    def _tags_of(self, subscriber_ids: list[int]) -> dict[int, list[str]]:
        """The tags of many subscribers in one query."""
        found: dict[int, list[str]] = {}
        if not subscriber_ids:
            return found
        marks = ", ".join("?" * len(subscriber_ids))
        for row in self.db.execute(
            f"SELECT subscriber_id, tag FROM subscriber_tags WHERE subscriber_id IN ({marks})",
            subscriber_ids,
        ):
            found.setdefault(row[0], []).append(row[1])
        return found

    def has_attribute(self, name: str) -> bool:
        """Whether any subscriber has the attribute ``name`` (an extra column of an import)."""
        pattern = "%" + json.dumps(name, ensure_ascii=False)[:-1].replace("%", "_") + '":%'
        return (
            self.db.execute(
                "SELECT 1 FROM subscribers WHERE attributes LIKE ? LIMIT 1", (pattern,)
            ).fetchone()
            is not None
        )

    def attribute_names(self) -> list[str]:
        """Every attribute some subscriber has, sorted."""
        names: set[str] = set()
        for row in self.db.execute(
            "SELECT DISTINCT attributes FROM subscribers WHERE attributes != '{}'"
        ):
            names.update(json.loads(row[0]))
        return sorted(names)

    def settle(self, campaign_id: int, results: Iterable[SendResult]) -> None:
        """Record each recipient's outcome; suppress addresses the provider says are dead."""
        now = now_iso()
        rows = []
        suppress = []
        for r in results:
            raw = None if r.raw is None else json.dumps(r.raw, ensure_ascii=False, default=str)
            sent_at = now if r.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED) else None
            rows.append(
                (
                    str(r.status),
                    r.message_id,
                    r.error,
                    raw,
                    sent_at,
                    now,
                    campaign_id,
                    r.subscriber_id,
                )
            )
            if r.suppress:
                suppress.append((now, r.subscriber_id))
        with self.transaction():
            self.db.executemany(
                "UPDATE deliveries SET status = ?, provider_message_id = ?, error = ?, "
                "response = ?, sent_at = ?, updated_at = ?, claimed_by = NULL "
                "WHERE campaign_id = ? AND subscriber_id = ?",
                rows,
            )
            self.db.executemany(
                "UPDATE subscribers SET status = 'bounced', updated_at = ? "
                "WHERE id = ? AND status = 'active'",
                suppress,
            )

    def release(self, campaign_id: int, subscriber_ids: Iterable[int]) -> None:
        """Give claimed deliveries back to the queue: their request was never made."""
        now = now_iso()
        with self.transaction():
            self.db.executemany(
                "UPDATE deliveries SET status = 'pending', claimed_by = NULL, updated_at = ? "
                "WHERE campaign_id = ? AND subscriber_id = ? AND status = 'sending'",
                [(now, campaign_id, sid) for sid in subscriber_ids],
            )

    def set_campaign_status(self, campaign_id: int, status: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE campaigns SET status = ? WHERE id = ?", (status, campaign_id))

    def finish_if_done(self, campaign_id: int) -> bool:
        """Mark the campaign sent once nothing is pending or in flight."""
        with self.transaction():
            left = self.db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? "
                "AND status IN ('pending', 'sending')",
                (campaign_id,),
            ).fetchone()[0]
            if left:
                return False
            self.db.execute(
                "UPDATE campaigns SET status = 'sent', finished_at = ? WHERE id = ?",
                (now_iso(), campaign_id),
            )
        return True

    def delivery_counts(self, campaign_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status",
                (campaign_id,),
            )
        }

    def deliveries(self, campaign_id: int) -> Iterator[sqlite3.Row]:
        yield from self.db.execute(
            "SELECT d.email, d.status, d.provider_message_id, d.error, d.sent_at, d.attempts, "
            "d.subscriber_id FROM deliveries d WHERE d.campaign_id = ? ORDER BY d.subscriber_id",
            (campaign_id,),
        )

    # -- a subscriber's own record ----------------------------------------------
    def set_status(
        self,
        subscriber_id: int,
        status: SubscriberStatus,
        reason: str,
        only_if_active: bool = False,
    ) -> bool:
        """Change a subscriber's status (recording why); True when it changed."""
        sql = (
            "UPDATE subscribers SET status = ?, status_reason = ?, status_changed_at = ?, "
            "updated_at = ? WHERE id = ? AND status != ?"
        )
        if only_if_active:
            sql += " AND status = 'active'"
        now = now_iso()
        with self.transaction():
            cur = self.db.execute(sql, (str(status), reason, now, now, subscriber_id, str(status)))
        return cur.rowcount > 0

    def subscriber_id(self, email: str) -> int | None:
        row = self.db.execute(
            "SELECT id FROM subscribers WHERE email_key = ?", (email.strip().lower(),)
        ).fetchone()
        return row[0] if row else None

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

    def forget(self, email: str) -> bool:
        """Erase a person: personal data blanked everywhere, a one-way hash kept so
        the address can never be imported again. Aggregate counts survive."""
        key = email.strip().lower()
        now = now_iso()
        with self.transaction():
            self.db.execute(
                "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (email_hash(key), now),
            )
            row = self.db.execute(
                "SELECT id FROM subscribers WHERE email_key = ?", (key,)
            ).fetchone()
            if row is None:
                return False
            sid = row[0]
            placeholder = f"forgotten-{sid}@invalid"
            self.db.execute(
                "UPDATE subscribers SET email = ?, email_key = ?, first_name = '', "
                "last_name = '', attributes = '{}', subscribed_at = NULL, "
                "consent_source = NULL, status = 'unsubscribed', status_reason = 'forgotten', "
                "status_changed_at = ?, updated_at = ? WHERE id = ?",
                (placeholder, placeholder, now, now, sid),
            )
            self.db.execute("DELETE FROM subscriber_tags WHERE subscriber_id = ?", (sid,))
            self.db.execute(
                "UPDATE deliveries SET email = ?, response = NULL, error = NULL "
                "WHERE subscriber_id = ?",
                (placeholder, sid),
            )
            self.db.execute(
                "UPDATE events SET email = NULL, raw = '{}', detail = NULL "
                "WHERE subscriber_id = ? OR email = ?",
                (sid, key),
            )
        return True

    # -- events -------------------------------------------------------------
    def seen_nonce(self, provider: str, nonce: str, keep_seconds: int = 86400) -> bool:
        """True when this webhook nonce was seen before (a replay); records it otherwise."""
        now = dt.datetime.now(dt.UTC)
        with self.transaction():
            self.db.execute(
                "DELETE FROM webhook_nonces WHERE seen_at < ?",
                ((now - dt.timedelta(seconds=keep_seconds)).isoformat(),),
            )
            cur = self.db.execute(
                "INSERT INTO webhook_nonces (provider, nonce, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (provider, nonce, now.isoformat()),
            )
        return cur.rowcount == 0

    def campaign_for_message(
        self, provider_message_id: str, email: str | None
    ) -> tuple[int, int | None] | None:
        """(campaign, subscriber) of a provider message id; providers that give one id to a
        whole batch (SendGrid, Mailgun) need the address to tell the subscriber."""
        rows = self.db.execute(
            "SELECT campaign_id, subscriber_id, email FROM deliveries "
            "WHERE provider_message_id = ? LIMIT 1001",
            (provider_message_id,),
        ).fetchall()
        if not rows:
            return None
        if len(rows) == 1:
            return rows[0][0], rows[0][1]
        key = (email or "").lower()
        match = next((r for r in rows if r[2].lower() == key), None)
        return rows[0][0], match[1] if match else None

    def record_event(self, event: Event, soft_bounce_limit: int = 3) -> str:
        """Store an event (once) and apply it to the subscriber; what was done, in words."""
        campaign_id = subscriber_id = None
        if event.provider_message_id:
            found = self.campaign_for_message(event.provider_message_id, event.email)
            if found:
                campaign_id, subscriber_id = found
        if campaign_id is None and event.campaign:
            row = self.campaign(event.campaign)
            campaign_id = row.id if row else None
        if subscriber_id is None and event.subscriber_id is not None:
            exists = self.db.execute(
                "SELECT id FROM subscribers WHERE id = ?", (event.subscriber_id,)
            ).fetchone()
            subscriber_id = exists[0] if exists else None
        if subscriber_id is None and event.email:
            subscriber_id = self.subscriber_id(event.email)
        raw = json.dumps(event.raw, ensure_ascii=False, default=str)
        if (
            event.email
            and self.db.execute(
                "SELECT 1 FROM forgotten WHERE email_hash = ?", (email_hash(event.email),)
            ).fetchone()
        ):
            # a late event about an erased person: counted, but nothing that identifies them
            event.email, event.detail, raw, subscriber_id = None, None, "{}", None
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO events (provider, kind, email, subscriber_id, campaign_id, "
                "provider_message_id, provider_event_id, occurred_at, detail, raw, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    event.provider,
                    str(event.kind),
                    event.email,
                    subscriber_id,
                    campaign_id,
                    event.provider_message_id,
                    event.provider_event_id,
                    event.occurred_at,
                    event.detail,
                    raw,
                    now_iso(),
                ),
            )
        if cur.rowcount == 0:
            return "already recorded"
        if subscriber_id is None:
            return "recorded (no matching subscriber)"
        reason = f"{event.provider} {event.kind}" + (f": {event.detail}" if event.detail else "")
        if event.kind in (EventKind.BOUNCED, EventKind.DROPPED):
            changed = self.set_status(subscriber_id, SubscriberStatus.BOUNCED, reason, True)
            return "suppressed (bounced)" if changed else "recorded"
        if event.kind == EventKind.COMPLAINED:
            changed = self.set_status(subscriber_id, SubscriberStatus.COMPLAINED, reason)
            return "suppressed (complained)" if changed else "recorded"
        if event.kind == EventKind.UNSUBSCRIBED:
            changed = self.set_status(subscriber_id, SubscriberStatus.UNSUBSCRIBED, reason)
            return "unsubscribed" if changed else "recorded"
        if event.kind == EventKind.SOFT_BOUNCED:
            with self.transaction():
                self.db.execute(
                    "UPDATE subscribers SET soft_bounces = soft_bounces + 1 WHERE id = ?",
                    (subscriber_id,),
                )
            count = self.db.execute(
                "SELECT soft_bounces FROM subscribers WHERE id = ?", (subscriber_id,)
            ).fetchone()[0]
            if count >= soft_bounce_limit and self.set_status(
                subscriber_id,
                SubscriberStatus.BOUNCED,
                f"{count} soft bounces (limit {soft_bounce_limit})",
                True,
            ):
                return f"suppressed after {count} soft bounces"
            return f"soft bounce {count} of {soft_bounce_limit}"
        return "recorded"

    def event_counts(self, campaign_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT kind, count(DISTINCT coalesce(CAST(subscriber_id AS TEXT), email)) "
                "FROM events "
                "WHERE campaign_id = ? GROUP BY kind",
                (campaign_id,),
            )
        }

    # -- digests --------------------------------------------------------------
    def featured_before(self, period: str) -> set[str]:
        """Articles featured in digests of other periods."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT article FROM digest_articles WHERE period != ?", (period,)
            )
        }

    def record_digest(self, period: str, articles: list[str]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT INTO digest_articles (period, article) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(period, a) for a in articles],
            )

    # -- locks --------------------------------------------------------------
    def acquire_lock(self, name: str, holder: str, ttl_seconds: int = 600) -> None:
        """Hold ``name`` exclusively; a lock whose holder died or expired is taken over."""
        host = socket.gethostname()
        now = dt.datetime.now(dt.UTC)
        values = (
            name,
            holder,
            host,
            os.getpid(),
            now.isoformat(),
            (now + dt.timedelta(seconds=ttl_seconds)).isoformat(),
        )
        with self.transaction():
            taken = self.db.execute(
                "INSERT INTO locks (name, holder, host, pid, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                values,
            ).rowcount
            if taken:
                return
            row = self.db.execute(
                f"SELECT * FROM locks WHERE name = ?{self.for_update}", (name,)
            ).fetchone()
            if row["holder"] != holder:
                expired = dt.datetime.fromisoformat(row["expires_at"]) < now
                dead = row["host"] == host and not _pid_alive(row["pid"])
                if not (expired or dead):
                    raise SendConflict(
                        f"Another process (pid {row['pid']} on {row['host']}, since "
                        f"{row['acquired_at']}) is working on this: {name}.",
                        "Wait for it to finish, then run the command again; nothing it has "
                        "sent will be sent twice.",
                    )
            self.db.execute(
                "UPDATE locks SET holder = ?, host = ?, pid = ?, acquired_at = ?, expires_at = ? "
                "WHERE name = ?",
                (*values[1:], name),
            )

    def refresh_lock(self, name: str, holder: str, ttl_seconds: int = 600) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_seconds)
        with self.transaction():
            self.db.execute(
                "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?",
                (expires.isoformat(), name, holder),
            )

    def release_lock(self, name: str, holder: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _audience_sql(audience: Audience) -> tuple[str, list[Any]]:
    where = ["s.status = 'active'"]
    params: list[Any] = []
    exists = "EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.subscriber_id = s.id AND t.tag {})"
    if audience.tags_any:
        where.append(exists.format(f"IN ({', '.join('?' * len(audience.tags_any))})"))
        params.extend(audience.tags_any)
    for tag in audience.tags_all:
        where.append(exists.format("= ?"))
        params.append(tag)
    if audience.exclude_tags:
        where.append("NOT " + exists.format(f"IN ({', '.join('?' * len(audience.exclude_tags))})"))
        params.extend(audience.exclude_tags)
    return " AND ".join(where), params


class _Transaction:
    """``with store.transaction():`` BEGIN ... COMMIT, or ROLLBACK on error."""

    def __init__(self, db: Any, begin: str) -> None:
        self.db = db
        self.begin = begin

    def __enter__(self) -> Any:
        self.db.execute(self.begin)
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
