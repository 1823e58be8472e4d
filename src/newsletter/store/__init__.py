"""The database: subscribers, campaigns and the delivery ledger."""

from __future__ import annotations

from ..errors import ConfigError
from .sqlite import CampaignPage, ImportSummary, SQLiteStore, now_iso

Store = SQLiteStore

__all__ = ["CampaignPage", "ImportSummary", "SQLiteStore", "Store", "now_iso", "open_store"]


def open_store(url: str) -> SQLiteStore:
    """A store for a database URL; the schema is migrated on open."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        f"Database URL {url!r} is not understood.",
        "Use sqlite:///PATH (relative to newsletter.toml) or postgresql://...",
    )
