"""What erasing a person means for stored data: which columns can hold them, how a
stored payload loses them, and the keyed hash that keeps them from coming back.

``Trace`` is one person as text: their address in every spelling (any case, the
domain in Unicode or A-labels, URL-encoded) and their names. It rewrites JSON by
walking it, so that a payload stays valid JSON and keeps everyone else's data;
an address matches only whole (``x-ana@`` is not ``ana@``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..addresses import address_forms, canonical_address

PLACEHOLDER = "[erased]"

# Hash schemes in the ``forgotten`` table. Rows from before keyed hashes are
# "sha256": anyone can compute one from a guessed address, so each is replaced by
# a keyed hash as soon as its address is seen again (an import, an event, a forget).
KEYED = "hmac-sha256"
LEGACY = "sha256"


def email_hash(address: str, secret: str) -> str:
    """HMAC-SHA256 of the canonical address under the project secret."""
    return hmac.new(
        secret.encode("utf-8"), canonical_address(address).encode("utf-8"), hashlib.sha256
    ).hexdigest()


_GMAIL = {"googlemail.com": "gmail.com"}


def mailbox_address(address: str) -> str:
    """One spelling per mailbox, for the limits only: ``A.Na+news@GoogleMail.com`` is
    ``ana@gmail.com``. The address is stored as typed."""
    local, _, domain = canonical_address(address).rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{_GMAIL.get(domain, domain)}"


def keyed(secret: str, label: str, value: str) -> str:
    """A keyed hash of ``value`` (HMAC-SHA256 under a key derived for ``label``)."""
    key = hmac.new(secret.encode(), f"newsletter-{label}-v1".encode(), hashlib.sha256).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def mailbox_key(secret: str, address: str) -> str:
    return keyed(secret, "mailbox", mailbox_address(address))


def legacy_email_hash(address: str) -> str:
    """The unkeyed hash earlier versions kept (only ever compared with, never written)."""
    return hashlib.sha256(f"newsletter-forgotten:{address.strip().lower()}".encode()).hexdigest()


def key_id(secret: str) -> str:
    """Names a secret without revealing it: which key a keyed hash was made with."""
    return hmac.new(secret.encode("utf-8"), b"newsletter erasure key", hashlib.sha256).hexdigest()[
        :16
    ]


@dataclass(frozen=True, slots=True)
class Erasable:
    """A table's columns that can hold a person: ``own`` ones are blanked on the
    person's own rows; ``text`` and ``json`` ones are rewritten wherever they
    mention the person; ``key`` identifies a row for the rewrite."""

    key: tuple[str, ...]
    columns: dict[str, str]

    def scanned(self) -> list[str]:
        return [c for c, kind in self.columns.items() if kind in ("text", "json")]


ERASABLE: dict[str, Erasable] = {
    "subscribers": Erasable(
        ("id",),
        {
            "email": "own",
            "email_key": "own",
            "first_name": "own",
            "last_name": "own",
            "subscribed_at": "own",
            "attributes": "json",
            "consent_source": "text",
            "status_reason": "text",
            "timezone": "own",
        },
    ),
    "deliveries": Erasable(
        ("campaign_id", "subscriber_id"),
        {"email": "own", "error": "text", "response": "json"},
    ),
    "events": Erasable(
        ("id",),
        {"email": "own", "detail": "text", "raw": "json", "url": "own", "user_agent": "own"},
    ),
    # consent proof and staff notes: blanked on the person's own rows, rewritten elsewhere
    "subscriber_log": Erasable(("id",), {"source": "text", "client_hash": "own", "detail": "text"}),
}

# Tables whose rows of a person are deleted whole when they are erased (forgotten.py):
# a sign-up request (its names, source and keyed hashes) keeps nothing of them.
DELETED_WHOLE = frozenset({"signup_requests"})

# Text columns that never hold a person's data (a test keeps this list complete).
NOT_PERSONAL = {
    # the web version: the email for no one, built and tested to hold no reader's data
    "campaign_pages.subject",
    "campaign_pages.preheader",
    "campaign_pages.html",
    "campaign_pages.created_at",
    "deliveries.transport",
    "rehearsals.transport",
    "rehearsals.started_at",
    "rehearsals.finished_at",
    "rehearsals.archived_at",
    "campaign_articles.article",
    "schema_migrations.name",
    "schema_migrations.applied_at",
    "subscribers.status",
    "subscribers.created_at",
    "subscribers.updated_at",
    "subscribers.status_changed_at",
    "subscribers.erased_at",
    "subscriber_tags.tag",
    "campaigns.slug",
    "campaigns.subject",
    "campaigns.status",
    "campaigns.transport",
    "campaigns.created_at",
    "campaigns.started_at",
    "campaigns.finished_at",
    "campaigns.paused_by",
    "deliveries.due_at",
    "deliveries.status",
    "deliveries.provider_message_id",
    "deliveries.claimed_by",
    "deliveries.claimed_at",
    "deliveries.sent_at",
    "deliveries.updated_at",
    "settings.key",
    "settings.value",
    "locks.name",
    "locks.holder",
    "locks.host",
    "locks.acquired_at",
    "locks.expires_at",
    "events.provider",
    "events.kind",
    "events.provider_message_id",
    "events.provider_event_id",
    "events.occurred_at",
    "events.received_at",
    "forgotten.email_hash",
    "forgotten.forgotten_at",
    "forgotten.scheme",
    "forgotten.key_id",
    "webhook_nonces.provider",
    "webhook_nonces.nonce",
    "webhook_nonces.seen_at",
    "digest_articles.period",
    "digest_articles.article",
    "subscriber_log.action",
    "subscriber_log.at",
    "subscriber_log.form_version",
    # sequences: names, step slugs and times; an erased reader's entries are deleted
    "sequences.name",
    "sequences.first_seen_at",
    "sequence_steps.slug",
    "sequence_steps.first_seen_at",
    "sequence_entries.sequence",
    "sequence_entries.entered_at",
}

# Characters that may stand next to an address without being part of it.
_ATEXT = r"\w.!#$%&'*+/?^`{|}~\-"
# Address-like words in a payload, to look up among erased hashes.
_ADDRESS_LIKE = re.compile(rf"[{_ATEXT}=]+@[\w-]+(?:\.[\w-]+)+")


class Trace:
    """One person as they appear in text: their address spellings and their names."""

    def __init__(self, addresses: Iterable[str], names: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for address in addresses:
            forms |= {f for f in address_forms(address) if "@" in f}  # never a bare word
        forms |= {quote(f, safe="") for f in forms}  # in a link's query string
        self.forms = forms
        self.canonical = {canonical_address(f) for f in forms if "@" in f}  # not URL-encoded
        spelled = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        self._address = (
            re.compile(rf"(?<![{_ATEXT}])(?:{spelled})(?![\w-]|\.[\w-])", re.IGNORECASE)
            if forms
            else None
        )
        # "Display Name" <address>, or Display Name <address> opening a list item
        # (To: a, b): the whole mailbox goes, its name with it
        self._mailbox = (
            re.compile(
                rf'(?:"(?:[^"\\]|\\.)*"\s*|(?:^|(?<=[,;:]))(?P<lead>\s*)[^\s,;:<>"][^,;:<>"]*?\s*)?'
                rf"<\s*(?:{spelled})\s*>",
                re.IGNORECASE,
            )
            if forms
            else None
        )
        words = {n.strip() for n in names if len(n.strip()) >= 2}
        called = "|".join(re.escape(n) for n in sorted(words, key=len, reverse=True))
        self._names = re.compile(rf"(?<!\w)(?:{called})(?!\w)", re.IGNORECASE) if words else None

    def mentions(self, text: str) -> bool:
        return self._address is not None and self._address.search(text) is not None

    def is_address(self, text: str | None) -> bool:
        return bool(text) and canonical_address(text or "") in self.canonical

    def like_patterns(self) -> list[str]:
        """SQL LIKE patterns (``\\`` escapes) that every spelling in any case matches.

        SQLite's LIKE folds only ASCII letters, so other characters become ``_``; the
        candidates it finds are then checked exactly by ``mentions``.
        """
        patterns = set()
        for form in self.forms:
            escaped = "".join(
                "_" if not c.isascii() else "\\" + c if c in "\\%_" else c for c in form
            )
            patterns.add(f"%{escaped}%")
        return sorted(patterns)

    def scrub_text(self, text: str, names: bool = False) -> str:
        if self._address is None or self._mailbox is None:
            return text
        names = names or self.mentions(text)
        text = self._mailbox.sub(lambda m: (m.group("lead") or "") + PLACEHOLDER, text)
        text = self._address.sub(PLACEHOLDER, text)
        if names and self._names is not None:
            text = self._names.sub(PLACEHOLDER, text)
        return text

    def scrub_json(self, value: Any, about: bool = False) -> Any:
        """``value`` without the person: addresses replaced wherever they are, names in
        the strings and objects that concern them, and what an object files under
        their address (``{"ana@x": {...}}``) dropped."""
        if isinstance(value, str):
            return self.scrub_text(value, about)
        if isinstance(value, list):
            return [self.scrub_json(v, about) for v in value]
        if isinstance(value, dict):
            concerned = about or any(
                isinstance(x, str) and self.mentions(x) for x in (*value, *value.values())
            )
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and self.mentions(key):
                    out[self.scrub_text(key, True)] = PLACEHOLDER
                else:
                    out[key] = self.scrub_json(item, concerned)
            return out
        return value

    def scrub_stored(self, stored: str | None, kind: str) -> str | None:
        """A stored column value without the person (the same object when untouched)."""
        if not stored:
            return stored
        if kind == "json":
            try:
                parsed = json.loads(stored)
            except ValueError:
                parsed = None
            else:
                cleaned = self.scrub_json(parsed)
                if cleaned == parsed:
                    return stored
                return json.dumps(cleaned, ensure_ascii=False, default=str)
        cleaned_text = self.scrub_text(stored)
        return stored if cleaned_text == stored else cleaned_text


def addresses_in(value: Any) -> set[str]:
    """Every address-like word in a JSON value or a text, keys included."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            for word in _ADDRESS_LIKE.findall(item):
                found.update((word, word.rpartition("=")[2]))  # also ana@x of ?email=ana@x
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found
