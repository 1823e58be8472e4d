"""Article sources, one reader each behind one function: ``ArticleReader.read``.

    Markdown file (front matter)  -> markdown.read_markdown_article
    HTML file or article URL      -> htmlpage.read_html_page
    RSS / Atom feed (file or URL) -> feed.read_feed
    folder                        -> every .md and .html file in it

URLs are fetched through ``fetch.Fetcher`` and its on-disk cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..images import ProjectImages
from ..models import Article
from .excerpt import excerpt_from_html
from .fetch import Fetcher
from .markdown import read_markdown_article, split_front_matter

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "ArticleReader",
    "Fetcher",
    "excerpt_from_html",
    "read_markdown_article",
    "reader_for",
    "split_front_matter",
]

FEED_SUFFIXES = {".rss", ".atom", ".xml", ".rdf"}
HTML_SUFFIXES = {".html", ".htm"}


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def looks_like_feed(data: bytes, content_type: str = "") -> bool:
    if (
        any(t in content_type for t in ("rss", "atom", "/xml", "+xml"))
        and "html" not in content_type
    ):
        return True
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<?xml") and any(t in head for t in (b"<rss", b"<feed", b"<rdf"))


def reader_for(settings: Settings, refresh: bool = False) -> ArticleReader:
    """The project's reader: its ``[content]`` settings, its fetch cache, and the files
    outside the project it may read (the ``articles`` folder and feed files named)."""
    content = settings.content
    fetcher = Fetcher(
        settings.cache_dir,
        refresh=refresh,
        timeout=float(content.fetch_timeout),
        deadline=float(content.fetch_deadline),
    )
    named = [settings.resolve(feed) for feed in content.feeds if not is_url(feed)]
    images = ProjectImages.of(settings)
    return ArticleReader(
        settings.root, fetcher, content.excerpt_words, (settings.articles_dir, *named), images
    )


@dataclass(frozen=True, slots=True)
class ArticleReader:
    """Reads articles from paths (relative to ``root``, the project folder) and URLs.

    Files are read only inside ``root`` or ``elsewhere`` (the folders and feed files
    ``[content]`` names outside the project), links followed: a campaign file names its
    articles, and what they say goes out by email, so ``../../home/...`` is refused.
    """

    root: Path
    fetcher: Fetcher
    excerpt_words: int = 60
    elsewhere: tuple[Path, ...] = ()
    images: ProjectImages | None = None  # `image: images/x.jpg` -> its published address
    # Feeds are read once per run; the cached entries are frozen records in a tuple, so
    # no campaign can change what the next one gets.
    _feeds: dict[str, tuple[Article, ...]] = field(default_factory=dict, repr=False)

    def read(self, source: str) -> list[Article]:
        """Every article a source yields: one for a page or file, all for a feed or folder."""
        if is_url(source):
            return self._read_url(source)
        path = self.local_path(source)
        if path.is_dir():
            return self._read_folder(path)
        if not path.is_file():
            raise InputError(f"{source} does not exist.", "Check the path or the URL.")
        return self._read_file(source, path)

    def _read_url(self, source: str) -> list[Article]:
        """A feed's entries or a page's article, as the fetched body says."""
        fetched = self.fetcher.get(source)
        if looks_like_feed(fetched.body, fetched.content_type):
            return list(self.feed(source))
        from .htmlpage import read_html_page

        return [
            read_html_page(fetched.body, source, fetched.url, self.excerpt_words, fetched.charset)
        ]

    def _read_folder(self, path: Path) -> list[Article]:
        """The articles of the folder's Markdown and HTML files, by file name."""
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in {".md", *HTML_SUFFIXES} and p.is_file()
        )
        return [a for f in files for a in self.read(str(f))]

    def _read_file(self, source: str, path: Path) -> list[Article]:
        """A Markdown article, a feed's entries or an HTML page's article, by the file's
        suffix or, failing that, its first bytes."""
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown"):
            article = read_markdown_article(path, self.excerpt_words)
            image = self.published_image(article.image)
            return [article if image == article.image else replace(article, image=image)]
        data = path.read_bytes()
        if suffix in FEED_SUFFIXES or looks_like_feed(data):
            return list(self.feed(source))
        if suffix in HTML_SUFFIXES or b"<html" in data[:4096].lower():
            from .htmlpage import read_html_page

            return [read_html_page(data, str(path), None, self.excerpt_words)]
        raise InputError(
            f"{source} is not an article this tool can read.",
            "Use a Markdown (.md) or HTML (.html) file, an RSS/Atom feed, or an article URL.",
        )

    def published_image(self, written: str | None) -> str | None:
        """An ``image:`` as the email shows it: a project image under ``public_url``."""
        return self.images.published(written) if self.images is not None else written

    def local_path(self, source: str) -> Path:
        """The file or folder ``source`` names, links followed, if it may be read."""
        try:
            path = (self.root / source).resolve()
        except (OSError, ValueError):  # a NUL byte, a name too long
            raise InputError(f"{source!r} is not a usable path.", "Check the path.") from None
        allowed = (self.root.resolve(), *(p.resolve() for p in self.elsewhere))
        if any(path == folder or path.is_relative_to(folder) for folder in allowed):
            return path
        written = Path(os.path.normpath(self.root / source))
        link = f" (which leads to {path})" if written != path else ""
        raise InputError(
            f"{source}{link} is outside the project folder {self.root}, so it is not read: "
            "articles, feeds and pages are read from the project's own files.",
            "Move or copy it into the project. A folder of articles kept elsewhere (the "
            "blog's own posts) can be named in newsletter.toml: [content] articles = "
            '"/path/to/posts"; its files are then read too.',
        )

    def feed(self, source: str) -> tuple[Article, ...]:
        """A feed's entries, newest first, read once per run."""
        if source not in self._feeds:
            from .feed import read_feed

            if is_url(source):
                fetched = self.fetcher.get(source)
                data, base = fetched.body, fetched.url
            else:
                path = self.local_path(source)
                if not path.is_file():
                    raise InputError(f"Feed {source} does not exist.", "Check the path.")
                data, base = path.read_bytes(), None
            self._feeds[source] = tuple(read_feed(data, source, base, self.excerpt_words))
        return self._feeds[source]

    def feed_entry(self, feed: str, link: str | None) -> Article:
        """The entry of ``feed`` whose link is ``link`` (for an entry without a usable link,
        its id); the newest one without ``link``."""
        entries = self.feed(feed)
        if not entries:
            raise InputError(f"The feed {feed} has no entries.")
        if link is None:
            return entries[0]
        for article in entries:
            if article.url and _same_link(article.url, link):
                return article
        for article in entries:  # an entry without a usable link, by its id
            if not article.url and article.source == f"{feed}#{link}":
                return article
        raise InputError(
            f"The feed {feed} has no entry linking to {link}.",
            "`newsletter articles " + feed + "` lists its entries and their links.",
        )


def _same_link(a: str, b: str) -> bool:
    return a.split("#")[0].rstrip("/") == b.split("#")[0].rstrip("/")


def article_key(article: Article) -> str:
    """What identifies an article across campaigns and digests: its URL, else its source."""
    return (article.url or article.source).split("#")[0].split("?")[0].rstrip("/")
