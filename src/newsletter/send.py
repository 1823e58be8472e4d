"""`newsletter send` carried out: ``run_send`` takes a ``SendPlan`` (plan.py) and sends it.

``run_send`` makes the transport (its secret is needed from here on), asks the caller's
``confirm``, then runs the campaign under a lease of this sender's own: the ledger gets
the campaign's row, its articles, its web version and its pending deliveries, the loop
of ``dispatch.py`` sends them batch by batch, and the outcome is read back: this run's
counts, the campaign's totals and the exit status they imply. ``send_test_copies``
sends marked copies that are never recorded. The CLI only prompts and prints;
``digest --send`` and a Python caller go through the same calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from .catalog import rehearsal_transports
from .composer import web_version
from .content import article_key
from .delivery import Transport
from .dispatch import Dispatch, RunReport, SendOptions, holder_id, send_test
from .errors import DeliveryError, InputError, SendPaused, TemplateError
from .memory import GiveBack
from .models import SETTLED_OK, Campaign, CampaignStatus, DeliveryStatus, SendResult
from .plan import SendContext, SendPlan, due_times, failed_in, unknown_in
from .render import CompiledCampaign
from .store import CampaignRow, now_iso

EXIT_FAILED_RECIPIENTS = 3  # the send finished, but some recipients were not delivered


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
        return failed_in(self.totals)

    @property
    def campaign_unknown(self) -> int:
        """Recipients whose outcome is unknown: most likely delivered, never resent unasked."""
        return unknown_in(self.totals)

    @property
    def pending(self) -> bool:
        """Recipients are left for another run (a limit, a pause, another sender)."""
        return self.kind is OutcomeKind.SENT and self.status != CampaignStatus.SENT

    @property
    def exit_status(self) -> int:
        if self.kind is OutcomeKind.DECLINED:
            return 1
        if self.campaign_failed:  # a re-run with nothing to send too: they still failed
            return EXIT_FAILED_RECIPIENTS
        return 0


@dataclass(frozen=True, slots=True)
class TestCopy:
    """A marked test copy: where it went and what the transport said."""

    __test__ = False  # not a pytest test class

    address: str
    status: DeliveryStatus
    error: str | None


@dataclass(frozen=True, slots=True)
class CampaignRun:
    """What sending a campaign did: this run's counts, and the campaign's row after it."""

    report: RunReport
    campaign: CampaignRow


def run_send(
    ctx: SendContext,
    plan: SendPlan,
    hooks: SendHooks | None = None,
    *,
    auto_submitted: bool = False,
) -> SendOutcome:
    """Carry out ``plan``: the pending recipients (within its limit), at most once each."""
    hooks = hooks or SendHooks()
    refuse_step(plan)
    if hooks.on_plan is not None:
        hooks.on_plan(plan)
    if plan.already_sent is not None:
        return _outcome(ctx, plan, OutcomeKind.ALREADY_SENT)
    transport = ctx.transports(plan.slug)  # its secret is needed from here on
    try:
        declined = plan.recipients > 0 and hooks.confirm is not None and not hooks.confirm(plan)
    except BaseException:
        transport.close()
        raise
    if declined or plan.recipients == 0:
        transport.close()
        kind = OutcomeKind.DECLINED if declined else OutcomeKind.NOTHING_TO_SEND
        return _outcome(ctx, plan, kind)
    if hooks.on_retry is not None:
        transport.on_retry = hooks.on_retry
    progress = _Progress(plan.recipients, hooks.progress)
    run = send_plan(ctx, plan, transport, on_batch=progress.add, auto_submitted=auto_submitted)
    return _outcome(ctx, plan, OutcomeKind.SENT, run.report)


def refuse_step(plan: SendPlan) -> None:
    """A sequence step goes to each reader when it is due, never to a list at once."""
    campaign = plan.campaign
    if campaign.after is None or plan.sequence_run:
        return
    raise InputError(
        f"{campaign.slug} is a step of the sequence {campaign.sequence}: it is sent to each "
        "reader when it is due, by `newsletter run`, never to the whole list at once.",
        f"`newsletter send {campaign.slug} --test EMAIL` sends a test copy; nothing was sent.",
    )


def send_plan(
    ctx: SendContext,
    plan: SendPlan,
    transport: Transport,
    on_batch: Callable[[list[SendResult]], None] | None = None,
    auto_submitted: bool = False,
) -> CampaignRun:
    """Send the campaign's pending deliveries through ``transport`` (closed after), holding
    a lease of this sender's own; no confirmation is asked."""
    campaign, ledger = plan.campaign, ctx.ledger
    refuse_step(plan)
    step = campaign.after is not None  # its readers are added as they become due
    row = _campaign_row(ctx, campaign, plan.compiled, transport)
    holder = holder_id()
    # Senders share a campaign: each holds a lease of its own, renewed as it goes,
    # and claims recipients row by row; one whose lease lapses is presumed dead.
    lease_prefix = f"sender:{campaign.slug}:"
    lease_seconds = ctx.settings.delivery.lease_seconds
    trim = GiveBack()  # the batches' bodies, freed by the workers that sent them
    with ctx.leases.lease(lease_prefix + holder, lease_seconds, holder) as lease:

        def batch_done(results: list[SendResult]) -> None:
            lease.renew()
            trim.sent(len(results))
            if on_batch:
                on_batch(results)

        started = now_iso()
        try:
            ledger.recover_abandoned(row.id, transport.resend_safe, lease_prefix)
            ledger.requeue(row.id, list(plan.retry))
            if not step:
                due = due_times(campaign) if plan.on_schedule else None
                ledger.enqueue(row, campaign.audience, transport.name, due)
            factory = ctx.compiler.factory(
                plan.compiled, auto_submitted=auto_submitted, carrier=transport.carrier()
            )
            report = Dispatch(
                ledger,
                transport,
                factory,
                row.id,
                ctx.compiler.personalizer(campaign.slug, row.id),
                _options(ctx, plan),
                holder=holder,
                on_batch=batch_done,
            ).run()
            ledger.recover_abandoned(row.id, transport.resend_safe, lease_prefix)
            if not step:  # a step stays `sending` while its sequence has readers to come
                ledger.finish_if_done(row.id)
        except SendPaused:
            if ledger.held(row.id) is None:  # too many failed (a person's pause is kept)
                ledger.pause_for_failures(row.id)
            raise
        finally:
            transport.close()
            if transport.local_files:  # a file written as its reader was being erased
                transport.remove_readers_files(ledger.erased_during(row.id, started))
    return CampaignRun(report, ledger.campaign(campaign.slug) or row)


