"""Provider events: each provider's records normalised into ``Event``s, the raw kept.

A webhook body or an export file is JSON read with limits (``load_json``); each record
of it is read by its provider's reader into events and the record's replay keys (the
provider's own id for it). A record whose fields are not of the types the provider
sends is *malformed*: it gives no events and says why, and the others are still read.
Each provider's reader sits in its module (``providers/<name>.py``) with the tables that
map its documented event and bounce types to a kind, the reason beside each row; they
read fields with the helpers here. A type no table names is recorded as ``unknown``,
its raw record kept, and never suppresses anyone. ``webhooks.py`` checks where a
webhook comes from before any of this.

The provider modules import this one; this one never looks a provider up: it is handed
the provider's reader (``catalog.py`` finds it by name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .errors import InputError
from .models import Event, EventKind, RecordedEvent

MAX_DEPTH = 64  # nesting of JSON arrays and objects; providers' events use fewer than 8
MAX_ID = 2**63 - 1  # ids are stored in 64-bit integer columns
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second `datetime` can hold


class Malformed(ValueError):
    """A payload, or one record of it, that is not what its provider sends."""


# -- JSON with limits ----------------------------------------------------------------------
def load_json(body: bytes) -> Any:
    """``body`` as JSON; ``Malformed`` when it is not JSON, is nested deeper than
    MAX_DEPTH, or holds a string no database column can store (NUL, lone surrogate)."""
    try:
        data = json.loads(body)
    except RecursionError:  # json gives up past the interpreter's recursion limit
        raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # not JSON, not UTF-8, or an integer of more than 4300 digits
        raise Malformed("not JSON") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key in value:
                    _check_string(key)
                value = value.values()
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise Malformed("a JSON string holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed("a JSON string holds a lone surrogate") from None


# -- fields, as each provider documents them ---------------------------------------------------
def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "null")


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def string(item: dict[str, Any], key: str) -> str | None:
    """A string field; None when absent, null or empty."""
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise Malformed(f"{key} is {json_kind(value)}, not a string")


def mapping(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise Malformed(f"{key} is {json_kind(value)}, not an object")


def ident(item: dict[str, Any], key: str) -> str | None:
    """A provider's id: a string, or a whole number that fits 64 bits."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= 1000:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return str(value)
    raise Malformed(f"{key} {shown(value)} is not an id")


_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")


def unix_time(item: dict[str, Any], key: str) -> str | None:
    """A Unix time in seconds (a number, or a string of one), as ISO 8601 UTC."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{key} {shown(value)} is not a Unix time")
    if not 0 <= value <= LATEST_TIME:  # also false for NaN
        raise Malformed(f"{key} {shown(value)} is out of range")
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()


def iso_time(item: dict[str, Any], key: str) -> str | None:
    """An ISO 8601 time, kept as the provider wrote it."""
    value = string(item, key)
    if value is None:
        return None
    try:
        if len(value) > 64:
            raise ValueError
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{key} {shown(value)} is not an ISO 8601 time") from None
    return value


def ours(value: Any) -> str | None:
    """A value newsletter put in the message (campaign slug): unusable ones are ignored."""
    return value if isinstance(value, str) and value else None


def our_subscriber(value: Any) -> int | None:
    """The subscriber id newsletter put in the message, or None when it is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def replay_key(kind: str, value: str) -> str:
    """A replay key: readable when short, else a digest."""
    if len(value) <= 200 and value.isascii() and value.isprintable():
        return f"{kind}:{value}"
    return f"{kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def content_key(item: Any) -> str:
    """A record without an id of its own is known by its content."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "content:sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- the providers' records -------------------------------------------------------------------
Read = tuple[list[Event], tuple[str, ...]]  # a record's events and its replay keys
Reader = Callable[[dict[str, Any]], Read]  # a provider's reader of one record

# What a provider's event does to the reader follows from its kind (``EventKind``):
# bounced and dropped suppress, complained and unsubscribed change the status, a soft
# bounce counts toward [delivery] soft_bounce_limit, every other kind is only recorded.
# A type no table names is ``unknown``: recorded with its raw record, never suppressing.


def unknown_event(
    provider: str,
    item: dict[str, Any],
    what: str | None,
    email_fields: tuple[str, ...] = (),
    id_fields: tuple[str, ...] = (),
    keys: tuple[str, ...] | None = None,
) -> Read:
    """A record of a type no table names: recorded as it came, known by ``keys`` (else by
    its content). Its fields' types are not known: only a string where an address or an
    id may be is read."""
    event = Event(
        provider=provider,
        kind=EventKind.UNKNOWN,
        email=first_string(item, email_fields),
        provider_message_id=first_string(item, id_fields),
        detail=what and what[:200],
        raw=item,
    )
    return [event], (content_key(item),) if keys is None else keys


def first_string(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    found = (item.get(key) for key in keys)
    return next((v for v in found if isinstance(v, str) and 0 < len(v) <= 1000), None)


# -- records --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Record:
    """One record of a payload: its events and replay keys, or why it cannot be read."""

    where: str  # "record 3", or "line 7" of a JSON-lines file
    events: list[Event] = field(default_factory=list)
    keys: tuple[str, ...] = ()
    problem: str | None = None


def read_records(reader: Reader, items: Iterable[Any], where: str = "record") -> list[Record]:
    """Each item of a payload read by a provider's ``reader``."""
    records = []
    for number, item in enumerate(items, 1):
        records.append(_read_record(reader, item, f"{where} {number}"))
    return records


