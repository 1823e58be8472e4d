"""The store: one object over one connection, with a method for everything the rest of
the package asks of the database. Each concern is a module of its own; this class
wires them together and only passes calls on, so that a transaction one of them opens
covers whatever the others do inside it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..models import (
    Audience,
    CampaignStatus,
    DeliveryStatus,
    Event,
    Recipient,
    RecordedEvent,
    SendResult,
    Subscriber,
    SubscriberStatus,
)
from .connection import Connection
from .event_log import EventLog
from .forgotten import Forgotten
from .leases import Lease, Leases
from .ledger import Ledger
from .link_secret import LinkSecret
from .migrations import migrate
from .records import ArchivedCampaign, CampaignPage, CampaignRow, Erasure, ImportSummary
from .signups import Consent, LogAction, Membership, SignupDecision, SignupLimits
from .subscribers import Subscribers


class SQLiteStore:
    """The database behind every command, SQLite or PostgreSQL (``open_store`` picks by
    URL; the name is the one callers have always used). ``db`` is the connection."""

    def __init__(self, db: Connection) -> None:
        self.db = db
        self._secret = LinkSecret(db)
        self._forgotten = Forgotten(db, self._secret)
        self._leases = Leases(db)
        self._subscribers = Subscribers(db, self._forgotten)
        self._ledger = Ledger(db, self._subscribers, self._leases, self._forgotten)
        self._events = EventLog(db, self._subscribers, self._ledger, self._forgotten)
        self._membership = Membership(db, self._subscribers, self._forgotten)
        self.migrate()

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded, in order; return their names."""
        return migrate(self.db)

    def transaction(self) -> AbstractContextManager[Connection]:
        """``with store.transaction():`` BEGIN ... COMMIT, or ROLLBACK on error."""
        return self.db.transaction()

    def link_secret(self) -> str:
        """$NEWSLETTER_SECRET, else a random secret made once and kept in the database."""
        return self._secret.current()

    # -- subscribers (subscribers.py) ------------------------------------------------
    def import_subscribers(self, subscribers: Iterable[Subscriber]) -> ImportSummary:
        return self._subscribers.import_rows(subscribers)

    def subscribers(
        self, status: str | None = None, tag: str | None = None
    ) -> Iterator[Subscriber]:
        """Subscribers in id order, streamed a chunk at a time."""
        return self._subscribers.stream(status, tag)

    def subscriber(self, email: str) -> Subscriber | None:
        return self._subscribers.find(email)

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        return self._subscribers.by_id(subscriber_id)

    def subscriber_id(self, email: str) -> int | None:
        return self._subscribers.id_of(email)

    def subscriber_status(self, subscriber_id: int) -> SubscriberStatus | None:
        """The status of subscriber ``subscriber_id``; None when there is no such row."""
        return self._subscribers.status_of(subscriber_id)

    def set_status(
        self,
        subscriber_id: int,
        status: SubscriberStatus,
        reason: str,
        only_if_active: bool = False,
    ) -> bool:
        """Change a subscriber's status (recording why); True when it changed."""
        return self._subscribers.set_status(subscriber_id, status, reason, only_if_active)

    def tags(self) -> list[str]:
        return self._subscribers.tags()

    def has_attribute(self, name: str) -> bool:
        return self._subscribers.has_attribute(name)

    def attribute_names(self) -> list[str]:
        return self._subscribers.attribute_names()

    def audience_sample(self, audience: Audience, n: int) -> list[str]:
        return self._subscribers.audience_sample(audience, n)

    def audience_recipients(self, audience: Audience) -> Iterator[Recipient]:
        return self._subscribers.audience_recipients(audience)

    def count_audience(self, audience: Audience) -> int:
        return self._subscribers.count_audience(audience)

    # -- erasure (forgotten.py) ----------------------------------------------------------
    def forget(self, email: str) -> Erasure:
        return self._forgotten.forget(email)

    def forgotten_address(self, email: str) -> bool:
        """Whether ``email`` was erased on request."""
        return bool(self._forgotten.among([email]))

    def purge_erased(self) -> bool:
        """Leave no old copy of erased rows on disk (False: a reader held the log)."""
        return self._forgotten.purge()

    # -- campaigns and the delivery ledger (ledger.py) ---------------------------------------
    def campaign(self, slug: str) -> CampaignRow | None:
        return self._ledger.campaign(slug)

    def campaigns(self) -> list[CampaignRow]:
        return self._ledger.campaigns()

    def campaign_slug(self, campaign_id: int) -> str | None:
        """The slug of campaign ``campaign_id``; None when there is no such campaign."""
        return self._ledger.campaign_slug(campaign_id)

    def ensure_campaign(self, slug: str, subject: str) -> CampaignRow:
        return self._ledger.ensure_campaign(slug, subject)

    def set_campaign_status(self, campaign_id: int, status: CampaignStatus) -> None:
        self._ledger.set_campaign_status(campaign_id, status)

    def finish_if_done(self, campaign_id: int) -> bool:
        return self._ledger.finish_if_done(campaign_id)

    def save_campaign_page(
        self, campaign_id: int, subject: str, preheader: str, html: str, in_archive: bool = True
    ) -> bool:
        return self._ledger.save_campaign_page(campaign_id, subject, preheader, html, in_archive)

    def campaign_page(self, slug: str) -> CampaignPage | None:
        return self._ledger.campaign_page(slug)

    def archived_campaigns(self, rehearsals: Collection[str]) -> list[ArchivedCampaign]:
        return self._ledger.archived_campaigns(rehearsals)

    def enqueue(self, campaign: CampaignRow, audience: Audience, transport: str) -> int:
        return self._ledger.enqueue(campaign, audience, transport)

    def requeue(self, campaign_id: int, statuses: Iterable[DeliveryStatus]) -> int:
        return self._ledger.requeue(campaign_id, statuses)

    def recover_abandoned(self, campaign_id: int, resend_safe: bool, lease_prefix: str) -> int:
        return self._ledger.recover_abandoned(campaign_id, resend_safe, lease_prefix)

    def claim(
        self, campaign_id: int, holder: str, limit: int, transport: str | None = None
    ) -> list[Recipient]:
        return self._ledger.claim(campaign_id, holder, limit, transport)

    def inactive(self, subscriber_ids: list[int]) -> dict[int, str]:
        return self._ledger.inactive(subscriber_ids)

    def settle(self, campaign_id: int, results: Iterable[SendResult]) -> None:
        self._ledger.settle(campaign_id, results)

    def release(self, campaign_id: int, subscriber_ids: Iterable[int]) -> None:
        self._ledger.release(campaign_id, subscriber_ids)

    def erased_during(self, campaign_id: int, since: str) -> list[int]:
        return self._ledger.erased_during(campaign_id, since)

    def delivery_counts(self, campaign_id: int) -> dict[str, int]:
        return self._ledger.delivery_counts(campaign_id)

    def deliveries(self, campaign_id: int) -> Iterator[Any]:
        return self._ledger.deliveries(campaign_id)

    def history(self, subscriber_id: int) -> list[dict[str, Any]]:
        return self._ledger.history(subscriber_id)

    def only_rehearsed(
        self, campaign: CampaignRow, transport: str, rehearsals: Collection[str]
    ) -> bool:
        return self._ledger.only_rehearsed(campaign, transport, rehearsals)

    def archive_rehearsal(self, campaign: CampaignRow) -> int:
        return self._ledger.archive_rehearsal(campaign)

    def rehearsals(self, campaign_id: int) -> list[dict[str, Any]]:
        return self._ledger.rehearsals(campaign_id)

    def featured_before(self, period: str, rehearsals: Collection[str]) -> set[str]:
        return self._ledger.featured_before(period, rehearsals)

    def record_campaign_articles(self, campaign_id: int, articles: Iterable[str]) -> None:
        self._ledger.record_campaign_articles(campaign_id, articles)

    def record_digest(self, period: str, articles: list[str]) -> None:
        self._ledger.record_digest(period, articles)

    # -- events (event_log.py) -------------------------------------------------------------
    def record_event(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent:
        """Store an event once and apply it to its subscriber (``event_rules.py``)."""
        return self._events.record(event, soft_bounce_limit)

    def event_counts(self, campaign_id: int) -> dict[str, int]:
        return self._events.event_counts(campaign_id)

    def claim_nonces(self, provider: str, nonces: Iterable[str]) -> set[str]:
        return self._events.claim_nonces(provider, nonces)

    def release_nonces(self, provider: str, nonces: Iterable[str]) -> None:
        self._events.release_nonces(provider, nonces)

    # -- membership: sign-ups, confirmations, staff actions (signups.py) -------------------
    def sign_up(
        self,
        email: str,
        first_name: str,
        last_name: str,
        consent: Consent,
        limits: SignupLimits,
        now: dt.datetime,
    ) -> SignupDecision:
        return self._membership.sign_up(email, first_name, last_name, consent, limits, now)

    def mark_confirmation_failed(self, log_id: int, reason: str) -> None:
        self._membership.mark_failed(log_id, reason)

    def confirm_subscriber(self, subscriber_id: int, now: dt.datetime) -> SubscriberStatus | None:
        return self._membership.confirm(subscriber_id, now)

    def add_subscriber(
        self,
        email: str,
        first_name: str,
        last_name: str,
        tags: tuple[str, ...],
        consent_source: str,
        now: dt.datetime,
    ) -> tuple[SubscriberStatus | None, int | None]:
        return self._membership.add(email, first_name, last_name, tags, consent_source, now)

    def resubscribe(
        self, subscriber_id: int, consent_source: str, now: dt.datetime
    ) -> SubscriberStatus | None:
        return self._membership.resubscribe(subscriber_id, consent_source, now)

    def log_membership(
        self, subscriber_id: int, action: LogAction, at: str, detail: str | None = None
    ) -> None:
        with self.db.transaction():
            self._membership.log(subscriber_id, action, at, detail=detail)

    def membership_log(self, subscriber_id: int) -> list[dict[str, Any]]:
        return self._membership.entries(subscriber_id)

    # -- leases (leases.py) --------------------------------------------------------------
    def lease(self, name: str, ttl_seconds: int, holder: str | None = None) -> Lease:
        """``with store.lease(name, ttl) as lease:`` hold ``name`` for the block (taken
        over from a holder that died or let it expire; ``SendConflict`` while a live one
        has it); ``lease.renew()`` keeps it for longer work."""
        return self._leases.lease(name, ttl_seconds, holder)
