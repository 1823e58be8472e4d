"""SendGrid v3 mail/send: one body per request, one personalization per recipient.

The campaign's HTML and text go once per request with a placeholder for each
merge field; each personalization carries that recipient's values as
``substitutions``, their own List-Unsubscribe header and ``custom_args`` that
come back in events. SendGrid answers 202 with one X-Message-Id for the whole
request and reports per recipient only through events, so results are
``queued``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import requests

from ..delivery.base import HTTPRequest, HTTPTransport, json_or_none, results
from ..delivery.encode import PerCampaign, Substitutions, dumps, join
from ..errors import DeliveryError
from ..events import (
    Read,
    content_key,
    our_subscriber,
    ours,
    replay_key,
    string,
    unix_time,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import OutgoingMessage
from ..render.headers import header_safe
from ..webhooks import Rejected, Request, Verifier, checked_timestamp, fresh, strict_b64decode
from . import Option, Provider, Secret, Setup

if TYPE_CHECKING:
    from ..render import MessageFactory
    from ..render.message import SharedContent

_BAD_EMAIL_FIELD = re.compile(r"^personalizations\.(\d+)\.to\.\d+\.email$")
_NOT_IN_NAME = re.compile(r"[,;]")


def _placeholder(part: str, slot: int) -> str:
    return f"-nl{part}{slot}-"


class SendGridTransport(HTTPTransport):
    shared_body = True  # one body per request: every message of a batch of one variant
    name = "sendgrid"
    provider = "SendGrid"
    max_batch = 1000
    default_base_url = "https://api.sendgrid.com"
    eu_base_url = "https://api.eu.sendgrid.com"
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to a SendGrid API key with the Mail Send permission "
        "(Settings > API Keys)."
    )

    def __init__(
        self, api_key: str, *, clicks: bool = False, opens: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.tracking_settings = sendgrid_tracking(clicks, opens)
        self._pieces = PerCampaign()

    def _campaign_pieces(
        self, factory: MessageFactory, shared: SharedContent
    ) -> tuple[bytes, bytes, Substitutions]:
        """The body before and after the personalizations, encoded once per variant:
        ``from``, ``subject``, ``content``, then ``categories``, ``custom_args``,
        ``tracking_settings`` and ``reply_to``."""
        compiled = factory.compiled
        head = {
            "from": _email(*factory.sender),
            "subject": shared.subject,
            "content": [
                {"type": "text/plain", "value": shared.text},
                {"type": "text/html", "value": shared.html},
            ],
        }
        tail: dict[str, Any] = {
            "categories": [compiled.slug[:255]],
            "custom_args": {"campaign": compiled.slug},
            "tracking_settings": self.tracking_settings,
        }
        if factory.reply_to:
            tail["reply_to"] = _email(*factory.reply_to)
        start = dumps(head)[:-1] + b',"personalizations":['
        return start, b"]," + dumps(tail)[1:], _Entries(factory, shared)

    @staticmethod
    def _personalization(message: OutgoingMessage, values: Substitutions) -> dict[str, Any]:
        """A reader's personalization, as the documented object (``_Entries`` encodes
        the same JSON from its pieces)."""
        return {
            "to": [_email(message.to_name, message.to_address)],
            "substitutions": values.values(message),
            "headers": message.list_headers(),
            "custom_args": {"subscriber": str(message.recipient.subscriber_id)},
        }

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        """The campaign's pieces (encoded once) around each reader's personalization,
        joined once: the compact JSON of the documented body."""
        first = messages[0]
        factory = first.factory
        shared = factory.shared_content(first.variant, _placeholder)
        head, tail, entries = self._pieces.get(
            factory, first.variant.number, lambda: self._campaign_pieces(factory, shared)
        )
        pieces = [head]
        for message in messages:
            pieces.append(entries.entry(message))
            pieces.append(b",")
        pieces[-1] = tail
        return HTTPRequest("/v3/mail/send", join(pieces), self.headers)

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        # A 400 that names a recipient's address is a bad address, not a bad request:
        # mark those invalid and send the rest again (nothing of a 400 was sent).
        invalid: dict[int, SendResult] = {}
        remaining = list(messages)
        for _ in range(3):
            try:
                sent = super().send_batch(remaining)
            except _BadAddresses as exc:
                for index, error in exc.bad.items():
                    message = remaining[index]
                    invalid[message.recipient.subscriber_id] = SendResult(
                        message.recipient.subscriber_id,
                        DeliveryStatus.INVALID,
                        error=f"SendGrid: {error}",
                        suppress=True,
                    )
                remaining = [m for i, m in enumerate(remaining) if i not in exc.bad]
                if remaining:
                    continue
                sent = []
            by_id = {r.subscriber_id: r for r in sent} | invalid
            return [by_id[m.recipient.subscriber_id] for m in messages]
        raise DeliveryError("SendGrid kept rejecting addresses in the same batch.")

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        if response.status_code == 202:
            message_id = response.headers.get("X-Message-Id")
            return results(messages, DeliveryStatus.QUEUED, message_id=message_id)
        if 200 <= response.status_code < 300:  # taken, but not as documented: may go out
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"SendGrid answered HTTP {response.status_code} instead of 202: "
                f"{response.text[:200]!r}",
            )
        errors = (json_or_none(response) or {}).get("errors") if response.content else None
        errors = errors if isinstance(errors, list) else []
        if response.status_code == 400:
            bad = _bad_addresses(errors, len(messages))
            if bad and len(bad) == len(errors):
                raise _BadAddresses(bad)
        detail = "; ".join(
            f"{e.get('field') or ''} {e.get('message', '')}".strip()
            for e in errors
            if isinstance(e, dict)
        )
        raise DeliveryError(
            f"SendGrid rejected the request (HTTP {response.status_code}: "
            f"{detail or response.text[:200] or 'no message'}).",
            "Nothing in this batch was sent. Fix the cause and run the same send again.",
        )


class _Entries:
    """Each reader's personalization as the compact JSON of
    ``SendGridTransport._personalization``, from pieces: what is the same for every
    reader of the variant (keys, List-Unsubscribe-Post, List-Id) encoded once, and only
    the reader's address, values, unsubscribe links and id encoded for each."""

    def __init__(self, factory: MessageFactory, shared: SharedContent) -> None:
        self.values = Substitutions(shared, header_safe)
        self.listed = not factory.transactional
        if self.listed:  # "headers": {List-Unsubscribe, List-Unsubscribe-Post, List-Id}
            rest = dumps(
                {
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    "List-Id": factory.list_id or "",
                }
            )
            self.headers = b',"headers":{"List-Unsubscribe":'
            self.after = b"," + rest[1:] + b',"custom_args":{"subscriber":'
        else:
            self.headers = b',"headers":' + dumps({"Auto-Submitted": "auto-generated"})
            self.after = b',"custom_args":{"subscriber":'

    def entry(self, message: OutgoingMessage) -> bytes:
        """The reader's personalization."""
        return b"".join(
            (
                b'{"to":[',
                dumps(_email(message.to_name, message.to_address)),
                b'],"substitutions":',
                dumps(self.values.values(message)),
                self.headers,
                dumps(message.list_unsubscribe) if self.listed else b"",
                self.after,
                dumps(str(message.recipient.subscriber_id)),
                b"}}",
            )
        )


