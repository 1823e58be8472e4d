"""Subscribers: importing them, reading them (streamed), their status, tags and fields."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..addresses import address_forms
from ..models import Audience, Recipient, Subscriber, SubscriberRecord, SubscriberStatus
from .connection import Connection
from .forgotten import Forgotten
from .records import ImportSummary, KeptStatus, now_iso, recipient_row

# Statuses an import may never turn back into "active".
_STICKY = {
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
    SubscriberStatus.COMPLAINED,
}
_NEW_COLUMNS = (
    "email",
    "email_key",
    "first_name",
    "last_name",
    "status",
    "attributes",
    "subscribed_at",
    "consent_source",
    "timezone",
)


class _Tally:
    """An import's counts while it runs (mutable on purpose); ``summary`` freezes them."""

    __slots__ = ("added", "forgotten", "kept_status", "unchanged", "updated")

    def __init__(self) -> None:
        self.added = self.updated = self.unchanged = 0
        self.kept_status: list[KeptStatus] = []
        self.forgotten: list[str] = []

    def summary(self) -> ImportSummary:
        return ImportSummary(
            self.added,
            self.updated,
            self.unchanged,
            tuple(self.kept_status),
            tuple(self.forgotten),
        )


class Subscribers:
    """The ``subscribers`` and ``subscriber_tags`` tables. Erased rows are never read."""

    IMPORT_CHUNK = 5000
    READ_CHUNK = 1000  # rows per query when streaming, with their tags in one more

    def __init__(self, db: Connection, forgotten: Forgotten) -> None:
        self.db = db
        self.forgotten = forgotten

    # -- import -----------------------------------------------------------------
    def import_rows(self, subscribers: Iterable[Subscriber]) -> ImportSummary:
        """Insert or update, in one transaction, a chunk of rows at a time (bulk inserts;
        COPY on PostgreSQL); sticky statuses are never undone, erased addresses never
        come back."""
        return self.import_records(map(SubscriberRecord.of, subscribers))

    def import_records(self, records: Iterable[SubscriberRecord]) -> ImportSummary:
        """``import_rows`` for subscribers as tuples (what a file's import reads)."""
        summary = _Tally()
        secret = self.forgotten.secret.current()
        chunk: dict[str, SubscriberRecord] = {}
        with self.db.transaction():
            self.db.lock(("subscribers",), "ROW EXCLUSIVE")  # a forget under way finishes first
            blocked = self.forgotten.blocklist()
            for sub in records:
                email = sub.email
                if blocked:
                    found, legacy = blocked.match(email)
                    if found:
                        summary.forgotten.append(email)
                        if legacy:
                            self.forgotten.record(email, secret)
                        continue
                key = email.lower()
                if key in chunk or len(chunk) >= self.IMPORT_CHUNK:
                    self._import_chunk(chunk, summary)  # a repeat updates what came before
                    chunk = {}
                chunk[key] = sub
            if chunk:
                self._import_chunk(chunk, summary)
        return summary.summary()

    def _import_chunk(self, chunk: dict[str, SubscriberRecord], summary: _Tally) -> None:
        keys = list(chunk)
        existing = {
            r["email_key"]: r
            for r in self.db.execute(
                f"SELECT * FROM subscribers WHERE email_key IN ({', '.join('?' * len(keys))})",
                keys,
            )
        }
        if existing:
            new = [(k, chunk[k]) for k in keys if k not in existing]
        else:
            new = list(chunk.items())
        if new:
            self._insert(new)
            summary.added += len(new)
        if existing:
            self._update(existing, chunk, summary)

    def _insert(self, new: list[tuple[str, SubscriberRecord]]) -> None:
        """Insert new readers (key, record) with their tags."""
        now = now_iso()
        ids = self.db.next_ids("subscribers", len(new))
        if ids is None:  # the database numbers them
            rows = _new_rows(new, now, itertools.repeat(0))
            self.db.copy_rows(
                "subscribers",
                (*_NEW_COLUMNS, "created_at", "updated_at"),
                [(*row[1:], now, now) for row in rows],
            )
        else:  # numbered here: the new readers' tags need no query for their ids
            rows = _new_rows(new, now, ids)
            made = {"created_at": now, "updated_at": now}  # bound once per statement
            self.db.copy_rows("subscribers", ("id", *_NEW_COLUMNS), rows, made)
        if ids is None:
            tagged = [(k, r.tags) for k, r in new if r.tags]
            if not tagged:
                return
            found = {
                r[1]: r[0]
                for r in self.db.execute(
                    "SELECT id, email_key FROM subscribers WHERE email_key IN "
                    f"({', '.join('?' * len(tagged))})",
                    [k for k, _ in tagged],
                )
            }
            pairs = [(found[k], tag) for k, tags in tagged for tag in tags]
        else:
            pairs = [(i, tag) for i, (_, r) in zip(ids, new, strict=True) for tag in r.tags]
        if pairs:
            self.db.copy_rows("subscriber_tags", ("subscriber_id", "tag"), pairs)

    def _update(
        self, existing: dict[str, Any], chunk: dict[str, SubscriberRecord], summary: _Tally
    ) -> None:
        now = now_iso()
        tags = self.tags_of([row["id"] for row in existing.values()])
        updates, new_tags = [], []
        for key, row in existing.items():
            sub = chunk[key]
            status = SubscriberStatus(row["status"])
            if status in _STICKY and sub.status != status:
                summary.kept_status.append(KeptStatus(sub.email, status))
                new_status = status
            else:
                new_status = sub.status
            values = _merged(row, sub, new_status)
            missing_tags = set(sub.tags) - set(tags.get(row["id"], ()))
            if all(row[k] == v for k, v in values.items()) and not missing_tags:
                summary.unchanged += 1
                continue
            updates.append((*values.values(), now, row["id"]))
            new_tags += [(row["id"], t) for t in missing_tags]
            summary.updated += 1
        if updates:
            self.db.executemany(
                "UPDATE subscribers SET first_name = ?, last_name = ?, status = ?, "
                "attributes = ?, subscribed_at = ?, consent_source = ?, timezone = ?, "
                "updated_at = ? "
                "WHERE id = ?",
                updates,
            )
        if new_tags:
            self.db.executemany(
                "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                new_tags,
            )

    # -- reading ----------------------------------------------------------------
    def stream(self, status: str | None = None, tag: str | None = None) -> Iterator[Subscriber]:
        """Subscribers in id order, read a chunk at a time (no cursor stays open between
        chunks), each chunk's tags in one query."""
        where = ["s.erased_at IS NULL"]
        params: list[Any] = []
        if status:
            where.append("s.status = ?")
            params.append(status)
        if tag:
            where.append(_HAS_TAG.format("= ?"))
            params.append(tag.lower())
        for rows, tags in self._chunks("s.*", " AND ".join(where), params):
            for row in rows:
                yield _subscriber(row, tags.get(row["id"], ()))

    def _chunks(
        self, columns: str, where: str, params: list[Any]
    ) -> Iterator[tuple[list[Any], dict[int, list[str]]]]:
        """(rows, their tags) of ``subscribers s`` matching ``where``, in id order, by
        keyset: each query starts after the last id the one before returned."""
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT {columns} FROM subscribers s WHERE {where} AND s.id > ? "
                "ORDER BY s.id LIMIT ?",
                (*params, last, self.READ_CHUNK),
            ).fetchall()
            if not rows:
                return
            yield rows, self.tags_of([r["id"] for r in rows])
            last = rows[-1]["id"]

    def find(self, email: str) -> Subscriber | None:
        row = self._row(email)
        return _subscriber(row, self.tags_of([row["id"]]).get(row["id"], ())) if row else None

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber with this id (never an erased row)."""
        row = self.db.execute(
            "SELECT * FROM subscribers WHERE id = ? AND erased_at IS NULL", (subscriber_id,)
        ).fetchone()
        return _subscriber(row, self.tags_of([row["id"]]).get(row["id"], ())) if row else None

    def id_of(self, email: str) -> int | None:
        row = self._row(email)
        return row["id"] if row else None

    def exists(self, subscriber_id: int) -> bool:
        """Whether a subscriber row with this id exists (erased or not)."""
        found = self.db.execute(
            "SELECT 1 FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return found is not None

    def status_of(self, subscriber_id: int) -> SubscriberStatus | None:
        """The status of subscriber ``subscriber_id`` (None: no such row)."""
        row = self.db.execute(
            "SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return SubscriberStatus(row[0]) if row else None

    def _row(self, email: str) -> Any:
        """The subscriber with this address, in any of its spellings (never an erased row)."""
        forms = sorted(address_forms(email))
        if not forms:
            return None
        return self.db.execute(
            f"SELECT * FROM subscribers WHERE email_key IN ({', '.join('?' * len(forms))}) "
            "AND erased_at IS NULL ORDER BY id LIMIT 1",
            forms,
        ).fetchone()

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
        with self.db.transaction():
            cur = self.db.execute(sql, (str(status), reason, now, now, subscriber_id, str(status)))
        return cur.rowcount > 0

    # -- tags and fields ----------------------------------------------------------
    def tags_of(self, subscriber_ids: list[int]) -> dict[int, list[str]]:
        """The tags of many subscribers in one query, each subscriber's sorted."""
        found: dict[int, list[str]] = {}
        if not subscriber_ids:
            return found
        among, params = self.db.dialect.in_list("subscriber_id", subscriber_ids)
        for row in self.db.execute(
            f"SELECT subscriber_id, tag FROM subscriber_tags WHERE {among}", params
        ):
            found.setdefault(row[0], []).append(row[1])
        for tags in found.values():
            tags.sort()
        return found

    def tags(self) -> list[str]:
        """Every tag some subscriber has."""
        return [
            r[0] for r in self.db.execute("SELECT DISTINCT tag FROM subscriber_tags ORDER BY 1")
        ]

    def has_attribute(self, name: str) -> bool:
        """Whether any subscriber has the attribute ``name`` (an extra column of an import,
        or ``timezone``)."""
        if name == "timezone" and self._has_timezone():
            return True
        pattern = "%" + json.dumps(name, ensure_ascii=False)[:-1].replace("%", "_") + '":%'
        return (
            self.db.execute(
                "SELECT 1 FROM subscribers WHERE attributes LIKE ? LIMIT 1", (pattern,)
            ).fetchone()
            is not None
        )

    def attribute_names(self) -> list[str]:
        """Every attribute some subscriber has, sorted."""
        names: set[str] = {"timezone"} if self._has_timezone() else set()
        for row in self.db.execute(
            "SELECT DISTINCT attributes FROM subscribers WHERE attributes != '{}'"
        ):
            names.update(json.loads(row[0]))
        return sorted(names)

    def _has_timezone(self) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM subscribers WHERE timezone IS NOT NULL LIMIT 1"
        ).fetchone()
        return found is not None

    # -- a campaign's audience ------------------------------------------------------
    def audience_sample(self, audience: Audience, n: int) -> list[str]:
        where, params = audience_sql(audience)
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT s.email FROM subscribers s WHERE {where} ORDER BY s.id LIMIT ?",
                (*params, n),
            )
        ]

    def audience_recipients(self, audience: Audience) -> Iterator[Recipient]:
        """The campaign's audience as recipients (with tags), streamed in id order."""
        where, params = audience_sql(audience)
        columns = "s.id, s.email, s.first_name, s.last_name, s.attributes, s.timezone"
        for rows, tags in self._chunks(columns, where, params):
            for r in rows:
                yield recipient_row(r, tags)

    def audience_tag_sets(self, audience: Audience, most: int) -> list[tuple[str, ...]] | None:
        """The distinct sets of tags the audience's readers have, each sorted as
        ``audience_recipients`` gives a reader's, in the order of the first reader with
        each; None when there are more than ``most``. The database groups the readers:
        no reader's row comes to Python."""
        where, params = audience_sql(audience)
        sql = _TAG_SETS.format(tags=_TAG_LIST[self.db.dialect.name], where=where)
        rows = self.db.execute(sql, (*params, most + 1)).fetchall()
        if len(rows) > most:
            return None
        found: dict[tuple[str, ...], None] = {}
        for row in rows:  # the same set once, whatever order the database listed it in
            tags = row["tags"]
            found.setdefault(tuple(sorted(json.loads(tags))) if tags else (), None)
        return list(found)

    def audience_zones(self, audience: Audience) -> list[str | None]:
        """The time zones the audience's readers have (None: some have none)."""
        where, params = audience_sql(audience)
        return [
            r[0]
            for r in self.db.execute(
                f"SELECT DISTINCT s.timezone FROM subscribers s WHERE {where}", params
            )
        ]

    def count_audience(self, audience: Audience) -> int:
        where, params = audience_sql(audience)
        return self.db.execute(
            f"SELECT count(*) FROM subscribers s WHERE {where}", params
        ).fetchone()[0]


