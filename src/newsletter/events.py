"""Provider events: verify each webhook, normalise it into ``Event``s, keep the raw.

One function per provider turns a verified body into events; ``verify`` checks
the provider's own signing scheme (from ``../shared``-documented contracts):

- Postmark: HTTP basic auth (Postmark does not sign), user:password in the secret.
- SendGrid: ECDSA P-256 / SHA-256 over ``timestamp + body`` with the account's
  verification key (the secret: base64 DER, or PEM).
- Mailgun: hex HMAC-SHA256 of ``timestamp + token`` with the signing key; a token
  is accepted once.
- Resend (Svix): base64 HMAC-SHA256 of ``id.timestamp.body`` with the ``whsec_``
  secret; an id is accepted once.
SendGrid, Mailgun and Resend timestamps older than ``TOLERANCE`` are refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InputError
from .models import Event, EventKind

TOLERANCE = 600  # seconds
PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend")


class Rejected(Exception):
    """A webhook that is not genuine: bad signature, stale, or replayed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verify(
    provider: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    seen: Callable[[str], bool],
    now: float | None = None,
) -> None:
    """Raise ``Rejected`` unless the request is a genuine, fresh webhook of ``provider``.

    ``seen(nonce)`` records a nonce and says whether it was seen before.
    """
    now = time.time() if now is None else now
    h = {k.lower(): v for k, v in headers.items()}
    if provider == "postmark":
        _verify_basic(secret, h.get("authorization", ""))
    elif provider == "sendgrid":
        _verify_sendgrid(secret, h, body, seen, now)
    elif provider == "mailgun":
        _verify_mailgun(secret, body, seen, now)
    elif provider == "resend":
        _verify_svix(secret, h, body, seen, now)
    else:
        raise Rejected(404, f"unknown provider {provider!r}")


def _verify_basic(secret: str, header: str) -> None:
    if not header.lower().startswith("basic "):
        raise Rejected(401, "missing basic auth")
    try:
        given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Rejected(401, "malformed basic auth") from None
    expected = secret if ":" in secret else None
    ok = (
        hmac.compare_digest(given, expected)
        if expected
        else hmac.compare_digest(given.partition(":")[2], secret)
    )
    if not ok:
        raise Rejected(401, "wrong credentials")


def _fresh(timestamp: str | float | None, now: float) -> None:
    try:
        ts = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Rejected(400, "no timestamp") from None
    if abs(now - ts) > TOLERANCE:
        raise Rejected(400, "stale timestamp (a replay, or the clocks disagree)")


def _verify_sendgrid(
    secret: str, h: dict[str, str], body: bytes, seen: Callable[[str], bool], now: float
) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = h.get("x-twilio-email-event-webhook-signature", "")
    timestamp = h.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not timestamp:
        raise Rejected(401, "missing signature headers")
    _fresh(timestamp, now)
    try:
        if "BEGIN PUBLIC KEY" in secret:
            key = serialization.load_pem_public_key(secret.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(secret))
        key.verify(
            base64.b64decode(signature),
            timestamp.encode() + body,  # type: ignore[union-attr]
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, binascii.Error, TypeError):
        raise Rejected(401, "bad signature") from None
    if seen(signature):
        raise Rejected(409, "replayed")


def _verify_mailgun(secret: str, body: bytes, seen: Callable[[str], bool], now: float) -> None:
    try:
        signature = json.loads(body)["signature"]
        token, timestamp, given = signature["token"], signature["timestamp"], signature["signature"]
    except (ValueError, KeyError, TypeError):
        raise Rejected(400, "no signature in the body") from None
    expected = hmac.new(secret.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(given)):
        raise Rejected(401, "bad signature")
    _fresh(timestamp, now)
    if seen(str(token)):
        raise Rejected(409, "replayed")


def _verify_svix(
    secret: str, h: dict[str, str], body: bytes, seen: Callable[[str], bool], now: float
) -> None:
    msg_id, timestamp, signatures = (
        h.get("svix-id"),
        h.get("svix-timestamp"),
        h.get("svix-signature"),
    )
    if not (msg_id and timestamp and signatures):
        raise Rejected(401, "missing svix headers")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except binascii.Error:
        raise Rejected(500, "the webhook secret is not a whsec_ secret") from None
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.partition(",")[2] for part in signatures.split() if part.startswith("v1,")]
    if not any(hmac.compare_digest(expected, g) for g in given):
        raise Rejected(401, "bad signature")
    _fresh(timestamp, now)
    if seen(msg_id):
        raise Rejected(409, "replayed")


