"""The campaign workshop: a campaign file, compiled once, made into each reader's
message, and checked before anything goes out.

``Composer`` is what ``build``, ``check``, ``preview``, the digest and the send path use
of a project: its settings, the subscribers (for the sample reader, their fields and the
audience's variants) and the link secret (for each reader's signed links). It sends
nothing and records nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError

from .addresses import Carrier
from .audience import validate_address
from .campaigns import load_campaign, send_at_in_past
from .catalog import carrier_for, transport_class, webhook_secrets
from .checks import (
    CheckedEmail,
    Problem,
    check_email,
    check_links,
    check_settings,
    compile_problem,
    links_of,
    project_templates,
    template_image_problems,
    transport_problems,
)
from .config import Settings
from .content import ArticleReader, reader_for
from .errors import InputError, NewsletterError, RecipientError, TemplateError
from .files import record_folder, write_private
from .models import Article, Campaign, CampaignStatus, Recipient
from .render import (
    CompiledCampaign,
    FieldCatalog,
    MessageFactory,
    NewsletterInfo,
    OutgoingMessage,
    compile_campaign,
)
from .render.compile import SAMPLE_FAILED
from .store import LinkSecret, Store, Subscribers
from .tokens import LinkSigner


def sample_record(settings: Settings) -> Path:
    """Where ``build --out`` notes the folders it wrote a sample to."""
    return settings.root / ".newsletter" / "samples.jsonl"


@dataclass(frozen=True, slots=True)
class BuiltFiles:
    """What ``build`` wrote."""

    html: Path
    text: Path
    eml: Path
    html_bytes: int


class Composer:
    """Campaign file -> compiled campaign -> each reader's message -> the checks."""

    def __init__(
        self, settings: Settings, store: Callable[[], Store], refresh: bool = False
    ) -> None:
        self.settings = settings
        self._store = store  # opened when a step needs the readers: reading articles never
        self.refresh = refresh
        self._reader: ArticleReader | None = None

    @property
    def subscribers(self) -> Subscribers:
        return self._store().subscribers

    @property
    def secret(self) -> LinkSecret:
        return self._store().secret

    def reread(self) -> None:
        """Read the articles afresh next time (they may have changed on disk)."""
        self._reader = None

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
            language=s.get("newsletter", "language"),
            templates_dir=s.templates_dir,
            utm=s.get("content", "utm"),
            utm_source=s.get("content", "utm_source"),
            utm_medium=s.get("content", "utm_medium"),
        )

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
        """The campaign compiled once; ``sample``'s variant at once. Without a ``sample``,
        the first reader whose data builds (``_sample_candidates``): a reader whose data
        breaks an expression is settled ``invalid`` at send like any other, never
        blocking the rest."""
        personalize = self.personalizer(campaign.slug)
        if sample is not None:
            return compile_campaign(
                self.info(), campaign, self.field_catalog(), personalize(sample)
            )
        readers = (personalize(recipient) for recipient in self._sample_candidates())
        first = next(readers)
        return compile_campaign(
            self.info(), campaign, self.field_catalog(), first, more_samples=readers
        )

    def _sample_candidates(self) -> Iterator[Recipient]:
        """The readers a campaign is built for, in turn while one's data fails: the
        active subscribers in order, then a made-up reader."""
        for subscriber in self.subscribers.stream(status="active"):
            yield Recipient.of(subscriber)
        yield Recipient(subscriber_id=0, email="reader@example.com", first_name="Sam")

    def _sample_message(self, campaign: Campaign, compiled: CompiledCampaign) -> OutgoingMessage:
        """The message of the first reader in ``_sample_candidates`` whose data builds."""
        personalize = self.personalizer(campaign.slug)
        factory = self.factory(compiled)
        first: RecipientError | None = None
        for recipient in self._sample_candidates():
            try:
                return factory.message(recipient, personalize(recipient))
            except RecipientError as exc:
                first = first or exc
        assert first is not None
        raise TemplateError(first.message, SAMPLE_FAILED)

    def field_catalog(self) -> FieldCatalog:
        """The fields subscribers have beyond the standard ones, asked of the database."""
        subscribers = self.subscribers
        known: dict[str, bool] = {}

        def has(name: str) -> bool:
            if name not in known:
                known[name] = subscribers.has_attribute(name)
            return known[name]

        return FieldCatalog(has=has, names=subscribers.attribute_names)

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
        return sendable(address, self.carrier)

    def personalizer(
        self, campaign_slug: str, campaign_id: int = 0
    ) -> Callable[[Recipient], dict[str, str]]:
        """recipient -> their merge fields: name, attributes, signed links."""
        signer = LinkSigner(self.secret.current())
        base = self.settings.public_url
        web_url = f"{base}/c/{campaign_slug}"

        def fields(recipient: Recipient) -> dict[str, str]:
            token = signer.unsubscribe_token(recipient.subscriber_id, campaign_id)
            return reader_fields(recipient, f"{base}/u/{token}", web_url)

        return fields

    def build(self, name: str, out: Path | None = None, to: str | None = None) -> BuiltFiles:
        """Write the campaign's HTML, text and one sample .eml into ``out``."""
        campaign = self.campaign(name)
        if to:
            recipient = self._sample_recipient(to)
            compiled = self.compile(campaign, recipient)
            fields = self.personalizer(campaign.slug)(recipient)
            message = self.factory(compiled).message(recipient, fields)
        else:  # the first reader whose data builds, as `check` and `send` choose
            compiled = self.compile(campaign)
            message = self._sample_message(campaign, compiled)
        if out is not None:  # a sample names a reader: `forget` must find it again
            record_folder(sample_record(self.settings), out)
        out = out or self.settings.root / "build" / campaign.slug
        out.mkdir(parents=True, exist_ok=True)
        html = message.html.encode("utf-8")
        built = BuiltFiles(out / "email.html", out / "email.txt", out / "sample.eml", len(html))
        write_private(built.html, html)  # it names a reader: private, like their data
        write_private(built.text, message.text.encode("utf-8"))
        write_private(built.eml, message.as_bytes())
        return built

    def _sample_recipient(self, to: str | None) -> Recipient:
        if to:
            found = self.subscribers.find(to)
            if found is None:  # checked as an import would check it
                return Recipient(subscriber_id=0, email=self.sendable_address(to))
            return Recipient.of(found)
        first = next(self.subscribers.stream(status="active"), None)
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
        return (
            self.check_compiled(campaign, compiled, links)
            + self._schedule_problems(campaign)
            + self._webhook_problems()
            + self.template_problems()
        )

    def template_problems(self) -> list[Problem]:
        """What the project's own templates get wrong for every campaign (checks.py)."""
        templates = project_templates(self.settings.templates_dir)
        return template_image_problems(templates, self.settings.root)

    def _webhook_problems(self) -> list[Problem]:
        """Webhook secrets in this environment that `serve` would refuse."""
        secrets = webhook_secrets(self.settings.transport)
        return [
            Problem("error", "webhook-secret", error, "environment") for error in secrets.errors
        ]

    def _schedule_problems(self, campaign: Campaign) -> list[Problem]:
        """A send_at that has passed, on a campaign never sent: `send` refuses it."""
        late = send_at_in_past(campaign, dt.datetime.now(dt.UTC))
        if late is None:
            return []
        row = self._store().ledger.campaign(campaign.slug)
        if row is not None and row.status is not CampaignStatus.DRAFT:
            return []
        return [Problem("warning", "send-at-past", late + ".", "send_at")]

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
        try:
            message = self._sample_message(campaign, compiled)
        except TemplateError as exc:
            return [compile_problem(exc)]
        built = CheckedEmail(
            subject=message.subject,
            preheader=campaign.preheader,
            html=message.html,
            text=message.text,
            unsubscribe_url=message.unsubscribe_url,
            postal_address=self.settings.newsletter.postal_address or "",
            images_folder=self._images_folder(),
        )
        try:
            problems = check_email(built) + self.reader_problems(campaign, compiled, every_reader)
            problems += check_settings(self.settings.values["newsletter"], str(self.settings.path))
            problems += self.audience_problems(campaign)
            problems += self.transport_problems(compiled)
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

    def _images_folder(self) -> str:
        """The images folder as `check` names it: as configured, and where it is."""
        if not self.settings.newsletter.public_url:
            return ""  # nothing is published: no image gets an address of its own
        folder = self.settings.content.images.rstrip("/")
        return f"{folder}/ ({self.settings.images_dir})"

    def transport_problems(self, compiled: CompiledCampaign) -> list[Problem]:
        """What the configured transport cannot do with this campaign (checks.py)."""
        transport = self.settings.transport
        return transport_problems(
            self.carrier,
            {"from": compiled.sender_display, "reply_to": compiled.reply_to},
            self.settings.public_url,
            rehearsal=transport_class(transport).rehearsal,
        )

    def audience_problems(self, campaign: Campaign) -> list[Problem]:
        """A tag the campaign's audience asks for that no subscriber has: most likely
        misspelt. An ``exclude_tags`` tag nobody has excludes nobody, which is harmless
        (a digest that always excludes ``staff`` while the list has none yet)."""
        audience = campaign.audience
        named = {*audience.tags_any, *audience.tags_all}
        if not named:
            return []
        known = self.subscribers.tags()
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
        if not every_reader and self._variants_by_tags(campaign, compiled):
            return []
        failed: list[str] = []
        count = 0
        build = self._reader_builder(campaign, compiled, every_reader)
        for recipient in self.subscribers.audience_recipients(campaign.audience):
            count += 1
            try:
                build(recipient)
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
                    + "; ".join(failed[:NAMED_READERS])
                    + (
                        f"; and {len(failed) - NAMED_READERS} more"
                        if len(failed) > NAMED_READERS
                        else ""
                    ),
                    "subscribers",
                )
            )
        return problems

    def _variants_by_tags(self, campaign: Campaign, compiled: CompiledCampaign) -> bool:
        """When the decisions read no field but ``tags``, each variant the audience needs,
        built from their distinct sets of tags, found by the database (no reader's row is
        read, no reader's fields are made): True. False when the decisions read more (or
        a template parsed for a variant adds decisions), there are more sets than
        SEEN_READERS, or some set of tags breaks a decision; then the pass over every
        reader does it, and names those readers."""
        plan = compiled.plan
        read = plan.decision_fields()
        if read is None or not set(read) <= {"tags"}:
            return False
        decisions = len(plan.choosing)
        web_url = f"{self.settings.public_url}/c/{campaign.slug}"
        sets = self.subscribers.audience_tag_sets(campaign.audience, SEEN_READERS)
        if sets is None:  # more sets than a send's check remembers
            return False
        for tags in sets:
            try:  # the same fields as the reader's own, as far as the decisions read them
                compiled.variant_of(reader_fields(Recipient(0, "", tags=tags), "", web_url))
            except RecipientError:
                return False
            if len(plan.choosing) != decisions:  # a template parsed now decides on more
                return False
        return True

    def _reader_builder(
        self, campaign: Campaign, compiled: CompiledCampaign, every_reader: bool
    ) -> Callable[[Recipient], object]:
        """What ``reader_problems`` does with each reader: their whole parts, or (a send
        about to go out) only their variant. When the decisions read known fields and
        not the unsubscribe link, the link is not signed, and a reader whose values of
        those fields an earlier reader had is passed over: their variant is that one's."""
        personalize = self.personalizer(campaign.slug)
        if every_reader:
            return lambda recipient: compiled.personalize(personalize(recipient))
        read = compiled.plan.decision_fields()
        if read is None or "unsubscribe_url" in read:
            return lambda recipient: compiled.variant_of(personalize(recipient))
        web_url = f"{self.settings.public_url}/c/{campaign.slug}"
        seen: set[tuple[object, ...]] = set()

        def variant(recipient: Recipient) -> None:
            fields = reader_fields(recipient, "", web_url)
            try:
                key = tuple([fields.get(name) for name in read])
                if key in seen:
                    return
            except TypeError:  # a value that cannot be a key
                compiled.variant_of(fields)
                return
            compiled.variant_of(fields)
            if len(seen) < SEEN_READERS:
                seen.add(key)

        return variant


