"""The webhook library without HTTP: where each secret comes from, the signature forms
accepted and refused, replays, and any JSON or header a client can send answered with
200, 400 or 401, never an exception."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter import sns, webhooks
from newsletter.catalog import load_settings, read_records, receive_webhook, webhook_secrets
from newsletter.events import MAX_DEPTH, load_json
from newsletter.store import Store, open_store
from newsletter.webhooks import WebhookSecrets, strict_b64decode, unreported_notes
from webhook_signers import (
    P256_ORDER,
    SNS,
    SendGrid,
    basic_auth,
    mailgun_signature,
    noncanonical,
    ses_event,
    svix_headers,
)

SENDGRID = SendGrid()
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
RESEND_KEY = b"resend-webhook-secret-of-32-byte"
RESEND_SECRET = "whsec_" + base64.b64encode(RESEND_KEY).decode()
SNS_SIDE = SNS()
SECRETS = {
    "postmark": "hooks:pw",
    "sendgrid": SENDGRID.public,
    "mailgun": MAILGUN_KEY,
    "resend": RESEND_SECRET,
    "ses": SNS.TOPIC,
}
SES_DELIVERY = ses_event(
    "Delivery", "reader@example.org", delivery={"recipients": ["reader@example.org"]}
)


@pytest.fixture(autouse=True)
def sns_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    """SNS's signing certificate, as the network would give it (``sns.fetch``)."""

    def fetch(url: str) -> bytes:
        if url == SNS_SIDE.cert_url:
            return SNS_SIDE.pem
        raise sns.FetchFailed("HTTP 404", temporary=False)

    monkeypatch.setattr(sns, "fetch", fetch)


@pytest.fixture
def store(project: Path) -> Iterator[Store]:
    """The example project's database (PostgreSQL when the suite runs on it)."""
    opened = open_store(load_settings(str(project / "newsletter.toml")).database_url)
    yield opened
    opened.close()


def receive(store, provider: str, body: bytes, headers: dict, secrets: dict | None = None):
    given_secrets = WebhookSecrets(SECRETS if secrets is None else secrets)
    return receive_webhook(provider, headers, body, given_secrets, store.events)


def signed(provider: str, payload: object, *, msg_id: str = "msg_1") -> tuple[bytes, dict]:
    """A body and headers as ``provider`` would send ``payload``, correctly signed."""
    if provider == "mailgun" and isinstance(payload, dict):
        payload = payload | {"signature": mailgun_signature(MAILGUN_KEY, msg_id.ljust(50, "x"))}
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if provider == "postmark":
        return body, {"Authorization": basic_auth("hooks", "pw")}
    if provider == "sendgrid":
        return body, SENDGRID.signed(body)["headers"]
    if provider == "resend":
        return body, svix_headers(RESEND_KEY, msg_id, body)
    if provider == "ses":  # an SNS envelope around the SES event
        message = SNS_SIDE.notification(body.decode("utf-8", "replace"), message_id=msg_id)
        return json.dumps(message).encode(), {}
    return body, {}


SPAMREPORT = {
    "email": "reader@example.org",
    "timestamp": 1700000000,
    "event": "spamreport",
    "sg_event_id": "ev-1",
    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
}


# -- secrets ----------------------------------------------------------------------------------
def test_each_provider_reads_its_own_variable() -> None:
    environ = {
        "NEWSLETTER_WEBHOOK_SECRET_POSTMARK": "hooks:pw",
        "NEWSLETTER_WEBHOOK_SECRET_SENDGRID": SENDGRID.public,
        "NEWSLETTER_WEBHOOK_SECRET_MAILGUN": f"  {MAILGUN_KEY}\n",
    }
    secrets = webhook_secrets("sendgrid", environ)
    assert dict(secrets.by_provider) == {
        "postmark": "hooks:pw",
        "sendgrid": SENDGRID.public,
        "mailgun": MAILGUN_KEY,
    }
    assert secrets.notes == ()


