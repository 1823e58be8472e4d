"""Per reader: the reader's values joined into a compiled output's literal pieces.

At compile time every place that shows a reader's value holds an opaque token
(see ``placeholders``): made only of lowercase letters and digits, it passes MJML,
premailer, Markdown and URL-quoting untouched. After compiling, each output is
split once at the tokens; a reader's message is then a join of literal strings
and that reader's values (``Personal``, from ``CompiledCampaign.personalize``;
``message`` joins the MIME-encoded pieces the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError
from .placeholders import Tokens

if TYPE_CHECKING:
    from .variants import Variant


@dataclass(frozen=True, slots=True)
class MergeTemplate:
    """Literal, slot, literal, slot, ...: ``slot_ids`` index a variant's list of values."""

    literals: tuple[Any, ...]  # str, or bytes once encoded for a wire format
    slot_ids: tuple[int, ...]

    @classmethod
    def split(
        cls, text: str, tokens: Tokens, local: dict[int, int], origin: str = "the email"
    ) -> MergeTemplate:
        """Split ``text`` at ``tokens``; ``local`` maps each slot to its place in the variant.

        A token that was changed on its way (cased, cut, made up) is an error, never a
        silently wrong email.
        """
        tokens.check(text, max(local, default=-1) + 1, origin)
        pieces = tokens.pattern.split(text)
        ids = []
        for slot in pieces[1::2]:
            if int(slot) not in local:
                raise TemplateError(f"{origin}: a placeholder {slot} belongs to no reader field.")
            ids.append(local[int(slot)])
        return cls(tuple(pieces[0::2]), tuple(ids))

    @classmethod
    def static(cls, text: Any) -> MergeTemplate:
        return cls((text,), ())

    @property
    def is_static(self) -> bool:
        return not self.slot_ids

    def merge(self, values: Sequence[Any], escape: Callable[[Any], Any] | None = None) -> Any:
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


@dataclass(frozen=True, slots=True)
class Personal:
    """One reader's variant and values (as HTML and as text): what a message is merged from."""

    variant: Variant
    values: tuple[Any, ...]
    html_values: list[str]
    text_values: list[str]
