"""Excerpt rules: opening paragraphs up to a word budget, cut at a sentence boundary."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words that end in a full stop without ending a sentence.
_ABBREVIATIONS = {
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "st",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "jr",
    "sr",
    "no",
    "approx",
    "dept",
    "est",
    "inc",
    "ltd",
    "co",
    "fig",
    "vol",
    "ph.d",
    "m.d",
    "u.s",
    "a.m",
    "p.m",
    "lcsw",
    "lmft",
    "psy.d",
}
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations such as "Dr." or "e.g." intact."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        before = text[start : match.start()].rsplit(None, 1)
        last_word = before[-1].lower().strip("(\"'“‘") if before else ""
        if match.group().startswith(".") and (last_word in _ABBREVIATIONS or len(last_word) == 1):
            continue
        following = text[end:].lstrip()
        if following and not (following[0].isupper() or following[0] in "\"'“‘(0123456789"):
            continue
        sentences.append(text[start:end].strip())
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def make_excerpt(paragraphs: Iterable[str], max_words: int = 60) -> str:
    """The opening paragraphs, whole sentences only, within ``max_words`` words.

    The first sentence is always kept, even when it alone is over the budget,
    so an excerpt is never empty and never ends mid-sentence.
    """
    chosen: list[str] = []
    words = 0
    for paragraph in paragraphs:
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        for sentence in split_sentences(paragraph):
            n = len(sentence.split())
            if chosen and words + n > max_words:
                return " ".join(chosen)
            chosen.append(sentence)
            words += n
        if words >= max_words:
            break
    return " ".join(chosen)