@pytest.mark.parametrize(
    ("transport", "legacy"),
    [
        ("postmark", "legacy:secret"),
        ("sendgrid", SENDGRID.public),
        ("mailgun", "legacy:secret"),
        ("resend", RESEND_SECRET),
    ],
)
def test_the_old_variable_serves_the_transports_provider_alone(transport: str, legacy) -> None:
    secrets = webhook_secrets(transport, {"NEWSLETTER_WEBHOOK_SECRET": legacy})
    assert dict(secrets.by_provider) == {transport: legacy}
    assert f"NEWSLETTER_WEBHOOK_SECRET_{transport.upper()}" in secrets.notes[0]
    assert secrets.errors == () and secrets.refused == ()


def _pem(public: str) -> str:
    return (
        serialization.load_der_public_key(base64.b64decode(public))
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize(
    ("transport", "legacy"),
    [
        ("mailgun", SENDGRID.public),  # SendGrid's public key as Mailgun's HMAC key
        ("mailgun", _pem(SENDGRID.public)),
        ("postmark", "hooks:" + SENDGRID.public),
        ("resend", "whsec_" + SENDGRID.public),
        ("sendgrid", MAILGUN_KEY),  # an HMAC key as SendGrid's verification key
        ("sendgrid", "legacy:secret"),
    ],
)
def test_the_old_variable_is_refused_where_it_cannot_be_that_kind_of_key(
    store, transport: str, legacy: str
) -> None:
    """The old single secret where it cannot be the provider's kind of key: a public key
    (anyone can sign with it) where a shared secret belongs, or a shared secret where a
    public key belongs. Refused: the endpoint answers 503, a forged request changes
    nothing, and the error says which variable to set."""
    secrets = webhook_secrets(transport, {"NEWSLETTER_WEBHOOK_SECRET": legacy})
    assert dict(secrets.by_provider) == {} and secrets.refused == (transport,)
    (error,) = secrets.errors
    assert error.startswith(f"NEWSLETTER_WEBHOOK_SECRET is refused for /webhooks/{transport}")
    assert f"Set NEWSLETTER_WEBHOOK_SECRET_{transport.upper()} to" in error
    assert secrets.notes == ()
    body, headers = signed(transport, {})
    assert receive_webhook(transport, headers, body, secrets, store.events).status == 503


def test_a_public_key_is_never_a_shared_secret(store) -> None:
    """A provider's own variable holding a public key is refused too."""
    environ = {
        "NEWSLETTER_WEBHOOK_SECRET_MAILGUN": SENDGRID.public,
        "NEWSLETTER_WEBHOOK_SECRET_POSTMARK": "hooks:" + _pem(SENDGRID.public),
        "NEWSLETTER_WEBHOOK_SECRET_SENDGRID": SENDGRID.public,
    }
    secrets = webhook_secrets("outbox", environ)
    assert dict(secrets.by_provider) == {"sendgrid": SENDGRID.public}
    assert set(secrets.refused) == {"mailgun", "postmark"}
    assert sorted(e.split(" ", 1)[0] for e in secrets.errors) == [
        "NEWSLETTER_WEBHOOK_SECRET_MAILGUN",
        "NEWSLETTER_WEBHOOK_SECRET_POSTMARK",
    ]


@pytest.mark.parametrize("transport", ["outbox", "smtp", "ses"])
def test_the_old_variable_is_ignored_without_webhooks(transport: str) -> None:
    secrets = webhook_secrets(transport, {"NEWSLETTER_WEBHOOK_SECRET": "hooks:pw"})
    assert dict(secrets.by_provider) == {}
    (note,) = secrets.notes
    assert note.startswith("NEWSLETTER_WEBHOOK_SECRET is ignored")


def test_the_new_variable_wins_over_the_old(store) -> None:
    environ = {
        "NEWSLETTER_WEBHOOK_SECRET": "old:one",
        "NEWSLETTER_WEBHOOK_SECRET_POSTMARK": "new:one",
    }
    secrets = webhook_secrets("postmark", environ)
    assert dict(secrets.by_provider) == {"postmark": "new:one"}
    assert "NEWSLETTER_WEBHOOK_SECRET is ignored" in secrets.notes[0]


def test_unusable_secrets_are_reported_and_answer_503(store) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    unusable = {
        "postmark": ["no-colon", ":pw", "user:"],
        "sendgrid": [
            "not a key",
            noncanonical(SENDGRID.public),
            base64.b64encode(rsa_der).decode(),
            p384.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        ],
        "resend": [base64.b64encode(RESEND_KEY).decode(), "whsec_!!", "whsec_c2hvcnQ="],
    }
    for provider, values in unusable.items():
        for value in values:
            environ = {f"NEWSLETTER_WEBHOOK_SECRET_{provider.upper()}": value}
            secrets = webhook_secrets("outbox", environ)
            assert any("is not usable" in note for note in secrets.notes), (provider, value)
            body, headers = signed(provider, {})
            answer = receive_webhook(provider, headers, body, secrets, store.events)
            assert answer.status == 503, (provider, value)


def test_sendgrid_accepts_its_key_as_pem(store) -> None:
    pem = serialization.load_der_public_key(base64.b64decode(SENDGRID.public)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body, headers = signed("sendgrid", [SPAMREPORT])
    answer = receive(store, "sendgrid", body, headers, {"sendgrid": pem.decode()})
    assert answer.text == "1 event(s)"


def test_the_ses_secret_is_our_topics_arn(store) -> None:
    topics = f"{SNS.TOPIC}, arn:aws-us-gov:sns:us-gov-west-1:123456789012:news"
    assert webhook_secrets("ses", {"NEWSLETTER_WEBHOOK_SECRET_SES": topics}).notes == ()
    for unusable in ("anything", "hooks:pw", f"{SNS.TOPIC},arn:aws:sns:eu-west-1:1:x", ","):
        secrets = webhook_secrets("ses", {"NEWSLETTER_WEBHOOK_SECRET_SES": unusable})
        assert "NEWSLETTER_WEBHOOK_SECRET_SES is not usable" in secrets.notes[0], unusable
        body, headers = signed("ses", SES_DELIVERY)
        assert receive_webhook("ses", headers, body, secrets, store.events).status == 503
    none = receive_webhook("ses", {}, b"{}", webhook_secrets("ses", {}), store.events)
    unknown = receive_webhook("nosuch", {}, b"{}", webhook_secrets("ses", {}), store.events)
    assert none == unknown and none.status_line == "404 Not Found"


def test_notes_are_reported_once_per_process(store, caplog, monkeypatch) -> None:
    # a fresh process as far as the notes go: another test in this worker may have seen it
    monkeypatch.setattr(webhooks, "_reported", set())
    secrets = webhook_secrets("mailgun", {"NEWSLETTER_WEBHOOK_SECRET": "only-once-note"})
    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks"):
        for _ in range(3):
            receive_webhook("mailgun", {}, b"{}", secrets, store.events)
    assert len([r for r in caplog.records if "NEWSLETTER_WEBHOOK_SECRET_MAILGUN" in r.message]) == 1
    assert unreported_notes(secrets) == []


# -- signature forms --------------------------------------------------------------------------
def test_strict_base64_has_one_spelling() -> None:
    assert strict_b64decode("aGk=") == b"hi"
    for text in ("aGk", "aGl=", "aGk==", "aGk=AAAA", " aGk=", "aG k=", "aGk=\n", "a-_=", "é"):
        assert strict_b64decode(text) is None, text


def test_sendgrid_takes_either_s_form_of_a_fresh_signature(store) -> None:
    """`cryptography` (OpenSSL), like SendGrid's signers may, makes high-S signatures about
    half the time: both forms verify. The malleated copy of one already accepted changes
    nothing, since replays are known by sg_event_id, not by the signature's bytes."""
    forms = []
    while len({high for high, _ in forms}) < 2:
        timestamp = str(int(time.time()))
        der = SENDGRID.der(b"x", timestamp)
        forms.append((decode_dss_signature(der)[1] > P256_ORDER // 2, der))
    for n, high_s in enumerate((True, False)):
        body = json.dumps([SPAMREPORT | {"sg_event_id": f"ev-{high_s}"}]).encode()
        timestamp = str(int(time.time()))
        der = SENDGRID.der(body, timestamp, high_s=high_s)
        headers = SENDGRID.headers(base64.b64encode(der).decode(), timestamp)
        assert receive(store, "sendgrid", body, headers).text == "1 event(s)", n
        malleated = SENDGRID.der(body, timestamp, high_s=not high_s)
        headers = SENDGRID.headers(base64.b64encode(malleated).decode(), timestamp)
        assert receive(store, "sendgrid", body, headers).text == "already received"


def _der_integer(value: bytes) -> bytes:
    return b"\x02" + bytes([len(value)]) + value


def test_sendgrid_refuses_der_that_is_not_minimal_or_has_trailing_bytes(store) -> None:
    body = json.dumps([SPAMREPORT]).encode()
    timestamp = str(int(time.time()))
    der = SENDGRID.der(body, timestamp, high_s=False)
    r, s = decode_dss_signature(der)
    r_bytes = r.to_bytes(33, "big").lstrip(b"\x00")
    s_bytes = s.to_bytes(33, "big").lstrip(b"\x00")
    padded = b"\x00\x00" + r_bytes  # a leading zero byte too many
    content = _der_integer(padded) + _der_integer(b"\x00" + s_bytes)
    variants = {
        "a zero byte too many": b"\x30" + bytes([len(content)]) + content,
        "a trailing byte": der + b"\x00",
        "two signatures": der + der,
        "long-form length": b"\x30\x81" + der[1:2] + der[2:],
        "truncated": der[:-1],
    }
    for name, bad in variants.items():
        headers = SENDGRID.headers(base64.b64encode(bad).decode(), timestamp)
        answer = receive(store, "sendgrid", body, headers)
        assert answer.status == 401, (name, answer)
    good = SENDGRID.headers(base64.b64encode(der).decode(), timestamp)
    assert receive(store, "sendgrid", body, good).status == 200


def test_timestamps_out_of_tolerance_are_refused_both_ways(store) -> None:
    body = json.dumps([SPAMREPORT]).encode()
    for offset in (-601, 601):
        timestamp = str(int(time.time()) + offset)
        headers = SENDGRID.headers(
            base64.b64encode(SENDGRID.der(body, timestamp)).decode(), timestamp
        )
        assert receive(store, "sendgrid", body, headers).status == 400
    for bad in ("1e9", "-5", "nan", "１７０００", "17000000000000"):
        headers = SENDGRID.headers(base64.b64encode(SENDGRID.der(body, bad)).decode(), bad)
        assert receive(store, "sendgrid", body, headers).status == 401, bad


# -- replays and failures ---------------------------------------------------------------------
def test_an_event_twice_in_one_batch_is_applied_once(store) -> None:
    batch = [SPAMREPORT, SPAMREPORT, SPAMREPORT | {"sg_event_id": "ev-2", "event": "delivered"}]
    body, headers = signed("sendgrid", batch)
    assert receive(store, "sendgrid", body, headers).text == "2 event(s); 1 already received"


def test_events_without_an_id_are_known_by_their_content(store) -> None:
    event = {"event": "failed", "severity": "temporary", "recipient": "a@example.org"}
    first = receive(store, "mailgun", *signed("mailgun", {"event-data": event}, msg_id="t1"))
    again = receive(store, "mailgun", *signed("mailgun", {"event-data": event}, msg_id="t2"))
    other = event | {"recipient": "b@example.org"}
    third = receive(store, "mailgun", *signed("mailgun", {"event-data": other}, msg_id="t3"))
    assert (first.text, again.text, third.text) == ("1 event(s)", "already received", "1 event(s)")


class FailingOnce:
    """An event log whose first attempt to record an event fails (the database went away)."""

    def __init__(self, events) -> None:
        self.events = events
        self.failed = False

    def __getattr__(self, name: str):
        return getattr(self.events, name)

    def record(self, event, soft_bounce_limit: int = 3) -> str:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the database went away")
        return self.events.record(event, soft_bounce_limit)


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "mailgun", "resend", "ses"])
def test_a_failure_releases_the_keys_so_the_providers_retry_is_applied(store, provider) -> None:
    payload = {
        "postmark": {"RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "Email": "a@b.org"},
        "sendgrid": [SPAMREPORT],
        "mailgun": {"event-data": {"event": "complained", "id": "e1", "recipient": "a@b.org"}},
        "resend": {"type": "email.complained", "data": {"to": ["a@b.org"]}},
        "ses": SES_DELIVERY,
    }[provider]
    body, headers = signed(provider, payload)
    with pytest.raises(ConnectionError):
        receive_webhook(provider, headers, body, WebhookSecrets(SECRETS), FailingOnce(store.events))
    assert receive(store, provider, body, headers).text == "1 event(s)"
    assert receive(store, provider, body, headers).text == "already received"


# -- JSON with limits -------------------------------------------------------------------------
def test_json_depth_is_limited_before_anything_recurses() -> None:
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    for body in (
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 100_000,
    ):
        with pytest.raises(ValueError, match=r"nested deeper|not JSON"):
            load_json(body)


def test_records_of_the_wrong_shape_say_why() -> None:
    records = read_records(
        "postmark",
        [
            {"RecordType": "Bounce", "Metadata": [1]},
            {"RecordType": "Bounce", "Email": ["a@b.org"]},
            {"RecordType": "Bounce", "ID": -1},
            {"RecordType": "Bounce", "ID": True},
            {"RecordType": "Delivery", "DeliveredAt": 1700000000},
            {"RecordType": "Bounce", "Metadata": {"subscriber": 10**30, "campaign": 5}},
            "a string",
            {"RecordType": "Inbound", "Metadata": [1]},
        ],
    )
    assert [r.problem for r in records] == [
        "Metadata is a list, not an object",
        "Email is a list, not a string",
        "ID -1 is not an id",
        "ID True is not an id",
        "DeliveredAt is a number, not a string",
        None,  # our own metadata: unusable values are ignored
        "a string, not an event object",
        None,  # a record of a type no table names: its fields are not read
    ]
    assert records[5].events[0].subscriber_id is None and records[5].events[0].campaign is None
    (unknown,) = records[7].events
    assert (unknown.kind, unknown.detail) == ("unknown", "RecordType Inbound")
    assert unknown.raw == {"RecordType": "Inbound", "Metadata": [1]}


# -- anything a client can send ---------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMES = st.one_of(
    JSON,
    st.sampled_from(["2026-11-02T16:33:54Z", "abc", "1e300", "NaN", "-5", "1700000000"]),
    st.floats(),
    st.integers(min_value=-(10**20), max_value=10**20),
)


def fields(**choices) -> st.SearchStrategy:
    """Objects with some of these fields, each a likely value or any JSON at all."""
    return st.fixed_dictionaries(
        {}, optional={name: st.one_of(JSON, values) for name, values in choices.items()}
    )


IDS = st.one_of(st.text(max_size=8), st.integers(min_value=-(2**70), max_value=2**70))
EMAILS = st.sampled_from(["zoe@example.com", "", "not an address"])
OURS = fields(campaign=st.just("2026-10-digest"), subscriber=st.sampled_from(["4", 4, "x", -1]))
SHAPED = {
    "postmark": fields(
        RecordType=st.sampled_from(
            ["Bounce", "SpamComplaint", "Delivery", "SubscriptionChange", "Open", "Click"]
        ),
        ID=IDS,
        Type=st.sampled_from(["HardBounce", "SoftBounce", "SpamComplaint"]),
        Email=EMAILS,
        Recipient=EMAILS,
        MessageID=IDS,
        BouncedAt=TIMES,
        DeliveredAt=TIMES,
        ChangedAt=TIMES,
        ReceivedAt=TIMES,
        SuppressSending=st.booleans(),
        SuppressionReason=st.sampled_from(["HardBounce", "ManualSuppression"]),
        Metadata=OURS,
        Tag=st.text(max_size=5),
        Description=st.text(max_size=5),
        OriginalLink=st.text(max_size=5),
    ),
    "sendgrid": st.lists(
        fields(
            event=st.sampled_from(["bounce", "spamreport", "delivered", "dropped", "processed"]),
            type=st.sampled_from(["bounce", "blocked"]),
            email=EMAILS,
            sg_event_id=IDS,
            sg_message_id=IDS,
            timestamp=TIMES,
            campaign=JSON,
            subscriber=JSON,
            reason=JSON,
            url=JSON,
        ),
        max_size=4,
    ),
    "mailgun": fields(
        **{
            "event-data": fields(
                event=st.sampled_from(["failed", "complained", "delivered", "opened"]),
                severity=st.sampled_from(["permanent", "temporary"]),
                recipient=EMAILS,
                id=IDS,
                timestamp=TIMES,
                message=fields(headers=fields(**{"message-id": IDS})),
                **{"user-variables": OURS, "delivery-status": fields(description=JSON)},
            )
        }
    ),
    "resend": fields(
        type=st.sampled_from(["email.bounced", "email.complained", "email.delivered"]),
        created_at=TIMES,
        data=fields(
            email_id=IDS,
            to=st.one_of(st.lists(EMAILS, max_size=3), EMAILS),
            tags=st.one_of(OURS, st.lists(fields(name=JSON, value=JSON), max_size=2)),
            bounce=fields(type=st.sampled_from(["Permanent", "Temporary"]), message=JSON),
        ),
    ),
    "ses": fields(
        eventType=st.sampled_from(["Bounce", "Complaint", "Delivery", "Send", "DeliveryDelay"]),
        notificationType=st.sampled_from(["Bounce", "AmazonSnsSubscriptionSucceeded"]),
        mail=fields(
            messageId=IDS,
            timestamp=TIMES,
            destination=st.lists(EMAILS, max_size=2),
            tags=fields(campaign=st.lists(JSON, max_size=2), subscriber=st.lists(JSON)),
        ),
        bounce=fields(
            bounceType=st.sampled_from(["Permanent", "Transient", "Undetermined"]),
            bounceSubType=st.sampled_from(["General", "MailboxFull", "Suppressed"]),
            bouncedRecipients=st.lists(fields(emailAddress=EMAILS), max_size=2),
            feedbackId=IDS,
            timestamp=TIMES,
        ),
        complaint=fields(
            complaintFeedbackType=st.sampled_from(["abuse", "not-spam", "virus"]),
            complainedRecipients=st.lists(fields(emailAddress=EMAILS), max_size=2),
        ),
        delivery=fields(recipients=st.lists(EMAILS, max_size=2), timestamp=TIMES),
    ),
}
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.data(), provider=st.sampled_from(sorted(SHAPED)))
def test_any_signed_payload_gets_200_or_400(store, data, provider: str) -> None:
    payload = data.draw(st.one_of(SHAPED[provider], JSON), label="payload")
    msg_id = f"msg_{data.draw(st.integers(0, 10**9))}"
    answer = receive(store, provider, *signed(provider, payload, msg_id=msg_id))
    assert answer.status in (200, 400), answer
    assert 0 < len(answer.text) <= 160


@FUZZ
@given(data=st.data(), provider=st.sampled_from(sorted(SHAPED)), body=st.binary(max_size=64))
def test_any_signed_bytes_get_200_or_400_and_any_headers_401(
    store, data, provider: str, body: bytes
) -> None:
    signed_body, headers = signed(provider, body)
    assert receive(store, provider, signed_body, headers).status in (200, 400, 401)
    garbage = {name: data.draw(st.text(max_size=40), label=name) for name in headers}
    answer = receive(store, provider, json.dumps({"event-data": {}}).encode(), garbage)
    assert answer.status in (400, 401), answer
