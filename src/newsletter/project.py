"""A newsletter project: its settings, database and campaigns, as one library API.

Every CLI command is one library call: a ``Project`` method here, or for the use
cases made of several steps a function beside it (``plan``/``send``, which take the
parts they use, ``digest``, ``report``); docs/architecture.md lists which. So anything the CLI does
a Python caller can do.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from email.utils import getaddresses
from functools import cached_property
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError

from .addresses import Carrier, canonical_address
from .audience import RejectedRow, read_subscribers, validate_address, write_subscribers
from .campaigns import load_campaign
from .catalog import (
    carrier_for,
    import_events,
    load_settings,
)
from .checks import (
    CheckedEmail,
    Problem,
    check_email,
    check_links,
    check_settings,
    compile_problem,
    links_of,
)
from .config import Settings
from .content import ArticleReader, reader_for
from .errors import (
    InputError,
    NewsletterError,
    RecipientError,
    TemplateError,
)
from .events import Record
from .files import write_private
from .models import (
    Article,
    Campaign,
    Event,
    EventKind,
    Recipient,
    Subscriber,
    SubscriberStatus,
)
from .providers.outbox import OutboxTransport
from .render import (
    CompiledCampaign,
    FieldCatalog,
    MessageFactory,
    NewsletterInfo,
    compile_campaign,
)
from .send import web_version
from .store import Erasure, Store, now_iso, open_store
from .store.signups import LogAction
from .tokens import LinkSigner

SCAFFOLD = Path(__file__).resolve().parent / "scaffold"


@dataclass(frozen=True, slots=True)
class BuiltFiles:
    """What ``build`` wrote."""

    html: Path
    text: Path
    eml: Path
    html_bytes: int


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
    made for them (outbox messages, build samples) were removed."""

    email: str
    known: bool
    files_removed: int


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


