"""The nouns of the pipeline: articles, campaigns, subscribers, deliveries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class Article:
    """One article as a card in an email: what the reader sees before "Read more".

    Frozen: readers cache what they read (a feed's entries serve every campaign of a
    run, and ``serve`` and ``preview`` keep one reader), so a campaign's overrides make
    a new record (``dataclasses.replace``) and never change the one read.
    """

    title: str
    url: str | None = None
    author: str | None = None
    date: dt.date | None = None
    image: str | None = None
    excerpt: str = ""  # plain text, for the text part
    excerpt_html: str = ""  # the same with safe inline markup (bold, italic, links)
    source: str = ""
    word_count: int = 0


@dataclass(frozen=True, slots=True)
class Audience:
    """Which subscribers a campaign goes to: active ones, filtered by tags."""

    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()


# The built-in templates' opening line: a Jinja2 expression over the reader.
DEFAULT_GREETING = '"Hello " ~ recipient.first_name_or("there") ~ ","'


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign file, parsed: its slug is its identity in the database.

    ``greeting`` is a Jinja2 expression over ``recipient`` ("" for none);
    ``body_line`` is the file's line where ``body`` starts (for messages).
    """

    slug: str
    subject: str
    body: str
    path: str
    template: str = "digest"
    preheader: str = ""
    sender: str | None = None
    reply_to: str | None = None
    audience: Audience = field(default_factory=Audience)
    articles: list[Article] = field(default_factory=list)
    utm_campaign: str = ""
    greeting: str = DEFAULT_GREETING
    body_line: int = 1
    archive: bool = True  # listed in the public archive once sent (`archive: false`: not)
    send_at: dt.datetime | None = None  # aware: `newsletter run` sends it once this has come
    send_zone: str | None = None  # the IANA zone send_at was written in, if any
    lang: str = ""  # the front matter's `lang:`, overriding [newsletter] language
    local_time: bool = False  # each reader at send_at's wall-clock time in their own zone
    # a step of a sequence (``sequences/<sequence>/<stem>.md``, slug ``<sequence>--<stem>``):
    # its sequence, and the time after a reader entered it that the step is due
    sequence: str | None = None
    after: dt.timedelta | None = None


class CampaignStatus(StrEnum):
    """Where a campaign stands in the database.

    ``draft`` until its first send freezes the audience; ``sending`` while deliveries
    are pending or in flight; ``paused`` when too many failed, or a person paused it
    (`schedule pause`); ``sent`` once none is left (a ``--retry-*`` run makes it
    ``sending`` again); ``cancelled`` (`schedule cancel`): never sent, for good.
    """

    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    subscribed_at: str | None = None
    consent_source: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    id: int | None = None
    timezone: str | None = None  # an IANA name ("Europe/Berlin"), checked at import


class SubscriberRecord(NamedTuple):
    """A subscriber as an import reads it: ``Subscriber``'s fields without the id, as
    one tuple (a million of them are made by a large import, without a dataclass's
    per-field cost)."""

    email: str
    first_name: str
    last_name: str
    tags: tuple[str, ...]
    status: SubscriberStatus
    subscribed_at: str | None
    consent_source: str | None
    attributes: dict[str, str]
    timezone: str | None

    @classmethod
    def of(cls, sub: Subscriber) -> SubscriberRecord:
        return cls(
            sub.email,
            sub.first_name,
            sub.last_name,
            sub.tags,
            sub.status,
            sub.subscribed_at,
            sub.consent_source,
            sub.attributes,
            sub.timezone,
        )

    def subscriber(self) -> Subscriber:
        return Subscriber(**self._asdict())