def sendgrid_tracking(clicks: bool, opens: bool) -> dict[str, Any]:
    """``tracking_settings``, every part on or explicitly off (so that the account's
    settings cannot track readers). Click tracking covers the text part too when on.
    Subscription tracking (SendGrid's own unsubscribe link and page) is always off:
    every message carries newsletter's own unsubscribe link and List-Unsubscribe."""
    return {
        "click_tracking": {"enable": clicks, "enable_text": clicks},
        "open_tracking": {"enable": opens},
        "subscription_tracking": {"enable": False},
    }


def _bad_addresses(errors: list[Any], count: int) -> dict[int, str]:
    """The messages (by their index in a batch of ``count``) whose address a 400's
    ``errors`` name (``personalizations.<n>.to...``), each with its error."""
    bad = {}
    for error in errors:
        match = _BAD_EMAIL_FIELD.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < count:
            bad[int(match.group(1))] = str(error.get("message"))
    return bad


class _BadAddresses(Exception):
    def __init__(self, bad: dict[int, str]) -> None:
        self.bad = bad


def _email(name: str, address: str) -> dict[str, str]:
    """``{"email", "name"}``; SendGrid documents that a name may not hold ``,`` or ``;``
    (its parser would take part of the name for the address), so those go."""
    if "," in name or ";" in name or "  " in name or name.startswith(" ") or name.endswith(" "):
        name = " ".join(w for w in _NOT_IN_NAME.sub(" ", name).split(" ") if w)
    return {"email": address, **({"name": name} if name else {})}


