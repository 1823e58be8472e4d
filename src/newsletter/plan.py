"""What a send would do, before it does anything: ``prepare_send`` → ``SendPlan``.

It compiles the campaign and decides whether it may go out (errors of `check` stop a
real send; a rehearsal transport, such as the outbox, goes on with a warning unless
some readers' email cannot be built), then reads the ledger: the campaign was already
sent, or was only rehearsed so far, and how many recipients this run has, in how many
batches, how long at the configured rate. Nothing is sent, nothing is written and no
secret is needed. ``send.py`` carries a plan out; ``dispatch.py`` is the loop under it.

The use cases take what they use, gathered in a ``SendContext``: the settings, the
store's parts, what makes a transport and what compiles a campaign (``Compiler``, a
protocol a ``Project`` fulfils).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .campaigns import describe_time, send_at_in_past
from .catalog import make_transport, rehearsal_transports, transport_class
from .checks import Problem
from .config import Settings
from .dispatch import batch_size
from .errors import ConfigError, NewsletterError
from .models import FAILURES, Campaign, CampaignStatus, DeliveryStatus, Recipient
from .render import CompiledCampaign, MessageFactory
from .zones import UTC, DueTimes, zone

if TYPE_CHECKING:
    from .addresses import Carrier
    from .delivery import Transport
    from .store import CampaignRow, Leases, Ledger, Store, Subscribers

SAMPLE_SIZE = 5  # recipients' addresses a plan shows


class Compiler(Protocol):
    """What a send needs of the campaigns: one loaded by name, compiled and checked, and
    each reader's message made from it. A ``Composer`` fulfils it."""

    def campaign(self, name: str) -> Campaign: ...
    def compile(self, campaign: Campaign) -> CompiledCampaign: ...
    def check_compiled(
        self, campaign: Campaign, compiled: CompiledCampaign, *, every_reader: bool
    ) -> list[Problem]: ...
    def factory(
        self,
        compiled: CompiledCampaign,
        test: bool = False,
        auto_submitted: bool = False,
        carrier: Carrier | None = None,
    ) -> MessageFactory: ...
    def personalizer(
        self, campaign_slug: str, campaign_id: int = 0
    ) -> Callable[[Recipient], dict[str, str]]: ...
    def sendable_address(self, address: str) -> str: ...


class HasSendParts(Protocol):
    """Settings, a store and a ``Compiler``: what ``SendContext.of`` reads of a ``Project``."""

    settings: Settings

    @property
    def store(self) -> Store: ...

    @property
    def composer(self) -> Compiler: ...


@dataclass(frozen=True, slots=True)
class SendContext:
    """What the send use cases take: the settings, the store's parts they read and write,
    what compiles a campaign, and what makes the configured transport for a campaign."""

    settings: Settings
    ledger: Ledger
    subscribers: Subscribers
    leases: Leases
    compiler: Compiler
    transports: Callable[[str], Transport]  # campaign slug -> the configured transport

    @classmethod
    def of(cls, project: HasSendParts) -> SendContext:
        """The parts of a ``Project`` a send uses; nothing else of it is reached."""
        settings, store = project.settings, project.store

        def transports(slug: str) -> Transport:
            return make_transport(settings, slug)

        return cls(
            settings, store.ledger, store.subscribers, store.leases, project.composer, transports
        )


@dataclass(frozen=True, slots=True)
class AlreadySent:
    """The campaign went out before: a plain ``send`` has nothing to do."""

    finished_at: str | None
    totals: dict[str, int]  # deliveries by status

    @property
    def failed(self) -> int:
        return failed_in(self.totals)

    @property
    def unknown(self) -> int:
        return unknown_in(self.totals)


def failed_in(totals: dict[str, int]) -> int:
    """Deliveries that definitely did not reach their reader (rejected, invalid, failed)."""
    return sum(totals.get(str(s), 0) for s in FAILURES)


def unknown_in(totals: dict[str, int]) -> int:
    """Deliveries whose outcome is unknown: most likely delivered, never resent unasked."""
    return totals.get(str(DeliveryStatus.UNKNOWN), 0)


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
    started: bool = False  # the ledger has the campaign's deliveries (it began before)
    now: dt.datetime | None = None  # deliveries due by then go (None: the real time)
    on_schedule: bool = False  # a `local_time` campaign's readers each wait for their time
    # a sequence step's plan made by ``sequences.run_sequences``: only such a plan sends
    # a step (to the readers it found due), never a plain ``send``
    sequence_run: bool = False

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
class _Ledgered:
    """What the ledger says of this run: recipients, those settled before, and why not."""

    recipients: int
    settled: int = 0
    already_sent: AlreadySent | None = None
    rehearsed: int | None = None
    started: bool = False


