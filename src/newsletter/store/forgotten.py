"""Erasing a person from the database, and knowing them again without their data.

What erasure means for each column (``ERASABLE``), how a payload loses a person
(``Trace``) and the keyed hashes are ``erasure.py``'s; this module runs the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..addresses import address_forms
from ..errors import ConfigError
from .connection import Connection
from .erasure import (
    ERASABLE,
    KEYED,
    LEGACY,
    Trace,
    addresses_in,
    email_hash,
    key_id,
    legacy_email_hash,
    mailbox_key,
)
from .link_secret import LinkSecret
from .records import Erasure, now_iso


class Blocklist:
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


class Forgotten:
    """The people erased: ``forget`` itself, and the checks that keep them out."""

    def __init__(self, db: Connection, secret: LinkSecret) -> None:
        self.db = db
        self.secret = secret

    def forget(self, email: str) -> Erasure:
        """Erase a person: their own rows blanked, every other row that mentions their
        address rewritten without it (and without their names), and only a keyed hash
        kept so the address can never be imported again. Aggregate counts survive.

        Call ``purge`` afterwards: old copies of the rows may still be on disk.
        """
        secret = self.secret.current()
        forms = sorted(address_forms(email))
        now = now_iso()
        db = self.db
        with db.transaction():
            # nothing may record them (an import, an event, an answer) while this runs
            db.lock(("subscribers", "deliveries", "events"), "SHARE ROW EXCLUSIVE")
            people = (
                db.execute(
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
            self.record(email, secret)
            ids = [p["id"] for p in people]
            db.execute(  # a sign-up of a variant of the address (a +tag, dots) too
                "DELETE FROM signup_requests WHERE mailbox_key = ?", (mailbox_key(secret, email),)
            )
            for sid in ids:
                self._blank(sid, now)
            self._erase_events_addressed_to(trace, ids[0] if ids else None)
            self._erase_mentions(trace)
        return Erasure(bool(people), ids, [p["email"] for p in people], trace)

    def _blank(self, subscriber_id: int, now: str) -> None:
        """A person's own rows: the subscriber row stays, with no personal data."""
        placeholder = f"forgotten-{subscriber_id}@invalid"
        db = self.db
        db.execute(
            "UPDATE subscribers SET email = ?, email_key = ?, first_name = '', "
            "last_name = '', attributes = '{}', subscribed_at = NULL, "
            "consent_source = NULL, timezone = NULL, soft_bounces = 0, status = 'unsubscribed', "
            # a sign-up never confirmed stays one: the overview counts it as no import
            "status_reason = CASE WHEN status = 'pending' AND status_reason = 'signed up' "
            "THEN 'forgotten sign-up' ELSE 'forgotten' END, status_changed_at = ?, updated_at = ?, "
            "erased_at = ? WHERE id = ?",
            (placeholder, placeholder, now, now, now, subscriber_id),
        )
        db.execute("DELETE FROM subscriber_tags WHERE subscriber_id = ?", (subscriber_id,))
        # no sequence keeps them (their deliveries say what they got)
        db.execute("DELETE FROM sequence_entries WHERE subscriber_id = ?", (subscriber_id,))
        # their sign-up requests go whole: nothing of an unconfirmed sign-up is kept
        db.execute("DELETE FROM signup_requests WHERE subscriber_id = ?", (subscriber_id,))
        db.execute(
            "UPDATE deliveries SET email = ?, response = NULL, error = NULL "
            "WHERE subscriber_id = ?",
            (placeholder, subscriber_id),
        )
        db.execute(
            "UPDATE deliveries SET status = 'skipped', error = 'subscriber was erased', "
            "updated_at = ? WHERE subscriber_id = ? AND status = 'pending'",
            (now, subscriber_id),
        )
        db.execute(
            "UPDATE events SET email = NULL, raw = '{}', detail = NULL WHERE subscriber_id = ?",
            (subscriber_id,),
        )
        # what happened stays (an action and its time); the consent proof goes
        db.execute(
            "UPDATE subscriber_log SET source = NULL, client_hash = NULL, detail = NULL "
            "WHERE subscriber_id = ?",
            (subscriber_id,),
        )

    def purge(self) -> bool:
        """Leave no old copy of erased rows on disk (False: it could not be done yet)."""
        return self.db.purge()

    def record(self, address: str, secret: str) -> None:
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

    def blocklist(self) -> Blocklist:
        """The erased addresses, to check an import against; refused when some were
        hashed with a secret this process does not have."""
        blocked = Blocklist(
            self.db.execute("SELECT email_hash, scheme, key_id FROM forgotten").fetchall(),
            self.secret.every(),
        )
        if blocked.unreadable:
            raise ConfigError(
                f"{blocked.unreadable} erased address(es) were recorded with another "
                "secret, so this import cannot tell whether it brings them back; nothing "
                "was imported.",
                "Set NEWSLETTER_SECRET to the value it had when they were erased (or unset "
                "it, if it was not set then) and import again.",
            )
        return blocked

    def _mentioning(self, table: str, columns: list[str], trace: Trace) -> list[Any]:
        """Rows of ``table`` where one of ``columns`` may mention the person (a superset)."""
        patterns = trace.like_patterns()
        if not patterns:
            return []
        spec = ERASABLE[table]
        like = self.db.dialect.ilike
        where = " OR ".join(f"{c} {like} ? ESCAPE '\\'" for c in columns for _ in patterns)
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

    def erased_among(self, subscriber_ids: list[int]) -> set[int]:
        """Which of these subscribers were erased."""
        if not subscriber_ids:
            return set()
        among, params = self.db.dialect.in_list("id", subscriber_ids)
        return {
            r[0]
            for r in self.db.execute(
                f"SELECT id FROM subscribers WHERE {among} AND erased_at IS NOT NULL", params
            )
        }

    def among(self, addresses: Iterable[str]) -> set[str]:
        """Which of these addresses were erased (by their keyed or unkeyed hash)."""
        hashes: dict[str, str] = {}
        secrets_known = self.secret.every()
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

    def includes(self, email: str) -> bool:
        """Whether ``email`` was erased on request."""
        return bool(self.among([email]))

    def about_erased(self, subscriber_id: int | None, email: str | None) -> bool:
        """Whether an event about this subscriber or address concerns an erased person."""
        if subscriber_id is not None and self.erased_among([subscriber_id]):
            return True
        return bool(email) and bool(self.among([email or ""]))

    def trace_in(self, values: Iterable[Any]) -> Trace | None:
        """The erased addresses these payloads mention, as one Trace (None: none)."""
        erased = self.among(addresses_in(list(values)))
        return Trace(erased) if erased else None
