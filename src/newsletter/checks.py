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

from lxml import html as lxml_html

from .addresses import Carrier
from .errors import ConfigError, NewsletterError
from .guards import blocklist_version

GMAIL_CLIP_BYTES = 102_000  # Gmail clips an email whose HTML is larger, footer and all
GMAIL_CLIP_SIZE = f"{GMAIL_CLIP_BYTES // 1000} KB"  # the limit as the messages say it
LONG_SUBJECT = 80  # characters; a longer subject is cut short in most inboxes
LARGE_IMAGE_PX = 1200


def clipped(html_bytes: int) -> bool:
    """Whether Gmail would clip an email with this much HTML, hiding its footer and the
    unsubscribe link: the one place of the rule (``check`` errs, ``build`` warns)."""
    return html_bytes > GMAIL_CLIP_BYTES


def format_size(size: int) -> str:
    """A size in bytes as ``build`` shows it: KB of 1024 bytes, one decimal."""
    return f"{size / 1024:.1f} KB"


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
            f"The HTML is {size / 1000:.0f} KB; Gmail clips messages over about "
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
            yield Problem(
                "error",
                "relative-image",
                f"The image {src!r} has no absolute https:// address.",
                _snippet(img),
            )
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
