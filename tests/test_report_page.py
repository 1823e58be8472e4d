"""The report page (report_page.py) built from report records made here: every figure
marked for the tests, every chart with its table, nothing fetched from anywhere, what a
provider or an editor wrote shown as text; and `report --html` writing it owner-only."""

from __future__ import annotations

import json
import re
import stat
from dataclasses import fields, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from newsletter.catalog import load_settings
from newsletter.models import CampaignStatus, DeliveryStatus
from newsletter.report import (
    BounceGroup,
    CampaignRates,
    CampaignReport,
    Figures,
    LinkClicks,
    MonthRow,
    Overview,
    RecipientStatus,
    RetryGroup,
    Timeline,
)
from newsletter.report_page import (
    LIST_CAP,
    NOT_TRACKED,
    TABLE_CAP,
    campaign_page,
    overview_page,
    write_report,
)

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script> {{ 7*7 }} {% raw %}"


@pytest.fixture(scope="module")
def settings():
    return load_settings(str(REPO / "newsletter.toml"))


def figures(**changes: int | None) -> Figures:
    values = dict.fromkeys((f.name for f in fields(Figures)), 0)
    values.update(audience=120, sent=110, delivered=100, bounced_hard=4, bounced_soft=2)
    values.update(complained=1, unsubscribed=3, failed=6, unknown=2, skipped=2)
    values.update(opened=None, clicked=17, bot_clicked=5)
    return Figures(**(values | changes))


def reader(n: int, status: DeliveryStatus = DeliveryStatus.FAILED) -> RecipientStatus:
    return RecipientStatus(
        f"reader{n}@example.org", status, None, "422 refused", "2026-12-01T09:00:00+00:00", "x"
    )


def campaign_report(**changes: object) -> CampaignReport:
    report = CampaignReport(
        campaign="2026-11-digest",
        status=CampaignStatus.SENT,
        transport="postmark",
        counts={"sent": 110, "failed": 6, "unknown": 2, "skipped": 2},
        events={"delivered": 100, "bounced": 4},
        rehearsals=(),
        recipients=(),
        subject="November: supervision & care",
        started_at="2026-12-01T09:00:00+00:00",
        finished_at="2026-12-01T09:05:00+00:00",
        figures=figures(),
        timeline=Timeline(
            "hour",
            ("2026-12-01T09:00:00+00:00", "2026-12-01T10:00:00+00:00"),
            {"sent": (110, 0), "delivered": (80, 20), "bounced": (3, 1), "clicked": (9, 8)},
        ),
        bounce_reasons=(BounceGroup("mailbox does not exist", 4, 0), BounceGroup("full", 0, 2)),
        bounce_domains=(BounceGroup("example.net", 3, 1), BounceGroup("example.com", 1, 1)),
        links=(LinkClicks("https://blog.example.org/clay", 12, 15, 4),),
        retry=(
            RetryGroup(
                DeliveryStatus.FAILED,
                "newsletter send 2026-11-digest --retry-failed",
                tuple(reader(n) for n in range(6)),
            ),
            RetryGroup(
                DeliveryStatus.UNKNOWN,
                "newsletter send 2026-11-digest --retry-unknown",
                tuple(reader(n, DeliveryStatus.UNKNOWN) for n in range(10, 12)),
            ),
        ),
        events_recorded=130,
    )
    return replace(report, **changes)


def the_overview(**changes: object) -> Overview:
    rates = CampaignRates(
        "2026-10-digest", CampaignStatus.SENT, "2026-10-01T09:00:00+00:00",
        100, 96, 3, 1, 2, 0.96, 0.03, 0.01, 0.02,
    )  # fmt: skip
    months = (
        MonthRow("2026-11", 4, 2, 30, 3, 1, 1, 0, 0, 33),
        MonthRow("2026-12", 2, 0, 0, 1, 2, 0, 1, 1, -3),
    )
    return replace(Overview((rates, replace(rates, campaign="2026-11-digest")), months), **changes)