def _merged(row: Any, sub: SubscriberRecord, status: SubscriberStatus) -> dict[str, str | None]:
    """An existing subscriber's row with an import's values: what the file gives wins,
    what it leaves empty stays, attributes are merged."""
    merged_attrs = {**json.loads(row["attributes"]), **sub.attributes}
    return {
        "first_name": sub.first_name or row["first_name"],
        "last_name": sub.last_name or row["last_name"],
        "status": str(status),
        "attributes": json.dumps(merged_attrs, sort_keys=True, ensure_ascii=False),
        "subscribed_at": sub.subscribed_at or row["subscribed_at"],
        "consent_source": sub.consent_source or row["consent_source"],
        "timezone": sub.timezone or row["timezone"],
    }


_HAS_TAG = "EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.subscriber_id = s.id AND t.tag {})"


# Each reader's tags as a JSON array (ordered, so equal sets mostly group as one), and
# the distinct arrays of an audience by their first reader.
_TAG_LIST = {
    "sqlite": "(SELECT json_group_array(tag) FROM (SELECT t.tag FROM subscriber_tags t "
    "WHERE t.subscriber_id = s.id ORDER BY t.tag))",
    "postgresql": "(SELECT json_agg(t.tag ORDER BY t.tag)::text FROM subscriber_tags t "
    "WHERE t.subscriber_id = s.id)",
}
_TAG_SETS = (
    "SELECT tags FROM (SELECT s.id AS id, {tags} AS tags FROM subscribers s WHERE {where}) "
    "AS readers GROUP BY tags ORDER BY min(id) LIMIT ?"
)


