"""Local fake of SendGrid's v3 Mail Send API (``POST /v3/mail/send``) for tests.

Enforces the documented request contract (auth, personalizations, recipients, content
order, reserved headers, size limits) and records one delivered message per
personalization, with its substitutions applied. Faults: see :mod:`fakes.base`; a rate
limit looks like::

    ("status", 429, {"errors": [{"field": None, "message": "too many requests"}]},
     {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
      "X-RateLimit-Reset": str(int(time.time()) + 1)})
"""

import json
import secrets
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from .base import FakeProvider, Fault, Incoming, Reply, is_email
from .contract import Contract, Delivered, from_record

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PERSONALIZATIONS",
    "MAX_RECIPIENTS",
    "RESERVED_HEADERS",
    "SEND_PATH",
    "FakeSendGrid",
]

SEND_PATH = "/v3/mail/send"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_CUSTOM_ARGS_BYTES = 10_000  # serialized size must be *below* this
MAX_SUBSTITUTIONS_BYTES = 10_000  # total size must be at most this
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_SEND_AT_AHEAD = 72 * 3600
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)

_UNAUTHORIZED = {
    "errors": [
        {
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "field": None,
            "help": None,
        }
    ]
}


class _Invalid(Exception):
    """A validation error: message and field path."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _errors(*items: tuple[str, str | None]) -> dict[str, Any]:
    return {"errors": [{"message": m, "field": f, "help": None} for m, f in items]}


class FakeSendGrid(FakeProvider):
    """A local HTTP server that mimics SendGrid's ``POST /v3/mail/send``.

    Mutable configuration: ``api_key``, ``suppressed`` (addresses, compared case-
    insensitively: answered 202 but recorded in ``dropped``), plus the base class's
    ``latency``, ``max_body_bytes`` and ``faults``. Recordings: ``requests``, ``accepted``
    and ``dropped`` (one dict per personalization: ``to`` (the address, or a list when a
    personalization has several), ``name``, ``cc``, ``bcc``, ``from``, ``subject``,
    ``text``, ``html``, ``headers``, ``custom_args``, ``categories``, ``x_message_id``,
    ``id``), ``errors``.
    """

    name: ClassVar[str] = "FakeSendGrid"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        suppressed: Iterable[str] | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.api_key = api_key
        self.suppressed: set[str] = {a.lower() for a in suppressed or ()}

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and req.path == SEND_PATH

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, _errors((message, None)))

    def too_large_reply(self, req: Incoming) -> Reply:
        return Reply(413, _errors(("Payload Too Large", None)))

    def handle_send(self, req: Incoming) -> Reply:
        """Authenticate, validate the whole body, record one message per personalization."""
        if req.headers.get("Authorization") != f"Bearer {self.api_key}":
            return Reply(401, _UNAUTHORIZED)
        body = req.body
        if isinstance(body, bytes):
            return Reply(400, _errors(("Invalid JSON in the request body.", None)))
        try:
            _validate(body)
        except _Invalid as exc:
            return Reply(400, _errors((exc.message, exc.field)))
        x_message_id = secrets.token_urlsafe(16)
        suppressed = {a.lower() for a in set(self.suppressed)}
        accepted: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for pers in body["personalizations"]:
            emails = [r["email"] for r in pers["to"]]
            to: str | list[str] = emails[0] if len(emails) == 1 else emails
            entry = self._entry(
                to, x_message_id, lambda p=pers, t=to: _message(body, p, t, x_message_id)
            )
            if all(e.lower() in suppressed for e in emails):
                dropped.append(entry)
            else:
                accepted.append(entry)
        self._accept(accepted)
        self._drop(dropped)
        return Reply(202, None, {"X-Message-Id": x_message_id})


def _message(
    body: dict[str, Any], pers: dict[str, Any], to: str | list[str], x_message_id: str
) -> dict[str, Any]:
    """The delivered message for one personalization, substitutions applied."""
    subs: dict[str, str] = pers.get("substitutions") or {}

    def sub(value: str | None) -> str | None:
        if value is None:
            return None
        for key, replacement in subs.items():
            value = value.replace(key, replacement)
        return value

    content = {c["type"]: c["value"] for c in body.get("content") or []}
    headers = {**(body.get("headers") or {}), **(pers.get("headers") or {})}
    sender = pers.get("from") or body["from"]
    return {
        "to": to,
        "name": pers["to"][0].get("name"),
        "cc": [r["email"] for r in pers.get("cc") or []],
        "bcc": [r["email"] for r in pers.get("bcc") or []],
        "from": sender,
        "subject": sub(pers.get("subject") or body.get("subject")),
        "text": sub(content.get("text/plain")),
        "html": sub(content.get("text/html")),
        "headers": {k: sub(v) for k, v in headers.items()},
        "custom_args": {**(body.get("custom_args") or {}), **(pers.get("custom_args") or {})},
        "categories": list(body.get("categories") or []),
        "send_at": pers.get("send_at", body.get("send_at")),
        "tracking_settings": body.get("tracking_settings"),
        "x_message_id": x_message_id,
        "id": x_message_id,
    }


# -- validation ----------------------------------------------------------------------


def _validate(body: Any) -> None:
    """Raise :class:`_Invalid` for the first contract violation found."""
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object.")
    _address(body.get("from"), "from")
    if body.get("reply_to") is not None:
        _address(body["reply_to"], "reply_to")
    template = body.get("template_id")
    if template is not None and not (isinstance(template, str) and template):
        raise _Invalid("The template_id must be a non-empty string.", "template_id")

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise _Invalid(
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
        )
    if len(personalizations) > MAX_PERSONALIZATIONS:
        raise _Invalid(
            f"The personalizations field may contain at most {MAX_PERSONALIZATIONS} "
            "personalizations.",
            "personalizations",
        )
    _headers(body.get("headers"), "headers")
    top_args = _string_map(body.get("custom_args"), "custom_args")
    seen: set[str] = set()
    total = 0
    for i, pers in enumerate(personalizations):
        total += _personalization(pers, i, body, top_args, seen)
        if total > MAX_RECIPIENTS:
            raise _Invalid(
                f"The total number of recipients must be no more than {MAX_RECIPIENTS}.",
                "personalizations",
            )

    if template is None:
        _content(body.get("content"))
    elif body.get("content") is not None:
        _content(body["content"])
    _categories(body.get("categories"))
    _send_at(body.get("send_at"), "send_at")
    if body.get("mail_settings") is not None and not isinstance(body["mail_settings"], dict):
        raise _Invalid("The mail_settings field must be an object.", "mail_settings")
    _tracking_settings(body.get("tracking_settings"))
    _asm(body.get("asm"))
    if body.get("batch_id") is not None and not isinstance(body["batch_id"], str):
        raise _Invalid("The batch_id must be a string.", "batch_id")


def _personalization(
    pers: Any, i: int, body: dict[str, Any], top_args: dict[str, str], seen: set[str]
) -> int:
    """Validate personalization ``i``; return its recipient count."""
    where = f"personalizations.{i}"
    if not isinstance(pers, dict):
        raise _Invalid("Each personalization must be an object.", where)
    to = pers.get("to")
    if not isinstance(to, list) or not to:
        raise _Invalid(
            "The to array is required for all personalization objects, and must have at "
            "least one email object with a valid email address.",
            f"{where}.to",
        )
    count = 0
    for kind in ("to", "cc", "bcc"):
        entries = pers.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise _Invalid(f"The {kind} field must be an array.", f"{where}.{kind}")
        for j, entry in enumerate(entries):
            email = _address(entry, f"{where}.{kind}.{j}")
            key = email.lower()
            if key in seen:
                raise _Invalid(
                    "Each email address in the personalization block should be unique between "
                    f"to, cc, and bcc. We found the first duplicate instance of [{email}] in "
                    f"the {where}.{kind} field.",
                    f"{where}.{kind}",
                )
            seen.add(key)
            count += 1
    if pers.get("from") is not None:
        _address(pers["from"], f"{where}.from")

    subject = pers.get("subject", body.get("subject"))
    if body.get("template_id") is None and not (isinstance(subject, str) and subject):
        raise _Invalid(
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject "
            "defined.",
            "subject",
        )
    if subject is not None and not isinstance(subject, str):
        raise _Invalid("The subject must be a string.", f"{where}.subject")

    _headers(pers.get("headers"), f"{where}.headers")
    args = {**top_args, **_string_map(pers.get("custom_args"), f"{where}.custom_args")}
    if len(json.dumps(args, separators=(",", ":")).encode()) >= MAX_CUSTOM_ARGS_BYTES:
        raise _Invalid(
            f"The custom arguments must total less than {MAX_CUSTOM_ARGS_BYTES} bytes "
            "per personalization, including the top-level custom_args.",
            f"{where}.custom_args",
        )
    subs = _string_map(pers.get("substitutions"), f"{where}.substitutions")
    if sum(len(k.encode()) + len(v.encode()) for k, v in subs.items()) > MAX_SUBSTITUTIONS_BYTES:
        raise _Invalid(
            f"The substitutions of a personalization must total {MAX_SUBSTITUTIONS_BYTES} "
            "bytes or less.",
            f"{where}.substitutions",
        )
    _send_at(pers.get("send_at"), f"{where}.send_at")
    return count


def _address(value: Any, field: str) -> str:
    """Validate an ``{email, name}`` object; return the email."""
    if not isinstance(value, dict) or "email" not in value:
        raise _Invalid(
            f"The {field} object requires an email parameter, e.g. "
            '{"email": "example@example.com", "name": "Example"}.',
            f"{field}.email",
        )
    email = value["email"]
    if not isinstance(email, str) or not is_email(email):
        raise _Invalid("Does not contain a valid address.", f"{field}.email")
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or any(c in name for c in ";,\r\n")):
        raise _Invalid(
            "The name must be a string and may not contain ';', ',' or line breaks.",
            f"{field}.name",
        )
    return email


def _content(content: Any) -> None:
    if not isinstance(content, list) or not content:
        raise _Invalid(
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block.",
            "content",
        )
    types: list[str] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise _Invalid("Each content block must be an object.", f"content.{i}")
        ctype, value = block.get("type"), block.get("value")
        if not isinstance(ctype, str) or not ctype or any(c in ctype for c in ";\r\n"):
            raise _Invalid(
                "The content type must be a string without ';' or line breaks.",
                f"content.{i}.type",
            )
        if not isinstance(value, str) or not value:
            raise _Invalid(
                "The content value must be a string at least one character in length.",
                f"content.{i}.value",
            )
        if ctype.lower() in types:
            raise _Invalid("Each content type may appear only once.", f"content.{i}.type")
        types.append(ctype.lower())
    if "text/plain" in types and types[0] != "text/plain":
        raise _Invalid(
            "If present, text/plain content must be first, followed by text/html, followed "
            "by any other content.",
            "content",
        )


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _Invalid(f"The {field} must be an object of string keys and values.", field)
    return value


def _headers(value: Any, field: str) -> dict[str, str]:
    headers = _string_map(value, field)
    for name in headers:
        if name.strip().lower() in RESERVED_HEADERS:
            raise _Invalid(f"The header {name} is reserved and cannot be set.", field)
    return headers


def _categories(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise _Invalid("The categories must be an array of strings.", "categories")
    if len(value) > MAX_CATEGORIES:
        raise _Invalid(f"Too many categories: at most {MAX_CATEGORIES}.", "categories")
    for i, category in enumerate(value):
        if len(category) > MAX_CATEGORY_CHARS:
            raise _Invalid(
                f"A category cannot exceed {MAX_CATEGORY_CHARS} characters.", f"categories.{i}"
            )


def _send_at(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid("The send_at parameter must be a UNIX timestamp (integer).", field)
    if value > time.time() + MAX_SEND_AT_AHEAD:
        raise _Invalid("The send_at parameter cannot be more than 72 hours in the future.", field)


# tracking_settings: each setting's fields and their types (SG-oai mail_send.json)
TRACKING_SETTINGS: dict[str, dict[str, type]] = {
    "click_tracking": {"enable": bool, "enable_text": bool},
    "open_tracking": {"enable": bool, "substitution_tag": str},
    "subscription_tracking": {"enable": bool, "text": str, "html": str, "substitution_tag": str},
    "ganalytics": {
        "enable": bool,
        "utm_source": str,
        "utm_medium": str,
        "utm_term": str,
        "utm_content": str,
        "utm_campaign": str,
    },
}


def _tracking_settings(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _Invalid("The tracking_settings field must be an object.", "tracking_settings")
    for name, setting in value.items():
        where = f"tracking_settings.{name}"
        fields = TRACKING_SETTINGS.get(name)
        if fields is None:
            raise _Invalid(f"Unknown tracking setting {name!r}.", where)
        if not isinstance(setting, dict):
            raise _Invalid(f"The {where} field must be an object.", where)
        for key, given in setting.items():
            if key not in fields or not isinstance(given, fields[key]):
                expected = "a boolean" if fields.get(key) is bool else "a string"
                raise _Invalid(
                    f"The {where}.{key} field must be {expected}."
                    if key in fields
                    else f"Unknown field {key!r} in {where}.",
                    f"{where}.{key}",
                )


def _asm(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _Invalid("The asm field must be an object.", "asm")
    group = value.get("group_id")
    if not isinstance(group, int) or isinstance(group, bool):
        raise _Invalid("The asm.group_id is required and must be an integer.", "asm.group_id")
    shown = value.get("groups_to_display")
    if shown is not None and not (
        isinstance(shown, list)
        and len(shown) <= 25
        and all(isinstance(g, int) and not isinstance(g, bool) for g in shown)
    ):
        raise _Invalid(
            "The asm.groups_to_display must be an array of at most 25 integers.",
            "asm.groups_to_display",
        )


# -- for the shared contract tests (test_transports.py) -----------------------------------
class SendGridContract(Contract):
    transport, label, status, batch_limit = "sendgrid", "SendGrid", "queued", 1000
    env: ClassVar = {"NEWSLETTER_API_KEY": "SG.right-key"}
    wrong_env: ClassVar = {"NEWSLETTER_API_KEY": "SG.wrong-key-4711"}
    wrong_secret, missing_names = "SG.wrong-key-4711", "NEWSLETTER_API_KEY"
    batching = (1203, [203, 1000])
    # SendGrid refuses the whole request, naming personalizations.10.to.0.email; the
    # transport marks that one invalid and sends the other ten again.
    refuses_typo = ("invalid", "SendGrid: Does not contain a valid address.", [11, 10])

    def __init__(self) -> None:
        self.fake = FakeSendGrid(api_key="SG.right-key")

    def delivered(self) -> list[Delivered]:
        return [
            from_record(m, [m["to"]] if isinstance(m["to"], str) else m["to"], m["cc"] + m["bcc"])
            for m in self.fake.accepted
        ]

    def request_sizes(self) -> list[int]:
        return [len(r.body["personalizations"]) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        # X-RateLimit-Reset is an epoch timestamp, here already past
        return (
            "status",
            429,
            {"errors": [{"field": None, "message": "too many requests"}]},
            {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) - 1),
            },
        )

    def server_error(self) -> Fault:
        return ("status", 500, {"errors": [{"field": None, "message": "Internal server error"}]})