K = EventKind


# -- events -------------------------------------------------------------------------------
# `event` -> kind (SendGrid's Event Webhook reference, "Delivery events" and "Engagement
# events": twilio.com/docs/sendgrid/for-developers/tracking-events/event).
SENDGRID_EVENTS: dict[str, EventKind | None] = {
    "processed": K.QUEUED,  # received and ready to be delivered
    "deferred": K.DEFERRED,  # the receiving server said later: SendGrid retries for 72 h
    "delivered": K.DELIVERED,
    "bounce": None,  # by its `type`: SENDGRID_BOUNCE_TYPES
    "dropped": None,  # by its `reason`: SENDGRID_DROP_REASONS
    "open": K.OPENED,
    "click": K.CLICKED,
    "spamreport": K.COMPLAINED,
    "unsubscribe": K.UNSUBSCRIBED,  # "Opt Out of All Emails"
    "group_unsubscribe": K.UNSUBSCRIBED,  # out of the group the newsletter goes out in
    "group_resubscribe": K.SUBSCRIBED,  # coming back takes `subscribers resubscribe`
}
# A bounce's `type` (the reference's Bounce and Blocked rows; "expired" as anymail reads it).
SENDGRID_BOUNCE_TYPES: dict[str, EventKind] = {
    "bounce": K.BOUNCED,  # "could not or would not accept mail to this recipient permanently"
    "blocked": K.SOFT_BOUNCED,  # "... the message temporarily": not retried, so counted
    "expired": K.SOFT_BOUNCED,  # still deferred after 72 hours of retries
}
SENDGRID_UNTYPED_BOUNCE = K.BOUNCED  # a bounce without `type`, as SendGrid's older events
SENDGRID_OTHER_BOUNCE = K.SOFT_BOUNCED  # a `type` not listed: counted, never at once
# A drop's `reason`, compared in lower case (the reference's Dropped row; glossary, "Drops").
SENDGRID_DROP_REASONS: dict[str, EventKind] = {
    "bounced address": K.DROPPED,  # on SendGrid's bounce list
    "invalid": K.DROPPED,  # on its invalid emails list
    "unsubscribed address": K.UNSUBSCRIBED,  # on its unsubscribe list
    "spam reporting address": K.COMPLAINED,  # on its spam report list
    "spam content": K.FILTERED,  # its spam checker objected to our content
    "invalid smtpapi header": K.FAILED,  # our request was malformed
    "recipient list over package quota": K.FAILED,  # the account's quota
}
SENDGRID_OTHER_DROP = K.UNKNOWN  # a reason not listed: recorded, never suppressing