def retry_statuses(failed: bool = False, unknown: bool = False) -> tuple[DeliveryStatus, ...]:
    """The settled statuses a send may try again: ``failed`` (--retry-failed) the definite
    failures (rejected, invalid, failed); ``unknown`` (--retry-unknown) those that may have
    been delivered, and may get a second copy."""
    return (*(sorted(FAILURES) if failed else ()), *((DeliveryStatus.UNKNOWN,) if unknown else ()))


def check_sendable(settings: Settings) -> None:
    """Refuse a real send without the footer details the law and inboxes require."""
    rehearsal = transport_class(settings.transport).rehearsal
    if not rehearsal and not settings.get("newsletter", "postal_address"):
        raise ConfigError(
            f"[newsletter] postal_address is not set in {settings.path}.",
            "Bulk email must carry the sender's physical postal address (CAN-SPAM); "
            'add postal_address = "..." before sending.',
        )
    settings.public_url  # noqa: B018 - raises a ConfigError naming the key when unset


def planned_batch_size(settings: Settings) -> int:
    """Messages per batch: ``[delivery] batch_size`` within the transport's maximum."""
    d = settings.delivery
    return batch_size(transport_class(d.transport).max_batch, d.batch_size, float(d.rate_limit))


def prepare_send(
    ctx: SendContext,
    name: str,
    *,
    retry: Iterable[DeliveryStatus] = (),
    limit: int | None = None,
    now: dt.datetime | None = None,
    on_schedule: bool = False,
    sequence_run: bool = False,
) -> SendPlan:
    """The plan for sending campaign ``name``; a NewsletterError when it is not ready, or
    when a person paused or cancelled it (`newsletter schedule`).

    ``now``: the time the send runs as (the deliveries due by then go); ``on_schedule``:
    a ``local_time`` campaign's readers each get their own due time (`newsletter run`),
    rather than all going now; ``sequence_run``: the plan of ``sequences.run_sequences``
    for a step."""
    campaign = ctx.compiler.campaign(name)
    refuse_if_held(ctx, campaign.slug)
    compiled = ctx.compiler.compile(campaign)
    check_sendable(ctx.settings)
    problems = ctx.compiler.check_compiled(campaign, compiled, every_reader=False)
    transport = ctx.settings.transport
    rehearsal = transport_class(transport).rehearsal
    errors = _readiness(campaign, problems, rehearsal)
    retry = tuple(retry)
    ledgered = _ledgered(ctx, campaign, transport, retry)
    delivery = ctx.settings.delivery
    first = ledgered.settled == 0 and ledgered.already_sent is None and campaign.after is None
    return SendPlan(
        campaign,
        compiled,
        transport,
        min(ledgered.recipients, limit) if limit else ledgered.recipients,
        planned_batch_size(ctx.settings),
        concurrency=delivery.concurrency,
        rate_limit=float(delivery.rate_limit),
        retry=retry,
        limit=limit,
        already_settled=ledgered.settled,
        already_sent=ledgered.already_sent,
        rehearsed=ledgered.rehearsed,
        outbox_errors=errors,
        warnings=tuple(
            p
            for p in problems
            if p.code == "unknown-tag" or (p.code == "example-setting" and not rehearsal)
        ),
        sample=tuple(ctx.subscribers.audience_sample(campaign.audience, SAMPLE_SIZE))
        if first
        else (),
        started=ledgered.started,
        now=now,
        on_schedule=on_schedule,
        sequence_run=sequence_run,
    )


def refuse_if_held(ctx: SendContext, slug: str) -> None:
    """A NewsletterError when a person paused or cancelled the campaign."""
    row = ctx.ledger.campaign(slug)
    held = ctx.ledger.held(row.id) if row is not None else None
    if held is CampaignStatus.CANCELLED:
        raise NewsletterError(
            f"{slug} was cancelled (`newsletter schedule cancel`); it is not sent again.",
            "To send this text after all, save it as a new campaign file (a new slug) and "
            "send that. Nothing was sent.",
        )
    if held is CampaignStatus.PAUSED:
        raise NewsletterError(
            f"{slug} is paused (`newsletter schedule pause`).",
            f"Run `newsletter schedule resume {slug}` first; then `newsletter run` (or this "
            "send) goes on where it stopped, nobody twice. Nothing was sent.",
        )


def fallback_zone(campaign: Campaign) -> dt.tzinfo:
    """The zone of readers without one, for a ``local_time`` campaign: send_at's named
    zone, else its offset."""
    named = zone(campaign.send_zone) if campaign.send_zone else None
    if named is not None:
        return named
    return (campaign.send_at.tzinfo if campaign.send_at else None) or UTC


