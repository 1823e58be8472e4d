"""`newsletter check`: everything that would make an email wrong or non-compliant.

Each check reads the campaign as built for a sample reader and says what is
wrong and where. Errors stop a send; warnings are for a person to weigh.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from cssselect import SelectorError
from lxml import html as lxml_html

from .addresses import Carrier
from .errors import ConfigError, NewsletterError
from .guards import blocklist_version

KB = 1000  # bytes: Gmail's "102 KB" clipping limit is 102,400 bytes, i.e. 102.4 of these
GMAIL_CLIP_BYTES = 102_400  # Gmail clips an email whose HTML is larger, footer and all
LONG_SUBJECT = 80  # characters; a longer subject is cut short in most inboxes
LARGE_IMAGE_PX = 1200


def clipped(html_bytes: int) -> bool:
    """Whether Gmail would clip an email with this much HTML, hiding its footer and the
    unsubscribe link: the one place of the rule (``check`` errs, ``build`` warns)."""
    return html_bytes > GMAIL_CLIP_BYTES


def format_size(size: int) -> str:
    """A size in bytes as ``build`` and ``check`` both say it: KB as Gmail counts them
    (1,000 bytes), one decimal, e.g. ``131.1 KB``."""
    return f"{size / KB:.1f} KB"


GMAIL_CLIP_SIZE = f"{format_size(GMAIL_CLIP_BYTES)} ({GMAIL_CLIP_BYTES:,} bytes)"


class Level(StrEnum):
    """How much a problem weighs: an error stops a send, a warning is for a person."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    level: Level  # given as a Level or its string ("error", "warning")
    code: str
    message: str
    where: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))  # "warning" -> Level.WARNING

    def as_dict(self) -> dict[str, str]:
        return {
            "level": str(self.level),
            "code": self.code,
            "message": self.message,
            "where": self.where,
        }


@dataclass(frozen=True, slots=True)
class CheckedEmail:
    """What the checks look at: the email as a sample reader would get it."""

    subject: str
    preheader: str
    html: str
    text: str
    unsubscribe_url: str
    postal_address: str
    # the folder a relative image is looked up in ("images/ (/path/to/images)"), when a
    # project image found there gets an absolute address; "": none is looked up
    images_folder: str = ""


def check_email(email: CheckedEmail) -> list[Problem]:
    """Every problem the checks in _EMAIL_CHECKS find, in their order."""
    doc = lxml_html.document_fromstring(email.html)
    return [problem for check in _EMAIL_CHECKS for problem in check(email, doc)]


# Each check reads the email (and its parsed HTML) and yields what it finds wrong.
_Check = Callable[[CheckedEmail, lxml_html.HtmlElement], Iterator[Problem]]


