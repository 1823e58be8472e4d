"""One recipient's message: headers, the merged parts, and RFC 5322 bytes.

The MIME body is encoded once per campaign: each literal stretch of the
compiled HTML and text is quoted-printable encoded up front, and a
recipient's message only encodes their few merge values and joins the
pieces, with soft line breaks between them so no line exceeds 76 characters.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email import quoprimime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..models import Recipient
from .merge import MergeTemplate

if TYPE_CHECKING:
    from . import CompiledCampaign, Personal, Variant

CRLF = "\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_safe(value: str) -> str:
    """A value with every control character (CR and LF among them) turned into a space."""
    return _CONTROL.sub(" ", value).strip()


def encode_header(name: str, value: str) -> str:
    """``Name: value`` folded, RFC 2047-encoded when not ASCII."""
    value = header_safe(value)
    if value.isascii() and len(name) + len(value) <= 76 and "=?" not in value:
        return f"{name}: {value}"  # nothing to fold or encode: the common case, kept cheap
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name, maxlinelen=78).encode(linesep=CRLF)
    return f"{name}: {encoded}"


def format_address(name: str, address: str) -> str:
    """A To/From header value; the display name is encoded, never trusted."""
    return formataddr((header_safe(name), header_safe(address)), charset="utf-8")


def display_address(name: str, address: str) -> str:
    """``"Name" <address>`` in Unicode, for JSON APIs that take the address as text."""
    name, address = header_safe(name), header_safe(address)
    if not name:
        return address
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _qp(text: str) -> str:
    """Quoted-printable of UTF-8 text with CRLF line ends, ending in a line break."""
    if not text:
        return ""
    encoded = quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), 76, CRLF)
    if text.endswith("\n"):
        return encoded if encoded.endswith(CRLF) else encoded + CRLF
    return encoded + "=" + CRLF  # soft break: the next piece starts on a fresh line


def _qp_value(value: str) -> str:
    return _qp(value.replace("\r\n", "\n").replace("\n", CRLF))


@dataclass
class MessageFactory:
    """Builds each recipient's message from a compiled campaign.

    Each variant's literal text is encoded once (quoted-printable for MIME,
    JSON-escaped for the HTTP APIs) the first time a reader of that variant
    needs it; per message only the reader's values are encoded and joined.
    """

    compiled: CompiledCampaign
    unsubscribe_mailto: str | None = None
    test: bool = False
    auto_submitted: bool = False  # sent by a program on its own (cron): RFC 3834

    def __post_init__(self) -> None:
        c = self.compiled
        self.domain = parseaddr(c.sender)[1].rpartition("@")[2] or "localhost"
        self.boundary = f"=_nl_{secrets.token_hex(12)}"
        fixed = [
            encode_header("From", c.sender),
            *([encode_header("Reply-To", c.reply_to)] if c.reply_to else []),
            encode_header("List-Id", c.list_id),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
            f"X-Newsletter-Campaign: {header_safe(c.slug)}",
        ]
        if self.test:
            fixed.append("X-Newsletter-Test: yes")
        if self.auto_submitted:
            fixed.append("Auto-Submitted: auto-generated")
        self._fixed_headers = CRLF.join(fixed) + CRLF
        self._text_head = (
            f'--{self.boundary}{CRLF}Content-Type: text/plain; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        self._html_head = (
            f'{CRLF}--{self.boundary}{CRLF}Content-Type: text/html; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        self._tail = f"{CRLF}--{self.boundary}--{CRLF}"
        # unique per message without a random number each: this factory's nonce + the subscriber
        self._nonce = secrets.token_hex(6)
        self.envelope_sender = parseaddr(c.sender_display)[1]
        self._encoded: dict[int, EncodedVariant] = {}
        self._shared: dict[tuple[int, str], SharedContent] = {}

    def encoded(self, variant: Variant) -> EncodedVariant:
        """The variant's literal text encoded for each wire format, once."""
        found = self._encoded.get(variant.number)
        if found is None:
            found = self._encoded[variant.number] = EncodedVariant(
                html_qp=variant.html.map_literals(lambda s: _qp(_crlf(s))),
                text_qp=variant.text.map_literals(lambda s: _qp(_crlf(s))),
                html_json=variant.html.map_literals(lambda s: json_escape(s).encode("utf-8")),
                text_json=variant.text.map_literals(lambda s: json_escape(s).encode("utf-8")),
                subject_header=(
                    None
                    if not variant.subject.is_static or self.test
                    else encode_header("Subject", header_safe(variant.subject.literals[0]))
                ),
            )
        return found

    def shared_content(
        self, variant: Variant, placeholder: Callable[[str, int], str]
    ) -> SharedContent:
        """The variant once, with each merge field as a provider-side placeholder.

        For providers that take one body and per-recipient substitutions
        (SendGrid's ``substitutions``, Mailgun's ``%recipient.x%``); every message
        of such a request must be of the same variant.
        ``placeholder(part, slot)`` names the placeholder; ``part`` is ``h``
        (HTML, values escaped), ``t`` (text) or ``s`` (subject, one line).
        """
        key = (variant.number, placeholder("h", 0) + placeholder("t", 0) + placeholder("s", 0))
        if key not in self._shared:
            count = len(variant.slots)
            prefix = "[TEST] " if self.test else ""
            self._shared[key] = SharedContent(
                subject=prefix + variant.subject.merge([placeholder("s", i) for i in range(count)]),
                html=variant.html.merge([placeholder("h", i) for i in range(count)]),
                text=variant.text.merge([placeholder("t", i) for i in range(count)]),
                slots={
                    "s": sorted(set(variant.subject.slot_ids)),
                    "h": sorted(set(variant.html.slot_ids)),
                    "t": sorted(set(variant.text.slot_ids)),
                },
                placeholder=placeholder,
            )
        return self._shared[key]

    def message(self, recipient: Recipient, fields: dict[str, Any]) -> OutgoingMessage:
        """The reader's message; RecipientError when their data cannot make one."""
        return OutgoingMessage(self, recipient, self.compiled.personalize(fields), fields)


