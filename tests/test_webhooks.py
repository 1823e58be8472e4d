"""`POST /webhooks/<provider>` over real HTTP: each provider has its own secret (and no
endpoint without one), signatures are checked strictly, a replay is acknowledged but
applied once, and a malformed request gets a 4xx with a reason, never a 5xx."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from conftest import run_process, set_delivery
from webhook_signers import (
    P256_ORDER,
    SendGrid,
    mailgun_signature,
    noncanonical,
    svix_headers,
)

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

POSTMARK_AUTH = ("hooks", "s3cret-pw")
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
RESEND_KEY = b"resend-webhook-secret-of-32-byte"
RESEND_SECRET = "whsec_" + base64.b64encode(RESEND_KEY).decode()


# -- a project with a sent campaign, and `newsletter serve` over it -------------------------
@pytest.fixture
def sent(project: Path) -> Path:
    """The example campaign sent to the outbox: real messages with real ids."""
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    return project


class Server:
    """A `newsletter serve` child process; its stderr is collected as it comes."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", "0"],
            cwd=cwd,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._ready.wait(60) and self.url, self.stderr

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            if match and not self.url:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, count: int = 1) -> str:
        deadline = time.monotonic() + 10
        while self.stderr.count(text) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stderr

    def post(self, provider: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/{provider}", timeout=30, **kwargs)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def serve(sent: Path) -> Iterator[Callable[..., Server]]:
    """``serve(transport="outbox", legacy=None, **secrets)``: secrets by provider name
    (``postmark="user:pw"`` is NEWSLETTER_WEBHOOK_SECRET_POSTMARK), ``legacy`` the old
    single NEWSLETTER_WEBHOOK_SECRET."""
    servers: list[Server] = []

    def start(transport: str = "outbox", legacy: str | None = None, **secrets: str) -> Server:
        if transport != "outbox":
            set_delivery(sent, transport=transport)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update({f"NEWSLETTER_WEBHOOK_SECRET_{p.upper()}": s for p, s in secrets.items()})
        if legacy is not None:
            env["NEWSLETTER_WEBHOOK_SECRET"] = legacy
        servers.append(Server(sent, env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def status_of(project: Path, address: str) -> str:
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    return next(r["status"] for r in listed if r["email"] == address)


def event_counts(project: Path) -> dict[str, int]:
    """The campaign's events by kind, those that did not occur left out."""
    result = run_process("report", "2026-10-digest", "--format", "json", cwd=project)
    return {kind: n for kind, n in json.loads(result.stdout)["events"].items() if n}


def delivered_id(project: Path, address: str) -> str:
    result = run_process("report", "2026-10-digest", "--format", "json", cwd=project)
    recipients = json.loads(result.stdout)["recipients"]
    return next(r["provider_message_id"] for r in recipients if r["email"] == address)


# -- requests as each provider makes them ------------------------------------------------
def mailgun_body(token: str, event_id: str, key: str = MAILGUN_KEY) -> dict:
    return {
        "signature": mailgun_signature(key, token),
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "recipient": "t.lindqvist@example.com",
            "id": event_id,
            "timestamp": time.time(),
            "reason": "bounce",
            "user-variables": {"campaign": "2026-10-digest", "subscriber": "6"},
            "delivery-status": {"code": 550, "description": "No such user"},
        },
    }


def svix_signed(
    msg_id: str, payload: dict | bytes, key: bytes = RESEND_KEY, timestamp: int | None = None
) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"data": raw, "headers": svix_headers(key, msg_id, raw, timestamp)}


def postmark_bounce(project: Path, address: str, subscriber: str, **changes) -> dict:
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": address,
        "BouncedAt": "2026-11-02T16:33:54Z",
        "MessageID": delivered_id(project, address),
        "Inactive": True,
        "Description": "The server was unable to deliver your message",
        "MessageStream": "broadcast",
        "Metadata": {"campaign": "2026-10-digest", "subscriber": subscriber},
    }
    return bounce | changes


