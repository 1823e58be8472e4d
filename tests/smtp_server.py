"""A real SMTP server for tests (aiosmtpd), with the faults a mail server can answer."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # e.g. SMTPUTF8, BODY=8BITMIME


def parse_message(raw: bytes) -> EmailMessage:
    """The message as Python's email reads it; UTF-8 headers (RFC 6532) read as UTF-8."""
    if raw.isascii():
        message = email.message_from_bytes(raw, policy=email.policy.default)
    else:
        message = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Handler:
    """Accepts mail, or answers what the test asked for.

    ``rcpt_replies``: address -> reply for RCPT TO (e.g. "550 5.1.1 no such user").
    ``data_replies``: a FIFO of replies for DATA instead of 250 (e.g. "454 throttled").
    ``drop_after_data``: addresses whose message is taken, then the line is cut.
    """

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    drop_after_data: set[str] = field(default_factory=set)
    connections: int = 0
    keep_messages: bool = True  # False for benchmarks: count recipients, keep nothing
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        with self.lock:
            if not getattr(session, "counted", False):
                self.connections += 1
                session.counted = True  # type: ignore[attr-defined]
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
        if not self.keep_messages:
            with self.lock:
                self.count += len(envelope.rcpt_tos)
            return "250 Message accepted for delivery"
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = parse_message(raw)
        with self.lock:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    message,
                    raw,
                    list(envelope.mail_options),
                )
            )
        if set(envelope.rcpt_tos) & self.drop_after_data:
            assert server.transport is not None
            server.transport.close()
        return "250 Message accepted for delivery"

    def to(self) -> list[str]:
        with self.lock:
            return [r for item in self.received for r in item.recipients]


class SMTPServer:
    """``with SMTPServer(...) as smtp:`` a server on 127.0.0.1:``smtp.port``."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        smtputf8: bool = False,
    ) -> None:
        self.handler = Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}  # offered in EHLO, or not
        if users is not None:

            def authenticate(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and users.get(data.login.decode()) == data.password.decode()
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(
                authenticator=authenticate, auth_required=True, auth_require_tls=tls is not None
            )
        if tls is not None and not implicit_tls:
            kwargs.update(tls_context=tls, require_starttls=True)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=tls if implicit_tls else None,
            server_hostname="localhost",
            **kwargs,
        )

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
