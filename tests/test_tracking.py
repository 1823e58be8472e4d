"""Click and open tracking, end to end on the provider side.

Given the example project with `[tracking]` as an editor writes it, when `newsletter
send` runs against each provider's fake over real HTTP, then every request carries the
provider's own tracking option: explicitly off by default where the API has one (so an
account default cannot track readers), each documented field when turned on, and nothing
for the providers whose tracking is only an account or domain setting. The fakes refuse
a wrong spelling as the real APIs do. Then each provider's click and open events, as its
webhook sends them, keep the link and the user agent: read one by one, and imported with
`events import` into the events table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import set_delivery
from fakes.contract import Contract, contracts
from fakes.mailgun import FakeMailgun
from fakes.postmark import FakePostmark
from fakes.sendgrid import FakeSendGrid
from fakes.ses import FakeSES
from newsletter import providers
from newsletter.catalog import load_settings, read_records
from newsletter.errors import ConfigError
from newsletter.store import open_store
from webhook_signers import ses_event

SLUG = "2026-10-digest"
PROVIDERS: dict[str, type[Contract]] = contracts()
EVENTS_SET = "newsletter-events"
TRACKING_SET = "newsletter-tracking"


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore sees only the credentials a test gives it, and never asks EC2 for any."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def set_tracking(root: Path, **keys: Any) -> None:
    """Append a [tracking] section (after [delivery], which ``set_delivery`` rewrites)."""
    lines = [
        f"{k} = {json.dumps(v) if isinstance(v, str) else str(v).lower()}" for k, v in keys.items()
    ]
    with (root / "newsletter.toml").open("a", encoding="utf-8") as f:
        f.write("\n[tracking]\n" + "\n".join(lines) + "\n")


@pytest.fixture
def start_provider(project: Path) -> Iterator[Callable[..., Contract]]:
    """start_provider(name, tracking={...}, **delivery): the provider's fake, and the
    project pointed at it with that [tracking] section (none: the defaults)."""
    started: list[Contract] = []

    def start(name: str, tracking: dict[str, Any] | None = None, **delivery: Any) -> Contract:
        provider = PROVIDERS[name]()
        started.append(provider)
        provider.fake.start()
        set_delivery(project, **{**provider.delivery(), "max_retries": 1, **delivery})
        if tracking is not None:
            set_tracking(project, **tracking)
        return provider

    yield start
    for provider in started:
        provider.fake.stop()
        assert provider.fake.errors == [], "the fake itself failed"


def send(run, provider: Contract) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    result = run("send", SLUG, "--yes", env=provider.env)
    assert result.exit_code == 0, result.stderr
    assert provider.fake.accepted, "the fake delivered the messages"


# -- what each request carried --------------------------------------------------------------
def _tracking_keys(value: Any, path: str = "") -> list[str]:
    """Every key of a JSON body that names tracking, wherever it sits."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "track" in str(key).lower():
                found.append(here)
            found += _tracking_keys(inner, here)
    elif isinstance(value, list):
        for inner in value:
            found += _tracking_keys(inner, path)
    return found


def sent_tracking(name: str, provider: Contract) -> list[Any]:
    """What each send request said about tracking, as the provider reads it."""
    bodies = [r.body for r in provider.fake.send_requests()]
    assert bodies
    if name == "postmark":
        return [
            {k: m.get(k, "absent") for k in ("TrackOpens", "TrackLinks")} for b in bodies for m in b
        ]
    if name == "sendgrid":
        return [b.get("tracking_settings", "absent") for b in bodies]
    if name == "mailgun":
        return [{k: v for k, v in b.items() if k.startswith("o:tracking")} for b in bodies]
    if name == "ses":
        return [b.get("ConfigurationSetName", "absent") for b in bodies]
    return [_tracking_keys(b) for b in bodies]  # resend, brevo: nothing in the request


