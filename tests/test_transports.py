"""Every HTTP provider, end to end: `newsletter send` against each provider's fake.

Each story: given the example project and a provider fake on 127.0.0.1, when `send`
runs, then these requests, delivered messages and delivery rows exist. The fakes enforce
each provider's contract (auth, limits, per-message errors); ``faults`` inject 429s, 500s,
hangs, dropped connections and garbage answers. What a story needs of a provider is its
fake module's ``Contract`` (``fakes/contract.py``); ``PROVIDERS`` holds every one of them.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import newsletter.delivery.retry
from conftest import REPO, set_delivery
from fakes.contract import Contract, contracts
from fakes.mailgun import FakeMailgun
from fakes.ses import FakeSES
from newsletter.catalog import make_transport, transport_class
from newsletter.errors import ConfigError
from newsletter.project import Project
from newsletter.tokens import LinkSigner

SLUG = "2026-10-digest"
UNSUBSCRIBE = re.compile(r"https://news\.riverbend-clinicians\.example/u/[A-Za-z0-9._-]+")
LEFTOVER_PLACEHOLDER = re.compile(r"-nl[hts]\d+-|%recipient\.")


def _active_first_names() -> dict[str, str]:
    with (REPO / "subscribers.example.csv").open(encoding="utf-8", newline="") as f:
        return {r["email"]: r["first_name"] for r in csv.DictReader(f) if r["status"] == "active"}


FIRST_NAMES = _active_first_names()  # email -> first name of the 10 active subscribers
ACTIVE = len(FIRST_NAMES)


PROVIDERS: dict[str, type[Contract]] = contracts()


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore sees only the credentials a test gives it, and never asks EC2 for any."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def start_provider(project: Path) -> Iterator[Callable[..., Contract]]:
    """start_provider(name, **delivery): the provider's fake, and the project pointed at it."""
    started: list[Contract] = []

    def start(name: str, **delivery: Any) -> Contract:
        provider = PROVIDERS[name]()
        started.append(provider)
        provider.fake.start()
        keys = {**provider.delivery(), "max_retries": 1, "timeout": 10, **delivery}
        set_delivery(project, **keys)
        return provider

    yield start
    for provider in started:
        provider.fake.stop()
        assert provider.fake.errors == [], "the fake itself failed"


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest, start_provider) -> Contract:
    return start_provider(request.param)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Makes the transports' exponential backoff instant, recording each use (its attempt)."""
    used: list[int] = []

    def instant(attempt: int) -> float:
        used.append(attempt)
        return 0.0

    monkeypatch.setattr(newsletter.delivery.retry, "backoff", instant)
    return used


# -- helpers ----------------------------------------------------------------------
def import_example(run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0


def import_many(project: Path, run, count: int) -> None:
    path = project / "many.csv"
    path.write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.com,R{i}\n" for i in range(count)),
        encoding="utf-8",
    )
    assert run("subscribers", "import", str(path)).exit_code == 0


def report(run) -> dict:
    return json.loads(run("report", SLUG, "--format", "json").stdout)


def statuses(run) -> dict[str, str]:
    return {r["email"]: r["status"] for r in report(run)["recipients"]}


def subscriber_status(run) -> dict[str, str]:
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    return {r["email"]: r["status"] for r in listed}


def unsubscribe_owner(project: Path) -> Callable[[str], str | None]:
    """url -> the email of the subscriber a genuine unsubscribe link belongs to."""
    p = Project.load(str(project / "newsletter.toml"))
    try:
        signer = LinkSigner(p.store.secret.current())
        emails = {s.id: s.email for s in p.store.subscribers.stream()}
    finally:
        p.close()

    def owner(url: str) -> str | None:
        verified = signer.verify_unsubscribe(url.rsplit("/", 1)[1])
        return emails.get(verified[0]) if verified else None

    return owner


def send(run, provider: Contract, *extra: str):
    return run("send", SLUG, "--yes", *extra, env=provider.env)


def received(provider: Contract) -> Counter[str]:
    """Messages delivered per address."""
    return Counter(a for d in provider.delivered() for a in d.to)


