"""`newsletter report`: who got a campaign, who did not and why; or every campaign in short.

The figures behind the report page too: a campaign's headline figures, its timeline,
bounces by reason and by receiving domain, its links, the readers to retry; and the
overview, every campaign's rates and the list month by month. Counting is done in SQL
(the store's report queries) as far as it can be: times are grouped per minute there and
only placed in UTC hours or days here, since providers write times with their own offsets.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .event_rules import scanner_agent
from .models import FAILURES, CampaignStatus, DeliveryStatus, EventKind
from .store.signups import LogAction

if TYPE_CHECKING:
    from .store import EventLog, Ledger, Store

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
    the delivery statuses are the ledger's, ``failed`` every definite failure (the
    ledger's ``failed``, ``invalid`` and ``rejected``: what `send --retry-failed` sends
    again), and ``pending``/``sending`` deliveries count in ``audience`` alone; the
    event ones count distinct readers with at least one such event (``bounced_hard``:
    ``bounced`` or ``dropped``; ``unsubscribed`` includes our own unsubscribe links).
    ``opened`` and ``clicked`` are None when no such event was ever recorded for the
    campaign (tracking off, or nothing yet); ``clicked`` counts readers with at least
    one click not flagged as a probable bot, ``bot_clicked`` readers whose every click
    was.
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
    confirmed), by ``subscribers add`` (and ``subscribers resubscribe``: staff making a
    person active again), by import. Each column counts a subscriber once a month.
    ``net`` is the change in active readers: added + imported + confirmed -
    unsubscribed - bounced - complained - erased (an erased reader counted only if
    they were active when erased)."""

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
    recipient; and what the report page shows of it (``figures`` and the rest)."""

    campaign: str
    status: CampaignStatus
    transport: str | None
    counts: dict[str, int]  # deliveries by status
    events: dict[str, int]  # recipients by event kind
    rehearsals: tuple[Rehearsal, ...]
    recipients: tuple[RecipientStatus, ...]
    subject: str
    started_at: str | None
    finished_at: str | None
    figures: Figures
    timeline: Timeline
    bounce_reasons: tuple[BounceGroup, ...]  # most readers first
    bounce_domains: tuple[BounceGroup, ...]  # most readers first
    links: tuple[LinkClicks, ...]  # top links, most readers first (at most TOP_LINKS)
    retry: tuple[RetryGroup, ...]  # failed, then unknown; only non-empty ones
    events_recorded: int  # 0: no provider event yet (our own unsubscribe links aside)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as JSON takes it (what `report CAMPAIGN --format json` prints)."""
        return {
            "campaign": self.campaign,
            "status": self.status,
            "transport": self.transport,
            "counts": self.counts,
            "events": self.events,
            "rehearsals": [asdict(r) for r in self.rehearsals],
            "recipients": [_recipient(r) for r in self.recipients],
            "subject": self.subject,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "figures": asdict(self.figures),
            "timeline": asdict(self.timeline),
            "bounce_reasons": [asdict(g) for g in self.bounce_reasons],
            "bounce_domains": [asdict(g) for g in self.bounce_domains],
            "links": [asdict(link) for link in self.links],
            "retry": [
                {
                    "status": g.status,
                    "command": g.command,
                    "readers": [_recipient(r) for r in g.readers],
                }
                for g in self.retry
            ],
            "events_recorded": self.events_recorded,
        }


