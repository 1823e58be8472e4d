"""What a provider event does to its subscriber: a table, plus the one rule that counts;
and whose user agent is a link scanner's (the report and the sign-up's confirmation ask).

Pure: the store reads the subscriber's status and soft bounce count, asks
``effect_of``, and applies the answer in the transaction that records the event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models import EventKind, EventOutcome, SubscriberStatus

_EVERY_STATUS = frozenset(SubscriberStatus)
_ACTIVE = frozenset({SubscriberStatus.ACTIVE})


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An event moves a subscriber in one of ``from_statuses`` to ``to``."""

    to: SubscriberStatus
    from_statuses: frozenset[SubscriberStatus]
    outcome: EventOutcome


# A hard bounce suppresses only an active address (a bounce does not overrule an
# unsubscribe or a complaint); a complaint or an unsubscribe wins over any status.
STATUS_CHANGES: dict[EventKind, StatusChange] = {
    EventKind.BOUNCED: StatusChange(SubscriberStatus.BOUNCED, _ACTIVE, EventOutcome.BOUNCED),
    EventKind.DROPPED: StatusChange(SubscriberStatus.BOUNCED, _ACTIVE, EventOutcome.BOUNCED),
    EventKind.COMPLAINED: StatusChange(
        SubscriberStatus.COMPLAINED,
        _EVERY_STATUS - {SubscriberStatus.COMPLAINED},
        EventOutcome.COMPLAINED,
    ),
    EventKind.UNSUBSCRIBED: StatusChange(
        SubscriberStatus.UNSUBSCRIBED,
        _EVERY_STATUS - {SubscriberStatus.UNSUBSCRIBED},
        EventOutcome.UNSUBSCRIBED,
    ),
}
# A soft bounce is counted whatever the status; the one that reaches the limit
# suppresses an active address as a hard bounce would.
SOFT_BOUNCE_LIMIT_REACHED = StatusChange(
    SubscriberStatus.BOUNCED, _ACTIVE, EventOutcome.SOFT_BOUNCE_LIMIT
)


@dataclass(frozen=True, slots=True)
class Effect:
    """What to do: the outcome, the new status (None: unchanged) and, for a soft
    bounce, the subscriber's count after it."""

    outcome: EventOutcome
    status: SubscriberStatus | None = None
    soft_bounces: int | None = None


def effect_of(kind: EventKind, status: SubscriberStatus, soft_bounces: int, limit: int) -> Effect:
    """What an event of ``kind`` does to a subscriber with ``status`` and ``soft_bounces``
    counted so far, under ``limit`` soft bounces."""
    if kind == EventKind.SOFT_BOUNCED:
        count = soft_bounces + 1
        change = SOFT_BOUNCE_LIMIT_REACHED
        if count >= limit and status in change.from_statuses:
            return Effect(change.outcome, change.to, count)
        return Effect(EventOutcome.SOFT_BOUNCE, None, count)
    change = STATUS_CHANGES.get(kind)
    if change is not None and status in change.from_statuses:
        return Effect(change.outcome, change.to)
    return Effect(EventOutcome.RECORDED)


def status_reason(
    effect: Effect, provider: str, kind: EventKind, detail: str | None, limit: int
) -> str:
    """Why the subscriber's status changed, as stored with it."""
    if effect.outcome == EventOutcome.SOFT_BOUNCE_LIMIT:
        return f"{effect.soft_bounces} soft bounces (limit {limit})"
    return f"{provider} {kind}" + (f": {detail}" if detail else "")


# Substrings (lower case) of the user agents of known link scanners and of HTTP clients
# no reader's mail program is: a click whose user agent contains one is a probable bot.
# Gateways that fetch links as the message arrives (Microsoft Defender's Safe Links and
# BingPreview, Proofpoint, Mimecast, Barracuda, Symantec/Broadcom, Trend Micro, Cisco,
# Sophos, Fortinet, Forcepoint, Google's safe-browsing checks), scripted clients and
# headless browsers, and anything that calls itself a bot, crawler or spider.
SCANNER_AGENTS = (
    "safelinks",
    "microsoft defender",
    "bingpreview",
    "proofpoint",
    "mimecast",
    "barracuda",
    "symantec",
    "broadcom",
    "trend micro",
    "trendmicro",
    "cisco",
    "ironport",
    "sophos",
    "fortinet",
    "fortiguard",
    "forcepoint",
    "google-safety",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "apache-httpclient",
    "libwww-perl",
    "node-fetch",
    "axios/",
    "headlesschrome",
    "phantomjs",
    "bot",
    "crawler",
    "spider",
)
_SCANNER = re.compile("|".join(re.escape(token) for token in SCANNER_AGENTS), re.IGNORECASE)


def scanner_agent(user_agent: str | None) -> bool:
    """Whether a user agent is a known link scanner's or a script's (``SCANNER_AGENTS``)."""
    return bool(user_agent) and _SCANNER.search(user_agent or "") is not None
