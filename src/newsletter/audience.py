"""Subscriber CSV files -> validated Subscriber records."""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from email_validator import EmailNotValidError, validate_email

from .addresses import Carrier, wire_form
from .errors import InputError
from .files import PRIVATE_FILE, atomic_file
from .models import Subscriber, SubscriberRecord, SubscriberStatus
from .zones import zone

KNOWN_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "tags",
    "status",
    "subscribed_at",
    "consent_source",
    "timezone",
)

# Header spellings used by common exports, after lowercasing and squeezing to a_b.
_ALIASES = {
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "e_mail_address": "email",
    "mail": "email",
    "emailaddress": "email",
    "e_mail_1_value": "email",  # Google Contacts
    "email_1_value": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "first": "first_name",
    "given_name": "first_name",
    "fname": "first_name",
    "name": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "last": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "lname": "last_name",
    "tags": "tags",
    "tag": "tags",
    "groups": "tags",
    "status": "status",
    "subscribed_at": "subscribed_at",
    "optin_time": "subscribed_at",
    "created": "subscribed_at",
    "created_at": "subscribed_at",  # Substack
    "email_disabled": "email_disabled",  # Substack: true when they turned emails off
    "consent_source": "consent_source",
    "source": "consent_source",
    "timezone": "timezone",
    "time_zone": "timezone",
    "tz": "timezone",
    # what people type in a German, French, Spanish, Italian or Dutch spreadsheet
    # (accents are folded first: "Prénom" -> prenom, "Adresse électronique" -> ...)
    "e_mail_adresse": "email",
    "email_adresse": "email",
    "mailadresse": "email",
    "courriel": "email",
    "adresse_e_mail": "email",
    "adresse_email": "email",
    "adresse_mail": "email",
    "adresse_electronique": "email",
    "correo": "email",
    "correo_electronico": "email",
    "vorname": "first_name",
    "prenom": "first_name",
    "nombre": "first_name",
    "nome": "first_name",
    "voornaam": "first_name",
    "nachname": "last_name",
    "familienname": "last_name",
    "nom": "last_name",
    "nom_de_famille": "last_name",
    "apellido": "last_name",
    "apellidos": "last_name",
    "cognome": "last_name",
    "achternaam": "last_name",
}


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row of a subscribers file that was not imported, and why."""

    line: int
    value: str
    reason: str


@dataclass(slots=True)  # mutable: rows is set once the header is read
class ParsedFile:
    """Valid subscribers (a lazy stream) and, once it is drained, the rejected rows.

    ``encoding`` names the file's encoding as people know it ("UTF-8",
    "windows-1252"); ``delimiter`` is "," or ";".
    """

    columns: dict[str, str]
    rows: Iterator[Subscriber]
    rejected: list[RejectedRow] = field(default_factory=list)
    encoding: str = "UTF-8"
    delimiter: str = ","
    # the same stream as tuples (what an import stores); ``rows`` is read from it, so a
    # caller drains one or the other
    records: Iterator[SubscriberRecord] = field(default_factory=lambda: iter(()))


def _canonical(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _known_column(header: str) -> str | None:
    """The known column a header names, if any; accents do not matter ("Prénom")."""
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", header) if not unicodedata.combining(c)
    )
    return _ALIASES.get(_canonical(header)) or _ALIASES.get(_canonical(folded))


def _unneutralise(value: str) -> str:
    """Undo the quote `subscribers export` puts before a cell a spreadsheet would run."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet will show, never run: a formula (=, +, -, @, tab, CR at
    the start) gets a quote before it, which an import takes off again."""
    if value is None:
        text = ""
    elif isinstance(value, list | tuple):
        text = ";".join(map(str, value))
    else:
        text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_subscribers(path: Path, subscribers: Iterable[Subscriber]) -> int:
    """Write ``subscribers`` to a CSV file that imports back; how many were written.

    The known columns come first, then every attribute any subscriber has. The file is
    written beside ``path`` and renamed into place, so a failed export leaves nothing.
    """
    if not path.name or path.is_dir():
        raise InputError(
            f"'{path}' is not a file to export to: it has no file name.",
            "Give the path of the CSV file to write, e.g. subscribers-export.csv.",
        )
    if not path.parent.is_dir():
        raise InputError(
            f"Cannot write {path}: the folder {path.parent} does not exist.",
            "Create the folder first, or give another path.",
        )
    columns = list(KNOWN_COLUMNS)
    records = []
    for sub in subscribers:
        records.append(
            {
                "email": sub.email,
                "first_name": sub.first_name,
                "last_name": sub.last_name,
                "tags": ";".join(sub.tags),
                "status": str(sub.status),
                "subscribed_at": sub.subscribed_at,
                "consent_source": sub.consent_source,
                "timezone": sub.timezone,
                **sub.attributes,
            }
        )
        columns += [k for k in sub.attributes if k not in columns]
    # the whole list: the owner's alone (0600), whatever the umask, like the database
    with (
        atomic_file(path, PRIVATE_FILE) as raw,
        io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh,
    ):
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow([csv_cell(record.get(c)) for c in columns])
    return len(records)


_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The normalised domain if email-validator accepts it, else None (cached: a list has
    few domains and many addresses)."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def validate_address(address: str) -> str:
    """The normalised address, or EmailNotValidError. No DNS look-ups.

    The common case (a plain ASCII local part at a domain already seen) is checked
    here; everything else goes through email-validator in full. The length limits
    hold for the form the address is sent in (the domain in A-labels, UTF-8 octets).
    Whatever the address, the answer is ``checked_in_full``'s (tests/test_import_addresses.py
    compares the two).
    """
    if "\r" in address or "\n" in address or "\x00" in address:
        raise EmailNotValidError("the address contains a line break")
    local, at, domain = address.rpartition("@")
    if at and len(local) <= 64 and len(address) <= 254 and _DOT_ATOM.fullmatch(local):
        known = _domain(domain)
        if known is not None and known.isascii():
            normal = f"{local}@{known}"
            if len(normal) <= 254:
                return normal  # what wire_form passes as it is: ASCII, within both limits
    # not the common case (an IDN domain too: email-validator also limits its UTF-8 length)
    return _sendable(validate_email(address, check_deliverability=False).normalized)


def checked_in_full(address: str) -> str:
    """``validate_address`` without its shortcut: every address through email-validator."""
    if "\r" in address or "\n" in address or "\x00" in address:
        raise EmailNotValidError("the address contains a line break")
    return _sendable(validate_email(address, check_deliverability=False).normalized)


def _sendable(normal: str) -> str:
    """``normal`` if its wire form keeps within RFC 5321's limits, else EmailNotValidError."""
    try:
        wire_form(normal)
    except ValueError as exc:
        reason = str(exc)
        raise EmailNotValidError(f"{reason[:1].upper()}{reason[1:]}.") from None
    return normal


