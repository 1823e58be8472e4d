"""The report's data (issue 20): one campaign's headline figures, timeline, bounces by
reason and by receiving domain, links with probable bots apart and the readers to retry;
and the overview, every campaign's rates and the list month by month.

Campaigns are sent for real through the local Postmark fake; what happened next comes in
through `POST /webhooks/postmark` over real HTTP and our own one-click unsubscribe link,
as it would in production. Every figure is checked against what was sent in, on the
project's database (SQLite, or PostgreSQL with TEST_POSTGRES_URL).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import Runner, copy_example, set_delivery
from fakes.postmark import FakePostmark
from newsletter.catalog import load_settings
from newsletter.event_rules import SCANNER_AGENTS
from newsletter.models import DeliveryStatus
from newsletter.report import (
    BOT_CLICK_SECONDS,
    BounceGroup,
    LinkClicks,
    campaign_report,
    is_scanner,
    overview,
    parse_time,
)
from newsletter.store import open_store
from newsletter.store.signup_requests import MailState, RequestForm, RequestKeys, RequestLimits
from serve_app import serve_in_process
from webhook_signers import basic_auth

TOKEN = "pm-test"
HOOK_USER, HOOK_PASSWORD = "hooks", "s3cret-pw"
MAIN, QUIET = "spring-issue", "summer-issue"  # QUIET: sent, but nothing reported about it

# (address, what happens to them after MAIN is sent)
CLINIC = ["ana", "ben", "cara", "dev", "eli", "fay"]
MAIL = ["hal", "ida", "jon", "kim"]
GONE = "gone@clinic.example"  # inactive at Postmark: every message to it fails
UNKNOWN_USER = "550 5.1.1 Unknown user: the mailbox does not exist"
MAILBOX_FULL = "452 4.2.2 Mailbox full"
L1, L2, L3 = (f"https://blog.riverbend-clinicians.example/{p}" for p in ("rest", "clay", "ce"))
CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 Chrome/126.0 Safari"
SCANNER = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b"
_ids = itertools.count(1)


def address(name: str) -> str:
    return f"{name}@{'clinic' if name in CLINIC else 'mail'}.example"


def campaign_file(subject: str) -> str:
    return (
        f'---\nsubject: "{subject}"\ntemplate: announcement\n'
        "articles:\n  - articles/2026-11-03-winter-workshop-boundaries-and-ethics.md\n---\n\n"
        "A short note from the editors.\n"
    )


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Sent:
    """A project whose campaigns went through the Postmark fake."""

    root: Path
    config: str
    accepted: list[dict[str, Any]]
    run: Runner

    def cli(self, *args: str) -> Any:
        result = self.run(*args, env={"NEWSLETTER_CONFIG": self.config})
        assert result.exit_code == 0, result.output + result.stderr
        return result

    def message(self, slug: str, email: str) -> dict[str, Any]:
        return next(
            m for m in self.accepted if m["To"] == email and m["Metadata"]["campaign"] == slug
        )


def send_through_postmark(root: Path, slugs: list[str], inactive: tuple[str, ...] = ()) -> Sent:
    run, config = Runner(), str(root / "newsletter.toml")
    with FakePostmark(token=TOKEN, inactive=inactive) as pm:
        set_delivery(root, transport="postmark", base_url=pm.url)
        for slug in slugs:
            done = run(
                "send",
                slug,
                "--yes",
                env={"NEWSLETTER_CONFIG": config, "NEWSLETTER_API_KEY": TOKEN},
            )
            assert done.exit_code in (0, 3), done.output + done.stderr  # 3: some failed
        accepted = list(pm.accepted)
    return Sent(root, config, accepted, run)


class Webhook:
    """`POST /webhooks/postmark` of the serve app, in this process, over real HTTP."""

    def __init__(self, base: str, sent: Sent) -> None:
        self.base, self.sent, self.posted = base, sent, 0

    def post(self, slug: str, name: str, record: str, **fields: Any) -> None:
        email = address(name) if "@" not in name else name
        message = self.sent.message(slug, email)
        body = {
            "RecordType": record,
            "MessageID": message["_MessageID"],
            "Recipient": email,
            "Email": email,
            "MessageStream": "broadcast",
            "Metadata": message["Metadata"],
        } | fields
        answer = requests.post(
            f"{self.base}/webhooks/postmark",
            json=body,
            headers={"Authorization": basic_auth(HOOK_USER, HOOK_PASSWORD)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        self.posted += 1

    def bounce(self, slug: str, name: str, kind: str, description: str, at: dt.datetime) -> None:
        code = {"HardBounce": 1, "SoftBounce": 4096}[kind]
        self.post(
            slug,
            name,
            "Bounce",
            ID=next(_ids),
            Type=kind,
            TypeCode=code,
            Description=description,
            BouncedAt=iso(at),
        )

    def unsubscribe_by_link(self, slug: str, name: str) -> None:
        """The one-click unsubscribe link of the reader's own message, used."""
        headers = {h["Name"]: h["Value"] for h in self.sent.message(slug, address(name))["Headers"]}
        link = re.search(r"<(https://[^>]+)>", headers["List-Unsubscribe"]).group(1)
        path = "/u/" + link.rsplit("/u/", 1)[1]
        answer = requests.post(self.base + path, data={"List-Unsubscribe": "One-Click"}, timeout=30)
        assert answer.status_code == 200, answer.text


