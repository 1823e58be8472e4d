"""Markdown articles with YAML front matter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from ..errors import InputError
from ..models import Article
from .excerpt import make_excerpt

_md = MarkdownIt("commonmark")
MORE_MARKER = "<!-- more -->"


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
    try:
        meta = yaml.safe_load(head) or {}
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


def plain_paragraphs(markdown: str) -> list[str]:
    """The text of each top-level paragraph, inline markup removed; headings skipped."""
    tokens = _md.parse(markdown)
    paragraphs: list[str] = []
    depth = 0
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open", "blockquote_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close", "blockquote_close"):
            depth -= 1
        elif token.type == "inline" and depth == 0 and tokens[i - 1].type == "paragraph_open":
            paragraphs.append(_inline_text(token))
    return paragraphs


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


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


def read_markdown_article(path: Path, excerpt_words: int = 60) -> Article:
    """An Article from a Markdown file: front matter for metadata, body for the excerpt."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"Article {source} does not exist.", "Check the path.") from None
    except UnicodeDecodeError:
        raise InputError(f"Article {source} is not UTF-8 text.", "Save it as UTF-8.") from None
    meta, body = split_front_matter(text, source)
    title = _text(meta, "title")
    if not title:
        raise InputError(
            f"{source}: the article has no title.", "Add `title:` to its front matter."
        )
    excerpt = _text(meta, "excerpt")
    if not excerpt:
        head, marker, _ = body.partition(MORE_MARKER)
        if marker:
            excerpt = " ".join(" ".join(plain_paragraphs(head)).split())
        else:
            excerpt = make_excerpt(plain_paragraphs(body), excerpt_words)
    return Article(
        title=title,
        url=_text(meta, "url"),
        author=_text(meta, "author"),
        date=_as_date(meta.get("date"), source),
        image=_text(meta, "image"),
        excerpt=excerpt,
        source=source,
        word_count=len(" ".join(plain_paragraphs(body)).split()),
    )
