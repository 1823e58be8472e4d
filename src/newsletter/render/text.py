"""A readable plain-text part from HTML, for templates that have no ``.txt`` twin."""

from __future__ import annotations

import re
import textwrap

from lxml import html as lxml_html

_BLOCKS = {
    "p",
    "div",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
}
_SKIP = {"style", "script", "head", "title"}


def html_to_text(html: str, width: int = 72) -> str:
    """Paragraphs wrapped at ``width``, links as "text (url)", headings underlined.

    Emphasis marks are dropped (only the words remain), a ``<br>`` is a line break
    within its paragraph, list items start with "- " (or their number), and a URL
    is never broken across lines.
    """
    root = lxml_html.fromstring(html)
    for hidden in root.xpath('//*[contains(translate(@style, " ", ""), "display:none")]'):
        hidden.drop_tree()
    walker = _Walker(width)
    walker.walk(root)
    walker.flush()
    lines: list[str] = []
    for block in walker.blocks:
        if set(block) <= {"=", "-"}:
            lines.append(block)
            continue
        lines.append("")
        for line in block.split(_BREAK):
            wrapped = textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
            lines.extend(wrapped or [""])
    return "\n".join(lines).strip() + "\n"


class _Walker:
    """The document's text gathered in blocks (paragraphs, headings' underlines)."""

    __slots__ = ("blocks", "current", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        self.blocks: list[str] = []
        self.current: list[str] = []

    def flush(self) -> None:
        lines = ("".join(self.current)).split(_BREAK)
        self.current.clear()
        text = _BREAK.join(" ".join(line.split()) for line in lines).strip(_BREAK + " ")
        if text:
            self.blocks.append(text)

    def walk(self, node: lxml_html.HtmlElement, number: int = 0) -> None:
        tag = node.tag
        if not isinstance(tag, str) or tag in _SKIP:  # a comment (MSO conditionals) or hidden
            return
        self._open(node, tag, number)
        self._children(node, tag)
        self._close(node, tag)

    def _open(self, node: lxml_html.HtmlElement, tag: str, number: int) -> None:
        if tag in _BLOCKS:
            self.flush()
        if tag == "br":
            self.current.append(_BREAK)
        if tag == "li":
            self.current.append(f"{number}. " if number else "- ")
        if node.text:
            self.current.append(node.text)

    def _children(self, node: lxml_html.HtmlElement, tag: str) -> None:
        counter = 0
        for child in node:
            if tag == "ol" and isinstance(child.tag, str) and child.tag == "li":
                counter += 1
                self.walk(child, counter)
            else:
                self.walk(child)
            if child.tail:
                self.current.append(child.tail)

    def _close(self, node: lxml_html.HtmlElement, tag: str) -> None:
        if tag == "a":
            self.current.append(_link_suffix(node))
        if tag == "img" and node.get("alt"):
            self.current.append(node.get("alt", ""))
        if tag in _BLOCKS:
            self.flush()
            if re.fullmatch(r"h[1-3]", tag) and self.blocks:
                underline = "=" if tag == "h1" else "-"
                self.blocks.append(underline * min(len(self.blocks[-1]), self.width))


_BREAK = "\x00"  # a <br>, until paragraphs are wrapped line by line


def _link_suffix(node: lxml_html.HtmlElement) -> str:
    """ " (url)" after a link's words, unless the words are the URL (or the address)."""
    href = (node.get("href") or "").strip()
    label = " ".join(node.text_content().split())
    if href.startswith(("http://", "https://")):
        return f" ({href})" if href != label else ""
    if href.lower().startswith("mailto:"):
        address = href[len("mailto:") :].split("?")[0]
        return f" ({address})" if address and address != label else ""
    return ""