def _sendgrid_kind(event: str, item: dict[str, Any]) -> EventKind | None:
    if event == "bounce":
        bounce_type = string(item, "type")
        if bounce_type is None:
            return SENDGRID_UNTYPED_BOUNCE
        return SENDGRID_BOUNCE_TYPES.get(bounce_type, SENDGRID_OTHER_BOUNCE)
    if event == "dropped":
        reason = (string(item, "reason") or "").strip().lower()
        return SENDGRID_DROP_REASONS.get(reason, SENDGRID_OTHER_DROP)
    return SENDGRID_EVENTS.get(event)


_ENGAGED = frozenset({K.OPENED, K.CLICKED})  # the events that carry a user agent


def _read_event(item: dict[str, Any]) -> Read:
    event = string(item, "event") or ""
    event_id = string(item, "sg_event_id")
    key = replay_key("event", event_id) if event_id else content_key(item)
    kind = _sendgrid_kind(event, item)
    if kind is None:
        what = f"event {event}" if event else None
        return unknown_event("sendgrid", item, what, ("email",), ("sg_message_id",), (key,))
    message_id = (string(item, "sg_message_id") or "").split(".")[0] or None
    found = Event(
        provider="sendgrid",
        kind=kind,
        email=string(item, "email"),
        provider_message_id=message_id,
        provider_event_id=event_id,
        occurred_at=unix_time(item, "timestamp"),
        campaign=ours(item.get("campaign")),
        subscriber_id=our_subscriber(item.get("subscriber")),
        detail=string(item, "reason") or string(item, "response") or string(item, "url"),
        raw=item,
        url=string(item, "url") if kind == K.CLICKED else None,
        user_agent=string(item, "useragent") if kind in _ENGAGED else None,
    )
    return [found], (key,)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# -- webhooks: ECDSA P-256 ----------------------------------------------------------------
def _webhook_key(secret: str) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if "-----BEGIN" in secret:
            key = serialization.load_pem_public_key(secret.encode())
        else:
            der = strict_b64decode(secret)
            if der is None:
                raise ValueError("it is neither base64 nor PEM")
            key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        raise ValueError("it is not an ECDSA P-256 public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("it is not an ECDSA P-256 public key")
    return key


def _check_webhook(key: Any, request: Request) -> tuple[str, ...]:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    signature = request.header("x-twilio-email-event-webhook-signature")
    timestamp = checked_timestamp(request.header("x-twilio-email-event-webhook-timestamp"))
    der = strict_b64decode(signature)
    try:
        r, s = decode_dss_signature(der or b"")  # one DER SEQUENCE, no trailing bytes
    except ValueError:
        raise Rejected(401, "malformed signature") from None
    if encode_dss_signature(r, s) != der or not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise Rejected(401, "malformed signature")  # not minimal DER, or out of range
    # (r, s) and (r, n - s) are the same signature; take the low-S form. Refusing high S
    # would refuse half of what common signers (OpenSSL, Go, Java) make, and nothing here
    # depends on the signature's bytes: replays are known by their events' ids.
    canonical = encode_dss_signature(r, min(s, P256_ORDER - s))
    try:
        key.verify(canonical, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected(401, "bad signature") from None
    fresh(timestamp, request.now)
    return ()


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> SendGridTransport:
    http = setup.http()
    if not http["base_url"] and (setup.option("region") or "").lower() == "eu":
        http["base_url"] = SendGridTransport.eu_base_url
    return SendGridTransport(
        setup.secret("NEWSLETTER_API_KEY"),
        clicks=setup.tracking.clicks,
        opens=setup.tracking.opens,
        **http,
    )


PROVIDER = Provider(
    name="sendgrid",
    transport=SendGridTransport,
    build=_build,
    options=(Option("region"),),  # "eu" for EU regional subusers
    secrets=(
        Secret("NEWSLETTER_API_KEY", "to send through SendGrid (an API key with Mail Send access)"),
    ),
    webhook=Verifier(_webhook_key, _check_webhook, batch=True, public_key=True),
    read_event=_read_event,
)
