"""The project secret that signs links and keys erased addresses' hashes."""

from __future__ import annotations

import os
import secrets

from .connection import Connection


class LinkSecret:
    """$NEWSLETTER_SECRET, else a random secret made once and kept in ``settings``."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def current(self) -> str:
        from_env = os.environ.get("NEWSLETTER_SECRET", "").strip()
        if from_env:
            return from_env
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES ('link_secret', ?) "
                "ON CONFLICT DO NOTHING",
                (secrets.token_hex(32),),
            )
        return self.setting("link_secret") or ""

    def every(self) -> list[str]:
        """Every secret an erased address may have been hashed with: $NEWSLETTER_SECRET
        and the one kept in the database (a project that moved to the first)."""
        found = [os.environ.get("NEWSLETTER_SECRET", "").strip(), self.setting("link_secret")]
        return list(dict.fromkeys(s for s in found if s))
