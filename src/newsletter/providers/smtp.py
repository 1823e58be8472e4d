"""SMTP: one reused connection per worker, STARTTLS or SSL, AUTH once per connection.

A message's outcome is known per message: 2xx sent; 5xx rejected (and the
address suppressed when the server says the mailbox does not exist); 4xx
failed, except throttling replies (421, 451, 454), which are waited out and
retried. A connection lost in the middle of a message makes that message
``unknown``; the rest of the batch goes on a new connection.

A message that needs SMTPUTF8 (a reader's local part that is not ASCII) goes
with the SMTPUTF8 option when the server offers it in its EHLO answer; when it
does not, that reader is settled ``invalid`` without a transaction.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import time
from collections.abc import Callable

from ..delivery.base import OneAtATime
from ..delivery.retry import RetryPolicy, TryAgain
from ..dkim import signer_for
from ..errors import ConfigError, CredentialsError, DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from . import Option, Provider, Secret, Setup

_THROTTLE = {421, 451, 454}
_NO_SUCH_MAILBOX = {550, 551, 553}
SECURITY = ("starttls", "ssl", "none")  # and, when not set, "auto": see SMTPTransport


class SMTPTransport(OneAtATime):
    """``security``: ``ssl`` (implicit TLS), ``starttls`` (required), ``none``, or unset:
    STARTTLS when the server offers it, plain text to a server that does not (a local
    relay) — and in every mode a password is only ever sent over an encrypted connection.
    """

    name = "smtp"
    provider = "SMTP"
    max_batch = 50  # messages a worker sends before the batch is settled
    smtputf8 = None  # as the server says, per connection
    dkim_signing = True  # with [delivery] dkim_selector

    def __init__(
        self,
        host: str,
        port: int | None = None,
        security: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        signer: Callable[[bytes], bytes] | None = None,
    ) -> None:
        super().__init__(batch_size)
        self.signer = signer  # DKIM: each message signed once, before its first attempt
        security = (security or "auto").lower()
        if security not in (*SECURITY, "auto"):
            raise ConfigError(
                f"[delivery] security {security!r} is not understood.",
                f"Use one of: {', '.join(SECURITY)}.",
            )
        self.host = host
        self.security = security
        self.port = port or {"ssl": 465, "starttls": 587, "auto": 587, "none": 25}[security]
        self.username = username
        self.password = password
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries, sleep)
        self._local = threading.local()
        self._connections: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    # -- connections ----------------------------------------------------------
    def _connection(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = self._connect()
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()

        def attempt(_number: int) -> smtplib.SMTP:
            try:
                return self._open(context)
            except smtplib.SMTPAuthenticationError as exc:
                raise CredentialsError(
                    f"The SMTP server {self.host} refused the login ({exc.smtp_code}).",
                    "Check [delivery] username and NEWSLETTER_SMTP_PASSWORD.",
                ) from None
            except smtplib.SMTPNotSupportedError:
                raise ConfigError(
                    f"The SMTP server {self.host}:{self.port} does not offer STARTTLS.",
                    'Use security = "ssl" (port 465) or, only on a trusted network, "none".',
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                raise TryAgain(f"SMTP: cannot connect to {self.host}:{self.port} ({exc})") from None

        def give_up(last: TryAgain, attempts: int) -> smtplib.SMTP:
            raise DeliveryError(
                f"{last.problem}; gave up after {attempts} attempts.",
                "Check [delivery] host, port and security, then run the same send again.",
            )

        return self.retry.run(attempt, give_up, self.notify_retry)

    def _open(self, context: ssl.SSLContext) -> smtplib.SMTP:
        """A connection, secured as ``security`` says and logged in."""
        if self.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo_or_helo_if_needed()
            if self.security == "starttls" or (
                self.security == "auto" and conn.has_extn("starttls")
            ):
                conn.starttls(context=context)
                conn.ehlo()
        if self.username:
            self._refuse_plaintext_password(conn)
            conn.login(self.username, self.password or "")
        conn.ehlo_or_helo_if_needed()  # what it offers (SMTPUTF8) is known from here
        return conn

    def _refuse_plaintext_password(self, conn: smtplib.SMTP) -> None:
        if isinstance(conn.sock, ssl.SSLSocket):
            return
        conn.close()
        raise ConfigError(
            f"The SMTP server {self.host}:{self.port} offers no encryption "
            f"(security = {self.security!r}), and a password is never sent unencrypted.",
            'Use security = "ssl" (port 465) or "starttls" with a server that offers it; a '
            "local relay that needs no login works without [delivery] username.",
        )

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    conn.close()
            self._connections.clear()

    # -- sending ----------------------------------------------------------------
    def send_one(self, message: OutgoingMessage) -> SendResult:
        sid = message.recipient.subscriber_id
        sender = message.factory.envelope_sender
        data = message.as_bytes()
        if self.signer is not None:
            data = self.signer(data)

        def attempt(_number: int) -> SendResult:
            conn = self._connection()
            options = self._mail_options(conn, message)
            if options is None:
                return self._cannot_carry(message)
            try:
                refused = conn.sendmail(sender, [message.to_address], data, options)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                return self._refused(sid, code, reply)
            except smtplib.SMTPDataError as exc:
                return self._refused(sid, exc.smtp_code, exc.smtp_error)
            except smtplib.SMTPSenderRefused as exc:
                if exc.smtp_code not in _THROTTLE:
                    raise DeliveryError(
                        f"The SMTP server refused the sender {sender} ({exc.smtp_code} "
                        f"{_text(exc.smtp_error)}).",
                        "Check [newsletter] from: the server must accept it as a sender.",
                    ) from None
                return self._refused(sid, exc.smtp_code, exc.smtp_error)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                # The message may have been taken before the line dropped.
                self._drop_connection()
                return SendResult(
                    sid,
                    DeliveryStatus.UNKNOWN,
                    error=f"SMTP connection lost while sending ({exc.__class__.__name__})",
                )
            if not refused:
                return SendResult(sid, DeliveryStatus.SENT, message_id=message.message_id)
            code, reply = next(iter(refused.values()))
            return self._refused(sid, code, reply)

        # throttled to the last attempt: the last refusal is the result (nothing was taken)
        return self.retry.run(attempt, lambda last, _attempts: last.outcome, self.notify_retry)

    def _mail_options(self, conn: smtplib.SMTP, message: OutgoingMessage) -> list[str] | None:
        """MAIL FROM options for the message, or None when this server cannot take it."""
        if not message.smtputf8:
            return []
        if not conn.has_extn("smtputf8"):
            return None
        return ["SMTPUTF8", *(["BODY=8BITMIME"] if conn.has_extn("8bitmime") else [])]

    def _cannot_carry(self, message: OutgoingMessage) -> SendResult:
        if message.factory.headers_utf8:  # our own address: no message can go
            raise DeliveryError(
                f"The SMTP server {self.host} does not offer SMTPUTF8, which the newsletter's "
                "own address (a non-ASCII part before the @) needs; nothing was sent.",
                "Use an ASCII address for [newsletter] from and reply_to, or a server that "
                "offers SMTPUTF8.",
            )
        local = message.to_address.rpartition("@")[0]
        return SendResult(
            message.recipient.subscriber_id,
            DeliveryStatus.INVALID,
            error=(
                f"The SMTP server {self.host} does not offer SMTPUTF8, which a non-ASCII local "
                f"part ({local!r}) needs, so this reader could not be sent to. Ask the reader "
                "for an address whose part before the @ is plain ASCII, or send through a "
                "server that offers SMTPUTF8."
            ),
        )

    def _refused(self, sid: int, code: int, reply: bytes | str) -> SendResult:
        """A refusal as a result; ``TryAgain`` for a throttling reply worth waiting out."""
        text = f"SMTP {code} {_text(reply)}"
        if 500 <= code < 600:
            suppress = code in _NO_SUCH_MAILBOX or " 5.1." in f" {_text(reply)}"
            return SendResult(sid, DeliveryStatus.REJECTED, error=text, suppress=suppress)
        result = SendResult(sid, DeliveryStatus.FAILED, error=text)
        if code in _THROTTLE:  # nothing was taken: wait, then again
            raise TryAgain(f"The SMTP server {self.host} is throttling", outcome=result)
        return result


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _build(setup: Setup) -> SMTPTransport:
    host, username = setup.option("host"), setup.option("username")
    password = None
    if username:
        password = setup.secret("NEWSLETTER_SMTP_PASSWORD", f"to log in to {host} as {username}")
    return SMTPTransport(
        host,
        setup.option("port"),
        setup.option("security"),
        username,
        password,
        timeout=float(setup.delivery.timeout),
        max_retries=setup.delivery.max_retries,
        batch_size=setup.delivery.batch_size,
        signer=signer_for(setup.settings),
    )


PROVIDER = Provider(
    name="smtp",
    transport=SMTPTransport,
    build=_build,
    options=(
        Option(
            "host",
            required=True,
            hint='Add host = "smtp.example.org" (and port, security, username) under [delivery].',
        ),
        Option("port", (int,)),
        Option("username"),
        Option("security"),  # see SMTPTransport; unset: STARTTLS when the server offers it
    ),
    secrets=(Secret("NEWSLETTER_SMTP_PASSWORD", "to log in as [delivery] username"),),
)