def _recipient(r: RecipientStatus) -> dict[str, Any]:
    """A recipient as JSON takes it (by hand: ``asdict`` deep-copies, slow for 100,000)."""
    return {
        "email": r.email,
        "status": r.status,
        "provider_message_id": r.provider_message_id,
        "error": r.error,
        "sent_at": r.sent_at,
        "transport": r.transport,
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


# -- constants -------------------------------------------------------------------------
# A click this soon after the message reached the reader (or before it, by the clocks
# involved) is a probable bot: the link scanners of mail gateways fetch every link as the
# message arrives, while a person has to open the message, read and click.
BOT_CLICK_SECONDS = 10
TOP_LINKS = 20
HOURLY_UP_TO = dt.timedelta(hours=72)  # a longer timeline is counted by day
OWN_EVENTS = "newsletter"  # the provider name of the events our own unsubscribe links make
NO_REASON = "(no reason given)"
NO_DOMAIN = "(erased)"  # the receiving domain of a reader erased since

K = EventKind
HARD_BOUNCES = (K.BOUNCED, K.DROPPED)
# Figures' readers per event group, counted in one query.
READER_GROUPS: dict[str, tuple[str, ...]] = {
    "delivered": (K.DELIVERED,),
    "bounced_hard": HARD_BOUNCES,
    "bounced_soft": (K.SOFT_BOUNCED,),
    "complained": (K.COMPLAINED,),
    "unsubscribed": (K.UNSUBSCRIBED,),
    "opened": (K.OPENED,),
}
# The timeline's series: each delivery status and event kind counted, by series name.
SETTLEMENT_SERIES = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.QUEUED: "queued",
    **{s: "failed" for s in FAILURES},
    DeliveryStatus.UNKNOWN: "unknown",
}
EVENT_SERIES = {
    K.DELIVERED: "delivered",
    K.BOUNCED: "bounced",
    K.DROPPED: "bounced",
    K.SOFT_BOUNCED: "soft_bounced",
    K.COMPLAINED: "complained",
    K.UNSUBSCRIBED: "unsubscribed",
    K.OPENED: "opened",
    K.CLICKED: "clicked",
}
SERIES_ORDER = tuple(dict.fromkeys((*SETTLEMENT_SERIES.values(), *EVENT_SERIES.values())))


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
    status = {str(s): s for s in DeliveryStatus}  # by position and a dict: 100,000 rows
    recipients = tuple(
        RecipientStatus(d[0], status[d[1]], d[2], d[3], d[4], d[7])
        for d in ledger.deliveries(row.id)
    )
    clicks = _clicks(events, row.id)
    bounces = events.bounces(row.id, (*HARD_BOUNCES, K.SOFT_BOUNCED))
    return CampaignReport(
        slug,
        row.status,
        row.transport,
        counts,
        dict.fromkeys(ALWAYS_EVENTS, 0) | events.counts(row.id),
        tuple(Rehearsal(**r) for r in ledger.rehearsals(row.id)),
        recipients,
        subject=row.subject,
        started_at=row.started_at,
        finished_at=row.finished_at,
        figures=_figures(counts, events.reader_counts(row.id, READER_GROUPS), clicks),
        timeline=_timeline(ledger.settlement_minutes(row.id), events.minutes(row.id)),
        bounce_reasons=_bounce_groups(bounces, lambda b: b["detail"] or NO_REASON),
        bounce_domains=_bounce_groups(bounces, _domain),
        links=_links(clicks),
        retry=_retry(slug, recipients),
        events_recorded=events.recorded(row.id, apart_from=OWN_EVENTS),
    )


# -- figures ---------------------------------------------------------------------------
def _figures(
    counts: dict[str, int], readers: dict[tuple[int, str], int], clicks: list[_Click]
) -> Figures:
    """The headline figures, as ``Figures`` says."""
    of = {group: n for (_, group), n in readers.items()}
    human = {c.reader for c in clicks if not c.bot}
    return Figures(
        audience=sum(counts.values()),
        sent=counts.get(DeliveryStatus.SENT, 0),
        queued=counts.get(DeliveryStatus.QUEUED, 0),
        delivered=of.get("delivered", 0),
        bounced_hard=of.get("bounced_hard", 0),
        bounced_soft=of.get("bounced_soft", 0),
        complained=of.get("complained", 0),
        unsubscribed=of.get("unsubscribed", 0),
        failed=sum(counts.get(s, 0) for s in FAILURES),
        unknown=counts.get(DeliveryStatus.UNKNOWN, 0),
        skipped=counts.get(DeliveryStatus.SKIPPED, 0),
        opened=of.get("opened"),
        clicked=len(human) if clicks else None,
        bot_clicked=len({c.reader for c in clicks} - human),
    )


