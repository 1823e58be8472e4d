"""`newsletter report --html`: a campaign's report, or the overview, as one HTML file.

The page is self-contained: its CSS is inline and its charts are SVG that pygal renders
here in Python (no script, no font, no image from anywhere), so the file opens from disk
with the network off and can be kept beside the campaign. Every chart has a table of
the same numbers beside it, for screen readers and for anyone who wants the figures.

The pages come from the Jinja2 templates in ``report_templates/``, with autoescape and
StrictUndefined as the site's pages: a subject, a link or a bounce reason a provider
sent stays text. The one value marked safe is a chart's SVG, which pygal serialises
with lxml (every label it carries escaped there) and which holds only our numbers and
those escaped labels.

Long lists are cut (``LIST_CAP`` readers per retry group, ``TABLE_CAP`` rows per
table) with how many more there are: a campaign to 100,000 readers makes a page of the
same size as one to a hundred.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup, escape

from .files import write_private

if TYPE_CHECKING:
    import pygal

    from .config import Settings
    from .report import CampaignReport, Figures, Overview

LIST_CAP = 50  # readers of a retry group shown; `report CAMPAIGN --format csv` has them all
TABLE_CAP = 100  # rows of a chart's table
CHART_BARS = 10  # bars of a grouped chart (bounce reasons, domains, links)
LEGEND_COLUMNS = 3
# Series colours, as CSS variables --c0.. the page sets for light and dark: one per
# series the busiest chart (the timeline: 4 settlements and 7 event kinds) can draw.
CHART_COLOURS = 12
LEGEND_ROW = 22  # px of a row of the legend

_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("newsletter", "report_templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# What each headline figure is called on the page, and what it means. A figure report.py
# adds later shows under its own name until it gets a line here.
FIGURE_LABELS = {
    "audience": ("Audience", "readers the campaign was addressed to"),
    "sent": ("Sent", "accepted by the provider"),
    "queued": ("Queued", "accepted; the provider reports the outcome later"),
    "delivered": ("Delivered", "the receiving server took it"),
    "bounced_hard": ("Hard bounces", "the address does not take mail"),
    "bounced_soft": ("Soft bounces", "a mailbox full, a server busy"),
    "complained": ("Complaints", "marked as spam"),
    "unsubscribed": ("Unsubscribed", "through this campaign"),
    "failed": ("Failed", "the provider refused it"),
    "unknown": ("Unknown", "the outcome could not be known"),
    "skipped": ("Skipped", "left before it reached them"),
    "opened": ("Opened", "readers with an open"),
    "clicked": ("Clicked", "readers with a click by a person"),
    "bot_clicked": ("Probable-bot clicks", "readers whose every click was a scanner's"),
}
ENGAGEMENT = ("opened", "clicked", "bot_clicked")  # shown apart, with their caveats
NOT_TRACKED = "not tracked"

SERIES_LABELS = {
    "sent": "Sent",
    "queued": "Queued",
    "failed": "Failed",
    "unknown": "Unknown",
    "delivered": "Delivered",
    "bounced": "Hard bounces",
    "soft_bounced": "Soft bounces",
    "complained": "Complaints",
    "unsubscribed": "Unsubscribed",
    "opened": "Opens",
    "clicked": "Clicks",
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One headline figure as the page shows it."""

    name: str  # the Figures field: the page's data-figure attribute
    label: str
    value: int | None  # None: not tracked
    note: str

    @property
    def shown(self) -> str:
        return NOT_TRACKED if self.value is None else f"{self.value:,}"


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart and the table of its numbers, drawn side by side."""

    id: str
    title: str
    svg: Markup
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    more: int  # rows the table left out
    wide: tuple[int, ...] = ()  # columns whose cells may be long (a link, a reason)

    @property
    def stacked(self) -> bool:
        """The table goes under the chart, not beside it: it needs the page's width."""
        return len(self.columns) > 5 or (bool(self.wide) and len(self.columns) > 3)