def read_subscribers(
    path: Path,
    extra_tags: tuple[str, ...] = (),
    default_status: str = "active",
    carrier: Carrier | None = None,
) -> ParsedFile:
    """Parse a subscribers CSV: header row required, ``email`` the only required column.

    UTF-8 with or without BOM, or the legacy encoding a spreadsheet wrote (detected,
    see ``detect_encoding``); comma or semicolon separated. ``default_status`` is
    the status of rows that give none (e.g. ``bounced`` for a "cleaned" export).
    ``carrier``: the configured transport's; an address it can never carry is
    rejected with the reason.
    """
    if not path.is_file():
        raise InputError(f"{path} does not exist.", "Check the file name.")
    encoding = detect_encoding(path)
    lines = _lines(path, encoding)  # streamed: a file of a million rows is never held whole
    first_line = next(lines, "")
    if not first_line.strip():
        raise InputError(
            f"{path} is empty or has no header row.",
            "The first line must name the columns, e.g. email,first_name.",
        )
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(itertools.chain([first_line], lines), delimiter=delimiter)
    header = next(reader)
    columns: dict[str, str] = {}
    attributes: dict[int, str] = {}
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        canonical = _known_column(name)
        if canonical and canonical not in index:
            index[canonical] = i
            columns[name] = canonical
        elif name.strip():
            attributes[i] = _canonical(name)
            columns[name] = f"attribute {_canonical(name)}"
    if "email" not in index:
        raise InputError(
            f"{path} has no email column (columns found: {', '.join(h.strip() for h in header)}).",
            "Name the column with the addresses 'email' (or 'Email Address', 'E-mail'); "
            f"known columns are {', '.join(KNOWN_COLUMNS)}.",
        )
    parsed = ParsedFile(columns=columns, rows=iter(()), encoding=encoding.name, delimiter=delimiter)
    parsed.records = _rows(
        path,
        reader,
        header,
        index,
        attributes,
        extra_tags,
        parsed.rejected,
        default_status,
        carrier,
    )
    parsed.rows = map(SubscriberRecord.subscriber, parsed.records)
    return parsed