NAMED_READERS = 10  # readers `check` names when their data breaks an expression
SEEN_READERS = 4096  # distinct values of the deciding fields a send's check remembers


def reader_fields(recipient: Recipient, unsubscribe_url: str, web_url: str) -> dict[str, Any]:
    """A reader's merge fields: their attributes, name, tags and the campaign's links."""
    attributes = recipient.attributes
    fields = {k: str(v) for k, v in attributes.items()} if attributes else {}
    first, last = recipient.first_name, recipient.last_name
    fields.update(
        tags=recipient.tags,
        email=recipient.email,
        first_name=first,
        last_name=last,
        name=f"{first} {last}" if first and last else first or last or "",
        unsubscribe_url=unsubscribe_url,
        web_url=web_url,
    )
    return fields


def sendable(address: str, carrier: Carrier) -> str:
    """``address`` normalised, or an InputError saying why ``carrier`` cannot send to it."""
    try:
        normal = validate_address(address.strip())
    except EmailNotValidError as exc:
        raise InputError(f"{address} is not a usable email address: {exc}") from None
    problem = carrier.problem(normal)
    if problem is not None:
        raise InputError(
            f"{address}: {problem}.",
            "Use an address whose part before the @ is plain ASCII, or another transport.",
        )
    return normal


def web_version(compiled: CompiledCampaign, public_url: str) -> tuple[str, str]:
    """(subject, HTML) of the campaign as shown on the web: the email for no one, with
    no reader's name, address or unsubscribe token."""
    anonymous = {
        "web_url": f"{public_url}/c/{compiled.slug}",
        "unsubscribe_url": f"{public_url}/unsubscribe",
    }
    try:
        subject, html, _text = compiled.preview(anonymous)
    except RecipientError as exc:
        raise TemplateError(
            f"The web version (the email for a reader with no data) cannot be built: {exc.message}",
            "Make the template work for a reader without a name or attributes, e.g. "
            "{{ recipient.first_name or 'there' }}.",
        ) from None
    return subject, html
