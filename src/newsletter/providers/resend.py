"""Resend's batch API: up to 100 emails a request, an Idempotency-Key per batch.

The key is derived from the campaign and the batch's recipients, so a retry
after a timeout or a dropped connection is recognised by Resend and never
delivers twice; ``x-batch-validation: permissive`` makes one bad address fail
alone instead of the whole batch.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any

import requests

from ..delivery.base import HTTPRequest, HTTPTransport, json_or_none, results
from ..delivery.encode import PerCampaign, dumps, join
from ..errors import DeliveryError
from ..events import (
    Malformed,
    Read,
    iso_time,
    mapping,
    our_subscriber,
    ours,
    string,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import OutgoingMessage
from ..render.message import json_pieces
from ..webhooks import Rejected, Request, Verifier, checked_timestamp, fresh, strict_b64decode
from . import Provider, Secret, Setup

if TYPE_CHECKING:
    from ..render import MessageFactory

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_-]")


class ResendTransport(HTTPTransport):
    name = "resend"
    provider = "Resend"
    max_batch = 500  # claimed and settled at once: fewer claims and settles
    per_request = 100  # emails a request, Resend's limit
    default_base_url = "https://api.resend.com"
    idempotent_requests = True
    credentials_hint = "Set NEWSLETTER_API_KEY to a Resend API key with sending access (re_...)."

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-batch-validation": "permissive",
        }
        self._pieces = PerCampaign()

    @staticmethod
    def idempotency_key(messages: list[OutgoingMessage]) -> str:
        compiled = messages[0].factory.compiled
        ids = ",".join(f"{m.recipient.subscriber_id}:{m.recipient.email}" for m in messages)
        # a test copy is meant to arrive each time it is asked for
        nonce = secrets.token_hex(8) if messages[0].factory.test else ""
        digest = hashlib.sha256(f"{compiled.slug}\n{ids}\n{nonce}".encode())
        return f"nl-{_TAG_VALUE.sub('-', compiled.slug)[:100]}-{digest.hexdigest()[:40]}"

    @staticmethod
    def _campaign_pieces(factory: MessageFactory) -> tuple[bytes, bytes, bytes]:
        """What every email of the campaign holds, encoded once: its start (``from``),
        the campaign's tag, and what follows the subscriber's tag (``reply_to``)."""
        slug = _TAG_VALUE.sub("_", factory.compiled.slug)[:256]
        campaign = b',"tags":[' + dumps({"name": "campaign", "value": slug})
        after = b"]"
        if factory.reply_to_display:
            after += b',"reply_to":' + dumps(factory.reply_to_display)
        return b'{"from":' + dumps(factory.sender_display), campaign, after + b',"html":"'

    def email_pieces(self, message: OutgoingMessage) -> list[bytes]:
        """One email of the batch: the campaign's pieces (encoded once) and the reader's
        own ``to``, ``subject``, ``headers``, subscriber tag, ``html`` and ``text``."""
        factory = message.factory
        start, campaign, after = self._pieces.get(
            factory, None, lambda: self._campaign_pieces(factory)
        )
        headers = {**message.list_headers(), "Message-ID": message.message_id}
        subscriber = {"name": "subscriber", "value": str(message.recipient.subscriber_id)}
        pieces = [
            start,
            b',"to":[',
            dumps(message.to_display),
            b'],"subject":',
            dumps(message.subject),
            b',"headers":',
            dumps(headers),
            campaign,
            b",",
            dumps(subscriber),
            after,
        ]
        # the HTML and text as the campaign's own escaped pieces (never copied per
        # reader) around the reader's values: a request holds only the readers' bytes
        encoded = factory.encoded(message.variant)
        json_pieces(encoded.html_json, message.html_values, pieces)
        pieces.append(b'","text":"')
        json_pieces(encoded.text_json, message.text_values, pieces)
        pieces.append(b'"}')
        return pieces

    def still_working(self, response: requests.Response) -> str | None:
        """A 409 ``concurrent_idempotent_requests``: the same batch is still in progress at
        Resend (after a timeout), so it is waited out and asked again, in the base's one
        retry loop: at most ``max_retries + 1`` POSTs for a batch, whatever the answers."""
        data = json_or_none(response) if response.status_code == 409 else None
        if isinstance(data, dict) and data.get("name") == "concurrent_idempotent_requests":
            return "Resend is still working on this batch"
        return None

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        headers = {**self.headers, "Idempotency-Key": self.idempotency_key(messages)}
        pieces = [b"["]
        for message in messages:
            pieces += self.email_pieces(message)
            pieces.append(b",")
        pieces[-1] = b"]"
        return HTTPRequest("/emails/batch", join(pieces), headers)

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        if response.status_code not in (200, 201, 202):
            name = data.get("name") if isinstance(data, dict) else None
            message = data.get("message") if isinstance(data, dict) else response.text[:200]
            raise DeliveryError(
                f"Resend rejected the batch (HTTP {response.status_code} {name or ''}: {message}).",
                "Nothing in this batch was sent. Fix the cause and run the same send again.",
            )
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"Resend answered without results: {response.text[:200]!r}",
            )
        errors = {
            e.get("index"): str(e.get("message"))
            for e in data.get("errors") or []
            if isinstance(e, dict)
        }
        ids = iter(data["data"])  # one per message without an error, in order
        return [
            _refused(m.recipient.subscriber_id, errors[index])
            if index in errors
            else _accepted(m.recipient.subscriber_id, next(ids, None))
            for index, m in enumerate(messages)
        ]


def _refused(sid: int, error: str) -> SendResult:
    """A message the batch's ``errors`` name: invalid (and suppressed) when the error is
    about its address, else failed."""
    bad_address = "email" in error.lower() or "address" in error.lower()
    return SendResult(
        sid,
        DeliveryStatus.INVALID if bad_address else DeliveryStatus.FAILED,
        error=f"Resend: {error}",
        suppress=bad_address,
    )


def _accepted(sid: int, item: Any) -> SendResult:
    if not isinstance(item, dict) or not item.get("id"):
        return SendResult(sid, DeliveryStatus.UNKNOWN, error="Resend returned no id")
    return SendResult(sid, DeliveryStatus.SENT, message_id=str(item["id"]), raw=item)


K = EventKind


# -- events -------------------------------------------------------------------------------
# `type` -> kind (Resend's "Event types": resend.com/docs/webhooks/event-types).
RESEND_EVENTS: dict[str, EventKind | None] = {
    "email.sent": K.SENT,  # the API request succeeded; Resend will deliver
    "email.delivered": K.DELIVERED,
    "email.delivery_delayed": K.DEFERRED,  # a temporary issue (full inbox): still trying
    "email.bounced": None,  # by `data.bounce.type` and `subType`: RESEND_BOUNCES
    "email.complained": K.COMPLAINED,
    "email.opened": K.OPENED,
    "email.clicked": K.CLICKED,
    "email.failed": K.FAILED,  # not sent: API key, domain, quota, or a request error
    "email.suppressed": K.DROPPED,  # on Resend's suppression list: it bounced or complained
    "email.scheduled": K.QUEUED,
    "email.received": K.UNKNOWN,  # inbound mail: not about our messages
    "contact.created": K.UNKNOWN,  # Resend's audiences: newsletter keeps its own list
    "contact.updated": K.UNKNOWN,
    "contact.deleted": K.UNKNOWN,
    "domain.created": K.UNKNOWN,  # account events
    "domain.updated": K.UNKNOWN,
    "domain.deleted": K.UNKNOWN,
}
# A bounce's (type, subType) (Resend's "Email bounces" page, "Bounce types and subtypes").
RESEND_BOUNCES: dict[tuple[str, str], EventKind] = {
    ("Permanent", "General"): K.BOUNCED,
    ("Permanent", "NoEmail"): K.BOUNCED,
    ("Permanent", "Suppressed"): K.DROPPED,  # a history of hard bounces
    ("Permanent", "OnAccountSuppressionList"): K.DROPPED,  # it hard bounced before
    ("Transient", "General"): K.SOFT_BOUNCED,  # "you might be able to send ... in the future"
    ("Transient", "MailboxFull"): K.SOFT_BOUNCED,
    ("Transient", "MessageTooLarge"): K.FAILED,  # about our message, not the address
    ("Transient", "ContentRejected"): K.FILTERED,  # our content
    ("Transient", "AttachmentRejected"): K.FILTERED,  # our attachment
    ("Undetermined", "Undetermined"): K.SOFT_BOUNCED,  # no reason given: counted
}
RESEND_OTHER_BOUNCES: dict[str, EventKind] = {  # by type, for a subType not listed
    "Permanent": K.BOUNCED,
    "Transient": K.SOFT_BOUNCED,
    "Temporary": K.SOFT_BOUNCED,  # the spelling of Resend's SDK
    "Undetermined": K.SOFT_BOUNCED,
}
RESEND_OTHER_BOUNCE = K.SOFT_BOUNCED  # a bounce type not listed: counted, never at once


def _resend_kind(name: str, bounce: dict[str, Any]) -> EventKind | None:
    if name != "email.bounced":
        return RESEND_EVENTS.get(name)
    bounce_type = string(bounce, "type") or ""
    found = RESEND_BOUNCES.get((bounce_type, string(bounce, "subType") or ""))
    return found or RESEND_OTHER_BOUNCES.get(bounce_type, RESEND_OTHER_BOUNCE)


def _resend_tags(tags: Any) -> dict[str, Any]:
    """An event's tags, as a mapping, or as the API's form ``[{name, value}]``."""
    if isinstance(tags, list):
        tags = {
            t["name"]: t.get("value")
            for t in tags
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        }
    return tags if isinstance(tags, dict) else {}


def _resend_recipients(recipients: Any) -> list[str] | None:
    """``data.to``: one address or a list of them (None: not given)."""
    if isinstance(recipients, str):
        return [recipients]
    if recipients is not None and not (
        isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)
    ):
        raise Malformed("data.to is not a list of addresses")
    return recipients


def _read_event(item: dict[str, Any]) -> Read:
    """A Resend event; its replay key is the request's ``svix-id`` (no id in the body)."""
    name = string(item, "type") or ""
    data = mapping(item, "data")
    bounce = mapping(data, "bounce")
    kind = _resend_kind(name, bounce)
    if kind is None or kind == K.UNKNOWN:
        events, _ = unknown_event("resend", item, f"type {name}" if name else None)
        return events, ()
    tags = _resend_tags(data.get("tags"))
    recipients = _resend_recipients(data.get("to"))
    # email.clicked's `data.click` {link, userAgent, ipAddress, timestamp} (RS-py
    # EmailClick); email.opened carries no user agent
    click = mapping(data, "click") if kind == K.CLICKED else {}
    common = {
        "provider": "resend",
        "kind": kind,
        "provider_message_id": string(data, "email_id"),
        "occurred_at": iso_time(item, "created_at"),
        "campaign": ours(tags.get("campaign")),
        "subscriber_id": our_subscriber(tags.get("subscriber")),
        "detail": string(bounce, "message"),
        "raw": item,
        "url": string(click, "link"),
        "user_agent": string(click, "userAgent"),
    }
    return [Event(email=email or None, **common) for email in recipients or [None]], ()