# -- encodings -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TextEncoding:
    """How a subscribers file is decoded: Python's codec, and the name people know."""

    codec: str
    name: str


UTF8 = TextEncoding("utf-8", "UTF-8")

# Legacy encodings spreadsheets and mailing tools write, most likely first: ties in
# detection go to the earlier one (Excel's Western cp1252 before ISO-8859-1, which
# it extends with printable characters where ISO-8859-1 has control codes).
_LEGACY = {
    "cp1252": "windows-1252",
    "cp1250": "windows-1250",
    "cp1251": "windows-1251",
    "cp1253": "windows-1253",
    "cp1254": "windows-1254",
    "cp1257": "windows-1257",
    "cp1255": "windows-1255",
    "cp1256": "windows-1256",
    "cp1258": "windows-1258",
    "cp874": "windows-874",
    "mac_roman": "Mac OS Roman",
    "cp850": "DOS code page 850",
    "cp437": "DOS code page 437",
    "koi8_r": "KOI8-R",
    "koi8_u": "KOI8-U",
    "cp932": "Shift_JIS (windows-31j)",
    "shift_jis": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "gb18030": "GB18030",
    "gbk": "GBK",
    "big5": "Big5",
    "cp949": "windows-949 (Korean)",
    "euc_kr": "EUC-KR",
    "iso8859_2": "ISO-8859-2",
    "iso8859_5": "ISO-8859-5",
    "iso8859_7": "ISO-8859-7",
    "iso8859_9": "ISO-8859-9",
    "iso8859_15": "ISO-8859-15",
    "latin_1": "ISO-8859-1",
}
_MULTI_BYTE = {"cp932", "shift_jis", "euc_jp", "gb18030", "gbk", "big5", "cp949", "euc_kr"}
_CHUNK = 1 << 20  # the UTF-8 check reads this much at a time
_SAMPLE = 64 * 1024  # at most this much of the non-ASCII lines goes to detection
_ASCII = bytes(range(128))
_SYMBOLS_IN_WORDS = set("„“”‘’‚«»‹›€–—…·•°¡¿")  # marks people do type next to words


def detect_encoding(path: Path) -> TextEncoding:
    """UTF-8 when every byte of the file is UTF-8 (a BOM or not); otherwise the legacy
    encoding it was written in, detected (charset-normalizer) from its non-ASCII lines.

    The file is read in chunks, never whole. A file that is neither (binary data,
    NUL bytes, UTF-16) is refused with an InputError that says how to export it.
    """
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) or head.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        ):
            raise InputError(
                f"{path} is UTF-16 or UTF-32 text (what Excel calls 'Unicode Text').",
                "Save it as 'CSV UTF-8 (Comma delimited)' and import that; nothing was imported.",
            )
        fh.seek(0)
        bad_line = _first_line_not_utf8(fh, path)
        if bad_line is None:
            return UTF8
        fh.seek(0)
        sample, high_bytes = _non_ascii_sample(fh, path)
    if _mostly_utf8(sample):
        raise InputError(
            f"{path} is UTF-8 text except for line {bad_line}, which has a byte that is "
            "not UTF-8 (text pasted from a file in another encoding?).",
            "Fix that line, or export the file again as 'CSV UTF-8'; nothing was imported.",
        )
    found = _legacy_encoding(sample, high_bytes)
    if found is None:
        raise InputError(
            f"{path} is not UTF-8 text (line {bad_line} has a byte that is not UTF-8), "
            "nor text in an encoding a spreadsheet writes; it may not be a CSV file at all.",
            "Export the file as 'CSV UTF-8' from your spreadsheet or mailing tool; "
            "nothing was imported.",
        )
    return found


