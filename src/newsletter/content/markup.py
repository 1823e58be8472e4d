"""Markdown whose text stays text: only the HTML Markdown allows is read as HTML.

A letter that says "reply with <your name>" means those words, not an element
named ``your``. markdown-it passes any tag through as raw HTML, which MJML then
refused with a tag mismatch pointing into the template. Here every raw tag is
looked at: a tag of ``ALLOWED_TAGS`` (the HTML GitHub's Markdown keeps) stays,
with its ``ATTRIBUTES`` alone; ``<script>``, ``<style>`` and their like are
removed with their content; anything else is escaped and shows as typed.
An allowed tag left open or closed out of turn would break the email's
markup, so it is an error naming the file and line where it was written.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..errors import TemplateError

ALLOWED_TAGS = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdo",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
        "wbr",
    ]
)
VOID_TAGS = frozenset({"br", "hr", "img", "wbr"})
# removed with everything inside them: never shown, never run
DROPPED_TAGS = frozenset(
    [
        "script",
        "style",
        "iframe",
        "object",
        "embed",
        "noscript",
        "template",
        "textarea",
        "title",
        "svg",
        "math",
    ]
)
ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset({"title", "dir", "lang"}),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "td": frozenset({"colspan", "rowspan", "align"}),
    "th": frozenset({"colspan", "rowspan", "align"}),
    "ol": frozenset({"start", "type"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "time": frozenset({"datetime"}),
}
URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

_ATTRIBUTE = r"""\s+[^\s"'>/=<]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?"""
_MARKUP = re.compile(
    rf"<!--.*?-->|<[!?][^>]*>|<(/?)([A-Za-z][A-Za-z0-9-]*)((?:{_ATTRIBUTE})*)\s*(/?)>", re.S
)
_ONE_ATTRIBUTE = re.compile(r"""([^\s"'>/=<]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_BARE_AMPERSAND = re.compile(r"&(?!#?[A-Za-z0-9]+;)")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)\s*:")


@dataclass(slots=True)  # mutable: the parser's running state
class _State:
    origin: str
    strict: bool = True  # an allowed tag left open or closed out of turn is an error
    dropping: str | None = None  # the DROPPED_TAGS element being removed
    open: list[tuple[str, int]] = field(default_factory=list)  # (tag, line) still open


def render_text_markdown(md: MarkdownIt, text: str, origin: str, strict: bool = True) -> str:
    """HTML of Markdown ``text`` with only ``ALLOWED_TAGS`` read as HTML.

    ``origin`` names the file in errors; line numbers are ``text``'s own. Not
    ``strict`` (an article, whose HTML is parsed and repaired after), a tag left
    open stays open and a stray closing tag is dropped.
    """
    tokens = md.parse(text)
    state = _State(origin, strict)
    for token in tokens:
        line = token.map[0] + 1 if token.map else 1
        if token.type == "html_block":
            token.content = _clean(token.content, state, line)
        elif token.type == "inline" and token.children:
            token.children = _clean_inline(token.children, state, line)
    if state.open and state.strict:
        tag, line = state.open[-1]
        raise _unclosed(state.origin, tag, line)
    return md.renderer.render(tokens, md.options, {})


def _clean_inline(children: Sequence[Token], state: _State, line: int) -> list[Token]:
    """The inline tokens of one paragraph (or heading...): tags opened here close here."""
    depth = len(state.open)
    kept: list[Token] = []
    for child in children:
        if child.type in ("softbreak", "hardbreak"):
            line += 1
        if child.type == "html_inline":
            child.content = _clean(child.content, state, line)
            kept.append(child)
        elif state.dropping is None:
            kept.append(child)
    if len(state.open) > depth and state.strict:
        tag, where = state.open[-1]
        raise _unclosed(state.origin, tag, where)
    return kept


def _clean(raw: str, state: _State, line: int) -> str:
    """Raw HTML from the Markdown with only the allowed tags left as markup."""
    out: list[str] = []
    position = 0
    for found in _MARKUP.finditer(raw):
        if state.dropping is None:
            out.append(_text(raw[position : found.start()]))
        out.append(_tag(found, state, line + raw.count("\n", 0, found.start())))
        position = found.end()
    if state.dropping is None:
        out.append(_text(raw[position:]))
    return "".join(out)


def _text(raw: str) -> str:
    """Text between tags in raw HTML: entities kept, a lone ``<``, ``>`` or ``&`` escaped."""
    return _BARE_AMPERSAND.sub("&amp;", raw).replace("<", "&lt;").replace(">", "&gt;")


def _tag(found: re.Match[str], state: _State, line: int) -> str:
    closing, name = found.group(1) == "/", (found.group(2) or "").lower()
    attributes = found.group(3)
    if state.dropping is not None:
        if closing and name == state.dropping:
            state.dropping = None
        return ""
    if not name:  # a comment (an article's <!-- more --> marker), a doctype...: never shown
        return "" if state.strict or not found.group(0).startswith("<!--") else found.group(0)
    if name in DROPPED_TAGS:
        if not closing and not found.group(4):
            state.dropping = name
        return ""
    if name not in ALLOWED_TAGS:
        return html.escape(found.group(0), quote=False)
    if name in VOID_TAGS:
        return "" if closing else f"<{name}{_attributes(name, attributes)} />"
    if closing:
        return _close(name, state, line)
    state.open.append((name, line))
    return f"<{name}{_attributes(name, attributes)}>"


def _close(name: str, state: _State, line: int) -> str:
    if (not state.open or state.open[-1][0] != name) and not state.strict:
        return ""
    if not state.open or state.open[-1][0] != name:
        expected = f"</{state.open[-1][0]}> first" if state.open else "nothing open"
        raise TemplateError(
            f"{state.origin}, line {line}: </{name}> closes an element that is not open "
            f"here (expected {expected}), so the email's markup would break.",
            f"Open <{name}> before it and close elements in the reverse order, or write "
            f"\\</{name}> to show the tag as text.",
        )
    state.open.pop()
    return f"</{name}>"


def _unclosed(origin: str, tag: str, line: int) -> TemplateError:
    return TemplateError(
        f"{origin}, line {line}: <{tag}> is never closed in its paragraph, so the "
        "email's markup would break.",
        f"Close it with </{tag}> before the paragraph ends, or write \\<{tag}> to "
        "show the tag as text.",
    )


def _attributes(tag: str, raw: str) -> str:
    """The allowed attributes of a tag, values escaped; unsafe link schemes dropped."""
    allowed = ATTRIBUTES["*"] | ATTRIBUTES.get(tag, frozenset())
    kept: list[tuple[str, str]] = []
    for found in _ONE_ATTRIBUTE.finditer(raw):
        name = found.group(1).lower()
        if name not in allowed or any(n == name for n, _ in kept):
            continue
        value = html.unescape((found.group(2) or "").strip("\"'"))
        scheme = _SCHEME.match(value)
        if name in URL_ATTRIBUTES and scheme and scheme.group(1).lower() not in SAFE_SCHEMES:
            continue
        kept.append((name, value))
    return "".join(f' {name}="{html.escape(value)}"' for name, value in kept)