# -- 1. happy path ------------------------------------------------------------------
def test_each_active_subscriber_gets_one_message_of_their_own(
    project: Path, run, provider: Contract
) -> None:
    import_example(run)

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr
    delivered = provider.delivered()
    assert received(provider) == Counter(FIRST_NAMES.keys()), "each active subscriber exactly once"
    owner = unsubscribe_owner(project)
    links = set()
    for message in delivered:
        assert len(message.to) == 1 and message.copies == [], "nobody sees another recipient"
        (address,) = message.to
        first = FIRST_NAMES[address]
        assert f"Hello {first or 'there'}," in message.text
        for other in FIRST_NAMES.keys() - {address}:
            assert other not in message.text + message.html
        assert not LEFTOVER_PLACEHOLDER.search(
            message.text + message.html + message.list_unsubscribe
        )
        (link,) = set(UNSUBSCRIBE.findall(message.list_unsubscribe))
        assert owner(link) == address, "their own, validly signed unsubscribe link"
        assert message.list_unsubscribe_post == "List-Unsubscribe=One-Click"
        assert set(UNSUBSCRIBE.findall(message.html)) == {link}
        assert set(UNSUBSCRIBE.findall(message.text)) == {link}
        links.add(link)
    assert len(links) == ACTIVE

    data = report(run)
    assert data["counts"][provider.status] == ACTIVE
    ids = {a: d.message_id for d in delivered for a in d.to}
    assert {r["email"]: r["provider_message_id"] for r in data["recipients"]} == ids
    assert all(r["status"] == provider.status and r["sent_at"] for r in data["recipients"])

    requests_before = len(provider.fake.requests)
    again = send(run, provider)
    assert again.exit_code == 0
    assert "nothing to send" in again.stderr
    assert len(provider.fake.requests) == requests_before


# -- 2. batching ---------------------------------------------------------------------
def test_batches_stop_at_the_provider_limit(project: Path, run, provider: Contract) -> None:
    subscribers, sizes = provider.batching
    import_many(project, run, subscribers)

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr
    assert sorted(provider.request_sizes()) == sizes
    assert received(provider) == Counter(f"reader{i}@example.com" for i in range(subscribers))
    for message in provider.delivered():
        number = message.to[0].removeprefix("reader").split("@")[0]
        assert f"Hello R{number}," in message.text
    assert report(run)["counts"][provider.status] == subscribers


# -- 3. and 4. credentials ------------------------------------------------------------
def test_refused_credentials_stop_the_send_and_lose_nobody(
    project: Path, run, provider: Contract
) -> None:
    import_example(run)

    result = run("send", SLUG, "--yes", env=provider.wrong_env)

    assert result.exit_code == 1
    assert f"{provider.label} refused the credentials" in result.stderr
    assert provider.wrong_secret not in result.stderr + result.stdout
    assert provider.fake.accepted == []
    assert set(statuses(run).values()) == {"pending"}
    assert report(run)["counts"]["pending"] == ACTIVE

    # once the credentials are right, everyone gets it exactly once
    fixed = send(run, provider)
    assert fixed.exit_code == 0, fixed.stderr
    assert received(provider) == Counter(FIRST_NAMES.keys())


def test_missing_credentials_exit_1_before_any_request(
    project: Path, run, provider: Contract
) -> None:
    import_example(run)

    result = run("send", SLUG, "--yes")  # no key in the environment

    assert result.exit_code == 1
    assert provider.missing_names in result.stderr
    assert provider.fake.requests == []
    assert run("report", SLUG).exit_code == 1, "no delivery was recorded"


# -- 5. and 6. rate limits and outages ---------------------------------------------------
def test_rate_limited_request_is_retried_and_delivered_once(
    project: Path, run, provider: Contract, backoffs: list[int]
) -> None:
    import_example(run)
    provider.fake.faults.append(provider.rate_limited())

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr
    assert len(provider.fake.send_requests()) == provider.requests_for(ACTIVE) + 1
    assert received(provider) == Counter(FIRST_NAMES.keys())
    assert report(run)["counts"][provider.status] == ACTIVE
    if provider.says_when:
        assert backoffs == [], "waited as the rate-limit headers said, not a guessed backoff"


