"""RSS and Atom feeds (feedparser): one Article per entry."""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax import SAXException

from ..errors import InputError
from ..models import Article
from .excerpt import drop_controls, excerpt_from_html, word_count
from .htmlpage import image_sources
from .urls import first_web_address


def read_feed(data: bytes, source: str, base_url: str | None, excerpt_words: int) -> list[Article]:
    """Every entry of the feed, newest first."""
    import feedparser

    # Not sanitised here: a "<!-- more -->" marker must survive, and the excerpt keeps
    # only a few inline tags anyway.
    # Relative addresses in an entry are resolved against the entry's own link (the
    # article's page), not against where the feed was fetched from; xml:base still applies.
    parsed = feedparser.parse(data, sanitize_html=False)
    problem = parsed.get("bozo_exception")
    # A feed that is not well-formed XML is cut off or broken: reading what parsed
    # would silently lose entries. (Other bozo reasons, e.g. a declared encoding
    # that was overridden, are harmless.)
    if isinstance(problem, SAXException) or (parsed.get("bozo") and not parsed.entries):
        reason = problem
        raise InputError(
            f"{source} is not a feed that can be read ({reason}).",
            "Check that the address is the blog's RSS or Atom feed (often /feed, /rss "
            "or /atom.xml), not a web page.",
        )
    if not parsed.get("version") and not parsed.entries:
        raise InputError(
            f"{source} is not an RSS or Atom feed.",
            "Give the feed's address (often /feed, /rss or /atom.xml) or the article's own URL.",
        )
    base = parsed.feed.get("link") or base_url
    articles = [_entry(entry, source, base, excerpt_words) for entry in parsed.entries]
    articles.sort(key=lambda a: a.date or dt.date.min, reverse=True)
    return articles


def _entry(entry: Any, source: str, base: str | None, excerpt_words: int) -> Article:
    # The entry's link, else another of its alternate links: only a web address is an
    # article's link (a javascript: or data: one is passed over), a relative one is
    # resolved against the channel's link or where the feed was fetched from.
    url = first_web_address(
        [entry.get("link")]
        + [
            link.get("href")
            for link in entry.get("links", [])
            if link.get("rel", "alternate") == "alternate"
        ],
        base,
    )
    content = ""
    if entry.get("content"):
        content = max((c.get("value", "") for c in entry.content), key=len)
    summary = entry.get("summary", "")
    body = content or summary
    entry_base = url or base
    # A feed's summary beside full content is as often the platform's automatic cut as
    # the author's words, so the excerpt comes from the content by the usual rules
    # (a <!-- more --> marker, else the opening paragraphs); a campaign file can still
    # give its own `excerpt:`.
    excerpt_html, excerpt = excerpt_from_html(body, excerpt_words, entry_base)
    images = [
        media.get("url")
        for media in entry.get("media_content", []) + entry.get("media_thumbnail", [])
    ]
    images += [
        enclosure.get("href")
        for enclosure in entry.get("enclosures", [])
        if str(enclosure.get("type", "")).startswith("image/")
    ]
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    return Article(
        title=_plain(entry.get("title")) or "(untitled)",
        url=url,
        author=_plain(entry.get("author")) or None,
        date=dt.date(*when[:3]) if when else None,
        image=first_web_address(images + image_sources(body), entry_base),
        excerpt=excerpt,
        excerpt_html=excerpt_html,
        source=f"{source}#{url or entry.get('id', '')}",
        word_count=word_count(body),
    )


def _plain(value: Any) -> str:
    """A feed's text value on one line, without control characters ("" for none)."""
    return " ".join(drop_controls(str(value or "")).split())
