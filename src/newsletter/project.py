"""A newsletter project as a library user holds it: its settings, its database and its
campaign workshop.

``Project.load()`` reads newsletter.toml; ``store`` is the database (opened on first
use) whose parts the use cases take (``store.subscribers``, ``store.ledger``, ...);
``composer`` builds and checks campaigns. The use cases are functions beside it that
take only what they use: ``members`` (the subscribers commands), ``report``,
``digest``, ``archive``, ``signup``, ``sending``. A few entry points here hide a
decision a caller should not have to make (which files an erasure reaches, which
transport's rules an address is checked by). README.md's "Python library" section
shows them in use.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType

from . import members
from .addresses import Carrier
from .catalog import (
    load_settings,
    make_transport,
    rehearsal_transports,
    transport_class,
)
from .checks import Problem
from .composer import Composer
from .config import Settings
from .content import article_key
from .delivery import Transport
from .errors import (
    ConfigError,
    DeliveryError,
    NewsletterError,
    RecipientError,
    SendPaused,
    TemplateError,
)
from .models import (
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    Recipient,
    SendResult,
)
from .render import CompiledCampaign, MessageFactory
from .sender import (
    RunReport,
    SendOptions,
    batch_size,
    holder_id,
    send_campaign,
    send_test,
)
from .store import CampaignRow, Store, now_iso, open_store

SCAFFOLD = Path(__file__).resolve().parent / "scaffold"


@dataclass(frozen=True, slots=True)
class CampaignRun:
    """What ``Project.send`` did: this run's counts, and the campaign's row after it."""

    report: RunReport
    campaign: CampaignRow


class Project:
    """Settings, plus the database and the composer, each made on first use."""

    def __init__(self, settings: Settings, refresh: bool = False) -> None:
        self.settings = settings
        self.refresh = refresh  # article URLs fetched afresh, not from the cache

    @classmethod
    def load(cls, config: str | None = None, refresh: bool = False) -> Project:
        """The project of ``config`` (default: the newsletter.toml ``load_settings`` finds)."""
        return cls(load_settings(config), refresh)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.database_url)

    @cached_property
    def composer(self) -> Composer:
        """The campaign workshop, over this project's subscribers and link secret."""
        store = self.store
        return Composer(self.settings, store.subscribers, store.secret, self.refresh)

    def close(self) -> None:
        """Close the database, if it was opened; a later use opens it again."""
        self.__dict__.pop("composer", None)
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- entry points that decide for the caller ------------------------------------------
    def import_subscribers(
        self, path: Path, tags: tuple[str, ...] = (), status: str = "active"
    ) -> members.SubscriberImport:
        """Import a subscribers CSV file, its addresses checked against what the
        configured transport can carry."""
        return members.import_subscribers(
            self.store.subscribers, self.composer.carrier, path, tags, status
        )

    def add_subscriber(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        tags: tuple[str, ...] = (),
        consent_source: str = "",
    ) -> members.MembershipChange:
        """Add one person, active at once, if the configured transport can carry their
        address (see ``members.add_subscriber``)."""
        return members.add_subscriber(
            self.store,
            self.composer.carrier,
            email,
            first_name,
            last_name,
            tags,
            consent_source,
        )

    def forget(
        self, email: str, confirm: Callable[[str], bool] | None = None
    ) -> members.Forgotten | None:
        """Erase a person from the database and from every file this project made for
        them: the outbox's messages and ``build``'s samples."""
        return members.forget(self.store.forgotten, self.settings, email, confirm)

    # -- the send path's view of the composer, until it takes the composer itself --------
    def campaign(self, name: str) -> Campaign:
        return self.composer.campaign(name)

    def compile(self, campaign: Campaign, sample: Recipient | None = None) -> CompiledCampaign:
        return self.composer.compile(campaign, sample)

    def check_compiled(
        self,
        campaign: Campaign,
        compiled: CompiledCampaign,
        links: bool = False,
        every_reader: bool = True,
    ) -> list[Problem]:
        return self.composer.check_compiled(campaign, compiled, links, every_reader)

    def factory(
        self,
        compiled: CompiledCampaign,
        test: bool = False,
        auto_submitted: bool = False,
        carrier: Carrier | None = None,
    ) -> MessageFactory:
        return self.composer.factory(compiled, test, auto_submitted, carrier)

    def personalizer(
        self, campaign_slug: str, campaign_id: int = 0
    ) -> Callable[[Recipient], dict[str, str]]:
        return self.composer.personalizer(campaign_slug, campaign_id)

    def sendable_address(self, address: str) -> str:
        return self.composer.sendable_address(address)

    # -- sending ------------------------------------------------------------
    def check_sendable(self) -> None:
        """Refuse a real send without the footer details the law and inboxes require."""
        s = self.settings
        if not transport_class(s.transport).rehearsal and not s.get("newsletter", "postal_address"):
            raise ConfigError(
                f"[newsletter] postal_address is not set in {s.path}.",
                "Bulk email must carry the sender's physical postal address (CAN-SPAM); "
                'add postal_address = "..." before sending.',
            )
        s.public_url  # noqa: B018 - raises a ConfigError naming the key when unset

    def transport(self, slug: str) -> Transport:
        return make_transport(self.settings, slug)

    def batch_size(self) -> int:
        """Messages per batch: ``[delivery] batch_size`` within the transport's maximum."""
        d = self.settings.delivery
        return batch_size(transport_class(d.transport).max_batch, d.batch_size, float(d.rate_limit))

    def send_options(self, limit: int | None = None) -> SendOptions:
        d = self.settings.delivery
        return SendOptions(
            concurrency=d.concurrency,
            rate_limit=float(d.rate_limit),
            limit=limit,
            max_failure_rate=float(d.max_failure_rate),
        )

    def send(
        self,
        campaign: Campaign,
        compiled: CompiledCampaign,
        transport: Transport,
        retry: list[DeliveryStatus],
        limit: int | None = None,
        on_batch: Callable[[list[SendResult]], None] | None = None,
        auto_submitted: bool = False,
    ) -> CampaignRun:
        """Send the campaign's pending deliveries, holding a lease of this sender's own."""
        store = self.store
        row = store.ledger.ensure_campaign(campaign.slug, campaign.subject)
        if store.ledger.only_rehearsed(row, transport.name, rehearsal_transports()):
            # it was only rehearsed so far: that is kept as a summary; now the real send
            store.ledger.archive_rehearsal(row)
            row = store.ledger.campaign(campaign.slug) or row
        store.ledger.record_campaign_articles(row.id, [article_key(a) for a in campaign.articles])
        if store.ledger.campaign_page(campaign.slug) is None:  # a resumed send keeps the first
            try:
                subject, html = self.web_version(compiled)
            except TemplateError:  # `check` warns of it; readers still get their email
                pass
            else:
                store.ledger.save_campaign_page(
                    row.id, subject, campaign.preheader, html, in_archive=campaign.archive
                )
        holder = holder_id()
        # Senders share a campaign: each holds a lease of its own, renewed as it goes,
        # and claims recipients row by row; one whose lease lapses is presumed dead.
        lease_prefix = f"sender:{campaign.slug}:"
        lease_seconds = self.settings.delivery.lease_seconds
        with store.leases.lease(lease_prefix + holder, lease_seconds, holder) as lease:

            def batch_done(results: list[SendResult]) -> None:
                lease.renew()
                if on_batch:
                    on_batch(results)

            started = now_iso()
            try:
                store.ledger.recover_abandoned(row.id, transport.resend_safe, lease_prefix)
                store.ledger.requeue(row.id, retry)
                store.ledger.enqueue(row, campaign.audience, transport.name)
                report = send_campaign(
                    store.ledger,
                    transport,
                    self.factory(
                        compiled, auto_submitted=auto_submitted, carrier=transport.carrier()
                    ),
                    row.id,
                    self.personalizer(campaign.slug, row.id),
                    self.send_options(limit),
                    holder=holder,
                    on_batch=batch_done,
                )
                store.ledger.recover_abandoned(row.id, transport.resend_safe, lease_prefix)
                store.ledger.finish_if_done(row.id)
            except SendPaused:
                store.ledger.set_campaign_status(row.id, CampaignStatus.PAUSED)
                raise
            finally:
                transport.close()
                if transport.local_files:  # a file written as its reader was being erased
                    self._remove_files_of(
                        store.ledger.erased_during(row.id, started), campaign.slug
                    )
        return CampaignRun(report, store.ledger.campaign(campaign.slug) or row)

    def _remove_files_of(self, subscriber_ids: list[int], slug: str) -> None:
        folder = self.settings.outbox_dir / slug
        for sid in subscriber_ids:
            for path in folder.glob(f"{sid:08d}-*.eml*"):  # the id part names one reader
                path.unlink()

    def web_version(self, compiled: CompiledCampaign) -> tuple[str, str]:
        """(subject, HTML) of the campaign as shown on the web: the email for no one, with
        no reader's name, address or unsubscribe token."""
        public = self.settings.public_url
        anonymous = {
            "web_url": f"{public}/c/{compiled.slug}",
            "unsubscribe_url": f"{public}/unsubscribe",
        }
        try:
            subject, html, _text = compiled.preview(anonymous)
        except RecipientError as exc:
            raise TemplateError(
                f"The web version (the email for a reader with no data) cannot be built: "
                f"{exc.message}",
                "Make the template work for a reader without a name or attributes, e.g. "
                "{{ recipient.first_name or 'there' }}.",
            ) from None
        return subject, html

    def send_tests(
        self, compiled: CompiledCampaign, transport: Transport, addresses: list[str]
    ) -> list[SendResult]:
        """Marked test copies to ``addresses``; nothing is recorded as a delivery."""
        try:
            return send_test(
                transport,
                self.factory(compiled, test=True, carrier=transport.carrier()),
                [self.sendable_address(a) for a in addresses],
                self.personalizer(compiled.slug),
            )
        except DeliveryError as exc:
            raise DeliveryError(
                f"The test copy could not be sent: {exc.message}",
                "Nothing was recorded: a test copy is not a delivery. Check [delivery] in "
                f"{self.settings.path} and the provider, then run the same `send --test` again.",
            ) from None
        finally:
            transport.close()


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
