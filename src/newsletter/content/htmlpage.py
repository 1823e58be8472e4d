"""Saved or fetched HTML pages: the article's own content and metadata, not the site's.

Metadata comes from what pages really carry, best first: JSON-LD
(``Article``/``BlogPosting``), Open Graph and ``<meta>`` tags, then the page
itself (``h1``, ``<time datetime>``, a byline). The main content is found by
readability-lxml; then what readability keeps but an excerpt must not carry
(sign-up forms, share buttons, "Previous / Next" links, bylines) is removed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from ..errors import InputError
from ..models import Article
from .excerpt import drop_controls, excerpt_from_html, word_count
from .urls import first_web_address, is_relative, web_address

_CHROME = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|breadcrumbs?|header|footer|sidebar|widget|share|sharing|"
    r"social|subscribe|subscription|signup|sign-up|newsletter|cta|promo|banner|announcement|"
    r"cookie|consent|related|read-more|more-posts|recommend|comments?|pagination|"
    r"post-navigation|item-pagination|nav-links|nav-previous|nav-next|prev|next|author-box|"
    r"byline|tags|categories|popup|modal|advert|ads?|"
    r"excerpt|subtitle|dek|standfirst|kicker)($|[\s_-])",
    re.I,
)
_PAGINATION_TEXT = re.compile(r"^\W*(previous|next|older|newer)( post| article)?\b", re.I)
_TITLE_SUFFIX = re.compile(r"\s+[|\-–—·:]\s+[^|\-–—·:]{2,60}$")
ARTICLE_TYPES = {
    "Article",
    "BlogPosting",
    "NewsArticle",
    "TechArticle",
    "Report",
    "SocialMediaPosting",
    "ScholarlyArticle",
}


def image_sources(fragment: str) -> list[str]:
    """The ``src`` of every image in an HTML fragment, in order."""
    if not fragment.strip():
        return []
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    sources = (img.get("src") or img.get("data-src") or "" for img in root.iter("img"))
    return [src for src in sources if src.strip()]


def decode_page(data: bytes, charset: str | None) -> lxml_html.HtmlElement:
    """The parsed page: the server's charset, else the page's own <meta charset>."""
    if charset:
        try:
            return lxml_html.document_fromstring(data.decode(charset, errors="replace"))
        except LookupError:
            pass
    parser = lxml_html.HTMLParser(encoding=_meta_charset(data))
    return lxml_html.document_fromstring(data, parser=parser)


def _meta_charset(data: bytes) -> str | None:
    head = data[:4096].decode("ascii", errors="ignore")
    match = re.search(r"""<meta[^>]+charset=["']?([\w-]+)""", head, re.I)
    if match:
        return match.group(1).lower()
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        return best.encoding if best else "windows-1252"


def read_html_page(
    data: bytes, source: str, url: str | None, excerpt_words: int, charset: str | None = None
) -> Article:
    """An Article from an HTML page; InputError when the page holds no article."""
    doc = decode_page(data, charset)
    meta = _metadata(doc)
    base = page_address(doc, url, meta["urls"])
    title = meta.get("title") or _h1(doc)
    author = meta.get("author") or _byline(doc)
    date = meta.get("date") or _time_date(doc)
    body = main_content(doc, source)  # changes ``doc``: metadata first
    if not title:
        raise InputError(
            f"{source}: no article title was found (no JSON-LD headline, og:title, <h1> "
            "or <title>).",
            "Check that this is an article page, or give the title in the campaign file.",
        )
    excerpt_html, excerpt = excerpt_from_html(body, excerpt_words, base)
    if meta.get("description") and not excerpt:
        excerpt_html, excerpt = excerpt_from_html(f"<p>{meta['description']}</p>", None, base)
    if not excerpt:
        raise InputError(
            f"{source}: no article text was found on this page.",
            "Check that the address is an article, not a listing or a sign-in page.",
        )
    own = _resolved(meta["urls"], base, source, "the page's address", "")
    image = _resolved(
        [*meta["images"], *image_sources(body)],
        base,
        source,
        "the image",
        ", or set `image:` for it in the campaign file",
    )
    return Article(
        title=title,
        url=own or web_address(url, None),
        author=author,
        date=date,
        image=image,
        excerpt=excerpt,
        excerpt_html=excerpt_html,
        source=source,
        word_count=word_count(body),
    )


