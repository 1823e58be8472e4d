"""The smtp transport's pipelining (RFC 2920), against a real SMTP server on 127.0.0.1
that records how the commands arrived: one that offers PIPELINING, one that does not,
refusals and dropped lines in the middle of a pipelined group. Every message that
arrives is compared, byte for byte, with what smtplib's ``sendmail`` delivers of it."""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import pytest

from loop_server import LoopServer
from newsletter.dkim import Signer, generate_key, record_value
from newsletter.models import DeliveryStatus, Recipient, SendResult
from newsletter.project import Project
from newsletter.providers.smtp import SMTPTransport
from newsletter.render import OutgoingMessage
from newsletter.render.message import smtp_content
from raw_http import trusted_server_context

END = b"\r\n.\r\n"


@dataclass  # mutable: what the server was told to answer, and what it saw
class Script:
    pipelining: bool = True
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # every time
    rcpt_once: dict[str, str] = field(default_factory=dict)  # the first time only
    data_replies: list[str] = field(default_factory=list)  # the next final replies
    drop_after_data: set[str] = field(default_factory=set)  # taken, then cut, no reply
    drop_at_rcpt: set[str] = field(default_factory=set)  # replies so far sent, then cut (once)
    closing_at_rcpt: set[str] = field(default_factory=set)  # 421 and cut (once)
    received: list[tuple[str, str, bytes, list[str]]] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)  # the commands each read held
    ahead: int = 0  # commands that arrived before the reply to the one before was sent
    connections: int = 0
    tls: ssl.SSLContext | None = None  # offers STARTTLS with it

    def delivered(self) -> list[str]:
        return [to for _, to, _, _ in self.received]


class Session:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.sender = ""
        self.options: list[str] = []
        self.rcpts: list[str] = []
        self.data = False
        self.closing = False
        self.starttls = False

    def command(self, line: bytes) -> str | None:
        """The reply to one command; None: cut the line now."""
        verb, _, rest = line.decode("utf-8").partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            offers = ["PIPELINING"] if self.script.pipelining else []
            offers += ["STARTTLS"] if self.script.tls is not None else []
            offers += ["8BITMIME", "SMTPUTF8", "SIZE 100000000"]
            return "\r\n".join(f"250-{o}" for o in ["localhost", *offers]) + "\r\n250 HELP"
        if verb == "MAIL":
            address, _, options = rest.partition(" ")
            self.sender, self.options, self.rcpts = address[6:-1], options.split(), []
            return "250 OK"
        if verb == "RCPT":
            return self.rcpt(rest[4:-1])
        if verb == "DATA":
            if not self.rcpts:
                return "554 5.5.1 no valid recipients"
            self.data = True
            return "354 go ahead"
        if verb == "STARTTLS":
            self.starttls = True
            return "220 ready to start TLS"
        if verb == "QUIT":
            self.closing = True
            return "221 bye"
        if verb == "RSET":
            self.sender, self.rcpts = "", []
        return "250 OK"

    def rcpt(self, address: str) -> str | None:
        if address in self.script.drop_at_rcpt:
            self.script.drop_at_rcpt.discard(address)
            return None
        if address in self.script.closing_at_rcpt:
            self.script.closing_at_rcpt.discard(address)
            self.closing = True
            return "421 4.3.2 closing the connection"
        if address in self.script.rcpt_once:
            return self.script.rcpt_once.pop(address)
        if address in self.script.rcpt_replies:
            return self.script.rcpt_replies[address]
        self.rcpts.append(address)
        return "250 OK"

    def content(self, stuffed: bytes) -> str | None:
        self.data = False
        raw = re.sub(rb"(?m)^\.", b"", stuffed)  # undo dot-stuffing
        to = self.rcpts[0]
        if to in self.script.drop_after_data:
            self.script.received.append((self.sender, to, raw, self.options))
            return None
        if self.script.data_replies:
            return self.script.data_replies.pop(0)
        self.script.received.append((self.sender, to, raw, self.options))
        return "250 OK queued"