class Page(HTMLParser):
    """What a browser would fetch from the page, and the attributes the tests look up."""

    FETCHES: ClassVar = {("script", "src"), ("img", "src"), ("link", "href"), ("iframe", "src"),
               ("image", "href"), ("image", "xlink:href"), ("use", "href"), ("source", "src"),
               ("object", "data"), ("embed", "src"), ("audio", "src"), ("video", "src")}  # fmt: skip

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def fetched(self) -> list[str]:
        return [
            value or ""
            for tag, attrs in self.tags
            for name, value in attrs.items()
            if (tag, name) in self.FETCHES or (name == "style" and "url(" in (value or ""))
        ]

    def figures(self) -> dict[str, str]:
        return {
            attrs["data-figure"] or "": attrs["data-value"] or ""
            for _, attrs in self.tags
            if "data-figure" in attrs
        }

    def charts(self) -> list[str]:
        return [a["data-chart"] or "" for _, a in self.tags if "data-chart" in a]

    def tables(self) -> list[str]:
        return [a["data-table"] or "" for _, a in self.tags if "data-table" in a]


def no_external_references(html: str) -> None:
    """Nothing a browser would load: no script at all, no element that fetches, no CSS
    url() or @import, and no http(s) address but the XML namespaces SVG declares."""
    assert "<script" not in html
    assert Page(html).fetched() == []
    assert "@import" not in html and "url(" not in html
    addresses = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_every_headline_figure_is_marked_with_its_value(settings) -> None:
    report = campaign_report()
    page = Page(campaign_page(report, settings, now=NOW))
    shown = page.figures()
    assert set(shown) == {f.name for f in fields(Figures)}
    for f in fields(Figures):
        value = getattr(report.figures, f.name)
        assert shown[f.name] == ("" if value is None else str(value)), f.name


def test_a_figure_not_tracked_says_so(settings) -> None:
    html = campaign_page(campaign_report(figures=figures(clicked=None)), settings, now=NOW)
    marked = re.search(r"<li data-figure='clicked'[^>]*>.*?</li>", html).group(0)
    assert NOT_TRACKED in marked
    opened = re.search(r"<li data-figure='opened'[^>]*>.*?</li>", html).group(0)
    assert NOT_TRACKED in opened
    assert "Apple Mail Privacy Protection" in html
    assert "probable bots" in html


def test_every_chart_has_a_table_of_its_numbers(settings) -> None:
    page = Page(campaign_page(campaign_report(), settings, now=NOW))
    assert page.charts() == ["timeline", "reasons", "domains", "links"]
    assert page.tables() == page.charts()
    html = campaign_page(campaign_report(), settings, now=NOW)
    assert html.count("<svg ") == 4
    assert 'role="img"' in html and "viewBox=" in html
    assert "mailbox does not exist" in html and "example.net" in html


def test_the_page_asks_for_nothing_from_anywhere(settings) -> None:
    no_external_references(campaign_page(campaign_report(links=()), settings, now=NOW))
    no_external_references(overview_page(the_overview(), settings, now=NOW))


def test_a_links_address_is_text_not_a_reference(settings) -> None:
    html = campaign_page(campaign_report(), settings, now=NOW)
    assert "href='https://blog.example.org/clay'" not in html
    assert 'href="https://blog.example.org/clay"' not in html
    assert "<td class='wide'>https://blog.example.org/clay</td>" in html or (
        "https://blog.example.org/clay</th>" in html
    )


def test_what_readers_and_providers_wrote_is_shown_as_text(settings) -> None:
    hostile = campaign_report(
        subject=HOSTILE,
        bounce_reasons=(BounceGroup(HOSTILE, 1, 0),),
        bounce_domains=(BounceGroup(HOSTILE, 1, 0),),
        links=(LinkClicks("https://x.example/?q=<script>{{ 7*7 }}", 1, 1, 0),),
        retry=(
            RetryGroup(
                DeliveryStatus.FAILED,
                "newsletter send x --retry-failed",
                (replace(reader(1), email=HOSTILE, error=HOSTILE),),
            ),
        ),
    )
    html = campaign_page(hostile, settings, now=NOW)
    assert "<script" not in html
    assert "{{ 7*7 }}" in html and "{% raw %}" in html  # shown, not run as template code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    overview = the_overview(months=())
    rates = replace(overview.campaigns[0], campaign=HOSTILE)
    html = overview_page(replace(overview, campaigns=(rates,)), settings, now=NOW)
    assert "<script" not in html and "&lt;script&gt;" in html


