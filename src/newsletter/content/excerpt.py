"""Excerpt rules, in order: the source's own excerpt; a ``<!-- more -->`` marker;
otherwise the opening paragraphs up to a word budget, cut at a sentence
boundary, never mid-word, never inside a heading. Inline markup that is safe
in email (bold, italic, links, code) is kept; everything else becomes text.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from urllib.parse import urljoin

from lxml import etree
from lxml import html as lxml_html

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


# -- HTML -------------------------------------------------------------------------------
INLINE_KEEP = {"strong": "strong", "b": "strong", "em": "em", "i": "em", "a": "a", "code": "code"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP_INSIDE = {
    "li",
    "ul",
    "ol",
    "blockquote",
    "figure",
    "figcaption",
    "aside",
    "nav",
    "form",
    "table",
    "pre",
    "header",
    "footer",
    "button",
    "script",
    "style",
    "noscript",
}
MORE = re.compile(r"<!--\s*more\s*-->", re.I)
# C0 controls but tab and line ends, DEL and C1 controls: a vertical tab or a form feed
# pasted from a word processor, an escape from a terminal. Invisible in a page, refused
# by XML (lxml, MJML) and obeyed by terminals, so they are dropped from article text;
# the vertical tab and form feed (a word processor's line and page breaks) become spaces.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]+")
_BREAKS = re.compile("[\x0b\x0c]")


def drop_controls(text: str) -> str:
    """``text`` without control characters (tab, CR and LF are kept)."""
    return _CONTROLS.sub("", _BREAKS.sub(" ", text))


def lxml_text(fragment: str) -> str:
    if not fragment.strip():
        return ""
    return _fragment(fragment).text_content()


def word_count(fragment: str) -> int:
    return len(lxml_text(fragment).split())


def _fragment(fragment: str) -> lxml_html.HtmlElement:
    return lxml_html.fragment_fromstring(drop_controls(fragment), create_parent="div")


def excerpt_from_html(
    fragment: str, max_words: int | None, base_url: str | None = None
) -> tuple[str, str]:
    """(safe HTML, plain text) of the excerpt of an article body.

    ``max_words=None`` keeps every opening paragraph (an excerpt the author wrote).
    """
    if MORE.search(fragment):
        fragment, max_words = MORE.split(fragment, maxsplit=1)[0], None
    if not fragment.strip():
        return "", ""
    paragraphs = _excerpt_paragraphs(_fragment(fragment), max_words, base_url)
    html_out = "".join(_serialise(p) for p, _ in paragraphs)
    return html_out, "\n\n".join(t for _, t in paragraphs)


def _excerpt_paragraphs(
    root: etree._Element, max_words: int | None, base_url: str | None
) -> list[tuple[etree._Element, str]]:
    """The opening paragraphs, cleaned, with their text; with ``max_words``, whole
    sentences while they fit (the first one always), and the last paragraph cut after
    the last sentence that fits."""
    paragraphs: list[tuple[etree._Element, str]] = []
    words = 0
    for clean, text in _clean_blocks(root, base_url):
        if max_words is None:
            paragraphs.append((clean, text))
            continue
        sentences = split_sentences(text)
        kept = _sentences_that_fit(sentences, max_words - words, first=not paragraphs)
        words += sum(len(sentence.split()) for sentence in kept)
        if kept:
            cut = " ".join(kept)
            paragraphs.append((_truncate(clean, len(cut)) if cut != text else clean, cut))
        if len(kept) < len(sentences) or words >= max_words:
            break
    return paragraphs


def _clean_blocks(
    root: etree._Element, base_url: str | None
) -> Iterator[tuple[etree._Element, str]]:
    """Each opening block with text, as a clean <p>, and that text whitespace-normalised."""
    for block in _opening_blocks(root):
        clean = _clean_inline(block, base_url)
        text = " ".join(clean.text_content().split())
        if text:
            yield clean, text


def _sentences_that_fit(sentences: list[str], budget: int, first: bool) -> list[str]:
    """The leading sentences whose words fit in ``budget``; in the excerpt's ``first``
    paragraph, the first sentence is kept even when it alone is over budget."""
    kept: list[str] = []
    for sentence in sentences:
        n = len(sentence.split())
        if (kept or not first) and n > budget:
            break
        kept.append(sentence)
        budget -= n
    return kept


def _opening_blocks(root: etree._Element) -> list[etree._Element]:
    """Paragraphs before the first heading that follows some text, in order; when there
    are none, the text directly inside ``root`` as one paragraph."""
    blocks: list[etree._Element] = []
    for element in root.iterdescendants():
        if not isinstance(element.tag, str):
            continue
        if element.tag.lower() in _HEADINGS:
            if blocks:
                break
            continue
        if _is_paragraph(element):
            blocks.append(element)
    if not blocks and root.text and root.text.strip():
        paragraph = lxml_html.Element("p")
        paragraph.text = root.text
        blocks.append(paragraph)
    return blocks


def _is_paragraph(element: etree._Element) -> bool:
    """A <p>, or a div that is one, of the article's own text: not inside a list, a
    quote, a table, a form..., and not a byline."""
    tag = element.tag.lower()
    if tag != "p" and not (tag == "div" and _is_text_div(element)):
        return False
    if any(a.tag in _SKIP_INSIDE for a in element.iterancestors() if isinstance(a.tag, str)):
        return False
    return not _is_byline(element)


def _is_text_div(element: etree._Element) -> bool:
    """A div that is really a paragraph: text and inline markup only."""
    if not (element.text and element.text.strip()):
        return False
    return all(
        isinstance(c.tag, str) and c.tag.lower() in INLINE_KEEP | {"br": "", "span": ""}
        for c in element
    )


def _is_byline(element: etree._Element) -> bool:
    marks = f"{element.get('class', '')} {element.get('id', '')}".lower()
    if any(word in marks for word in ("byline", "author", "meta", "caption", "credit")):
        return True
    text = " ".join(element.text_content().split()).lower()
    return text.startswith(("by ", "written by ", "posted by ", "posted on ")) and len(text) < 120


def _clean_inline(block: etree._Element, base_url: str | None) -> etree._Element:
    """A <p> holding the block's text with only safe inline tags; links made absolute."""
    out = lxml_html.Element("p")

    def copy_into(source: etree._Element, target: etree._Element) -> None:
        if source.text:
            _append_text(target, source.text)
        for child in source:
            if not isinstance(child.tag, str):  # comments, processing instructions
                if child.tail:
                    _append_text(target, child.tail)
                continue
            tag = child.tag.lower()
            if tag in ("script", "style", "img", "svg", "button", "input", "iframe"):
                pass
            elif tag == "br":
                _append_text(target, " ")
            elif tag in INLINE_KEEP:
                element = etree.SubElement(target, INLINE_KEEP[tag])
                if tag == "a":
                    href = (child.get("href") or "").strip()
                    href = urljoin(base_url, href) if base_url and href else href
                    if href.startswith(("http://", "https://", "mailto:")):
                        element.set("href", href)
                    else:
                        element.tag = "span"
                copy_into(child, element)
                if element.tag == "span":
                    _unwrap(element)
            else:
                copy_into(child, target)
            if child.tail:
                _append_text(target, child.tail)

    copy_into(block, out)
    return out