class PipeliningServer(LoopServer):
    """``with PipeliningServer(script) as server:`` on 127.0.0.1:``server.port``."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.script.connections += 1
        session = Session(self.script)
        writer.write(b"220 localhost ready\r\n")
        buffer = b""
        while not session.closing:
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            buffer += chunk
            replies, buffer, cut = self._answer(session, buffer)
            writer.write(b"".join(r.encode() + b"\r\n" for r in replies))
            await writer.drain()
            if cut:
                break
            if session.starttls:
                session.starttls = False
                await writer.start_tls(self.script.tls)  # type: ignore[arg-type]
        writer.close()

    def _answer(self, session: Session, buffer: bytes) -> tuple[list[str], bytes, bool]:
        """The replies to what ``buffer`` holds, what is left of it, and whether to cut."""
        replies: list[str] = []
        seen: list[str] = []
        while True:
            if session.data:
                if buffer.startswith(b".\r\n"):
                    content, buffer = b"", buffer[3:]
                elif END in buffer:
                    end = buffer.index(END)
                    content, buffer = buffer[: end + 2], buffer[end + len(END) :]
                else:
                    break
                seen.append("<content>")
                reply = session.content(content)
            elif b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                seen.append(line.split(b" ")[0].decode().upper())
                reply = session.command(line)
            else:
                break
            if buffer and not self.script.pipelining:
                self.script.ahead += 1
            if reply is None:
                self.script.reads.append(seen)
                return replies, b"", True
            replies.append(reply)
            if session.closing or session.starttls:
                break
        if seen:
            self.script.reads.append(seen)
        return replies, buffer, False


# -- the messages --------------------------------------------------------------------
READERS = [
    Recipient(1, "ana@example.com", "Ana", "Lima"),
    Recipient(2, "dot@example.com", ".Dot", "Leading"),  # a value that starts a line
    Recipient(3, "zoe@example.com", "Zoë", "Hartmann"),  # 8-bit, quoted-printable
    Recipient(4, "marcus@example.com", "Marcus", "Bell"),
    Recipient(5, "amara@example.org", "Amara", "Nwosu"),
    Recipient(6, "ines@example.com", "..Inês", "Doté"),
    Recipient(7, "théo@example.com", "Théo", "Lindqvist"),  # SMTPUTF8, UTF-8 headers
    Recipient(8, "priya@example.com", "Priya", "Raman"),
]


@pytest.fixture
def messages(project: Path) -> list[OutgoingMessage]:
    campaign_file = project / "campaigns" / "2026-10-digest.md"
    text = campaign_file.read_text(encoding="utf-8")
    # literal text of the campaign that starts a line with dots, in both parts
    campaign_file.write_text(
        text.replace("Warmly,", ".NET notes.\n\n.\n\nWarmly,"), encoding="utf-8"
    )
    proj = Project.load()
    campaign = proj.composer.campaign("2026-10-digest")
    compiled = proj.composer.compile(campaign, sample=READERS[0])
    factory = proj.composer.factory(compiled, carrier=SMTPTransport.carrier())
    personalize = proj.composer.personalizer(campaign.slug)
    return [factory.message(r, personalize(r)) for r in READERS]


def as_smtplib_delivers(server: PipeliningServer, messages: list[OutgoingMessage]) -> list[bytes]:
    """What smtplib's sendmail (the transport before pipelining) delivers of each message."""
    script = Script(pipelining=False)
    with PipeliningServer(script) as reference, smtplib.SMTP("127.0.0.1", reference.port) as conn:
        for message in messages:
            options = ["SMTPUTF8", "BODY=8BITMIME"] if message.smtputf8 else []
            conn.sendmail(
                message.factory.envelope_sender, [message.to_address], message.as_bytes(), options
            )
    return [raw for _, _, raw, _ in script.received]


