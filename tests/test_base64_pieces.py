"""A message's base64 made from its pieces, the campaign's own encoded once: always the
bytes of ``base64.b64encode`` of the whole, wherever each piece falls in a group of
three bytes, however short, and after the kept encodings were dropped."""

from __future__ import annotations

import base64
import random

import pytest

from newsletter.render.pieces import Base64Pieces, Fixed


def whole(pieces: list[bytes]) -> bytes:
    return base64.b64encode(b"".join(pieces))


def test_every_offset_and_every_short_piece() -> None:
    encoder = Base64Pieces()
    fixed = [Fixed(bytes(range(n, n + size))) for n, size in enumerate(range(0, 9))]
    for lead in range(0, 7):  # the reader's bytes before: every offset, none included
        for piece in fixed:
            for tail in (b"", b"x", b"yz", b"\x00\xff\x80"):
                pieces = [b"\xfe" * lead, piece, tail, piece, b"q" * lead]
                assert b"".join(encoder.encode(pieces)) == whole(pieces)


def test_random_messages_with_recurring_campaign_pieces() -> None:
    rng = random.Random(24)
    campaign = [Fixed(rng.randbytes(rng.randrange(0, 300))) for _ in range(12)]
    encoder = Base64Pieces()
    for _ in range(400):
        pieces: list[bytes] = []
        for piece in campaign:
            pieces.append(rng.randbytes(rng.randrange(0, 7)))  # a reader's value
            pieces.append(piece)
        assert b"".join(encoder.encode(pieces)) == whole(pieces)


def test_a_plain_bytes_piece_equal_to_a_kept_one_is_encoded_as_itself() -> None:
    encoder = Base64Pieces()
    kept = Fixed(b"abcdefgh")
    assert b"".join(encoder.encode([b"1", kept])) == whole([b"1", kept])
    other = b"zzzzzzzz"  # not Fixed: never taken from what was kept
    assert b"".join(encoder.encode([b"1", other])) == whole([b"1", other])


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_more_pieces_than_are_kept(keep: int) -> None:
    rng = random.Random(keep)
    encoder = Base64Pieces(keep=keep)
    campaign = [Fixed(rng.randbytes(50 + n)) for n in range(9)]
    for _ in range(30):
        pieces = [p for piece in campaign for p in (rng.randbytes(rng.randrange(3)), piece)]
        assert b"".join(encoder.encode(pieces)) == whole(pieces)
    assert len(encoder._made) <= keep


def test_nothing_gives_nothing() -> None:
    assert Base64Pieces().encode([]) == []
    assert b"".join(Base64Pieces().encode([b"", Fixed(b"")])) == b""