def resend_soft_bounce(n: int) -> dict:
    return {
        "type": "email.bounced",
        "created_at": "2026-11-03T10:00:00Z",
        "data": {
            "email_id": f"e-{n}",
            "to": ["sam.achterberg@example.com"],
            "tags": {"campaign": "2026-10-digest", "subscriber": "11"},
            "bounce": {"type": "Temporary", "message": "Mailbox full"},
        },
    }


def spamreport(address: str, subscriber: str, event_id: str = "ZXZlbnQtMQ", **changes) -> dict:
    event = {
        "email": address,
        "timestamp": int(time.time()),
        "event": "spamreport",
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "campaign": "2026-10-digest",
        "subscriber": subscriber,
    }
    return event | changes


# -- one secret per provider ---------------------------------------------------------------
def test_the_sendgrid_public_key_forges_no_other_providers_events(sent: Path, serve) -> None:
    """The original attack: SendGrid's verification key is public. With one secret for
    all, it was also Postmark's password, Mailgun's HMAC key and Resend's Svix key."""
    sendgrid = SendGrid()
    public = sendgrid.public
    server = serve(
        postmark=":".join(POSTMARK_AUTH),
        sendgrid=public,
        mailgun=MAILGUN_KEY,
        resend=RESEND_SECRET,
    )
    forged_postmark = postmark_bounce(
        sent, "zoe.hartmann@example.com", "4", Type="SpamComplaint", RecordType="SpamComplaint"
    )
    for user in ("hooks", "anything", public):
        answer = server.post("postmark", json=forged_postmark, auth=(user, public))
        assert answer.status_code == 401, answer.text
    answer = server.post("mailgun", json=mailgun_body("f" * 50, "evt-forged", key=public))
    assert answer.status_code == 401, answer.text
    complaint = {
        "type": "email.complained",
        "created_at": "2026-11-03T10:00:00Z",
        "data": {"email_id": "e-9", "to": ["sam.achterberg@example.com"]},
    }
    for key in (base64.b64decode(public), public.encode()):
        answer = server.post("resend", **svix_signed("msg_forged", complaint, key=key))
        assert answer.status_code == 401, answer.text
    for address in ("zoe.hartmann@example.com", "t.lindqvist@example.com"):
        assert status_of(sent, address) == "active"
    assert status_of(sent, "sam.achterberg@example.com") == "active"
    assert event_counts(sent) == {}

    # the genuine SendGrid request still works
    body = json.dumps([spamreport("jose.alvarez@example.org", "5")]).encode()
    assert server.post("sendgrid", **sendgrid.signed(body)).status_code == 200
    assert status_of(sent, "jose.alvarez@example.org") == "complained"


def test_a_provider_without_its_own_secret_has_no_endpoint(sent: Path, serve) -> None:
    sendgrid = SendGrid()
    server = serve(sendgrid=sendgrid.public)
    unknown = server.post("nosuch", json={})
    assert unknown.status_code == 404
    forged = {
        "postmark": {
            "json": postmark_bounce(sent, "zoe.hartmann@example.com", "4"),
            "auth": ("x", sendgrid.public),
        },
        "mailgun": {"json": mailgun_body("a" * 50, "evt-1", key=sendgrid.public)},
        "resend": svix_signed(
            "msg_1", resend_soft_bounce(1), key=base64.b64decode(sendgrid.public)
        ),
        "ses": {"json": {"Type": "Notification", "Message": "{}"}},
    }
    for provider, request in forged.items():
        answer = server.post(provider, **request)
        assert (answer.status_code, answer.text) == (404, unknown.text), provider
        assert answer.headers["Content-Type"] == unknown.headers["Content-Type"]
    assert status_of(sent, "zoe.hartmann@example.com") == "active"


def test_the_old_single_secret_serves_only_the_transports_provider(sent: Path, serve) -> None:
    server = serve(transport="postmark", legacy=":".join(POSTMARK_AUTH))
    bounce = postmark_bounce(sent, "zoe.hartmann@example.com", "4")
    assert server.post("postmark", json=bounce, auth=POSTMARK_AUTH).status_code == 200
    assert status_of(sent, "zoe.hartmann@example.com") == "bounced"
    assert (
        server.post("mailgun", json=mailgun_body("b" * 50, "e", key="hooks:s3cret-pw")).status_code
        == 404
    )
    resend = svix_signed("msg_1", resend_soft_bounce(1), key=b"hooks:s3cret-pw")
    assert server.post("resend", **resend).status_code == 404
    stderr = server.wait_for("POST /webhooks/resend")
    assert stderr.count("NEWSLETTER_WEBHOOK_SECRET_POSTMARK") == 1, stderr
    assert "Traceback" not in stderr