# -- the two pages --------------------------------------------------------------------
def campaign_page(report: CampaignReport, settings: Settings, now: datetime | None = None) -> str:
    """One campaign's report as a self-contained HTML page."""
    figures = _figures(report.figures)
    charts = [
        chart
        for chart in (
            timeline_chart(report),
            _bounce_chart("reasons", "Bounces by reason", "Reason", report.bounce_reasons),
            _bounce_chart(
                "domains", "Bounces by receiving domain", "Domain", report.bounce_domains
            ),
            links_chart(report),
        )
        if chart is not None
    ]
    retry = [
        {
            "status": str(group.status),
            "command": group.command,
            "total": len(group.readers),
            "readers": group.readers[:LIST_CAP],
            "more": max(0, len(group.readers) - LIST_CAP),
        }
        for group in report.retry
    ]
    return _PAGES.get_template("campaign.html").render(
        newsletter=settings.newsletter.name,
        title=f"Report: {report.campaign}",
        report=report,
        started=_when(report.started_at),
        finished=_when(report.finished_at),
        made=_when((now or datetime.now(UTC)).isoformat()),
        delivery=[f for f in figures if f.name not in ENGAGEMENT],
        engagement=[f for f in figures if f.name in ENGAGEMENT],
        charts=charts,
        clicks_tracked=report.figures.clicked is not None,
        retry=retry,
    )


def overview_page(
    overview: Overview,
    settings: Settings,
    campaign_link: str | None = None,
    now: datetime | None = None,
) -> str:
    """Every campaign and the list month by month as a self-contained HTML page.
    ``campaign_link`` ("/reports/{slug}") links each campaign to its own report."""
    charts = [
        chart
        for chart in (campaigns_chart(overview, campaign_link), months_chart(overview))
        if chart is not None
    ]
    return _PAGES.get_template("overview.html").render(
        newsletter=settings.newsletter.name,
        title="Report: every campaign, and the list",
        made=_when((now or datetime.now(UTC)).isoformat()),
        overview=overview,
        charts=charts,
    )


def write_report(html: str, path: Path) -> Path:
    """Write the page to ``path``, whole or not at all, readable by its owner only (it may
    name readers); a new folder for it is made owner-only too."""
    write_private(path, html.encode("utf-8"))
    return path


# -- what the campaign page shows -------------------------------------------------------
def _figures(figures: Figures) -> list[Figure]:
    shown = []
    for field in fields(figures):
        label, note = FIGURE_LABELS.get(field.name, (field.name.replace("_", " ").title(), ""))
        shown.append(Figure(field.name, label, getattr(figures, field.name), note))
    return shown


def timeline_chart(report: CampaignReport) -> Chart | None:
    """Settlements and provider events per hour or day; None when there is none."""
    timeline = report.timeline
    if not timeline.buckets or not timeline.series:
        return None
    labels = [_bucket(b, timeline.bucket) for b in timeline.buckets]
    names = list(timeline.series)
    chart = _chart(
        "Line",
        x_labels=[label[5:] for label in labels],  # the year is in the table
        show_dots=len(labels) <= 48,
        x_label_rotation=30,
        show_minor_x_labels=False,
        x_labels_major_count=8,
        truncate_label=-1,
    )
    for name in names:
        chart.add(SERIES_LABELS.get(name, name), list(timeline.series[name]))
    rows = [
        (label, *(timeline.series[n][i] for n in names))
        for i, label in enumerate(labels)
        if any(timeline.series[n][i] for n in names)
    ]
    return _with_table(
        "timeline",
        f"Over time, per {timeline.bucket}",
        chart,
        (timeline.bucket.title(), *(SERIES_LABELS.get(n, n) for n in names)),
        rows,
    )


def _bounce_chart(id: str, title: str, key: str, groups: Sequence[Any]) -> Chart | None:
    if not groups:
        return None
    chart = _chart(
        "HorizontalStackedBar",
        height=_bars_height(min(len(groups), CHART_BARS)),
        x_labels=[_short(g.key) for g in groups[:CHART_BARS]][::-1],
    )
    chart.add("Hard", [g.hard for g in groups[:CHART_BARS]][::-1])
    chart.add("Soft", [g.soft for g in groups[:CHART_BARS]][::-1])
    rows = [(g.key, g.hard, g.soft) for g in groups]
    return _with_table(id, title, chart, (key, "Hard", "Soft"), rows, wide=(0,))


