"""Every documented event and bounce type of every provider, row by row: the kind it is
normalised to, and what three of them do to a reader, posted to `POST /webhooks/<provider>`
over real HTTP (the serve app in this process, on a database of its own).

Three of a kind tell the effects apart: an address is suppressed at the first event that
suppresses; a soft bounce suppresses at the third (`soft_bounce_limit` 3); anything else
leaves the reader active, with no soft bounce counted."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conftest import copy_example
from newsletter.catalog import load_settings
from newsletter.models import Subscriber
from newsletter.store import open_store
from serve_app import serve_in_process
from webhook_signers import SNS, SendGrid, basic_auth, mailgun_signature, ses_event, svix_headers

POSTMARK_SECRET = "hooks:s3cret-pw"
SENDGRID = SendGrid()
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
RESEND_KEY = b"resend-webhook-secret-of-32-byte"
SNS_SIDE = SNS()
AFTER_THREE = {
    "suppress": ["bounced"] * 3,
    "complain": ["complained"] * 3,
    "unsubscribe": ["unsubscribed"] * 3,
    "count": ["active", "active", "bounced"],
    "record": ["active"] * 3,
}
_numbers = itertools.count(1)


@dataclass
class Hooks:
    """`newsletter serve`'s app on 127.0.0.1 over one example project's database."""

    root: Path
    url: str
    store: object

    def reader(self) -> tuple[str, int]:
        """A new active subscriber: (address, id)."""
        email = f"reader-{next(_numbers)}@example.org"
        self.store.subscribers.import_rows([Subscriber(email=email)])
        return email, self.store.subscribers.id_of(email)

    def status(self, email: str) -> str:
        return str(self.store.subscribers.find(email).status)

    def kinds(self, email: str) -> list[str]:
        rows = self.store.db.execute(
            "SELECT kind FROM events WHERE email = ? ORDER BY id", (email,)
        ).fetchall()
        return [row[0] for row in rows]

    def recorded_unknown(self, provider: str, email: str) -> int:
        """Events of ``provider`` recorded as unknown whose raw record names ``email``."""
        row = self.store.db.execute(
            "SELECT count(*) FROM events WHERE provider = ? AND kind = 'unknown' AND raw LIKE ?",
            (provider, f"%{email}%"),
        ).fetchone()
        return row[0]

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
    settings = load_settings(config)
    SNS_SIDE.cache_in(settings.cache_dir)  # AWS cannot be reached from here
    store = open_store(settings.database_url)
    try:
        with serve_in_process(config) as url:
            yield Hooks(root, url, store)
    finally:
        store.close()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The providers' webhook secrets, read by the app at each request."""
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_POSTMARK", POSTMARK_SECRET)
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_SENDGRID", SENDGRID.public)
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_MAILGUN", MAILGUN_KEY)
    monkeypatch.setenv(
        "NEWSLETTER_WEBHOOK_SECRET_RESEND", "whsec_" + base64.b64encode(RESEND_KEY).decode()
    )
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_SES", SNS.TOPIC)


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


def unknown_three_times(
    hooks: Hooks, provider: str, request: Callable[[str, int, int], dict]
) -> None:
    email, subscriber = hooks.reader()
    for n in range(3):
        answer = hooks.post(provider, **request(email, subscriber, n))
        assert (answer.status_code, answer.text) == (200, "1 event(s)"), answer.text
    assert hooks.recorded_unknown(provider, email) == 3
    assert hooks.status(email) == "active"


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


# -- SendGrid ------------------------------------------------------------------------------
# Its event webhook reference: the events, a bounce's `type` and a drop's `reason`.
SENDGRID_ROWS = [
    ("processed", {}, "queued", "record"),
    ("deferred", {"response": "400 try again later", "attempt": "5"}, "deferred", "record"),
    ("delivered", {"response": "250 OK"}, "delivered", "record"),
    ("bounce", {"type": "bounce", "reason": "500 unknown recipient"}, "bounced", "suppress"),
    ("bounce", {"reason": "500 unknown recipient"}, "bounced", "suppress"),  # no `type`
    ("bounce", {"type": "blocked", "reason": "421 try later"}, "soft_bounced", "count"),
    ("bounce", {"type": "expired"}, "soft_bounced", "count"),
    ("dropped", {"reason": "Bounced Address"}, "dropped", "suppress"),
    ("dropped", {"reason": "Invalid"}, "dropped", "suppress"),
    ("dropped", {"reason": "Unsubscribed Address"}, "unsubscribed", "unsubscribe"),
    ("dropped", {"reason": "Spam Reporting Address"}, "complained", "complain"),
    ("dropped", {"reason": "Spam Content"}, "filtered", "record"),
    ("dropped", {"reason": "Invalid SMTPAPI header"}, "failed", "record"),
    ("dropped", {"reason": "Recipient List over Package Quota"}, "failed", "record"),
    ("dropped", {"reason": "A reason from next year"}, "unknown", "record"),
    ("open", {"useragent": "Mozilla/5.0"}, "opened", "record"),
    ("click", {"url": "https://example.org/a"}, "clicked", "record"),
    ("spamreport", {}, "complained", "complain"),
    ("unsubscribe", {}, "unsubscribed", "unsubscribe"),
    ("group_unsubscribe", {"asm_group_id": 10}, "unsubscribed", "unsubscribe"),
    ("group_resubscribe", {"asm_group_id": 10}, "subscribed", "record"),
    ("an_event_from_next_year", {}, "unknown", "record"),
]