def test_outage_longer_than_the_retries_stops_then_resumes_without_loss(
    project: Path, run, provider: Contract, backoffs: list[int]
) -> None:
    import_example(run)
    provider.fake.faults.extend([provider.server_error()] * 2)  # max_retries = 1

    result = send(run, provider)

    assert result.exit_code == 1
    assert "after 2 attempts" in result.stderr
    assert provider.fake.accepted == []
    assert set(statuses(run).values()) == {"pending"}

    later = send(run, provider)
    assert later.exit_code == 0, later.stderr
    assert received(provider) == Counter(FIRST_NAMES.keys())
    assert set(statuses(run).values()) == {provider.status}


# -- 7. per-recipient refusals -----------------------------------------------------------
TYPO = "noor.haddad@example.0rg"  # passes our import check; providers refuse the TLD


@pytest.mark.parametrize("name", [n for n, p in PROVIDERS.items() if p.refuses_typo])
def test_an_address_the_provider_refuses_is_marked_and_the_rest_delivered(
    project: Path, run, start_provider, name: str
) -> None:
    provider = start_provider(name)
    assert provider.refuses_typo is not None
    status, error, sizes = provider.refuses_typo
    import_example(run)
    (project / "typo.csv").write_text(f"email,first_name\n{TYPO},Noor\n", encoding="utf-8")
    assert run("subscribers", "import", "typo.csv").exit_code == 0

    result = send(run, provider)

    assert result.exit_code == 3
    assert f"newsletter report {SLUG}" in result.stderr
    assert provider.request_sizes() == sizes
    rows = {r["email"]: r for r in report(run)["recipients"]}
    assert rows[TYPO]["status"] == status
    assert rows[TYPO]["error"].startswith(error)
    assert rows[TYPO]["provider_message_id"] is None
    assert {e: r["status"] for e, r in rows.items() if e != TYPO} == dict.fromkeys(
        FIRST_NAMES, provider.status
    )
    assert received(provider) == Counter(FIRST_NAMES.keys())
    assert subscriber_status(run)[TYPO] == "bounced", "not tried again by later campaigns"


def test_ses_sandbox_rejects_an_unverified_recipient(project: Path, run, start_provider) -> None:
    provider = start_provider("ses")
    assert isinstance(provider.fake, FakeSES)
    provider.fake.verified = {a for a in FIRST_NAMES if a != "mina.park@example.org"}
    import_example(run)

    result = send(run, provider)

    assert result.exit_code == 3
    rows = {r["email"]: r for r in report(run)["recipients"]}
    mina = rows.pop("mina.park@example.org")
    assert mina["status"] == "rejected"
    assert mina["error"].startswith("SES MessageRejected: Email address is not verified")
    assert "mina.park@example.org" in mina["error"]
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert received(provider) == Counter(set(FIRST_NAMES) - {"mina.park@example.org"})
    # the sandbox is our account's limit, not a dead address: she stays subscribed
    assert subscriber_status(run)["mina.park@example.org"] == "active"


def test_mailgun_takes_a_suppressed_address_and_reports_later(
    project: Path, run, start_provider
) -> None:
    provider = start_provider("mailgun")
    assert isinstance(provider.fake, FakeMailgun)
    provider.fake.suppressed.add("marcus.bell@example.com")
    import_example(run)

    result = send(run, provider)

    # Mailgun accepts the request; what happens per recipient comes later as events
    assert result.exit_code == 0, result.stderr
    assert set(statuses(run).values()) == {"queued"}
    assert [m["to"] for m in provider.fake.dropped] == ["marcus.bell@example.com"]
    assert received(provider) == Counter(set(FIRST_NAMES) - {"marcus.bell@example.com"})