def links_chart(report: CampaignReport) -> Chart | None:
    """The links readers followed, most readers first; None without a click."""
    links = report.links
    if not links:
        return None
    top = links[:CHART_BARS][::-1]
    chart = _chart(
        "HorizontalBar",
        height=_bars_height(len(top)),
        x_labels=[_short(re.sub(r"^https?://(www\.)?", "", link.url)) for link in top],
    )
    chart.add("Readers", [link.readers for link in top])
    chart.add("Bot clicks", [link.bot_clicks for link in top])
    rows = [(link.url, link.readers, link.clicks, link.bot_clicks) for link in links]
    return _with_table(
        "links",
        "Top links",
        chart,
        ("Link", "Readers", "Clicks", "Bot clicks"),
        rows,
        wide=(0,),
    )


# -- what the overview shows ------------------------------------------------------------
def campaigns_chart(overview: Overview, campaign_link: str | None = None) -> Chart | None:
    """Each campaign's delivery, bounce, complaint and unsubscribe rates, on one axis."""
    campaigns = overview.campaigns
    if not campaigns:
        return None
    chart = _chart(
        "Bar",
        x_labels=[_short(c.campaign, 24) for c in campaigns],
        x_label_rotation=30 if len(campaigns) > 3 else 0,
        truncate_label=-1,
        value_formatter=_percent,
        range=(0, 100),
    )
    chart.add("Delivered", [c.delivery_rate * 100 for c in campaigns])
    chart.add("Bounced", [c.bounce_rate * 100 for c in campaigns])
    chart.add("Complained", [c.complaint_rate * 100 for c in campaigns])
    chart.add("Unsubscribed", [c.unsubscribe_rate * 100 for c in campaigns])
    rows = [
        (
            _linked(c.campaign, campaign_link),
            str(c.status),
            _when(c.started_at)[:10],
            c.sent,
            c.delivered,
            _percent(c.delivery_rate * 100),
            c.bounced,
            _percent(c.bounce_rate * 100),
            c.complained,
            _percent(c.complaint_rate * 100),
            c.unsubscribed,
            _percent(c.unsubscribe_rate * 100),
        )
        for c in campaigns
    ]
    columns = (
        "Campaign",
        "Status",
        "Started",
        "Sent",
        "Delivered",
        "Delivery rate",
        "Bounced",
        "Bounce rate",
        "Complaints",
        "Complaint rate",
        "Unsubscribed",
        "Unsubscribe rate",
    )
    return _with_table("campaigns", "Every campaign", chart, columns, rows)


def months_chart(overview: Overview) -> Chart | None:
    """Who joined and who left, month by month."""
    months = overview.months
    if not months:
        return None
    chart = _chart(
        "Bar", x_labels=[m.month for m in months], x_label_rotation=30 if len(months) > 6 else 0
    )
    chart.add("Joined", [m.signed_up + m.added + m.imported for m in months])
    chart.add("Confirmed", [m.confirmed for m in months])
    chart.add("Left", [-(m.unsubscribed + m.bounced + m.complained + m.erased) for m in months])
    chart.add("Net change", [m.net for m in months])
    columns = (
        "Month",
        "Signed up",
        "Added",
        "Imported",
        "Confirmed",
        "Unsubscribed",
        "Bounced",
        "Complained",
        "Erased",
        "Net",
    )
    rows = [
        (
            m.month,
            m.signed_up,
            m.added,
            m.imported,
            m.confirmed,
            m.unsubscribed,
            m.bounced,
            m.complained,
            m.erased,
            f"{m.net:+,}",
        )
        for m in reversed(months)  # the latest month first
    ]
    return _with_table("months", "The list, month by month", chart, columns, rows)


