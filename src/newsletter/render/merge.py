"""Per-recipient merge fields that survive MJML and CSS inlining.

At compile time a template sees ``recipient.first_name`` (or
``recipient.first_name_or("friend")``, ``unsubscribe_url``...) as an opaque
token made only of lowercase letters and digits: premailer URL-quotes braces
and spaces inside ``href`` and mjml-python rewrites markup, but a bare word
passes both untouched. After compiling, each output is split once at the
tokens; merging a recipient is then a join of literal strings and their values.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(r"zznlm(\d+)zz")


@dataclass(frozen=True)
class Slot:
    name: str
    fallback: str = ""


@dataclass
class SlotRegistry:
    """Hands out one token per distinct (field, fallback) pair."""

    slots: list[Slot] = field(default_factory=list)
    _index: dict[Slot, int] = field(default_factory=dict)

    def token(self, name: str, fallback: str = "") -> str:
        slot = Slot(name, fallback)
        if slot not in self._index:
            self._index[slot] = len(self.slots)
            self.slots.append(slot)
        return f"zznlm{self._index[slot]}zz"

    def values(self, fields: Mapping[str, Any]) -> list[str]:
        """Each slot's value for one recipient: the field, or the fallback when empty."""
        out = []
        for slot in self.slots:
            value = fields.get(slot.name)
            out.append(str(value) if value not in (None, "") else slot.fallback)
        return out


class RecipientFields:
    """``recipient`` in templates: every attribute is a merge token, not a value."""

    def __init__(self, registry: SlotRegistry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._registry.token(name)

    def __getitem__(self, name: str) -> str:
        return self._registry.token(name)

    def get(self, name: str, fallback: str = "") -> str:
        """The field ``name``, or ``fallback`` for a recipient who has none."""
        return self._registry.token(name, str(fallback))

    def first_name_or(self, fallback: str) -> str:
        return self._registry.token("first_name", str(fallback))


@dataclass(frozen=True)
class MergeTemplate:
    """A compiled output split at merge tokens: literal, slot, literal, slot, ..."""

    literals: tuple[Any, ...]  # str, or bytes once encoded for a wire format
    slot_ids: tuple[int, ...]

    @classmethod
    def split(cls, text: str) -> MergeTemplate:
        pieces = TOKEN.split(text)
        return cls(tuple(pieces[0::2]), tuple(int(i) for i in pieces[1::2]))

    @property
    def is_static(self) -> bool:
        return not self.slot_ids

    def merge(self, values: list[str], escape: Callable[[str], Any] | None = None) -> Any:
        """The literals joined with each slot's value (escaped); str or bytes like the literals."""
        if not self.slot_ids:
            return self.literals[0]
        parts = [self.literals[0]]
        for slot_id, literal in zip(self.slot_ids, self.literals[1:], strict=True):
            value = values[slot_id]
            parts.append(escape(value) if escape else value)
            parts.append(literal)
        return self.literals[0][:0].join(parts)

    def map_literals(self, transform: Callable[[str], Any]) -> MergeTemplate:
        """The same template with every literal transformed once (e.g. MIME-encoded)."""
        return MergeTemplate(tuple(transform(s) for s in self.literals), self.slot_ids)


def escape_html(value: str) -> str:
    return html.escape(value, quote=True)