@dataclass
class Story:
    """The sent project, and when MAIN's events happened."""

    sent: Sent
    t0: dt.datetime  # MAIN's messages reached the readers a minute after this
    posted: int  # provider events posted about MAIN (our own link's unsubscribe aside)
    store: Any


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """MAIN and QUIET sent through Postmark to ten readers on two domains and one address
    Postmark refuses; then, about MAIN only: six deliveries (one with its time in another
    offset), hard bounces (one reason, both domains), soft bounces (another reason, both
    domains, one reader twice), a complaint, an unsubscribe through Postmark and one by our
    own link, an open, and clicks: two readers on two links, one click three seconds
    after delivery, and one from a link scanner's user agent."""
    root = copy_example(tmp_path_factory.mktemp("report") / "project")
    readers = [address(n) for n in CLINIC + MAIL] + [GONE]
    (root / "readers.csv").write_text("email\n" + "\n".join(readers) + "\n", encoding="utf-8")
    for slug, subject in ((MAIN, "Spring at Riverbend"), (QUIET, "Summer at Riverbend")):
        (root / "campaigns" / f"{slug}.md").write_text(campaign_file(subject), encoding="utf-8")
    imported = Runner()(
        "subscribers",
        "import",
        str(root / "readers.csv"),
        env={"NEWSLETTER_CONFIG": str(root / "newsletter.toml")},
    )
    assert imported.exit_code == 0, imported.stderr
    sent = send_through_postmark(root, [MAIN, QUIET], inactive=(GONE,))
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NEWSLETTER_WEBHOOK_SECRET_POSTMARK", f"{HOOK_USER}:{HOOK_PASSWORD}")
        with serve_in_process(sent.config) as base:
            hook = Webhook(base, sent)
            arrived = t0 + dt.timedelta(minutes=1)
            for name in ("ana", "ben", "cara", "dev", "hal"):
                hook.post(MAIN, name, "Delivery", DeliveredAt=iso(arrived))
            # the same moment, written with the offset of New York
            ny = arrived.astimezone(dt.timezone(dt.timedelta(hours=-5)))
            hook.post(MAIN, "jon", "Delivery", DeliveredAt=ny.isoformat())
            hook.bounce(MAIN, "eli", "HardBounce", UNKNOWN_USER, arrived)
            hook.bounce(MAIN, "kim", "HardBounce", UNKNOWN_USER, arrived)
            hook.bounce(MAIN, "fay", "SoftBounce", MAILBOX_FULL, arrived)
            hook.bounce(MAIN, "fay", "SoftBounce", MAILBOX_FULL, arrived + dt.timedelta(hours=2))
            hook.bounce(MAIN, "ida", "SoftBounce", MAILBOX_FULL, arrived)
            hook.post(
                MAIN,
                "jon",
                "SpamComplaint",
                ID=next(_ids),
                Type="SpamComplaint",
                TypeCode=100001,
                BouncedAt=iso(t0 + dt.timedelta(hours=1)),
            )
            hook.post(
                MAIN,
                "dev",
                "SubscriptionChange",
                ChangedAt=iso(t0 + dt.timedelta(hours=1)),
                SuppressSending=True,
                SuppressionReason="ManualSuppression",
                Origin="Recipient",
            )
            hook.unsubscribe_by_link(MAIN, "cara")
            hook.post(MAIN, "ana", "Open", ReceivedAt=iso(t0 + dt.timedelta(minutes=20)))
            for name, link, minutes in (("ana", L1, 30), ("ben", L1, 35), ("ben", L2, 36)):
                at = iso(t0 + dt.timedelta(minutes=minutes))
                hook.post(MAIN, name, "Click", ReceivedAt=at, OriginalLink=link, UserAgent=CHROME)
            # three seconds after hal's message arrived: a gateway's scanner, not hal
            soon = iso(arrived + dt.timedelta(seconds=3))
            hook.post(MAIN, "hal", "Click", ReceivedAt=soon, OriginalLink=L2, UserAgent=CHROME)
            # a scanner's click on ana's message, two hours on, with its user agent
            at = iso(t0 + dt.timedelta(hours=2))
            hook.post(MAIN, "ana", "Click", ReceivedAt=at, OriginalLink=L3, UserAgent=SCANNER)
            posted = hook.posted
    store = open_store(load_settings(sent.config).database_url)
    try:
        yield Story(sent, t0, posted, store)
    finally:
        store.close()


