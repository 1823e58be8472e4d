"""The send loop: claim a batch, send it, settle it, with several in flight.

This is where the provider is called (``transport.send_batch``, on worker threads) and
where the ledger is written for each batch (claim, settle, release). ``send.py`` runs
it for a campaign; ``plan.py`` says beforehand what a run would do.

The ledger makes sending at-most-once per (campaign, subscriber): a batch is
claimed (``sending``) in the database before its request is made and settled
after the answer. A process killed in between leaves ``sending`` rows that
the next run turns into ``unknown`` (or back into ``pending`` when the
transport makes a repeat harmless), so nothing confirmed is sent twice and
nothing is silently skipped. Right before a batch goes to the transport its
readers' statuses are read again: anyone erased or unsubscribed since the
claim is settled ``skipped`` and their message is dropped.

Only this thread touches the database; worker threads only run
``transport.send_batch``. A token bucket keeps the average rate at
``rate_limit`` messages per second, and at most ``concurrency`` batches are
in flight.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from .errors import CampaignHeld, DeliveryError, NewsletterError, RecipientError, SendPaused
from .models import FAILURES, CampaignStatus, DeliveryStatus, Recipient, SendResult
from .render import MessageFactory, OutgoingMessage


class Ledger(Protocol):
    """What the sender needs from the database."""

    def claim(
        self,
        campaign_id: int,
        holder: str,
        limit: int,
        transport: str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Recipient]: ...
    def held(self, campaign_id: int) -> CampaignStatus | None: ...
    def inactive(self, subscriber_ids: list[int]) -> dict[int, str]: ...
    def settle(self, campaign_id: int, results: list[SendResult]) -> None: ...
    def release(self, campaign_id: int, subscriber_ids: list[int]) -> None: ...


class Messenger(Protocol):
    """What the sender needs from a transport."""

    name: str
    resend_safe: bool
    shared_body: bool

    @property
    def batch_size(self) -> int: ...
    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]: ...


@dataclass(frozen=True, slots=True)
class SendOptions:
    concurrency: int = 1
    rate_limit: float = 0.0  # messages per second; 0 = as fast as the provider answers
    limit: int | None = None
    max_failure_rate: float = 0.2  # 0 = never pause
    max_lost_in_a_row: int = 3  # requests in a row whose answer was lost; 0 = never pause
    failure_sample: int = 50  # settled recipients before the failure rate is judged
    now: dt.datetime | None = None  # deliveries due by then are sent (None: the real time)


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run did: counts by status, in this run only."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def settled(self) -> int:
        return sum(self.counts.values())

    @property
    def delivered(self) -> int:
        return self.counts[DeliveryStatus.SENT] + self.counts[DeliveryStatus.QUEUED]

    @property
    def failed(self) -> int:
        return sum(self.counts[s] for s in FAILURES)

    @property
    def unknown(self) -> int:
        return self.counts[DeliveryStatus.UNKNOWN]


class TokenBucket:
    """Average ``rate`` tokens a second, bursts up to one second's worth (or one batch)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = rate
        self.updated = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int) -> float:
        """Take ``n`` tokens, waiting until the bucket has paid for them; the wait."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= n
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


def batch_size(provider_max: int, configured: int | None, rate_limit: float) -> int:
    """Messages per batch: the configured size within the provider's maximum, and at a
    rate limit no more than one second's worth, so that progress moves every second."""
    size = min(configured or provider_max, provider_max)
    return min(size, max(1, int(rate_limit))) if rate_limit > 0 else size


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatch:
    """One run of the loop; ``Dispatch(...).run()`` sends every pending delivery of the
    campaign, up to ``options.limit``: claim a batch, build its messages, pace it, drop the
    readers no longer wanted, hand it to the transport, settle the answers, decide whether
    to pause.

    Only ``run``'s thread touches the ledger; the pool's threads only call the transport.
    """

    def __init__(
        self,
        ledger: Ledger,
        transport: Messenger,
        factory: MessageFactory,
        campaign_id: int,
        personalize: Callable[[Recipient], dict[str, str]],
        options: SendOptions | None = None,
        holder: str | None = None,
        on_batch: Callable[[list[SendResult]], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.transport = transport
        self.factory = factory
        self.campaign_id = campaign_id
        self.personalize = personalize
        self.options = options = options or SendOptions()
        self.holder = holder or holder_id()
        self.on_batch = on_batch
        self.report = RunReport()
        self.bucket = TokenBucket(options.rate_limit)
        self.remaining: float = options.limit if options.limit is not None else math.inf
        self.in_flight: dict[Future[list[SendResult]], list[Recipient]] = {}
        self.stop: NewsletterError | None = None
        self.exhausted = False
        self.lost_in_a_row = 0  # requests settled one after another with no answer

    def run(self) -> RunReport:
        """Work through the pending deliveries; a pause or a transport error is raised once
        the batches in flight are settled."""
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="send")
        try:
            while True:
                self._fill(pool)
                if not self.in_flight:
                    break
                self._settle_done()
        except BaseException:
            self._wind_down()
            raise
        finally:
            pool.shutdown(wait=True)
        if self.stop is not None:
            raise self.stop
        return self.report

    def _may_claim(self) -> bool:
        return (
            self.stop is None
            and not self.exhausted
            and self.remaining > 0
            and len(self.in_flight) < self.options.concurrency
        )

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        """Claim and submit batches until ``concurrency`` are in flight or none is left."""
        while self._may_claim():
            recipients = self._claim()
            if not recipients:
                self.exhausted = True
                return
            messages = self._build(recipients)
            if not messages:
                continue
            self.bucket.acquire(len(messages))
            messages = self._still_wanted(messages)
            if messages:
                self._submit(pool, recipients, messages)

    def _claim(self) -> list[Recipient]:
        """The next batch, marked ``sending`` in the ledger before any request is made;
        none once a person paused or cancelled the campaign."""
        held = self.ledger.held(self.campaign_id)
        if held is not None:
            self.stop = self.stop or _held(held)
            return []
        size = batch_size(self.transport.batch_size, None, self.options.rate_limit)
        recipients = self.ledger.claim(
            self.campaign_id,
            self.holder,
            int(min(size, self.remaining)),
            transport=self.transport.name,
            now=self.options.now,
        )
        self.remaining -= len(recipients)
        return recipients

    def _build(self, recipients: list[Recipient]) -> list[OutgoingMessage]:
        """The batch's messages; the readers whose message cannot be built are settled now."""
        try:
            messages, refused = build_messages(self.factory, self.personalize, recipients)
        except BaseException:
            self.ledger.release(self.campaign_id, [r.subscriber_id for r in recipients])
            raise
        if refused:  # these readers alone: settled now, never sent
            self._settle([], refused)
        return messages

    def _still_wanted(self, messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
        """The messages whose readers are still active, asked just before they go.

        A batch is claimed, built and paced before it is handed to the transport; a
        reader erased or unsubscribed meanwhile is settled ``skipped`` and their
        message, built in memory, is dropped.
        """
        gone = self.ledger.inactive([m.recipient.subscriber_id for m in messages])
        if not gone:
            return messages
        self._settle(
            [], [SendResult(sid, DeliveryStatus.SKIPPED, error=why) for sid, why in gone.items()]
        )
        return [m for m in messages if m.recipient.subscriber_id not in gone]

    def _submit(
        self,
        pool: ThreadPoolExecutor,
        recipients: list[Recipient],
        messages: list[OutgoingMessage],
    ) -> None:
        """Hand the batch to a worker (one per variant for transports that share a body)."""
        groups = _by_variant(messages) if self.transport.shared_body else [messages]
        for group in groups:
            by_id = {m.recipient.subscriber_id for m in group}
            self.in_flight[pool.submit(_send_batch, self.transport, group)] = [
                r for r in recipients if r.subscriber_id in by_id
            ]

    def _settle_done(self) -> None:
        """Settle the batches that came back; the first error or pause stops the claiming."""
        done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            recipients = self.in_flight.pop(future)
            try:
                results = future.result()
            except DeliveryError as exc:
                # nothing of this batch was sent beyond what the error says was
                self._settle(recipients, exc.partial)
                self.stop = self.stop or exc
                continue
            self._settle(recipients, results)
            self._count_lost(results)
            if self.stop is None:
                self.stop = _pause_for(self.report, self.options) or _pause_for_lost(
                    self.lost_in_a_row, self.options
                )

    def _count_lost(self, results: list[SendResult]) -> None:
        """One more lost request in a row when no message of it got an answer; any
        answer starts the count again."""
        lost = bool(results) and all(r.status is DeliveryStatus.UNKNOWN for r in results)
        self.lost_in_a_row = self.lost_in_a_row + 1 if lost else 0

    def _wind_down(self) -> None:
        """Ctrl-C or a crash: batches not yet started go back; those under way finish."""
        for future, recipients in list(self.in_flight.items()):
            if future.cancel():
                self.ledger.release(self.campaign_id, [r.subscriber_id for r in recipients])
                continue
            try:
                self._settle(recipients, future.result())
            except DeliveryError as exc:
                self._settle(recipients, exc.partial)
            except BaseException:  # left claimed: the next run settles them as unknown
                continue

    def _settle(self, recipients: list[Recipient], results: list[SendResult]) -> None:
        """Record the answers; claimed readers the transport did not answer go back."""
        self.ledger.settle(self.campaign_id, results)
        answered = {r.subscriber_id for r in results}
        unanswered = [r.subscriber_id for r in recipients if r.subscriber_id not in answered]
        if unanswered:  # the transport stopped before these: they were not sent
            self.ledger.release(self.campaign_id, unanswered)
        self.report.counts.update(str(r.status) for r in results)
        if self.on_batch and results:
            self.on_batch(results)


def build_messages(
    factory: MessageFactory,
    personalize: Callable[[Recipient], dict[str, str]],
    recipients: list[Recipient],
) -> tuple[list[OutgoingMessage], list[SendResult]]:
    """Each reader's message; a reader whose message cannot be built is a result instead.

    One bad record (an address the transport cannot carry, a template expression
    that fails on that reader's data) never stops the send for anyone else.
    """
    messages: list[OutgoingMessage] = []
    refused: list[SendResult] = []
    for recipient in recipients:
        try:
            messages.append(factory.message(recipient, personalize(recipient)))
        except RecipientError as exc:
            refused.append(
                SendResult(recipient.subscriber_id, DeliveryStatus.INVALID, error=exc.message)
            )
    return messages, refused


def _by_variant(messages: list[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """The messages grouped by campaign variant, for transports that share one body."""
    groups: dict[int, list[OutgoingMessage]] = {}
    for message in messages:
        groups.setdefault(message.variant.number, []).append(message)
    return list(groups.values())


def _send_batch(transport: Messenger, messages: list[OutgoingMessage]) -> list[SendResult]:
    """``transport.send_batch``, where an unexpected exception becomes a DeliveryError.

    The transport may have sent part of the batch before it failed, so those
    messages are ``unknown``: never sent twice without ``--retry-unknown``.
    """
    try:
        return transport.send_batch(messages)
    except DeliveryError:
        raise
    except Exception as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
        raise DeliveryError(
            f"The {transport.name} transport failed unexpectedly ({problem}).",
            "The messages of that batch may or may not have gone out, so they are recorded "
            "as unknown and will not be sent again without --retry-unknown. Please report "
            "this problem with the output of the same command run with NEWSLETTER_DEBUG=1.",
            partial=[
                SendResult(
                    m.recipient.subscriber_id,
                    DeliveryStatus.UNKNOWN,
                    error=f"the transport failed unexpectedly: {problem}",
                )
                for m in messages
            ],
        ) from exc


def _held(status: CampaignStatus) -> CampaignHeld:
    if status is CampaignStatus.CANCELLED:
        return CampaignHeld(
            "The campaign was cancelled (`newsletter schedule cancel`); the send stopped.",
            "Nobody else gets it. The recipients already sent to are in `newsletter report`.",
        )
    return CampaignHeld(
        "The campaign was paused (`newsletter schedule pause`); the send stopped before its "
        "next batch.",
        "`newsletter schedule resume CAMPAIGN` lets the next `run` (or `send`) go on where "
        "it stopped; nobody gets it twice.",
    )


def _pause_for(report: RunReport, options: SendOptions) -> SendPaused | None:
    """Why to stop before working through the rest of the list, if there is a reason.

    Only definite failures (rejected, invalid, failed) count as not delivered. An
    ``unknown`` answer (the connection dropped after the request went out) most likely
    was delivered: ``_pause_for_lost`` judges those.
    """
    limit = options.max_failure_rate
    if not limit or report.settled < options.failure_sample:
        return None
    if report.failed / report.settled > limit:
        return SendPaused(
            f"{report.failed} of the {report.settled} recipients settled so far in this run "
            f"were not delivered (rejected, invalid or failed), more than {limit:.0%}; the "
            "send was paused.",
            "`newsletter report` shows the errors. Fix their cause (the list, the sender "
            "domain, the provider account), then run the same send again to continue; raise "
            "[delivery] max_failure_rate to allow more.",
        )
    return None


def _pause_for_lost(lost_in_a_row: int, options: SendOptions) -> SendPaused | None:
    """A pause once ``max_lost_in_a_row`` requests in a row lost their answer.

    One dropped connection is bad luck: its readers are ``unknown`` (most likely
    delivered, never sent again unasked) and the send goes on, however many readers the
    request carried. Several in a row mean the network or the provider is in trouble.
    """
    limit = options.max_lost_in_a_row
    if not limit or lost_in_a_row < limit:
        return None
    return SendPaused(
        f"The answers to the last {lost_in_a_row} requests in a row were lost: the "
        "connection dropped after they went out, so their recipients most likely got the "
        "email and are recorded as unknown. The send was paused.",
        "Check the network and the provider's status and activity log, then run the same "
        "send again to continue. Those recipients are not sent to again unless you add "
        "--retry-unknown, which may give some of them a second copy; [delivery] "
        "max_lost_in_a_row sets how many lost requests in a row pause a send.",
    )


def send_test(
    transport: Messenger,
    factory: MessageFactory,
    addresses: list[str],
    personalize: Callable[[Recipient], dict[str, str]],
) -> list[SendResult]:
    """Send marked test copies; they are not recorded as deliveries."""
    recipients = [Recipient(subscriber_id=0, email=a, first_name="") for a in addresses]
    return transport.send_batch([factory.message(r, personalize(r)) for r in recipients])