def test_long_lists_are_cut_and_say_how_many_more(settings) -> None:
    many = tuple(reader(n) for n in range(LIST_CAP + 7))
    retry = (RetryGroup(DeliveryStatus.FAILED, "newsletter send x --retry-failed", many),)
    domains = tuple(BounceGroup(f"d{n}.example", 1, 0) for n in range(TABLE_CAP + 3))
    html = campaign_page(campaign_report(retry=retry, bounce_domains=domains), settings, now=NOW)
    assert f"reader{LIST_CAP - 1}@example.org" in html
    assert f"reader{LIST_CAP}@example.org" not in html
    assert "and 7 more" in html and "--format csv" in html
    assert "and 3 more rows" in html
    assert "newsletter send x --retry-failed" in html
    assert f"Failed: {LIST_CAP + 7} readers" in html


def test_a_timeline_with_every_series_draws_each_in_a_colour_of_its_own(settings) -> None:
    kinds = ("sent", "queued", "failed", "unknown", "delivered", "bounced", "soft_bounced",
             "complained", "unsubscribed", "opened", "clicked")  # fmt: skip
    hours = ("2026-12-01T09:00:00+00:00", "2026-12-01T10:00:00+00:00")
    timeline = Timeline("hour", hours, {k: (n + 1, n) for n, k in enumerate(kinds)})
    html = campaign_page(campaign_report(timeline=timeline), settings, now=NOW)
    colours = set(re.findall(r"var\(--c(\d+)\)", html))
    assert len(colours) >= len(kinds)
    for n in colours:  # the page defines each colour it uses, in light and dark
        assert html.count(f"--c{n}:") == 2


def test_a_report_with_no_events_yet_renders_and_says_so(settings) -> None:
    empty = campaign_report(
        figures=figures(delivered=0, bounced_hard=0, bounced_soft=0, complained=0,
                        unsubscribed=0, opened=None, clicked=None, bot_clicked=0),
        timeline=Timeline("hour", (), {}),
        bounce_reasons=(), bounce_domains=(), links=(), retry=(), events_recorded=0,
    )  # fmt: skip
    html = campaign_page(empty, settings, now=NOW)
    assert "data-no-events" in html and "No event from the provider yet" in html
    assert "No bounce recorded" in html and "No click recorded" in html
    assert "no reader failed" in html
    no_external_references(html)


def test_the_overview_has_every_campaign_and_every_month(settings) -> None:
    html = overview_page(the_overview(), settings, campaign_link="/reports/{slug}", now=NOW)
    page = Page(html)
    assert page.charts() == ["campaigns", "months"] == page.tables()
    assert "href='/reports/2026-11-digest'" in html
    assert "96.0 %" in html and "+33" in html and "-3" in html
    no_external_references(html)
    empty = overview_page(Overview((), ()), settings, now=NOW)
    assert "No campaign has been sent yet" in empty and "No subscriber yet" in empty


def test_the_same_report_twice_is_the_same_file(settings) -> None:
    assert campaign_page(campaign_report(), settings, now=NOW) == campaign_page(
        campaign_report(), settings, now=NOW
    )


def test_the_page_fits_a_phone_and_follows_dark_mode(settings) -> None:
    html = campaign_page(campaign_report(), settings, now=NOW)
    assert "width=device-width" in html
    assert "prefers-color-scheme:dark" in html
    assert re.search(r"figure svg\{[^}]*width:100%", html)
    assert re.search(r"\.table\{[^}]*overflow:auto", html)
    assert " width=" not in re.search(r"<svg [^>]*>", html).group(0)


def test_the_report_file_is_the_owners_only(tmp_path: Path) -> None:
    path = write_report("<p>hello</p>", tmp_path / "reports" / "x.html")
    assert path.read_text(encoding="utf-8") == "<p>hello</p>"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    write_report("<p>again</p>", path)
    assert path.read_text(encoding="utf-8") == "<p>again</p>"
    assert [p.name for p in path.parent.iterdir()] == ["x.html"]  # no temporary file left