def test_the_old_single_secret_holding_sendgrids_key_is_refused_for_mailgun(
    sent: Path, serve
) -> None:
    """With `transport = "mailgun"`, the old single secret holding SendGrid's public key
    would be Mailgun's HMAC key, and anyone could sign a complaint with it. It is refused:
    a forged complaint changes nothing, and serve (and check) say which variable to set."""
    public = SendGrid().public
    server = serve(transport="mailgun", legacy=public)
    complaint = mailgun_body("c" * 50, "evt-complaint", key=public)
    complaint["event-data"] |= {"event": "complained", "recipient": "zoe.hartmann@example.com"}
    answer = server.post("mailgun", json=complaint)
    assert answer.status_code == 503, answer.text
    assert status_of(sent, "zoe.hartmann@example.com") == "active"
    assert event_counts(sent) == {}
    stderr = server.wait_for("POST /webhooks/mailgun")
    assert "Error: NEWSLETTER_WEBHOOK_SECRET is refused for /webhooks/mailgun" in stderr, stderr
    assert "Set NEWSLETTER_WEBHOOK_SECRET_MAILGUN to mailgun's own webhook secret" in stderr
    assert stderr.count("is refused") == 1, stderr
    checked = run_process(
        "check", "2026-10-digest", cwd=sent, env={"NEWSLETTER_WEBHOOK_SECRET": public}
    )
    assert checked.returncode == 1
    assert "error: NEWSLETTER_WEBHOOK_SECRET is refused for /webhooks/mailgun" in checked.stderr
    assert "NEWSLETTER_WEBHOOK_SECRET_MAILGUN" in checked.stderr


def test_the_old_single_secret_is_ignored_when_the_transport_has_no_webhooks(
    sent: Path, serve
) -> None:
    server = serve(legacy=":".join(POSTMARK_AUTH))  # the outbox transport
    bounce = postmark_bounce(sent, "zoe.hartmann@example.com", "4")
    assert server.post("postmark", json=bounce, auth=POSTMARK_AUTH).status_code == 404
    stderr = server.wait_for("POST /webhooks/postmark")
    assert "NEWSLETTER_WEBHOOK_SECRET is ignored" in stderr
    assert status_of(sent, "zoe.hartmann@example.com") == "active"


# -- each provider: valid, invalid, replayed ------------------------------------------------
def test_postmark_basic_auth(sent: Path, serve) -> None:
    server = serve(postmark=":".join(POSTMARK_AUTH))
    bounce = postmark_bounce(sent, "zoe.hartmann@example.com", "4")
    refused = [
        {},
        {"auth": ("hooks", "wrong")},
        {"auth": ("wrong", "s3cret-pw")},
        {"auth": ("hooks", "s3cret-pw-and-more")},
        {"headers": {"Authorization": "Bearer s3cret-pw"}},
        {"headers": {"Authorization": "Basic !!not-base64!!"}},
        {"headers": {"Authorization": "Basic aG9va3M6czNjcmV0LXB3"[:-1]}},  # cut
        {"headers": {"Authorization": "Basic aG9va3M6czNjcmV0LXB3" + "\u00e9"}},  # latin-1
        {"headers": {"Authorization": b"Basic " + "h\u00f6\u00f6ks:pw".encode()}},
        {"headers": {"Authorization": b"Basic " + base64.b64encode("h\u00f6:p\u00e4".encode())}},
    ]
    for request in refused:
        answer = server.post("postmark", json=bounce, **request)
        assert answer.status_code == 401, (request, answer.text)
    assert status_of(sent, "zoe.hartmann@example.com") == "active"

    assert server.post("postmark", json=bounce, auth=POSTMARK_AUTH).status_code == 200
    assert status_of(sent, "zoe.hartmann@example.com") == "bounced"
    replay = server.post("postmark", json=bounce, auth=POSTMARK_AUTH)
    assert (replay.status_code, replay.text) == (200, "already received")
    delivery = {
        "RecordType": "Delivery",
        "MessageID": delivered_id(sent, "dana.whitfield@example.org"),
        "Recipient": "dana.whitfield@example.org",
        "DeliveredAt": "2026-11-02T16:30:00Z",
        "Metadata": {"campaign": "2026-10-digest"},
    }
    assert server.post("postmark", json=delivery, auth=POSTMARK_AUTH).text == "1 event(s)"
    assert server.post("postmark", json=delivery, auth=POSTMARK_AUTH).text == "already received"
    assert event_counts(sent) == {"bounced": 1, "delivered": 1}
    assert "Traceback" not in server.stderr


