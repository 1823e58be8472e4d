"""`newsletter serve` over real HTTP: RFC 8058 one-click unsubscribe, the confirm page,
forged tokens, the web version, and each provider's webhook (valid, invalid, replayed)."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from conftest import run_process

WebhookServer = Callable[[str], str]


@pytest.fixture
def sent(project: Path) -> Path:
    """The example campaign sent to the outbox: real messages with real links."""
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    return project


@pytest.fixture
def serve(sent: Path) -> Iterator[Callable[..., str]]:
    processes: list[subprocess.Popen[str]] = []

    def start(secret: str = "") -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        if secret:
            env["NEWSLETTER_WEBHOOK_SECRET"] = secret
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", "0"],
            cwd=sent,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(proc)
        assert proc.stderr is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", proc.stderr.readline())
        assert match
        return match.group(1)

    yield start
    for proc in processes:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def unsubscribe_path(project: Path, address: str) -> str:
    for path in (project / "outbox" / "2026-10-digest").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg["To"].addresses[0].addr_spec == address:
            url = re.search(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
            assert url.startswith("https://news.riverbend-clinicians.example/u/")
            return url.removeprefix("https://news.riverbend-clinicians.example")
    raise AssertionError(address)


def status_of(project: Path, address: str) -> str:
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    return next(r["status"] for r in listed if r["email"] == address)


def report(project: Path) -> dict:
    return json.loads(
        run_process("report", "2026-10-digest", "--format", "json", cwd=project).stdout
    )


def test_one_click_unsubscribe(sent: Path, serve) -> None:
    base = serve()
    path = unsubscribe_path(sent, "marcus.bell@example.com")
    response = requests.post(
        base + path, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 200, "RFC 8058: answered directly, no redirect"
    assert "unsubscribed" in response.text
    assert status_of(sent, "marcus.bell@example.com") == "unsubscribed"
    assert report(sent)["events"]["unsubscribed"] == 1
    again = requests.post(base + path, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert again.status_code == 200
    assert report(sent)["events"]["unsubscribed"] == 1


def test_get_shows_a_confirm_page_and_never_unsubscribes(sent: Path, serve) -> None:
    base = serve()
    path = unsubscribe_path(sent, "dana.whitfield@example.org")
    page = requests.get(base + path, timeout=10)
    assert page.status_code == 200
    assert "<form method='post'>" in page.text and "Unsubscribe</button>" in page.text
    assert status_of(sent, "dana.whitfield@example.org") == "active"
    assert requests.post(base + path, data={"confirm": "yes"}, timeout=10).status_code == 200
    assert status_of(sent, "dana.whitfield@example.org") == "unsubscribed"


def test_forged_or_tampered_tokens_change_nothing(sent: Path, serve) -> None:
    base = serve()
    path = unsubscribe_path(sent, "mina.park@example.org")
    subscriber, campaign, signature = path.removeprefix("/u/").split(".")
    forged = [
        f"/u/{int(subscriber, 36) - 1:x}.{campaign}.{signature}",  # someone else's id
        f"/u/{subscriber}.{campaign}.{signature[:-2]}AA",
        f"/u/{subscriber}.{campaign}",
        "/u/../../etc/passwd",
    ]
    for bad in forged:
        response = requests.post(base + bad, data={"List-Unsubscribe": "One-Click"}, timeout=10)
        assert response.status_code in (400, 404), bad
    assert {
        r["status"]
        for r in json.loads(
            run_process(
                "subscribers", "list", "--status", "unsubscribed", "--format", "json", cwd=sent
            ).stdout
        )
    } == {"unsubscribed"}
    assert status_of(sent, "mina.park@example.org") == "active"
    assert requests.post(base + path, data={"something": "else"}, timeout=10).status_code == 400
    assert status_of(sent, "mina.park@example.org") == "active"


def test_web_version_has_no_personal_data(sent: Path, serve) -> None:
    base = serve()
    page = requests.get(base + "/c/2026-10-digest", timeout=10)
    assert page.status_code == 200
    assert "Clay on the Table" in page.text and "Hello there," in page.text
    assert "@example" not in page.text and "/u/" not in page.text
    assert requests.get(base + "/c/no-such-issue", timeout=10).status_code == 404


# -- webhooks ------------------------------------------------------------------------------
def delivered_id(project: Path, address: str) -> str:
    return next(
        r["provider_message_id"] for r in report(project)["recipients"] if r["email"] == address
    )


def test_postmark_webhook_with_basic_auth(sent: Path, serve) -> None:
    base = serve("hooks:s3cret-pw")
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "zoe.hartmann@example.com",
        "BouncedAt": "2026-11-02T16:33:54Z",
        "MessageID": delivered_id(sent, "zoe.hartmann@example.com"),
        "Inactive": True,
        "Description": "The server was unable to deliver your message",
        "MessageStream": "broadcast",
        "Metadata": {"campaign": "2026-10-digest", "subscriber": "4"},
    }
    url = base + "/webhooks/postmark"
    assert requests.post(url, json=bounce, timeout=10).status_code == 401
    assert requests.post(url, json=bounce, auth=("hooks", "wrong"), timeout=10).status_code == 401
    assert status_of(sent, "zoe.hartmann@example.com") == "active"
    assert (
        requests.post(url, json=bounce, auth=("hooks", "s3cret-pw"), timeout=10).status_code == 200
    )
    assert status_of(sent, "zoe.hartmann@example.com") == "bounced"
    replay = requests.post(url, json=bounce, auth=("hooks", "s3cret-pw"), timeout=10)
    assert replay.status_code == 200  # the same event id is recorded once
    assert report(sent)["events"]["bounced"] == 1


def test_sendgrid_signed_event_webhook(sent: Path, serve) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    base = serve(public)
    events = [
        {
            "email": "jose.alvarez@example.org",
            "timestamp": int(time.time()),
            "event": "spamreport",
            "sg_event_id": "ZXZlbnQtMQ",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "campaign": "2026-10-digest",
            "subscriber": "5",
        }
    ]
    body = json.dumps(events).encode()

    def post(body: bytes, timestamp: str, signature: str) -> int:
        return requests.post(
            base + "/webhooks/sendgrid",
            data=body,
            timeout=10,
            headers={
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            },
        ).status_code

    def sign(body: bytes, timestamp: str) -> str:
        return base64.b64encode(
            key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        ).decode()

    now = str(int(time.time()))
    signature = sign(body, now)
    tampered = body.replace(b"spamreport", b"delivered")
    assert post(tampered, now, signature) == 401
    stale = str(int(time.time()) - 3600)
    assert post(body, stale, sign(body, stale)) == 400
    assert status_of(sent, "jose.alvarez@example.org") == "active"
    assert post(body, now, signature) == 200
    assert status_of(sent, "jose.alvarez@example.org") == "complained"
    assert post(body, now, signature) == 409, "the same signed request twice is a replay"


def test_mailgun_hmac_webhook_with_replay_protection(sent: Path, serve) -> None:
    signing_key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
    base = serve(signing_key)

    def body(token: str, key: str = signing_key, severity: str = "permanent") -> dict:
        timestamp = str(int(time.time()))
        digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
        return {
            "signature": {"token": token, "timestamp": timestamp, "signature": digest},
            "event-data": {
                "event": "failed",
                "severity": severity,
                "recipient": "t.lindqvist@example.com",
                "id": f"evt-{token}",
                "timestamp": time.time(),
                "reason": "bounce",
                "user-variables": {"campaign": "2026-10-digest", "subscriber": "6"},
                "delivery-status": {"code": 550, "description": "No such user"},
            },
        }

    url = base + "/webhooks/mailgun"
    assert requests.post(url, json=body("a" * 50, key="not-the-key"), timeout=10).status_code == 401
    assert status_of(sent, "t.lindqvist@example.com") == "active"
    genuine = body("b" * 50)
    assert requests.post(url, json=genuine, timeout=10).status_code == 200
    assert status_of(sent, "t.lindqvist@example.com") == "bounced"
    assert requests.post(url, json=genuine, timeout=10).status_code == 409


def test_resend_svix_webhook_and_soft_bounce_limit(sent: Path, serve) -> None:
    secret_bytes = b"resend-webhook-secret-of-32-byte"
    base = serve("whsec_" + base64.b64encode(secret_bytes).decode())

    def post(
        msg_id: str, payload: dict, key: bytes = secret_bytes, timestamp: int | None = None
    ) -> int:
        raw = json.dumps(payload).encode()
        ts = str(timestamp or int(time.time()))
        signature = base64.b64encode(
            hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
        ).decode()
        return requests.post(
            base + "/webhooks/resend",
            data=raw,
            timeout=10,
            headers={
                "svix-id": msg_id,
                "svix-timestamp": ts,
                "svix-signature": f"v1,{signature}",
                "Content-Type": "application/json",
            },
        ).status_code

    def soft(n: int) -> dict:
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

    assert post("msg_1", soft(1), key=b"wrong-secret-wrong-secret-wrong!!") == 401
    assert post("msg_1", soft(1), timestamp=int(time.time()) - 3600) == 400
    assert post("msg_1", soft(1)) == 200
    assert post("msg_1", soft(1)) == 409, "the same svix-id twice is a replay"
    assert status_of(sent, "sam.achterberg@example.com") == "active", (
        "one soft bounce is not enough"
    )
    assert post("msg_2", soft(2)) == 200
    assert post("msg_3", soft(3)) == 200
    assert status_of(sent, "sam.achterberg@example.com") == "bounced", "suppressed at the third"


def test_webhooks_need_the_secret(serve) -> None:
    base = serve()
    response = requests.post(base + "/webhooks/postmark", json={}, auth=("a", "b"), timeout=10)
    assert response.status_code == 503 and "NEWSLETTER_WEBHOOK_SECRET" in response.text
    assert requests.post(base + "/webhooks/unknown", json={}, timeout=10).status_code == 404


def test_events_import_from_a_file(sent: Path) -> None:
    export = sent / "postmark-bounces.json"
    export.write_text(
        json.dumps(
            [
                {
                    "RecordType": "SpamComplaint",
                    "ID": 77,
                    "Email": "renee.castillo@example.net",
                    "BouncedAt": "2026-11-02T16:33:54Z",
                    "Metadata": {"campaign": "2026-10-digest"},
                },
                {
                    "RecordType": "Delivery",
                    "Recipient": "dana.whitfield@example.org",
                    "DeliveredAt": "2026-11-02T16:30:00Z",
                    "Metadata": {"campaign": "2026-10-digest"},
                },
            ]
        )
    )
    result = run_process("events", "import", str(export), "--provider", "postmark", cwd=sent)
    assert result.returncode == 0, result.stderr
    assert "2 event(s)" in result.stderr
    assert status_of(sent, "renee.castillo@example.net") == "complained"
    events = report(sent)["events"]
    assert events["complained"] == 1 and events["delivered"] == 1
    again = run_process("events", "import", str(export), "--provider", "postmark", cwd=sent)
    assert "already recorded" in again.stderr
