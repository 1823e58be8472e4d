"""`newsletter report --html` in real headless Chromium (Debian's, driven by Playwright):
a campaign sent through the fake Postmark, with deliveries, bounces, a complaint,
unsubscribes and clicks fed in through `serve`'s Postmark webhook. The page shows the
figures `report --format json` has, draws its charts, asks nothing of the network, fits
a phone, and a campaign with no event yet still has its page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
import requests

from conftest import CHROMIUM, CHROMIUM_ARGS, run_process, set_delivery
from fakes.postmark import FakePostmark
from web_servers import SERVE_SECRET, Running

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

SLUG = "2026-10-digest"
KEY = {"NEWSLETTER_API_KEY": "pm-report"}
LINK = "https://blog.example.org/2026/10/clay-on-the-table"


@dataclass(frozen=True, slots=True)
class Sent:
    root: Path
    messages: tuple[dict, ...]  # what the fake Postmark accepted, in order


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_process(*args, cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def postmark_events(messages: tuple[dict, ...], sent_at: datetime) -> list[dict]:
    """What Postmark's webhooks would post: every message delivered but two bounced (one
    hard, one soft), a complaint, two unsubscribes, clicks by people and by a scanner."""
    from newsletter.event_rules import SCANNER_AGENTS
    from newsletter.report import BOT_CLICK_SECONDS

    def at(seconds: float) -> str:
        return (sent_at + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    def to(m: dict) -> str:  # Postmark's events carry the bare address
        return parseaddr(m["To"])[1]

    def base(m: dict) -> dict:
        return {
            "MessageID": m["_MessageID"],
            "Metadata": m["Metadata"],
            "MessageStream": "broadcast",
        }

    hard, soft, *delivered = messages
    events = [
        base(hard) | {"RecordType": "Bounce", "ID": 9001, "Type": "HardBounce", "TypeCode": 1,
                      "Email": to(hard), "BouncedAt": at(30),
                      "Description": "The server was unable to deliver your message"},
        base(soft) | {"RecordType": "Bounce", "ID": 9002, "Type": "SoftBounce", "TypeCode": 4096,
                      "Email": to(soft), "BouncedAt": at(40), "Description": "Mailbox full"},
    ]  # fmt: skip
    for n, m in enumerate(delivered):
        events.append(
            base(m) | {"RecordType": "Delivery", "Recipient": to(m), "DeliveredAt": at(60 + n)}
        )
    complainer, leaver, other_leaver, clicker, second_clicker, scanned = delivered[:6]
    events += [
        base(complainer) | {"RecordType": "SpamComplaint", "ID": 9003, "Type": "SpamComplaint",
                            "TypeCode": 100001, "Email": to(complainer), "BouncedAt": at(3600)},
        base(leaver) | {"RecordType": "SubscriptionChange", "Recipient": to(leaver),
                        "ChangedAt": at(4000), "SuppressSending": True,
                        "SuppressionReason": "ManualSuppression", "Origin": "Recipient"},
        base(other_leaver) | {"RecordType": "SubscriptionChange", "Recipient": to(other_leaver),
                              "ChangedAt": at(5000), "SuppressSending": True,
                              "SuppressionReason": "ManualSuppression", "Origin": "Recipient"},
    ]  # fmt: skip
    person = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15"
    for m, seconds, agent in (
        (clicker, 7200, person),
        (second_clicker, 9000, person),
        (scanned, 70 + BOT_CLICK_SECONDS / 10, f"Mozilla/5.0 {SCANNER_AGENTS[0]}"),
    ):
        events.append(
            base(m) | {"RecordType": "Click", "Recipient": to(m), "ReceivedAt": at(seconds),
                       "OriginalLink": LINK, "UserAgent": agent, "ClickLocation": "HTML"}
        )  # fmt: skip
    return events


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    """The example campaign sent through the fake Postmark, its events posted to `serve`."""
    from conftest import copy_example

    root = copy_example(tmp_path_factory.mktemp("report") / "project")
    run(root, "subscribers", "import", "subscribers.example.csv")
    sent_at = datetime.now(UTC)
    with FakePostmark(token=KEY["NEWSLETTER_API_KEY"]) as pm:
        set_delivery(root, transport="postmark", base_url=pm.url)
        run(root, "send", SLUG, "--yes", env=KEY)
        messages = tuple(pm.accepted)
    assert len(messages) >= 8
    secret = {"NEWSLETTER_WEBHOOK_SECRET_POSTMARK": SERVE_SECRET}
    server = Running(["serve", "--port", "0"], root, secret)
    try:
        for event in postmark_events(messages, sent_at):
            answer = requests.post(
                f"{server.url}/webhooks/postmark",
                json=event,
                auth=tuple(SERVE_SECRET.split(":", 1)),
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    set_delivery(root, transport="outbox")
    yield Sent(root, messages)


def report_file(root: Path, *args: str) -> Path:
    """`report ... --html --no-open`: the file whose path is its last line."""
    path = Path(run(root, "report", *args, "--html", "--no-open").splitlines()[-1])
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Opened:
    """A report file open in a page that may not reach the network: every request is
    recorded, and any to somewhere other than the file itself is refused."""

    def __init__(self, browser, path: Path, width: int, scheme: str = "light") -> None:
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme, offline=True
        )
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)

    def _route(self, route) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


def test_the_campaign_page_shows_what_report_json_says(sent: Sent, browser) -> None:
    figures = json.loads(run(sent.root, "report", SLUG, "--format", "json"))["figures"]
    assert figures["bounced_hard"] == 1 and figures["bounced_soft"] == 1
    assert figures["complained"] == 1 and figures["unsubscribed"] == 2
    assert figures["clicked"] == 2 and figures["bot_clicked"] == 1
    opened = Opened(browser, report_file(sent.root, SLUG), 1280)
    try:
        page = opened.page
        shown = page.eval_on_selector_all(
            "[data-figure]",
            "els => Object.fromEntries(els.map(e => [e.dataset.figure,"
            " [e.dataset.value, e.querySelector('.value').textContent]]))",
        )
        assert set(shown) == set(figures)
        for name, value in figures.items():
            marked, text = shown[name]
            if value is None:
                assert (marked, text) == ("", "not tracked"), name
            else:
                assert marked == str(value) and text.replace(",", "") == str(value), name
        charts = page.locator("figure[data-chart] svg")
        assert charts.count() >= 4  # timeline, bounces by reason and by domain, links
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50
            assert charts.nth(i).locator(".series").count() > 0  # something drawn in it
        for chart in page.eval_on_selector_all(
            "figure[data-chart]", "els => els.map(e => e.dataset.chart)"
        ):
            assert page.locator(f"table[data-table='{chart}'] tbody tr").count() > 0, chart
        assert page.get_by_text(LINK).count() == 1  # in the links' table
        assert page.get_by_text("Apple Mail Privacy Protection").count() == 1
        assert opened.requests == [opened.url] and opened.refused == []
    finally:
        opened.close()


def test_the_page_fits_a_phone_in_dark_mode(sent: Sent, browser) -> None:
    path = report_file(sent.root, SLUG)
    opened = Opened(browser, path, 375, scheme="dark")
    try:
        page = opened.page
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(28, 31, 30)"  # the newsletter's dark palette
        for i in range(page.locator("figure[data-chart] svg").count()):
            box = page.locator("figure[data-chart] svg").nth(i).bounding_box()
            assert box and 0 < box["width"] <= 375
        assert opened.refused == []
    finally:
        opened.close()


def test_the_overview_draws_every_campaign_and_the_list(sent: Sent, browser) -> None:
    path = report_file(sent.root)
    assert path == sent.root / "reports" / "overview.html"
    for width in (1280, 375):
        opened = Opened(browser, path, width)
        try:
            page = opened.page
            assert page.locator("table[data-table='campaigns']").get_by_text(SLUG).count() == 1
            for chart in ("campaigns", "months"):
                box = page.locator(f"figure[data-chart='{chart}'] svg").bounding_box()
                assert box and box["width"] > 0 and box["height"] > 0
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert opened.requests == [opened.url] and opened.refused == []
        finally:
            opened.close()


def test_a_campaign_with_no_event_yet_has_its_page_and_says_so(sent: Sent, browser) -> None:
    run(sent.root, "send", "winter-workshop", "--yes")  # the outbox: no provider events
    opened = Opened(browser, report_file(sent.root, "winter-workshop"), 375)
    try:
        page = opened.page
        assert page.get_by_text("No event from the provider yet").is_visible()
        assert page.locator("[data-figure='audience']").get_attribute("data-value") != "0"
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert opened.refused == []
    finally:
        opened.close()
