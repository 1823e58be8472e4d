"""Each provider's request body, joined from pieces encoded once per campaign, is byte
for byte the plain ``json.dumps`` of its documented shape (compact, UTF-8 kept), built
here from the same messages; Mailgun's form fields decode to the documented fields.

The readers carry names in every script, quotes, backslashes, control characters,
U+2028/U+2029, commas and semicolons, HTML, and addresses on internationalised domains;
the campaign has per-reader logic (Jinja2 over ``recipient``, in the subject and the
body, with two variants).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
from collections import defaultdict
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from fakes.mailgun import _parse_form
from newsletter.addresses import Carrier
from newsletter.errors import DeliveryError
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.providers.brevo import BrevoTransport, _person
from newsletter.providers.mailgun import MailgunTransport
from newsletter.providers.mailgun import _placeholder as mailgun_placeholder
from newsletter.providers.resend import _TAG_VALUE, ResendTransport
from newsletter.providers.sendgrid import SendGridTransport, _email
from newsletter.providers.sendgrid import _placeholder as sendgrid_placeholder
from newsletter.providers.ses import SESTransport, SigV4, _tag
from newsletter.render import OutgoingMessage
from newsletter.render.message import format_address
from newsletter.render.pieces import Fixed
from raw_http import botocore_signature, read_request

NAMES = [
    ("فاطمة", "الزهراء"),  # Arabic
    ("王", "小明"),  # Chinese
    ("Иван", "Петров"),  # Cyrillic
    ("प्रिया", "शर्मा"),  # Devanagari
    ("🎉 Party", "👩\u200d👩\u200d👧"),  # emoji, a ZWJ sequence
    ("Zoe\u0308", "Nguye\u0302\u0303n"),  # combining marks
    ('Mary "The Boss"', "O'Brien"),  # quotes
    ("Back\\slash", "C:\\new\\table"),  # backslashes (and what would look like escapes)
    ("Ctl\x01\x07\x1f", "Tab\tNew\nline\r"),  # control characters
    ("Line\u2028Sep", "Para\u2029Sep"),  # JavaScript's line terminators
    ("José, Jr.; María", "Ñúñez"),  # accents, a comma and a semicolon in a name
    ("", ""),  # no name
    ("  spaced  out ", " x "),
    ("</script><!--", "&amp; <b>\u00a0\u200b"),  # markup, a no-break and a zero-width space
    ("Ελένη", "Ωμέγα"),  # Greek
    ("\U0001d518\U0001d52b", "\ufeffBOM"),  # astral letters, a byte-order mark
]
ADDRESSES = [
    "fatima@example.org",
    "wang@例え.jp",
    "ivan@пример.рф",
    "priya@उदाहरण.भारत",
    "party@example.com",
    "zoe@bücher.example",
    "mary.obrien@example.org",
    "back.slash@example.org",
    "ctl@example.org",
    "lines@example.org",
    "jose@exämple.org",
    "plain@example.net",
    "spaced@example.net",
    "markup@example.net",
    "eleni@παράδειγμα.δοκιμή",
    "astral@example.net",
]
READERS = [
    Recipient(
        subscriber_id=index + 7,
        email=address,
        first_name=first,
        last_name=last,
        tags=("ce",) if index % 3 else ("therapist",),
    )
    for index, ((first, last), address) in enumerate(zip(NAMES, ADDRESSES, strict=True))
]
PERSONAL = (
    "{{ recipient.first_name | upper }} {{ recipient.last_name }}, "
    "{{ recipient.last_name | length }} letters: "
    '{{ "a member" if "ce" in recipient.tags else "a reader" }}.\n\n'
    '{% if "ce" in recipient.tags %}Your CE hours are waiting, {{ recipient.first_name }}.'
    "{% else %}Earn CE hours with us.{% endif %}\n\nWarmly,"
)
SENDER = '"Équipe «Riverbend», Inc.; Ünïcode" <news@riverbend-clinicians.example>'


def compact(value: Any) -> bytes:
    """The reference encoding: plain ``json.dumps``, compact, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@pytest.fixture(params=["reply-to", "no-reply-to"])