# -- 8. and 9. outcomes nobody can know ---------------------------------------------------
@pytest.mark.parametrize("fault", [("hang", 3), ("drop_after_read",)], ids=["hang", "drop"])
@pytest.mark.parametrize("name", [n for n, p in PROVIDERS.items() if not p.idempotent])
def test_unanswered_request_is_unknown_and_never_sent_again_unasked(
    project: Path, run, start_provider, name: str, fault: tuple
) -> None:
    provider = start_provider(name, timeout=1)
    import_example(run)
    provider.fake.faults.append(fault)

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr  # unknown: most likely delivered, not failed
    assert "is unknown" in result.stderr
    # SES sends one message per request: only the message that met the fault is unknown
    in_the_request = min(provider.batch_limit, ACTIVE)
    rows = report(run)["recipients"]
    unknown = {r["email"] for r in rows if r["status"] == "unknown"}
    assert len(unknown) == in_the_request
    assert all(r["error"] for r in rows if r["status"] == "unknown")
    assert {r["status"] for r in rows if r["email"] not in unknown} <= {provider.status}
    requests = len(provider.fake.send_requests())
    assert requests == provider.requests_for(ACTIVE)

    again = send(run, provider)
    assert again.exit_code == 0
    assert "nothing to send" in again.stderr
    assert len(provider.fake.send_requests()) == requests

    # only an explicit --retry-unknown sends them again
    retried = send(run, provider, "--retry-unknown")
    assert retried.exit_code == 0, retried.stderr
    assert len(provider.fake.send_requests()) == requests + provider.requests_for(len(unknown))
    assert set(statuses(run).values()) == {provider.status}
    if fault == ("drop_after_read",):  # the provider had taken them: the retry doubled them
        assert received(provider) == Counter(FIRST_NAMES.keys()) + Counter(unknown)


@pytest.mark.parametrize("fault", [("hang", 3), ("drop_after_read",)], ids=["hang", "drop"])
def test_resend_repeats_an_unanswered_batch_under_its_idempotency_key(
    project: Path, run, start_provider, fault: tuple
) -> None:
    provider = start_provider("resend", timeout=1, max_retries=2)
    import_example(run)
    provider.fake.faults.append(fault)

    result = send(run, provider)

    # The transport asks again under the same Idempotency-Key; the fake, which holds a
    # hung request before it processes it, sends the batch once and replays that answer.
    assert result.exit_code == 0, result.stderr
    requests = provider.fake.send_requests()
    assert len(requests) == 2
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1
    assert set(statuses(run).values()) == {"sent"}
    assert received(provider) == Counter(FIRST_NAMES.keys()), "exactly one message each"


@pytest.mark.slow
def test_resend_waits_out_its_own_batch_still_in_progress(
    project: Path, run, start_provider
) -> None:
    provider = start_provider("resend", timeout=1, max_retries=3)
    import_example(run)
    provider.fake.processing_delay = 3.0  # the first request times out, still in progress

    result = send(run, provider)

    # The retry under the same key meets 409 concurrent_idempotent_requests until the first
    # request is done, then gets its answer replayed: one message each, all recorded sent.
    assert result.exit_code == 0, result.stderr
    requests = provider.fake.send_requests()
    assert len(requests) >= 3, "timed out, met 409 while in progress, then the replay"
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1
    assert set(statuses(run).values()) == {"sent"}
    assert received(provider) == Counter(FIRST_NAMES.keys()), "exactly one message each"


@pytest.mark.parametrize("max_retries", [0, 2, 5])
def test_resend_posts_a_batch_at_most_max_retries_plus_one_times(
    project: Path, run, start_provider, backoffs: list[int], max_retries: int
) -> None:
    """One retry loop per request: a batch still in progress (409), throttled (429) and
    failing (5xx) answers all draw on the same budget of ``max_retries`` + 1 POSTs."""
    provider = start_provider("resend", max_retries=max_retries)
    import_example(run)
    busy = {
        "statusCode": 409,
        "name": "concurrent_idempotent_requests",
        "message": "still in progress",
    }
    throttled = {"statusCode": 429, "name": "rate_limit_exceeded", "message": "slow down"}
    failing = {"statusCode": 503, "name": "internal_server_error", "message": "down"}
    answers = [("status", 409, busy), ("status", 429, throttled), ("status", 503, failing)]
    provider.fake.faults.extend(answers * 12)

    send(run, provider)

    assert len(provider.fake.send_requests()) == max_retries + 1
    assert received(provider) == Counter()