def report_of(story: Story, slug: str) -> Any:
    return campaign_report(story.store.ledger, story.store.events, slug)


def test_every_headline_figure(story: Story) -> None:
    figures = report_of(story, MAIN).figures
    assert asdict(figures) == {
        "audience": 11,  # ten readers and the address Postmark refuses
        "sent": 10,
        "queued": 0,
        "delivered": 6,
        "bounced_hard": 2,  # eli, kim
        "bounced_soft": 2,  # fay (twice), ida
        "complained": 1,  # jon
        "unsubscribed": 2,  # dev through Postmark, cara by our own link
        "failed": 1,  # gone
        "unknown": 0,
        "skipped": 0,
        "opened": 1,  # ana
        "clicked": 2,  # ana and ben; hal's only click came 3 s after delivery
        "bot_clicked": 1,  # hal
    }


def test_the_report_keeps_its_campaign_and_counts(story: Story) -> None:
    report = report_of(story, MAIN)
    assert report.subject == "Spring at Riverbend"
    assert report.started_at and report.finished_at
    assert report.counts[DeliveryStatus.SENT] == 10
    assert sum(report.counts.values()) == 11
    assert report.events["unsubscribed"] == 2
    assert len(report.recipients) == 11
    assert report.events_recorded == story.posted  # our own link's unsubscribe is not one


def test_bounces_by_reason_and_by_domain(story: Story) -> None:
    report = report_of(story, MAIN)
    assert report.bounce_reasons == (
        BounceGroup(UNKNOWN_USER, hard=2, soft=0),
        BounceGroup(MAILBOX_FULL, hard=0, soft=2),  # fay's second bounce counted once
    )
    assert report.bounce_domains == (
        BounceGroup("clinic.example", hard=1, soft=1),
        BounceGroup("mail.example", hard=1, soft=1),
    )


def test_links_with_probable_bots_apart(story: Story) -> None:
    assert report_of(story, MAIN).links == (
        LinkClicks(L1, readers=2, clicks=2, bot_clicks=0),
        LinkClicks(L2, readers=1, clicks=1, bot_clicks=1),  # hal's came too soon
        LinkClicks(L3, readers=0, clicks=0, bot_clicks=1),  # a scanner's user agent
    )


def test_the_failed_readers_and_the_command_that_retries_them(story: Story) -> None:
    (group,) = report_of(story, MAIN).retry
    assert group.status == DeliveryStatus.FAILED
    assert group.command == f"newsletter send {MAIN} --retry-failed"
    assert [r.email for r in group.readers] == [GONE]
    send = story.sent.run("send", "--help").output
    assert "--retry-failed" in send and "--retry-unknown" in send


def test_the_timeline(story: Story) -> None:
    timeline = report_of(story, MAIN).timeline
    assert timeline.bucket == "hour"
    starts = [parse_time(b) for b in timeline.buckets]
    assert all(b - a == dt.timedelta(hours=1) for a, b in itertools.pairwise(starts))
    assert all(s.minute == s.second == 0 for s in starts)
    assert {name: sum(counts) for name, counts in timeline.series.items()} == {
        "sent": 10,
        "failed": 1,
        "delivered": 6,
        "bounced": 2,
        "soft_bounced": 3,  # events, not readers
        "complained": 1,
        "unsubscribed": 2,
        "opened": 1,
        "clicked": 5,
    }
    assert all(len(c) == len(starts) for c in timeline.series.values())
    # the six deliveries happened at one moment, whatever offset a time was written in
    arrived = story.t0 + dt.timedelta(minutes=1)
    hour = starts.index(arrived.replace(minute=0, second=0))
    assert timeline.series["delivered"][hour] == 6


