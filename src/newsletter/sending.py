"""`newsletter send` as two library calls: prepare a plan, then run it.

``prepare_send`` compiles the campaign and decides whether it may go out (errors of
`check` stop a real send; the outbox, a rehearsal, goes on with a warning unless some
readers' email cannot be built), then reads the ledger: the campaign was already sent,
or went only to the outbox so far, and how many recipients this run has, in how many
batches, how long at the configured rate. Nothing is sent and no secret is needed.

``run_send`` makes the transport (its secret is needed from here on), asks the
caller's ``confirm``, sends through ``Project.send`` reporting progress to a callback,
and returns a ``SendOutcome``: this run's counts, the campaign's totals, and the exit
status they imply. The CLI only prompts and prints; ``digest --send`` and a Python
caller go through the same two calls (``sender.py`` is the loop underneath).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from .catalog import rehearsal_transports, transport_class
from .checks import Problem
from .errors import NewsletterError
from .models import FAILURES, SETTLED_OK, Campaign, CampaignStatus, DeliveryStatus, SendResult
from .render import CompiledCampaign
from .sender import RunReport

if TYPE_CHECKING:
    from .project import Project

EXIT_FAILED_RECIPIENTS = 3  # the send finished, but some recipients were not delivered
SAMPLE_SIZE = 5  # recipients' addresses a plan shows


@dataclass(frozen=True, slots=True)
class AlreadySent:
    """The campaign went out before: a plain ``send`` has nothing to do."""

    finished_at: str | None
    totals: dict[str, int]  # deliveries by status

    @property
    def failed(self) -> int:
        return sum(self.totals.get(str(s), 0) for s in FAILURES)

    @property
    def unknown(self) -> int:
        return self.totals.get(str(DeliveryStatus.UNKNOWN), 0)


@dataclass(frozen=True, slots=True)
class SendPlan:
    """What a send would do, before it does anything."""

    campaign: Campaign
    compiled: CompiledCampaign
    transport: str
    recipients: int  # this run: the pending ones (and those to retry), within ``limit``
    batch_size: int
    concurrency: int = 1
    rate_limit: float = 0.0  # messages per second; 0: the provider's own pace
    retry: tuple[DeliveryStatus, ...] = ()
    limit: int | None = None
    already_settled: int = 0  # deliveries of the campaign settled by earlier runs
    already_sent: AlreadySent | None = None
    rehearsed: int | None = None  # messages an outbox rehearsal wrote, before a real send
    outbox_errors: tuple[Problem, ...] = ()  # errors a rehearsal to the outbox goes on with
    warnings: tuple[Problem, ...] = ()  # worth a word before sending: unknown tags, examples
    sample: tuple[str, ...] = ()  # the first few recipients' addresses, for a first send

    @property
    def slug(self) -> str:
        return self.campaign.slug

    @property
    def batches(self) -> int:
        return math.ceil(self.recipients / self.batch_size) if self.recipients else 0

    @property
    def estimated_seconds(self) -> float | None:
        """At the configured rate; None when the rate is the provider's to set."""
        return self.recipients / self.rate_limit if self.rate_limit else None


@dataclass(frozen=True, slots=True)
class SendProgress:
    """Where a run stands, after each settled batch (and once, at 0, before the first)."""

    total: int  # recipients this run
    batch: int  # settled by the batch just done
    delivered: int  # so far this run: sent or queued
    not_delivered: int  # so far this run: anything else
    elapsed: float  # seconds since the run began

    @property
    def rate(self) -> float:
        return (self.delivered + self.not_delivered) / max(self.elapsed, 1e-6)


@dataclass(frozen=True, slots=True)
class SendHooks:
    """How a run talks to whoever started it; each one optional."""

    on_plan: Callable[[SendPlan], None] | None = None  # the plan, before anything happens
    confirm: Callable[[SendPlan], bool] | None = None  # asked before the first batch
    progress: Callable[[SendProgress], None] | None = None
    on_retry: Callable[[str], None] | None = None  # a request the transport tries again