def _first_line_not_utf8(fh: BinaryIO, path: Path) -> int | None:
    """The number of the first line with a byte that is not UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    while chunk := fh.read(_CHUNK):
        _refuse_nul(chunk, lines_before, path)
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return lines_before + chunk[: max(exc.start, 0)].count(b"\n") + 1
        lines_before += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return lines_before + 1  # cut off in the middle of a character at the end
    return None


def _non_ascii_sample(fh: BinaryIO, path: Path) -> tuple[bytes, set[int]]:
    """The header and the first lines that are not ASCII (up to _SAMPLE bytes): what
    tells encodings apart; and every non-ASCII byte value in the whole file."""
    sample = bytearray(fh.readline()[:_SAMPLE])
    high: set[int] = set(sample.translate(None, _ASCII))
    lines_before = sample.count(b"\n")
    while chunk := fh.read(_CHUNK):
        _refuse_nul(chunk, lines_before, path)
        lines_before += chunk.count(b"\n")
        if chunk.isascii():
            continue
        high.update(chunk.translate(None, _ASCII))
        if len(sample) < _SAMPLE:
            # lines whole: a character of a multi-byte encoding is never cut
            rest = fh.readline()
            lines_before += rest.count(b"\n")
            high.update(rest.translate(None, _ASCII))
            for line in (chunk + rest).splitlines(keepends=True):
                if not line.isascii() and len(sample) < _SAMPLE:
                    sample += line
    return bytes(sample), high


def _refuse_nul(chunk: bytes, lines_before: int, path: Path) -> None:
    at = chunk.find(b"\x00")
    if at >= 0:
        line = lines_before + chunk[:at].count(b"\n") + 1
        raise InputError(
            f"{path} contains NUL bytes (line {line}); it is not a CSV text file.",
            "Export the subscribers as CSV from your spreadsheet or mailing tool; "
            "nothing was imported.",
        )


_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _mostly_utf8(sample: bytes) -> bool:
    """True when most non-ASCII bytes form UTF-8 characters: a UTF-8 file with a stray
    byte, which read as a legacy encoding would turn every 'é' into 'Ã©'."""
    in_sequences = sum(len(m) for m in _UTF8_SEQUENCE.findall(sample))
    return in_sequences * 2 > len(sample.translate(None, _ASCII))


def _legacy_encoding(sample: bytes, high_bytes: set[int]) -> TextEncoding | None:
    """The legacy encoding that reads ``sample`` most plausibly, or None.

    charset-normalizer proposes encodings (and which others would read the sample
    the same); of those, the one whose text has the fewest oddities wins (symbols
    inside words, words mixing alphabets or made mostly of accented letters), then
    the one charset-normalizer finds least chaotic and most coherent, then the one
    earlier in _LEGACY.
    """
    import charset_normalizer

    ranked = []
    for match in charset_normalizer.from_bytes(sample, cp_isolation=list(_LEGACY)):
        same_text = [c for c in match.could_be_from_charset if c in _LEGACY]
        if not same_text:
            continue
        codec = min(same_text, key=list(_LEGACY).index)
        if codec not in _MULTI_BYTE and not _decodes(bytes(sorted(high_bytes)), codec):
            continue  # a byte further on that this encoding does not have
        text = sample.decode(codec)
        key = (
            _oddities(text),
            round(match.chaos, 2),  # finer differences are noise on a small sample
            -round(match.coherence, 3),
            list(_LEGACY).index(codec),
        )
        ranked.append((key, codec))
    if not ranked:
        return None
    codec = min(ranked)[1]
    return TextEncoding(codec, _LEGACY[codec])


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


_WORD = re.compile(r"[^\s,;\"'@.<>()\[\]/\\|:=+\-_0-9]+")


def _oddities(text: str) -> int:
    """How many things in ``text`` look like a wrong decoding: a symbol inside a word
    ('W¹sowska'), a word mixing alphabets, a word made mostly of accented letters
    ('Èâàí' is Russian read as windows-1252), a control character."""
    odd = 0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        odd += sum(1 for c in word if _odd_character(c))
        letters = [c for c in word if c.isalpha()]
        scripts = {unicodedata.name(c, "?").split()[0] for c in letters}
        if len(scripts & {"LATIN", "CYRILLIC", "GREEK"}) > 1:
            odd += 1
        accented = [c for c in letters if not c.isascii() and "LATIN" in unicodedata.name(c, "")]
        if len(letters) >= 3 and len(accented) * 3 > len(letters) * 2:
            odd += 1
    return odd


def _odd_character(c: str) -> bool:
    if unicodedata.category(c) in ("Cc", "Co", "Cn"):
        return True
    if "\u02b0" <= c <= "\u02ff":  # a spacing accent: 'ˇHola' is '¡Hola' read as cp1250
        return True
    return not c.isascii() and not c.isalpha() and c not in _SYMBOLS_IN_WORDS


def _lines(path: Path, encoding: TextEncoding = UTF8) -> Iterator[str]:
    """The file's lines as text (a UTF-8 BOM is dropped), decoded one line at a time."""
    if encoding.codec == "utf-8":
        yield from _utf8_lines(path)
        return
    codec = encoding.codec
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if b"\x00" in raw:
                raise InputError(
                    f"{path} contains NUL bytes (line {number}); it is not a CSV text file."
                )
            try:
                yield raw.decode(codec)
            except UnicodeDecodeError:
                raise InputError(
                    f"{path} is not {encoding.name} text (line {number} has a byte that is "
                    f"not {encoding.name}).",
                    "Export the file as 'CSV UTF-8' from your spreadsheet or mailing tool; "
                    "nothing was imported.",
                ) from None


