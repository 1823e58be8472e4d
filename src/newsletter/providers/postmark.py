"""Postmark: its batch API (up to 500 messages a request, one result per message), its
webhooks (basic auth) and its events."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from ..delivery.base import Body, HTTPRequest, HTTPTransport, json_or_none, results
from ..errors import CredentialsError, DeliveryError
from ..events import (
    Read,
    content_key,
    ident,
    iso_time,
    mapping,
    our_subscriber,
    ours,
    replay_key,
    shown,
    string,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import MessageFactory, OutgoingMessage
from ..render.message import json_pieces, json_string
from ..webhooks import Rejected, Request, Verifier, authorization, digest
from . import Option, Provider, Secret, Setup

# Postmark API error codes (postmarkapp.com/developer/api/overview#error-codes).
_INACTIVE = 406
_INVALID_REQUEST = 300
_ACCOUNT = {
    10: "the server token was refused",
    405: "the account is not allowed to send",
    412: "the account is pending approval",
    413: "the account may not send",
}


class PostmarkTransport(HTTPTransport):
    name = "postmark"
    provider = "Postmark"
    max_batch = 500
    default_base_url = "https://api.postmarkapp.com"
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to the Server API token of the Postmark server that sends "
        "this newsletter (Postmark > Servers > API Tokens)."
    )

    def __init__(
        self,
        token: str,
        message_stream: str = "broadcast",
        *,
        clicks: bool = False,
        opens: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "X-Postmark-Server-Token": token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.message_stream = message_stream
        self.tracking = postmark_tracking(clicks, opens)
        # what this transport's pieces are cached under, with each campaign
        self._key = ("postmark", message_stream, clicks, opens)

    def payload_json(self, message: OutgoingMessage) -> bytes:
        """One message as JSON (the bytes ``message_json`` documents)."""
        out: list[bytes] = []
        self.write_message(message, out)
        return b"".join(out)

    def write_message(self, message: OutgoingMessage, out: list[bytes]) -> None:
        """Append one message's JSON to ``out`` as pieces: the campaign's own pieces are
        encoded once (per campaign and variant) and shared, only the reader's fields are
        encoded here. The bytes are those of ``message_json`` for the same fields."""
        factory = message.factory
        parts: _Parts = factory.wire_parts(self._key, lambda: self._parts(factory))
        variant = message.variant
        subject = parts.subjects.get(variant.number)
        if subject is None:
            subject = b',"Subject":' + json_string(message.subject)
            if variant.subject.is_static:  # the same for every reader of the variant
                parts.subjects[variant.number] = subject
        out += (parts.head, json_string(message.to_display), subject, parts.headers)
        if parts.unsubscribe is not None:
            out += (json_string(message.list_unsubscribe), parts.unsubscribe)
        out += (
            json_string(message.message_id),
            parts.metadata,
            str(message.recipient.subscriber_id).encode("ascii"),
            parts.bodies,
        )
        encoded = factory.encoded(variant)
        json_pieces(encoded.html_json, message.html_values, out)
        out.append(b'","TextBody":"')
        json_pieces(encoded.text_json, message.text_values, out)
        out.append(b'"}')

    def _parts(self, factory: MessageFactory) -> _Parts:
        """The pieces of every message of this campaign that are the same for each reader."""
        compiled = factory.compiled
        fixed = (
            [("Auto-Submitted", "auto-generated")]
            if factory.transactional
            else [
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                ("List-Id", factory.list_id or ""),
            ]
        )
        fixed_json = b"".join(_header(k, v) + b"," for k, v in fixed)
        name = b'{"Name":"List-Unsubscribe","Value":'
        message_id = b'{"Name":"Message-ID","Value":'
        tail = {
            "MessageStream": self.message_stream,
            "Tag": compiled.slug[:1000],
        }
        after = {**self.tracking}
        if factory.reply_to_display:
            after["ReplyTo"] = factory.reply_to_display
        return _Parts(
            head=b'{"From":' + json_string(factory.sender_display) + b',"To":',
            subjects={},
            headers=_members(tail)
            + b',"Headers":['
            + (name if not factory.transactional else fixed_json + message_id),
            unsubscribe=None if factory.transactional else b"}," + fixed_json + message_id,
            metadata=b'}],"Metadata":{"campaign":'
            + json_string(compiled.slug)
            + b',"subscriber":"',
            bodies=b'"}' + _members(after) + b',"HtmlBody":"',
        )

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        """The batch as one JSON array, written in one pass from shared pieces, and sent
        as they are (never joined whole)."""
        out: list[bytes] = [b"["]
        for i, message in enumerate(messages):
            if i:
                out.append(b",")
            self.write_message(message, out)
        out.append(b"]")
        return HTTPRequest("/email/batch", Body(out), self.headers)

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        code = data.get("ErrorCode") if isinstance(data, dict) else None
        if code in _ACCOUNT:
            raise CredentialsError(
                f"Postmark refused the request (HTTP {response.status_code}: {_ACCOUNT[code]}).",
                f"{self.credentials_hint} Nothing was sent.",
            )
        if response.status_code != 200:
            raise DeliveryError(
                f"Postmark rejected the batch (HTTP {response.status_code}: {_message(data)}).",
                "Nothing in this batch was sent. Fix the cause and run the same send again.",
            )
        if not isinstance(data, list) or len(data) != len(messages):
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                "Postmark answered 200 but not with one result per message: "
                f"{response.text[:200]!r}",
            )
        return [self._result(m, item) for m, item in zip(messages, data, strict=True)]

    @staticmethod
    def _result(message: OutgoingMessage, item: Any) -> SendResult:
        sid = message.recipient.subscriber_id
        if not isinstance(item, dict):
            return SendResult(
                sid, DeliveryStatus.UNKNOWN, error=f"unreadable result {item!r}", raw=item
            )
        code = item.get("ErrorCode")
        if code == 0 and item.get("MessageID"):
            return SendResult(sid, DeliveryStatus.SENT, message_id=str(item["MessageID"]), raw=item)
        error = f"Postmark {code}: {item.get('Message', '')}"
        if code == _INACTIVE:
            return SendResult(sid, DeliveryStatus.REJECTED, error=error, suppress=True, raw=item)
        if code == _INVALID_REQUEST:
            bad_address = "address" in str(item.get("Message", "")).lower()
            return SendResult(
                sid, DeliveryStatus.INVALID, error=error, suppress=bad_address, raw=item
            )
        return SendResult(sid, DeliveryStatus.FAILED, error=error, raw=item)


def postmark_tracking(clicks: bool, opens: bool) -> dict[str, Any]:
    """Each message's tracking fields, on or explicitly off (so that a server's default
    cannot track readers): ``TrackLinks`` "HtmlAndText" follows links in both parts,
    "None" none; ``TrackOpens`` adds Postmark's image or not."""
    return {"TrackOpens": opens, "TrackLinks": "HtmlAndText" if clicks else "None"}