def test_json_carries_the_page_data_and_the_old_keys(story: Story) -> None:
    printed = json.loads(story.sent.cli("report", MAIN, "--format", "json").stdout)
    report = report_of(story, MAIN)
    for key in ("campaign", "counts", "recipients", "status", "transport", "events"):
        assert key in printed
    assert {"email", "status", "provider_message_id", "error"} <= set(printed["recipients"][0])
    assert printed["figures"] == asdict(report.figures)
    assert printed["timeline"]["buckets"] == list(report.timeline.buckets)
    assert printed["bounce_domains"][0] == {"key": "clinic.example", "hard": 1, "soft": 1}
    assert printed["links"][0]["url"] == L1
    assert printed["retry"][0]["command"] == f"newsletter send {MAIN} --retry-failed"
    assert printed["retry"][0]["readers"][0]["email"] == GONE
    assert printed["events_recorded"] == story.posted
    table = story.sent.cli("report", MAIN)
    assert "audience 11" in table.stderr and "bounced 2 hard, 2 soft" in table.stderr


def test_a_campaign_nothing_was_reported_about(story: Story) -> None:
    report = report_of(story, QUIET)
    assert report.events_recorded == 0
    f = report.figures
    # Postmark's refusal of gone in MAIN took them off the list
    assert (f.audience, f.sent, f.failed) == (10, 10, 0)
    assert (f.delivered, f.bounced_hard, f.bounced_soft, f.complained, f.unsubscribed) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert f.opened is None and f.clicked is None and f.bot_clicked == 0
    assert report.bounce_reasons == report.bounce_domains == report.links == ()
    assert set(report.timeline.series) == {"sent"} and report.retry == ()
    printed = json.loads(story.sent.cli("report", QUIET, "--format", "json").stdout)
    assert printed["figures"]["opened"] is None and printed["figures"]["clicked"] is None
    assert printed["events_recorded"] == 0


@pytest.mark.parametrize(
    ("agent", "scanner"),
    [
        (SCANNER, True),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", True),
        ("python-requests/2.32.3", True),
        ("curl/8.5.0", True),
        ("Go-http-client/1.1", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/126.0", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        (CHROME, False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148", False),
        (None, False),
    ],
)
def test_scanner_agents(agent: str | None, scanner: bool) -> None:
    assert is_scanner(agent) is scanner
    assert all(token == token.lower() for token in SCANNER_AGENTS)
    assert BOT_CLICK_SECONDS > 3  # hal's click above is a bot's


# -- the overview ---------------------------------------------------------------------------
def months_before(now: dt.datetime, n: int) -> dt.datetime:
    """Noon on the 10th, ``n`` months before ``now``'s month (UTC)."""
    year, month = divmod(now.year * 12 + now.month - 1 - n, 12)
    return dt.datetime(year, month + 1, 10, 12, tzinfo=dt.UTC)


