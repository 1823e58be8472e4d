"""`newsletter report`: who got a campaign, who did not and why; or every campaign in short."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .models import CampaignStatus, DeliveryStatus, EventKind

if TYPE_CHECKING:
    from .store import EventLog, Ledger

# Shown even when nothing has that status or kind yet.
ALWAYS_COUNTED = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.SKIPPED,
)
ALWAYS_EVENTS = (
    EventKind.DELIVERED,
    EventKind.BOUNCED,
    EventKind.COMPLAINED,
    EventKind.UNSUBSCRIBED,
)


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """A send to the outbox before the campaign's first real send, kept as a summary."""

    transport: str
    messages: int
    started_at: str | None
    finished_at: str | None
    archived_at: str | None


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient of a campaign and what happened to their message."""

    email: str
    status: DeliveryStatus
    provider_message_id: str | None
    error: str | None
    sent_at: str | None
    transport: str | None


# -- what the HTML page shows (report_page.py draws it; `--format json` carries it) ------
@dataclass(frozen=True, slots=True)
class Figures:
    """A campaign's headline figures: readers counted once each.

    ``audience`` is every reader the campaign was addressed to (every delivery row);
    the delivery statuses are the ledger's; the event ones count distinct readers with
    at least one such event. ``opened`` and ``clicked`` are None when no such event was
    ever recorded for the campaign (tracking off, or nothing yet); ``clicked`` counts
    readers with at least one click not flagged as a probable bot, ``bot_clicked``
    readers whose every click was.
    """

    audience: int
    sent: int
    queued: int
    delivered: int
    bounced_hard: int
    bounced_soft: int
    complained: int
    unsubscribed: int
    failed: int
    unknown: int
    skipped: int
    opened: int | None
    clicked: int | None
    bot_clicked: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """Counts per time bucket: ``buckets`` are the buckets' starts (ISO 8601, UTC), one
    per ``bucket`` ("hour" or "day"), and each series has one count per bucket.
    Series are named by delivery status (settlements: sent, queued, failed, unknown)
    and by event kind (delivered, bounced, soft_bounced, complained, unsubscribed,
    opened, clicked); a series with no count at all is left out."""

    bucket: str
    buckets: tuple[str, ...]
    series: dict[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class BounceGroup:
    """Readers who bounced, grouped by one key (a reason, or a receiving domain)."""

    key: str
    hard: int
    soft: int


@dataclass(frozen=True, slots=True)
class LinkClicks:
    """One link of the campaign and the clicks on it."""

    url: str
    readers: int  # distinct readers with a click not flagged as a bot
    clicks: int  # clicks not flagged as a bot
    bot_clicks: int  # clicks flagged as a probable bot (scanner agent, or too soon)


@dataclass(frozen=True, slots=True)
class RetryGroup:
    """The readers whose delivery is ``status`` (failed or unknown), and the command
    that sends to them again."""

    status: DeliveryStatus
    command: str
    readers: tuple[RecipientStatus, ...]


@dataclass(frozen=True, slots=True)
class CampaignRates:
    """One campaign in the overview: counts and rates (shares of ``sent``, the
    messages a provider accepted: sent plus queued; 0.0 when nothing was)."""

    campaign: str
    status: CampaignStatus
    started_at: str | None
    sent: int
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int
    delivery_rate: float
    bounce_rate: float
    complaint_rate: float
    unsubscribe_rate: float


@dataclass(frozen=True, slots=True)
class MonthRow:
    """The list in one calendar month (UTC). Joined: by sign-up (the form sent, not yet
    confirmed), by ``subscribers add``, by import. ``net`` is the change in active
    readers: added + imported + confirmed - unsubscribed - bounced - complained -
    erased (an erased reader counted only if they were active when erased)."""

    month: str  # YYYY-MM
    signed_up: int
    added: int
    imported: int
    confirmed: int
    unsubscribed: int
    bounced: int
    complained: int
    erased: int
    net: int


@dataclass(frozen=True, slots=True)
class Overview:
    """Every campaign, and the list month by month (oldest first, every month from the
    first to the current one, empty months included)."""

    campaigns: tuple[CampaignRates, ...]
    months: tuple[MonthRow, ...]


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """One campaign: its delivery counts, the events about it, its rehearsals and every
    recipient."""

    campaign: str
    status: CampaignStatus
    transport: str | None
    counts: dict[str, int]  # deliveries by status
    events: dict[str, int]  # recipients by event kind
    rehearsals: tuple[Rehearsal, ...]
    recipients: tuple[RecipientStatus, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "rehearsals": [asdict(r) for r in self.rehearsals],
            "recipients": [asdict(r) for r in self.recipients],
        }


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """One line of the report on every campaign."""

    campaign: str
    status: CampaignStatus
    started_at: str | None
    finished_at: str | None
    counts: dict[str, int]  # deliveries by status

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_report(ledger: Ledger, events: EventLog, campaign: str) -> CampaignReport:
    """The report on ``campaign`` (a slug, or its file's path); an error if never sent."""
    slug = Path(campaign).stem
    row = ledger.campaign(slug)
    if row is None:
        raise InputError(
            f"Campaign {slug!r} has not been sent yet.",
            "Run `newsletter report` to see the campaigns that have.",
        )
    counts = dict.fromkeys(ALWAYS_COUNTED, 0) | ledger.delivery_counts(row.id)
    events = dict.fromkeys(ALWAYS_EVENTS, 0) | events.counts(row.id)
    return CampaignReport(
        slug,
        row.status,
        row.transport,
        counts,
        events,
        tuple(Rehearsal(**r) for r in ledger.rehearsals(row.id)),
        tuple(
            RecipientStatus(
                d["email"],
                DeliveryStatus(d["status"]),
                d["provider_message_id"],
                d["error"],
                d["sent_at"],
                d["transport"],
            )
            for d in ledger.deliveries(row.id)
        ),
    )


def campaign_reports(ledger: Ledger) -> list[CampaignSummary]:
    """Every campaign with its delivery counts, oldest first."""
    return [
        CampaignSummary(c.slug, c.status, c.started_at, c.finished_at, ledger.delivery_counts(c.id))
        for c in ledger.campaigns()
    ]