def _utf8_lines(path: Path) -> Iterator[str]:
    """``_lines`` of a UTF-8 file, decoded a block at a time; lines end at "\n" only, as
    when they are split as bytes."""
    with open(path, encoding="utf-8-sig", newline="\n") as fh:
        number = 0
        try:
            for number, line in enumerate(fh, start=1):
                if "\x00" in line:
                    raise InputError(
                        f"{path} contains NUL bytes (line {number}); it is not a CSV text file."
                    )
                yield line
        except UnicodeDecodeError:
            with open(path, "rb") as raw:
                bad = _first_line_not_utf8(raw, path) or number + 1
            raise InputError(
                f"{path} is not UTF-8 text (line {bad} has a byte that is not UTF-8).",
                "Export the file as 'CSV UTF-8' from your spreadsheet or mailing tool; "
                "nothing was imported.",
            ) from None


def _rows(
    path: Path,
    reader: Iterator[list[str]],
    header: list[str],
    index: dict[str, int],
    attributes: dict[int, str],
    extra_tags: tuple[str, ...],
    rejected: list[RejectedRow],
    default_status: str = "active",
    carrier: Carrier | None = None,
) -> Iterator[SubscriberRecord]:
    """The file's subscribers, read lazily; blank rows are skipped and each row that
    cannot be imported goes to ``rejected`` with the reason."""
    subscriber_of = _RowReader(
        len(header),
        index,
        attributes,
        frozenset(t.lower() for t in extra_tags),
        default_status,
        carrier,
    ).read
    line = reader.line_num + 1  # type: ignore[attr-defined]  # where the next row starts
    try:
        for row in reader:
            if "".join(row).strip():  # not a blank row (every cell empty or spaces)
                found = subscriber_of(line, row)
                if type(found) is RejectedRow:
                    rejected.append(found)
                else:
                    yield found
            line = reader.line_num + 1  # type: ignore[attr-defined]
    except csv.Error as exc:
        raise InputError(
            f"{path}, line {reader.line_num}: the CSV is malformed: {exc}.",  # type: ignore[attr-defined]
            "Check the quoting on that line; nothing was imported.",
        ) from None


def zone_key(name: str) -> str | None:
    """A time zone as stored: its IANA name as zoneinfo spells it (None for none)."""
    found = zone(name) if name else None
    return found.key if found is not None else None


_EMAIL_DISABLED = ("true", "yes", "1")
# Tags are written "a;b", "a|b", or as Mailchimp does, "a","b" (each quoted, comma-separated).
_TAG_SEPARATORS = re.compile(r"[;|]")
_QUOTED_TAG_SEPARATORS = re.compile(r"[;|,]")