def _row_id(row: tuple) -> str:
    """The event, and what further decides its kind: `type`, `severity`, `reason`."""
    fields = row[1]
    keys = ("type", "severity", "reason")
    return "-".join([row[0], *(str(fields[k]) for k in keys if k in fields)]).replace(" ", "_")


@pytest.mark.parametrize(
    ("event", "fields", "kind", "effect"), SENDGRID_ROWS, ids=[_row_id(r) for r in SENDGRID_ROWS]
)
def test_sendgrid_event_types(hooks, secrets, event, fields, kind, effect) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        record = {
            "email": email,
            "timestamp": int(time.time()),
            "event": event,
            "sg_event_id": f"sg-{next(_numbers)}",
            "sg_message_id": f"sgm{next(_numbers)}.filter0001.16648.5515E0B88.0",
            "subscriber": str(subscriber),
        } | fields
        return SENDGRID.signed(json.dumps([record]).encode())

    email, statuses = three_times(hooks, "sendgrid", request)
    assert_row(hooks, email, statuses, kind, effect)


# -- Mailgun -------------------------------------------------------------------------------
# Its event types, and a failure's severity and reason.
MAILGUN_ROWS = [
    ("accepted", {}, "queued", "record"),
    (
        "rejected",
        {"reject": {"reason": "Sandbox subdomains are for test purposes only"}},
        "failed",
        "record",
    ),
    ("delivered", {}, "delivered", "record"),
    ("failed", {"severity": "permanent", "reason": "bounce"}, "bounced", "suppress"),
    ("failed", {"severity": "permanent", "reason": "delayed-bounce"}, "bounced", "suppress"),
    ("failed", {"severity": "permanent", "reason": "generic"}, "bounced", "suppress"),
    ("failed", {"severity": "permanent", "reason": "suppress-bounce"}, "dropped", "suppress"),
    (
        "failed",
        {"severity": "permanent", "reason": "suppress-unsubscribe"},
        "unsubscribed",
        "unsubscribe",
    ),
    ("failed", {"severity": "permanent", "reason": "suppress-complaint"}, "complained", "complain"),
    ("failed", {"severity": "permanent", "reason": "old"}, "soft_bounced", "count"),
    ("failed", {"severity": "permanent", "reason": "next-year"}, "soft_bounced", "count"),
    ("failed", {"severity": "temporary", "reason": "generic"}, "deferred", "record"),
    ("failed", {"severity": "temporary", "reason": "espblock"}, "deferred", "record"),
    ("failed", {"severity": "temporary", "reason": "greylisted"}, "deferred", "record"),
    ("failed", {"severity": "temporary", "reason": "next-year"}, "deferred", "record"),
    ("opened", {}, "opened", "record"),
    ("clicked", {"url": "https://example.org/a"}, "clicked", "record"),
    ("unsubscribed", {}, "unsubscribed", "unsubscribe"),
    ("complained", {}, "complained", "complain"),
    ("stored", {}, "unknown", "record"),
    ("list_member_uploaded", {}, "unknown", "record"),
    ("list_member_upload_error", {}, "unknown", "record"),
    ("an_event_from_next_year", {}, "unknown", "record"),
]