def test_garbage_answer_is_unknown(project: Path, run, provider: Contract) -> None:
    import_example(run)
    provider.fake.faults.append(("garbage",))

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr
    rows = report(run)["recipients"]
    unknown = [r for r in rows if r["status"] == "unknown"]
    assert len(unknown) == min(provider.batch_limit, ACTIVE)
    assert all(r["error"] and r["provider_message_id"] is None for r in unknown)
    requests = len(provider.fake.requests)
    again = send(run, provider)
    assert again.exit_code == 0
    assert "nothing to send" in again.stderr
    assert len(provider.fake.requests) == requests


# -- 10. regions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("delivery", "url"),
    [
        ({"transport": "mailgun", "region": "eu"}, "https://api.eu.mailgun.net"),
        ({"transport": "mailgun", "region": "EU"}, "https://api.eu.mailgun.net"),
        ({"transport": "mailgun", "region": "us"}, "https://api.mailgun.net"),
        ({"transport": "mailgun"}, "https://api.mailgun.net"),
        (
            {"transport": "mailgun", "region": "eu", "base_url": "http://127.0.0.1:9/"},
            "http://127.0.0.1:9",
        ),
        ({"transport": "sendgrid", "region": "eu"}, "https://api.eu.sendgrid.com"),
        ({"transport": "sendgrid"}, "https://api.sendgrid.com"),
    ],
)
def test_region_picks_the_api_host(
    project: Path, monkeypatch: pytest.MonkeyPatch, delivery: dict, url: str
) -> None:
    set_delivery(project, domain="mg.riverbend-clinicians.example", **delivery)
    monkeypatch.setenv("NEWSLETTER_API_KEY", "key-test")

    transport = make_transport(Project.load().settings, SLUG)

    try:
        assert transport.base_url == url
    finally:
        transport.close()


def test_unknown_mailgun_region_is_a_config_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_delivery(project, transport="mailgun", domain="mg.example.org", region="ap")
    monkeypatch.setenv("NEWSLETTER_API_KEY", "key-test")
    with pytest.raises(ConfigError, match="not a Mailgun region"):
        make_transport(Project.load().settings, SLUG)


def test_readers_of_different_variants_each_get_their_own_content(
    project: Path, run, provider: Contract
) -> None:
    """`{% if %}` over the reader makes two compiled variants; providers that take one body
    per request (SendGrid, Mailgun) get one request per variant, and nobody gets the other's."""
    with (REPO / "subscribers.example.csv").open(encoding="utf-8", newline="") as f:
        tags = {r["email"]: r["tags"].split(";") for r in csv.DictReader(f)}
    path = project / "campaigns" / f"{SLUG}.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,",
            '{% if "ce" in recipient.tags %}Your CE hours are waiting.{% else %}'
            "Earn CE hours with us.{% endif %} SHOUT {{ recipient.first_name | upper }}.\n\n"
            "Warmly,",
        ),
        encoding="utf-8",
    )
    import_example(run)

    result = send(run, provider)

    assert result.exit_code == 0, result.stderr
    assert received(provider) == Counter(FIRST_NAMES.keys())
    for message in provider.delivered():
        (address,) = message.to
        text = " ".join(message.text.split())
        wanted, other = (
            ("Your CE hours are waiting.", "Earn CE hours")
            if "ce" in tags[address]
            else ("Earn CE hours with us.", "Your CE hours")
        )
        assert wanted in text and other not in text, address
        assert wanted in message.html and other not in message.html, address
        assert f"SHOUT {FIRST_NAMES[address].upper()}." in text, address
    if transport_class(provider.transport).shared_body:  # one request per variant
        assert sorted(provider.request_sizes()) == sorted(
            [
                sum("ce" in tags[a] for a in FIRST_NAMES),
                sum("ce" not in tags[a] for a in FIRST_NAMES),
            ]
        )