class Project:
    """Settings plus the database, opened on first use."""

    def __init__(self, settings: Settings, refresh: bool = False) -> None:
        self.settings = settings
        self.refresh = refresh
        self._reader: ArticleReader | None = None

    @classmethod
    def load(cls, config: str | None = None, refresh: bool = False) -> Project:
        return cls(load_settings(config), refresh)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.database_url)

    def close(self) -> None:
        """Close the database, if it was opened; a later use opens it again."""
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.close()

    # -- rendering ----------------------------------------------------------
    def info(self) -> NewsletterInfo:
        s = self.settings
        return NewsletterInfo(
            name=s.name,
            sender=s.get("newsletter", "from"),
            public_url=s.public_url,
            postal_address=s.get("newsletter", "postal_address") or "",
            reply_to=s.get("newsletter", "reply_to"),
            list_id=s.get("newsletter", "list_id"),
            templates_dir=s.templates_dir,
            utm=s.get("content", "utm"),
            utm_source=s.get("content", "utm_source"),
            utm_medium=s.get("content", "utm_medium"),
        )

    @property
    def soft_bounce_limit(self) -> int:
        return self.settings.delivery.soft_bounce_limit

    def reader(self) -> ArticleReader:
        """Reads article sources; URLs through the project's cache (``--refresh`` skips it)."""
        if self._reader is None:
            self._reader = reader_for(self.settings, self.refresh)
        return self._reader

    def articles(self, sources: list[str]) -> list[Article]:
        """What the sources yield: the given ones, or the configured folder and feeds."""
        if not sources:
            content = self.settings.content
            sources = [content.articles, *content.feeds]
        reader = self.reader()
        return [article for source in sources for article in reader.read(source)]

    def campaign(self, name: str) -> Campaign:
        return load_campaign(self.settings, name, self.reader())

    def compile(self, campaign: Campaign, sample: Recipient | None = None) -> CompiledCampaign:
        """The campaign compiled once; ``sample``'s variant (the first reader's) at once."""
        recipient = sample or self._sample_recipient(None)
        fields = self.personalizer(campaign.slug)(recipient)
        return compile_campaign(self.info(), campaign, self.field_catalog(), fields)

    def field_catalog(self) -> FieldCatalog:
        """The fields subscribers have beyond the standard ones, asked of the database."""
        store = self.store
        known: dict[str, bool] = {}

        def has(name: str) -> bool:
            if name not in known:
                known[name] = store.subscribers.has_attribute(name)
            return known[name]

        return FieldCatalog(has=has, names=store.subscribers.attribute_names)

    def factory(
        self,
        compiled: CompiledCampaign,
        test: bool = False,
        auto_submitted: bool = False,
        carrier: Carrier | None = None,
    ) -> MessageFactory:
        """Makes each reader's message. With a transport's ``carrier``, a reader it cannot
        carry is refused as their message is made (and the newsletter's own addresses are
        checked now); without one (build, preview, check), any reader's message is made."""
        if carrier is not None:
            carrier.check_sender("from", compiled.sender_display)
            carrier.check_sender("reply_to", compiled.reply_to)
        return MessageFactory(
            compiled,
            unsubscribe_mailto=self.settings.newsletter.unsubscribe_mailto,
            test=test,
            auto_submitted=auto_submitted,
            carrier=carrier or Carrier(),
        )

    @property
    def carrier(self) -> Carrier:
        """What the configured transport can carry (known without its secrets)."""
        return carrier_for(self.settings.transport)

    def sendable_address(self, address: str) -> str:
        """``address`` normalised, or an InputError saying why it cannot be sent to."""
        try:
            normal = validate_address(address.strip())
        except EmailNotValidError as exc:
            raise InputError(f"{address} is not a usable email address: {exc}") from None
        problem = self.carrier.problem(normal)
        if problem is not None:
            raise InputError(
                f"{address}: {problem}.",
                "Use an address whose part before the @ is plain ASCII, or another transport.",
            )
        return normal

    def personalizer(
        self, campaign_slug: str, campaign_id: int = 0
    ) -> Callable[[Recipient], dict[str, str]]:
        """recipient -> their merge fields: name, attributes, signed links."""
        signer = LinkSigner(self.store.secret.current())
        base = self.settings.public_url
        web_url = f"{base}/c/{campaign_slug}"

        def fields(recipient: Recipient) -> dict[str, str]:
            token = signer.unsubscribe_token(recipient.subscriber_id, campaign_id)
            return {
                **{k: str(v) for k, v in recipient.attributes.items()},
                "tags": recipient.tags,
                "email": recipient.email,
                "first_name": recipient.first_name,
                "last_name": recipient.last_name,
                "name": " ".join(p for p in (recipient.first_name, recipient.last_name) if p),
                "unsubscribe_url": f"{base}/u/{token}",
                "web_url": web_url,
            }

        return fields

    def build(self, name: str, out: Path | None = None, to: str | None = None) -> BuiltFiles:
        """Write the campaign's HTML, text and one sample .eml into ``out``."""
        campaign = self.campaign(name)
        recipient = self._sample_recipient(to)
        compiled = self.compile(campaign, recipient)
        out = out or self.settings.root / "build" / campaign.slug
        fields = self.personalizer(campaign.slug)(recipient)
        message = self.factory(compiled).message(recipient, fields)
        out.mkdir(parents=True, exist_ok=True)
        html = message.html.encode("utf-8")
        built = BuiltFiles(out / "email.html", out / "email.txt", out / "sample.eml", len(html))
        _write_atomic(built.html, html)
        _write_atomic(built.text, message.text.encode("utf-8"))
        _write_atomic(built.eml, message.as_bytes())
        return built

    def _sample_recipient(self, to: str | None) -> Recipient:
        if to:
            found = self.store.subscribers.find(to)
            if found is None:  # checked as an import would check it
                return Recipient(subscriber_id=0, email=self.sendable_address(to))
            return Recipient.of(found)
        first = next(self.store.subscribers.stream(status="active"), None)
        if first is not None:
            return Recipient.of(first)
        return Recipient(subscriber_id=0, email="reader@example.com", first_name="Sam")

    def check(self, name: str, links: bool = False) -> list[Problem]:
        """Everything that would make the campaign wrong, as built for a sample reader."""
        try:
            campaign = self.campaign(name)
            compiled = self.compile(campaign)
        except NewsletterError as exc:
            return [compile_problem(exc)]
        return self.check_compiled(campaign, compiled, links)

    def check_compiled(
        self,
        campaign: Campaign,
        compiled: CompiledCampaign,
        links: bool = False,
        every_reader: bool = True,
    ) -> list[Problem]:
        """Problems of the email as the sample reader gets it, and of the audience's own
        variants and data. ``every_reader=False`` (a send about to go out) only builds
        the variants; each reader's own values are judged as their message is made."""
        recipient = self._sample_recipient(None)
        message = self.factory(compiled).message(
            recipient, self.personalizer(campaign.slug)(recipient)
        )
        built = CheckedEmail(
            subject=message.subject,
            preheader=campaign.preheader,
            html=message.html,
            text=message.text,
            unsubscribe_url=message.unsubscribe_url,
            postal_address=self.settings.newsletter.postal_address or "",
        )
        try:
            problems = check_email(built) + self.reader_problems(campaign, compiled, every_reader)
            problems += check_settings(self.settings.values["newsletter"], str(self.settings.path))
            problems += self.audience_problems(campaign)
        except TemplateError as exc:  # a variant some readers need does not build
            return [compile_problem(exc)]
        try:
            web_version(compiled, self.settings.public_url)
        except TemplateError as exc:
            problems.append(
                Problem(
                    "warning",
                    "web-version",
                    f"{exc.message} Its web-version link will answer 'not found'.",
                    "campaign",
                )
            )
        if links:
            external = [
                u
                for u in links_of(message.html)
                if u != message.unsubscribe_url and not u.startswith(self.settings.public_url)
            ]
            problems += check_links(external, self.reader().fetcher.status)
        return problems

    def audience_problems(self, campaign: Campaign) -> list[Problem]:
        """A tag in the campaign's audience that no subscriber has: most likely misspelt."""
        audience = campaign.audience
        named = {*audience.tags_any, *audience.tags_all, *audience.exclude_tags}
        if not named:
            return []
        known = self.store.subscribers.tags()
        unknown = sorted(named - set(known))
        if not unknown:
            return []
        return [
            Problem(
                "warning",
                "unknown-tag",
                f"No subscriber has the tag(s) {', '.join(unknown)} of the campaign's audience.",
                "front matter: audience; the tags subscribers have: "
                + (", ".join(sorted(known)) or "none"),
            )
        ]

    def reader_problems(
        self, campaign: Campaign, compiled: CompiledCampaign, every_reader: bool = True
    ) -> list[Problem]:
        """Build every reader's parts when they depend on more than plain fields.

        A campaign with ``{% if %}``/``{% for %}`` over the reader compiles each variant
        its audience needs now, so a variant that does not build stops the send before
        anything goes out; a reader whose own data breaks an expression is named (their
        message will be settled ``invalid``, everyone else's sent).
        """
        if not compiled.depends_on_per_reader_code:
            return []
        if not every_reader and not compiled.depends_on_decisions:
            return []  # one variant, already built: nothing can fail for everyone
        build = compiled.personalize if every_reader else compiled.variant_of
        personalize = self.personalizer(campaign.slug)
        failed: list[str] = []
        count = 0
        for recipient in self.store.subscribers.audience_recipients(campaign.audience):
            count += 1
            try:
                build(personalize(recipient))
            except RecipientError as exc:
                failed.append(f"{recipient.email}: {exc.message}")
        problems = []
        if failed:
            problems.append(
                Problem(
                    "warning",
                    "reader-data",
                    f"{len(failed)} of {count} readers' messages cannot be built from their "
                    "data; they will be recorded invalid and everyone else sent to. "
                    + "; ".join(failed[:3])
                    + ("; ..." if len(failed) > 3 else ""),
                    "subscribers",
                )
            )
        return problems

    # -- subscribers --------------------------------------------------------
    def subscribers(
        self, status: str | None = None, tag: str | None = None
    ) -> Iterator[Subscriber]:
        """Subscribers (not erased ones) in id order, streamed; by status and tag."""
        return self.store.subscribers.stream(status=status, tag=tag)

    def _subscriber(self, email: str) -> Subscriber:
        found = self.store.subscribers.find(email)
        if found is None or found.id is None:
            raise InputError(f"{email} is not a subscriber.", "Check the address.")
        return found

    def history(self, email: str) -> SubscriberHistory:
        """Which campaigns ``email`` was part of, and what happened to each."""
        subscriber = self._subscriber(email)
        assert subscriber.id is not None
        return SubscriberHistory(
            subscriber,
            tuple(self.store.ledger.history(subscriber.id)),
            tuple(self.store.membership.entries(subscriber.id)),
        )

    def add_subscriber(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        tags: tuple[str, ...] = (),
        consent_source: str = "",
    ) -> MembershipChange:
        """Add one person, active at once: the staff vouch for their consent. An address
        already on the list is never changed: InputError saying what to do instead (an
        active one: nothing to do; unsubscribed: ``resubscribe``; bounced, complained or
        erased: not at all)."""
        address = self.sendable_address(email)
        source = " ".join(consent_source.split()) or "added by staff"
        status, sid = self.store.membership.add(
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
        found = self.store.subscribers.by_id(sid)
        assert found is not None
        return MembershipChange(found, True)

    def resubscribe(self, email: str, consent_source: str) -> MembershipChange:
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
        found = self.store.subscribers.find(email)
        if found is None or found.id is None:
            if self.store.forgotten.includes(email):
                raise InputError(
                    f"{email} was erased on request (`subscribers forget`); it cannot be "
                    "resubscribed."
                )
            raise InputError(
                f"{email} is not a subscriber.",
                f"To add a new person, use `newsletter subscribers add {email}`.",
            )
        if found.status is SubscriberStatus.ACTIVE:
            return MembershipChange(found, False)
        if found.status is not SubscriberStatus.UNSUBSCRIBED:
            raise InputError(*_refusal(found.email, found.status, "resubscribe"))
        self.store.membership.resubscribe(found.id, source, _utcnow())
        after = self.store.subscribers.by_id(found.id)
        assert after is not None
        return MembershipChange(after, True)

    def unsubscribe(self, email: str) -> bool:
        """Unsubscribe ``email`` by hand; False when they already were."""
        subscriber = self._subscriber(email)
        assert subscriber.id is not None
        changed = self.store.subscribers.set_status(
            subscriber.id, SubscriberStatus.UNSUBSCRIBED, "unsubscribed by hand"
        )
        if changed:
            self.store.membership.log(
                subscriber.id, LogAction.UNSUBSCRIBED, now_iso(), detail="unsubscribed by hand"
            )
        return changed

    def unsubscribe_by_link(self, subscriber_id: int, campaign_id: int, one_click: bool) -> bool:
        """A signed unsubscribe link was used: an active reader becomes unsubscribed, with
        one event; anyone else stays as is (a repeated POST, a mailbox provider's retry,
        someone who bounced meanwhile). True when the status changed."""
        store = self.store
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

    def export_subscribers(self, path: Path, status: str | None = None) -> int:
        """Every subscriber (or those with ``status``) to a CSV file that imports back, with
        formula cells neutralised; how many were written."""
        return write_subscribers(path, self.store.subscribers.stream(status=status))

    def forget(self, email: str, confirm: Callable[[str], bool] | None = None) -> Forgotten | None:
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
        erasure = self.store.forgotten.forget(email)
        removed = self._remove_outbox_files(erasure) + self._remove_build_samples(erasure)
        if not self.store.forgotten.purge():
            raise NewsletterError(
                f"{email} is erased, but another process kept reading the database, so an "
                "old copy of the rows may stay in its log file until it lets go.",
                "Stop `newsletter serve` (or whatever holds the database) for a moment and "
                "run the same `subscribers forget` again.",
            )
        return Forgotten(email, erasure.known, removed)

    def _remove_outbox_files(self, erasure: Erasure) -> int:
        """The outbox's message files made for them, by name (the outbox transport's), and
        any other addressed to them."""
        outbox = self.settings.outbox_dir
        named = set(
            OutboxTransport.reader_files(
                outbox, erasure.subscriber_ids, erasure.addresses, erasure.trace.forms
            )
        )
        removed = 0
        for path in OutboxTransport.message_files(outbox):
            if path in named or erasure.trace.canonical & _addressed_to(path):
                path.unlink()
                removed += 1
        return removed

    def _remove_build_samples(self, erasure: Erasure) -> int:
        """``build``'s sample files that were made for them (they name their address)."""
        removed = 0
        for folder in sorted((self.settings.root / "build").glob("*/")):
            files = [folder / n for n in ("sample.eml", "email.html", "email.txt")]
            files = [f for f in files if f.is_file()]
            if any(erasure.trace.mentions(f.read_text("utf-8", "replace")) for f in files):
                for f in files:
                    f.unlink()
                removed += len(files)
        return removed

    def import_subscribers(
        self, path: Path, tags: tuple[str, ...] = (), status: str = "active"
    ) -> SubscriberImport:
        """Import a subscribers CSV file: validated, merged, never re-subscribing anyone."""
        parsed = read_subscribers(path, tags, status, carrier=self.carrier)
        summary = self.store.subscribers.import_rows(parsed.rows)  # drains parsed.rows
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
        )

    # -- events ---------------------------------------------------------------
    def import_events(self, path: Path, provider: str) -> EventFileImport:
        """Apply a provider's events from an export file (a JSON array, one JSON object, or
        JSON lines); records that cannot be read are skipped and listed."""
        report = import_events(
            self.store.events, provider, path.read_bytes(), self.soft_bounce_limit
        )
        outcomes = {str(outcome): n for outcome, n in report.outcomes.items()}
        return EventFileImport(path, outcomes, tuple(report.skipped), report.read)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


def init_project(folder: Path) -> list[Path]:
    """Scaffold a working project in ``folder``; existing files are never overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "newsletter.toml").exists():
        raise NewsletterError(
            f"{folder / 'newsletter.toml'} already exists.",
            "Choose an empty folder; init never overwrites a project.",
        )
    written = []
    for source in sorted(SCAFFOLD.rglob("*")):
        if source.is_dir() or source.name.startswith(".") or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(SCAFFOLD)
        target = folder / (".gitignore" if relative.name == "gitignore" else relative)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    (folder / "templates").mkdir(exist_ok=True)
    return written


def _addressed_to(path: Path) -> set[str]:
    """The canonical addresses a message file's To, Cc and Bcc headers name."""
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024)
    end = min((i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0), default=-1)
    headers = HeaderParser().parsestr(head[: end if end >= 0 else None].decode("utf-8", "replace"))
    values = [v for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return {canonical_address(a) for _, a in getaddresses(values) if "@" in a}


def _write_atomic(path: Path, data: bytes) -> None:
    write_private(path, data)  # a built sample holds a reader's name and address
