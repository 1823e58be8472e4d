"""Placeholders: the opaque tokens a compiled output holds where a reader's value goes.

A token is ``<nonce><slot id>q``: lowercase letters and digits only, so MJML,
premailer, Markdown and URL-quoting all pass it through untouched. The nonce is
drawn for each build and checked against every input, so text from articles,
feeds, pages or subscribers can neither make a token nor consume one. Anything
that changed a token on its way (a filter on text that holds one, MJML computing
with one) is refused: a build is never silently wrong.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import TemplateError

NONCE_LENGTH = 12
_PREFIX = 6  # a token cut short still shows this much of the nonce


class NonceCollision(Exception):
    """The nonce drawn for this build already occurs in an input: draw another."""


def draw_nonce() -> str:
    """A random nonce: 12 lowercase letters, so a token is one word to every stage."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(NONCE_LENGTH))


@dataclass(frozen=True, slots=True)
class Tokens:
    """Placeholders of one build: ``<nonce><slot id>q``, lowercase letters and digits only,
    which MJML, premailer, Markdown and URL-quoting all pass through untouched."""

    nonce: str

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_LENGTH or not self.nonce.isalpha() or not self.nonce.islower():
            raise ValueError("a nonce is 12 lowercase letters")

    def token(self, slot_id: int) -> str:
        return f"{self.nonce}{slot_id}q"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.nonce) + r"(\d+)q")

    def occurs_in(self, text: str) -> bool:
        """Whether ``text`` holds the nonce or its start, in any case."""
        return self.nonce[:_PREFIX] in text.lower()

    def check(self, text: str, known: int, origin: str) -> None:
        """Refuse text where a token was changed (cased, cut, glued) or made up."""
        lowered = text.lower()
        start = 0
        prefix = self.nonce[:_PREFIX]
        pattern = self.pattern
        while (at := lowered.find(prefix, start)) >= 0:
            found = pattern.match(text, at)
            if found is None or int(found.group(1)) >= known:
                raise TemplateError(
                    f"{origin}: a reader's field was changed by something applied to the text "
                    f"around it (near {text[max(0, at - 30) : at + 30]!r}), so it would not show "
                    "each reader's own value.",
                    "Apply filters to the field itself, e.g. {{ recipient.first_name | upper }}, "
                    "not to a larger text that contains it.",
                )
            start = found.end()


def draw_tokens(inputs: Iterable[str], nonces: Iterator[str] | None = None) -> Tokens:
    """Tokens whose nonce occurs in none of ``inputs`` (articles, campaign text, settings)."""
    texts = [t.lower() for t in inputs if t]
    source = nonces if nonces is not None else iter(draw_nonce, None)
    for nonce in source:
        tokens = Tokens(nonce)
        if not any(nonce[:_PREFIX] in t for t in texts):
            return tokens
    raise TemplateError("Could not draw placeholders that occur in no input.")  # pragma: no cover