def message_json(
    message: OutgoingMessage, message_stream: str, tracking: dict[str, Any]
) -> dict[str, Any]:
    """The documented shape of one message of Postmark's batch, as a plain dict. Its bytes
    on the wire are ``json.dumps(shape, ensure_ascii=False, separators=(",", ":"))`` in
    UTF-8; ``PostmarkTransport.write_message`` writes exactly those, faster."""
    factory = message.factory
    headers = {**message.list_headers(), "Message-ID": message.message_id}
    fields: dict[str, Any] = {
        "From": factory.sender_display,
        "To": message.to_display,
        "Subject": message.subject,
        "MessageStream": message_stream,
        "Tag": factory.compiled.slug[:1000],
        "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
        "Metadata": {
            "campaign": factory.compiled.slug,
            "subscriber": str(message.recipient.subscriber_id),
        },
        **tracking,
    }
    if factory.reply_to_display:
        fields["ReplyTo"] = factory.reply_to_display
    fields["HtmlBody"] = message.html
    fields["TextBody"] = message.text
    return fields


@dataclass(frozen=True, slots=True)
class _Parts:
    """A campaign's pieces of every Postmark message, encoded once (see ``_parts``)."""

    head: bytes  # {"From":...,"To":
    subjects: dict[int, bytes]  # ,"Subject":... of each variant whose subject is static
    headers: bytes  # ,"MessageStream":...,"Tag":...,"Headers":[ up to the first value
    unsubscribe: bytes | None  # after List-Unsubscribe's value, up to Message-ID's
    metadata: bytes  # after Message-ID's value, up to the subscriber id
    bodies: bytes  # after the subscriber id, up to the HTML


def _header(name: str, value: str) -> bytes:
    return b'{"Name":' + json_string(name) + b',"Value":' + json_string(value) + b"}"


