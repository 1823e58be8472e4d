"""Every documented event and bounce type of every provider, row by row: the kind it is
normalised to, and what three of them do to a reader, posted to `POST /webhooks/<provider>`
over real HTTP (the serve app in this process, on a database of its own).

Three of a kind tell the effects apart: an address is suppressed at the first event that
suppresses; a soft bounce suppresses at the third (`soft_bounce_limit` 3); anything else
leaves the reader active, with no soft bounce counted."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests

from conftest import copy_example
from newsletter.config import load_settings
from newsletter.models import Subscriber
from newsletter.store import open_store
from newsletter.web.serve import create_app
from webhook_signers import basic_auth

POSTMARK_SECRET = "hooks:s3cret-pw"
AFTER_THREE = {
    "suppress": ["bounced"] * 3,
    "complain": ["complained"] * 3,
    "unsubscribe": ["unsubscribed"] * 3,
    "count": ["active", "active", "bounced"],
    "record": ["active"] * 3,
}
_numbers = itertools.count(1)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Hooks:
    """`newsletter serve`'s app on 127.0.0.1 over one example project's database."""

    root: Path
    url: str
    store: object

    def reader(self) -> tuple[str, int]:
        """A new active subscriber: (address, id)."""
        email = f"reader-{next(_numbers)}@example.org"
        self.store.import_subscribers([Subscriber(email=email)])
        return email, self.store.subscriber_id(email)

    def status(self, email: str) -> str:
        return str(self.store.subscriber(email).status)

    def kinds(self, email: str) -> list[str]:
        rows = self.store.db.execute(
            "SELECT kind FROM events WHERE email = ? ORDER BY id", (email,)
        ).fetchall()
        return [row[0] for row in rows]

    def soft_bounces(self, email: str) -> int:
        row = self.store.db.execute(
            "SELECT soft_bounces FROM subscribers WHERE email = ?", (email,)
        ).fetchone()
        return row[0]

    def post(self, provider: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/{provider}", timeout=30, **kwargs)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    root = copy_example(tmp_path_factory.mktemp("events") / "project")
    config = str(root / "newsletter.toml")
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    store = open_store(load_settings(config).database_url)
    try:
        yield Hooks(root, f"http://127.0.0.1:{server.server_port}", store)
    finally:
        server.shutdown()
        server.server_close()
        store.close()
        app.project.close()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The providers' webhook secrets, read by the app at each request."""
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_POSTMARK", POSTMARK_SECRET)


def three_times(
    hooks: Hooks, provider: str, request: Callable[[str, int, int], dict]
) -> tuple[str, list[str]]:
    """Post three events of one type for a new reader; the reader's address and their
    status after each."""
    email, subscriber = hooks.reader()
    statuses = []
    for n in range(3):
        answer = hooks.post(provider, **request(email, subscriber, n))
        assert (answer.status_code, answer.text) == (200, "1 event(s)"), answer.text
        statuses.append(hooks.status(email))
    return email, statuses


def assert_row(hooks: Hooks, email: str, statuses: list[str], kind: str, effect: str) -> None:
    assert hooks.kinds(email) == [kind] * 3
    assert statuses == AFTER_THREE[effect]
    if effect == "record":
        assert hooks.soft_bounces(email) == 0


# -- Postmark ------------------------------------------------------------------------------
# Its bounce types, their TypeCodes (postmarkapp.com/developer/api/bounce-api "Bounce types";
# postmark.js Bounce.ts) and what each must do (email-checklist.md).
POSTMARK_BOUNCES = [
    ("HardBounce", 1, "bounced", "suppress"),
    ("Transient", 2, "deferred", "record"),
    ("Unsubscribe", 16, "unsubscribed", "unsubscribe"),
    ("Subscribe", 32, "subscribed", "record"),
    ("AutoResponder", 64, "autoreplied", "record"),
    ("AddressChange", 128, "autoreplied", "record"),
    ("DnsError", 256, "deferred", "record"),
    ("SpamNotification", 512, "filtered", "record"),
    ("OpenRelayTest", 1024, "autoreplied", "record"),
    ("Unknown", 2048, "unknown", "record"),
    ("SoftBounce", 4096, "soft_bounced", "count"),
    ("VirusNotification", 8192, "filtered", "record"),
    ("ChallengeVerification", 16384, "autoreplied", "record"),
    ("BadEmailAddress", 100000, "bounced", "suppress"),
    ("SpamComplaint", 100001, "complained", "complain"),
    ("ManuallyDeactivated", 100002, "dropped", "suppress"),
    ("Unconfirmed", 100003, "failed", "record"),
    ("Blocked", 100006, "filtered", "record"),
    ("SMTPApiError", 100007, "failed", "record"),
    ("InboundError", 100008, "unknown", "record"),
    ("DMARCPolicy", 100009, "filtered", "record"),
    ("TemplateRenderingFailed", 100010, "failed", "record"),
    ("SomeTypeFromNextYear", 200000, "unknown", "record"),
]


