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
    """Paragraphs wrapped at ``width``, links as "text (url)", headings underlined."""
    root = lxml_html.fromstring(html)
    for hidden in root.xpath('//*[contains(translate(@style, " ", ""), "display:none")]'):
        hidden.drop_tree()
    blocks: list[str] = []
    current: list[str] = []

    def flush() -> None:
        text = " ".join("".join(current).split())
        current.clear()
        if text:
            blocks.append(text)

    def walk(node: lxml_html.HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _SKIP:
            return
        if tag in _BLOCKS or tag == "br":
            flush()
        if tag == "li":
            current.append("- ")
        if node.text and tag not in _SKIP:
            current.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                current.append(child.tail)
        if tag == "a":
            href = node.get("href", "")
            label = " ".join(node.text_content().split())
            if href.startswith(("http://", "https://")) and href != label:
                current.append(f" ({href})")
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
        lines.extend(textwrap.wrap(block, width, break_long_words=False, break_on_hyphens=False))
    return "\n".join(lines).strip() + "\n"
