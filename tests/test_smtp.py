"""The smtp transport against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

from conftest import run_process, set_delivery
from smtp_server import SMTPServer

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

ACTIVE = 10


@pytest.fixture
def ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    return authority, pem


def server_context(authority: trustme.CA):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def send(project: Path, env: dict[str, str] | None = None, *args: str):
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    return run_process("send", "2026-10-digest", "--yes", *args, cwd=project, env=env)


def report(project: Path) -> dict:
    return json.loads(
        run_process("report", "2026-10-digest", "--format", "json", cwd=project).stdout
    )


def test_plain_smtp_delivers_each_message_once_over_one_connection(project: Path) -> None:
    with SMTPServer() as smtp:
        set_delivery(
            project,
            transport="smtp",
            host="127.0.0.1",
            port=smtp.port,
            security="none",
            concurrency=1,
        )
        result = send(project)
        assert result.returncode == 0, result.stderr
        handler = smtp.handler
        assert sorted(handler.to()) == sorted({r["email"] for r in report(project)["recipients"]})
        assert len(handler.to()) == ACTIVE
        assert handler.connections == 1, "one reused connection"
        for item in handler.received:
            assert item.sender == "news@riverbend-clinicians.example"
            assert item.message["To"].addresses[0].addr_spec == item.recipients[0]
            assert item.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert max(len(line) for line in item.raw.split(b"\r\n")) <= 998
        again = run_process("send", "2026-10-digest", "--yes", cwd=project)
        assert "nothing to send" in again.stderr
        assert len(handler.to()) == ACTIVE


def test_starttls_and_auth(project: Path, ca: tuple[trustme.CA, Path]) -> None:
    authority, pem = ca
    with SMTPServer(users={"news": "s3cret"}, tls=server_context(authority)) as smtp:
        set_delivery(
            project,
            transport="smtp",
            host="localhost",
            port=smtp.port,
            security="starttls",
            username="news",
        )
        env = {"SSL_CERT_FILE": str(pem)}
        missing = send(project, env)
        assert missing.returncode == 1 and "NEWSLETTER_SMTP_PASSWORD is not set" in missing.stderr
        wrong = run_process(
            "send",
            "2026-10-digest",
            "--yes",
            cwd=project,
            env=env | {"NEWSLETTER_SMTP_PASSWORD": "nope"},
        )
        assert wrong.returncode == 1
        assert "refused the login" in wrong.stderr and "nope" not in wrong.stderr
        assert smtp.handler.received == []
        right = run_process(
            "send",
            "2026-10-digest",
            "--yes",
            cwd=project,
            env=env | {"NEWSLETTER_SMTP_PASSWORD": "s3cret"},
        )
        assert right.returncode == 0, right.stderr
        assert len(smtp.handler.to()) == ACTIVE


def test_implicit_tls(project: Path, ca: tuple[trustme.CA, Path]) -> None:
    authority, pem = ca
    with SMTPServer(tls=server_context(authority), implicit_tls=True) as smtp:
        set_delivery(project, transport="smtp", host="localhost", port=smtp.port, security="ssl")
        result = send(project, {"SSL_CERT_FILE": str(pem)})
        assert result.returncode == 0, result.stderr
        assert len(smtp.handler.to()) == ACTIVE


def test_untrusted_certificate_sends_nothing(project: Path, ca: tuple[trustme.CA, Path]) -> None:
    authority, _ = ca
    with SMTPServer(tls=server_context(authority)) as smtp:
        set_delivery(project, transport="smtp", host="localhost", port=smtp.port, max_retries=0)
        result = send(project)
        assert result.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
        assert smtp.handler.received == []
        assert report(project)["counts"]["pending"] == ACTIVE


def test_refusals_throttling_and_dropped_line(project: Path) -> None:
    with SMTPServer() as smtp:
        smtp.handler.rcpt_replies["marcus.bell@example.com"] = (
            "550 5.1.1 <marcus.bell@example.com>: no such user"
        )
        smtp.handler.rcpt_replies["amara.nwosu@example.org"] = "452 4.2.2 mailbox full"
        smtp.handler.data_replies.append(
            "454 4.7.0 Throttling failure: Maximum sending rate exceeded"
        )
        smtp.handler.drop_after_data.add("zoe.hartmann@example.com")
        set_delivery(
            project,
            transport="smtp",
            host="127.0.0.1",
            port=smtp.port,
            security="none",
            concurrency=1,
        )
        result = send(project)
        assert result.returncode == 3, result.stderr
        statuses = {r["email"]: (r["status"], r["error"]) for r in report(project)["recipients"]}
        assert statuses["marcus.bell@example.com"][0] == "rejected"
        assert "550" in statuses["marcus.bell@example.com"][1]
        assert statuses["amara.nwosu@example.org"][0] == "failed"
        assert statuses["zoe.hartmann@example.com"][0] == "unknown"
        delivered = smtp.handler.to()
        assert len(delivered) == len(set(delivered)) == ACTIVE - 2, (
            "the throttled one waited and went once"
        )
        assert sum(1 for s, _ in statuses.values() if s == "sent") == ACTIVE - 3
        listed = json.loads(
            run_process("subscribers", "list", "--format", "json", cwd=project).stdout
        )
        status = {r["email"]: r["status"] for r in listed}
        assert status["marcus.bell@example.com"] == "bounced"
        assert status["amara.nwosu@example.org"] == "active"


def test_unreachable_server_sends_nothing_and_resumes(project: Path) -> None:
    from smtp_server import free_port

    port = free_port()
    set_delivery(
        project, transport="smtp", host="127.0.0.1", port=port, security="none", max_retries=1
    )
    result = send(project)
    assert result.returncode == 1
    assert "cannot connect to 127.0.0.1" in result.stderr
    assert report(project)["counts"]["pending"] == ACTIVE


def test_local_relay_without_tls_or_password_just_works(project: Path) -> None:
    """No `security` set, a relay that offers no STARTTLS and needs no login (Postfix on
    localhost, a test sink): plain text is fine, as no password is sent."""
    with SMTPServer() as smtp:
        set_delivery(project, transport="smtp", host="127.0.0.1", port=smtp.port)
        result = send(project)
        assert result.returncode == 0, result.stderr
        assert len(smtp.handler.to()) == ACTIVE


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_password_is_never_sent_unencrypted(project: Path) -> None:
    with SMTPServer(users={"news": "s3cret"}) as smtp:
        for security in (None, "none"):
            keys = {"security": security} if security else {}
            set_delivery(
                project, transport="smtp", host="127.0.0.1", port=smtp.port, username="news", **keys
            )
            result = send(project, {"NEWSLETTER_SMTP_PASSWORD": "s3cret"})
            assert result.returncode == 1, result.stderr
            assert "a password is never sent unencrypted" in result.stderr
            assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
            assert smtp.handler.received == []
            assert report(project)["counts"].get("pending", 0) == ACTIVE
            assert report(project)["counts"].get("unknown", 0) == 0


def test_starttls_is_used_when_offered(project: Path, ca: tuple[trustme.CA, Path]) -> None:
    authority, pem = ca
    with SMTPServer(users={"news": "s3cret"}, tls=server_context(authority)) as smtp:
        set_delivery(project, transport="smtp", host="localhost", port=smtp.port, username="news")
        result = send(project, {"SSL_CERT_FILE": str(pem), "NEWSLETTER_SMTP_PASSWORD": "s3cret"})
        assert result.returncode == 0, result.stderr
        assert len(smtp.handler.to()) == ACTIVE