# -- clicks ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Click:
    reader: str
    url: str | None
    bot: bool


def _clicks(events: EventLog, campaign_id: int) -> list[_Click]:
    """The campaign's clicks, each flagged when it is a probable bot: a scanner's user
    agent (``SCANNER_AGENTS``), or within ``BOT_CLICK_SECONDS`` of the reader's delivery
    (their first delivered event, else when the provider took the message)."""
    rows = events.clicks(campaign_id)
    clickers = {r["subscriber_id"] for r in rows}
    delivered = events.delivered_at(campaign_id, clickers) if rows else {}
    clicks = []
    for r in rows:
        arrived = parse_time(delivered.get(r["subscriber_id"])) or parse_time(r["sent_at"])
        clicks.append(_Click(r["reader"], _link(r["url"], r["detail"]), _bot(r, arrived)))
    return clicks


def _link(url: str | None, detail: str | None) -> str | None:
    """A click's link: ``url``, else a link in ``detail`` (where providers put it before)."""
    if url:
        return url
    if detail and detail.startswith(("https://", "http://")):
        return detail
    return None


@functools.lru_cache(maxsize=4096)  # a campaign's clicks come from few user agents
def is_scanner(user_agent: str | None) -> bool:
    """Whether a user agent is a known link scanner's or a script's (``SCANNER_AGENTS``)."""
    return scanner_agent(user_agent)


def _bot(row: Any, arrived: dt.datetime | None) -> bool:
    if is_scanner(row["user_agent"]):
        return True
    clicked = parse_time(row["at"])
    if clicked is None or arrived is None:
        return False
    return (clicked - arrived).total_seconds() < BOT_CLICK_SECONDS


def _links(clicks: list[_Click]) -> tuple[LinkClicks, ...]:
    """The links clicked, most readers first (then most clicks), at most ``TOP_LINKS``."""
    readers: dict[str, set[str]] = {}
    human: Counter[str] = Counter()
    bots: Counter[str] = Counter()
    for c in clicks:
        if c.url is None:
            continue
        readers.setdefault(c.url, set())
        if c.bot:
            bots[c.url] += 1
        else:
            human[c.url] += 1
            readers[c.url].add(c.reader)
    links = [LinkClicks(url, len(who), human[url], bots[url]) for url, who in readers.items()]
    links.sort(key=lambda x: (-x.readers, -x.clicks, -x.bot_clicks, x.url))
    return tuple(links[:TOP_LINKS])


# -- bounces ---------------------------------------------------------------------------
def _domain(bounce: Any) -> str:
    """The receiving domain of a bounce's address, lower-cased."""
    address = bounce["address"]
    if not address or "@" not in address:
        return NO_DOMAIN
    return address.rsplit("@", 1)[1].lower()


def _bounce_groups(rows: list[Any], key_of: Any) -> tuple[BounceGroup, ...]:
    """Readers who bounced hard (bounced, dropped) and soft, grouped by ``key_of`` of
    each bounce; a reader counted once per group and kind."""
    hard: dict[str, set[str]] = {}
    soft: dict[str, set[str]] = {}
    for r in rows:
        side = soft if r["kind"] == K.SOFT_BOUNCED else hard
        side.setdefault(key_of(r), set()).add(r["reader"])
    groups = [
        BounceGroup(key, len(hard.get(key, ())), len(soft.get(key, ()))) for key in {*hard, *soft}
    ]
    groups.sort(key=lambda g: (-(g.hard + g.soft), -g.hard, g.key))
    return tuple(groups)