@dataclass(frozen=True, slots=True)
class _RowReader:
    """How one row of a subscribers file becomes a SubscriberRecord, or the reason it
    does not: where each column is, and what the import adds (tags, the status of rows
    that give none, the carrier whose limits an address must fit)."""

    width: int  # the header's
    index: dict[str, int]  # known column -> its position
    attributes: dict[int, str]  # position -> attribute name
    extra_tags: frozenset[str]
    default_status: str
    carrier: Carrier | None
    # a row's cells of _CELLS, in that order (an absent column reads the empty cell
    # put after the row's own)
    known: Callable[[list[str]], tuple[str, ...]] = field(init=False)
    # the tags a cell of the tags column gives: lists repeat a few combinations
    tag_lists: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)
    # the status of a row that gives no status, time zone or email_disabled (None: the
    # default is no status, and such a row is refused)
    plain_status: SubscriberStatus | None = field(init=False)

    def __post_init__(self) -> None:
        positions = [self.index.get(name, -1) for name in _CELLS]
        object.__setattr__(self, "known", operator.itemgetter(*positions))
        object.__setattr__(self, "plain_status", _STATUSES.get(self.default_status))

    def read(self, line: int, row: list[str]) -> SubscriberRecord | RejectedRow:
        if len(row) != self.width:
            refused = self.fit(line, row)
            if refused is not None:
                return refused
        row.append("")
        cells = [*map(str.strip, self.known(row))]
        if "'" in "".join(cells):
            cells = [*map(_unneutralise, cells)]
        address, first_name, last_name, tags, given, subscribed_at, consent_source, tz, off = cells
        try:
            email = validate_address(address)
        except EmailNotValidError as exc:
            return RejectedRow(line, address, str(exc) if address else "no email address")
        status = self.plain_status
        # what status() answers, without asking, for a row that gives no status, time
        # zone or email_disabled (their cells joined are empty), with an ASCII address
        if status is None or given + tz + off or not email.isascii():
            status = self.status(line, address, email, cells)
            if isinstance(status, RejectedRow):
                return status
        found = self.tag_lists.get(tags)
        return _record(
            (
                email,
                first_name,
                last_name,
                self.tags(tags) if found is None else found,
                status,
                subscribed_at or None,
                consent_source or None,
                self.attribute_values(row) if self.attributes else {},
                zone_key(tz) if tz else None,
            )
        )

    def fit(self, line: int, row: list[str]) -> RejectedRow | None:
        """A row of more cells than the header has is refused unless the extra ones are
        empty; a shorter one is made as long with empty cells."""
        width = self.width
        if len(row) > width and any(c.strip() for c in row[width:]):
            at = self.index["email"]
            return RejectedRow(
                line,
                row[at] if len(row) > at else "",
                f"{len(row)} fields but the header has {width}",
            )
        if len(row) < width:
            row.extend([""] * (width - len(row)))
        return None

    def status(
        self, line: int, address: str, email: str, cells: list[str]
    ) -> SubscriberStatus | RejectedRow:
        """The row's status, or why the row is refused: an address the carrier cannot
        take, a status or a time zone that does not exist."""
        # an ASCII address that validate_address passed fits every carrier's limits
        if self.carrier is not None and not email.isascii():
            problem = self.carrier.problem(email)
            if problem is not None:
                return RejectedRow(line, address, problem)
        text = cells[4].lower() or self.default_status
        if text == "active" and cells[8].lower() in _EMAIL_DISABLED:
            text = "unsubscribed"  # they turned our emails off where they came from
        status = _STATUSES.get(text)
        if status is None:
            return RejectedRow(
                line,
                address,
                f"unknown status {text!r} (use {', '.join(s.value for s in SubscriberStatus)})",
            )
        timezone = cells[7]
        if timezone and zone(timezone) is None:
            return RejectedRow(
                line,
                address,
                f"unknown time zone {timezone!r} in the timezone column (use an IANA name "
                "such as Europe/Berlin or America/New_York, or leave it empty)",
            )
        return status

    def tags(self, raw: str) -> tuple[str, ...]:
        found = self.tag_lists.get(raw)
        if found is None:
            separators = _QUOTED_TAG_SEPARATORS if raw.startswith('"') else _TAG_SEPARATORS
            tags = {t.strip().strip('"').strip().lower() for t in separators.split(raw)}
            tags.discard("")
            found = tuple(sorted(tags | self.extra_tags))
            if len(self.tag_lists) < _TAG_LISTS_KEPT:
                self.tag_lists[raw] = found
        return found

    def attribute_values(self, row: list[str]) -> dict[str, str]:
        return {
            name: _unneutralise(row[i].strip())
            for i, name in self.attributes.items()
            if row[i].strip()
        }


# the cells _RowReader.read takes from a row, in this order
_CELLS = (*KNOWN_COLUMNS, "email_disabled")
_STATUSES = {s.value: s for s in SubscriberStatus}
# SubscriberRecord from a tuple of its fields, without a Python-level __new__ per row
_record: Callable[[tuple[object, ...]], SubscriberRecord] = functools.partial(
    tuple.__new__, SubscriberRecord
)
_TAG_LISTS_KEPT = 4096