def test_the_overview_month_by_month(tmp_path: Path) -> None:
    """Four sign-ups three months ago (three confirmed), a staff add two months ago,
    nothing last month; this month ten imported readers get three campaigns, one bounces
    (through Postmark), one complains, one unsubscribes through Postmark and one by hand,
    and two are erased (one active, one who never confirmed)."""
    root = copy_example(tmp_path / "project")
    config = str(root / "newsletter.toml")
    now = dt.datetime.now(dt.UTC)
    m0, m1 = months_before(now, 3), months_before(now, 2)
    store = open_store(load_settings(config).database_url)
    try:
        signed = {}
        for i, name in enumerate(("sam", "sol", "sue", "sky")):
            at = m0 + dt.timedelta(hours=i)
            address = f"{name}@join.example"
            _, signed[name] = store.signup_requests.record(
                RequestForm(address, "", "", "https://riverbend-clinicians.example/join", "v1"),
                RequestKeys(name, f"client-{name}", "network"),
                RequestLimits(100, 100, 100),
                at,
            )
            store.signup_requests.claim(100, 100, at)
            store.signup_requests.finish(signed[name], MailState.SENT, iso(at))
        for name in ("sam", "sol", "sue"):
            store.signup_requests.confirm(signed[name], m0 + dt.timedelta(days=1))
        store.membership.add("tia@staff.example", "", "", (), "asked at the AGM", m1)
    finally:
        store.close()
    imported = [f"reader{i}@list.example" for i in range(10)]
    (root / "readers.csv").write_text("email\n" + "\n".join(imported) + "\n", encoding="utf-8")
    done = Runner()(
        "subscribers", "import", str(root / "readers.csv"), env={"NEWSLETTER_CONFIG": config}
    )
    assert done.exit_code == 0, done.stderr
    slugs = ["first-issue", "second-issue", "third-issue"]
    for slug in slugs:
        (root / "campaigns" / f"{slug}.md").write_text(campaign_file(slug), encoding="utf-8")
    sent = send_through_postmark(root, slugs)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NEWSLETTER_WEBHOOK_SECRET_POSTMARK", f"{HOOK_USER}:{HOOK_PASSWORD}")
        with serve_in_process(config, sender=False) as base:
            hook = Webhook(base, sent)
            at = iso(now)
            for name in imported[:4]:
                hook.post("second-issue", name, "Delivery", DeliveredAt=at)
            hook.bounce("first-issue", imported[0], "HardBounce", UNKNOWN_USER, now)
            hook.post(
                "second-issue",
                imported[1],
                "SubscriptionChange",
                ChangedAt=at,
                SuppressSending=True,
                SuppressionReason="ManualSuppression",
                Origin="Recipient",
            )
            hook.post(
                "third-issue",
                imported[2],
                "SpamComplaint",
                ID=next(_ids),
                Type="SpamComplaint",
                TypeCode=100001,
                BouncedAt=at,
            )
    sent.cli("subscribers", "unsubscribe", "sam@join.example")
    sent.cli("subscribers", "forget", "sol@join.example", "--yes")  # active: the net drops
    sent.cli("subscribers", "forget", "sky@join.example", "--yes")  # never confirmed

    store = open_store(load_settings(config).database_url)
    try:
        found = overview(store, now=now)
    finally:
        store.close()
    rows = {m.month: asdict(m) for m in found.months}
    assert list(rows) == [f"{m:%Y-%m}" for m in (m0, m1, months_before(now, 1), now)]
    zero = dict.fromkeys(
        (
            "signed_up",
            "added",
            "imported",
            "confirmed",
            "unsubscribed",
            "bounced",
            "complained",
            "erased",
            "net",
        ),
        0,
    )
    assert rows[f"{m0:%Y-%m}"] == zero | {
        "month": f"{m0:%Y-%m}",
        "signed_up": 3,  # sky never confirmed: nothing of the sign-up is kept
        "confirmed": 3,
        "net": 3,
    }
    assert rows[f"{m1:%Y-%m}"] == zero | {"month": f"{m1:%Y-%m}", "added": 1, "net": 1}
    last = f"{months_before(now, 1):%Y-%m}"
    assert rows[last] == zero | {"month": last}
    assert rows[f"{now:%Y-%m}"] == zero | {
        "month": f"{now:%Y-%m}",
        "imported": 10,
        "unsubscribed": 2,  # through Postmark, and by hand
        "bounced": 1,
        "complained": 1,
        "erased": 2,
        "net": 10 - 2 - 1 - 1 - 1,  # sky was never active: not in the net
    }

    assert [c.campaign for c in found.campaigns] == slugs  # oldest first
    by_slug = {c.campaign: c for c in found.campaigns}
    for c in found.campaigns:
        assert c.sent == 14  # sam, sol, sue, tia and the ten imported
    first, second, third = (by_slug[s] for s in slugs)
    assert (first.bounced, first.bounce_rate) == (1, 1 / 14)
    assert (second.delivered, second.delivery_rate) == (4, 4 / 14)
    assert (second.unsubscribed, second.unsubscribe_rate) == (1, 1 / 14)
    assert (third.complained, third.complaint_rate) == (1, 1 / 14)
    assert (first.delivered, first.delivery_rate, third.bounce_rate) == (0, 0.0, 0.0)


def test_an_empty_project_has_no_months(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "project")
    store = open_store(load_settings(str(root / "newsletter.toml")).database_url)
    try:
        assert overview(store) == overview(store, now=dt.datetime.now(dt.UTC))
        assert overview(store).campaigns == () and overview(store).months == ()
    finally:
        store.close()
