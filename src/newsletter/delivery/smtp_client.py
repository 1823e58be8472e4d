"""An SMTP connection that pipelines (RFC 2920) when the server offers PIPELINING.

smtplib makes the connection (TLS, EHLO, STARTTLS, AUTH); this client then writes
on its socket and reads replies with smtplib's reader. With PIPELINING the
envelope (MAIL FROM, RCPT TO, DATA) goes in one write and its replies are read
after, and a message's content goes in one write with the next message's
envelope. Without PIPELINING each command waits for its reply, as smtplib does.

The commands are the bytes ``smtplib.SMTP.sendmail`` writes (``mail FROM:<...>
size=N``, ``rcpt TO:<...>``, ``data``); the content is already dot-stuffed and
ends with CRLF.CRLF. It is written as the pieces it is made of (the campaign's
shared bytes among them) with ``sendmsg`` on a plain socket, joined only for TLS.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl

from .base import send_gathered

CRLF = b"\r\n"
ACCEPTED = (250, 251)  # RCPT: 251 "user not local; will forward"
EXPECTED = ((250,), ACCEPTED, (354,))  # the replies that let MAIL, RCPT and DATA go on
# a plain addr-spec, which smtplib.quoteaddr only wraps in <>; anything else goes through it
_PLAIN = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def quoted(address: str) -> str:
    """``<address>`` as smtplib writes it in MAIL FROM and RCPT TO."""
    if _PLAIN.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


class Dropped(Exception):
    """The connection was lost (or the server answered what cannot be read)."""


class SMTPClient:
    """One logged-in SMTP connection. ``pipelining`` is what the server's EHLO said."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.pipelining = smtp.has_extn("pipelining")
        self._size = smtp.does_esmtp and smtp.has_extn("size")
        self._senders: dict[str, str] = {}

    def has_extn(self, name: str) -> bool:
        return self.smtp.has_extn(name)

    def envelope(self, sender: str, recipient: str, options: list[str], size: int) -> list[bytes]:
        """MAIL FROM, RCPT TO and DATA for one message of ``size`` octets (before
        stuffing), each a line."""
        mailbox = self._senders.get(sender)
        if mailbox is None:
            mailbox = self._senders[sender] = quoted(sender)
        opts = [f"size={size}"] if self._size else []
        if self.smtp.does_esmtp:
            opts.extend(options)
        encoding = "utf-8" if any(o.lower() == "smtputf8" for o in options) else "ascii"
        mail = f"mail FROM:{mailbox}{' ' + ' '.join(opts) if opts else ''}"
        rcpt = f"rcpt TO:{quoted(recipient)}"
        if "\r" in mail + rcpt or "\n" in mail + rcpt:  # as smtplib refuses them
            raise ValueError(
                f"command and arguments contain prohibited newline characters: {rcpt!r}"
            )
        return [mail.encode(encoding) + CRLF, rcpt.encode(encoding) + CRLF, b"data" + CRLF]

    def write(self, data: bytes) -> None:
        sock = self.smtp.sock
        if sock is None:
            raise Dropped("not connected")
        try:
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise Dropped(exc.__class__.__name__) from exc

    def write_pieces(self, pieces: list[bytes]) -> None:
        """``pieces`` in one write, as they are: gathered by the kernel (``sendmsg``) on a
        plain socket, so a message's content is not joined (copied) first; joined on TLS."""
        sock = self.smtp.sock
        if sock is None:
            raise Dropped("not connected")
        if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
            self.write(b"".join(pieces))
            return
        try:
            send_gathered(sock, pieces)
        except OSError as exc:
            self.close()
            raise Dropped(exc.__class__.__name__) from exc

    def reply(self) -> tuple[int, bytes]:
        """The next reply, read as ``smtplib.SMTP.getreply`` reads it: (code, its lines'
        text joined by LF), code -1 for a line that does not start with one."""
        file = self.smtp.file
        if file is None:  # nothing read yet on this socket: smtplib makes its reader
            return self._smtplib_reply()
        lines = []
        while True:
            try:
                line = file.readline(smtplib._MAXLINE + 1)
            except OSError as exc:  # named as smtplib's reader names it
                self.close()
                raise Dropped("SMTPServerDisconnected") from exc
            if not line or len(line) > smtplib._MAXLINE:
                self.close()
                raise Dropped("SMTPServerDisconnected" if not line else "SMTPResponseException")
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                return -1, b"\n".join(lines)
            if line[3:4] != b"-":
                return code, b"\n".join(lines)

    def _smtplib_reply(self) -> tuple[int, bytes]:
        try:
            return self.smtp.getreply()  # closes the connection when it cannot read
        except smtplib.SMTPServerDisconnected as exc:
            raise Dropped("SMTPServerDisconnected") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise Dropped(exc.__class__.__name__) from exc

    def send_envelope(self, commands: list[bytes], written: bool) -> list[tuple[int, bytes]]:
        """The replies to MAIL, RCPT and DATA, up to the first refusal. ``written``: the
        commands already went out (pipelined behind the previous message's content)."""
        if self.pipelining:
            if not written:
                self.write(b"".join(commands))
            return self._replies(len(commands))
        replies = []
        for command, ok in zip(commands, EXPECTED, strict=True):
            self.write(command)
            replies.append(self.reply())
            if replies[-1][0] not in ok:
                break
        return replies

    def _replies(self, count: int) -> list[tuple[int, bytes]]:
        """``count`` replies; fewer when the line is cut after a refusal (a 421 closes it),
        which is then the answer."""
        replies: list[tuple[int, bytes]] = []
        for _ in range(count):
            try:
                replies.append(self.reply())
            except Dropped:
                pairs = zip(replies, EXPECTED, strict=False)
                if all(code in ok for (code, _), ok in pairs):
                    raise
                break
        return replies

    def reset(self, code: int) -> None:
        """After a refused envelope: a 421 closes the connection, else RSET (as smtplib)."""
        if code == 421:
            self.close()
            return
        with contextlib.suppress(Dropped):
            self.write(b"rset" + CRLF)
            self.reply()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.smtp.close()

    def quit(self) -> None:
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.close()

    @property
    def open(self) -> bool:
        return self.smtp.sock is not None