def _append_text(target: etree._Element, text: str) -> None:
    if len(target):
        last = target[-1]
        last.tail = (last.tail or "") + text
    else:
        target.text = (target.text or "") + text


def _unwrap(element: etree._Element) -> None:
    parent = element.getparent()
    index = parent.index(element)
    previous_text = element.text or ""
    children = list(element)
    tail = element.tail or ""
    parent.remove(element)
    if index == 0:
        parent.text = (parent.text or "") + previous_text
    else:
        parent[index - 1].tail = (parent[index - 1].tail or "") + previous_text
    for offset, child in enumerate(children):
        parent.insert(index + offset, child)
    if children:
        children[-1].tail = (children[-1].tail or "") + tail
    elif index == 0:
        parent.text = (parent.text or "") + tail
    else:
        parent[index - 1].tail = (parent[index - 1].tail or "") + tail


def _truncate(element: etree._Element, length: int) -> etree._Element:
    """A copy of ``element`` keeping the first ``length`` characters of its
    whitespace-normalised text; tags stay balanced."""
    element = copy.deepcopy(element)
    remaining = length
    last_was_space = True  # the text is stripped at the start, and spaces never double

    def take(text: str | None) -> str | None:
        nonlocal remaining, last_was_space
        if text is None:
            return None
        normal = re.sub(r"\s+", " ", text)
        if last_was_space:
            normal = normal.lstrip(" ")
        if not normal:
            return normal
        if remaining <= 0:
            return ""
        kept = normal[:remaining]
        remaining -= len(kept)
        last_was_space = kept.endswith(" ")
        return kept

    def walk(node: etree._Element) -> None:
        node.text = take(node.text)
        for child in list(node):
            if remaining <= 0:
                node.remove(child)
                continue
            walk(child)
            child.tail = take(child.tail)

    walk(element)
    return element


def _serialise(element: etree._Element) -> str:
    text = etree.tostring(element, encoding="unicode", method="html", with_tail=False)
    return " ".join(text.split()).replace(" </p>", "</p>").replace("<p> ", "<p>")
