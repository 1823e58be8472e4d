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
from dataclasses import dataclass, field
from email import quoprimime
from email.utils import format_datetime
from functools import cached_property
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

import orjson

from ..addresses import Carrier, domain_as_sent, own_wire_form, parse_mailbox
from ..models import Recipient
from .headers import (
    CRLF,
    address_header,
    address_value,
    clean_text,
    display_value,
    header_safe,
    list_id_header,
    list_id_value,
    unstructured_header,
)
from .merge import MergeTemplate
from .pieces import Fixed

if TYPE_CHECKING:
    from .compile import CompiledCampaign
    from .merge import Personal
    from .variants import Variant


def encode_header(name: str, value: str) -> str:
    """``Name: value`` for unstructured text (Subject): folded, encoded when it must be."""
    return unstructured_header(name, value)


def format_address(name: str, address: str) -> str:
    """A To/From header value, unfolded: the display name encoded, never the address."""
    return address_value(name, domain_as_sent(header_safe(address)))


def display_address(name: str, address: str) -> str:
    """``"Name" <address>`` in Unicode, for JSON APIs that take the address as text."""
    return display_value(name, domain_as_sent(header_safe(address)))


def _qp(text: str) -> str:
    """Quoted-printable of UTF-8 text with CRLF line ends, ending in a line break."""
    if not text:
        return ""
    encoded = quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), 76, CRLF)
    if text.endswith("\n"):
        return encoded if encoded.endswith(CRLF) else encoded + CRLF
    return encoded + "=" + CRLF  # soft break: the next piece starts on a fresh line


# a value quoted-printable leaves as it is: printable ASCII but "=", no space at either
# end, one line short enough not to be broken (the usual name or link)
_QP_AS_IS = re.compile(r"[!-<>-~](?:[ !-<>-~]{0,73}[!-<>-~])?")


def _qp_value(value: str) -> str:
    if _QP_AS_IS.fullmatch(value):
        return value + "=" + CRLF  # as _qp gives it, without the encoder
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
    # one message to one person (a sign-up's confirmation), not a list message: no
    # List-* headers, and Auto-Submitted (RFC 3834)
    transactional: bool = False
    # what the transport can carry: each reader's address is checked as the message is made
    carrier: Carrier = field(default_factory=Carrier)

    def __post_init__(self) -> None:
        c = self.compiled
        self._init_addresses()
        self.domain = self.envelope_sender.rpartition("@")[2] or "localhost"
        self.boundary = f"=_nl_{secrets.token_hex(12)}"
        listed = (
            []
            if self.transactional
            else [
                list_id_header(c.list_id),
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            ]
        )
        fixed = [
            address_header("From", *self.sender),
            *([address_header("Reply-To", *self.reply_to)] if self.reply_to else []),
            *listed,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
            f"X-Newsletter-Campaign: {header_safe(c.slug)}",
        ]
        if self.test:
            fixed.append("X-Newsletter-Test: yes")
        if self.auto_submitted or self.transactional:
            fixed.append("Auto-Submitted: auto-generated")
        self._fixed_headers = CRLF.join(fixed) + CRLF
        # the same for every reader: worked out once, not per message
        self.list_id = None if self.transactional else list_id_value(c.list_id)
        self.mailto_link = (
            f"<mailto:{header_safe(self.unsubscribe_mailto)}?subject=unsubscribe>"
            if self.unsubscribe_mailto
            else None
        )
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
        self._encoded: dict[int, EncodedVariant] = {}
        self._shared: dict[tuple[int, str], SharedContent] = {}
        self._wire: dict[Any, Any] = {}

    def wire_parts(self, key: Any, make: Callable[[], Any]) -> Any:
        """What a transport encodes once per campaign (or variant) under ``key``: made by
        ``make`` the first time it is asked for, then kept with the campaign."""
        found = self._wire.get(key)
        if found is None:
            found = self._wire[key] = make()
        return found

    def _init_addresses(self) -> None:
        """The newsletter's own addresses, as they are sent (domains in A-labels)."""
        c = self.compiled
        name, address = parse_mailbox(c.sender_display)
        sent, sender_utf8 = own_wire_form(address)
        self.sender = (clean_text(name), sent)  # (display name, address) of From
        self.envelope_sender = sent
        self.sender_display = display_address(name, sent)
        self.reply_to: tuple[str, str] | None = None
        self.reply_to_display: str | None = None
        reply_utf8 = False
        if c.reply_to:
            name, address = parse_mailbox(c.reply_to)
            sent, reply_utf8 = own_wire_form(address)
            self.reply_to = (clean_text(name), sent)
            self.reply_to_display = display_address(name, sent)
        # a non-ASCII local part of our own makes every message need SMTPUTF8
        self.headers_utf8 = sender_utf8 or reply_utf8

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
                    else unstructured_header("Subject", variant.subject.literals[0])
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

    def raw(self, variant: Variant) -> RawVariant | None:
        """The variant's MIME pieces as bytes, made once; None when they are not all
        ASCII (then each message is encoded whole, as ``as_bytes`` does)."""
        cache: dict[int, RawVariant | None] = self.__dict__.setdefault("_raw", {})
        if variant.number not in cache:
            cache[variant.number] = RawVariant.of(self, self.encoded(variant))
        return cache[variant.number]

    def stuffed(self, variant: Variant) -> StuffedVariant | None:
        """The variant's MIME pieces as SMTP DATA content, dot-stuffed once (RFC 5321
        4.5.2); None when a piece would not start a line (then the whole message is stuffed)."""
        cache: dict[int, StuffedVariant | None] = self.__dict__.setdefault("_stuffed", {})
        if variant.number not in cache:
            cache[variant.number] = StuffedVariant.of(self, self.encoded(variant))
        return cache[variant.number]