# -- the command ------------------------------------------------------------------------
def send_outbox(run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    assert run("send", "2026-10-digest", "--yes").exit_code == 0


def test_report_html_writes_the_campaigns_page_and_prints_its_path(project: Path, run) -> None:
    send_outbox(run)
    result = run("report", "2026-10-digest", "--html", "--no-open")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.splitlines()[-1])
    assert path == project / "reports" / "2026-10-digest.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    html = path.read_text(encoding="utf-8")
    figures = json.loads(run("report", "2026-10-digest", "--format", "json").stdout)["figures"]
    shown = Page(html).figures()
    assert shown == {k: "" if v is None else str(v) for k, v in figures.items()}
    no_external_references(html)


def test_report_html_without_a_campaign_writes_the_overview(project: Path, run) -> None:
    send_outbox(run)
    out = project / "elsewhere" / "all.html"
    result = run("report", "--html", "--out", str(out), "--no-open")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(out)
    assert "2026-10-digest" in out.read_text(encoding="utf-8")
    result = run("report", "--html", "--no-open")
    assert Path(result.stdout.splitlines()[-1]) == project / "reports" / "overview.html"


def test_report_html_errors_are_clear(project: Path, run) -> None:
    result = run("report", "never-sent", "--html", "--no-open")
    assert result.exit_code == 1 and "has not been sent yet" in result.stderr
    assert not (project / "reports").exists()
    send_outbox(run)
    (project / "blocked").write_text("a file, not a folder", encoding="utf-8")
    result = run("report", "--html", "--out", "blocked/overview.html", "--no-open")
    assert result.exit_code == 1
    assert "Could not write the report" in result.stderr and "Traceback" not in result.stderr
    for fmt in ("csv", "json"):
        result = run("report", "2026-10-digest", "--format", fmt, "--out", "x.html")
        assert result.exit_code == 2 and "--out" in result.stderr


# -- the preview server shows the reports; the public one does not ------------------------
@pytest.mark.slow
def test_the_preview_shows_the_reports_from_the_database(project: Path, run) -> None:
    import requests

    from web_servers import Running

    send_outbox(run)
    running = Running(["preview", "2026-10-digest", "--port", "0", "--no-open"], project)
    try:
        mine = f"127.0.0.1:{running.port}"
        assert f"{running.url}/reports/" in running.stderr
        overview = requests.get(f"{running.url}/reports/", timeout=60)
        assert overview.status_code == 200, overview.text
        assert overview.headers["Cache-Control"] == "no-store"
        assert "href='/reports/2026-10-digest'" in overview.text
        no_external_references(overview.text)
        assert requests.get(f"{running.url}/reports", timeout=60).status_code == 200
        page = requests.get(f"{running.url}/reports/2026-10-digest", timeout=60)
        assert page.status_code == 200
        figures = json.loads(run("report", "2026-10-digest", "--format", "json").stdout)
        shown = Page(page.text).figures()
        assert shown == {k: "" if v is None else str(v) for k, v in figures["figures"].items()}
        missing = requests.get(f"{running.url}/reports/never-sent", timeout=60)
        assert missing.status_code == 404 and "has not been sent yet" in missing.text
        odd = requests.get(f"{running.url}/reports/..%2f..%2fetc", timeout=60)
        assert odd.status_code == 404
        posted = requests.post(f"{running.url}/reports/", timeout=60)
        assert posted.status_code == 405
        for headers in ({"Host": "attacker.example"}, {"Host": mine, "Origin": "null"}):
            for path in ("/reports/", "/reports/2026-10-digest"):
                refused = requests.get(running.url + path, headers=headers, timeout=60)
                assert refused.status_code == 403 and "@example" not in refused.text
    finally:
        running.stop()
    assert "Traceback" not in running.stderr, running.stderr


def test_the_public_server_has_no_reports() -> None:
    from newsletter.web.serve import ROUTES

    assert not [r.path for r in ROUTES if r.path.startswith("/reports")]