def _read_record(reader: Reader, item: Any, where: str) -> Record:
    if not isinstance(item, dict):
        return Record(where, problem=f"{json_kind(item)}, not an event object")
    try:
        events, keys = reader(item)
    except Malformed as exc:
        return Record(where, problem=str(exc))
    return Record(where, events, keys)


def parse(provider: str, reader: Reader, body: bytes) -> list[Event]:
    """The events of a JSON array or object of ``provider``'s records; ``InputError``
    when it is not JSON or one of its records is malformed."""
    try:
        data = load_json(body)
    except Malformed as exc:
        raise InputError(f"The {provider} events are not usable: {exc}.") from None
    records = read_records(reader, data if isinstance(data, list) else [data])
    for record in records:
        if record.problem:
            raise InputError(
                f"The {provider} events are not usable: {record.where}: {record.problem}."
            )
    return [event for record in records for event in record.events]


# -- export files ---------------------------------------------------------------------------
def read_export(provider: str, reader: Reader, data: bytes) -> list[Record]:
    """The records of an export file: a JSON array, one JSON object, or JSON lines (then
    a line that cannot be read is one record skipped, not the whole file)."""
    try:
        parsed = load_json(data)
    except Malformed as exc:
        numbered = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        if len(numbered) < 2 or not all(line.lstrip().startswith(b"{") for _, line in numbered):
            raise InputError(
                f"The {provider} events are not usable: {exc}.",
                "Give a JSON array of the provider's event records, or one JSON object per line.",
            ) from None
        return [_export_line(reader, n, line) for n, line in numbered]
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise InputError(
            f"The {provider} events are {json_kind(parsed)}, not a JSON array or object.",
            "Give a JSON array of the provider's event records, or one JSON object per line.",
        )
    return read_records(reader, parsed)


def _export_line(reader: Reader, number: int, line: bytes) -> Record:
    try:
        item = load_json(line)
    except Malformed as exc:
        return Record(f"line {number}", problem=str(exc))
    return replace(read_records(reader, [item])[0], where=f"line {number}")


class EventStore(Protocol):
    def record(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent: ...


@dataclass(frozen=True, slots=True)
class ImportReport:
    outcomes: dict[RecordedEvent, int]  # what EventLog.record did, and how often
    skipped: list[Record]  # the malformed records, each with its problem
    read: int  # records read (those of kinds newsletter does not use included)


def import_events(
    store: EventStore, provider: str, reader: Reader, data: bytes, soft_bounce_limit: int = 3
) -> ImportReport:
    """Apply the events of an export file; malformed records are skipped and listed."""
    records = read_export(provider, reader, data)
    outcomes: dict[RecordedEvent, int] = {}
    for record in records:
        for event in record.events:
            outcome = store.record(event, soft_bounce_limit)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    skipped = [r for r in records if r.problem]
    return ImportReport(outcomes, skipped, len(records) - len(skipped))