def campaign_project(request: pytest.FixtureRequest, project: Path) -> Path:
    """The example project with per-reader logic in the subject and body, a sender whose
    name holds non-ASCII letters and specials, with or without a reply-to address."""
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^from = .*$", f"from = {json.dumps(SENDER, ensure_ascii=False)}", text)
    if request.param == "no-reply-to":
        text = re.sub(r"(?m)^reply_to = .*\n", "", text)
    config.write_text(text, encoding="utf-8")
    campaign = project / "campaigns" / "2026-10-digest.md"
    text = campaign.read_text(encoding="utf-8")
    text = text.replace("Warmly,", PERSONAL, 1)
    text = re.sub(
        r"(?m)^subject: .*$",
        "subject: '{{ recipient.first_name }} \\\\ \"{{ recipient.last_name }}\": October'",
        text,
        count=1,
    )
    campaign.write_text(text, encoding="utf-8")
    return project


def make_messages(carrier: Any, test: bool = False) -> list[OutgoingMessage]:
    proj = Project.load()
    campaign = proj.composer.campaign("2026-10-digest")
    compiled = proj.composer.compile(campaign, READERS[0])
    factory = proj.composer.factory(compiled, test=test, carrier=carrier)
    personalize = proj.composer.personalizer(campaign.slug)
    return [factory.message(reader, personalize(reader)) for reader in READERS]