OFF: dict[str, Any] = {
    "postmark": {"TrackOpens": False, "TrackLinks": "None"},
    "sendgrid": {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
    },
    "mailgun": {"o:tracking-clicks": ["no"], "o:tracking-opens": ["no"]},
    "ses": "absent",  # no configuration set: SES has no per-message switch
    "resend": [],
    "brevo": [],
}
ON: dict[str, Any] = {
    "postmark": {"TrackOpens": True, "TrackLinks": "HtmlAndText"},
    "sendgrid": {
        "click_tracking": {"enable": True, "enable_text": True},
        "open_tracking": {"enable": True},
        "subscription_tracking": {"enable": False},  # our own unsubscribe link, always
    },
    "mailgun": {"o:tracking-clicks": ["yes"], "o:tracking-opens": ["yes"]},
    "ses": TRACKING_SET,
    "resend": [],  # a domain setting in Resend's dashboard
    "brevo": [],  # an account setting in Brevo's dashboard
}


def _ses_sets(provider: Contract) -> None:
    assert isinstance(provider.fake, FakeSES)
    provider.fake.configuration_sets = {EVENTS_SET, TRACKING_SET}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_tracking_is_off_by_default_and_each_request_says_so(
    project: Path, run, start_provider, name: str
) -> None:
    provider = start_provider(name)
    if name == "ses":
        _ses_sets(provider)

    send(run, provider)

    assert load_settings().tracking.clicks is False
    assert load_settings().tracking.opens is False
    assert set(map(json.dumps, sent_tracking(name, provider))) == {json.dumps(OFF[name])}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_tracking_off_written_out_sends_the_same_as_the_default(
    project: Path, run, start_provider, name: str
) -> None:
    extra = {"configuration_set": EVENTS_SET, "tracking_configuration_set": TRACKING_SET}
    provider = start_provider(
        name, tracking={"clicks": False, "opens": False}, **(extra if name == "ses" else {})
    )
    if name == "ses":
        _ses_sets(provider)

    send(run, provider)

    expected = EVENTS_SET if name == "ses" else OFF[name]  # the set without Open/Click
    assert set(map(json.dumps, sent_tracking(name, provider))) == {json.dumps(expected)}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_tracking_on_sends_each_providers_documented_field(
    project: Path, run, start_provider, name: str
) -> None:
    extra = {"configuration_set": EVENTS_SET, "tracking_configuration_set": TRACKING_SET}
    provider = start_provider(
        name, tracking={"clicks": True, "opens": True}, **(extra if name == "ses" else {})
    )
    if name == "ses":
        _ses_sets(provider)

    send(run, provider)

    assert set(map(json.dumps, sent_tracking(name, provider))) == {json.dumps(ON[name])}


# Only one of the two: each provider's field for it on, the other's explicitly off.
ONE_OF_TWO = [
    ("postmark", True, False, {"TrackOpens": False, "TrackLinks": "HtmlAndText"}),
    ("postmark", False, True, {"TrackOpens": True, "TrackLinks": "None"}),
    (
        "sendgrid",
        True,
        False,
        {
            "click_tracking": {"enable": True, "enable_text": True},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
        },
    ),
    (
        "sendgrid",
        False,
        True,
        {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": True},
            "subscription_tracking": {"enable": False},
        },
    ),
    ("mailgun", True, False, {"o:tracking-clicks": ["yes"], "o:tracking-opens": ["no"]}),
    ("mailgun", False, True, {"o:tracking-clicks": ["no"], "o:tracking-opens": ["yes"]}),
    ("ses", True, False, TRACKING_SET),
    ("ses", False, True, TRACKING_SET),
]


@pytest.mark.parametrize(
    ("name", "clicks", "opens", "expected"),
    ONE_OF_TWO,
    ids=[f"{r[0]}-{'clicks' if r[1] else 'opens'}" for r in ONE_OF_TWO],
)
def test_clicks_or_opens_alone(
    project: Path, run, start_provider, name: str, clicks: bool, opens: bool, expected: Any
) -> None:
    extra = {"tracking_configuration_set": TRACKING_SET} if name == "ses" else {}
    provider = start_provider(name, tracking={"clicks": clicks, "opens": opens}, **extra)
    if name == "ses":
        _ses_sets(provider)

    send(run, provider)

    assert set(map(json.dumps, sent_tracking(name, provider))) == {json.dumps(expected)}