# -- retry -----------------------------------------------------------------------------
def _retry(slug: str, recipients: Iterable[RecipientStatus]) -> tuple[RetryGroup, ...]:
    """The failed readers (failed, invalid, rejected), then the unknown ones, each with
    the command that sends to them again; a group with nobody left out."""
    failed = tuple(r for r in recipients if r.status in FAILURES)
    unknown = tuple(r for r in recipients if r.status is DeliveryStatus.UNKNOWN)
    groups = (
        RetryGroup(DeliveryStatus.FAILED, f"newsletter send {slug} --retry-failed", failed),
        RetryGroup(DeliveryStatus.UNKNOWN, f"newsletter send {slug} --retry-unknown", unknown),
    )
    return tuple(g for g in groups if g.readers)


# -- time ------------------------------------------------------------------------------
_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)$")


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO 8601 time as an aware UTC datetime (no offset: UTC); None if unreadable."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _minute(minute: str | None, tail: str | None) -> dt.datetime | None:
    """A time's minute (its first 16 characters) in UTC, by the offset at its end (its
    last 6 characters: ``Z``, ``+HH:MM``, ``+HHMM``, or none: UTC)."""
    moment = parse_time(minute)
    if moment is None:
        return None
    found = _OFFSET.search(tail or "")
    if found and not (tail or "").upper().endswith("Z"):
        sign = 1 if found[1] == "+" else -1
        moment -= sign * dt.timedelta(hours=int(found[2]), minutes=int(found[3]))
    return moment


