"""`POST /webhooks/ses`: SES events through Amazon SNS. The SNS signature is checked against
the signing certificate (cached in the project's cache folder: AWS cannot be reached from
here, so the tests put a locally made one there), its URL must be SNS's own, the topic
must be ours, a replay is acknowledged and changes nothing, and a subscription of our
topic is confirmed through ``newsletter.sns.fetch`` (pointed at a local server)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import run_process
from newsletter import sns
from newsletter.catalog import load_settings
from serve_app import serve_in_process
from test_webhooks import Server, delivered_id, event_counts, status_of
from webhook_signers import SNS, ses_event

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

OTHER_TOPIC = "arn:aws:sns:eu-west-1:999999999999:someone-elses-topic"


@pytest.fixture
def sent(project: Path) -> Path:
    """The example campaign sent to the outbox: real messages with real ids."""
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    return project


def cache_dir(project: Path) -> Path:
    return load_settings(str(project / "newsletter.toml")).cache_dir


@pytest.fixture
def ses_server(sent: Path) -> Iterator[tuple[Server, SNS]]:
    """`newsletter serve` in a child process with our topic as the SES secret, and SNS's
    certificate in the project's cache, as the first fetch would have left it."""
    side = SNS()
    side.cache_in(cache_dir(sent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_WEBHOOK_SECRET_SES"] = f"{OTHER_TOPIC.replace('999', '998')} , {SNS.TOPIC}"
    server = Server(sent, env)
    yield server, side
    server.stop()


def bounce(project: Path, address: str, bounce_type: str, subtype: str) -> dict:
    return ses_event(
        "Bounce",
        address,
        message_id=delivered_id(project, address),
        bounce={
            "bounceType": bounce_type,
            "bounceSubType": subtype,
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-02T16:31:00.000Z",
            "feedbackId": f"0100018{uuid.uuid4().hex}-000000",
        },
    )


# -- through `newsletter serve` ---------------------------------------------------------------
def test_ses_bounces_and_complaints_are_applied(sent: Path, ses_server) -> None:
    server, side = ses_server
    permanent = side.notification(bounce(sent, "t.lindqvist@example.com", "Permanent", "General"))
    answer = server.post("ses", json=permanent)
    assert (answer.status_code, answer.text) == (200, "1 event(s)"), answer.text
    assert status_of(sent, "t.lindqvist@example.com") == "bounced"

    transient = side.notification(bounce(sent, "zoe.hartmann@example.com", "Transient", "General"))
    assert server.post("ses", json=transient).text == "1 event(s)"
    assert status_of(sent, "zoe.hartmann@example.com") == "active", "one soft bounce of three"

    complaint = ses_event(
        "Complaint",
        "mina.park@example.org",
        message_id=delivered_id(sent, "mina.park@example.org"),
        complaint={
            "complainedRecipients": [{"emailAddress": "mina.park@example.org"}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-03T09:00:00.000Z",
            "feedbackId": "feedback-complaint-1",
        },
    )
    # the topic's signature version 1 (SHA1withRSA), as SNS topics default to
    assert server.post("ses", json=side.notification(complaint, version="1")).status_code == 200
    assert status_of(sent, "mina.park@example.org") == "complained"
    # mail.messageId is the SendEmail MessageId: the events count for the campaign
    assert event_counts(sent) == {"bounced": 1, "soft_bounced": 1, "complained": 1}
    assert "Traceback" not in server.stderr


def test_ses_requests_that_are_not_genuine_are_refused(sent: Path, ses_server) -> None:
    server, side = ses_server
    event = bounce(sent, "t.lindqvist@example.com", "Permanent", "General")
    good = side.notification(event)
    tampered = good | {"Message": good["Message"].replace("Permanent", "Transient")}
    signature = good["Signature"]
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    cert_path = good["SigningCertURL"].split("amazonaws.com", 1)[1]
    other_hosts = [
        "https://sns.eu-west-1.amazonaws.com.evil.example" + cert_path,
        "http://sns.eu-west-1.amazonaws.com" + cert_path,
        "https://evil.example/sns.eu-west-1.amazonaws.com" + cert_path,
        "https://user@sns.eu-west-1.amazonaws.com" + cert_path,
        "https://sns.eu-west-1.amazonaws.com:8443" + cert_path,
        "https://sns.us-east-1.amazonaws.com" + cert_path,  # not the topic's region
        "https://sns.eu-west-1.amazonaws.com/not-a-certificate",
    ]
    refused = {
        "tampered message": tampered,
        "another signature": good | {"Signature": flipped},
        "no signature": {k: v for k, v in good.items() if k != "Signature"},
        "SignatureVersion 3": side.sign(json.loads(json.dumps(good)), version="3"),
        "another topic": side.notification(event, topic=OTHER_TOPIC),
        "another key": SNS().notification(event) | {"SigningCertURL": side.cert_url},
        **{url: side.sign(dict(good), url=url) for url in other_hosts},
    }
    for name, message in refused.items():
        answer = server.post("ses", json=message)
        # 401, never 503: no URL but SNS's own is ever fetched
        assert answer.status_code == 401, (name, answer.status_code, answer.text)
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=8)).isoformat().replace("+00:00", "Z")
    stale = server.post("ses", json=side.notification(event, timestamp=old))
    assert stale.status_code == 400 and "stale" in stale.text
    assert server.post("ses", json={"Type": "Notification"}).status_code == 401
    assert server.post("ses", data=b"not json").status_code == 400
    assert status_of(sent, "t.lindqvist@example.com") == "active"
    assert event_counts(sent) == {}
    assert "Traceback" not in server.stderr


def test_a_replayed_sns_message_changes_nothing(sent: Path, ses_server) -> None:
    server, side = ses_server
    transient = bounce(sent, "zoe.hartmann@example.com", "Transient", "MailboxFull")
    message = side.notification(transient)
    assert server.post("ses", json=message).text == "1 event(s)"
    for again in (
        message,
        side.notification(transient, message_id=message["MessageId"], version="1"),
    ):
        answer = server.post("ses", json=again)
        assert (answer.status_code, answer.text) == (200, "already received")
    for _ in range(2):  # two more bounces, each of its own
        later = bounce(sent, "zoe.hartmann@example.com", "Transient", "MailboxFull")
        assert server.post("ses", json=side.notification(later)).text == "1 event(s)"
    assert status_of(sent, "zoe.hartmann@example.com") == "bounced", "three soft bounces"
    assert event_counts(sent) == {"soft_bounced": 1}  # readers, not events


def test_ses_events_import(sent: Path) -> None:
    """An export: SNS envelopes saved from a queue, or SES's own records (Firehose)."""
    side = SNS()
    lines = [
        json.dumps(
            side.notification(bounce(sent, "t.lindqvist@example.com", "Permanent", "NoEmail"))
        ),
        json.dumps(bounce(sent, "zoe.hartmann@example.com", "Permanent", "General")),
        json.dumps(
            ses_event(
                "Delivery",
                "dana.whitfield@example.org",
                delivery={
                    "recipients": ["dana.whitfield@example.org"],
                    "smtpResponse": "250 ok",
                    "timestamp": "2026-11-02T16:31:00.000Z",
                },
            )
        ),
    ]
    export = sent / "ses.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_process("events", "import", str(export), "--provider", "ses", cwd=sent)
    assert result.returncode == 0, result.stderr
    assert "3 event(s)" in result.stderr
    assert status_of(sent, "t.lindqvist@example.com") == "bounced"
    assert status_of(sent, "zoe.hartmann@example.com") == "bounced"
    assert status_of(sent, "dana.whitfield@example.org") == "active"
    again = run_process("events", "import", str(export), "--provider", "ses", cwd=sent)
    assert "2 already recorded" in again.stderr, "bounces are known by their feedbackId"


# -- the certificate cache and subscription confirmations (in this process) -------------------
class FakeSNS:
    """AWS's SNS host, played by a local server; ``newsletter.sns.fetch`` is pointed at it,
    so only URLs that passed the host check (SNS's own) ever reach it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.pem = b""
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                body = fake.pem if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(fake.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        """In place of ``sns.https_get``: the same request, to this local server."""
        self.fetched.append(url)
        parts = urlsplit(url)
        local = f"http://127.0.0.1:{self.server.server_port}{parts.path}"
        answer = requests.get(local + (f"?{parts.query}" if parts.query else ""), timeout=10)
        if answer.status_code != 200:
            raise sns.FetchFailed(f"HTTP {answer.status_code}", answer.status_code >= 500)
        return answer.content

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSNS]:
    fake = FakeSNS()
    monkeypatch.setattr(sns, "fetch", fake.fetch)
    monkeypatch.setattr(sns, "_memory", {})
    yield fake
    fake.close()


@pytest.fixture
def app(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NEWSLETTER_WEBHOOK_SECRET_SES", SNS.TOPIC)
    with serve_in_process(str(project / "newsletter.toml")) as url:
        yield url + "/webhooks/ses"


def test_a_subscription_of_our_topic_is_confirmed(project, aws, app, caplog) -> None:
    side = SNS()
    aws.pem = side.pem
    with caplog.at_level(logging.WARNING, logger="newsletter.webhooks"):
        answer = requests.post(app, json=side.confirmation(), timeout=30)
    assert (answer.status_code, answer.text) == (200, "subscription confirmed")
    confirm = aws.requests[-1]
    query = parse_qs(urlsplit(confirm).query)
    assert query["Action"] == ["ConfirmSubscription"] and query["TopicArn"] == [SNS.TOPIC]
    assert aws.fetched == [side.cert_url, side.confirmation()["SubscribeURL"]]
    (line,) = [r.getMessage() for r in caplog.records if "Confirmed" in r.getMessage()]
    assert SNS.TOPIC in line and "\n" not in line

    unsubscribed = requests.post(
        app, json=side.confirmation(kind="UnsubscribeConfirmation"), timeout=30
    )
    assert (unsubscribed.status_code, unsubscribed.text) == (200, "unsubscribe confirmation noted")
    assert len(aws.requests) == 2, "an unsubscribe confirmation is not followed"


def test_a_subscription_that_is_not_verified_or_not_ours_is_refused(project, aws, app) -> None:
    side = SNS()
    aws.pem = side.pem
    good = side.confirmation()
    evil = "https://sns.eu-west-1.amazonaws.com.evil.example/?Action=ConfirmSubscription"
    refused = {
        "bad signature": good | {"Token": "another-token"},
        "another topic": side.confirmation(topic=OTHER_TOPIC),
        "SubscribeURL on another host": side.confirmation(
            SubscribeURL=f"{evil}&TopicArn={SNS.TOPIC}&Token=t"
        ),
        "SubscribeURL for another topic": side.confirmation(
            SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={OTHER_TOPIC}&Token=t"
        ),
        "SubscribeURL doing something else": side.confirmation(
            SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"
            f"&TopicArn={SNS.TOPIC}&Token=t"
        ),
    }
    for name, message in refused.items():
        answer = requests.post(app, json=message, timeout=30)
        assert answer.status_code == 401, (name, answer.text)
    assert not any("Action=" in url for url in aws.fetched), aws.fetched


def test_the_signing_certificate_is_fetched_once_and_kept_private(project, aws, app) -> None:
    side = SNS()
    aws.pem = side.pem
    for _ in range(2):
        event = ses_event(
            "Delivery",
            "dana.whitfield@example.org",
            delivery={
                "timestamp": "2026-11-02T16:31:00.000Z",
                "recipients": ["dana.whitfield@example.org"],
            },
        )
        answer = requests.post(app, json=side.notification(event), timeout=30)
        assert answer.text == "1 event(s)", answer.text
    assert aws.fetched == [side.cert_url], "fetched once, then kept in memory"
    kept = sns.certificate_file(cache_dir(project), side.cert_url)
    assert kept.read_bytes() == side.pem
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700

    sns._memory.clear()  # as a new process: the file is read, nothing fetched
    event = ses_event("Send", "dana.whitfield@example.org", send={})
    assert requests.post(app, json=side.notification(event), timeout=30).status_code == 200
    assert aws.fetched == [side.cert_url]


def test_a_certificate_that_cannot_be_had_refuses_the_message(project, aws, app) -> None:
    side = SNS()
    event = ses_event("Send", "dana.whitfield@example.org", send={})
    aws.pem, aws.status = side.pem, 503
    answer = requests.post(app, json=side.notification(event), timeout=30)
    assert answer.status_code == 503, "SNS retries; the request may be genuine"
    aws.status = 404
    assert requests.post(app, json=side.notification(event), timeout=30).status_code == 401
    aws.status, aws.pem = 200, b"not a certificate"
    assert requests.post(app, json=side.notification(event), timeout=30).status_code == 401
    expired = SNS(valid_days=-1)
    aws.pem = expired.pem
    assert requests.post(app, json=expired.notification(event), timeout=30).status_code == 401
    assert not list(sns.certificate_file(cache_dir(project), side.cert_url).parent.glob("*.pem"))