@pytest.mark.parametrize(
    ("event", "fields", "kind", "effect"), MAILGUN_ROWS, ids=[_row_id(r) for r in MAILGUN_ROWS]
)
def test_mailgun_event_types(hooks, secrets, event, fields, kind, effect) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        data = {
            "event": event,
            "id": f"mg-{next(_numbers)}",
            "timestamp": time.time(),
            "recipient": email,
            "user-variables": {"subscriber": str(subscriber)},
            "message": {"headers": {"message-id": f"{next(_numbers)}@mg.example.org"}},
        } | fields
        token = f"token-{next(_numbers)}".ljust(50, "x")
        return {"json": {"signature": mailgun_signature(MAILGUN_KEY, token), "event-data": data}}

    if kind == "unknown":  # not about our messages: recorded with the raw record, no reader
        unknown_three_times(hooks, "mailgun", request)
        return
    email, statuses = three_times(hooks, "mailgun", request)
    assert_row(hooks, email, statuses, kind, effect)


# -- Resend --------------------------------------------------------------------------------
# Its event types, and a bounce's type and subType.
RESEND_ROWS = [
    ("email.sent", {}, "sent", "record"),
    ("email.delivered", {}, "delivered", "record"),
    ("email.delivery_delayed", {}, "deferred", "record"),
    ("email.bounced", {"type": "Permanent", "subType": "General"}, "bounced", "suppress"),
    ("email.bounced", {"type": "Permanent", "subType": "NoEmail"}, "bounced", "suppress"),
    ("email.bounced", {"type": "Permanent", "subType": "Suppressed"}, "dropped", "suppress"),
    (
        "email.bounced",
        {"type": "Permanent", "subType": "OnAccountSuppressionList"},
        "dropped",
        "suppress",
    ),
    ("email.bounced", {"type": "Transient", "subType": "General"}, "soft_bounced", "count"),
    ("email.bounced", {"type": "Transient", "subType": "MailboxFull"}, "soft_bounced", "count"),
    ("email.bounced", {"type": "Transient", "subType": "MessageTooLarge"}, "failed", "record"),
    ("email.bounced", {"type": "Transient", "subType": "ContentRejected"}, "filtered", "record"),
    ("email.bounced", {"type": "Transient", "subType": "AttachmentRejected"}, "filtered", "record"),
    ("email.bounced", {"type": "Temporary"}, "soft_bounced", "count"),
    ("email.bounced", {"type": "Undetermined", "subType": "Undetermined"}, "soft_bounced", "count"),
    ("email.bounced", {"type": "NextYear"}, "soft_bounced", "count"),
    ("email.complained", {}, "complained", "complain"),
    ("email.opened", {}, "opened", "record"),
    ("email.clicked", {}, "clicked", "record"),
    ("email.failed", {}, "failed", "record"),
    ("email.suppressed", {}, "dropped", "suppress"),
    ("email.scheduled", {}, "queued", "record"),
    ("email.received", {}, "unknown", "record"),
    ("contact.created", {}, "unknown", "record"),
    ("contact.updated", {}, "unknown", "record"),
    ("contact.deleted", {}, "unknown", "record"),
    ("domain.created", {}, "unknown", "record"),
    ("email.from_next_year", {}, "unknown", "record"),
]


def _resend_id(row: tuple) -> str:
    bounce = row[1]
    return "-".join([row[0], *(bounce[k] for k in ("type", "subType") if k in bounce)])


@pytest.mark.parametrize(
    ("event", "bounce", "kind", "effect"), RESEND_ROWS, ids=[_resend_id(r) for r in RESEND_ROWS]
)
def test_resend_event_types(hooks, secrets, event, bounce, kind, effect) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        payload = {
            "type": event,
            "created_at": "2026-11-03T10:00:00Z",
            "data": {
                "email_id": f"re-{next(_numbers)}",
                "to": [email],
                "tags": {"subscriber": str(subscriber)},
            },
        }
        if bounce:
            payload["data"]["bounce"] = bounce | {"message": "a bounce"}
        raw = json.dumps(payload).encode()
        msg_id = f"msg_{next(_numbers)}"
        return {"data": raw, "headers": svix_headers(RESEND_KEY, msg_id, raw)}

    if kind == "unknown":  # not about our messages: recorded with the raw record, no reader
        unknown_three_times(hooks, "resend", request)
        return
    email, statuses = three_times(hooks, "resend", request)
    assert_row(hooks, email, statuses, kind, effect)


# -- Amazon SES, through SNS ---------------------------------------------------------------
# Its event types, a bounce's bounceType and bounceSubType, a complaint's feedback type.
def _bounce(bounce_type: str, subtype: str) -> dict:
    return {"bounce": {"bounceType": bounce_type, "bounceSubType": subtype}}


def _complaint(feedback: str | None = None, subtype: str | None = None) -> dict:
    complaint = {"complaintSubType": subtype}
    if feedback:
        complaint["complaintFeedbackType"] = feedback
    return {"complaint": complaint}


