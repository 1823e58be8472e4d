"""SMTP: one reused connection per worker, STARTTLS or SSL, AUTH once per connection.

When the server offers PIPELINING (RFC 2920), a message's envelope (MAIL FROM,
RCPT TO, DATA) goes in one write, and its content in one write with the next
message's envelope; else each command waits for its reply. The content is
dot-stuffed from pieces stuffed once per campaign variant.

A message's outcome is known per message: 2xx sent; 5xx rejected (and the
address suppressed when the server says the mailbox does not exist); 4xx
failed, except throttling replies (421, 451, 454), which are waited out and
retried. A connection lost in the middle of a message makes that message
``unknown``; the rest of the batch goes on a new connection. A message whose
envelope went behind the content of the one before, and never got as far as
its own content, was not sent: it goes first on the new connection.

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
from dataclasses import dataclass

from ..delivery.base import OneAtATime
from ..delivery.retry import RetryPolicy, TryAgain
from ..delivery.smtp_client import EXPECTED, Dropped, SMTPClient
from ..dkim import signer_for
from ..errors import ConfigError, CredentialsError, DeliveryError, NewsletterError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from ..render.message import smtp_content
from . import Option, Provider, Secret, Setup

_THROTTLE = {421, 451, 454}
_NO_SUCH_MAILBOX = {550, 551, 553}
_ALL_ACCEPTED = ([250, 250, 354], [250, 251, 354])  # MAIL, RCPT and DATA replies that go on
# each message's content (dot-stuffed pieces) and raw size, by id(): made (and signed) once
_Contents = dict[int, tuple[list[bytes], int]]
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
        self._connections: list[SMTPClient] = []
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None  # see _tls

    # -- connections ----------------------------------------------------------
    def _connection(self) -> SMTPClient:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.open:
            return conn
        conn = SMTPClient(self._connect())
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _tls(self) -> ssl.SSLContext:
        """The transport's TLS context, made once (loading the CA certificates costs tens
        of milliseconds) and only when a connection is to be encrypted."""
        with self._lock:
            if self._context is None:
                self._context = ssl.create_default_context()
            return self._context

    def _connect(self) -> smtplib.SMTP:
        if self.security in ("ssl", "starttls"):
            self._tls()  # made before the first attempt, as each attempt needs it

        def attempt(_number: int) -> smtplib.SMTP:
            try:
                return self._open()
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

    def _open(self) -> smtplib.SMTP:
        """A connection, secured as ``security`` says and logged in."""
        if self.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls()
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo_or_helo_if_needed()
            if self.security == "starttls" or (
                self.security == "auto" and conn.has_extn("starttls")
            ):
                conn.starttls(context=self._tls())
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
            conn.close()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.quit()
            self._connections.clear()

    # -- sending ----------------------------------------------------------------
    def send_one(self, message: OutgoingMessage) -> SendResult:
        return self.send_batch([message])[0]

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        done: list[SendResult] = []
        throttled: TryAgain | None = None  # a later message's first attempt, pipelined
        contents: _Contents = {}
        try:
            while len(done) < len(messages):
                results, throttled = self._send_from(messages[len(done) :], throttled, contents)
                done.extend(results)
        except DeliveryError as exc:
            exc.partial = done + exc.partial
            raise
        except NewsletterError as exc:  # e.g. a server that would take a password in clear
            raise DeliveryError(exc.message, exc.hint, partial=done) from exc
        return done

    def _send_from(
        self,
        messages: list[OutgoingMessage],
        throttled: TryAgain | None,
        contents: _Contents,
    ) -> tuple[list[SendResult], TryAgain | None]:
        """Results for the first messages (at least one), and the throttling reply of the
        message after them, if that is why they stopped."""

        def attempt(number: int) -> tuple[list[SendResult], TryAgain | None]:
            if number == 0 and throttled is not None:
                raise throttled
            return self._pipeline(messages, contents)

        # throttled to the last attempt: the last refusal is the result (nothing was taken)
        return self.retry.run(
            attempt, lambda last, _attempts: ([last.outcome], None), self.notify_retry
        )

    def _pipeline(
        self, messages: list[OutgoingMessage], contents: _Contents
    ) -> tuple[list[SendResult], TryAgain | None]:
        """Messages one after another on this worker's connection, until one needs the
        connection afresh; ``TryAgain`` when the first is throttled."""
        client = self._connection()
        first = self._job(client, messages[0], contents)
        if first is None:
            return [self._cannot_carry(messages[0])], None
        out: list[SendResult] = []
        try:
            self._run(client, messages, first, contents, out)
        except _Throttled as exc:
            return out, exc.again
        except DeliveryError as exc:
            exc.partial = out + exc.partial
            raise
        return out, None

    def _run(
        self,
        client: SMTPClient,
        messages: list[OutgoingMessage],
        job: _Job,
        contents: _Contents,
        out: list[SendResult],
    ) -> None:
        behind = False  # the envelope went out behind the previous message's content
        for index, message in enumerate(messages):
            sid = message.recipient.subscriber_id
            try:
                replies = client.send_envelope(job.commands, written=behind)
            except Dropped as exc:
                self._drop_connection()
                if not behind:  # else it never got to its content: first on a new connection
                    out.append(_lost(sid, exc))
                return
            refusal = self._refusal(client, sid, message, replies, later=index > 0)
            if refusal is not None:
                out.append(refusal)
                return
            following = messages[index + 1] if index + 1 < len(messages) else None
            after = None
            if following is not None and client.pipelining:
                after = self._next_job(client, following, contents)
            try:
                client.write_pieces([*job.content, *after.commands] if after else job.content)
                if after is not None and index + 2 < len(messages):
                    self._prefetch(messages[index + 2], contents)  # while the server reads
                code, reply = client.reply()
            except Dropped as exc:  # the content went: it may have been taken
                self._drop_connection()
                out.append(_lost(sid, exc))
                return
            out.append(self._answered(client, sid, message, code, reply, after, index > 0))
            if after is None:
                return
            job, behind = after, True

    def _job(
        self,
        client: SMTPClient,
        message: OutgoingMessage,
        contents: _Contents,
    ) -> _Job | None:
        """The message's envelope and content, or None when this server cannot take it."""
        options = self._mail_options(client, message)
        if options is None:
            return None
        content, size = self._content(message, contents)
        sender = message.factory.envelope_sender
        return _Job(client.envelope(sender, message.to_address, options, size), content)

    def _next_job(
        self,
        client: SMTPClient,
        message: OutgoingMessage,
        contents: _Contents,
    ) -> _Job | None:
        """``_job`` for the message after one in DATA: a failure to make it must not leave
        that one unended, so it shows when its own turn comes (nothing in DATA then)."""
        try:
            return self._job(client, message, contents)
        except Exception:
            return None

    def _content(self, message: OutgoingMessage, contents: _Contents) -> tuple[list[bytes], int]:
        """The message's SMTP content (as pieces) and its size before stuffing, made (and
        signed) once."""
        found = contents.get(id(message))
        if found is None:
            if self.signer is not None:  # signed as it will be read: before stuffing
                raw = self.signer(message.as_bytes())
                found = ([smtp_content(raw)], len(raw))
            else:
                found = message.smtp_pieces()
            contents[id(message)] = found
        return found

    def _prefetch(self, message: OutgoingMessage, contents: _Contents) -> None:
        """Make a later message's content now; a failure shows when its turn comes."""
        with contextlib.suppress(Exception):
            self._content(message, contents)

    def _refusal(
        self,
        client: SMTPClient,
        sid: int,
        message: OutgoingMessage,
        replies: list[tuple[int, bytes]],
        later: bool,
    ) -> SendResult | None:
        """None when MAIL, RCPT and DATA were accepted; else the message's result."""
        if [code for code, _ in replies] in _ALL_ACCEPTED:  # the usual case, without a search
            return None
        failed = next(
            (
                (step, code, reply)
                for step, ((code, reply), ok) in enumerate(zip(replies, EXPECTED, strict=False))
                if code not in ok
            ),
            None,
        )
        if failed is None:
            return None
        step, code, reply = failed
        if replies[-1][0] == 354:  # DATA taken after a refusal: only closing ends it
            self._drop_connection()
        else:
            client.reset(code)
        if step == 0 and code not in _THROTTLE:
            sender = message.factory.envelope_sender
            raise DeliveryError(
                f"The SMTP server refused the sender {sender} ({code} {_text(reply)}).",
                "Check [newsletter] from: the server must accept it as a sender.",
            )
        return self._refused_now(sid, code, reply, later)

    def _answered(
        self,
        client: SMTPClient,
        sid: int,
        message: OutgoingMessage,
        code: int,
        reply: bytes,
        after: _Job | None,
        later: bool,
    ) -> SendResult:
        """The result of a message's content, as the server answered it."""
        if code == 250:
            return SendResult(sid, DeliveryStatus.SENT, message_id=message.message_id)
        if after is None:
            client.reset(code)
        elif code in _THROTTLE:  # the next envelope is out, and may be in DATA already
            self._drop_connection()
        return self._refused_now(sid, code, reply, later)

    def _refused_now(self, sid: int, code: int, reply: bytes, later: bool) -> SendResult:
        """``_refused``; a throttled message after the first of a run stops the run there."""
        try:
            return self._refused(sid, code, reply)
        except TryAgain as again:
            if later:
                raise _Throttled(again) from None
            raise

    def _mail_options(self, conn: SMTPClient, message: OutgoingMessage) -> list[str] | None:
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


class _Throttled(Exception):
    """A message after the first of a run was throttled: the run stops before it."""

    def __init__(self, again: TryAgain) -> None:
        super().__init__(again.problem)
        self.again = again


@dataclass(frozen=True, slots=True)
class _Job:
    commands: list[bytes]  # MAIL FROM, RCPT TO, DATA
    content: list[bytes]  # dot-stuffed, ending CRLF.CRLF, in pieces


def _lost(sid: int, exc: Dropped) -> SendResult:
    # The message may have been taken before the line dropped.
    return SendResult(
        sid, DeliveryStatus.UNKNOWN, error=f"SMTP connection lost while sending ({exc})"
    )


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