def undated(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", raw, count=1)


def transport(port: int, sleeps: list[float] | None = None, **keys: object) -> SMTPTransport:
    waits = sleeps if sleeps is not None else []
    return SMTPTransport("127.0.0.1", port, "none", sleep=waits.append, **keys)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[PipeliningServer]:
    with PipeliningServer(Script()) as running:
        yield running


def by_reader(results: list[SendResult]) -> dict[int, SendResult]:
    return {r.subscriber_id: r for r in results}


def assert_same_bytes(
    script: Script, messages: list[OutgoingMessage], reference: list[bytes]
) -> None:
    expected = {m.to_address: undated(raw) for m, raw in zip(messages, reference, strict=True)}
    for sender, to, raw, options in script.received:
        assert sender == "news@riverbend-clinicians.example"
        assert undated(raw) == expected[to], to
        assert f"size={len(raw)}" in options  # SIZE: the message before dot-stuffing


# -- the tests --------------------------------------------------------------------------
def test_pipelined_when_the_server_offers_it(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    sender = transport(server.port)
    results = sender.send_batch(messages)
    sender.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
    script = server.script
    assert script.delivered() == [m.to_address for m in messages]
    assert script.connections == 1
    # the envelope in one write; each content with the next envelope in one write
    assert ["MAIL", "RCPT", "DATA"] in script.reads
    assert script.reads.count(["<content>", "MAIL", "RCPT", "DATA"]) == len(READERS) - 1
    assert_same_bytes(script, messages, as_smtplib_delivers(server, messages))
    raws = {to: raw for _, to, raw, _ in script.received}
    assert b"\r\n.Dot" in raws["dot@example.com"]  # a reader's value that starts a line
    assert b"\r\n..In" in raws["ines@example.com"]
    # the campaign's own lines: a lone dot (which ends DATA unless stuffed) and a leading one
    assert b"\r\n.\r\n" in raws["ana@example.com"]
    assert b"\r\n.NET notes" in raws["ana@example.com"]
    assert "<théo@example.com>".encode() in raws["théo@example.com"]  # RFC 6532 headers
    utf8 = next(o for _, to, _, o in script.received if to == "théo@example.com")
    assert "SMTPUTF8" in utf8 and "BODY=8BITMIME" in utf8


def test_one_command_at_a_time_when_the_server_does_not_offer_it(
    messages: list[OutgoingMessage],
) -> None:
    with PipeliningServer(Script(pipelining=False)) as server:
        sender = transport(server.port)
        results = sender.send_batch(messages)
        sender.close()
        script = server.script
        assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
        assert script.ahead == 0, "a command was sent before the reply to the one before"
        assert all(len(read) == 1 for read in script.reads), script.reads
        assert script.delivered() == [m.to_address for m in messages]
        assert_same_bytes(script, messages, as_smtplib_delivers(server, messages))


def test_refusals_in_the_middle_of_a_pipelined_group(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    script = server.script
    script.rcpt_replies["zoe@example.com"] = "550 5.1.1 <zoe@example.com>: no such user"
    script.rcpt_replies["amara@example.org"] = "452 4.2.2 mailbox full"
    script.rcpt_once["ines@example.com"] = "451 4.7.1 try again later"  # waited out
    sleeps: list[float] = []
    sender = transport(server.port, sleeps)
    results = by_reader(sender.send_batch(messages))
    sender.close()
    assert results[3].status is DeliveryStatus.REJECTED and results[3].suppress
    assert "550" in (results[3].error or "")
    assert results[5].status is DeliveryStatus.FAILED and not results[5].suppress
    assert "452" in (results[5].error or "")
    assert results[6].status is DeliveryStatus.SENT and len(sleeps) == 1
    others = [r for sid, r in results.items() if sid not in (3, 5)]
    assert all(r.status is DeliveryStatus.SENT for r in others)
    delivered = script.delivered()
    assert sorted(delivered) == sorted(
        m.to_address for m in messages if m.recipient.subscriber_id not in (3, 5)
    )
    assert len(delivered) == len(set(delivered)), "nobody got it twice"
    assert ["<content>", "MAIL", "RCPT", "DATA"] in script.reads
    sent = [m for m in messages if m.recipient.subscriber_id not in (3, 5)]
    reference = as_smtplib_delivers(server, sent)
    assert_same_bytes(script, sent, reference)


def test_a_throttled_content_reply_is_waited_out_and_sent_once(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    script = server.script
    script.data_replies.extend(["250 OK", "250 OK", "454 4.7.0 Throttling failure"])
    sleeps: list[float] = []
    sender = transport(server.port, sleeps)
    results = sender.send_batch(messages)
    sender.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
    assert len(sleeps) == 1
    # the first two replies replaced acceptances: those went (as the server said) unrecorded
    delivered = script.delivered()
    assert sorted(delivered) == sorted(m.to_address for m in messages[2:])
    assert len(delivered) == len(set(delivered))


def test_a_line_cut_after_a_content_makes_only_that_message_unknown(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    script = server.script
    script.drop_after_data.add("marcus@example.com")
    sender = transport(server.port)
    results = by_reader(sender.send_batch(messages))
    sender.close()
    assert results[4].status is DeliveryStatus.UNKNOWN
    assert all(r.status is DeliveryStatus.SENT for sid, r in results.items() if sid != 4)
    assert script.connections == 2, "the rest went on a new connection"
    delivered = script.delivered()
    assert sorted(delivered) == sorted(m.to_address for m in messages)
    assert len(delivered) == len(set(delivered)), "nothing acknowledged was sent again"


def test_a_line_cut_inside_a_pipelined_envelope_sends_that_reader_on_anew(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    script = server.script
    script.drop_at_rcpt.add("amara@example.org")  # after the one before was acknowledged
    sender = transport(server.port)
    results = sender.send_batch(messages)
    sender.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
    assert script.connections == 2
    delivered = script.delivered()
    assert sorted(delivered) == sorted(m.to_address for m in messages)
    assert len(delivered) == len(set(delivered))


def test_a_line_cut_before_the_content_of_the_first_message_is_unknown_as_before(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    server.script.drop_at_rcpt.add("ana@example.com")
    sender = transport(server.port)
    results = sender.send_batch(messages)
    sender.close()
    assert results[0].status is DeliveryStatus.UNKNOWN
    assert all(r.status is DeliveryStatus.SENT for r in results[1:])
    assert "ana@example.com" not in server.script.delivered()


def test_contents_are_stuffed_once_and_equal_smtplibs(messages: list[OutgoingMessage]) -> None:
    for message in messages:
        content, size = message.smtp_data()
        raw = message.as_bytes()
        assert undated(content) == undated(smtp_content(raw))
        assert size == len(raw)
        expected = smtplib._quote_periods(raw)  # type: ignore[attr-defined]
        assert undated(content) == undated(expected + b".\r\n")


def test_a_dkim_signed_message_is_signed_before_stuffing_and_verifies(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    pem = generate_key(1024)
    signer = Signer("news", "riverbend-clinicians.example", pem)
    sender = transport(server.port, signer=signer.sign)
    results = sender.send_batch(messages)
    sender.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
    record = record_value(pem).encode()

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        assert name == b"news._domainkey.riverbend-clinicians.example."
        return record

    for _, _, raw, _ in server.script.received:
        assert raw.startswith(b"DKIM-Signature:")
        assert dkim.verify(raw, dnsfunc=dnsfunc)


def test_a_421_in_a_pipelined_envelope_is_waited_out_on_a_new_connection(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    """The server refuses (421) and closes before it answers the rest of the group:
    that message was not taken, so it is waited out and sent, never ``unknown``."""
    for address in ("ana@example.com", "amara@example.org"):  # first of a run, and behind
        server.script.closing_at_rcpt.add(address)
    sleeps: list[float] = []
    sender = transport(server.port, sleeps)
    results = sender.send_batch(messages)
    sender.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
    assert len(sleeps) == 2
    assert server.script.connections == 3
    delivered = server.script.delivered()
    assert sorted(delivered) == sorted(m.to_address for m in messages)
    assert len(delivered) == len(set(delivered))


def test_pipelined_over_starttls(
    messages: list[OutgoingMessage], tmp_path: Path, monkeypatch
) -> None:
    context = trusted_server_context(tmp_path, monkeypatch, "SSL_CERT_FILE")
    with PipeliningServer(Script(tls=context)) as server:
        sender = SMTPTransport("localhost", server.port, "starttls")
        results = sender.send_batch(messages)
        sender.close()
        script = server.script
        assert [r.status for r in results] == [DeliveryStatus.SENT] * len(READERS)
        assert script.reads[:2] == [["EHLO"], ["STARTTLS"]]
        assert script.reads.count(["<content>", "MAIL", "RCPT", "DATA"]) == len(READERS) - 1
        assert_same_bytes(script, messages, as_smtplib_delivers(server, messages))


def test_a_message_that_cannot_be_made_leaves_the_one_before_whole(
    server: PipeliningServer, messages: list[OutgoingMessage]
) -> None:
    """The message after one in DATA fails as it is made (here its signing): the one in
    DATA still ends as itself, and the connection is fit for the next batch."""
    signer = Signer("news", "riverbend-clinicians.example", generate_key(1024))

    def sign(data: bytes) -> bytes:
        if b"<marcus@example.com>" in data:
            raise ValueError("cannot sign")
        return signer.sign(data)

    sender = transport(server.port, signer=sign)
    with pytest.raises(ValueError, match="cannot sign"):
        sender.send_batch(messages)
    script = server.script
    assert script.delivered() == ["ana@example.com", "dot@example.com", "zoe@example.com"]
    for _, _, raw, _ in script.received:
        assert b"mail FROM" not in raw and raw.count(b"\r\nMessage-ID: ") == 1
    rest = [m for m in messages if m.recipient.subscriber_id > 4]
    assert [r.status for r in sender.send_batch(rest)] == [DeliveryStatus.SENT] * len(rest)
    sender.close()
    assert script.connections == 1
