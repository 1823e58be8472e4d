"""Subscriber CSV files -> validated Subscriber records."""

from __future__ import annotations

import csv
import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from .addresses import Carrier, wire_form
from .errors import InputError
from .models import Subscriber, SubscriberStatus

KNOWN_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "tags",
    "status",
    "subscribed_at",
    "consent_source",
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
}


@dataclass
class Rejected:
    line: int
    value: str
    reason: str


@dataclass
class ParsedFile:
    """Valid subscribers (a lazy stream) and, once it is drained, the rejected rows."""

    columns: dict[str, str]
    rows: Iterator[Subscriber]
    rejected: list[Rejected] = field(default_factory=list)


def _canonical(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _unneutralise(value: str) -> str:
    """Undo the quote `subscribers export` puts before a cell a spreadsheet would run."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


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
    """
    if any(c in address for c in "\r\n\x00"):
        raise EmailNotValidError("the address contains a line break")
    local, at, domain = address.rpartition("@")
    normal = None
    if at and len(local) <= 64 and len(address) <= 254 and _DOT_ATOM.fullmatch(local):
        known = _domain(domain)
        normal = f"{local}@{known}" if known is not None else None
    if normal is None:
        normal = validate_email(address, check_deliverability=False).normalized
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

    UTF-8 with or without BOM; comma or semicolon separated. ``default_status`` is
    the status of rows that give none (e.g. ``bounced`` for a "cleaned" export).
    ``carrier``: the configured transport's; an address it can never carry is
    rejected with the reason.
    """
    if not path.is_file():
        raise InputError(f"{path} does not exist.", "Check the file name.")
    lines = _lines(path)  # streamed: a file of a million rows is never held whole
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
        canonical = _ALIASES.get(_canonical(name))
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
    parsed = ParsedFile(columns=columns, rows=iter(()))
    parsed.rows = _rows(
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
    return parsed


def _lines(path: Path) -> Iterator[str]:
    """The file's lines as text, checked as UTF-8 (a BOM is dropped) one line at a time."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if b"\x00" in raw:
                raise InputError(
                    f"{path} contains NUL bytes (line {number}); it is not a CSV text file."
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(
                    f"{path} is not UTF-8 text (line {number} has a byte that is not UTF-8).",
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
    rejected: list[Rejected],
    default_status: str = "active",
    carrier: Carrier | None = None,
) -> Iterator[Subscriber]:
    width = len(header)
    while True:
        line = reader.line_num + 1  # type: ignore[attr-defined]  # where this row starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(
                f"{path}, line {reader.line_num}: the CSV is malformed: {exc}.",  # type: ignore[attr-defined]
                "Check the quoting on that line; nothing was imported.",
            ) from None
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width and any(c.strip() for c in row[width:]):
            rejected.append(
                Rejected(
                    line,
                    row[index["email"]] if len(row) > index["email"] else "",
                    f"{len(row)} fields but the header has {width}",
                )
            )
            continue

        def cell(name: str, row: list[str] = row) -> str:
            i = index.get(name)
            return _unneutralise(row[i].strip()) if i is not None and i < len(row) else ""

        address = cell("email")
        try:
            email = validate_address(address)
        except EmailNotValidError as exc:
            rejected.append(Rejected(line, address, str(exc) if address else "no email address"))
            continue
        problem = carrier.problem(email) if carrier is not None else None
        if problem is not None:
            rejected.append(Rejected(line, address, problem))
            continue
        status_text = cell("status").lower() or default_status
        if cell("email_disabled").lower() in ("true", "yes", "1") and status_text == "active":
            status_text = "unsubscribed"  # they turned our emails off where they came from
        try:
            status = SubscriberStatus(status_text)
        except ValueError:
            rejected.append(
                Rejected(
                    line,
                    address,
                    f"unknown status {status_text!r} (use "
                    f"{', '.join(s.value for s in SubscriberStatus)})",
                )
            )
            continue
        # "a;b", "a|b", and Mailchimp's "a","b" (each tag quoted, comma-separated)
        raw_tags = cell("tags")
        separators = r"[;|,]" if raw_tags.startswith('"') else r"[;|]"
        tags = {t.strip().strip('"').strip().lower() for t in re.split(separators, raw_tags)}
        tags.discard("")
        tags.update(t.lower() for t in extra_tags)
        yield Subscriber(
            email=email,
            first_name=cell("first_name"),
            last_name=cell("last_name"),
            tags=tuple(sorted(tags)),
            status=status,
            subscribed_at=cell("subscribed_at") or None,
            consent_source=cell("consent_source") or None,
            attributes={
                name: _unneutralise(row[i].strip())
                for i, name in attributes.items()
                if i < len(row) and row[i].strip()
            },
        )