def page_address(
    doc: lxml_html.HtmlElement, fetched_from: str | None, own: list[str]
) -> str | None:
    """What relative addresses on the page are resolved against, as a browser would:
    the address it was fetched from (after redirects), or for a saved page its own
    absolute address (canonical, og:url or JSON-LD url); a ``<base href>`` applies to
    either. None when nothing says where the page lives."""
    address = web_address(fetched_from, None) or first_web_address(own, None)
    declared = doc.find(".//base[@href]")
    if declared is not None:
        return web_address(declared.get("href"), address) or address
    return address


def _resolved(
    candidates: list[str], base: str | None, source: str, what: str, fix: str
) -> str | None:
    """The first candidate that is a web address once resolved against ``base``; those
    that are not (``javascript:``, ``data:``, ...) are passed over. A relative one with
    no ``base`` to resolve it against is an InputError: the page says where, but not
    where from."""
    for candidate in candidates:
        if base is None and is_relative(candidate):
            raise InputError(
                f"{source}: {what} {candidate.strip()!r} is a relative address and the "
                "page's own address is unknown.",
                f"Give the article's URL instead of a saved file{fix}.",
            )
        found = web_address(candidate, base)
        if found:
            return found
    return None


# -- metadata -----------------------------------------------------------------------------
def _metadata(doc: lxml_html.HtmlElement) -> dict[str, Any]:
    """What the page says about its article, each field from the best source that has
    it: JSON-LD, then Open Graph and ``<meta>`` tags, then ``<title>``. Fields found
    nowhere are left out, except the addresses and images: those are every candidate,
    best first (each may be relative, or not a web address at all; read_html_page takes
    the first that can be used)."""
    ld = _json_ld_article(doc) or {}
    metas = {
        (m.get("property") or m.get("name") or "").lower(): m.get("content")
        for m in doc.iter("meta")
        if m.get("content")
    }
    found = {
        "title": _title(doc, ld, metas),
        "author": _author(ld, metas),
        "date": _published(ld, metas),
        "images": _strings(
            [_ld_image(ld.get("image")), metas.get("og:image"), metas.get("twitter:image")]
        ),
        "urls": _strings([ld.get("url"), _canonical(doc), metas.get("og:url")]),
        "description": _description(ld, metas),
    }
    return {k: v for k, v in found.items() if v or k in ("urls", "images")}


def _title(doc: lxml_html.HtmlElement, ld: dict[str, Any], metas: dict[str, Any]) -> str | None:
    """The headline: JSON-LD's, Open Graph's or Twitter's, else the page's <title>;
    the site's name is cut off the end."""
    title = (
        _clean(ld.get("headline") or ld.get("name"))
        or _strip_site(_clean(metas.get("og:title")), metas)
        or _strip_site(_clean(metas.get("twitter:title")), metas)
    )
    if title:
        return title
    element = doc.find(".//title")
    if element is not None and element.text:
        return _strip_site(_clean(element.text), metas, force=True)
    return title


def _author(ld: dict[str, Any], metas: dict[str, Any]) -> str | None:
    """The author's name; a profile address is not a name."""
    if author := _ld_author(ld.get("author")):
        return author
    meta = metas.get("author") or metas.get("article:author") or ""
    return None if meta.startswith("http") else _clean(meta)


def _published(ld: dict[str, Any], metas: dict[str, Any]) -> dt.date | None:
    return (
        _date(ld.get("datePublished") or ld.get("dateCreated"))
        or _date(metas.get("article:published_time"))
        or _date(metas.get("date"))
        or _date(metas.get("dc.date"))
    )


def _description(ld: dict[str, Any], metas: dict[str, Any]) -> str | None:
    return (
        _clean(ld.get("description"))
        or _clean(metas.get("og:description"))
        or _clean(metas.get("description"))
    )


def _canonical(doc: lxml_html.HtmlElement) -> str | None:
    return next(
        (
            link.get("href")
            for link in doc.iter("link")
            if "canonical" in (link.get("rel") or "").lower().split()
        ),
        None,
    )


