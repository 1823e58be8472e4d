"""Markdown articles with YAML front matter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from ..errors import InputError
from ..models import Article
from .excerpt import drop_controls, excerpt_from_html, word_count
from .markup import render_text_markdown
from .urls import written_address

_md = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
    ["replacements", "smartquotes"]
)
# the excerpt as text (the plain-text part) keeps quotes as typed
_md_typed_quotes = MarkdownIt("commonmark", {"html": True, "typographer": True}).enable(
    ["replacements"]
)


MAX_FRONT_MATTER = 64 * 1024  # characters
MAX_DEPTH = 16


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.hint = hint


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases and with a nesting limit: a few hundred bytes
    of anchors and aliases can expand to gigabytes, and deep nesting exhausts the stack."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _Refused(
                "uses a YAML alias (*name)",
                "Write each value out in full: front matter does not use anchors or aliases.",
            )
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            raise _Refused(
                f"is nested more than {MAX_DEPTH} levels deep",
                "Front matter is a flat list of keys with short lists under some of them.",
            )
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth


def split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """(front matter mapping, body) of a ``---``-delimited Markdown document."""
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            head, body = "".join(lines[1:i]), "".join(lines[i + 1 :])
            break
    else:
        raise InputError(
            f"{source}: the front matter starts with '---' but never ends.",
            "Close it with a line containing only '---'.",
        )
    if len(head) > MAX_FRONT_MATTER:
        raise InputError(
            f"{source}: the front matter is {len(head):,} characters long; at most "
            f"{MAX_FRONT_MATTER:,} are read.",
            "Front matter holds a few keys (title, date, articles...): move long text below it.",
        )
    try:
        meta = yaml.load(head, Loader=_FrontMatterLoader) or {}
    except _Refused as exc:
        raise InputError(f"{source}: the front matter {exc}.", exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark else ""
        raise InputError(
            f"{source}: the front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}.",
            'Quote values that contain a colon, e.g. title: "Rest: a practice".',
        ) from None
    if not isinstance(meta, dict):
        raise InputError(f"{source}: the front matter must be a mapping of keys to values.")
    return meta, body


def _as_date(value: Any, source: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InputError(
            f"{source}: date {value!r} is not a date.", "Write it as YYYY-MM-DD."
        ) from None


def _text(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return None if value is None else str(value).strip()


def _plain(meta: dict[str, Any], key: str) -> str | None:
    """A text value of the front matter without control characters."""
    value = _text(meta, key)
    return None if value is None else drop_controls(value).strip()


def read_markdown_article(path: Path, excerpt_words: int = 60) -> Article:
    """An Article from a Markdown file: front matter for metadata, body for the excerpt."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"Article {source} does not exist.", "Check the path.") from None
    except UnicodeDecodeError:
        raise InputError(f"Article {source} is not UTF-8 text.", "Save it as UTF-8.") from None
    # a control character pasted into the file (YAML refuses one in the front matter)
    # or written as a YAML escape ("\v") is dropped, as everywhere in article text
    meta, body = split_front_matter(drop_controls(text), source)
    title = _plain(meta, "title")
    if not title:
        raise InputError(
            f"{source}: the article has no title.", "Add `title:` to its front matter."
        )
    body_html = render_text_markdown(_md, body, source, strict=False)
    explicit = _text(meta, "excerpt")
    text_of_excerpt, words = (explicit, None) if explicit else (body, excerpt_words)
    url = _text(meta, "url")
    excerpt_html, _ = excerpt_from_html(
        render_text_markdown(_md, text_of_excerpt, source, strict=False), words, url
    )
    _, excerpt = excerpt_from_html(
        render_text_markdown(_md_typed_quotes, text_of_excerpt, source, strict=False), words, url
    )
    return Article(
        title=title,
        url=written_address(_text(meta, "url"), "url", source),
        author=_plain(meta, "author"),
        date=_as_date(meta.get("date"), source),
        image=written_address(_text(meta, "image"), "image", source),
        excerpt=excerpt,
        excerpt_html=excerpt_html,
        source=source,
        word_count=word_count(body_html),
    )