@dataclass(frozen=True, slots=True)
class EncodedVariant:
    html_qp: MergeTemplate
    text_qp: MergeTemplate
    html_json: MergeTemplate
    text_json: MergeTemplate
    subject_header: str | None


@dataclass(frozen=True, slots=True)
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
        first, last = recipient.first_name, recipient.last_name
        name = f"{first} {last}" if first and last else first or last
        # decided now, not in a transport's worker: a reader the transport cannot reach
        # is refused here (RecipientError) and settled invalid alone
        self.to_address, utf8 = factory.carrier.wire(recipient.email)
        self.smtputf8 = utf8 or factory.headers_utf8  # the message needs SMTPUTF8 to go
        self.to_name = clean_text(name) if name else ""

    @cached_property
    def message_id(self) -> str:
        """``<slug.subscriber.nonce@domain>``, made only for the transports that send it
        (SendGrid and Mailgun let the provider make its own)."""
        f = self.factory
        return f"<{f.compiled.slug}.{self.recipient.subscriber_id}.{f._nonce}@{f.domain}>"

    @cached_property
    def to_display(self) -> str:
        """``"Name" <address>`` in Unicode, for the JSON APIs (made only when one asks)."""
        return display_address(self.to_name, self.to_address)

    @cached_property
    def to(self) -> str:
        """The To header's value, unfolded."""
        return address_value(self.to_name, self.to_address)

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
        link = f"<{header_safe(self.unsubscribe_url)}>"
        mailto = self.factory.mailto_link
        return [link, mailto] if mailto else [link]

    @property
    def list_unsubscribe(self) -> str:
        return ", ".join(self._unsubscribe_links())

    def list_headers(self) -> dict[str, str]:
        """The list headers, for transports that take headers as a mapping (none for a
        transactional message)."""
        if self.factory.transactional:
            return {"Auto-Submitted": "auto-generated"}
        return {
            "List-Unsubscribe": self.list_unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": self.factory.list_id or "",
        }

    def _head(self, encoded: EncodedVariant) -> str:
        """The reader's own header lines (To, Subject, Date, Message-ID, List-Unsubscribe)."""
        lines = [
            address_header("To", self.to_name, self.to_address),
            encoded.subject_header or unstructured_header("Subject", self.subject),
            f"Date: {format_datetime(dt.datetime.now(dt.UTC), usegmt=True)}",
            f"Message-ID: {self.message_id}",
        ]
        if not self.factory.transactional:  # folded only between links, never inside one
            lines.append("List-Unsubscribe: " + f",{CRLF} ".join(self._unsubscribe_links()))
        return CRLF.join(lines)

    def as_bytes(self) -> bytes:
        """The whole RFC 5322 message, CRLF line ends, every line within 998 octets."""
        f = self.factory
        encoded = f.encoded(self.variant)
        html = _merge_qp(encoded.html_qp, self.html_values)
        text = _merge_qp(encoded.text_qp, self.text_values)
        head = self._head(encoded)
        return "".join(
            (head, CRLF, f._fixed_headers, CRLF, f._text_head, text, f._html_head, html, f._tail)
        ).encode("utf-8" if self.smtputf8 else "ascii")  # RFC 6532 only when it must

    def raw_pieces(self) -> list[bytes]:
        """``as_bytes()`` as the pieces it is joined from: the campaign's own are
        ``Fixed`` (the same objects in every message, not copied), the reader's head and
        values are not."""
        f = self.factory
        raw = f.raw(self.variant)
        if raw is None:
            return [self.as_bytes()]
        head = self._head(f.encoded(self.variant)).encode("utf-8" if self.smtputf8 else "ascii")
        parts: list[bytes] = [head, raw.middle]
        _merge_raw(parts, raw.text, self.text_values)
        parts.append(raw.html_head)
        _merge_raw(parts, raw.html, self.html_values)
        parts.append(raw.tail)
        return parts

    def smtp_data(self) -> tuple[bytes, int]:
        """``as_bytes()`` as SMTP DATA content, ending CRLF.CRLF, and its size before
        stuffing. The campaign's pieces were stuffed once; only this reader's head and
        values are stuffed here (each piece starts a line, so a value's leading dot is
        doubled too)."""
        pieces, size = self.smtp_pieces()
        return b"".join(pieces), size

    def smtp_pieces(self) -> tuple[list[bytes], int]:
        """``smtp_data()`` as the pieces it is joined from (the campaign's own bytes among
        them, not copied), for a writer that sends them as they are (``sendmsg``)."""
        f = self.factory
        stuffed = f.stuffed(self.variant)
        if stuffed is None:
            raw = self.as_bytes()
            return [smtp_content(raw)], len(raw)
        head = self._head(f.encoded(self.variant)).encode("utf-8" if self.smtputf8 else "ascii")
        parts = [dot_stuffed(head), stuffed.middle]
        size = len(head) + stuffed.size
        size += _merge_stuffed(parts, stuffed.text, self.text_values)
        parts.append(stuffed.html_head)
        size += _merge_stuffed(parts, stuffed.html, self.html_values)
        parts.append(stuffed.tail)
        return parts, size


