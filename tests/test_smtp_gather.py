"""A message's content written as its pieces (``sendmsg``), over real sockets: what
arrives is the pieces joined, however the kernel splits the writes."""

from __future__ import annotations

import socket
import threading
import time

from newsletter.delivery.base import send_gathered


def _received(pieces: list[bytes], slow: bool) -> bytes:
    """What the other end of a socket pair reads after ``send_gathered(pieces)``."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # partial writes
    ours.settimeout(30)  # as smtplib's sockets: sendmsg may send part and return
    got: list[bytes] = []

    def read() -> None:
        while chunk := theirs.recv(1000):
            got.append(chunk)
            if slow:
                time.sleep(0.0005)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        send_gathered(ours, pieces)
    finally:
        ours.close()
        reader.join()
        theirs.close()
    return b"".join(got)


def test_many_small_pieces_arrive_whole_and_in_order() -> None:
    pieces = [f"line {i}\r\n".encode() for i in range(3000)]  # more than one sendmsg takes
    pieces[10:10] = [b"", b""]  # empty pieces are skipped
    assert _received(pieces, slow=False) == b"".join(pieces)


def test_large_pieces_split_by_the_kernel_arrive_whole() -> None:
    pieces = [bytes([65 + i % 26]) * (70_000 + i) for i in range(12)] + [b".\r\n"]
    assert _received(pieces, slow=True) == b"".join(pieces)


def test_the_callers_pieces_are_left_as_they_were() -> None:
    pieces = [b"a" * 50_000, b"b" * 50_000, b"c"]
    before = list(pieces)
    _received(pieces, slow=True)
    assert pieces == before