def due_times(campaign: Campaign) -> DueTimes | None:
    """Each reader's due time of a ``local_time`` campaign (None for any other)."""
    if not campaign.local_time or campaign.send_at is None:
        return None
    return DueTimes(campaign.send_at, fallback_zone(campaign))


def first_due(subscribers: Subscribers, campaign: Campaign) -> dt.datetime | None:
    """When the campaign's first reader is due: send_at, or for ``local_time`` the
    earliest of its readers' times (None: not scheduled)."""
    due = due_times(campaign)
    if due is None or campaign.send_at is None:
        return campaign.send_at
    zones = subscribers.audience_zones(campaign.audience) or [None]
    return min(dt.datetime.fromisoformat(due(z).replace("Z", "+00:00")) for z in zones)


@dataclass(frozen=True, slots=True)
class Timing:
    """A scheduled campaign that has not begun, as `send` sees it: when it is due."""

    due: dt.datetime  # its first reader's time
    text: str  # when, as people read it


def scheduled_timing(ctx: SendContext, plan: SendPlan, now: dt.datetime) -> Timing | None:
    """For `send`: when a campaign whose ``send_at`` is still to come is due (None when
    it has none, or began already); a NewsletterError when it is past and never sent."""
    campaign = plan.campaign
    if campaign.send_at is None or plan.started or plan.already_sent is not None:
        return None
    late = send_at_in_past(campaign, now)
    if late is not None:
        raise NewsletterError(
            late[:1].upper() + late[1:] + ".",
            "A scheduled campaign that missed its time is not sent late by itself. Nothing "
            "was sent.",
        )
    due = first_due(ctx.subscribers, campaign) or campaign.send_at
    text = describe_time(campaign.send_at, campaign.send_zone)
    if campaign.local_time:
        text += f" on each reader's clocks (the first reader's at {due:%Y-%m-%d %H:%M} UTC)"
    return Timing(due, text)


def _readiness(campaign: Campaign, problems: list[Problem], rehearsal: bool) -> tuple[Problem, ...]:
    """The errors a rehearsal goes on with; for a real send any error stops it here."""
    errors = tuple(p for p in problems if p.level == "error")
    # A rehearsal only warns, except when some readers' email cannot be built.
    if errors and (not rehearsal or any(p.code == "does-not-build" for p in errors)):
        raise NewsletterError(
            f"{campaign.slug} is not ready to send: " + "; ".join(p.message for p in errors),
            f"`newsletter check {campaign.slug}` shows where. Nothing was sent.",
        )
    return errors


def _ledgered(
    ctx: SendContext, campaign: Campaign, transport: str, retry: tuple[DeliveryStatus, ...]
) -> _Ledgered:
    """Recipients this run, as the ledger has the campaign (before any ``limit``)."""
    ledger = ctx.ledger
    row = ledger.campaign(campaign.slug)
    rehearsed = _rehearsed(ledger, row, transport)
    if campaign.after is not None:  # a sequence step: the readers found due so far
        return _step_ledgered(ledger, row, retry)
    if row is None or row.status == CampaignStatus.DRAFT or rehearsed is not None:
        return _Ledgered(ctx.subscribers.count_audience(campaign.audience), rehearsed=rehearsed)
    if row.status == CampaignStatus.SENT and not retry:
        already_sent = AlreadySent(row.finished_at, ledger.delivery_counts(row.id))
        return _Ledgered(0, sum(already_sent.totals.values()), already_sent, started=True)
    counts = ledger.delivery_counts(row.id)
    recipients = sum(counts.get(str(s), 0) for s in ("pending", "sending", *retry))
    return _Ledgered(recipients, sum(counts.values()) - recipients, started=bool(counts))


def _step_ledgered(
    ledger: Ledger, row: CampaignRow | None, retry: tuple[DeliveryStatus, ...]
) -> _Ledgered:
    """A sequence step's recipients this run: its deliveries pending (its readers are
    added as they become due; a step is never frozen to an audience, never `sent`)."""
    if row is None:
        return _Ledgered(0)
    counts = ledger.delivery_counts(row.id)
    recipients = sum(counts.get(str(s), 0) for s in ("pending", "sending", *retry))
    return _Ledgered(recipients, sum(counts.values()) - recipients)


def _rehearsed(ledger: Ledger, row: CampaignRow | None, transport: str) -> int | None:
    """Messages a rehearsal wrote, when the campaign was only rehearsed before this
    real send; None otherwise."""
    if row is None or not ledger.only_rehearsed(row, transport, rehearsal_transports()):
        return None
    return ledger.delivery_counts(row.id).get("sent", 0)
