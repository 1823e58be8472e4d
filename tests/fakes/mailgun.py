"""Local fake of Mailgun's messages API (``POST /v3/{domain}/messages``) for tests.

Parses ``multipart/form-data`` and ``application/x-www-form-urlencoded`` bodies (repeated
fields allowed), enforces the documented contract, and records one delivered message
per ``to`` recipient with its ``%recipient.KEY%`` placeholders filled in. This fake is
strict about batch sending: several ``to`` recipients without ``recipient-variables``
are refused, since every recipient would otherwise see all the others. Faults: see
:mod:`fakes.base`.
"""

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from .base import (
    FakeProvider,
    Fault,
    Incoming,
    Reply,
    bare_address,
    is_email,
    media_type,
    split_addresses,
)
from .contract import Contract, Delivered, from_record

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_OPTIONS_BYTES",
    "MAX_RECIPIENTS",
    "MAX_TAGS",
    "FakeMailgun",
    "FormData",
]

MAX_RECIPIENTS = 1000
MAX_TAGS = 3
MAX_TAG_CHARS = 128
MAX_OPTIONS_BYTES = 16 * 1024
MAX_BODY_BYTES = 25 * 1024 * 1024
_SEND_PATH = re.compile(r"/v3/([^/]+)/messages")
_PLACEHOLDER = re.compile(r"%recipient\.([^%\s]+)%")
_QUEUED = "Queued. Thank you."

FormData = dict[str, list[str | bytes]]
"""Form fields in order of appearance; file parts (attachments) are bytes."""


class _Invalid(Exception):
    pass


def _bad(message: str) -> Reply:
    return Reply(400, {"message": message})


def _parse_form(ctype: str, raw: bytes) -> FormData | None:
    """Parse a urlencoded or multipart body; None if it is neither (or malformed)."""
    kind = media_type(ctype)
    fields: FormData = {}
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            return None
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        return fields
    if kind != "multipart/form-data":
        return None
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser().parsebytes(head + raw)
    if not msg.is_multipart() or msg.defects:
        return None
    for part in msg.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return None
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is None:
            fields.setdefault(name, []).append(
                data.decode(part.get_content_charset() or "utf-8", "replace")
            )
        else:
            fields.setdefault(name, []).append(data)
    return fields


def _text(fields: FormData, name: str) -> str | None:
    """The first text value of a field, or None."""
    for value in fields.get(name, []):
        if isinstance(value, str):
            return value
    return None


def _addresses(fields: FormData, name: str) -> list[str]:
    """Bare addresses of a repeatable, comma-separated address field."""
    out: list[str] = []
    for value in fields.get(name, []):
        if not isinstance(value, str):
            raise _Invalid(f"'{name}' parameter is not a valid address. please check documentation")
        for entry in split_addresses(value):
            addr = bare_address(entry)
            if not is_email(addr):
                raise _Invalid(
                    f"'{name}' parameter is not a valid address. please check documentation"
                )
            out.append(addr)
    return out


def _fill(value: str | None, variables: dict[str, Any]) -> str | None:
    """Replace ``%recipient.KEY%`` with that recipient's value (unknown keys stay)."""
    if value is None:
        return None

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in variables:
            return match.group(0)
        found = variables[key]
        return found if isinstance(found, str) else json.dumps(found)

    return _PLACEHOLDER.sub(repl, value)