def json_string(text: str) -> bytes:
    """``text`` as a JSON string in UTF-8, quotes included: the bytes of
    ``json.dumps(text, ensure_ascii=False).encode()`` (control characters escaped, the
    rest as is), by the same C function, without json.dumps's cost around it. (orjson
    is as fast here, but its result keeps a 4 KB buffer each: a batch of such pieces
    would hold megabytes.)"""
    return encode_basestring(text).encode("utf-8")


def _json_value(value: str) -> bytes:
    return orjson.dumps(value)[1:-1]  # a copy of the right size (see ``json_string``)


def json_pieces(template: MergeTemplate, values: list[str], out: list[bytes]) -> None:
    """Append to ``out`` a JSON-escaped template's pieces with the reader's values escaped:
    the literals are the campaign's own bytes, not copied."""
    literals = template.literals
    out.append(literals[0])
    for slot_id, literal in zip(template.slot_ids, literals[1:], strict=True):
        out.append(orjson.dumps(values[slot_id])[1:-1])
        out.append(literal)


def _merge_qp(template: MergeTemplate, values: list[str]) -> str:
    if template.is_static:
        return template.literals[0]
    parts = [template.literals[0]]
    for slot_id, literal in zip(template.slot_ids, template.literals[1:], strict=True):
        parts.append(_qp_value(values[slot_id]))
        parts.append(literal)
    return "".join(parts)


def _merge_raw(parts: list[bytes], template: MergeTemplate, values: list[str]) -> None:
    """Append the literals (``Fixed``) and this reader's QP values between them."""
    parts.append(template.literals[0])
    for slot_id, literal in zip(template.slot_ids, template.literals[1:], strict=True):
        parts.append(_qp_value(values[slot_id]).encode("ascii"))
        parts.append(literal)