def test_sendgrid_signatures_are_checked_strictly(sent: Path, serve) -> None:
    sendgrid = SendGrid()
    server = serve(sendgrid=sendgrid.public)
    body = json.dumps([spamreport("jose.alvarez@example.org", "5")]).encode()
    now = str(int(time.time()))

    def post(signature: str | bytes, payload: bytes = body, timestamp: str = now) -> int:
        return server.post(
            "sendgrid", data=payload, headers=sendgrid.headers(signature, timestamp)
        ).status_code

    der = sendgrid.der(body, now, high_s=False)
    while len(der) % 3 == 0:  # a length whose base64 has padding bits
        der = sendgrid.der(body, now, high_s=False)
    b64 = base64.b64encode(der).decode()
    refused = {
        "tampered body": post(b64, body.replace(b"spamreport", b"delivered")),
        "a DER byte after the signature": post(base64.b64encode(der + b"\x00").decode()),
        "base64 after the padding": post(b64 + "AAAA"),
        "junk after the base64": post(b64 + "!!"),
        "non-canonical base64": post(noncanonical(b64)),
        "whitespace in the base64": post(b64[:20] + " " + b64[20:]),
        "latin-1 in the header": post(b64 + "\u00e9"),
        "UTF-8 in the header": post(b64.encode() + "\u00e9".encode()),
        "UTF-8 in the timestamp": post(b64, timestamp=now + "\u00e9"),
        "no signature": post(""),
        "r = 0": post(base64.b64encode(encode_dss_signature(0, 1)).decode()),
    }
    assert set(refused.values()) == {401}, refused
    stale = str(int(time.time()) - 3600)
    assert post(base64.b64encode(sendgrid.der(body, stale)).decode(), timestamp=stale) == 400
    assert status_of(sent, "jose.alvarez@example.org") == "active"

    assert post(b64) == 200
    assert status_of(sent, "jose.alvarez@example.org") == "complained"
    # the same request again, its signature in the other (malleated) form, or signed anew:
    # each is acknowledged, none is applied again
    high = base64.b64encode(sendgrid.der(body, now, high_s=True)).decode()
    r, s = decode_dss_signature(der)
    malleated = base64.b64encode(encode_dss_signature(r, P256_ORDER - s)).decode()
    for signature in (b64, high, malleated):
        answer = server.post("sendgrid", data=body, headers=sendgrid.headers(signature, now))
        assert (answer.status_code, answer.text) == (200, "already received")
    assert server.post("sendgrid", **sendgrid.signed(body)).text == "already received"
    assert event_counts(sent) == {"complained": 1}


def test_sendgrid_batches_of_unexpected_shapes(sent: Path, serve) -> None:
    sendgrid = SendGrid()
    server = serve(sendgrid=sendgrid.public)
    bad_time = spamreport("jose.alvarez@example.org", "5", "ev-2", timestamp=1e300)
    answer = server.post("sendgrid", **sendgrid.signed(json.dumps([bad_time]).encode()))
    assert answer.status_code == 400 and "timestamp" in answer.text
    answer = server.post("sendgrid", **sendgrid.signed(json.dumps(bad_time).encode()))
    assert answer.status_code == 400, "SendGrid posts an array"
    assert status_of(sent, "jose.alvarez@example.org") == "active"
    good = spamreport("mina.park@example.org", "12", "ev-3")
    mixed = [good, bad_time, "not an event", {"event": "processed", "sg_event_id": "ev-4"}]
    answer = server.post("sendgrid", **sendgrid.signed(json.dumps(mixed).encode()))
    # the spam report and the `processed` record (queued, recorded only) are read
    assert (answer.status_code, answer.text) == (200, "2 event(s); 2 malformed, skipped")
    assert status_of(sent, "mina.park@example.org") == "complained"
    assert status_of(sent, "jose.alvarez@example.org") == "active"