def _members(fields: dict[str, Any]) -> bytes:
    """``,"key":value`` for each field, compact, as json.dumps writes them."""
    return b"".join(b"," + json_string(k) + b":" + orjson.dumps(v) for k, v in fields.items())


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('ErrorCode', '?')} {data.get('Message', '')}".strip()
    return "no readable error message"


K = EventKind


# -- events ---------------------------------------------------------------------------
# Bounce `Type` -> kind, with its TypeCode (Postmark's bounce API reference, "Bounce types",
# postmarkapp.com/developer/api/bounce-api; postmark.js src/client/models/bounces/Bounce.ts).
POSTMARK_BOUNCE_TYPES: dict[str, tuple[int, EventKind]] = {
    "HardBounce": (1, K.BOUNCED),  # unknown user, mailbox not found
    "Transient": (2, K.DEFERRED),  # message delayed (network trouble): Postmark retries
    "Unsubscribe": (16, K.UNSUBSCRIBED),  # the reader asked by email to be removed
    "Subscribe": (32, K.SUBSCRIBED),  # an emailed request to join: joining takes consent
    "AutoResponder": (64, K.AUTOREPLIED),  # out of office, on vacation
    "AddressChange": (128, K.AUTOREPLIED),  # "I have a new address": for a person to act on
    "DnsError": (256, K.DEFERRED),  # a temporary DNS error
    "SpamNotification": (512, K.FILTERED),  # a spam filter refused it: about our mail
    "OpenRelayTest": (1024, K.AUTOREPLIED),  # the receiving server testing for open relay
    "Unknown": (2048, K.UNKNOWN),  # Postmark could not classify it
    "SoftBounce": (4096, K.SOFT_BOUNCED),  # mailbox full, account disabled, over quota
    "VirusNotification": (8192, K.FILTERED),  # a virus scanner's warning
    "ChallengeVerification": (16384, K.AUTOREPLIED),  # "prove you are a sender" challenge
    "BadEmailAddress": (100000, K.BOUNCED),  # not a valid address
    "SpamComplaint": (100001, K.COMPLAINED),  # the reader marked it as spam
    "ManuallyDeactivated": (100002, K.DROPPED),  # inactive at Postmark: every send refused
    "Unconfirmed": (100003, K.FAILED),  # registration not confirmed at Postmark: not sent
    "Blocked": (100006, K.FILTERED),  # ISP block for content or blacklisting: about us
    "SMTPApiError": (100007, K.FAILED),  # Postmark's SMTP API refused the message
    "InboundError": (100008, K.UNKNOWN),  # an inbound message Postmark could not deliver
    "DMARCPolicy": (100009, K.FILTERED),  # refused under our domain's DMARC policy
    "TemplateRenderingFailed": (100010, K.FAILED),  # a Postmark template did not render
}
_POSTMARK_TYPE_CODES = {code: name for name, (code, _) in POSTMARK_BOUNCE_TYPES.items()}
# SubscriptionChange with SuppressSending true: its SuppressionReason (Postmark's webhook
# reference, "Subscription change webhook"); SuppressSending false is a reactivation.
POSTMARK_SUPPRESSION_REASONS: dict[str, EventKind] = {
    "HardBounce": K.BOUNCED,
    "SpamComplaint": K.COMPLAINED,
    "ManualSuppression": K.UNSUBSCRIBED,  # the reader unsubscribed through Postmark's link
}
POSTMARK_REACTIVATED = K.SUBSCRIBED  # recorded: coming back takes `subscribers resubscribe`
# RecordType -> (its time field, its kind; None: read from Type or SuppressionReason)
POSTMARK_RECORD_TYPES: dict[str, tuple[str, EventKind | None]] = {
    "Bounce": ("BouncedAt", None),
    "SpamComplaint": ("BouncedAt", K.COMPLAINED),
    "Delivery": ("DeliveredAt", K.DELIVERED),
    "SubscriptionChange": ("ChangedAt", None),
    "Open": ("ReceivedAt", K.OPENED),
    "Click": ("ReceivedAt", K.CLICKED),
}


def _postmark_bounce(item: dict[str, Any]) -> tuple[EventKind, str]:
    name = string(item, "Type")
    code = item.get("TypeCode")
    if name not in POSTMARK_BOUNCE_TYPES and isinstance(code, int) and not isinstance(code, bool):
        name = _POSTMARK_TYPE_CODES.get(code, name)
    kind = POSTMARK_BOUNCE_TYPES[name][1] if name in POSTMARK_BOUNCE_TYPES else K.UNKNOWN
    return kind, name or f"TypeCode {shown(code)}"