SES_ROWS = [
    ("Bounce", _bounce("Permanent", "General"), "bounced", "suppress"),
    ("Bounce", _bounce("Permanent", "NoEmail"), "bounced", "suppress"),
    ("Bounce", _bounce("Permanent", "Suppressed"), "dropped", "suppress"),
    ("Bounce", _bounce("Permanent", "OnAccountSuppressionList"), "dropped", "suppress"),
    ("Bounce", _bounce("Transient", "General"), "soft_bounced", "count"),
    ("Bounce", _bounce("Transient", "MailboxFull"), "soft_bounced", "count"),
    ("Bounce", _bounce("Transient", "MessageTooLarge"), "failed", "record"),
    ("Bounce", _bounce("Transient", "ContentRejected"), "filtered", "record"),
    ("Bounce", _bounce("Transient", "AttachmentRejected"), "filtered", "record"),
    ("Bounce", _bounce("Undetermined", "Undetermined"), "soft_bounced", "count"),
    ("Complaint", _complaint("abuse"), "complained", "complain"),
    ("Complaint", _complaint("fraud"), "complained", "complain"),
    ("Complaint", _complaint("other"), "complained", "complain"),
    ("Complaint", _complaint(), "complained", "complain"),  # no feedback report
    ("Complaint", _complaint(subtype="OnAccountSuppressionList"), "complained", "complain"),
    ("Complaint", _complaint("virus"), "filtered", "record"),
    ("Complaint", _complaint("auth-failure"), "filtered", "record"),
    ("Complaint", _complaint("not-spam"), "unknown", "record"),
    ("Delivery", {"delivery": {"smtpResponse": "250 2.6.0 ok"}}, "delivered", "record"),
    ("Send", {"send": {}}, "sent", "record"),
    ("Reject", {"reject": {"reason": "Bad content"}}, "failed", "record"),
    ("Open", {"open": {"ipAddress": "192.0.2.1"}}, "opened", "record"),
    ("Click", {"click": {"link": "https://example.org/a"}}, "clicked", "record"),
    ("Rendering Failure", {"failure": {"errorMessage": "no such var"}}, "failed", "record"),
    ("DeliveryDelay", {"deliveryDelay": {"delayType": "MailboxFull"}}, "deferred", "record"),
    (
        "Subscription",
        {"subscription": {"contactList": "news", "newTopicPreferences": {"unsubscribeAll": True}}},
        "unsubscribed",
        "unsubscribe",
    ),
    (
        "Subscription",
        {"subscription": {"contactList": "news", "newTopicPreferences": {"unsubscribeAll": False}}},
        "unknown",
        "record",
    ),
]


def _ses_id(row: tuple) -> str:
    own = next(iter(row[1].values()), {})
    words = [own.get(k) for k in ("bounceType", "bounceSubType", "complaintFeedbackType")]
    words += [own.get("complaintSubType")]
    if "newTopicPreferences" in own:
        words.append(f"unsubscribeAll={own['newTopicPreferences']['unsubscribeAll']}")
    return "-".join([row[0].replace(" ", "_"), *(w for w in words if w)])


@pytest.mark.parametrize(
    ("event", "objects", "kind", "effect"), SES_ROWS, ids=[_ses_id(r) for r in SES_ROWS]
)
def test_ses_event_types(hooks, secrets, event, objects, kind, effect) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        record = ses_event(event, email, subscriber, **objects)
        own = next(iter(objects.values()))
        recipients = {
            "Bounce": "bouncedRecipients",
            "Complaint": "complainedRecipients",
            "DeliveryDelay": "delayedRecipients",
        }
        if event in recipients:
            own = own | {recipients[event]: [{"emailAddress": email}]}
            own["feedbackId"] = f"feedback-{next(_numbers)}"
        elif event == "Delivery":
            own = own | {"recipients": [email]}
        record[next(iter(objects))] = own | {"timestamp": "2026-11-02T16:31:00.000Z"}
        return {"json": SNS_SIDE.notification(record)}

    email, statuses = three_times(hooks, "ses", request)
    assert_row(hooks, email, statuses, kind, effect)


@pytest.mark.parametrize("event", ["AmazonSnsSubscriptionSucceeded", "AnEventFromNextYear"])
def test_ses_messages_not_about_our_mail(hooks, secrets, event) -> None:
    def request(email: str, subscriber: int, n: int) -> dict:
        record = {"notificationType": event, "message": f"about {email}"}
        return {"json": SNS_SIDE.notification(record)}

    unknown_three_times(hooks, "ses", request)