# -- webhooks: Svix -----------------------------------------------------------------------
_SVIX_ID = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_SIGNATURES = 16


def _webhook_key(secret: str) -> bytes:
    key = strict_b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else None
    if key is None or len(key) < 16:
        raise ValueError("it must be the whsec_... signing secret Resend shows")
    return key


def _check_webhook(key: bytes, request: Request) -> tuple[str, ...]:
    msg_id = request.header("svix-id")
    if not _SVIX_ID.fullmatch(msg_id):
        raise Rejected(401, "malformed svix-id header")
    timestamp = checked_timestamp(request.header("svix-timestamp"))
    signatures = request.header("svix-signature", limit=4096).split()
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    given = [
        strict_b64decode(part[3:])
        for part in signatures[:_MAX_SIGNATURES]
        if part.startswith("v1,")
    ]
    # compare with each, so that the time taken says nothing of which one matched
    matches = [hmac.compare_digest(expected, g) for g in given if g is not None]
    if not any(matches):
        raise Rejected(401, "bad signature")
    fresh(timestamp, request.now)
    return (f"svix:{msg_id}",)


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> ResendTransport:
    return ResendTransport(setup.secret("NEWSLETTER_API_KEY"), **setup.http())


PROVIDER = Provider(
    name="resend",
    transport=ResendTransport,
    build=_build,
    secrets=(Secret("NEWSLETTER_API_KEY", "to send through Resend (an API key, re_...)"),),
    webhook=Verifier(_webhook_key, _check_webhook),
    read_event=_read_event,
)
