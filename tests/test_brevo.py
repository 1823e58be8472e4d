"""Brevo, beyond the shared contract stories (test_transports.py): what its requests
hold, its account's refusals, its rate limit, its webhook's bearer token, its event
types, and an export of its events imported.

Given the example project and the Brevo fake on 127.0.0.1 (or the webhook library
without HTTP), when a send, a webhook or an import meets Brevo, then this happens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import newsletter.delivery.retry
from conftest import set_delivery
from fakes.brevo import MAX_VERSIONS, SEND_PATH, FakeBrevo
from newsletter.catalog import load_settings, read_records, receive_webhook, webhook_secrets
from newsletter.providers.brevo import BREVO_EVENTS, BrevoTransport
from newsletter.store import open_store
from newsletter.webhooks import WebhookSecrets
from webhook_signers import basic_auth

SLUG = "2026-10-digest"
KEY = {"NEWSLETTER_API_KEY": "xkeysib-test"}
TOKEN = "brevo-hook-token-0123456789abcdef"
ACTIVE = 10


@pytest.fixture
def brevo(project: Path, run) -> Iterator[FakeBrevo]:
    with FakeBrevo(api_key="xkeysib-test") as fake:
        set_delivery(project, transport="brevo", base_url=fake.url, max_retries=2, timeout=10)
        assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
        yield fake
        assert fake.errors == []


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    used: list[int] = []

    def backoff(attempt: int) -> float:
        used.append(attempt)
        return 0.0

    monkeypatch.setattr(newsletter.delivery.retry, "backoff", backoff)
    return used


def send(run, env: dict[str, str] | None = None):
    return run("send", SLUG, "--yes", env=KEY if env is None else env)


def statuses(run) -> dict[str, str]:
    report = json.loads(run("report", SLUG, "--format", "json").stdout)
    return {r["email"]: r["status"] for r in report["recipients"]}


# -- the request ----------------------------------------------------------------------------
def test_one_version_per_reader_with_their_headers_and_our_reference(brevo, run) -> None:
    result = send(run)

    assert result.exit_code == 0, result.stderr
    (request,) = brevo.send_requests()
    assert request.path == SEND_PATH
    assert request.headers["api-key"] == "xkeysib-test"
    assert request.headers["Content-Type"] == "application/json"
    body = request.body
    assert set(body) - {"replyTo"} == {
        "sender",
        "subject",
        "htmlContent",
        "textContent",
        "tags",
        "messageVersions",
    }
    assert body["sender"]["email"] == "news@riverbend-clinicians.example"
    assert body["tags"] == [SLUG]
    assert "params" not in body, "Brevo's template language never reads our content"
    versions = body["messageVersions"]
    assert len(versions) == ACTIVE
    rows = json.loads(run("report", SLUG, "--format", "json").stdout)["recipients"]
    ids = {r["email"]: r["provider_message_id"] for r in rows}
    for version, record in zip(versions, brevo.accepted, strict=True):
        assert set(version) == {"to", "subject", "htmlContent", "textContent", "headers"}
        (to,) = version["to"]
        headers = version["headers"]
        assert headers["List-Unsubscribe"].startswith("<https://")
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Id"].endswith(">")
        custom = json.loads(headers["X-Mailin-custom"])
        assert custom["campaign"] == SLUG
        assert custom["subscriber"].isdigit()
        assert all(v.isascii() for v in headers.values()), "Brevo sends header values raw"
        assert ids[to["email"]] == record["id"], "each reader's own message id"
    assert set(statuses(run).values()) == {"sent"}


def test_a_name_brevo_would_drop_goes_encoded(project: Path, run, brevo) -> None:
    (project / "one.csv").write_text(
        'email,first_name,last_name\nzoe@example.org,"Zoë, Dr.",Ørsted\n', encoding="utf-8"
    )
    assert run("subscribers", "import", "one.csv").exit_code == 0

    assert send(run).exit_code == 0
    versions = [v for r in brevo.send_requests() for v in r.body["messageVersions"]]
    (zoe,) = [v["to"][0] for v in versions if v["to"][0]["email"] == "zoe@example.org"]
    assert zoe["name"].isascii() and "=?utf-8?" in zoe["name"].lower()


@pytest.mark.slow
def test_requests_carry_at_most_100_versions_of_brevo_s_1000(project: Path, run, brevo) -> None:
    """A batch of up to 1,000 readers is claimed at once and posted 100 versions a
    request (a 1,000-version body of whole messages is about 31 MB), never more than the
    1,000 Brevo takes, and every reader is in exactly one request."""
    path = project / "many.csv"
    path.write_text(
        "email\n" + "".join(f"r{i}@example.com\n" for i in range(MAX_VERSIONS + 5)),
        encoding="utf-8",
    )
    assert run("subscribers", "import", str(path)).exit_code == 0

    result = send(run)

    assert result.exit_code == 0, result.stderr
    requests_ = brevo.send_requests()
    sizes = sorted(len(r.body["messageVersions"]) for r in requests_)
    assert sizes[-1] == BrevoTransport.per_request < MAX_VERSIONS
    assert sum(sizes) == MAX_VERSIONS + 5 + ACTIVE
    addresses = [v["to"][0]["email"] for r in requests_ for v in r.body["messageVersions"]]
    assert len(addresses) == len(set(addresses))


def test_the_fake_refuses_what_brevo_refuses() -> None:
    version = {"to": [{"email": "a@example.org"}], "htmlContent": "<p>x</p>"}
    base = {"sender": {"email": "n@example.org"}, "subject": "s", "htmlContent": "<p>x</p>"}
    cases = [
        ({}, 400, "missing_parameter"),
        ({**base, "messageVersions": [version] * (MAX_VERSIONS + 1)}, 400, "invalid_parameter"),
        (
            {**base, "messageVersions": [{"to": [{"email": f"{i}@e.org"} for i in range(100)]}]},
            400,
            "invalid_parameter",
        ),
        (
            {**base, "messageVersions": [{**version, "params": {"x": "y" * 110_000}}]},
            400,
            "invalid_parameter",
        ),
        ({**base, "messageVersions": [{**version, "headers": {"X": 1}}]}, 400, "invalid_parameter"),
        ({**base, "to": [{"email": "not an address"}]}, 400, "invalid_parameter"),
    ]
    with FakeBrevo() as fake:
        for body, status, code in cases:
            answer = requests.post(
                fake.url + SEND_PATH, json=body, headers={"api-key": "xkeysib-test"}, timeout=10
            )
            assert (answer.status_code, answer.json()["code"]) == (status, code), body.keys()
        # the top-level `to` is ignored when versions are given
        answer = requests.post(
            fake.url + SEND_PATH,
            json={**base, "to": [{"email": "x@example.org"}], "messageVersions": [version]},
            headers={"api-key": "xkeysib-test"},
            timeout=10,
        )
        assert answer.status_code == 201 and len(answer.json()["messageIds"]) == 1
        assert fake.accepted_to() == ["a@example.org"]
        text = requests.post(
            fake.url + SEND_PATH,
            data=b"x",
            headers={"api-key": "xkeysib-test", "Content-Type": "text/plain"},
            timeout=10,
        )
        assert text.status_code == 406
        assert fake.errors == []


# -- the account's refusals -----------------------------------------------------------------
def test_a_refused_key_says_where_to_make_one(brevo, run) -> None:
    result = send(run, {"NEWSLETTER_API_KEY": "xkeysib-wrong-4711"})

    assert result.exit_code == 1
    assert "Brevo refused the credentials (HTTP 401 unauthorized" in result.stderr
    assert "Brevo > SMTP & API > API keys" in result.stderr
    assert "xkeysib-wrong-4711" not in result.stderr
    assert set(statuses(run).values()) == {"pending"}


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        ({"credits": 0}, "no email credits left"),
        ({"state": "under_validation"}, "still validating the account"),
        ({"state": "no_permission"}, "may not send transactional email"),
    ],
)
def test_the_account_stops_the_send_and_says_why(brevo, run, setup: dict, said: str) -> None:
    for name, value in setup.items():
        setattr(brevo, name, value)

    result = send(run)

    assert result.exit_code == 1
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    assert brevo.accepted == []
    assert set(statuses(run).values()) == {"pending"}

    brevo.credits, brevo.state = None, "active"
    assert send(run).exit_code == 0
    assert len(brevo.accepted) == ACTIVE


@pytest.mark.parametrize(
    "message",
    [
        "email is not valid in sender",
        "valid sender email required",
        "email is not valid in replyTo",
    ],
)
def test_a_400_about_our_own_address_stops_the_send_and_suppresses_nobody(
    brevo, run, message: str
) -> None:
    brevo.faults.append(("status", 400, {"code": "invalid_parameter", "message": message}))
    before = run("subscribers", "list", "--format", "json").stdout

    result = send(run)

    assert result.exit_code == 1
    assert f"Brevo rejected the request (HTTP 400 invalid_parameter: {message})" in result.stderr
    assert len(brevo.send_requests()) == 1, "not split: no reader is to blame"
    assert set(statuses(run).values()) == {"pending"}
    assert run("subscribers", "list", "--format", "json").stdout == before, "nobody suppressed"


def test_a_429_waits_as_brevo_says_and_is_sent_once(brevo, run, instant: list[int]) -> None:
    brevo.faults.append(
        (
            "status",
            429,
            {"code": "too_many_requests", "message": "The expected rate limit is exceeded."},
            {
                "x-sib-ratelimit-limit": "100",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": "1",
            },
        )
    )

    result = send(run)

    assert result.exit_code == 0, result.stderr
    assert "Brevo answered HTTP 429; retrying in 1 s" in result.stderr
    assert instant == [], "the reset header, not a guessed backoff"
    assert len(brevo.send_requests()) == 2
    assert len(brevo.accepted) == ACTIVE


# -- webhooks -------------------------------------------------------------------------------
@pytest.fixture
def store(project: Path):
    opened = open_store(load_settings(str(project / "newsletter.toml")).database_url)
    yield opened
    opened.close()


def event(**fields) -> dict:
    return {
        "event": "hard_bounce",
        "email": "mina.park@example.org",
        "id": 4711,
        "message-id": "<202611021633.1@smtp-relay.mailin.fr>",
        "ts_event": 1793630000,
        "ts_epoch": 1793630000123,
        "tags": [SLUG],
        "X-Mailin-custom": json.dumps({"campaign": SLUG}),
        "reason": "550 5.1.1 no such user",
    } | fields


def hook(store, body: object, headers: dict, secrets: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    given = WebhookSecrets({"brevo": TOKEN} if secrets is None else secrets)
    return receive_webhook("brevo", headers, raw, given, store.events)


def events_in(store) -> int:
    return store.db.execute("SELECT count(*) FROM events").fetchone()[0]


def test_the_bearer_token_is_the_secret(project: Path, run, store) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    answer = hook(store, event(), bearer)

    assert (answer.status, answer.text) == (200, "1 event(s)")
    assert str(store.subscribers.find("mina.park@example.org").status) == "bounced"
    assert hook(store, event(), bearer).text == "already received"
    basic = {"Authorization": basic_auth("brevo", TOKEN)}
    assert hook(store, event(event="delivered"), basic).text == "1 event(s)"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {TOKEN[:-1]}x"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": basic_auth(TOKEN, "wrong")},
        {"Authorization": "Bearer hooks:pw"},  # Postmark's secret
    ],
    ids=["missing", "wrong", "longer", "empty", "scheme", "basic-wrong", "other-provider"],
)
def test_any_other_credentials_are_refused_and_nothing_recorded(store, headers: dict) -> None:
    secrets = {"brevo": TOKEN, "postmark": "hooks:pw"}

    answer = hook(store, event(), headers, secrets)

    assert answer.status == 401
    assert events_in(store) == 0


def test_a_secret_too_short_to_be_a_token_is_reported() -> None:
    found = webhook_secrets("brevo", {"NEWSLETTER_WEBHOOK_SECRET_BREVO": "short"})
    assert any("NEWSLETTER_WEBHOOK_SECRET_BREVO is not usable" in n for n in found.notes)
    legacy = webhook_secrets("brevo", {"NEWSLETTER_WEBHOOK_SECRET": TOKEN})
    assert legacy.get("brevo") is None, "only its own variable serves it"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"a string"',
        event(email=["a@example.org"]),
        event(tags="campaign"),
        event(ts_epoch="soon"),
        event(ts_epoch=10**20),
        [event(**{"message-id": 5})],
        b"[" + b"[" * 100 + b"]" * 100 + b"]",
    ],
    ids=["not-json", "numbers", "string", "email-list", "tags", "ts-text", "ts-huge", "id", "deep"],
)
def test_a_hostile_payload_is_a_clear_4xx_and_records_nothing(store, body) -> None:
    answer = hook(store, body, {"Authorization": f"Bearer {TOKEN}"})

    assert 400 <= answer.status < 500
    assert answer.text and len(answer.text) < 200
    assert events_in(store) == 0


# -- event types ------------------------------------------------------------------------------
KINDS = [
    ("request", "queued"),
    ("delivered", "delivered"),
    ("deferred", "deferred"),
    ("soft_bounce", "soft_bounced"),
    ("softBounce", "soft_bounced"),
    ("hard_bounce", "bounced"),
    ("hardBounce", "bounced"),
    ("invalid_email", "bounced"),
    ("blocked", "dropped"),
    ("spam", "complained"),
    ("unsubscribed", "unsubscribed"),
    ("error", "failed"),
    ("opened", "opened"),
    ("unique_opened", "opened"),
    ("click", "clicked"),
    ("list_addition", "unknown"),
    ("an_event_from_next_year", "unknown"),
]


@pytest.mark.parametrize(("name", "kind"), KINDS, ids=[k[0] for k in KINDS])
def test_each_event_type_has_its_kind(name: str, kind: str) -> None:
    custom = json.dumps({"campaign": SLUG, "subscriber": "1"})
    (record,) = read_records("brevo", [event(event=name, **{"X-Mailin-custom": custom})])

    assert record.problem is None
    (found,) = record.events
    assert found.kind == kind
    if kind != "unknown":
        assert found.campaign == SLUG and found.subscriber_id == 1
        assert found.occurred_at == "2026-11-02T14:33:20.123000+00:00"
        assert found.provider_message_id == "<202611021633.1@smtp-relay.mailin.fr>"


def test_every_table_row_reads_as_its_kind() -> None:
    for name, kind in BREVO_EVENTS.items():
        (record,) = read_records("brevo", [event(event=name)])
        assert [e.kind for e in record.events] == [kind], name


def test_an_export_of_brevo_events_is_imported(project: Path, run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    lines = [
        event(email="mina.park@example.org"),
        event(event="spam", email="marcus.bell@example.com", ts_epoch=1793630001000),
        event(event="delivered", email="noor@example.org", ts_epoch=1793630002000),
    ]
    path = project / "brevo.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in lines) + "\n{not json}\n", encoding="utf-8")

    result = run("events", "import", str(path), "--provider", "brevo")

    assert result.exit_code == 0, result.stderr
    assert "line 4" in result.stderr
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    status = {r["email"]: r["status"] for r in listed}
    assert status["mina.park@example.org"] == "bounced"
    assert status["marcus.bell@example.com"] == "complained"