def test_mailgun_hmac_and_replays(sent: Path, serve) -> None:
    server = serve(mailgun=MAILGUN_KEY)
    assert (
        server.post("mailgun", json=mailgun_body("a" * 50, "evt-a", key="not-the-key")).status_code
        == 401
    )
    genuine = mailgun_body("b" * 50, "evt-b")
    digest = genuine["signature"]["signature"]
    for bad in (digest.upper(), digest[:-1], digest + "0", digest[:-1] + "\u00e9", 12345):
        forged = json.loads(json.dumps(genuine))
        forged["signature"]["signature"] = bad
        assert server.post("mailgun", json=forged).status_code == 401, bad
    for field, value in (("token", 7), ("timestamp", "12ab"), ("token", "")):
        forged = json.loads(json.dumps(genuine))
        forged["signature"][field] = value
        assert server.post("mailgun", json=forged).status_code == 401, (field, value)
    assert server.post("mailgun", json={"event-data": genuine["event-data"]}).status_code == 401
    assert status_of(sent, "t.lindqvist@example.com") == "active"

    assert server.post("mailgun", json=genuine).text == "1 event(s)"
    assert status_of(sent, "t.lindqvist@example.com") == "bounced"
    again = server.post("mailgun", json=genuine)
    assert (again.status_code, again.text) == (200, "already received"), "the same token"
    resigned = mailgun_body("c" * 50, "evt-b")
    again = server.post("mailgun", json=resigned)
    assert (again.status_code, again.text) == (200, "already received"), "the same event id"
    assert event_counts(sent) == {"bounced": 1}


def test_resend_svix_signatures_replays_and_soft_bounces(sent: Path, serve) -> None:
    server = serve(resend=RESEND_SECRET)
    wrong = svix_signed("msg_1", resend_soft_bounce(1), key=b"wrong-secret-wrong-secret-wrong!!")
    assert server.post("resend", **wrong).status_code == 401
    stale = svix_signed("msg_1", resend_soft_bounce(1), timestamp=int(time.time()) - 3600)
    assert server.post("resend", **stale).status_code == 400
    genuine = svix_signed("msg_1", resend_soft_bounce(1))
    signature = genuine["headers"]["svix-signature"]
    for bad in (
        "v1," + noncanonical(signature[3:]),
        "v2," + signature[3:],
        signature + "\u00e9",
        signature.encode() + "\u00e9".encode(),
        signature[3:],
    ):
        headers = genuine["headers"] | {"svix-signature": bad}
        assert server.post("resend", data=genuine["data"], headers=headers).status_code == 401
    headers = genuine["headers"] | {"svix-id": "msg_1\u00e9"}
    assert server.post("resend", data=genuine["data"], headers=headers).status_code == 401
    assert status_of(sent, "sam.achterberg@example.com") == "active"

    several = genuine["headers"] | {"svix-signature": f"v1,{'A' * 43}= {signature}"}
    assert server.post("resend", data=genuine["data"], headers=several).text == "1 event(s)"
    replay = server.post("resend", **genuine)
    assert (replay.status_code, replay.text) == (200, "already received"), "the same svix-id"
    assert status_of(sent, "sam.achterberg@example.com") == "active", (
        "one soft bounce is not enough"
    )
    assert server.post("resend", **svix_signed("msg_2", resend_soft_bounce(2))).status_code == 200
    assert server.post("resend", **svix_signed("msg_3", resend_soft_bounce(3))).status_code == 200
    assert status_of(sent, "sam.achterberg@example.com") == "bounced", "suppressed at the third"