class DeliveryStatus(StrEnum):
    """Where one (campaign, subscriber) delivery stands.

    ``pending`` waits; ``sending`` is claimed by a running process; the rest are
    settled. ``unknown`` means the request may or may not have reached the
    provider, so it is never re-sent without ``--retry-unknown``.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    QUEUED = "queued"  # accepted by the provider, delivery not confirmed per recipient
    INVALID = "invalid"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


SETTLED_OK = frozenset({DeliveryStatus.SENT, DeliveryStatus.QUEUED})
FAILURES = frozenset({DeliveryStatus.INVALID, DeliveryStatus.REJECTED, DeliveryStatus.FAILED})


class EventKind(StrEnum):
    """Provider events, normalised (after anymail's tracking events).

    What each does to the subscriber is ``event_rules.py``'s table: ``bounced`` and
    ``dropped`` suppress the address, ``complained`` and ``unsubscribed`` change its
    status, ``soft_bounced`` counts toward ``[delivery] soft_bounce_limit``; every other
    kind is only recorded. Each provider's table in ``events.py`` says which of its types
    is which.
    """

    QUEUED = "queued"  # the provider accepted the message and will send it
    SENT = "sent"  # the provider handed the message on to the receiving server
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # delayed; the provider is still trying
    BOUNCED = "bounced"  # hard: the address does not exist or refuses for good
    SOFT_BOUNCED = "soft_bounced"  # temporary: full mailbox, server down
    DROPPED = "dropped"  # the provider would not send (already suppressed there)
    FILTERED = "filtered"  # a spam, virus or DMARC filter stopped or flagged the message
    FAILED = "failed"  # not sent because of something on our side (template, setup, size)
    AUTOREPLIED = "autoreplied"  # a machine answered: out of office, challenge, address change
    COMPLAINED = "complained"  # marked as spam
    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBED = "subscribed"  # asked to join or rejoin (joining takes consent, not an event)
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"  # a type we do not know, or one not about our messages; raw kept


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a provider (or a reader) reported; ``raw`` is kept as received."""

    provider: str
    kind: EventKind
    email: str | None = None
    provider_message_id: str | None = None
    provider_event_id: str | None = None
    occurred_at: str | None = None
    campaign: str | None = None
    subscriber_id: int | None = None
    detail: str | None = None
    raw: Any = None
    url: str | None = None  # a click's link, as the provider reports it
    user_agent: str | None = None  # of an open or a click, as the provider reports it


class EventOutcome(StrEnum):
    """What recording one event did (``store.events.record``)."""

    RECORDED = "recorded"  # stored; the subscriber stays as they were
    ALREADY_RECORDED = "already recorded"  # its provider event id was recorded before
    NO_SUBSCRIBER = "no matching subscriber"  # stored, about no one on the list
    ERASED = "erased"  # about an erased person: stored as a count only
    BOUNCED = "bounced"  # the subscriber is suppressed as bounced
    COMPLAINED = "complained"  # the subscriber is suppressed as complained
    UNSUBSCRIBED = "unsubscribed"
    SOFT_BOUNCE = "soft bounce"  # counted toward the soft bounce limit
    SOFT_BOUNCE_LIMIT = "soft bounce limit"  # the count reached the limit: bounced


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What ``store.events.record`` did, with the subscriber's soft bounce count after the
    event when it was a soft bounce; ``str()`` says it in words."""

    outcome: EventOutcome
    soft_bounces: int = 0
    soft_bounce_limit: int = 0

    def __str__(self) -> str:
        n, limit = self.soft_bounces, self.soft_bounce_limit
        return {
            EventOutcome.NO_SUBSCRIBER: "recorded (no matching subscriber)",
            EventOutcome.ERASED: "recorded (about an erased person: kept as a count only)",
            EventOutcome.BOUNCED: "suppressed (bounced)",
            EventOutcome.COMPLAINED: "suppressed (complained)",
            EventOutcome.SOFT_BOUNCE: f"soft bounce {n} of {limit}",
            EventOutcome.SOFT_BOUNCE_LIMIT: f"suppressed after {n} soft bounces",
        }.get(self.outcome, str(self.outcome))


@dataclass(frozen=True, slots=True)
class Recipient:
    """One delivery to make: the subscriber's own fields and the ledger key."""

    subscriber_id: int
    email: str
    first_name: str = ""
    last_name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, subscriber: Subscriber) -> Recipient:
        """A subscriber as a delivery to make: the one way from a subscriber to a
        recipient (the store's rows come as ``Subscriber``s first, or through here)."""
        attributes = dict(subscriber.attributes)
        if subscriber.timezone:  # the known column, seen by templates as recipient.timezone
            attributes["timezone"] = subscriber.timezone
        return cls(
            subscriber.id or 0,
            subscriber.email,
            subscriber.first_name,
            subscriber.last_name,
            attributes,
            tuple(subscriber.tags),
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said about one recipient, normalised; ``raw`` is kept."""

    subscriber_id: int
    status: DeliveryStatus
    message_id: str | None = None
    error: str | None = None
    suppress: bool = False
    raw: Any = None
