"""What the store hands back: named records, and the time as it is stored."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ..models import CampaignStatus, Recipient, SubscriberStatus
from .erasure import Trace


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def time_offset(column: str) -> str:
    """SQL for where a stored time's offset is: "Z", else its last 6 characters
    ("+05:30"; for a time with no offset, the end of its clock time)."""
    return f"CASE WHEN {column} LIKE '%Z' THEN 'Z' ELSE substr({column}, length({column}) - 5) END"


@dataclass(frozen=True, slots=True)
class KeptStatus:
    """A subscriber an import did not re-subscribe: their status stays."""

    email: str
    status: SubscriberStatus

    def __str__(self) -> str:
        return f"{self.email} stays {self.status}"


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did, counted once it is over."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_status: tuple[KeptStatus, ...] = ()
    forgotten: tuple[str, ...] = ()  # erased earlier: not imported


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``forget`` found: whether the person was on the list, their rows' ids and
    addresses (for the files made for them), and their ``Trace``."""

    known: bool
    subscriber_ids: list[int]
    addresses: list[str]
    trace: Trace


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: int
    slug: str
    subject: str
    status: CampaignStatus
    transport: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    paused_by: str | None = None  # "schedule": a person paused it (`schedule pause`)

    @classmethod
    def of(cls, row: Any) -> CampaignRow:
        values = dict(row)
        return cls(**values | {"status": CampaignStatus(values["status"])})


@dataclass(frozen=True, slots=True)
class CampaignPage:
    """A campaign's web version as stored when its send began: the email for no one."""

    slug: str
    subject: str
    preheader: str
    html: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ArchivedCampaign:
    """A campaign of the public archive: its stored page's subject and preheader, when
    its real send began (``sent_at``) and when it last finished (``updated_at``)."""

    slug: str
    subject: str
    preheader: str
    sent_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class MessageTarget:
    """The campaign and the subscriber a message (or an event about one) concerns; None
    where that is not known (a batch's message id whose address matched no one in it)."""

    campaign_id: int | None
    subscriber_id: int | None


def recipient_row(row: Any, tags: dict[int, list[str]], key: str = "id") -> Recipient:
    """A recipient from a row of the subscribers' columns (``key``: the column holding the
    subscriber's id; ``timezone`` among them) and the tags of its chunk: the store's one
    way to make one."""
    subscriber_id = row[key]
    attributes = json.loads(row["attributes"])
    if row["timezone"]:  # the known column, seen by templates as recipient.timezone
        attributes["timezone"] = row["timezone"]
    return Recipient(
        subscriber_id,
        row["email"],
        row["first_name"],
        row["last_name"],
        attributes,
        tuple(tags.get(subscriber_id, ())),
    )