def audience_sql(audience: Audience) -> tuple[str, list[Any]]:
    """The condition on ``subscribers s`` that selects ``audience``, and its parameters."""
    where = ["s.status = 'active'", "s.erased_at IS NULL"]
    params: list[Any] = []
    if audience.tags_any:
        where.append(_HAS_TAG.format(f"IN ({', '.join('?' * len(audience.tags_any))})"))
        params.extend(audience.tags_any)
    for tag in audience.tags_all:
        where.append(_HAS_TAG.format("= ?"))
        params.append(tag)
    if audience.exclude_tags:
        where.append(
            "NOT " + _HAS_TAG.format(f"IN ({', '.join('?' * len(audience.exclude_tags))})")
        )
        params.extend(audience.exclude_tags)
    return " AND ".join(where), params


def _subscriber(row: Any, tags: Iterable[str]) -> Subscriber:
    return Subscriber(
        id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        tags=tuple(tags),
        status=SubscriberStatus(row["status"]),
        subscribed_at=row["subscribed_at"],
        consent_source=row["consent_source"],
        attributes=json.loads(row["attributes"]),
        timezone=row["timezone"],
    )


def _new_rows(
    new: list[tuple[str, SubscriberRecord]], now: str, ids: Iterable[int]
) -> list[tuple[Any, ...]]:
    """New readers' rows (key, record), each with its id first, then in _NEW_COLUMNS'
    order: one tuple per reader, made once (created_at and updated_at, the same for
    all, are bound apart)."""
    return [
        (
            i,
            email,
            key,
            first_name,
            last_name,
            str(status),
            _attributes_json(attributes) if attributes else "{}",
            subscribed_at or now,
            consent_source,
            timezone,
        )
        for i, (
            key,
            (
                email,
                first_name,
                last_name,
                _,
                status,
                subscribed_at,
                consent_source,
                attributes,
                timezone,
            ),
        ) in zip(ids, new, strict=False)  # ids may be endless: itertools.repeat
    ]


def _attributes_json(attributes: dict[str, Any]) -> str:
    """A subscriber's attributes as stored (most have none)."""
    if not attributes:
        return "{}"
    return json.dumps(attributes, sort_keys=True, ensure_ascii=False)
