"""SQLite storage: one file, WAL mode, every multi-row change in one transaction."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..addresses import address_forms, canonical_address
from ..errors import ConfigError, SendConflict
from ..files import create_private
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
from .erasure import (
    ERASABLE,
    KEYED,
    LEGACY,
    NOT_PERSONAL,
    Trace,
    addresses_in,
    email_hash,
    key_id,
    legacy_email_hash,
)
from .migrations import MIGRATIONS

__all__ = ["ERASABLE", "NOT_PERSONAL", "CampaignRow", "Erasure", "ImportSummary", "SQLiteStore"]

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


@dataclass
class Erasure:
    """What ``forget`` found: whether the person was on the list, their rows' ids and
    addresses (for the files made for them), and their ``Trace``."""

    known: bool
    subscriber_ids: list[int]
    addresses: list[str]
    trace: Trace


class _Blocklist:
    """The ``forgotten`` table as a check of addresses being imported."""

    def __init__(self, rows: list[Any], secrets: list[str]) -> None:
        usable = {key_id(s): s for s in secrets}
        self.keyed = {r[0] for r in rows if r[1] == KEYED and r[2] in usable}
        self.legacy = {r[0] for r in rows if r[1] == LEGACY}
        self.secrets = [s for k, s in usable.items() if any(r[2] == k for r in rows)]
        self.unreadable = sum(1 for r in rows if r[1] == KEYED and r[2] not in usable)

    def __bool__(self) -> bool:
        return bool(self.keyed or self.legacy)

    def match(self, address: str) -> tuple[bool, str | None]:
        """(blocked, the unkeyed hash that blocked it, to be replaced)."""
        if any(email_hash(address, s) in self.keyed for s in self.secrets):
            return True, None
        if self.legacy:
            for form in address_forms(address):
                if legacy_email_hash(form) in self.legacy:
                    return True, legacy_email_hash(form)
        return False, None


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
    like = "LIKE"  # folds ASCII case in SQLite; PostgreSQL needs ILIKE for that

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            create_private(Path(path))  # readers' data: the owner's alone (-wal/-shm follow)
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

    def _lock(self, tables: tuple[str, ...], mode: str) -> None:
        """Take table locks at the start of a transaction (PostgreSQL). SQLite needs
        none: BEGIN IMMEDIATE already lets one writer in at a time."""

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

    def _secrets(self) -> list[str]:
        """Every secret an erased address may have been hashed with: $NEWSLETTER_SECRET
        and the one kept in the database (a project that moved to the first)."""
        found = [os.environ.get("NEWSLETTER_SECRET", "").strip(), self.setting("link_secret")]
        return list(dict.fromkeys(s for s in found if s))

    # -- subscribers --------------------------------------------------------
    IMPORT_CHUNK = 5000

    def import_subscribers(self, subscribers: Iterable[Subscriber]) -> ImportSummary:
        """Insert or update, in one transaction, a chunk of rows at a time (bulk inserts;
        COPY on PostgreSQL); sticky statuses are never undone."""
        summary = ImportSummary()
        secret = self.link_secret()
        chunk: dict[str, Subscriber] = {}
        with self.transaction():
            self._lock(("subscribers",), "ROW EXCLUSIVE")  # a forget under way finishes first
            blocked = _Blocklist(
                self.db.execute("SELECT email_hash, scheme, key_id FROM forgotten").fetchall(),
                self._secrets(),
            )
            if blocked.unreadable:
                raise ConfigError(
                    f"{blocked.unreadable} erased address(es) were recorded with another "
                    "secret, so this import cannot tell whether it brings them back; nothing "
                    "was imported.",
                    "Set NEWSLETTER_SECRET to the value it had when they were erased (or unset "
                    "it, if it was not set then) and import again.",
                )
            for sub in subscribers:
                key = sub.email.lower()
                if blocked:
                    found, legacy = blocked.match(sub.email)
                    if found:
                        summary.forgotten.append(sub.email)
                        if legacy:
                            self._record_forgotten(sub.email, secret)
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
        sql = "SELECT s.* FROM subscribers s WHERE s.erased_at IS NULL"
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
        row = self._subscriber_row(email)
        return self._subscriber(row) if row else None

    def _subscriber_row(self, email: str) -> Any:
        """The subscriber with this address, in any of its spellings (never an erased row)."""
        forms = sorted(address_forms(email))
        if not forms:
            return None
        return self.db.execute(
            f"SELECT * FROM subscribers WHERE email_key IN ({', '.join('?' * len(forms))}) "
            "AND erased_at IS NULL ORDER BY id LIMIT 1",
            forms,
        ).fetchone()

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

    def claim(
        self, campaign_id: int, holder: str, limit: int, transport: str | None = None
    ) -> list[Recipient]:
        """Take up to ``limit`` pending deliveries for this process, lowest id first, for
        ``transport`` (recorded on each delivery).

        Recipients who left the audience since it was frozen (unsubscribed,
        bounced) are settled as ``skipped`` instead of claimed.
        """
        now = now_iso()
        with self.transaction():
            rows = self.db.execute(
                "SELECT d.subscriber_id, s.email, s.first_name, s.last_name, s.status, "
                "s.erased_at, s.attributes FROM deliveries d "
                "JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.campaign_id = ? AND d.status = 'pending' ORDER BY d.subscriber_id LIMIT ?"
                + self.skip_locked,
                (campaign_id, limit),
            ).fetchall()
            skipped = [
                (now, _gone(r["status"], r["erased_at"]), campaign_id, r["subscriber_id"])
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
                "attempts = attempts + 1, updated_at = ?, transport = coalesce(?, transport) "
                "WHERE campaign_id = ? AND subscriber_id = ?",
                [(holder, now, now, transport, campaign_id, r["subscriber_id"]) for r in claimed],
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

    def tags(self) -> list[str]:
        """Every tag some subscriber has."""
        return [
            r[0] for r in self.db.execute("SELECT DISTINCT tag FROM subscriber_tags ORDER BY 1")
        ]

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
        """Record each recipient's outcome; suppress addresses the provider says are dead.

        Someone erased while their message was out keeps no answer: their row records
        the outcome only, and the batch's other answers lose their address.
        """
        now = now_iso()
        results = list(results)
        rows = []
        suppress = []
        with self.transaction():
            self._lock(("subscribers", "deliveries"), "ROW EXCLUSIVE")  # after a forget
            erased = self._erased_among([r.subscriber_id for r in results])
            trace = self._trace_of_erased([(r.raw, r.error) for r in results]) if erased else None
            for r in results:
                raw = None if r.raw is None else json.dumps(r.raw, ensure_ascii=False, default=str)
                error = r.error
                if r.subscriber_id in erased:
                    raw, error = None, error if r.status == DeliveryStatus.SKIPPED else None
                elif trace is not None:
                    raw, error = trace.scrub_stored(raw, "json"), trace.scrub_stored(error, "text")
                sent_at = now if r.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED) else None
                rows.append(
                    (
                        str(r.status),
                        r.message_id,
                        error,
                        raw,
                        sent_at,
                        now,
                        campaign_id,
                        r.subscriber_id,
                    )
                )
                if r.suppress:
                    suppress.append((now, r.subscriber_id))
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

    def inactive(self, subscriber_ids: list[int]) -> dict[int, str]:
        """Of these subscribers, those no longer active (erased, unsubscribed, bounced,
        removed), with why: asked once per batch, just before it is sent."""
        if not subscriber_ids:
            return {}
        current = {
            r["id"]: r
            for r in self.db.execute(
                "SELECT id, status, erased_at FROM subscribers WHERE id IN "
                f"({', '.join('?' * len(subscriber_ids))})",
                subscriber_ids,
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
            "d.subscriber_id, d.transport FROM deliveries d WHERE d.campaign_id = ? "
            "ORDER BY d.subscriber_id",
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
            "updated_at = ? WHERE id = ? AND status != ? AND erased_at IS NULL"
        )
        if only_if_active:
            sql += " AND status = 'active'"
        now = now_iso()
        with self.transaction():
            cur = self.db.execute(sql, (str(status), reason, now, now, subscriber_id, str(status)))
        return cur.rowcount > 0

    def subscriber_id(self, email: str) -> int | None:
        row = self._subscriber_row(email)
        return row["id"] if row else None

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

    def forget(self, email: str) -> Erasure:
        """Erase a person: their own rows blanked, every other row that mentions their
        address rewritten without it (and without their names), and only a keyed hash
        kept so the address can never be imported again. Aggregate counts survive.

        Call ``purge_erased`` afterwards: old copies of the rows may still be on disk.
        """
        secret = self.link_secret()
        forms = sorted(address_forms(email))
        now = now_iso()
        with self.transaction():
            # nothing may record them (an import, an event, an answer) while this runs
            self._lock(("subscribers", "deliveries", "events"), "SHARE ROW EXCLUSIVE")
            people = (
                self.db.execute(
                    "SELECT id, email, first_name, last_name FROM subscribers WHERE email_key "
                    f"IN ({', '.join('?' * len(forms))}) AND erased_at IS NULL ORDER BY id",
                    forms,
                ).fetchall()
                if forms
                else []
            )
            names = [n for p in people for n in (p["first_name"], p["last_name"])]
            names += [f"{p['first_name']} {p['last_name']}" for p in people]
            trace = Trace([email, *(p["email"] for p in people)], names)
            self._record_forgotten(email, secret)
            ids = [p["id"] for p in people]
            for sid in ids:
                placeholder = f"forgotten-{sid}@invalid"
                self.db.execute(
                    "UPDATE subscribers SET email = ?, email_key = ?, first_name = '', "
                    "last_name = '', attributes = '{}', subscribed_at = NULL, "
                    "consent_source = NULL, soft_bounces = 0, status = 'unsubscribed', "
                    "status_reason = 'forgotten', status_changed_at = ?, updated_at = ?, "
                    "erased_at = ? WHERE id = ?",
                    (placeholder, placeholder, now, now, now, sid),
                )
                self.db.execute("DELETE FROM subscriber_tags WHERE subscriber_id = ?", (sid,))
                self.db.execute(
                    "UPDATE deliveries SET email = ?, response = NULL, error = NULL "
                    "WHERE subscriber_id = ?",
                    (placeholder, sid),
                )
                self.db.execute(
                    "UPDATE deliveries SET status = 'skipped', error = 'subscriber was erased', "
                    "updated_at = ? WHERE subscriber_id = ? AND status = 'pending'",
                    (now, sid),
                )
                self.db.execute(
                    "UPDATE events SET email = NULL, raw = '{}', detail = NULL "
                    "WHERE subscriber_id = ?",
                    (sid,),
                )
            self._erase_events_addressed_to(trace, ids[0] if ids else None)
            self._erase_mentions(trace)
        return Erasure(bool(people), ids, [p["email"] for p in people], trace)

    def purge_erased(self) -> bool:
        """Leave no old copy of erased rows on disk: SQLite's log is checkpointed and
        truncated (every page it held is written to the database, where secure_delete
        has zeroed the old contents). False when a connection kept reading an older
        snapshot past the busy timeout, so the log could not be emptied."""
        busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return not busy

    def _record_forgotten(self, address: str, secret: str) -> None:
        """Keep the keyed hash of ``address``; an unkeyed one of it goes."""
        self.db.execute(
            "INSERT INTO forgotten (email_hash, forgotten_at, scheme, key_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (email_hash(address, secret), now_iso(), KEYED, key_id(secret)),
        )
        for form in address_forms(address):
            self.db.execute(
                "DELETE FROM forgotten WHERE scheme = ? AND email_hash = ?",
                (LEGACY, legacy_email_hash(form)),
            )

    def _mentioning(self, table: str, columns: list[str], trace: Trace) -> list[Any]:
        """Rows of ``table`` where one of ``columns`` may mention the person (a superset)."""
        patterns = trace.like_patterns()
        if not patterns:
            return []
        spec = ERASABLE[table]
        where = " OR ".join(f"{c} {self.like} ? ESCAPE '\\'" for c in columns for _ in patterns)
        return self.db.execute(
            f"SELECT {', '.join((*spec.key, *columns))} FROM {table} WHERE {where}",
            [p for _ in columns for p in patterns],
        ).fetchall()

    def _erase_events_addressed_to(self, trace: Trace, subscriber_id: int | None) -> None:
        """Events about the address that no subscriber row claimed (recorded before an
        import, or under another spelling) are theirs too: kept as a count only."""
        for row in self._mentioning("events", ["email"], trace):
            if trace.is_address(row["email"]):
                self.db.execute(
                    "UPDATE events SET email = NULL, raw = '{}', detail = NULL, "
                    "subscriber_id = coalesce(subscriber_id, ?) WHERE id = ?",
                    (subscriber_id, row["id"]),
                )

    def _erase_mentions(self, trace: Trace) -> None:
        """Other rows that mention the person (a batch's answer, another reader's event)
        keep their own data; the address and names in them become a placeholder."""
        for table, spec in ERASABLE.items():
            columns = spec.scanned()
            for row in self._mentioning(table, columns, trace):
                changed = {
                    c: new
                    for c in columns
                    if (new := trace.scrub_stored(row[c], spec.columns[c])) is not row[c]
                }
                if changed:
                    self.db.execute(
                        f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in changed)} "
                        f"WHERE {' AND '.join(f'{k} = ?' for k in spec.key)}",
                        (*changed.values(), *(row[k] for k in spec.key)),
                    )

    def _erased_among(self, subscriber_ids: list[int]) -> set[int]:
        if not subscriber_ids:
            return set()
        return {
            r[0]
            for r in self.db.execute(
                f"SELECT id FROM subscribers WHERE id IN ({', '.join('?' * len(subscriber_ids))}) "
                "AND erased_at IS NOT NULL",
                subscriber_ids,
            )
        }

    def _forgotten_among(self, addresses: Iterable[str]) -> set[str]:
        """Which of these addresses were erased (by their keyed or unkeyed hash)."""
        hashes: dict[str, str] = {}
        secrets_known = self._secrets()
        for address in {a for a in addresses if a and "@" in a}:
            for secret in secrets_known:
                hashes[email_hash(address, secret)] = address
            for form in address_forms(address):
                hashes[legacy_email_hash(form)] = address
        found: set[str] = set()
        keys = list(hashes)
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            found.update(
                hashes[r[0]]
                for r in self.db.execute(
                    f"SELECT email_hash FROM forgotten WHERE email_hash IN "
                    f"({', '.join('?' * len(part))})",
                    part,
                )
            )
        return found

    def _trace_of_erased(self, values: Iterable[Any]) -> Trace | None:
        """The erased addresses these payloads mention, as one Trace (None: none)."""
        erased = self._forgotten_among(addresses_in(list(values)))
        return Trace(erased) if erased else None

    # -- events -------------------------------------------------------------
    NONCE_DAYS = 30  # past every provider's retries; Postmark's requests have no timestamp
    _nonces_purged_at: dt.datetime | None = None

    def claim_nonces(self, provider: str, nonces: Iterable[str]) -> set[str]:
        """Record webhook replay keys at once; those recorded before (replays) are returned."""
        now = dt.datetime.now(dt.UTC)
        seen = set()
        with self.transaction():
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
            with self.transaction():
                self.db.executemany(
                    "DELETE FROM webhook_nonces WHERE provider = ? AND nonce = ?", rows
                )

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
        key = canonical_address(email or "")
        match = next((r for r in rows if canonical_address(r[2]) == key), None)
        return rows[0][0], match[1] if match else None

    def record_event(self, event: Event, soft_bounce_limit: int = 3) -> str:
        """Store an event (once) and apply it to the subscriber; what was done, in words.

        An event about an erased person is kept as a count only (no address, detail or
        payload) and changes nothing; erased addresses another event's payload lists
        are replaced there.
        """
        with self.transaction():
            self._lock(("events",), "ROW EXCLUSIVE")  # a forget under way finishes first
            campaign_id, subscriber_id = self._event_target(event)
            erased = self._about_erased(subscriber_id, event.email)
            email, detail, raw = event.email, event.detail, event.raw
            if erased:
                email, detail, raw = None, None, {}
            elif mentioned := self._forgotten_among(addresses_in([raw, detail])):
                trace = Trace(mentioned)
                raw, detail = trace.scrub_json(raw), trace.scrub_json(detail)
            cur = self.db.execute(
                "INSERT INTO events (provider, kind, email, subscriber_id, campaign_id, "
                "provider_message_id, provider_event_id, occurred_at, detail, raw, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    event.provider,
                    str(event.kind),
                    email,
                    subscriber_id,
                    campaign_id,
                    event.provider_message_id,
                    event.provider_event_id,
                    event.occurred_at,
                    detail,
                    json.dumps(raw, ensure_ascii=False, default=str),
                    now_iso(),
                ),
            )
        if cur.rowcount == 0:
            return "already recorded"
        if erased:
            return "recorded (about an erased person: kept as a count only)"
        if subscriber_id is None:
            return "recorded (no matching subscriber)"
        reason = f"{event.provider} {event.kind}" + (f": {detail}" if detail else "")
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
                    "UPDATE subscribers SET soft_bounces = soft_bounces + 1 "
                    "WHERE id = ? AND erased_at IS NULL",
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

    def _about_erased(self, subscriber_id: int | None, email: str | None) -> bool:
        if subscriber_id is not None and self._erased_among([subscriber_id]):
            return True
        return bool(email) and bool(self._forgotten_among([email or ""]))

    def _event_target(self, event: Event) -> tuple[int | None, int | None]:
        """(campaign, subscriber) an event is about: by the provider's message id, else
        by the ids our own headers carried, else by the address."""
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
        return campaign_id, subscriber_id

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
        """Articles featured in digests of other periods, or in any campaign sent for real
        (not only rehearsed to the outbox) other than this period's digest."""
        found = {
            r[0]
            for r in self.db.execute(
                "SELECT article FROM digest_articles WHERE period != ?", (period,)
            )
        }
        found.update(
            r[0]
            for r in self.db.execute(
                "SELECT a.article FROM campaign_articles a JOIN campaigns c "
                "ON c.id = a.campaign_id WHERE c.status != 'draft' "
                "AND coalesce(c.transport, 'outbox') != 'outbox' AND c.slug != ?",
                (f"digest-{period}",),
            )
        )
        return found

    def record_campaign_articles(self, campaign_id: int, articles: Iterable[str]) -> None:
        """The articles a campaign features (once per campaign and article)."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO campaign_articles (campaign_id, article) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(campaign_id, a) for a in articles],
            )

    # -- rehearsals ---------------------------------------------------------
    def only_rehearsed(self, campaign: CampaignRow, transport: str) -> bool:
        """Whether sending ``campaign`` through ``transport`` would be its first real send
        after it went only to the outbox (a rehearsal)."""
        if transport == "outbox" or campaign.transport != "outbox":
            return False
        other = self.db.execute(
            "SELECT 1 FROM deliveries WHERE campaign_id = ? "
            "AND coalesce(transport, 'outbox') != 'outbox' LIMIT 1",
            (campaign.id,),
        ).fetchone()
        return other is None

    def archive_rehearsal(self, campaign: CampaignRow) -> int:
        """Keep a summary of the outbox rehearsal and clear the ledger for the real send;
        the number of messages the rehearsal wrote."""
        with self.transaction():
            row = self.db.execute(
                f"SELECT status, transport FROM campaigns WHERE id = ?{self.for_update}",
                (campaign.id,),
            ).fetchone()
            if row["transport"] != "outbox":
                return 0  # another sender archived it first
            busy = self.db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'sending'",
                (campaign.id,),
            ).fetchone()[0]
            if busy:
                raise SendConflict(
                    f"{campaign.slug} is still being written to the outbox ({busy} message(s) "
                    "under way).",
                    "Wait for that rehearsal to finish, then send it again.",
                )
            written = self.db.execute(
                "SELECT count(*) FROM deliveries WHERE campaign_id = ? AND status = 'sent'",
                (campaign.id,),
            ).fetchone()[0]
            self.db.execute(
                "INSERT INTO rehearsals (campaign_id, transport, messages, started_at, "
                "finished_at, archived_at) VALUES (?, 'outbox', ?, ?, ?, ?)",
                (campaign.id, written, campaign.started_at, campaign.finished_at, now_iso()),
            )
            self.db.execute("DELETE FROM deliveries WHERE campaign_id = ?", (campaign.id,))
            self.db.execute(
                "UPDATE campaigns SET status = 'draft', transport = NULL, started_at = NULL, "
                "finished_at = NULL WHERE id = ?",
                (campaign.id,),
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

    # -- lookups by id, for the unsubscribe link (`serve`) ---------------------------
    def subscriber_status(self, subscriber_id: int) -> str | None:
        """The status of the subscriber row with this id (an erased one too), or None."""
        row = self.db.execute(
            "SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return row[0] if row else None

    def campaign_slug(self, campaign_id: int) -> str | None:
        """The slug of the campaign with this id, or None."""
        row = self.db.execute("SELECT slug FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        return row[0] if row else None


def _gone(status: str, erased_at: str | None) -> str:
    """Why a delivery is skipped: its reader's status, or their erasure."""
    return "subscriber was erased" if erased_at else f"subscriber is {status}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _audience_sql(audience: Audience) -> tuple[str, list[Any]]:
    where = ["s.status = 'active'", "s.erased_at IS NULL"]
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
