"""Plan and send a campaign: claim a batch, send it, settle it, repeat.

The ledger makes sending at-most-once per (campaign, subscriber): a batch is
claimed (``sending``) in the database before its request is made and settled
after the answer. A process killed in between leaves ``sending`` rows that
the next run turns into ``unknown`` (or back into the queue when the
transport makes a repeat harmless), so nothing confirmed is sent twice and
nothing is silently skipped.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import DeliveryError
from .models import FAILURES, Audience, DeliveryStatus, Recipient, SendResult
from .render import MessageFactory, OutgoingMessage


class Ledger(Protocol):
    """What the sender needs from the database."""

    def claim(self, campaign_id: int, holder: str, limit: int) -> list[Recipient]: ...
    def settle(self, campaign_id: int, results: list[SendResult]) -> None: ...
    def release(self, campaign_id: int, subscriber_ids: list[int]) -> None: ...


class Messenger(Protocol):
    """What the sender needs from a transport."""

    name: str
    resend_safe: bool

    @property
    def batch_size(self) -> int: ...
    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]: ...


@dataclass
class Plan:
    """What a send would do, before it does it."""

    campaign: str
    transport: str
    recipients: int
    batch_size: int
    already_settled: int = 0
    audience: Audience = field(default_factory=Audience)

    @property
    def batches(self) -> int:
        return math.ceil(self.recipients / self.batch_size) if self.recipients else 0


@dataclass
class RunReport:
    """What one run did: counts by status, in this run only."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def delivered(self) -> int:
        return self.counts[DeliveryStatus.SENT] + self.counts[DeliveryStatus.QUEUED]

    @property
    def failed(self) -> int:
        return sum(self.counts[s] for s in FAILURES)

    @property
    def unknown(self) -> int:
        return self.counts[DeliveryStatus.UNKNOWN]


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def send_campaign(
    ledger: Ledger,
    transport: Messenger,
    factory: MessageFactory,
    campaign_id: int,
    personalize: Callable[[Recipient], dict[str, str]],
    limit: int | None = None,
    holder: str | None = None,
    on_batch: Callable[[list[SendResult]], None] | None = None,
) -> RunReport:
    """Send every pending delivery of the campaign (up to ``limit``)."""
    holder = holder or holder_id()
    report = RunReport()
    remaining = limit if limit is not None else math.inf
    while remaining > 0:
        size = int(min(transport.batch_size, remaining))
        recipients = ledger.claim(campaign_id, holder, size)
        if not recipients:
            break
        messages = [factory.message(r, personalize(r)) for r in recipients]
        try:
            results = transport.send_batch(messages)
        except DeliveryError:
            # The transport raises only when nothing in the batch was sent: give it back.
            # Anything else (Ctrl-C, a crash) leaves the batch claimed, and the next run
            # settles it as unknown rather than risk a second copy.
            ledger.release(campaign_id, [r.subscriber_id for r in recipients])
            raise
        ledger.settle(campaign_id, results)
        report.counts.update(str(r.status) for r in results)
        remaining -= len(recipients)
        if on_batch:
            on_batch(results)
    return report


def send_test(
    transport: Messenger,
    factory: MessageFactory,
    addresses: list[str],
    personalize: Callable[[Recipient], dict[str, str]],
) -> list[SendResult]:
    """Send marked test copies; they are not recorded as deliveries."""
    recipients = [Recipient(subscriber_id=0, email=a, first_name="") for a in addresses]
    return transport.send_batch([factory.message(r, personalize(r)) for r in recipients])
