"""What an event does to its subscriber, by kind, status and soft bounce count: the rules
as a table, without a database."""

from __future__ import annotations

import pytest

from newsletter.event_rules import Effect, effect_of, status_reason
from newsletter.models import EventKind, EventOutcome, SubscriberStatus

ACTIVE = SubscriberStatus.ACTIVE
BOUNCED = SubscriberStatus.BOUNCED
COMPLAINED = SubscriberStatus.COMPLAINED
UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED
PENDING = SubscriberStatus.PENDING
LIMIT = 3


@pytest.mark.parametrize(
    ("kind", "status", "soft_bounces", "effect"),
    [
        # a hard bounce (or a provider that drops the address) suppresses an active reader
        (EventKind.BOUNCED, ACTIVE, 0, Effect(EventOutcome.BOUNCED, BOUNCED)),
        (EventKind.DROPPED, ACTIVE, 0, Effect(EventOutcome.BOUNCED, BOUNCED)),
        # ... and nobody else: it does not overrule an unsubscribe or a complaint
        (EventKind.BOUNCED, UNSUBSCRIBED, 0, Effect(EventOutcome.RECORDED)),
        (EventKind.BOUNCED, COMPLAINED, 0, Effect(EventOutcome.RECORDED)),
        (EventKind.BOUNCED, PENDING, 0, Effect(EventOutcome.RECORDED)),
        (EventKind.BOUNCED, BOUNCED, 0, Effect(EventOutcome.RECORDED)),
        # a complaint wins over any other status
        (EventKind.COMPLAINED, ACTIVE, 0, Effect(EventOutcome.COMPLAINED, COMPLAINED)),
        (EventKind.COMPLAINED, BOUNCED, 0, Effect(EventOutcome.COMPLAINED, COMPLAINED)),
        (EventKind.COMPLAINED, UNSUBSCRIBED, 0, Effect(EventOutcome.COMPLAINED, COMPLAINED)),
        (EventKind.COMPLAINED, COMPLAINED, 0, Effect(EventOutcome.RECORDED)),
        # so does an unsubscribe
        (EventKind.UNSUBSCRIBED, ACTIVE, 0, Effect(EventOutcome.UNSUBSCRIBED, UNSUBSCRIBED)),
        (EventKind.UNSUBSCRIBED, COMPLAINED, 0, Effect(EventOutcome.UNSUBSCRIBED, UNSUBSCRIBED)),
        (EventKind.UNSUBSCRIBED, UNSUBSCRIBED, 0, Effect(EventOutcome.RECORDED)),
        # soft bounces count, whatever the status; the one that reaches the limit
        # suppresses an active reader
        (EventKind.SOFT_BOUNCED, ACTIVE, 0, Effect(EventOutcome.SOFT_BOUNCE, None, 1)),
        (EventKind.SOFT_BOUNCED, ACTIVE, 1, Effect(EventOutcome.SOFT_BOUNCE, None, 2)),
        (EventKind.SOFT_BOUNCED, ACTIVE, 2, Effect(EventOutcome.SOFT_BOUNCE_LIMIT, BOUNCED, 3)),
        (EventKind.SOFT_BOUNCED, ACTIVE, 7, Effect(EventOutcome.SOFT_BOUNCE_LIMIT, BOUNCED, 8)),
        (EventKind.SOFT_BOUNCED, UNSUBSCRIBED, 2, Effect(EventOutcome.SOFT_BOUNCE, None, 3)),
        (EventKind.SOFT_BOUNCED, BOUNCED, 5, Effect(EventOutcome.SOFT_BOUNCE, None, 6)),
    ],
)
def test_what_an_event_does(
    kind: EventKind, status: SubscriberStatus, soft_bounces: int, effect: Effect
) -> None:
    assert effect_of(kind, status, soft_bounces, LIMIT) == effect


@pytest.mark.parametrize(
    "kind",
    sorted(
        set(EventKind)
        - {
            EventKind.BOUNCED,
            EventKind.DROPPED,
            EventKind.COMPLAINED,
            EventKind.UNSUBSCRIBED,
            EventKind.SOFT_BOUNCED,
        }
    ),
)
@pytest.mark.parametrize("status", list(SubscriberStatus))
def test_every_other_kind_is_only_recorded(kind: EventKind, status: SubscriberStatus) -> None:
    assert effect_of(kind, status, LIMIT - 1, LIMIT) == Effect(EventOutcome.RECORDED)


def test_a_limit_of_one_suppresses_at_the_first_soft_bounce() -> None:
    assert effect_of(EventKind.SOFT_BOUNCED, ACTIVE, 0, 1).status == BOUNCED


def test_the_reason_stored_with_the_status() -> None:
    bounced = effect_of(EventKind.BOUNCED, ACTIVE, 0, LIMIT)
    assert status_reason(bounced, "postmark", EventKind.BOUNCED, "550 no such user", LIMIT) == (
        "postmark bounced: 550 no such user"
    )
    assert status_reason(bounced, "ses", EventKind.BOUNCED, None, LIMIT) == "ses bounced"
    limit = effect_of(EventKind.SOFT_BOUNCED, ACTIVE, 2, LIMIT)
    assert status_reason(limit, "ses", EventKind.SOFT_BOUNCED, "full", LIMIT) == (
        "3 soft bounces (limit 3)"
    )
