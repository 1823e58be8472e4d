"""Header lines: display names encoded (RFC 2047), addresses never, lines folded (RFC 5322).

- A display name that is plain ASCII words goes as it is (``Renee Castillo``);
  ASCII that needs quoting as a quoted-string with ``\\`` escapes
  (``"Bell, PsyD"``); anything else, or anything containing ``=?``, as UTF-8
  encoded-words, so no client decodes text that only looks like one.
- The addr-spec, and List-Id's ``<label.domain>``, are never inside an
  encoded-word.
- Each encoded-word is at most 75 characters and holds whole characters.
  Adjacent encoded-words are avoided where the name allows: ASCII words stay
  plain between them, and a run of non-ASCII words goes in one encoded-word
  when it fits. A longer run is split (at a space where there is one, the space
  kept inside the encoded-word): RFC 2047 readers join the pieces as they
  should; Python's ``email`` before gh-128110 shows a space at each split.
- Lines fold at 78 characters where there is whitespace to fold at, and are
  never over 998 octets. Control characters (CR, LF, NUL, ...) are turned into
  spaces before anything else, so no value can start a header of its own.
"""

from __future__ import annotations

import re
from base64 import b64encode

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322 2.1.1: should
MAX_WORD = 75  # RFC 2047 2: an encoded-word, delimiters included
_OVERHEAD = len("=?utf-8?q?") + len("?=")

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ATOMS = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")  # words a phrase can carry unquoted
# RFC 2047 5(3): what a Q-encoded word in a phrase may keep as it is; the space is "_"
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE = [chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)]


def header_safe(value: str) -> str:
    """A value with every control character (CR and LF among them) turned into a space."""
    return _CONTROL.sub(" ", value).strip()


def clean_text(value: str) -> str:
    """``header_safe``, with runs of spaces made one (they cannot survive folding)."""
    value = header_safe(value)
    return _SPACES.sub(" ", value) if "  " in value else value


# -- encoded-words ------------------------------------------------------------------
def _q_char(char: str) -> str:
    return "".join(_Q_BYTE[b] for b in char.encode("utf-8"))