def _subject(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    if not email.subject.strip():
        yield Problem("error", "empty-subject", "The subject is empty.", "front matter: subject")
    elif len(email.subject) > LONG_SUBJECT:
        yield Problem(
            "warning",
            "long-subject",
            f"The subject is {len(email.subject)} characters, over {LONG_SUBJECT}: most "
            "inboxes cut it short.",
            "front matter: subject (keep the words that matter first)",
        )


def _preheader(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    if not email.preheader.strip():
        yield Problem(
            "warning",
            "no-preheader",
            "There is no preheader: inboxes will show the first words of the email instead.",
            "front matter: preheader",
        )


def _size(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    size = len(email.html.encode("utf-8"))
    if clipped(size):
        yield Problem(
            "error",
            "gmail-clipping",
            f"The HTML is {format_size(size)} ({size:,} bytes); Gmail clips messages over "
            f"{GMAIL_CLIP_SIZE}, hiding the footer and its unsubscribe link.",
            "fewer or shorter articles, or a lighter template",
        )


def _unsubscribe(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    links = [(a.get("href") or "").strip() for a in doc.iter("a")]
    if not email.unsubscribe_url or email.unsubscribe_url not in links:
        yield Problem(
            "error",
            "no-unsubscribe-link",
            "The email has no visible unsubscribe link.",
            "template footer: link to {{ unsubscribe_url }}",
        )
    if email.unsubscribe_url and email.unsubscribe_url not in email.text:
        yield Problem(
            "error",
            "no-unsubscribe-in-text",
            "The plain-text part has no unsubscribe link.",
            "template .txt footer",
        )


def _postal_address(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    if not email.postal_address.strip():
        yield Problem(
            "error",
            "no-postal-address",
            "No postal address: bulk email must carry the sender's physical address (CAN-SPAM).",
            "newsletter.toml [newsletter] postal_address",
        )
    elif " ".join(email.postal_address.split()) not in " ".join(doc.text_content().split()):
        yield Problem(
            "error",
            "postal-address-missing-from-email",
            "The postal address is set but the email does not show it.",
            "template footer: {{ newsletter.postal_address }}",
        )


def _style_in_body(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    body = doc.find("body")
    if body is None:
        return
    for style in body.iter("style"):
        yield Problem(
            "error",
            "style-in-body",
            "A <style> element inside <body> is dropped by Gmail and others; put "
            "the CSS in <mj-style> in the head.",
            _snippet(style),
        )


def _links(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        if not href:
            yield Problem("error", "empty-link", "A link has no address.", _snippet(a))
        elif not _absolute(href) and not href.startswith(("mailto:", "tel:", "#")):
            yield Problem(
                "error",
                "relative-link",
                f"The link {href!r} is relative; in an inbox it leads nowhere.",
                _snippet(a),
            )


# Link shorteners: spam filters distrust them (any sender can hide any address behind
# one), readers cannot see where the link leads, and a lapsed account breaks every link.
SHORTENERS = frozenset(
    {
        "bit.ly", "bitly.com", "buff.ly", "cutt.ly", "db.tt", "goo.gl", "is.gd", "j.mp",
        "lnkd.in", "ow.ly", "rb.gy", "rebrand.ly", "s.id", "shorturl.at", "t.co",
        "t.ly", "tiny.cc", "tinyurl.com", "trib.al", "v.gd", "x.co",
    }
)  # fmt: skip


def _shortened_links(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    seen: set[str] = set()
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        host = (urlsplit(href).hostname or "").rstrip(".") if _absolute(href) else ""
        host = host.removeprefix("www.")
        if host in SHORTENERS and href not in seen:
            seen.add(href)
            yield Problem(
                "warning",
                "shortened-link",
                f"The link {href} goes through the shortener {host}: spam filters "
                "distrust shorteners, and readers cannot see where it leads.",
                f"{_snippet(a)}: link to the address it leads to instead",
            )


def _images(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    for img in doc.iter("img"):
        src = (img.get("src") or "").strip()
        if not _absolute(src):
            yield _relative_image(email, src, img)
        if img.get("alt") is None:
            yield Problem(
                "error",
                "image-without-alt",
                f"The image {src} has no alt text (screen readers, blocked images).",
                _snippet(img),
            )
        width = _pixels(img.get("width"))
        if width and width > LARGE_IMAGE_PX:
            yield Problem(
                "warning",
                "large-image",
                f"The image {src} is {width}px wide; 1200px is plenty for a 600px email.",
                _snippet(img),
            )


# Placeholders an editor leaves while writing. Case matters where a word could be meant:
# "TK" and "TODO" only in capitals, as whole words ("TKO", "tk", "todos" are not flagged);
# "lorem" in any case, but only as a word of its own ("dolorem" is not).
_PLACEHOLDER = re.compile(r"(?<![\w-])(?:(?:TK)+|TODO)(?![\w-])|(?i:\blorem\b)")
_URL_IN_TEXT = re.compile(r"\S+://\S+|\S+@\S+")


def _placeholders(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    """A "TK", "TODO" or "lorem" left in the subject, the preheader or the text."""
    parts = (
        (email.subject, "front matter: subject"),
        (email.preheader, "front matter: preheader"),
        (email.text, "the letter or an article"),
    )
    for text, where in parts:
        text = _URL_IN_TEXT.sub(" ", text)  # addresses and signed links are not words
        seen: set[str] = set()
        for match in _PLACEHOLDER.finditer(text):
            word = match.group(0)
            if word.lower() in seen:
                continue
            seen.add(word.lower())
            around = " ".join(text[max(0, match.start() - 30) : match.end() + 30].split())
            yield Problem(
                "warning",
                "placeholder",
                f'A placeholder is left in the text: {word!r} in "...{around}...".',
                f"{where}: write the final text in its place",
            )


# -- text contrast ------------------------------------------------------------------------
MIN_CONTRAST = 4.5  # WCAG 2.x AA for body text, in light and in dark mode
_NAMED = {
    "white": "#ffffff", "black": "#000000", "gray": "#808080", "grey": "#808080",
    "silver": "#c0c0c0", "red": "#ff0000", "maroon": "#800000", "yellow": "#ffff00",
    "olive": "#808000", "lime": "#00ff00", "green": "#008000", "aqua": "#00ffff",
    "teal": "#008080", "blue": "#0000ff", "navy": "#000080", "fuchsia": "#ff00ff",
    "purple": "#800080", "orange": "#ffa500", "lightgray": "#d3d3d3", "lightgrey": "#d3d3d3",
    "darkgray": "#a9a9a9", "darkgrey": "#a9a9a9", "whitesmoke": "#f5f5f5",
}  # fmt: skip
_COLOUR = re.compile(r"#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|rgba?\([^)]*\)|\b[a-z]+\b", re.IGNORECASE)
_DECLARATION = re.compile(
    r"(?:^|;)\s*(color|background-color|background)\s*:\s*([^;]+?)\s*(?=;|$)", re.IGNORECASE
)
_DARK_MEDIA = re.compile(r"@media[^{]*prefers-color-scheme\s*:\s*dark[^{]*\{", re.IGNORECASE)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_HIDDEN = re.compile(r"display\s*:\s*none|opacity\s*:\s*0(?:\.0*)?\s*(?:;|$)", re.IGNORECASE)
_Rgb = tuple[float, float, float]
_Declared = dict[str, tuple[_Rgb, bool]]  # property -> (colour, !important)


def _contrast(email: CheckedEmail, doc: lxml_html.HtmlElement) -> Iterator[Problem]:
    yield from contrast_problems(doc)


def contrast_problems(doc: lxml_html.HtmlElement) -> list[Problem]:
    """Warnings for text under MIN_CONTRAST against its background, in the light colours
    (inline) and in the dark ones (the ``prefers-color-scheme: dark`` rules), one per pair."""
    body = doc.find("body")
    if body is None:
        return []
    light = {el: _declared(el) for el in body.iter() if isinstance(el.tag, str)}
    dark = _dark_rules(doc, light)
    found: dict[tuple[_Rgb, _Rgb], tuple[list[str], str]] = {}  # (fg, bg) -> schemes, text
    for scheme, declared in (("light", light), ("dark", dark)):
        for text, fg, bg in _texts(body, declared, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
            if _ratio(fg, bg) < MIN_CONTRAST:
                schemes = found.setdefault((fg, bg), ([], text))[0]
                if scheme not in schemes:
                    schemes.append(scheme)
    return [
        Problem(
            "warning",
            "low-contrast",
            f"Text {_hex(fg)} on {_hex(bg)} is {_ratio(fg, bg):.1f}:1 in "
            f"{' and '.join(schemes)} mode (at least {MIN_CONTRAST}:1 is readable): "
            f"{text[:60]!r}.",
            "a template's colours (mj-text color, a section's background-color, "
            "or its prefers-color-scheme: dark rules)",
        )
        for (fg, bg), (schemes, text) in found.items()
    ]


def _declared(el: lxml_html.HtmlElement) -> _Declared:
    """The colours an element sets itself: inline ``color``/``background``, ``bgcolor``."""
    found: _Declared = {}
    bgcolor = _parse_colour(el.get("bgcolor") or "")
    if bgcolor is not None:
        found["background"] = (bgcolor, False)
    for name, value in _DECLARATION.findall(el.get("style") or ""):
        colour = _colour_in(value)
        if colour is not None:
            key = "color" if name.lower() == "color" else "background"
            found[key] = (colour, "!important" in value.replace(" ", "").lower())
    return found


def _dark_rules(doc: lxml_html.HtmlElement, light: dict) -> dict:
    """The declared colours in dark mode: the dark rules over the inline ones (an inline
    colour keeps its place unless the rule says !important)."""
    dark = {el: dict(values) for el, values in light.items()}
    for style in doc.iter("style"):
        for block in _dark_blocks(style.text or ""):
            for selectors, body in _RULE.findall(block):
                _apply_rule(doc, dark, selectors, body)
    return dark


def _dark_blocks(css: str) -> Iterator[str]:
    for match in _DARK_MEDIA.finditer(css):
        depth, start = 1, match.end()
        for i in range(start, len(css)):
            depth += {"{": 1, "}": -1}.get(css[i], 0)
            if depth == 0:
                yield css[start:i]
                break


def _apply_rule(doc: lxml_html.HtmlElement, dark: dict, selectors: str, body: str) -> None:
    rule = _declared_in(body)
    for selector in selectors.split(","):
        try:
            elements = doc.cssselect(selector.strip())
        except SelectorError:  # a selector cssselect cannot read: not judged
            continue
        for el in elements:
            own = dark.get(el)
            if own is None:
                continue
            for key, (colour, important) in rule.items():
                if important or key not in own or not own[key][1]:
                    own[key] = (colour, important)


def _declared_in(body: str) -> _Declared:
    found: _Declared = {}
    for name, value in _DECLARATION.findall(body):
        colour = _colour_in(value)
        if colour is not None:
            key = "color" if name.lower() == "color" else "background"
            found[key] = (colour, "!important" in value.replace(" ", "").lower())
    return found


def _texts(
    el: lxml_html.HtmlElement, declared: dict, fg: _Rgb, bg: _Rgb
) -> Iterator[tuple[str, _Rgb, _Rgb]]:
    """(text, colour, background) of each element with visible text of its own."""
    if el.tag in ("style", "script", "head", "title") or _HIDDEN.search(el.get("style") or ""):
        return
    own = declared.get(el, {})
    fg = own["color"][0] if "color" in own else fg
    bg = own["background"][0] if "background" in own else bg
    text = " ".join(((el.text or "") + " ".join(c.tail or "" for c in el)).split())
    if text:
        yield text, fg, bg
    for child in el:
        if isinstance(child.tag, str):
            yield from _texts(child, declared, fg, bg)


def _colour_in(value: str) -> _Rgb | None:
    for token in _COLOUR.findall(value):
        colour = _parse_colour(token)
        if colour is not None:
            return colour
    return None


def _parse_colour(text: str) -> _Rgb | None:
    text = _NAMED.get(text.strip().lower(), text.strip().lower())
    if re.fullmatch(r"#[0-9a-f]{3}", text):
        text = "#" + "".join(c * 2 for c in text[1:])
    if re.fullmatch(r"#[0-9a-f]{6}", text):
        return tuple(int(text[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
    match = re.fullmatch(r"rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)(?:[\s,/]+([\d.]+))?\s*\)", text)
    if match and (match.group(4) is None or float(match.group(4)) >= 1):
        return tuple(min(int(v), 255) / 255 for v in match.groups()[:3])  # type: ignore[return-value]
    return None  # transparent, a gradient, a variable: not judged


def _ratio(a: _Rgb, b: _Rgb) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _luminance(colour: _Rgb) -> float:
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _hex(colour: _Rgb) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in colour)


# In the order their findings are listed. Template syntax in the output is text an article
# or a {% raw %} block put there on purpose, and a reader's field that was not filled in
# cannot happen: each is checked when the campaign is compiled.
_EMAIL_CHECKS: tuple[_Check, ...] = (
    _subject,
    _preheader,
    _placeholders,
    _size,
    _unsubscribe,
    _postal_address,
    _style_in_body,
    _links,
    _shortened_links,
    _images,
    _contrast,
)


def check_links(urls: list[str], fetch: Callable[[str], int | str]) -> list[Problem]:
    """Warnings for links that do not answer 2xx/3xx; ``fetch`` gives a status or an error."""
    problems = []
    for url in sorted(set(urls)):
        if _EXAMPLE_DOMAIN.search(urlsplit(url).netloc):
            continue  # a reserved example domain answers nothing (check_settings names it)
        status = fetch(url)
        if isinstance(status, str) or status >= 400:
            problems.append(
                Problem(
                    "warning",
                    "broken-link",
                    f"{url} answered {status}.",
                    "a link in the email (`check --offline` requests no link)",
                )
            )
    return problems


def links_of(html: str) -> list[str]:
    doc = lxml_html.document_fromstring(html)
    return [a.get("href") for a in doc.iter("a") if _absolute(a.get("href") or "")]


# Domains reserved for examples and tests (RFC 2606, RFC 6761): no reader can reply to,
# or follow a link to, an address there.
_EXAMPLE_DOMAIN = re.compile(
    r"(?i)(^|[.@/])(example\.(com|net|org)|[a-z0-9-]+\.(example|test|invalid|localhost)|"
    r"localhost)(:\d+)?($|[/>\s])"
)
SCAFFOLD_POSTAL_ADDRESS = "214 Mill Street, Suite 3, Easthampton, MA 01027, USA"


def check_settings(values: dict[str, object], path: str) -> list[Problem]:
    """Warnings for the example values a scaffolded newsletter.toml starts with."""
    problems = []
    for key in ("from", "reply_to", "public_url", "list_id", "unsubscribe_mailto"):
        value = str(values.get(key) or "")
        if value and _EXAMPLE_DOMAIN.search(value):
            problems.append(
                Problem(
                    "warning",
                    "example-setting",
                    f"[newsletter] {key} is still an example value ({value}): nobody can "
                    "reply to it or open its links.",
                    f"{path}: set your own {key} before a real send.",
                )
            )
    if values.get("postal_address") == SCAFFOLD_POSTAL_ADDRESS:
        problems.append(
            Problem(
                "warning",
                "example-setting",
                "[newsletter] postal_address is still the example's address.",
                f"{path}: set the postal address where your organisation receives post.",
            )
        )
    return problems


def transport_problems(
    carrier: Carrier, senders: dict[str, str | None], public_url: str, rehearsal: bool
) -> list[Problem]:
    """What the transport cannot do with this newsletter: a ``from`` or ``reply_to``
    (``senders``) it cannot carry, and, for a send that reaches readers (not a
    rehearsal), a ``public_url`` no reader can open."""
    problems = []
    for key, text in senders.items():
        try:
            carrier.check_sender(key, text)
        except ConfigError as exc:
            problems.append(Problem("error", "transport-cannot-send", exc.message, exc.hint or ""))
    host = urlsplit(public_url).hostname or ""
    if not rehearsal and _local_host(host):
        problems.append(
            Problem(
                "warning",
                "local-public-url",
                f"[newsletter] public_url ({public_url}) is on {host}, which only this "
                "machine or network can reach: every reader's unsubscribe and web-version "
                "link would lead nowhere.",
                "newsletter.toml [newsletter] public_url: the https:// address where "
                "`newsletter serve` is reachable from the internet",
            )
        )
    return problems


def _local_host(host: str) -> bool:
    """Whether ``host`` is loopback, private, link-local or a name only a LAN resolves."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


# An <mj-image ...> tag, Jinja expressions and statements in it kept whole ("{{ a > b }}").
_MJ_IMAGE = re.compile(r"<mj-image\b((?:\{\{.*?\}\}|\{%.*?%\}|[^>])*)>", re.DOTALL)
_ALT = re.compile(r"(?:^|\s)alt\s*=", re.IGNORECASE)


def project_templates(folder: Path) -> list[tuple[Path, str]]:
    """The project's own MJML templates (``templates/*.mjml``) and their text."""
    if not folder.is_dir():
        return []
    return [
        (path, path.read_text(encoding="utf-8", errors="replace"))
        for path in sorted(folder.glob("*.mjml"))
        if path.is_file()
    ]


def template_image_problems(templates: list[tuple[Path, str]], root: Path) -> list[Problem]:
    """Warnings for each ``mj-image`` of the project's templates without ``alt``: MJML
    then writes an <img> that screen readers spell out, and blocked images leave blank."""
    problems = []
    for path, text in templates:
        for match in _MJ_IMAGE.finditer(text):
            if _ALT.search(match.group(1)):
                continue
            line = text.count("\n", 0, match.start()) + 1
            tag = " ".join(match.group(0).split())
            problems.append(
                Problem(
                    "warning",
                    "template-image-without-alt",
                    f"An mj-image has no alt text: {tag[:120]}",
                    f'{_relative(path, root)}, line {line}: add alt="what the image shows" '
                    '(alt="" for a decorative one)',
                )
            )
    return problems


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def signup_notes(block_disposable: bool, proof_of_work: bool, max_number: int) -> list[str]:
    """What ``check`` says of the sign-up's guards ([signup] block_disposable and
    proof_of_work): which list refuses throwaway domains, and whether browsers work."""
    notes = []
    if block_disposable:
        release, size = blocklist_version().rsplit(" (", 1)  # "... 0.0.293", "10,181 domains)"
        notes.append(f"Sign-up: disposable-address domains refused ({release}, {size}.")
    if proof_of_work:
        notes.append(
            f"Sign-up: proof of work on (ALTCHA, up to {max_number:,} hashes a sign-up); "
            "the form needs JavaScript."
        )
    return notes


def compile_problem(error: NewsletterError) -> Problem:
    """A campaign that does not even build: the reason is the one error to fix."""
    return Problem("error", "does-not-build", error.message, error.hint or "")


def _relative_image(email: CheckedEmail, src: str, img: lxml_html.HtmlElement) -> Problem:
    """An image without an address an inbox can load: a file missing from the project's
    images folder says which folder was searched."""
    if email.images_folder and src and not urlsplit(src).scheme and not src.startswith("//"):
        return Problem(
            "error",
            "missing-image",
            f"The image {src!r} is not in {email.images_folder}, the folder searched, so "
            "the email cannot show it. Put the file there and write its path from the "
            "project folder (images/NAME.jpg); only jpg, jpeg, png, gif and webp files of at "
            "most 5 MB are published.",
            _snippet(img),
        )
    return Problem(
        "error",
        "relative-image",
        f"The image {src!r} has no absolute https:// address.",
        _snippet(img),
    )


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _pixels(value: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", value or "")
    return int(match.group(1)) if match else None


def _snippet(element: lxml_html.HtmlElement) -> str:
    text = lxml_html.tostring(element, encoding="unicode", with_tail=False)
    text = " ".join(text.split())
    return text[:120] + ("..." if len(text) > 120 else "")