class FakeMailgun(FakeProvider):
    """A local HTTP server that mimics Mailgun's ``POST /v3/{domain}/messages``.

    Mutable configuration: ``api_key``, ``domain``, ``suppressed`` (addresses, compared
    case-insensitively: answered 200 but recorded in ``dropped``), plus ``latency``,
    ``max_body_bytes`` and ``faults``. Recordings: ``requests`` (body: :data:`FormData`),
    ``accepted``/``dropped`` (one dict per ``to`` recipient: ``to``, ``from``, ``cc``,
    ``bcc``, ``subject``, ``text``, ``html``, ``headers``, ``tags``, ``variables``,
    ``options``, ``recipient_variables``, ``attachments``, ``id``), ``errors``.
    """

    name: ClassVar[str] = "FakeMailgun"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        api_key: str = "test-key",
        domain: str = "mg.example.org",
        *,
        suppressed: Iterable[str] | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.api_key = api_key
        self.domain = domain
        self.suppressed: set[str] = {a.lower() for a in suppressed or ()}

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and _SEND_PATH.fullmatch(req.path) is not None

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"message": message})

    def decode_body(self, req: Incoming) -> Any:
        """Form fields (:data:`FormData`) for form bodies, else the raw bytes."""
        fields = _parse_form(req.headers.get("Content-Type", ""), req.raw)
        return req.raw if fields is None else fields

    def handle_send(self, req: Incoming) -> Reply:
        """Authenticate, check the domain and fields, record one message per recipient."""
        if not self._authorized(req.headers.get("Authorization", "")):
            return Reply(401, "Forbidden", {"Content-Type": "text/plain; charset=utf-8"})
        match = _SEND_PATH.fullmatch(req.path)
        assert match is not None
        domain = match.group(1)
        if domain != self.domain:
            return Reply(404, {"message": f"Domain not found: {domain}"})
        fields = req.body
        if not isinstance(fields, dict):
            return _bad(
                "Unsupported body: use multipart/form-data or application/x-www-form-urlencoded"
            )
        try:
            message = _check(fields)
        except _Invalid as exc:
            return _bad(str(exc))
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        message_id = f"<{stamp}.{secrets.token_hex(8)}@{domain}>"
        suppressed = {a.lower() for a in set(self.suppressed)}
        accepted: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        recipient_vars: dict[str, dict[str, Any]] = message.pop("recipient_variables")
        for addr in message.pop("to"):
            entry = self._entry(
                addr,
                message_id,
                lambda a=addr: _deliver(message, a, recipient_vars.get(a.lower(), {}), message_id),
            )
            (dropped if addr.lower() in suppressed else accepted).append(entry)
        self._accept(accepted)
        self._drop(dropped)
        return Reply(200, {"id": message_id, "message": _QUEUED})

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == f"api:{self.api_key}"


def _check(fields: FormData) -> dict[str, Any]:
    """Validate the form; return the parsed message (``to`` and ``recipient_variables``)."""
    sender = _text(fields, "from")
    if not sender:
        raise _Invalid("from parameter is missing")
    senders = split_addresses(sender)
    if len(senders) != 1 or not is_email(bare_address(senders[0])):
        raise _Invalid("'from' parameter is not a valid address. please check documentation")
    if not fields.get("to"):
        raise _Invalid("to parameter is missing")
    to = _addresses(fields, "to")
    if not to:
        raise _Invalid("'to' parameter is not a valid address. please check documentation")
    cc, bcc = _addresses(fields, "cc"), _addresses(fields, "bcc")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise _Invalid("Too many recipients")
    subject = _text(fields, "subject")
    if subject is None:
        raise _Invalid("subject parameter is missing")
    text, html = _text(fields, "text"), _text(fields, "html")
    if not (text or html or _text(fields, "amp-html") or _text(fields, "template")):
        raise _Invalid(
            "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
        )

    tags = [t for t in fields.get("o:tag", []) if isinstance(t, str)]
    if len(tags) > MAX_TAGS:
        raise _Invalid(f"Too many tags: at most {MAX_TAGS} o:tag values per message")
    for tag in tags:
        if not tag or len(tag) > MAX_TAG_CHARS or not tag.isascii():
            raise _Invalid(f"Invalid tag '{tag}': tags must be 1-{MAX_TAG_CHARS} ASCII characters")
    size = 0
    headers: dict[str, str] = {}
    variables: dict[str, str] = {}
    options: dict[str, str] = {}
    for name, values in fields.items():
        prefix, colon, key = name.partition(":")
        if not colon or prefix not in ("o", "h", "v"):
            continue
        for value in values:
            if not isinstance(value, str) or not key:
                raise _Invalid(f"Invalid parameter '{name}'")
            size += len(value.encode())
            {"h": headers, "v": variables, "o": options}[prefix][key] = value
    if size > MAX_OPTIONS_BYTES:
        raise _Invalid(f"Message options (o:, h:, v:) must total at most {MAX_OPTIONS_BYTES} bytes")
    _check_tracking(options)

    recipient_vars: dict[str, dict[str, Any]] = {}
    raw_vars = _text(fields, "recipient-variables")
    if raw_vars is None:
        if len(to) > 1:
            raise _Invalid("batch sending requires recipient-variables")
    else:
        try:
            parsed = json.loads(raw_vars)
        except ValueError:
            raise _Invalid("recipient-variables parameter is not a valid JSON") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise _Invalid("recipient-variables must be a JSON object of objects keyed by address")
        recipient_vars = {str(k).lower(): v for k, v in parsed.items()}
        missing = [a for a in to if a.lower() not in recipient_vars]
        if missing:
            raise _Invalid(f"recipient-variables has no entry for {', '.join(missing)}")

    return {
        "to": to,
        "recipient_variables": recipient_vars,
        "from": sender,
        "cc": cc,
        "bcc": bcc,
        "subject": subject,
        "text": text,
        "html": html,
        "headers": headers,
        "tags": tags,
        "variables": variables,
        "options": options,
        "attachments": [v for v in fields.get("attachment", []) if isinstance(v, bytes)],
    }