# -- charts ---------------------------------------------------------------------------
def _style() -> Any:
    """Colours as CSS variables, which the page sets for light and dark mode."""
    from pygal.style import Style

    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="var(--fg)",
        foreground_strong="var(--fg)",
        foreground_subtle="var(--muted)",
        guide_stroke_color="var(--grid)",
        major_guide_stroke_color="var(--grid)",
        guide_stroke_dasharray="2,3",
        major_guide_stroke_dasharray="2,3",
        stroke_width="2",
        colors=tuple(f"var(--c{i})" for i in range(CHART_COLOURS)),
        font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
        label_font_size=13,
        major_label_font_size=13,
        legend_font_size=14,
        value_font_size=13,
        tooltip_font_size=13,
        opacity=".85",
        opacity_hover="1",
    )


def _chart(kind: str, **options: Any) -> pygal.Graph:
    import pygal  # imported when a page is drawn, not at each start of the CLI

    settings: dict[str, Any] = {
        "js": [],  # no script: the page makes no request and runs nothing
        "disable_xml_declaration": True,
        "style": _style(),
        "width": 500,  # near the size it is seen, so its text stays legible on a phone
        "height": 300,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": LEGEND_COLUMNS,
        "truncate_legend": -1,
        "margin": 8,
        "margin_bottom": 8,
        "print_values": False,
    }
    return getattr(pygal, kind)(**(settings | options))


_CHART_ID = re.compile(r"chart-[0-9a-f-]{36}")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# pygal writes its config (the data, for its tooltips) as a script even with js=[]; the
# page runs no script. The only "<" in the SVG's text are pygal's own tags (lxml writes
# a label's as "&lt;"), so the first "</script>" ends it.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)


def _svg(chart: pygal.Graph, id: str, title: str) -> Markup:
    """The chart's SVG for the page: no script, a stable id (the same page twice is the
    same file), pygal's comments (its web address) out, and a name for assistive
    technology."""
    counts = [v for serie in chart.raw_series for v in serie[0] if isinstance(v, int)]
    if counts and max(counts) - min(0, *counts) < 10:  # whole numbers, not 0.1, 0.2, ...
        chart.config.y_labels = list(range(min(0, *counts), max(counts) + 1))
    series = len(chart.raw_series)
    if series % LEGEND_COLUMNS:  # pygal leaves room for whole rows of the legend only
        chart.config.margin_bottom = (chart.config.margin_bottom or 0) + LEGEND_ROW
    svg = chart.render(is_unicode=True)
    svg = _SCRIPT.sub("", _COMMENT.sub("", svg))
    svg = _CHART_ID.sub(f"chart-{id}", svg)
    label = escape(title)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return Markup(svg)  # pygal's own output; every label in it escaped by lxml


def _with_table(
    id: str,
    title: str,
    chart: pygal.Graph,
    columns: Iterable[str],
    rows: Sequence[tuple[Any, ...]],
    wide: tuple[int, ...] = (),
) -> Chart:
    return Chart(
        id,
        title,
        _svg(chart, id, title),
        tuple(columns),
        tuple(rows[:TABLE_CAP]),
        max(0, len(rows) - TABLE_CAP),
        wide,
    )


# -- formatting -------------------------------------------------------------------------
def _percent(value: float) -> str:
    return f"{value:.1f} %"


def _when(iso: str | None) -> str:
    """An ISO 8601 time as "2026-12-06 14:03 UTC"; the text as it is if it is not one."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _bucket(iso: str, bucket: str) -> str:
    shown = _when(iso)
    return shown[:10] if bucket == "day" else shown.removesuffix(" UTC")


def _short(label: str, most: int = 32) -> str:
    """A bar's label cut to fit (the table beside it has it whole)."""
    return label if len(label) <= most else label[: most - 1] + "…"


def _bars_height(bars: int) -> int:
    return 120 + 34 * max(bars, 1)


@dataclass(frozen=True, slots=True)
class Link:
    """A table cell that links to another page of the reports."""

    text: str
    href: str


def _linked(slug: str, pattern: str | None) -> str | Link:
    return Link(slug, pattern.format(slug=slug)) if pattern else slug


def default_path(root: Path, campaign: str | None) -> Path:
    """Where `report --html` writes without --out: reports/<slug>.html, or
    reports/overview.html, under the project's folder."""
    name = Path(campaign).stem if campaign else "overview"
    return root / "reports" / f"{name}.html"


_PAGES.filters["when"] = _when
