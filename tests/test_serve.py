"""`newsletter serve` over real HTTP: RFC 8058 one-click unsubscribe, the confirm page,
forged tokens, the web version (webhooks: test_webhooks.py), and `events import`."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from conftest import run_process, send_for_real

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

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
    send_for_real(sent, "2026-10-digest")  # the outbox's was a rehearsal: not served
    base = serve()
    page = requests.get(base + "/c/2026-10-digest", timeout=10)
    assert page.status_code == 200
    assert "Clay on the Table" in page.text and "Hello there," in page.text
    assert "@example" not in page.text and "/u/" not in page.text
    assert requests.get(base + "/c/no-such-issue", timeout=10).status_code == 404


# -- events import -------------------------------------------------------------------------
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