def postmark_bounce(bounce_type: str, code: int) -> Callable[[str, int, int], dict]:
    def request(email: str, subscriber: int, n: int) -> dict:
        record = {
            "RecordType": "Bounce",
            "ID": next(_numbers),
            "Type": bounce_type,
            "TypeCode": code,
            "Email": email,
            "BouncedAt": "2026-11-02T16:33:54Z",
            "Description": f"a {bounce_type} record",
            "MessageStream": "broadcast",
            "Metadata": {"subscriber": str(subscriber)},
        }
        return {"json": record, "headers": {"Authorization": basic_auth(*_postmark_auth())}}

    return request


def _postmark_auth() -> tuple[str, str]:
    user, _, password = POSTMARK_SECRET.partition(":")
    return user, password


@pytest.mark.parametrize(
    ("bounce_type", "code", "kind", "effect"),
    POSTMARK_BOUNCES,
    ids=[r[0] for r in POSTMARK_BOUNCES],
)
def test_postmark_bounce_types(hooks, secrets, bounce_type, code, kind, effect) -> None:
    email, statuses = three_times(hooks, "postmark", postmark_bounce(bounce_type, code))
    assert_row(hooks, email, statuses, kind, effect)


def test_a_postmark_bounce_known_by_its_type_code_alone(hooks, secrets) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        made = postmark_bounce("", 64)(email, subscriber, n)
        del made["json"]["Type"]
        return made

    email, statuses = three_times(hooks, "postmark", request)
    assert_row(hooks, email, statuses, "autoreplied", "record")


POSTMARK_RECORDS = [
    ("Delivery", {"DeliveredAt": "2026-11-02T16:30:00Z"}, "delivered", "record"),
    ("Open", {"ReceivedAt": "2026-11-02T16:40:00Z", "FirstOpen": True}, "opened", "record"),
    (
        "Click",
        {"ReceivedAt": "2026-11-02T16:41:00Z", "OriginalLink": "https://example.org/a"},
        "clicked",
        "record",
    ),
    (
        "SpamComplaint",
        {"BouncedAt": "2026-11-02T16:42:00Z", "Type": "SpamComplaint", "TypeCode": 100001},
        "complained",
        "complain",
    ),
    (
        "SubscriptionChange",
        {
            "ChangedAt": "2026-11-02T16:43:00Z",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "Origin": "Recipient",
        },
        "unsubscribed",
        "unsubscribe",
    ),
    (
        "SubscriptionChange",
        {
            "ChangedAt": "2026-11-02T16:43:00Z",
            "SuppressSending": True,
            "SuppressionReason": "HardBounce",
            "Origin": "Recipient",
        },
        "bounced",
        "suppress",
    ),
    (
        "SubscriptionChange",
        {
            "ChangedAt": "2026-11-02T16:43:00Z",
            "SuppressSending": True,
            "SuppressionReason": "SpamComplaint",
            "Origin": "Recipient",
        },
        "complained",
        "complain",
    ),
    (
        "SubscriptionChange",
        {"ChangedAt": "2026-11-02T16:44:00Z", "SuppressSending": False, "Origin": "Customer"},
        "subscribed",
        "record",
    ),
    ("RecordFromNextYear", {}, "unknown", "record"),
]


@pytest.mark.parametrize(
    ("record_type", "fields", "kind", "effect"),
    POSTMARK_RECORDS,
    ids=[f"{r[0]}-{r[2]}" for r in POSTMARK_RECORDS],
)
def test_postmark_record_types(hooks, secrets, record_type, fields, kind, effect) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        record = {
            "RecordType": record_type,
            "MessageID": f"pm-{next(_numbers)}",
            "Recipient": email,
            "Email": email,
            "Metadata": {"subscriber": str(subscriber)},
        } | fields
        if record_type == "SpamComplaint":
            record["ID"] = next(_numbers)
        return {"json": record, "headers": {"Authorization": basic_auth(*_postmark_auth())}}

    email, statuses = three_times(hooks, "postmark", request)
    assert_row(hooks, email, statuses, kind, effect)


def test_three_out_of_office_replies_leave_a_reader_active(hooks, secrets) -> None:
    """The finding: any Postmark bounce type not listed was a soft bounce, so three
    out-of-office replies suppressed a reader."""
    email, statuses = three_times(hooks, "postmark", postmark_bounce("AutoResponder", 64))
    assert statuses == ["active", "active", "active"]
    assert hooks.soft_bounces(email) == 0
    email, statuses = three_times(hooks, "postmark", postmark_bounce("SoftBounce", 4096))
    assert statuses == ["active", "active", "bounced"]
    email, statuses = three_times(hooks, "postmark", postmark_bounce("HardBounce", 1))
    assert statuses[0] == "bounced"
