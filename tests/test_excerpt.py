"""Excerpts: whole sentences within the word budget, abbreviations left whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from newsletter.content import excerpt_from_html, read_markdown_article
from newsletter.content.excerpt import split_sentences
from newsletter.errors import InputError


def test_sentences_keep_abbreviations_whole() -> None:
    text = "My supervisor, Dr. Okafor, asked why. We use tools, e.g. journaling, daily! Is it rest? Yes."
    assert split_sentences(text) == [
        "My supervisor, Dr. Okafor, asked why.",
        "We use tools, e.g. journaling, daily!",
        "Is it rest?",
        "Yes.",
    ]


def test_excerpt_cuts_at_a_sentence_boundary_within_budget() -> None:
    body = "<p>One two three four five. Six seven eight nine ten. Eleven twelve.</p><p>Next paragraph here.</p>"
    assert excerpt_from_html(body, 11)[1] == "One two three four five. Six seven eight nine ten."
    assert excerpt_from_html(body, 3)[1] == "One two three four five.", (
        "never empty, never mid-sentence"
    )
    assert excerpt_from_html(body, 100)[1].endswith("Next paragraph here.")


def test_excerpt_keeps_safe_inline_markup_and_stops_at_a_heading() -> None:
    body = (
        "<h2>Skipped heading</h2>"
        '<p>Rest is <strong>clinical</strong> work, <a href="/why?x=1">e.g. here</a>. '
        "<script>alert(1)</script><span onclick='x()'>Second</span> sentence <img src=x.png>ends.</p>"
        "<h2>Next section</h2><p>Never this.</p>"
    )
    html, text = excerpt_from_html(body, 100, "https://blog.example.org/post/")
    assert html == (
        '<p>Rest is <strong>clinical</strong> work, <a href="https://blog.example.org/why?x=1">'
        "e.g. here</a>. Second sentence ends.</p>"
    )
    assert text == "Rest is clinical work, e.g. here. Second sentence ends."
    assert "Never this" not in text and "Skipped" not in text


def test_markdown_article_metadata_and_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text(
        '---\ntitle: "Rest: a practice"\nauthor: Renée Castillo, LMFT\ndate: 2026-10-15\n'
        "url: https://blog.example.org/rest\nimage: https://blog.example.org/rest.jpg\n---\n"
        "## A heading that is not the excerpt\n\n"
        "Rest is **clinical** work. It is also *hard* to protect. Here is how we try.\n\n"
        "1. A list item\n\nAnother paragraph follows.\n",
        encoding="utf-8",
    )
    article = read_markdown_article(path, excerpt_words=12)
    assert article.title == "Rest: a practice"
    assert article.author == "Renée Castillo, LMFT"
    assert article.date == dt.date(2026, 10, 15)
    assert article.url == "https://blog.example.org/rest"
    assert article.image == "https://blog.example.org/rest.jpg"
    assert article.excerpt == "Rest is clinical work. It is also hard to protect."


def test_explicit_excerpt_and_more_marker(tmp_path: Path) -> None:
    explicit = tmp_path / "e.md"
    explicit.write_text("---\ntitle: T\nexcerpt: Given here.\n---\nBody text. More.\n")
    assert read_markdown_article(explicit).excerpt == "Given here."
    marked = tmp_path / "m.md"
    marked.write_text(
        "---\ntitle: T\n---\nFirst part, kept whole\neven when long.\n\n<!-- more -->\n\nRest.\n"
    )
    assert read_markdown_article(marked).excerpt == "First part, kept whole even when long."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("---\ntitle: a: b: c\n---\nx", "not valid YAML"),
        ("---\ntitle: T\nno end", "never ends"),
        ("---\nauthor: X\n---\nBody.", "has no title"),
        ("---\ntitle: T\ndate: last week\n---\nBody.", "is not a date"),
    ],
)
def test_broken_front_matter_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.md"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_markdown_article(path)
    assert str(path) in str(info.value)