# -- SES: tracking needs its configuration set -------------------------------------------------
def test_ses_tracking_without_its_configuration_set_is_refused_before_any_request(
    project: Path, run, start_provider
) -> None:
    provider = start_provider("ses", tracking={"clicks": True}, configuration_set=EVENTS_SET)
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0

    result = run("send", SLUG, "--yes", env=provider.env)

    assert result.exit_code == 1
    assert "[tracking] clicks is on" in result.stderr
    assert "tracking_configuration_set" in result.stderr
    assert "Traceback" not in result.stderr
    assert provider.fake.requests == []


def test_ses_refuses_a_tracking_configuration_set_the_account_lacks(
    project: Path, run, start_provider
) -> None:
    provider = start_provider(
        "ses", tracking={"opens": True}, tracking_configuration_set="no-such-set"
    )
    _ses_sets(provider)
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0

    result = run("send", SLUG, "--yes", env=provider.env)

    assert result.exit_code == 1
    assert "NotFoundException" in result.stderr
    assert provider.fake.accepted == []


# -- config errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('clicks = "yes"', "[tracking] clicks in "),
        ("opens = 1", "[tracking] opens in "),
        ("links = true", "Unknown key 'links' in [tracking]"),
    ],
)
def test_tracking_settings_are_checked(project: Path, section: str, message: str) -> None:
    with (project / "newsletter.toml").open("a", encoding="utf-8") as f:
        f.write(f"\n[tracking]\n{section}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert message in str(caught.value)


def test_a_bad_tracking_setting_stops_a_command_with_the_fix(project: Path, run) -> None:
    with (project / "newsletter.toml").open("a", encoding="utf-8") as f:
        f.write('\n[tracking]\nclicks = "on"\n')

    result = run("send", SLUG, "--yes")

    assert result.exit_code == 1
    assert "[tracking] clicks" in result.stderr and "must be true or false" in result.stderr
    assert "Traceback" not in result.stderr


# -- the fakes refuse what the real APIs refuse -------------------------------------------------
def test_fake_postmark_refuses_a_wrong_track_links_spelling() -> None:
    message = {
        "From": "news@example.org",
        "To": "a@example.org",
        "Subject": "s",
        "TextBody": "t",
    }
    with FakePostmark(token="t") as pm:
        answers = requests.post(
            f"{pm.url}/email/batch",
            json=[
                message | {"TrackLinks": "none"},
                message | {"TrackLinks": True},
                message | {"TrackOpens": "true"},
                message | {"TrackLinks": "TextOnly", "TrackOpens": True},
            ],
            headers={"X-Postmark-Server-Token": "t", "Accept": "application/json"},
            timeout=10,
        ).json()
        accepted = pm.accepted
    assert [a["ErrorCode"] for a in answers] == [300, 300, 300, 0]
    assert "HtmlAndText" in answers[0]["Message"]
    assert accepted[0]["TrackLinks"] == "TextOnly" and accepted[0]["TrackOpens"] is True


@pytest.mark.parametrize(
    "settings",
    [
        {"click_tracking": {"enable": "yes"}},
        {"click_tracking": {"enabled": True}},
        {"clicks_tracking": {"enable": True}},
        {"open_tracking": True},
    ],
)
def test_fake_sendgrid_refuses_malformed_tracking_settings(settings: dict) -> None:
    body = {
        "from": {"email": "news@example.org"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
        "personalizations": [{"to": [{"email": "a@example.org"}]}],
        "tracking_settings": settings,
    }
    with FakeSendGrid(api_key="k") as sg:
        answer = requests.post(
            f"{sg.url}/v3/mail/send",
            json=body,
            headers={"Authorization": "Bearer k"},
            timeout=10,
        )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"].startswith("tracking_settings")


@pytest.mark.parametrize(
    ("option", "value"),
    [("o:tracking-clicks", "on"), ("o:tracking-opens", "htmlonly"), ("o:tracking", "off")],
)
def test_fake_mailgun_refuses_a_tracking_value_it_does_not_know(option: str, value: str) -> None:
    form = {
        "from": "news@example.org",
        "to": "a@example.org",
        "subject": "s",
        "text": "t",
        option: value,
    }
    with FakeMailgun(api_key="k", domain="mg.example.org") as mg:
        answer = requests.post(
            f"{mg.url}/v3/mg.example.org/messages", data=form, auth=("api", "k"), timeout=10
        )
    assert answer.status_code == 400
    assert option in answer.json()["message"]


# -- events: a click's link and the user agent ---------------------------------------------------
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
LINK = "https://riverbend-clinicians.example/articles/five-minute-grounding?utm_source=newsletter"


def postmark_events(email: str) -> list[dict]:
    common = {"MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": email}
    common |= {"Tag": SLUG, "Metadata": {"campaign": SLUG}, "MessageStream": "broadcast"}
    return [
        {
            "RecordType": "Click",
            "ClickLocation": "HTML",
            "Client": {"Name": "Safari", "Company": "Apple Inc.", "Family": "Safari"},
            "OS": {"Name": "OS X 10.15", "Company": "Apple Computer, Inc.", "Family": "OS X"},
            "Platform": "Desktop",
            "UserAgent": UA,
            "OriginalLink": LINK,
            "Geo": {"CountryISOCode": "US", "Country": "United States"},
            "ReceivedAt": "2026-11-02T16:41:02Z",
            **common,
        },
        {
            "RecordType": "Open",
            "FirstOpen": True,
            "Client": {"Name": "Safari", "Company": "Apple Inc.", "Family": "Safari"},
            "Platform": "WebMail",
            "ReadSeconds": 5,
            "UserAgent": UA,
            "ReceivedAt": "2026-11-02T16:40:00Z",
            **common,
        },
    ]


def sendgrid_events(email: str) -> list[dict]:
    common = {
        "email": email,
        "timestamp": 1793637662,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "campaign": SLUG,
        "ip": "255.255.255.255",
    }
    return [
        {"event": "click", "sg_event_id": "c1", "url": LINK, "url_offset": {"index": 0}}
        | {"useragent": UA}
        | common,
        {"event": "open", "sg_event_id": "o1", "useragent": UA, "sg_machine_open": False} | common,
    ]


def mailgun_events(email: str) -> list[dict]:
    def data(event: str, extra: dict) -> dict:
        return {
            "event-data": {
                "event": event,
                "id": f"mg-{event}",
                "timestamp": 1793637662.5,
                "recipient": email,
                "tags": [SLUG],
                "ip": "50.56.129.169",
                "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
                "client-info": {
                    "client-type": "browser",
                    "client-os": "OS X",
                    "device-type": "desktop",
                    "client-name": "Safari",
                    "user-agent": UA,
                },
                "user-variables": {"campaign": SLUG},
                "message": {"headers": {"message-id": "20261102.abc@mg.example.org"}},
                **extra,
            }
        }

    return [data("clicked", {"url": LINK}), data("opened", {})]


def resend_events(email: str) -> list[dict]:
    common = {
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "news@riverbend-clinicians.example",
        "to": [email],
        "subject": "October",
        "created_at": "2026-11-02T16:30:00.000Z",
        "tags": {"campaign": SLUG},
    }
    click = {"ipAddress": "122.115.53.11", "link": LINK, "timestamp": "2026-11-02T16:41:02Z"}
    return [
        {
            "type": "email.clicked",
            "created_at": "2026-11-02T16:41:02.000Z",
            "data": common | {"click": click | {"userAgent": UA}},
        },
        {"type": "email.opened", "created_at": "2026-11-02T16:40:00.000Z", "data": common},
    ]


def ses_events(email: str) -> list[dict]:
    click = {
        "timestamp": "2026-11-02T16:41:02.000Z",
        "ipAddress": "192.0.2.1",
        "userAgent": UA,
        "link": LINK,
        "linkTags": {"samplekey0": ["samplevalue0"]},
    }
    opened = {"timestamp": "2026-11-02T16:40:00.000Z", "ipAddress": "192.0.2.1", "userAgent": UA}
    return [ses_event("Click", email, click=click), ses_event("Open", email, open=opened)]


def brevo_events(email: str) -> list[dict]:
    common = {
        "email": email,
        "id": 4711,
        "date": "2026-11-02 17:41:02",
        "message-id": "<202611021641.12345@smtp-relay.mailin.fr>",
        "ts_epoch": 1793637662000,
        "tags": [SLUG],
        "X-Mailin-custom": json.dumps({"campaign": SLUG}),
        "sending_ip": "185.41.28.109",
        "device_used": "DESKTOP",
        "user_agent": UA,
    }
    return [common | {"event": "click", "link": LINK}, common | {"event": "opened"}]


EVENTS: dict[str, Callable[[str], list[dict]]] = {
    "postmark": postmark_events,
    "sendgrid": sendgrid_events,
    "mailgun": mailgun_events,
    "resend": resend_events,
    "ses": ses_events,
    "brevo": brevo_events,
}
# (kind, url, user_agent) of each provider's click and open, as it reports them
EXPECTED: dict[str, list[tuple[str, str | None, str | None]]] = {
    name: [("clicked", LINK, UA), ("opened", None, UA)] for name in EVENTS
}
EXPECTED["resend"] = [("clicked", LINK, UA), ("opened", None, None)]  # opens carry no agent


def test_every_provider_with_events_has_its_click_and_open_here() -> None:
    assert {p.name for p in providers.with_events()} == set(EVENTS)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_a_click_keeps_its_link_and_an_open_its_user_agent(name: str) -> None:
    records = read_records(name, EVENTS[name]("mina.park@example.org"))

    assert [r.problem for r in records] == [None, None]
    found = [(e.kind, e.url, e.user_agent) for r in records for e in r.events]
    assert found == EXPECTED[name]
    assert all(e.email == "mina.park@example.org" for r in records for e in r.events)


# Each provider's user agent (and link) where it is, of a type it never sends.
MALFORMED: list[tuple[str, Callable[[dict], None], str]] = [
    ("postmark", lambda r: r.update(UserAgent=["Mozilla"]), "UserAgent"),
    ("postmark", lambda r: r.update(OriginalLink=7), "OriginalLink"),
    ("sendgrid", lambda r: r.update(useragent={"ua": UA}), "useragent"),
    ("mailgun", lambda r: r["event-data"].update({"client-info": "Safari"}), "client-info"),
    ("mailgun", lambda r: r["event-data"]["client-info"].update({"user-agent": 5}), "user-agent"),
    ("resend", lambda r: r["data"].update(click=LINK), "click"),
    ("resend", lambda r: r["data"]["click"].update(link=["a"]), "link"),
    ("ses", lambda r: r["click"].update(userAgent=False), "userAgent"),
    ("ses", lambda r: r["click"].update(link={}), "link"),
    ("brevo", lambda r: r.update(user_agent=1), "user_agent"),
    ("brevo", lambda r: r.update(link=["x"]), "link"),
]


@pytest.mark.parametrize(
    ("name", "spoil", "field"), MALFORMED, ids=[f"{m[0]}-{m[2]}" for m in MALFORMED]
)
def test_a_link_or_user_agent_of_the_wrong_type_is_malformed(
    name: str, spoil: Callable[[dict], None], field: str
) -> None:
    click = EVENTS[name]("mina.park@example.org")[0]
    spoil(click)

    (record,) = read_records(name, [click])

    assert record.events == []
    assert record.problem is not None and field in record.problem


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_imported_clicks_and_opens_keep_link_and_user_agent_in_the_events_table(
    project: Path, run, name: str
) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    email = "mina.park@example.org"
    export = project / f"{name}-events.json"
    export.write_text(json.dumps(EVENTS[name](email)), encoding="utf-8")

    result = run("events", "import", str(export), "--provider", name)

    assert result.exit_code == 0, result.stderr
    store = open_store(load_settings().database_url)
    try:
        rows = store.db.execute(
            "SELECT kind, url, user_agent FROM events WHERE provider = ? AND email = ? "
            "ORDER BY kind",
            (name, email),
        ).fetchall()
    finally:
        store.close()
    assert [(row[0], row[1], row[2]) for row in rows] == EXPECTED[name]