def _strings(values: list[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()]


def _json_ld_article(doc: lxml_html.HtmlElement) -> dict[str, Any] | None:
    for script in doc.iter("script"):
        if (script.get("type") or "").lower() != "application/ld+json" or not script.text:
            continue
        try:
            data = json.loads(script.text)
        except ValueError:
            continue
        for node in _ld_nodes(data):
            types = node.get("@type")
            types = types if isinstance(types, list) else [types]
            if ARTICLE_TYPES & {str(t) for t in types}:
                return node
    return None


def _ld_nodes(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [n for item in data for n in _ld_nodes(item)]
    if isinstance(data, dict):
        return [data, *(_ld_nodes(data["@graph"]) if "@graph" in data else [])]
    return []


def _ld_author(value: Any) -> str | None:
    if isinstance(value, list):
        names = [n for n in (_ld_author(v) for v in value) if n]
        return ", ".join(names) or None
    if isinstance(value, dict):
        return _clean(value.get("name"))
    return _clean(value) if isinstance(value, str) and not value.startswith("http") else None


def _ld_image(value: Any) -> str | None:
    if isinstance(value, list):
        return next((i for i in (_ld_image(v) for v in value) if i), None)
    if isinstance(value, dict):
        return value.get("url") or value.get("contentUrl")
    return value if isinstance(value, str) else None


def _strip_site(title: str | None, metas: dict[str, Any], force: bool = False) -> str | None:
    """ "Rest — Riverbend Clinicians Collective" -> "Rest" when the suffix is the site."""
    if not title:
        return title
    site = _clean(metas.get("og:site_name"))
    if site and title.endswith(site) and len(title) > len(site):
        return title[: -len(site)].rstrip(" |-–—·:")
    if force:
        return _TITLE_SUFFIX.sub("", title)
    return title


def _h1(doc: lxml_html.HtmlElement) -> str | None:
    h1 = doc.find(".//h1")
    return _clean(h1.text_content()) if h1 is not None else None


def _time_date(doc: lxml_html.HtmlElement) -> dt.date | None:
    for element in doc.iter("time"):
        classes = (element.get("class") or "").lower()
        if "updated" in classes or "modified" in classes:
            continue
        value = _date(element.get("datetime"))
        if value:
            return value
    return None


def _byline(doc: lxml_html.HtmlElement) -> str | None:
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue
        marks = f"{element.get('class', '')} {element.get('rel', '')} {element.get('itemprop', '')}"
        if re.search(r"\b(author-name|author|byline)\b", marks, re.I):
            text = _clean(element.text_content())
            if text and len(text) < 100:
                return re.sub(r"^(written by|posted by|by)\s+", "", text, flags=re.I)
    return None


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(drop_controls(value).split())
    return text or None


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


# -- main content --------------------------------------------------------------------------
def main_content(doc: lxml_html.HtmlElement, source: str) -> str:
    """The article body as HTML, without the site around it."""
    from readability import Document

    _drop_chrome(doc)
    html_text = etree.tostring(doc, encoding="unicode", method="html")
    try:
        summary = Document(html_text).summary(html_partial=True)
    except Exception as exc:  # readability raises its own Unparseable and plain errors
        raise InputError(f"{source}: the page cannot be read as an article ({exc}).") from None
    body = lxml_html.fragment_fromstring(summary, create_parent="div")
    _drop_chrome(body)
    return etree.tostring(body, encoding="unicode", method="html")


def _drop_chrome(root: lxml_html.HtmlElement) -> None:
    for element in list(root.iter()):
        if not isinstance(element.tag, str) or element.getparent() is None:
            continue
        tag = element.tag.lower()
        if tag in (
            "nav",
            "form",
            "footer",
            "aside",
            "script",
            "style",
            "noscript",
            "iframe",
            "button",
            "svg",
            "header",
        ) and not _holds_article(element):
            element.drop_tree()
            continue
        marks = f"{element.get('class', '')} {element.get('id', '')} {element.get('role', '')}"
        if marks.strip() and _CHROME.search(marks) and not _holds_article(element):
            element.drop_tree()
            continue
        if tag == "a" and _PAGINATION_TEXT.match(element.text_content() or ""):
            parent = element.getparent()
            element.drop_tree()
            if parent.getparent() is not None and not parent.text_content().strip():
                parent.drop_tree()


def _holds_article(element: lxml_html.HtmlElement) -> bool:
    """Never drop a wrapper that contains the article itself (themes nest it oddly)."""
    return element.find(".//article") is not None or len(element.findall(".//p")) >= 4