# The values each tracking option takes (Mailgun's "Sending" API reference: o:tracking,
# o:tracking-clicks "yes, no, true, false or htmlonly", o:tracking-opens "yes, no, true
# or false").
TRACKING_OPTIONS: dict[str, frozenset[str]] = {
    "tracking": frozenset({"yes", "no", "true", "false", "htmlonly"}),
    "tracking-clicks": frozenset({"yes", "no", "true", "false", "htmlonly"}),
    "tracking-opens": frozenset({"yes", "no", "true", "false"}),
}


def _check_tracking(options: dict[str, str]) -> None:
    for name, allowed in TRACKING_OPTIONS.items():
        value = options.get(name)
        if value is not None and value.lower() not in allowed:
            raise _Invalid(
                f"'o:{name}' parameter is not valid: {value!r} "
                f"(one of {', '.join(sorted(allowed))})"
            )


def _deliver(
    message: dict[str, Any], addr: str, variables: dict[str, Any], message_id: str
) -> dict[str, Any]:
    """The message as delivered to ``addr``, placeholders filled in."""
    return {
        "to": addr,
        **message,
        "subject": _fill(message["subject"], variables),
        "text": _fill(message["text"], variables),
        "html": _fill(message["html"], variables),
        "headers": {k: _fill(v, variables) for k, v in message["headers"].items()},
        "recipient_variables": variables,
        "id": message_id,
    }


# -- for the shared contract tests (test_transports.py) -----------------------------------
class MailgunContract(Contract):
    transport, label, status, batch_limit = "mailgun", "Mailgun", "queued", 1000
    env: ClassVar = {"NEWSLETTER_API_KEY": "key-right"}
    wrong_env: ClassVar = {"NEWSLETTER_API_KEY": "key-wrong-4711"}
    wrong_secret, missing_names = "key-wrong-4711", "NEWSLETTER_API_KEY"
    batching = (1203, [203, 1000])
    domain = "mg.riverbend-clinicians.example"
    fake: FakeMailgun

    def __init__(self) -> None:
        self.fake = FakeMailgun(api_key="key-right", domain=self.domain)

    def delivery(self) -> dict[str, Any]:
        return {**super().delivery(), "domain": self.domain}

    def delivered(self) -> list[Delivered]:
        return [from_record(m, [m["to"]], m["cc"] + m["bcc"]) for m in self.fake.accepted]

    def request_sizes(self) -> list[int]:
        return [len(r.body["to"]) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        return ("status", 429, {"message": "Too many requests"}, {"Retry-After": "0"})

    def server_error(self) -> Fault:
        return ("status", 500, {"message": "Internal Server Error"})