def _timeline(settled: list[Any], happened: list[Any]) -> Timeline:
    """Settlements and events per hour (per day when they span more than
    ``HOURLY_UP_TO``), every bucket from the first to the last; empty series left out.
    A series counts deliveries, or events (not readers)."""
    points: list[tuple[str, dt.datetime, int]] = []
    for rows, names in ((settled, SETTLEMENT_SERIES), (happened, EVENT_SERIES)):
        for r in rows:  # (status or kind, minute, tail, count)
            series, moment = names.get(r[0]), _minute(r[1], r[2])
            if series is not None and moment is not None:
                points.append((series, moment, r[3]))
    if not points:
        return Timeline("hour", (), {})
    first, last = min(p[1] for p in points), max(p[1] for p in points)
    step = dt.timedelta(hours=1) if last - first <= HOURLY_UP_TO else dt.timedelta(days=1)
    start = _floor(first, step)
    size = (_floor(last, step) - start) // step + 1
    series: dict[str, list[int]] = {}
    for name, moment, n in points:
        counts = series.setdefault(name, [0] * size)
        counts[(_floor(moment, step) - start) // step] += n
    return Timeline(
        "hour" if step == dt.timedelta(hours=1) else "day",
        tuple(_iso(start + i * step) for i in range(size)),
        {name: tuple(series[name]) for name in SERIES_ORDER if name in series},
    )


def _floor(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if step >= dt.timedelta(days=1) else moment


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- every campaign --------------------------------------------------------------------
def campaign_reports(ledger: Ledger) -> list[CampaignSummary]:
    """Every campaign with its delivery counts, oldest first."""
    return [
        CampaignSummary(c.slug, c.status, c.started_at, c.finished_at, ledger.delivery_counts(c.id))
        for c in ledger.campaigns()
    ]


# The overview's event groups: readers with a delivery, a hard bounce (what suppresses
# the address: bounced or dropped), a complaint, an unsubscribe.
RATE_GROUPS: dict[str, tuple[str, ...]] = {
    "delivered": (K.DELIVERED,),
    "bounced": HARD_BOUNCES,
    "complained": (K.COMPLAINED,),
    "unsubscribed": (K.UNSUBSCRIBED,),
}
# subscriber_log actions the months count (distinct subscribers per month and action).
MONTH_ACTIONS = (
    LogAction.SIGNUP,
    LogAction.ADDED,
    LogAction.RESUBSCRIBED,
    LogAction.CONFIRMED,
    LogAction.UNSUBSCRIBED,
    LogAction.BOUNCED,
    LogAction.COMPLAINED,
)
# What each membership action leaves a subscriber as: active (True) or not (False).
ACTIVE_AFTER = {
    LogAction.SIGNUP: False,  # pending
    LogAction.CONFIRMED: True,
    LogAction.ADDED: True,
    LogAction.RESUBSCRIBED: True,
    LogAction.UNSUBSCRIBED: False,
    LogAction.BOUNCED: False,
    LogAction.COMPLAINED: False,
}


def overview(store: Store, now: dt.datetime | None = None) -> Overview:
    """Every campaign's rates (oldest first), and the list month by month from the first
    month anything happened to the current one (``now``, default the real time; UTC)."""
    return Overview(_rates(store), _months(store, now or dt.datetime.now(dt.UTC)))


def _rates(store: Store) -> tuple[CampaignRates, ...]:
    """Each campaign's rates: readers with a delivered event, a hard bounce (bounced or
    dropped), a complaint, an unsubscribe, as shares of the messages a provider took."""
    counts = store.ledger.counts_by_campaign()
    readers = store.events.reader_counts(None, RATE_GROUPS)
    rates = []
    for c in store.ledger.campaigns():
        mine = counts.get(c.id, {})
        sent = mine.get(DeliveryStatus.SENT, 0) + mine.get(DeliveryStatus.QUEUED, 0)
        n = {group: readers.get((c.id, group), 0) for group in RATE_GROUPS}
        rates.append(
            CampaignRates(
                c.slug,
                c.status,
                c.started_at,
                sent,
                n["delivered"],
                n["bounced"],
                n["complained"],
                n["unsubscribed"],
                *(n[group] / sent if sent else 0.0 for group in RATE_GROUPS),
            )
        )
    return tuple(rates)


def _months(store: Store, now: dt.datetime) -> tuple[MonthRow, ...]:
    """The list month by month. Each column counts subscribers once a month:
    ``signed_up`` sign-up rows; ``added`` staff adds and resubscribes (both make a
    person active by staff action); ``imported`` subscribers created that month by
    neither a sign-up nor an add; ``confirmed``, ``unsubscribed``, ``bounced`` and
    ``complained`` their log rows (staff, links and provider events write them);
    ``erased`` erasures that month. ``net`` as ``MonthRow`` says: an erased reader
    counts there only if their last membership row before it left them active (no row:
    imported, so active)."""
    membership = store.membership
    first = membership.first_activity()
    start = parse_time(first)
    if start is None:
        return ()
    logged = membership.monthly(tuple(str(a) for a in MONTH_ACTIONS))
    imported = membership.imported_monthly()
    erased: Counter[str] = Counter()
    erased_active: Counter[str] = Counter()
    for at, last in membership.erasures(tuple(str(a) for a in ACTIVE_AFTER)):
        erased[at[:7]] += 1
        erased_active[at[:7]] += last is None or ACTIVE_AFTER[LogAction(last)]
    rows = []
    for month in _month_range(start, now.astimezone(dt.UTC)):

        def got(action: LogAction, month: str = month) -> int:
            return logged.get((month, str(action)), 0)

        added = got(LogAction.ADDED) + got(LogAction.RESUBSCRIBED)
        left = got(LogAction.UNSUBSCRIBED) + got(LogAction.BOUNCED) + got(LogAction.COMPLAINED)
        joined = added + imported.get(month, 0) + got(LogAction.CONFIRMED)
        rows.append(
            MonthRow(
                month,
                signed_up=got(LogAction.SIGNUP),
                added=added,
                imported=imported.get(month, 0),
                confirmed=got(LogAction.CONFIRMED),
                unsubscribed=got(LogAction.UNSUBSCRIBED),
                bounced=got(LogAction.BOUNCED),
                complained=got(LogAction.COMPLAINED),
                erased=erased[month],
                net=joined - left - erased_active[month],
            )
        )
    return tuple(rows)


def _month_range(start: dt.datetime, end: dt.datetime) -> list[str]:
    """Every month (YYYY-MM) from ``start``'s to ``end``'s."""
    year, month = start.year, start.month
    months = []
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