# -- normalising ---------------------------------------------------------------------------
def parse(provider: str, body: bytes) -> list[Event]:
    """Events from a verified webhook body (or an export file) of ``provider``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InputError(f"The {provider} events are not JSON.") from None
    parser = {
        "postmark": _postmark,
        "sendgrid": _sendgrid,
        "mailgun": _mailgun,
        "resend": _resend,
    }.get(provider)
    if parser is None:
        raise InputError(f"Unknown provider {provider!r}.", f"Use one of: {', '.join(PROVIDERS)}.")
    items = data if isinstance(data, list) else [data]
    return [e for item in items if isinstance(item, dict) for e in parser(item)]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _postmark(item: dict[str, Any]) -> list[Event]:
    record = item.get("RecordType")
    meta = item.get("Metadata") or {}
    common = {
        "provider": "postmark",
        "raw": item,
        "provider_message_id": item.get("MessageID"),
        "campaign": meta.get("campaign") or item.get("Tag"),
        "subscriber_id": _int(meta.get("subscriber")),
    }
    email = item.get("Email") or item.get("Recipient")
    if record == "Bounce":
        kind = {
            "HardBounce": EventKind.BOUNCED,
            "SpamComplaint": EventKind.COMPLAINED,
            "BadEmailAddress": EventKind.BOUNCED,
            "ManuallyDeactivated": EventKind.BOUNCED,
            "Unsubscribe": EventKind.UNSUBSCRIBED,
        }.get(item.get("Type", ""), EventKind.SOFT_BOUNCED)
        return [
            Event(
                kind=kind,
                email=email,
                occurred_at=item.get("BouncedAt"),
                provider_event_id=f"bounce-{item.get('ID')}" if item.get("ID") else None,
                detail=item.get("Description") or item.get("Type"),
                **common,
            )
        ]
    if record == "SpamComplaint":
        return [
            Event(
                kind=EventKind.COMPLAINED,
                email=email,
                occurred_at=item.get("BouncedAt"),
                provider_event_id=f"complaint-{item.get('ID')}" if item.get("ID") else None,
                **common,
            )
        ]
    if record == "Delivery":
        return [
            Event(
                kind=EventKind.DELIVERED, email=email, occurred_at=item.get("DeliveredAt"), **common
            )
        ]
    if record == "SubscriptionChange" and item.get("SuppressSending"):
        reason = item.get("SuppressionReason", "")
        kind = {"HardBounce": EventKind.BOUNCED, "SpamComplaint": EventKind.COMPLAINED}.get(
            reason, EventKind.UNSUBSCRIBED
        )
        return [
            Event(
                kind=kind, email=email, occurred_at=item.get("ChangedAt"), detail=reason, **common
            )
        ]
    if record == "Open":
        return [
            Event(kind=EventKind.OPENED, email=email, occurred_at=item.get("ReceivedAt"), **common)
        ]
    if record == "Click":
        return [
            Event(
                kind=EventKind.CLICKED,
                email=email,
                occurred_at=item.get("ReceivedAt"),
                detail=item.get("OriginalLink"),
                **common,
            )
        ]
    return []


def _sendgrid(item: dict[str, Any]) -> list[Event]:
    event = item.get("event")
    kind = {
        "delivered": EventKind.DELIVERED,
        "dropped": EventKind.DROPPED,
        "spamreport": EventKind.COMPLAINED,
        "unsubscribe": EventKind.UNSUBSCRIBED,
        "group_unsubscribe": EventKind.UNSUBSCRIBED,
        "open": EventKind.OPENED,
        "click": EventKind.CLICKED,
    }.get(str(event))
    if event == "bounce":
        kind = EventKind.SOFT_BOUNCED if item.get("type") == "blocked" else EventKind.BOUNCED
    if kind is None:
        return []
    message_id = str(item.get("sg_message_id") or "").split(".")[0] or None
    when = item.get("timestamp")
    return [
        Event(
            provider="sendgrid",
            kind=kind,
            email=item.get("email"),
            provider_message_id=message_id,
            provider_event_id=item.get("sg_event_id"),
            occurred_at=dt.datetime.fromtimestamp(float(when), dt.UTC).isoformat()
            if when
            else None,
            campaign=item.get("campaign"),
            subscriber_id=_int(item.get("subscriber")),
            detail=item.get("reason") or item.get("url"),
            raw=item,
        )
    ]


def _mailgun(item: dict[str, Any]) -> list[Event]:
    data = item.get("event-data", item)
    event = data.get("event")
    kind = {
        "delivered": EventKind.DELIVERED,
        "complained": EventKind.COMPLAINED,
        "unsubscribed": EventKind.UNSUBSCRIBED,
        "opened": EventKind.OPENED,
        "clicked": EventKind.CLICKED,
    }.get(str(event))
    if event == "failed":
        kind = EventKind.BOUNCED if data.get("severity") == "permanent" else EventKind.SOFT_BOUNCED
    if kind is None:
        return []
    variables = data.get("user-variables") or {}
    message_id = ((data.get("message") or {}).get("headers") or {}).get("message-id")
    when = data.get("timestamp")
    status = data.get("delivery-status") or {}
    return [
        Event(
            provider="mailgun",
            kind=kind,
            email=data.get("recipient"),
            provider_message_id=f"<{message_id.strip('<>')}>" if message_id else None,
            provider_event_id=data.get("id"),
            occurred_at=dt.datetime.fromtimestamp(float(when), dt.UTC).isoformat()
            if when
            else None,
            campaign=variables.get("campaign"),
            subscriber_id=_int(variables.get("subscriber")),
            detail=data.get("reason") or status.get("description") or status.get("message"),
            raw=item,
        )
    ]


def _resend(item: dict[str, Any]) -> list[Event]:
    kind_name = str(item.get("type", ""))
    data = item.get("data") or {}
    kind = {
        "email.delivered": EventKind.DELIVERED,
        "email.complained": EventKind.COMPLAINED,
        "email.opened": EventKind.OPENED,
        "email.clicked": EventKind.CLICKED,
        "email.suppressed": EventKind.DROPPED,
    }.get(kind_name)
    bounce = data.get("bounce") or {}
    if kind_name == "email.bounced":
        kind = EventKind.BOUNCED if bounce.get("type") == "Permanent" else EventKind.SOFT_BOUNCED
    if kind is None:
        return []
    tags = data.get("tags") or {}
    if isinstance(tags, list):
        tags = {t.get("name"): t.get("value") for t in tags if isinstance(t, dict)}
    recipients = data.get("to") or [None]
    return [
        Event(
            provider="resend",
            kind=kind,
            email=email,
            provider_message_id=data.get("email_id"),
            occurred_at=item.get("created_at"),
            campaign=tags.get("campaign"),
            subscriber_id=_int(tags.get("subscriber")),
            detail=bounce.get("message"),
            raw=item,
        )
        for email in recipients
    ]
