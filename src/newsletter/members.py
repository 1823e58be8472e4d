"""The list's people, as the staff manage them: add, resubscribe, unsubscribe, look up,
export, import, and erase on request; and a provider's event file applied.

Each function takes the parts of the store it changes (and the settings or the
transport's ``Carrier`` when it needs them), and returns a record of what it did for
the caller to show; the ``subscribers`` commands are one call each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from .addresses import Carrier, canonical_address
from .audience import RejectedRow, read_subscribers, write_subscribers
from .catalog import import_events as apply_event_file
from .catalog import local_file_transports
from .composer import sample_record, sendable
from .config import Settings
from .errors import InputError, NewsletterError
from .events import Record
from .files import recorded_folders, rewrite_record
from .models import Event, EventKind, Subscriber, SubscriberRecord, SubscriberStatus
from .store import Erasure, EventLog, Store, Subscribers, now_iso
from .store import Forgotten as ForgottenAddresses
from .store.signups import LogAction


@dataclass(frozen=True, slots=True)
class SubscriberImport:
    """What ``import_subscribers`` did with a file."""

    path: Path
    added: int
    updated: int
    unchanged: int
    rejected: tuple[RejectedRow, ...]  # rows that were not valid, with the reason
    kept_status: tuple[str, ...]  # an unsubscribed (or bounced...) address kept as it was
    forgotten: tuple[str, ...]  # addresses erased on request earlier: never imported again
    encoding: str  # as people name it: "UTF-8", "windows-1252"
    delimiter: str  # "," or ";"
    entered: int = 0  # readers entered into a sequence (`--enter`)

    @property
    def refused(self) -> int:
        return len(self.rejected) + len(self.forgotten)

    def error(self) -> NewsletterError | None:
        """The error to stop on: no row of the file could be imported."""
        if self.rejected and not (self.added or self.updated or self.unchanged):
            return InputError(
                f"No row of {self.path} could be imported.",
                "Fix the rows listed above and import the file again.",
            )
        return None


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``forget`` erased: whether the address was on the list, and how many files
    made for them (outbox messages, build samples) were removed; the samples removed
    from folders outside the project (``build --out``), and the files that could not be
    removed, each with why, for the editor to see to by hand."""

    email: str
    known: bool
    files_removed: int
    outside: tuple[Path, ...] = ()
    left: tuple[tuple[Path, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriberHistory:
    """A subscriber, every campaign they were part of (campaign, status, sent_at,
    error, provider_message_id, events), and their membership: sign-up, confirmation,
    staff actions, unsubscribes (action, at, source, form_version, detail)."""

    subscriber: Subscriber
    campaigns: tuple[dict[str, Any], ...]
    membership: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """What ``add_subscriber`` or ``resubscribe`` did: the subscriber afterwards, and
    whether anything changed (False: they already were active)."""

    subscriber: Subscriber
    changed: bool


@dataclass(frozen=True, slots=True)
class EventFileImport:
    """What ``import_events`` did with an export file."""

    path: Path
    outcomes: dict[str, int]  # what applying the events did (in words), and how often
    skipped: tuple[Record, ...]  # records that could not be read, each with its problem
    read: int

    def error(self) -> NewsletterError | None:
        if self.skipped and not self.read:
            return InputError(
                f"No record of {self.path} could be read.",
                "Fix the records listed above and import the file again.",
            )
        return None


def _subscriber(subscribers: Subscribers, email: str) -> Subscriber:
    found = subscribers.find(email)
    if found is None or found.id is None:
        raise InputError(f"{email} is not a subscriber.", "Check the address.")
    return found


def history(store: Store, email: str) -> SubscriberHistory:
    """Which campaigns ``email`` was part of, and what happened to each."""
    subscriber = _subscriber(store.subscribers, email)
    assert subscriber.id is not None
    return SubscriberHistory(
        subscriber,
        tuple(store.ledger.history(subscriber.id)),
        tuple(store.membership.entries(subscriber.id)),
    )


def add_subscriber(
    store: Store,
    carrier: Carrier,
    email: str,
    first_name: str = "",
    last_name: str = "",
    tags: tuple[str, ...] = (),
    consent_source: str = "",
) -> MembershipChange:
    """Add one person, active at once: the staff vouch for their consent. An address
    already on the list is never changed: InputError saying what to do instead (an
    active one: nothing to do; unsubscribed: ``resubscribe``; bounced, complained or
    erased: not at all). ``carrier``: what the transport can send to."""
    address = sendable(email, carrier)
    source = " ".join(consent_source.split()) or "added by staff"
    status, sid = store.membership.add(
        address,
        " ".join(first_name.split()),
        " ".join(last_name.split()),
        tuple(t.strip().lower() for t in tags if t.strip()),
        source,
        _utcnow(),
    )
    if sid is None:
        raise InputError(
            f"{address} was erased on request (`subscribers forget`) and cannot be added again."
        )
    if status is not None:
        raise InputError(*_refusal(address, status, "add"))
    found = store.subscribers.by_id(sid)
    assert found is not None
    return MembershipChange(found, True)


def resubscribe(store: Store, email: str, consent_source: str) -> MembershipChange:
    """Someone who unsubscribed asked to come back: active again, with the consent
    recorded. Bounced, complained, pending or erased addresses are refused
    (InputError); an active one is left as is (``changed`` False)."""
    source = " ".join(consent_source.split())
    if not source:
        raise InputError(
            "--consent-source is empty.",
            "Say how they asked to come back, e.g. --consent-source 'email to the editor, "
            "2026-12-01'.",
        )
    found = store.subscribers.find(email)
    if found is None or found.id is None:
        if store.forgotten.includes(email):
            raise InputError(
                f"{email} was erased on request (`subscribers forget`); it cannot be resubscribed."
            )
        raise InputError(
            f"{email} is not a subscriber.",
            f"To add a new person, use `newsletter subscribers add {email}`.",
        )
    if found.status is SubscriberStatus.ACTIVE:
        return MembershipChange(found, False)
    if found.status is not SubscriberStatus.UNSUBSCRIBED:
        raise InputError(*_refusal(found.email, found.status, "resubscribe"))
    store.membership.resubscribe(found.id, source, _utcnow())
    after = store.subscribers.by_id(found.id)
    assert after is not None
    return MembershipChange(after, True)


def unsubscribe(store: Store, email: str) -> bool:
    """Unsubscribe ``email`` by hand; False when they already were."""
    subscriber = _subscriber(store.subscribers, email)
    assert subscriber.id is not None
    changed = store.subscribers.set_status(
        subscriber.id, SubscriberStatus.UNSUBSCRIBED, "unsubscribed by hand"
    )
    if changed:
        store.membership.log(
            subscriber.id, LogAction.UNSUBSCRIBED, now_iso(), detail="unsubscribed by hand"
        )
    return changed


def unsubscribe_by_link(
    store: Store, subscriber_id: int, campaign_id: int, one_click: bool
) -> bool:
    """A signed unsubscribe link was used: an active reader becomes unsubscribed, with
    one event; anyone else stays as is (a repeated POST, a mailbox provider's retry,
    someone who bounced meanwhile). True when the status changed."""
    slug = store.ledger.campaign_slug(campaign_id)
    reason = "one-click unsubscribe" if one_click else "unsubscribe page"
    if slug:
        reason += f" from {slug}"
    if not store.subscribers.set_status(
        subscriber_id, SubscriberStatus.UNSUBSCRIBED, reason, only_if_active=True
    ):
        return False
    store.membership.log(subscriber_id, LogAction.UNSUBSCRIBED, now_iso(), detail=reason)
    store.events.record(
        Event(
            provider="newsletter",
            kind=EventKind.UNSUBSCRIBED,
            subscriber_id=subscriber_id,
            campaign=slug,
            detail=reason,
            raw={"via": reason},
        )
    )
    return True


def export_subscribers(subscribers: Subscribers, path: Path, status: str | None = None) -> int:
    """Every subscriber (or those with ``status``) to a CSV file that imports back, with
    formula cells neutralised; how many were written."""
    return write_subscribers(path, subscribers.stream(status=status))


def forget(
    forgotten: ForgottenAddresses,
    settings: Settings,
    email: str,
    confirm: Callable[[str], bool] | None = None,
) -> Forgotten | None:
    """Erase a person from the database and from the files made for them.

    Their outbox messages and the build samples made for them are removed too.
    ``confirm`` is asked first (None when it says no). Raises when a copy could not
    be cleared from the database's log.
    """
    if not email.strip():
        raise InputError(
            "No address to erase: EMAIL is empty.", "Give the address, e.g. ana@example.com."
        )
    if confirm is not None and not confirm(email):
        return None
    erasure = forgotten.forget(email)
    removed = _remove_outbox_files(settings.outbox_dir, erasure)
    samples = _remove_build_samples(settings, erasure)
    if not forgotten.purge():
        raise NewsletterError(
            f"{email} is erased, but another process kept reading the database, so an "
            "old copy of the rows may stay in its log file until it lets go.",
            "Stop `newsletter serve` (or whatever holds the database) for a moment and "
            "run the same `subscribers forget` again.",
        )
    return Forgotten(email, erasure.known, removed + samples.removed, samples.outside, samples.left)


def _remove_outbox_files(outbox: Path, erasure: Erasure) -> int:
    """The message files a local-files transport made for them, by its names, and any
    other of its files addressed to them."""
    removed = 0
    for transport in local_file_transports():
        named = set(
            transport.reader_files(
                outbox, erasure.subscriber_ids, erasure.addresses, erasure.trace.forms
            )
        )
        for path in transport.message_files(outbox):
            if path in named or erasure.trace.canonical & _addressed_to(path):
                path.unlink()
                removed += 1
    return removed


SAMPLE_FILES = ("sample.eml", "email.html", "email.txt")


@dataclass(slots=True)  # mutable: filled folder by folder
class _Samples:
    removed: int = 0
    outside: tuple[Path, ...] = ()
    left: tuple[tuple[Path, str], ...] = ()


def _remove_build_samples(settings: Settings, erasure: Erasure) -> _Samples:
    """The samples ``build`` made for them: in build/<campaign>/, and in every folder
    ``build --out`` noted (``sample_record``). A folder whose files are all gone leaves
    the record; one outside the project is named, so the editor knows where it was."""
    record = sample_record(settings)
    noted = recorded_folders(record)
    done = _Samples()
    kept = []
    for folder in dict.fromkeys([*sorted((settings.root / "build").glob("*/")), *noted]):
        removed, left = _remove_sample(folder, erasure)
        done.removed += removed
        done.left += left
        if removed and not folder.resolve().is_relative_to(settings.root.resolve()):
            done.outside += (folder,)
        if folder in noted and any((folder / n).is_file() for n in SAMPLE_FILES):
            kept.append(folder)
    if noted != kept:
        rewrite_record(record, kept)
    return done


def _remove_sample(folder: Path, erasure: Erasure) -> tuple[int, tuple[tuple[Path, str], ...]]:
    """(files removed, files that could not be, with why) of ``folder``'s sample, when
    it was made for them (its files name their address)."""
    try:
        files = [folder / n for n in SAMPLE_FILES if (folder / n).is_file()]
        mentioned = any(erasure.trace.mentions(f.read_text("utf-8", "replace")) for f in files)
    except OSError as exc:
        return 0, ((folder, exc.strerror or str(exc)),)
    if not mentioned:
        return 0, ()
    removed, left = 0, []
    for path in files:
        try:
            path.unlink()
            removed += 1
        except OSError as exc:
            left.append((path, exc.strerror or str(exc)))
    return removed, tuple(left)


def import_subscribers(
    subscribers: Subscribers,
    carrier: Carrier,
    path: Path,
    tags: tuple[str, ...] = (),
    status: str = "active",
    enter: Callable[[list[str]], int] | None = None,
) -> SubscriberImport:
    """Import a subscribers CSV file: validated, merged, never re-subscribing anyone.
    ``enter`` (``--enter``) is given the file's addresses (``email_key``s) afterwards, to
    enter the active ones into a sequence; it says how many entered."""
    parsed = read_subscribers(path, tags, status, carrier=carrier)
    keys: list[str] = []

    def noted(rows: Iterable[SubscriberRecord]) -> Iterator[SubscriberRecord]:
        for row in rows:
            keys.append(row.email.lower())
            yield row

    records = parsed.records if enter is None else noted(parsed.records)
    summary = subscribers.import_records(records)  # drains parsed.records
    return SubscriberImport(
        path,
        summary.added,
        summary.updated,
        summary.unchanged,
        tuple(parsed.rejected),
        tuple(summary.kept_status),
        tuple(summary.forgotten),
        parsed.encoding,
        parsed.delimiter,
        enter(keys) if enter is not None else 0,
    )


def import_events(
    events: EventLog, path: Path, provider: str, soft_bounce_limit: int
) -> EventFileImport:
    """Apply a provider's events from an export file (a JSON array, one JSON object, or
    JSON lines); records that cannot be read are skipped and listed."""
    report = apply_event_file(events, provider, path.read_bytes(), soft_bounce_limit)
    outcomes = {str(outcome): n for outcome, n in report.outcomes.items()}
    return EventFileImport(path, outcomes, tuple(report.skipped), report.read)


def _refusal(address: str, status: SubscriberStatus, doing: str) -> tuple[str, str]:
    """(message, hint) refusing to ``add`` or ``resubscribe`` an address in ``status``."""
    if status is SubscriberStatus.ACTIVE:
        return (
            f"{address} is already an active subscriber; nothing was changed.",
            "Nothing to do: they get every campaign.",
        )
    if status is SubscriberStatus.UNSUBSCRIBED:
        return (
            f"{address} unsubscribed; `{doing}` does not bring them back.",
            "If they asked to come back, run `newsletter subscribers resubscribe "
            f"{address} --consent-source '...'` saying how they asked.",
        )
    if status is SubscriberStatus.PENDING:
        return (
            f"{address} signed up and has not confirmed yet (pending); nothing was changed.",
            "They become active when they follow the link in their confirmation email.",
        )
    why = (
        "their mail server refused our emails (bounced)"
        if status is SubscriberStatus.BOUNCED
        else "they marked our email as spam (complained)"
    )
    return (
        f"{address} cannot be {'added' if doing == 'add' else 'resubscribed'}: {why}.",
        "Sending to them again would harm the newsletter's delivery to everyone; remove "
        "the address from your list instead.",
    )


def _addressed_to(path: Path) -> set[str]:
    """The canonical addresses a message file's To, Cc and Bcc headers name."""
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024)
    end = min((i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0), default=-1)
    headers = HeaderParser().parsestr(head[: end if end >= 0 else None].decode("utf-8", "replace"))
    values = [v for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return {canonical_address(a) for _, a in getaddresses(values) if "@" in a}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