_EVENT_ID_PREFIX = {"Bounce": "bounce", "SpamComplaint": "complaint"}  # records with an ID


def _postmark_kind(
    record: str, kind: EventKind | None, item: dict[str, Any]
) -> tuple[EventKind, str | None]:
    """A record's kind (read from its Type or SuppressionReason when its RecordType does
    not fix it) and its detail."""
    if record == "Bounce":
        kind, bounce_type = _postmark_bounce(item)
        return kind, string(item, "Description") or bounce_type
    if record == "SubscriptionChange":
        reason = string(item, "SuppressionReason") or ""
        if item.get("SuppressSending") is True:
            kind = POSTMARK_SUPPRESSION_REASONS.get(reason, K.UNKNOWN)
        else:
            kind = POSTMARK_REACTIVATED
        return kind, reason or string(item, "Origin")
    assert kind is not None
    return kind, string(item, "OriginalLink") if record == "Click" else None


def _postmark_key(
    item: dict[str, Any],
    record: str,
    record_id: str | None,
    message_id: str | None,
    occurred_at: str | None,
) -> str:
    """The record's replay key: its ID, else (Delivery, SubscriptionChange, Open, Click
    have no id of their own) its message and time, else its content."""
    if record_id:
        return replay_key("record", f"{record}:{record_id}")
    if message_id:
        return replay_key("record", f"{record}:{message_id}:{occurred_at or ''}")
    return content_key(item)


def _read_event(item: dict[str, Any]) -> Read:
    record = string(item, "RecordType")
    if record not in POSTMARK_RECORD_TYPES:
        what = f"RecordType {record}" if record else None
        return unknown_event("postmark", item, what, ("Email", "Recipient"), ("MessageID",))
    time_field, kind = POSTMARK_RECORD_TYPES[record]
    occurred_at = iso_time(item, time_field)
    meta = mapping(item, "Metadata")
    record_id = ident(item, "ID")
    message_id = string(item, "MessageID")
    email = string(item, "Email") or string(item, "Recipient")
    kind, detail = _postmark_kind(record, kind, item)
    prefix = _EVENT_ID_PREFIX.get(record)
    event = Event(
        provider="postmark",
        kind=kind,
        email=email,
        provider_message_id=message_id,
        provider_event_id=f"{prefix}-{record_id}" if record_id and prefix else None,
        occurred_at=occurred_at,
        campaign=ours(meta.get("campaign")) or string(item, "Tag"),
        subscriber_id=our_subscriber(meta.get("subscriber")),
        detail=detail,
        raw=item,
        url=string(item, "OriginalLink") if record == "Click" else None,
        user_agent=string(item, "UserAgent") if record in ("Click", "Open") else None,
    )
    return [event], (_postmark_key(item, record, record_id, message_id, occurred_at),)


# -- webhooks: basic auth -----------------------------------------------------------------
def _webhook_key(secret: str) -> tuple[bytes, bytes]:
    user, colon, password = secret.partition(":")
    if not (colon and user and password):
        raise ValueError("it must be user:password, the credentials in Postmark's webhook URL")
    return digest(user.encode()), digest(password.encode())


def _check_webhook(key: tuple[bytes, bytes], request: Request) -> tuple[str, ...]:
    _, credentials = authorization(request, ("basic",))
    user, _, password = credentials.partition(b":")
    # digests of equal length, compared in constant time, both compared whatever the first
    same_user = hmac.compare_digest(digest(user), key[0])
    same_password = hmac.compare_digest(digest(password), key[1])
    if not (same_user & same_password):
        raise Rejected(401, "wrong credentials")
    return ()


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> PostmarkTransport:
    return PostmarkTransport(
        setup.secret("NEWSLETTER_API_KEY"),
        message_stream=setup.option("message_stream"),
        clicks=setup.tracking.clicks,
        opens=setup.tracking.opens,
        **setup.http(),
    )


PROVIDER = Provider(
    name="postmark",
    transport=PostmarkTransport,
    build=_build,
    options=(Option("message_stream", default="broadcast"),),
    secrets=(Secret("NEWSLETTER_API_KEY", "to send through Postmark (its Server API token)"),),
    webhook=Verifier(_webhook_key, _check_webhook),
    read_event=_read_event,
)