@dataclass(frozen=True, slots=True)
class RawVariant:
    """A variant's MIME pieces as bytes, each ``Fixed``, made once: ``as_bytes`` is the
    reader's head, ``middle`` (the blank line, the fixed headers and the text part's
    head), the text, ``html_head``, the HTML and ``tail``."""

    text: MergeTemplate
    html: MergeTemplate
    middle: Fixed
    html_head: Fixed
    tail: Fixed

    @classmethod
    def of(cls, factory: MessageFactory, encoded: EncodedVariant) -> RawVariant | None:
        middle = CRLF + factory._fixed_headers + CRLF + factory._text_head
        literals = [*encoded.text_qp.literals, *encoded.html_qp.literals]
        if not middle.isascii() or not all(s.isascii() for s in literals):
            return None

        def fixed(text: str) -> Fixed:
            return Fixed(text.encode("ascii"))

        return cls(
            text=encoded.text_qp.map_literals(fixed),
            html=encoded.html_qp.map_literals(fixed),
            middle=fixed(middle),
            html_head=fixed(factory._html_head),
            tail=fixed(factory._tail),
        )


_LINE_DOT = re.compile(rb"(?m)^\.")  # a dot that starts a line (as smtplib finds it)
END_OF_DATA = b"." + CRLF.encode()


def dot_stuffed(data: bytes) -> bytes:
    """``data`` (which starts a line) with each dot that starts a line doubled."""
    if data[:1] != b"." and b"\n." not in data:
        return data
    return _LINE_DOT.sub(b"..", data)


def smtp_content(raw: bytes) -> bytes:
    """A whole message as SMTP DATA content: stuffed, ending CRLF.CRLF (as smtplib sends it)."""
    data = dot_stuffed(raw)
    return data + (END_OF_DATA if data.endswith(b"\r\n") else CRLF.encode() + END_OF_DATA)


def _stuff_piece(text: str) -> bytes:
    return dot_stuffed(text.encode("ascii"))


def _merge_stuffed(parts: list[bytes], template: MergeTemplate, values: list[str]) -> int:
    """Append the stuffed literals and this reader's stuffed QP values; their raw size."""
    parts.append(template.literals[0])
    size = 0
    for slot_id, literal in zip(template.slot_ids, template.literals[1:], strict=True):
        value = _qp_value(values[slot_id]).encode("ascii")
        size += len(value)
        parts.append(dot_stuffed(value))
        parts.append(literal)
    return size


@dataclass(frozen=True, slots=True)
class StuffedVariant:
    """A variant's MIME pieces as SMTP DATA content (bytes, dot-stuffed), made once.

    ``middle``: the blank line after the reader's head, the fixed headers and the text
    part's head; ``tail`` ends with the end-of-data line; ``size``: the raw (unstuffed)
    size of every piece here but a reader's values.
    """

    text: MergeTemplate
    html: MergeTemplate
    middle: bytes
    html_head: bytes
    tail: bytes
    size: int

    @classmethod
    def of(cls, factory: MessageFactory, encoded: EncodedVariant) -> StuffedVariant | None:
        qp = (encoded.text_qp, encoded.html_qp)
        literals = [s for template in qp for s in template.literals]
        # every QP piece ends a line (_qp), so every piece, and each value, starts one
        if any(s and not s.endswith("\n") for s in literals) or not all(
            s.isascii() for s in literals
        ):
            return None
        # the fixed headers are UTF-8 only when every message is (our own address)
        middle = (CRLF + factory._fixed_headers + CRLF + factory._text_head).encode("utf-8")
        fixed = (middle, factory._html_head.encode("ascii"), factory._tail.encode("ascii"))
        return cls(
            text=encoded.text_qp.map_literals(_stuff_piece),
            html=encoded.html_qp.map_literals(_stuff_piece),
            middle=dot_stuffed(fixed[0]),
            html_head=dot_stuffed(fixed[1]),
            tail=dot_stuffed(fixed[2]) + END_OF_DATA,
            size=sum(len(s) for s in literals) + sum(len(b) for b in fixed),
        )