class OutcomeKind(StrEnum):
    SENT = "sent"  # the run worked through its recipients (some may have failed)
    ALREADY_SENT = "already sent"  # nothing to do: the campaign went out before
    NOTHING_TO_SEND = "nothing to send"  # no recipient pending
    DECLINED = "declined"  # ``confirm`` said no: nothing was sent


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What a run did, and what the campaign's ledger says after it."""

    campaign: str
    transport: str
    kind: OutcomeKind
    status: CampaignStatus | None  # the campaign's status after the run; None: never started
    totals: dict[str, int] = field(default_factory=dict)  # deliveries by status
    delivered: int = 0  # this run
    failed: int = 0  # this run: rejected, invalid, failed
    unknown: int = 0  # this run

    @property
    def campaign_failed(self) -> int:
        """Recipients the campaign definitely did not reach (rejected, invalid, failed)."""
        return sum(self.totals.get(str(s), 0) for s in FAILURES)

    @property
    def campaign_unknown(self) -> int:
        """Recipients whose outcome is unknown: most likely delivered, never resent unasked."""
        return self.totals.get(str(DeliveryStatus.UNKNOWN), 0)

    @property
    def pending(self) -> bool:
        """Recipients are left for another run (a limit, a pause, another sender)."""
        return self.kind is OutcomeKind.SENT and self.status != CampaignStatus.SENT

    @property
    def exit_status(self) -> int:
        if self.kind is OutcomeKind.DECLINED:
            return 1
        if self.kind is OutcomeKind.SENT and self.campaign_failed:
            return EXIT_FAILED_RECIPIENTS
        return 0


@dataclass(frozen=True, slots=True)
class TestCopy:
    """A marked test copy: where it went and what the transport said."""

    __test__ = False  # not a pytest test class

    address: str
    status: DeliveryStatus
    error: str | None


def retry_statuses(failed: bool = False, unknown: bool = False) -> tuple[DeliveryStatus, ...]:
    """The settled statuses a send may try again: ``failed`` (--retry-failed) the definite
    failures (rejected, invalid, failed); ``unknown`` (--retry-unknown) those that may have
    been delivered, and may get a second copy."""
    return (*(sorted(FAILURES) if failed else ()), *((DeliveryStatus.UNKNOWN,) if unknown else ()))


def prepare_send(
    project: Project,
    name: str,
    *,
    retry: Iterable[DeliveryStatus] = (),
    limit: int | None = None,
) -> SendPlan:
    """The plan for sending campaign ``name``; a NewsletterError when it is not ready."""
    campaign = project.campaign(name)
    compiled = project.compile(campaign)
    project.check_sendable()
    problems = project.check_compiled(campaign, compiled, every_reader=False)
    settings = project.settings
    transport = settings.transport
    rehearsal = transport_class(transport).rehearsal
    errors = tuple(p for p in problems if p.level == "error")
    # The outbox is a rehearsal: it only warns, except when some readers' email cannot be built.
    if errors and (not rehearsal or any(p.code == "does-not-build" for p in errors)):
        raise NewsletterError(
            f"{campaign.slug} is not ready to send: " + "; ".join(p.message for p in errors),
            f"`newsletter check {campaign.slug}` shows where. Nothing was sent.",
        )
    retry = tuple(retry)
    delivery = settings.delivery
    rate = float(delivery.rate_limit)
    store = project.store
    row = store.ledger.campaign(campaign.slug)
    rehearsed = None
    if row is not None and store.ledger.only_rehearsed(row, transport, rehearsal_transports()):
        rehearsed = store.ledger.delivery_counts(row.id).get("sent", 0)
    already_sent = None
    if row is None or row.status == CampaignStatus.DRAFT or rehearsed is not None:
        recipients, settled = store.subscribers.count_audience(campaign.audience), 0
    elif row.status == CampaignStatus.SENT and not retry:
        already_sent = AlreadySent(row.finished_at, store.ledger.delivery_counts(row.id))
        recipients, settled = 0, sum(already_sent.totals.values())
    else:
        counts = store.ledger.delivery_counts(row.id)
        recipients = sum(counts.get(str(s), 0) for s in ("pending", "sending", *retry))
        settled = sum(counts.values()) - recipients
    if limit:
        recipients = min(recipients, limit)
    return SendPlan(
        campaign,
        compiled,
        transport,
        recipients,
        project.batch_size(),
        concurrency=delivery.concurrency,
        rate_limit=rate,
        retry=retry,
        limit=limit,
        already_settled=settled,
        already_sent=already_sent,
        rehearsed=rehearsed,
        outbox_errors=errors,
        warnings=tuple(
            p
            for p in problems
            if p.code == "unknown-tag" or (p.code == "example-setting" and not rehearsal)
        ),
        sample=tuple(store.subscribers.audience_sample(campaign.audience, SAMPLE_SIZE))
        if settled == 0 and already_sent is None
        else (),
    )


