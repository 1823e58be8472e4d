"""A message as the pieces it is joined from, and its base64 made from them.

Most of a message's bytes are the campaign's own, the same in every message of a
variant: the fixed headers, the MIME parts' heads and the literal text between the
reader's values. Those pieces are ``Fixed``. A transport that must send the whole
message base64-encoded (SES's ``Raw`` content) encodes each ``Fixed`` piece once, for
each of the three places it can start at in a group of three bytes, and per message
only the reader's own pieces and the few bytes at each seam.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from functools import partial

_b64 = partial(binascii.b2a_base64, newline=False)  # what base64.b64encode calls


class Fixed(bytes):
    """Bytes of the campaign's own, in every message of a variant, made once and kept
    as long as the campaign's factory: a writer may keep what it makes of them."""

    __slots__ = ()


# a piece's encoding when ``carry`` bytes (0, 1 or 2) of the message before it are not
# encoded yet: how many of its first bytes complete that group, the base64 of the
# whole groups after them, and the bytes left over (fewer than three)
_Seam = tuple[int, bytes, bytes]


def _seams(piece: bytes) -> tuple[_Seam, _Seam, _Seam]:
    made = []
    for carry in (0, 1, 2):
        take = (3 - carry) % 3
        rest = len(piece) - take
        end = take + rest - rest % 3
        made.append((take, _b64(piece[take:end]), piece[end:]))
    return made[0], made[1], made[2]


class Base64Pieces:
    """``base64.b64encode(b"".join(pieces))``, as a list of pieces, for messages whose
    ``Fixed`` pieces recur: each is encoded once and kept (by identity, with the piece
    itself, so that its id cannot be reused while kept). At most ``keep`` pieces are
    kept: a transport that serves many campaigns starts again from none."""

    def __init__(self, keep: int = 4096) -> None:
        self._keep = keep
        self._made: dict[int, tuple[bytes, tuple[_Seam, _Seam, _Seam]]] = {}

    def _of(self, piece: bytes) -> tuple[_Seam, _Seam, _Seam]:
        found = self._made.get(id(piece))
        if found is not None and found[0] is piece:
            return found[1]
        seams = _seams(piece)
        if len(self._made) >= self._keep:
            self._made = {}
        self._made[id(piece)] = (piece, seams)
        return seams

    def encode(self, pieces: Iterable[bytes]) -> list[bytes]:
        out: list[bytes] = []
        carry = b""
        for piece in pieces:
            if type(piece) is Fixed and len(piece) >= 3:
                take, middle, left = self._of(piece)[len(carry)]
                if carry:
                    out.append(_b64(carry + piece[:take]))
                out.append(middle)
                carry = left
                continue
            data = carry + piece if carry else piece
            end = len(data) - len(data) % 3
            if end:
                out.append(_b64(data[:end]))
            carry = data[end:]
        if carry:
            out.append(_b64(carry))
        return out
