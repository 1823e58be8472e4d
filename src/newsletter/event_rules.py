"""What a provider event does to its subscriber: a table, plus the one rule that counts.

Pure: the store reads the subscriber's status and soft bounce count, asks
``effect_of``, and applies the answer in the transaction that records the event.
"""

from __future__ import annotations

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