def run_send(
    project: Project,
    plan: SendPlan,
    hooks: SendHooks | None = None,
    *,
    auto_submitted: bool = False,
) -> SendOutcome:
    """Carry out ``plan``: the pending recipients (within its limit), at most once each."""
    hooks = hooks or SendHooks()
    if hooks.on_plan is not None:
        hooks.on_plan(plan)
    if plan.already_sent is not None:
        return _outcome(project, plan, OutcomeKind.ALREADY_SENT)
    transport = project.transport(plan.slug)  # its secret is needed from here on
    try:
        declined = plan.recipients > 0 and hooks.confirm is not None and not hooks.confirm(plan)
    except BaseException:
        transport.close()
        raise
    if declined or plan.recipients == 0:
        transport.close()
        kind = OutcomeKind.DECLINED if declined else OutcomeKind.NOTHING_TO_SEND
        return _outcome(project, plan, kind)
    if hooks.on_retry is not None:
        transport.on_retry = hooks.on_retry
    progress = _Progress(plan.recipients, hooks.progress)
    run = project.send(
        plan.campaign,
        plan.compiled,
        transport,
        list(plan.retry),
        plan.limit,
        on_batch=progress.add,
        auto_submitted=auto_submitted,
    )
    return _outcome(project, plan, OutcomeKind.SENT, run.report)


def send_test_copies(
    project: Project,
    plan: SendPlan,
    addresses: Iterable[str],
    on_retry: Callable[[str], None] | None = None,
) -> tuple[TestCopy, ...]:
    """Marked test copies of the planned campaign to ``addresses``; nothing is recorded."""
    addresses = list(addresses)
    transport = project.transport(plan.slug)
    if on_retry is not None:
        transport.on_retry = on_retry
    results = project.send_tests(plan.compiled, transport, addresses)
    return tuple(
        TestCopy(address, DeliveryStatus(result.status), result.error)
        for address, result in zip(addresses, results, strict=True)
    )


def _outcome(
    project: Project, plan: SendPlan, kind: OutcomeKind, report: RunReport | None = None
) -> SendOutcome:
    report = report or RunReport()
    row = project.store.ledger.campaign(plan.slug)
    return SendOutcome(
        plan.slug,
        plan.transport,
        kind,
        row.status if row else None,
        project.store.ledger.delivery_counts(row.id) if row else {},
        report.delivered,
        report.failed,
        report.unknown,
    )


class _Progress:
    """Running totals of a run, handed to the caller's callback after each batch."""

    def __init__(self, total: int, report: Callable[[SendProgress], None] | None) -> None:
        self.total = total
        self.report = report
        self.started = time.monotonic()
        self.delivered = 0
        self.not_delivered = 0
        self._tell(0)

    def add(self, results: list[SendResult]) -> None:
        for result in results:
            if result.status in SETTLED_OK:
                self.delivered += 1
            else:
                self.not_delivered += 1
        self._tell(len(results))

    def _tell(self, batch: int) -> None:
        if self.report is not None:
            elapsed = time.monotonic() - self.started
            self.report(
                SendProgress(self.total, batch, self.delivered, self.not_delivered, elapsed)
            )
