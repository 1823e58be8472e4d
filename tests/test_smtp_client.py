"""The SMTP client reads replies as smtplib does, over a real socket: the same codes
and texts for one-line, multi-line and unreadable replies, and a lost connection (or a
line longer than smtplib takes) as ``Dropped``, the connection closed."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator

import pytest

from loop_server import LoopServer
from newsletter.delivery.smtp_client import Dropped, SMTPClient

REPLIES = [
    b"250 OK\r\n",
    b"250-first\r\n250-second line\r\n250 last\r\n",
    b"354  go ahead  \r\n",
    b"550 5.1.1 <nobody@example.com>: no such mailbox\r\n",
    b"abc not a code\r\n",
    b"421\r\n",
    b"250-only the first part\n250 with a bare LF\r\n",
]


class RawServer(LoopServer):
    """Greets, then sends ``replies`` once a line comes in, then closes."""

    def __init__(self, replies: bytes) -> None:
        super().__init__()
        self.replies = replies

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        await reader.readline()
        writer.write(self.replies)
        await writer.drain()
        writer.close()


@pytest.fixture
def replies() -> Iterator[bytes]:
    yield b"".join(REPLIES)


def _read_all(port: int, read: str) -> list[tuple[int, bytes]]:
    conn = smtplib.SMTP("127.0.0.1", port)  # reads the greeting with smtplib
    client = SMTPClient(conn)
    client.write(b"noop\r\n")
    got = []
    for _ in REPLIES:
        got.append(client.reply() if read == "ours" else conn.getreply())
    conn.close()
    return got


def test_replies_are_read_as_smtplib_reads_them(replies: bytes) -> None:
    with RawServer(replies) as ours, RawServer(replies) as theirs:
        assert _read_all(ours.port, "ours") == _read_all(theirs.port, "smtplib")


@pytest.mark.parametrize(
    "replies", [b"250 OK\r\n", b"250 OK\r\n250-" + b"x" * 9000 + b"\r\n"], ids=["closed", "long"]
)
def test_a_lost_line_or_an_overlong_one_is_dropped_and_closed(replies: bytes) -> None:
    with RawServer(replies) as server:
        client = SMTPClient(smtplib.SMTP("127.0.0.1", server.port))
        client.write(b"noop\r\n")
        assert client.reply() == (250, b"OK")
        with pytest.raises(Dropped):
            client.reply()
        assert not client.open