def by_variant(messages: list[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """Batches of one variant each, as the sender gives them to a shared-body transport."""
    groups: dict[int, list[OutgoingMessage]] = defaultdict(list)
    for message in messages:
        groups[message.variant.number].append(message)
    assert len(groups) == 2, "the per-reader logic makes two variants"
    return list(groups.values())


def test_the_readers_are_what_the_bodies_are_tested_with(campaign_project: Path) -> None:
    messages = make_messages(SendGridTransport.carrier())
    assert len(messages) == len(READERS)
    assert any("xn--" in m.to_address for m in messages)
    assert any("\u2028" in m.html or "\u2029" in m.html for m in messages)
    assert any('"' in m.subject and "\\" in m.subject for m in messages)
    assert any(not m.text.isascii() for m in messages)


# -- SendGrid ----------------------------------------------------------------------------
def sendgrid_reference(batch: list[OutgoingMessage], clicks: bool, opens: bool) -> bytes:
    factory = batch[0].factory
    shared = factory.shared_content(batch[0].variant, sendgrid_placeholder)
    payload: dict[str, Any] = {
        "from": _email(*factory.sender),
        "subject": shared.subject,
        "content": [
            {"type": "text/plain", "value": shared.text},
            {"type": "text/html", "value": shared.html},
        ],
        "personalizations": [
            {
                "to": [_email(m.to_name, m.to_address)],
                "substitutions": shared.substitutions(m),
                "headers": m.list_headers(),
                "custom_args": {"subscriber": str(m.recipient.subscriber_id)},
            }
            for m in batch
        ],
        "categories": [factory.compiled.slug[:255]],
        "custom_args": {"campaign": factory.compiled.slug},
        "tracking_settings": {
            "click_tracking": {"enable": clicks, "enable_text": clicks},
            "open_tracking": {"enable": opens},
            "subscription_tracking": {"enable": False},
        },
    }
    if factory.reply_to:
        payload["reply_to"] = _email(*factory.reply_to)
    return compact(payload)


@pytest.mark.parametrize("clicks,opens", [(False, False), (True, True), (True, False)])
def test_sendgrid_body_is_the_documented_json(
    campaign_project: Path, clicks: bool, opens: bool
) -> None:
    transport = SendGridTransport("SG.key", clicks=clicks, opens=opens)
    for test in (False, True):
        batches = by_variant(make_messages(transport.carrier(), test=test))
        for _ in range(2):  # the second time from the pieces kept for the campaign
            for batch in batches:
                body = bytes(transport.build_request(batch).body)
                assert body == sendgrid_reference(batch, clicks, opens)
                assert json.loads(body)["personalizations"][0]["to"][0]["email"].isascii()
        one = bytes(transport.build_request(batches[0][:1]).body)
        assert one == sendgrid_reference(batches[0][:1], clicks, opens)


def test_sendgrid_transactional_body_is_the_documented_json(campaign_project: Path) -> None:
    """A transactional message (no List-* headers, Auto-Submitted instead): the
    personalizations the transport encodes from pieces are the documented JSON too."""
    transport = SendGridTransport("SG.key")
    proj = Project.load()
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"), READERS[0])
    factory = dataclasses.replace(
        proj.composer.factory(compiled, carrier=transport.carrier()), transactional=True
    )
    personalize = proj.composer.personalizer(compiled.slug)
    messages = [factory.message(reader, personalize(reader)) for reader in READERS]
    for batch in by_variant(messages):
        body = bytes(transport.build_request(batch).body)
        assert body == sendgrid_reference(batch, False, False)
        assert '"headers":{"Auto-Submitted":"auto-generated"}' in body.decode()
        assert "List-Unsubscribe" not in body.decode()


# -- Resend ------------------------------------------------------------------------------
def resend_reference(batch: list[OutgoingMessage]) -> bytes:
    emails = []
    for m in batch:
        factory = m.factory
        email: dict[str, Any] = {
            "from": factory.sender_display,
            "to": [m.to_display],
            "subject": m.subject,
            "headers": {**m.list_headers(), "Message-ID": m.message_id},
            "tags": [
                {"name": "campaign", "value": _TAG_VALUE.sub("_", factory.compiled.slug)[:256]},
                {"name": "subscriber", "value": str(m.recipient.subscriber_id)},
            ],
        }
        if factory.reply_to_display:
            email["reply_to"] = factory.reply_to_display
        email["html"] = m.html
        email["text"] = m.text
        emails.append(email)
    return compact(emails)


def test_resend_body_is_the_documented_json(campaign_project: Path) -> None:
    transport = ResendTransport("re_key")
    for test in (False, True):
        messages = make_messages(transport.carrier(), test=test)
        for _ in range(2):
            assert bytes(transport.build_request(messages).body) == resend_reference(messages)
        assert bytes(transport.build_request(messages[3:4]).body) == resend_reference(messages[3:4])


# -- Brevo -------------------------------------------------------------------------------
def brevo_reference(batch: list[OutgoingMessage]) -> bytes:
    factory = batch[0].factory
    slug = factory.compiled.slug
    versions = [
        {
            "to": [_person(m.to_name, m.to_address)],
            "subject": m.subject,
            "htmlContent": m.html,
            "textContent": m.text,
            "headers": {
                **m.list_headers(),
                "X-Mailin-custom": json.dumps(
                    {"campaign": slug, "subscriber": str(m.recipient.subscriber_id)},
                    separators=(",", ":"),
                ),
            },
        }
        for m in batch
    ]
    payload: dict[str, Any] = {
        "sender": _person(*factory.sender),
        "subject": versions[0]["subject"],
        "htmlContent": versions[0]["htmlContent"],
        "textContent": versions[0]["textContent"],
        "tags": [slug],
        "messageVersions": versions,
    }
    if factory.reply_to:
        payload["replyTo"] = _person(*factory.reply_to)
    return compact(payload)


def test_brevo_body_is_the_documented_json(campaign_project: Path) -> None:
    transport = BrevoTransport("xkeysib-key")
    for test in (False, True):
        messages = make_messages(transport.carrier(), test=test)
        for _ in range(2):
            assert bytes(transport.build_request(messages).body) == brevo_reference(messages)
        for start in range(len(messages)):  # each reader's version first, and alone
            batch = messages[start:] + messages[:start]
            assert bytes(transport.build_request(batch).body) == brevo_reference(batch)
            assert bytes(transport.build_request(batch[:1]).body) == brevo_reference(batch[:1])


# -- Mailgun -----------------------------------------------------------------------------
def mailgun_reference(
    batch: list[OutgoingMessage], clicks: bool, opens: bool
) -> list[tuple[str, str]]:
    factory = batch[0].factory
    slug = factory.compiled.slug
    shared = factory.shared_content(batch[0].variant, mailgun_placeholder)
    fields = [
        ("from", factory.sender_display),
        ("subject", shared.subject),
        ("text", shared.text),
        ("html", shared.html),
        ("o:tag", slug[:128]),
        ("o:tracking-clicks", "yes" if clicks else "no"),
        ("o:tracking-opens", "yes" if opens else "no"),
        ("h:List-Unsubscribe", "%recipient.list_unsubscribe%"),
        ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("h:List-Id", batch[0].list_headers()["List-Id"]),
        ("v:campaign", slug),
        ("v:subscriber", "%recipient.subscriber%"),
    ]
    if factory.reply_to:
        fields.append(("h:Reply-To", format_address(*factory.reply_to)))
    variables = {}
    for m in batch:
        fields.append(("to", m.to_display))
        values = {
            k.removeprefix("%recipient.").removesuffix("%"): v
            for k, v in shared.substitutions(m).items()
        }
        values["list_unsubscribe"] = m.list_unsubscribe
        values["subscriber"] = str(m.recipient.subscriber_id)
        variables[m.to_address] = values
    fields.append(("recipient-variables", compact(variables).decode("utf-8")))
    return fields


def split_form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The form's fields, read strictly: every part exactly as it was sent."""
    boundary = content_type.partition("boundary=")[2].encode("ascii")
    assert content_type.startswith("multipart/form-data; boundary=") and len(boundary) >= 32
    delimiter = b"--" + boundary + b"\r\n"
    assert body.startswith(delimiter) and body.endswith(b"--" + boundary + b"--\r\n")
    fields = []
    for part in body[len(delimiter) : -len(boundary) - 6].split(delimiter):
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.fullmatch(rb'Content-Disposition: form-data; name="([^"]+)"', head)
        assert name is not None and value.endswith(b"\r\n")
        fields.append((name.group(1).decode("ascii"), value[:-2].decode("utf-8")))
    return fields


@pytest.mark.parametrize("clicks,opens", [(False, False), (True, True), (False, True)])
def test_mailgun_form_fields_are_the_documented_ones(
    campaign_project: Path, clicks: bool, opens: bool
) -> None:
    transport = MailgunTransport("key", "mg.example.org", clicks=clicks, opens=opens)
    for test in (False, True):
        batches = by_variant(make_messages(transport.carrier(), test=test))
        for _ in range(2):
            for batch in batches:
                request = transport.build_request(batch)
                content_type = request.headers["Content-Type"]
                assert request.body is not None and request.files is None
                expected = mailgun_reference(batch, clicks, opens)
                assert split_form(content_type, bytes(request.body)) == expected
                as_parsed = _parse_form(content_type, bytes(request.body))  # as the fake reads it
                grouped: dict[str, list[str | bytes]] = {}
                for name, value in expected:
                    grouped.setdefault(name, []).append(value)
                assert as_parsed == grouped


def test_mailgun_draws_a_boundary_for_each_request(campaign_project: Path) -> None:
    transport = MailgunTransport("key", "mg.example.org")
    batch = by_variant(make_messages(transport.carrier()))[0]
    first, second = (transport.build_request(batch) for _ in range(2))
    assert first.headers["Content-Type"] != second.headers["Content-Type"]
    boundary = first.headers["Content-Type"].partition("boundary=")[2].encode()
    assert first.body is not None
    body = bytes(first.body)
    assert body.count(boundary) == len(split_form(first.headers["Content-Type"], body)) + 1


def test_mailgun_keeps_one_entry_for_an_address_twice_in_a_batch(campaign_project: Path) -> None:
    """As a JSON object keeps one entry a key: the later reader's values, in the first
    one's place (what the plain dict gives)."""
    transport = MailgunTransport("key", "mg.example.org")
    batch = by_variant(make_messages(transport.carrier()))[0]
    batch = [*batch, batch[0]]
    request = transport.build_request(batch)
    assert request.body is not None
    fields = split_form(request.headers["Content-Type"], bytes(request.body))
    assert fields == mailgun_reference(batch, False, False)


# -- SES ---------------------------------------------------------------------------------
def ses_reference(message: OutgoingMessage, raw: bytes, configuration_set: str | None) -> bytes:
    request: dict[str, Any] = {
        "FromEmailAddress": message.factory.envelope_sender,
        "Destination": {"ToAddresses": [message.to_address]},
        "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
        "EmailTags": [
            {"Name": "campaign", "Value": _tag(message.factory.compiled.slug)},
            {"Name": "subscriber", "Value": str(message.recipient.subscriber_id)},
        ],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return compact(request)


def without_date(raw: bytes) -> bytes:
    """The message with its Date header's value taken out (made anew for each call)."""
    return re.sub(rb"(?m)^Date: [^\r]*\r\n", b"Date: -\r\n", raw, count=1)


@pytest.mark.parametrize("configuration_set", [None, "newsletter-tracking"])
def test_ses_body_is_the_documented_json_around_the_messages_own_mime(
    campaign_project: Path, monkeypatch: pytest.MonkeyPatch, configuration_set: str | None
) -> None:
    """SES takes each message's RFC 5322 bytes as they are, base64 in SendEmail's JSON:
    the same bytes the outbox writes, one request per message."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    transport = SESTransport(
        region="eu-west-1", base_url="http://127.0.0.1:9", configuration_set=configuration_set
    )
    try:
        for test in (False, True):
            for message in make_messages(transport.carrier(), test=test) * 2:
                pieces = message.raw_pieces()
                raw = b"".join(pieces)
                body = b"".join(transport.body(message, pieces))
                assert body == ses_reference(message, raw, configuration_set)
                assert without_date(raw) == without_date(message.as_bytes())
                assert message_from_bytes(raw)["Message-ID"] == message.message_id
    finally:
        transport.close()


@pytest.mark.parametrize("own", ["news@riverbend-clinicians.example", "nöws@riverbend.example"])
def test_raw_pieces_are_the_message_with_the_campaigns_pieces_made_once(
    campaign_project: Path, own: str
) -> None:
    """``raw_pieces()`` joined is ``as_bytes()`` for every reader (UTF-8 headers where
    the reader's address needs them), and the campaign's pieces are the same objects in
    every message of a variant. With a non-ASCII address of our own the headers of
    every message are UTF-8, and each message is made whole."""
    config = campaign_project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("news@riverbend-clinicians.example", own), encoding="utf-8")
    messages = make_messages(Carrier())
    seen: dict[int, list[int]] = {}
    for message in messages:
        pieces = message.raw_pieces()
        assert without_date(b"".join(pieces)) == without_date(message.as_bytes())
        fixed = [id(p) for p in pieces if type(p) is Fixed]
        if own.isascii():
            assert (
                sum(map(len, (p for p in pieces if type(p) is Fixed)))
                > 0.9 * len(b"".join(pieces)) - 2000
            )
            assert seen.setdefault(message.variant.number, fixed) == fixed
        else:
            assert len(pieces) == 1 and not fixed
    assert len(seen) == (2 if own.isascii() else 0)


def test_ses_signature_is_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request is signed as botocore signs it (AWS Signature Version 4), with a
    session token when the credentials are temporary."""
    from botocore.credentials import Credentials

    body = b'{"FromEmailAddress":"news@example.org"}'
    now = dt.datetime(2026, 12, 6, 9, 0, 0, tzinfo=dt.UTC)
    for url, token in [
        ("https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails", None),
        ("http://127.0.0.1:8123/v2/email/outbound-emails", "session-token"),
    ]:
        credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
        headers = SigV4(credentials, "eu-west-1", url).headers(body, now)
        signed = headers["Authorization"].partition("SignedHeaders=")[2].split(",")[0]
        expected = botocore_signature(credentials, url, body, headers)
        assert headers["Authorization"].endswith(f"Signature={expected}")
        assert ("x-amz-security-token" in signed) == (token is not None)
        assert headers["Host"] == url.split("/")[2].removesuffix(":443")


def test_ses_connection_closed_while_idle_is_made_again_before_the_next_request() -> None:
    """A server that closes a kept connection between requests: the next request goes on
    a new connection (nothing is lost or unknown), and one connection serves requests in
    a row while it stays open."""
    import socket
    import threading

    from newsletter.providers.ses import Wire

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed = threading.Event()
    connections: list[int] = []

    def serve() -> None:
        for number in range(2):
            conn, _ = listener.accept()
            connections.append(number)
            with conn:
                for _ in range(2 if number == 0 else 1):
                    read_request(conn)
                    answer = b'{"MessageId":"m"}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
            closed.set()  # the first connection: closed after two requests, while idle

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    wire = Wire(f"http://127.0.0.1:{port}/v2/email/outbound-emails", 5.0)
    try:
        for _ in range(2):
            wire.connect()
            assert wire.post(b"{}", {"Content-Type": "application/json"})[0] == 200
        assert closed.wait(5)
        wire.connect()
        status, _, content = wire.post(b"{}", {"Content-Type": "application/json"})
        assert (status, content) == (200, b'{"MessageId":"m"}')
        assert connections == [0, 1]
    finally:
        wire.close()
        listener.close()


# -- a batch posted as several requests ----------------------------------------------------
def test_a_batch_goes_as_requests_of_per_request_and_a_refusal_keeps_what_went_before(
    campaign_project: Path,
) -> None:
    from fakes.brevo import FakeBrevo

    transport = BrevoTransport("xkeysib-test", max_retries=0)
    transport.per_request = 5
    messages = make_messages(transport.carrier())
    with FakeBrevo(api_key="xkeysib-test") as brevo:
        transport.base_url = brevo.url
        assert len(transport.send_batch(messages)) == len(READERS)
        assert [len(r.body["messageVersions"]) for r in brevo.send_requests()] == [5, 5, 5, 1]
        brevo.reset()
        brevo.faults.extend([("hang", 0), ("status", 500, {"message": "down"}, {})])
        with pytest.raises(DeliveryError) as refused:
            transport.send_batch(messages)
    # the first request's readers were sent and are settled as such; nothing after the
    # refused request was posted
    assert [r.subscriber_id for r in refused.value.partial] == [
        m.recipient.subscriber_id for m in messages[:5]
    ]
    assert len(brevo.send_requests()) == 2


def test_after_a_lost_request_the_rest_of_the_batch_is_not_posted(campaign_project: Path) -> None:
    from fakes.brevo import FakeBrevo

    transport = BrevoTransport("xkeysib-test", max_retries=0)
    transport.per_request = 5
    messages = make_messages(transport.carrier())
    with FakeBrevo(api_key="xkeysib-test") as brevo:
        transport.base_url = brevo.url
        brevo.faults.extend([("hang", 0), ("drop_after_read",)])
        results = transport.send_batch(messages)
        assert len(brevo.send_requests()) == 2
    statuses = [str(r.status) for r in results]
    assert statuses == ["sent"] * 5 + ["unknown"] * 5  # the other six go back, unsent