@dataclass(frozen=True)
class EncodedVariant:
    html_qp: MergeTemplate
    text_qp: MergeTemplate
    html_json: MergeTemplate
    text_json: MergeTemplate
    subject_header: str | None


@dataclass
class SharedContent:
    """One body for a whole batch, and how to fill it for each recipient."""

    subject: str
    html: str
    text: str
    slots: dict[str, list[int]]
    placeholder: Callable[[str, int], str]

    def substitutions(self, message: OutgoingMessage) -> dict[str, str]:
        """``placeholder -> value`` for one recipient, each value escaped for its part."""
        html, text = message.html_values, message.text_values
        out = {self.placeholder("h", i): html[i] for i in self.slots["h"]}
        out.update({self.placeholder("t", i): text[i] for i in self.slots["t"]})
        out.update({self.placeholder("s", i): header_safe(text[i]) for i in self.slots["s"]})
        return out


def json_escape(text: str) -> str:
    """``text`` as the inside of a JSON string (no quotes), UTF-8 kept as is."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", CRLF)


class OutgoingMessage:
    """A recipient's message; each representation is made only when a transport asks."""

    def __init__(
        self,
        factory: MessageFactory,
        recipient: Recipient,
        personal: Personal,
        fields: dict[str, Any],
    ) -> None:
        self.factory = factory
        self.recipient = recipient
        self.personal = personal
        self.variant = personal.variant
        self.unsubscribe_url = str(fields.get("unsubscribe_url", ""))
        compiled = factory.compiled
        self.message_id = (
            f"<{compiled.slug}.{recipient.subscriber_id}.{factory._nonce}@{factory.domain}>"
        )
        name = " ".join(p for p in (recipient.first_name, recipient.last_name) if p)
        self.to = format_address(name, recipient.email)
        self.to_display = display_address(name, recipient.email)

    @property
    def html_values(self) -> list[str]:
        return self.personal.html_values

    @property
    def text_values(self) -> list[str]:
        return self.personal.text_values

    @cached_property
    def subject(self) -> str:
        subject = header_safe(self.variant.subject.merge(self.text_values))
        return f"[TEST] {subject}" if self.factory.test else subject

    @cached_property
    def html(self) -> str:
        return self.variant.html.merge(self.html_values)

    @cached_property
    def text(self) -> str:
        return self.variant.text.merge(self.text_values)

    def html_json(self) -> bytes:
        """The HTML as the inside of a JSON string, UTF-8: joined from pre-escaped pieces."""
        return self.factory.encoded(self.variant).html_json.merge(self.html_values, _json_value)

    def text_json(self) -> bytes:
        return self.factory.encoded(self.variant).text_json.merge(self.text_values, _json_value)

    def _unsubscribe_links(self) -> list[str]:
        links = [f"<{header_safe(self.unsubscribe_url)}>"]
        if self.factory.unsubscribe_mailto:
            links.append(
                f"<mailto:{header_safe(self.factory.unsubscribe_mailto)}?subject=unsubscribe>"
            )
        return links

    @property
    def list_unsubscribe(self) -> str:
        return ", ".join(self._unsubscribe_links())

    def list_headers(self) -> dict[str, str]:
        """The list headers, for transports that take headers as a mapping."""
        return {
            "List-Unsubscribe": self.list_unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": header_safe(self.factory.compiled.list_id),
        }

    def as_bytes(self) -> bytes:
        """The whole RFC 5322 message, CRLF line ends, every line within 998 octets."""
        f = self.factory
        encoded = f.encoded(self.variant)
        html = _merge_qp(encoded.html_qp, self.html_values)
        text = _merge_qp(encoded.text_qp, self.text_values)
        head = CRLF.join(
            (
                encode_header("To", self.to),
                encoded.subject_header or encode_header("Subject", self.subject),
                f"Date: {format_datetime(dt.datetime.now(dt.UTC), usegmt=True)}",
                f"Message-ID: {self.message_id}",
                # folded only between links, never inside one
                "List-Unsubscribe: " + f",{CRLF} ".join(self._unsubscribe_links()),
            )
        )
        return "".join(
            (head, CRLF, f._fixed_headers, CRLF, f._text_head, text, f._html_head, html, f._tail)
        ).encode("ascii")


def _json_value(value: str) -> bytes:
    return json_escape(value).encode("utf-8")


def _merge_qp(template: MergeTemplate, values: list[str]) -> str:
    if template.is_static:
        return template.literals[0]
    parts = [template.literals[0]]
    for slot_id, literal in zip(template.slot_ids, template.literals[1:], strict=True):
        parts.append(_qp_value(values[slot_id]))
        parts.append(literal)
    return "".join(parts)