# -- malformed requests: 400, nothing applied, the server goes on ----------------------------
def test_malformed_json_gets_400_and_changes_nothing(sent: Path, serve) -> None:
    server = serve(postmark=":".join(POSTMARK_AUTH), resend=RESEND_SECRET)
    bounce = postmark_bounce(sent, "zoe.hartmann@example.com", "4")
    deep = b"[" * 100_000 + b"]" * 100_000

    def with_id(literal: bytes) -> bytes:
        return json.dumps(bounce).encode().replace(b"4323372036854775807", literal)

    bodies = {
        "Metadata: [1]": json.dumps(bounce | {"Metadata": [1]}).encode(),
        "100k nested arrays": deep,
        "65 nested objects": json.dumps(
            bounce | {"Details": json.loads('{"a":' * 64 + "1" + "}" * 64)}
        ).encode(),
        "a top-level string": b'"a bounce"',
        "a top-level number": b"42",
        "a top-level array": json.dumps([bounce]).encode(),
        "an ID of 5000 digits": with_id(b"9" * 5000),
        "an ID past 64 bits": json.dumps(bounce | {"ID": 10**30}).encode(),
        "an ID of 1e400": with_id(b"1e400"),
        "a number for an address": json.dumps(bounce | {"Email": 12}).encode(),
        "a list for a time": json.dumps(bounce | {"BouncedAt": ["today"]}).encode(),
        "a time that is not one": json.dumps(bounce | {"BouncedAt": "yesterday"}).encode(),
        "a NUL in a string": json.dumps(bounce | {"Description": "a\u0000b"}).encode(),
        "a lone surrogate": json.dumps(bounce).encode().replace(b"HardBounce", b"\\ud800"),
        "not JSON": b"RecordType=Bounce",
        "not UTF-8": b'{"RecordType": "\xff"}',
        "empty": b"",
    }
    for name, body in bodies.items():
        answer = server.post(
            "postmark",
            data=body,
            auth=POSTMARK_AUTH,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
        assert answer.text and len(answer.text) < 200, name
    for payload in (deep, b'"x"', b"[1]"):
        answer = server.post("resend", **svix_signed(f"msg_{len(payload)}", payload))
        assert answer.status_code == 400, answer.text
    assert status_of(sent, "zoe.hartmann@example.com") == "active"
    assert event_counts(sent) == {}
    assert requests.get(server.url + "/health", timeout=10).text == "ok"
    assert "Traceback" not in server.stderr and "bug in newsletter" not in server.stderr


# -- events import -----------------------------------------------------------------------
def test_events_import_skips_records_whose_timestamp_is_not_a_time(sent: Path) -> None:
    good = spamreport("jose.alvarez@example.org", "5", "ev-good")
    records = [
        json.dumps(good),
        json.dumps(good | {"sg_event_id": "ev-abc", "timestamp": "abc"}),
        json.dumps(good | {"sg_event_id": "ev-huge", "timestamp": 1e300}),
        json.dumps(good | {"sg_event_id": "ev-negative", "timestamp": -5}),
        '{"event": "spamreport", "sg_event_id": "ev-nan", "timestamp": NaN}',
        json.dumps(good | {"sg_event_id": "ev-bool", "timestamp": True}),
    ]
    export = sent / "sendgrid.jsonl"
    export.write_text("\n".join(records) + "\n", encoding="utf-8")
    result = run_process("events", "import", str(export), "--provider", "sendgrid", cwd=sent)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for line in (2, 3, 4, 5, 6):
        assert f"line {line}: timestamp" in result.stderr, result.stderr
    assert "1 event(s)" in result.stderr and "5 skipped" in result.stderr
    assert status_of(sent, "jose.alvarez@example.org") == "complained"

    only_bad = sent / "mailgun.json"
    only_bad.write_text(
        json.dumps(
            [{"event-data": {"event": "failed", "severity": "permanent", "timestamp": "abc"}}]
        ),
        encoding="utf-8",
    )
    result = run_process("events", "import", str(only_bad), "--provider", "mailgun", cwd=sent)
    assert result.returncode == 1
    assert "record 1: timestamp 'abc' is not a Unix time" in result.stderr
    assert "No record of" in result.stderr and "Traceback" not in result.stderr
