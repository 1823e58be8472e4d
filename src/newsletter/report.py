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
