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
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        lines = ("".join(current)).split(_BREAK)
        current.clear()
        text = _BREAK.join(" ".join(line.split()) for line in lines).strip(_BREAK + " ")
        if text:
            blocks.append(text)

    def walk(node: lxml_html.HtmlElement, number: int = 0) -> None:
        if not isinstance(node.tag, str):  # a comment (MSO conditionals) or a processing step
            return
        tag = node.tag
        if tag in _SKIP:
            return
        if tag in _BLOCKS:
            flush()
        if tag == "br":
            current.append(_BREAK)
        if tag == "li":
            current.append(f"{number}. " if number else "- ")
        if node.text:
            current.append(node.text)
        counter = 0
        for child in node:
            if tag == "ol" and isinstance(child.tag, str) and child.tag == "li":
                counter += 1
                walk(child, counter)
            else:
                walk(child)
            if child.tail:
                current.append(child.tail)
        if tag == "a":
            current.append(_link_suffix(node))
        if tag == "img" and node.get("alt"):
            current.append(node.get("alt", ""))
        if tag in _BLOCKS:
            flush()
            if re.fullmatch(r"h[1-3]", tag) and blocks:
                blocks.append(("=" if tag == "h1" else "-") * min(len(blocks[-1]), width))

    walk(root)
    flush()
    lines: list[str] = []
    for block in blocks:
        if set(block) <= {"=", "-"}:
            lines.append(block)
            continue
        lines.append("")
        for line in block.split(_BREAK):
            wrapped = textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
            lines.extend(wrapped or [""])
    return "\n".join(lines).strip() + "\n"


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