def encoded_words(text: str, first: int = MAX_WORD, limit: int = MAX_WORD) -> list[str]:
    """``text`` as UTF-8 encoded-words, Q or B (whichever is shorter; Q for ASCII).

    The first word is at most ``first`` characters, the others at most ``limit``
    (both capped at 75). A character is never split; a word ends after a space
    where there is one to end at.
    """
    data = text.encode("utf-8")
    q_pieces = [_q_char(c) for c in text]
    q_length = sum(map(len, q_pieces))
    b_length = -(-len(data) // 3) * 4
    if q_length <= b_length or text.isascii():  # base64 for ASCII reads as spam to filters
        return _pack(text, q_pieces, "q", first, limit)
    return _pack(text, [c.encode("utf-8") for c in text], "b", first, limit)


def _pack(text: str, pieces: list, encoding: str, first: int, limit: int) -> list[str]:
    """Split ``pieces`` (one per character) into encoded-words within the limits."""
    words: list[str] = []
    start = 0
    cap = min(first, MAX_WORD)
    while start < len(pieces):
        room = max(cap - _OVERHEAD, 4)
        end, size, last_space = start, 0, -1
        while end < len(pieces):
            grow = len(pieces[end])
            total = -(-(size + grow) // 3) * 4 if encoding == "b" else size + grow
            if total > room and end > start:
                break
            size += grow
            if text[end] == " ":
                last_space = end
            end += 1
        if end < len(pieces) and start < last_space < end - 1:
            end = last_space + 1  # end the word after a space: the next starts a word
        chunk = pieces[start:end]
        payload = "".join(chunk) if encoding == "q" else b64encode(b"".join(chunk)).decode()
        words.append(f"=?utf-8?{encoding}?{payload}?=")
        start = end
        cap = min(limit, MAX_WORD)
    return words


# -- display names --------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def phrase_words(name: str) -> list[str]:
    """The display name as the words of an RFC 5322 phrase, to be joined by (folding) spaces.

    ``name`` must already be clean (``clean_text``). Runs of plain ASCII words go
    as atoms or one quoted-string; runs of other words as encoded-words.
    """
    if not name:
        return []
    runs: list[tuple[bool, list[str]]] = []
    for word in name.split(" "):
        plain = (
            word.isascii()
            and "=?" not in word
            and len(word) + word.count('"') + word.count("\\") + 2 < MAX_LINE
        )
        if runs and runs[-1][0] == plain:
            runs[-1][1].append(word)
        else:
            runs.append((plain, [word]))
    words: list[str] = []
    for plain, run in runs:
        text = " ".join(run)
        if not plain:
            words += encoded_words(text)
        elif _ATOMS.fullmatch(text):
            words += run
        else:  # one quoted-string; a fold between its words is one space in the string
            words += _quote(text).split(" ")
    return words


# -- header lines -------------------------------------------------------------------
def _octets(token: str) -> int:
    return len(token) if token.isascii() else len(token.encode("utf-8"))


def fold(field: str, tokens: list[str], *, structured: bool = True) -> str:
    """``Field: token token ...`` with a fold before a token that would pass 78 characters.

    In a structured header (addresses, List-Id) the first token may go on the next
    line; an unstructured one (Subject) keeps it on the first, where a fold would
    become part of the text.
    """
    line = f"{field}:"
    lines: list[str] = []
    length = len(line)
    for token in tokens:
        size = _octets(token)
        fits = length + 1 + size <= MAX_LINE
        if not fits and not lines and length == len(field) + 1:
            # the first token: fold after the colon only where that helps and is harmless
            fits = not structured or 1 + size > MAX_LINE
        if fits:
            line += " " + token
            length += 1 + size
        else:
            lines.append(line)
            line, length = " " + token, 1 + size
    lines.append(line)
    return CRLF.join(lines)


def address_header(field: str, name: str, address: str) -> str:
    """``To: Name <address>`` folded; ``address`` as it is sent (never encoded)."""
    name = clean_text(name)
    if not name:
        return f"{field}: {address}"
    if (
        len(field) + len(name) + len(address) < MAX_LINE - 4
        and name.isascii()
        and address.isascii()
        and "=?" not in name
        and _ATOMS.fullmatch(name)
    ):
        return f"{field}: {name} <{address}>"  # the common case, kept cheap
    return fold(field, [*phrase_words(name), f"<{address}>"])


def address_value(name: str, address: str) -> str:
    """``Name <address>`` as one unfolded header value (display name encoded)."""
    name = clean_text(name)
    if not name:
        return address
    return " ".join((*phrase_words(name), f"<{address}>"))


def display_value(name: str, address: str) -> str:
    """``"Name" <address>`` with the name as typed (Unicode), for APIs that take text."""
    name = clean_text(name)
    if not name:
        return address
    return f"{_quote(name)} <{address}>"


def split_list_id(value: str) -> tuple[str, str]:
    """(name, ``label.domain``) of a List-Id value ``Name <label.domain>``."""
    value = clean_text(value)
    name, bracket, rest = value.rpartition("<")
    if not bracket:
        return "", value.strip("<> ")
    return name.strip(), rest.rstrip("> ").strip()


def list_id_header(value: str) -> str:
    """``List-Id: phrase <label.domain>``: the phrase encoded like a display name."""
    name, list_id = split_list_id(value)
    return fold("List-Id", [*phrase_words(name), f"<{list_id}>"])


def list_id_value(value: str) -> str:
    """The List-Id as one unfolded ASCII value, for APIs that take headers as a mapping."""
    name, list_id = split_list_id(value)
    return " ".join((*phrase_words(name), f"<{list_id}>"))


def unstructured_header(field: str, text: str) -> str:
    """``Subject: text``: as typed when plain ASCII, else encoded-words; folded."""
    text = clean_text(text)
    if text.isascii() and "=?" not in text:
        if len(field) + len(text) + 2 <= MAX_LINE:
            return f"{field}: {text}"  # nothing to fold or encode: the common case
        words = text.split(" ")
        if all(len(w) < MAX_LINE for w in words):
            return fold(field, words, structured=False)
    if not text:
        return f"{field}: "
    first = MAX_LINE - len(field) - 2
    return fold(field, encoded_words(text, first), structured=False)