def send_test_copies(
    ctx: SendContext,
    plan: SendPlan,
    addresses: Iterable[str],
    on_retry: Callable[[str], None] | None = None,
) -> tuple[TestCopy, ...]:
    """Marked test copies of the planned campaign to ``addresses``; nothing is recorded."""
    addresses = list(addresses)
    transport = ctx.transports(plan.slug)
    if on_retry is not None:
        transport.on_retry = on_retry
    results = _send_tests(ctx, plan.compiled, transport, addresses)
    return tuple(
        TestCopy(address, DeliveryStatus(result.status), result.error)
        for address, result in zip(addresses, results, strict=True)
    )


def _campaign_row(
    ctx: SendContext, campaign: Campaign, compiled: CompiledCampaign, transport: Transport
) -> CampaignRow:
    """The campaign's row, ready for a real send: a rehearsal kept as a summary, the
    articles recorded, the web version stored (a resumed send keeps the first)."""
    ledger = ctx.ledger
    row = ledger.ensure_campaign(campaign.slug, campaign.subject)
    if ledger.only_rehearsed(row, transport.name, rehearsal_transports()):
        # it was only rehearsed so far: that is kept as a summary; now the real send
        ledger.archive_rehearsal(row)
        row = ledger.campaign(campaign.slug) or row
    if campaign.after is None:  # a sequence step's articles stay new for the digest
        ledger.record_campaign_articles(row.id, [article_key(a) for a in campaign.articles])
    if ledger.campaign_page(campaign.slug) is None:
        try:
            subject, html = web_version(compiled, ctx.settings.public_url)
        except TemplateError:  # `check` warns of it; readers still get their email
            pass
        else:
            ledger.save_campaign_page(
                row.id, subject, campaign.preheader, html, in_archive=campaign.archive
            )
    return row


def _options(ctx: SendContext, plan: SendPlan) -> SendOptions:
    d = ctx.settings.delivery
    return SendOptions(
        concurrency=d.concurrency,
        rate_limit=float(d.rate_limit),
        limit=plan.limit,
        max_failure_rate=float(d.max_failure_rate),
        max_lost_in_a_row=d.max_lost_in_a_row,
        now=plan.now,
    )


def _send_tests(
    ctx: SendContext, compiled: CompiledCampaign, transport: Transport, addresses: list[str]
) -> list[SendResult]:
    """Marked test copies to ``addresses``; nothing is recorded as a delivery."""
    compiler = ctx.compiler
    try:
        return send_test(
            transport,
            compiler.factory(compiled, test=True, carrier=transport.carrier()),
            [compiler.sendable_address(a) for a in addresses],
            compiler.personalizer(compiled.slug),
        )
    except DeliveryError as exc:
        raise DeliveryError(
            f"The test copy could not be sent: {exc.message}",
            "Nothing was recorded: a test copy is not a delivery. Check [delivery] in "
            f"{ctx.settings.path} and the provider, then run the same `send --test` again.",
        ) from None
    finally:
        transport.close()


def _outcome(
    ctx: SendContext, plan: SendPlan, kind: OutcomeKind, report: RunReport | None = None
) -> SendOutcome:
    report = report or RunReport()
    row = ctx.ledger.campaign(plan.slug)
    return SendOutcome(
        plan.slug,
        plan.transport,
        kind,
        row.status if row else None,
        ctx.ledger.delivery_counts(row.id) if row else {},
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
