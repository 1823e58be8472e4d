"""A newsletter project as a library user holds it: its settings, its database and its
campaign workshop.

``Project.load()`` reads newsletter.toml; ``store`` is the database (opened on first
use) whose parts the use cases take (``store.subscribers``, ``store.ledger``, ...);
``composer`` builds and checks campaigns. The use cases are functions beside it that
take only what they use: ``members`` (the subscribers commands), ``report``,
``digest``, ``archive``, ``signup``, ``plan`` and ``send``. A few entry points here hide a
decision a caller should not have to make (which files an erasure reaches, which
transport's rules an address is checked by). README.md's "Python library" section
shows them in use.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import TracebackType

from . import members
from .campaigns import enterable_sequence
from .catalog import (
    load_settings,
)
from .composer import Composer
from .config import Settings
from .errors import (
    NewsletterError,
)
from .store import Store, now_iso, open_store

SCAFFOLD = Path(__file__).resolve().parent / "scaffold"


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
        return Composer(self.settings, lambda: self.store, self.refresh)

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
        self,
        path: Path,
        tags: tuple[str, ...] = (),
        status: str = "active",
        enter: str | None = None,
    ) -> members.SubscriberImport:
        """Import a subscribers CSV file, its addresses checked against what the
        configured transport can carry; with ``enter``, its active readers enter that
        sequence now (an import enters nobody otherwise)."""
        entering = None
        if enter is not None:
            enterable_sequence(self.settings, enter)  # before anything is imported
            sequences = self.store.sequences

            def entering(keys: list[str]) -> int:
                return sequences.enter(enter, keys, now_iso())

        return members.import_subscribers(
            self.store.subscribers, self.composer.carrier, path, tags, status, entering
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
