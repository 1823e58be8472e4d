"""Provider events: each provider's records normalised into ``Event``s, the raw kept.

A webhook body or an export file is JSON read with limits (``load_json``); each record
of it is read by its provider's reader into events and the record's replay keys (the
provider's own id for it). A record whose fields are not of the types the provider
sends is *malformed*: it gives no events and says why, and the others are still read.
Each provider's documented event and bounce types map to a kind in that provider's
tables below, with the reason beside each row; a type no table names is recorded as
``unknown``, its raw record kept, and never suppresses anyone. ``webhooks.py`` checks
where a webhook comes from before any of this.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InputError
from .models import Event, EventKind, RecordedEvent

PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend", "ses")  # whose events are read
MAX_DEPTH = 64  # nesting of JSON arrays and objects; providers' events use fewer than 8
MAX_ID = 2**63 - 1  # ids are stored in 64-bit integer columns
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last second `datetime` can hold


class Malformed(ValueError):
    """A payload, or one record of it, that is not what its provider sends."""


# -- JSON with limits ----------------------------------------------------------------------
def load_json(body: bytes) -> Any:
    """``body`` as JSON; ``Malformed`` when it is not JSON, is nested deeper than
    MAX_DEPTH, or holds a string no database column can store (NUL, lone surrogate)."""
    try:
        data = json.loads(body)
    except RecursionError:  # json gives up past the interpreter's recursion limit
        raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # not JSON, not UTF-8, or an integer of more than 4300 digits
        raise Malformed("not JSON") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise Malformed(f"the JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key in value:
                    _check_string(key)
                value = value.values()
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise Malformed("a JSON string holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed("a JSON string holds a lone surrogate") from None


# -- fields, as each provider documents them ---------------------------------------------------
def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "null")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(item: dict[str, Any], key: str) -> str | None:
    """A string field; None when absent, null or empty."""
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise Malformed(f"{key} is {_kind(value)}, not a string")


def _object(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise Malformed(f"{key} is {_kind(value)}, not an object")


def _ident(item: dict[str, Any], key: str) -> str | None:
    """A provider's id: a string, or a whole number that fits 64 bits."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= 1000:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return str(value)
    raise Malformed(f"{key} {_shown(value)} is not an id")


_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,9})?")


def _unix_time(item: dict[str, Any], key: str) -> str | None:
    """A Unix time in seconds (a number, or a string of one), as ISO 8601 UTC."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{key} {_shown(value)} is not a Unix time")
    if not 0 <= value <= LATEST_TIME:  # also false for NaN
        raise Malformed(f"{key} {_shown(value)} is out of range")
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()


def _iso_time(item: dict[str, Any], key: str) -> str | None:
    """An ISO 8601 time, kept as the provider wrote it."""
    value = _text(item, key)
    if value is None:
        return None
    try:
        if len(value) > 64:
            raise ValueError
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{key} {_shown(value)} is not an ISO 8601 time") from None
    return value


def _ours(value: Any) -> str | None:
    """A value newsletter put in the message (campaign slug): unusable ones are ignored."""
    return value if isinstance(value, str) and value else None


def _subscriber(value: Any) -> int | None:
    """The subscriber id newsletter put in the message, or None when it is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _key(kind: str, value: str) -> str:
    """A replay key: readable when short, else a digest."""
    if len(value) <= 200 and value.isascii() and value.isprintable():
        return f"{kind}:{value}"
    return f"{kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def _content_key(item: Any) -> str:
    """A record without an id of its own is known by its content."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "content:sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- the providers' records -------------------------------------------------------------------
Read = tuple[list[Event], tuple[str, ...]]  # a record's events and its replay keys

K = EventKind

# What a provider's event does to the reader follows from its kind (``EventKind``):
# bounced and dropped suppress, complained and unsubscribed change the status, a soft
# bounce counts toward [delivery] soft_bounce_limit, every other kind is only recorded.
# A type no table names is ``unknown``: recorded with its raw record, never suppressing.


# -- Postmark ---------------------------------------------------------------------------
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
    name = _text(item, "Type")
    code = item.get("TypeCode")
    if name not in POSTMARK_BOUNCE_TYPES and isinstance(code, int) and not isinstance(code, bool):
        name = _POSTMARK_TYPE_CODES.get(code, name)
    kind = POSTMARK_BOUNCE_TYPES[name][1] if name in POSTMARK_BOUNCE_TYPES else K.UNKNOWN
    return kind, name or f"TypeCode {_shown(code)}"


def _postmark(item: dict[str, Any]) -> Read:
    record = _text(item, "RecordType")
    if record not in POSTMARK_RECORD_TYPES:
        what = f"RecordType {record}" if record else None
        return _unknown("postmark", item, what, ("Email", "Recipient"), ("MessageID",))
    time_field, kind = POSTMARK_RECORD_TYPES[record]
    occurred_at = _iso_time(item, time_field)
    meta = _object(item, "Metadata")
    record_id = _ident(item, "ID")
    message_id = _text(item, "MessageID")
    email = _text(item, "Email") or _text(item, "Recipient")
    detail = None
    if record == "Bounce":
        kind, bounce_type = _postmark_bounce(item)
        detail = _text(item, "Description") or bounce_type
    elif record == "SubscriptionChange":
        reason = _text(item, "SuppressionReason") or ""
        if item.get("SuppressSending") is True:
            kind = POSTMARK_SUPPRESSION_REASONS.get(reason, K.UNKNOWN)
        else:
            kind = POSTMARK_REACTIVATED
        detail = reason or _text(item, "Origin")
    elif record == "Click":
        detail = _text(item, "OriginalLink")
    assert kind is not None
    event_id = None
    if record_id and record in ("Bounce", "SpamComplaint"):
        event_id = f"{'bounce' if record == 'Bounce' else 'complaint'}-{record_id}"
    event = Event(
        provider="postmark",
        kind=kind,
        email=email,
        provider_message_id=message_id,
        provider_event_id=event_id,
        occurred_at=occurred_at,
        campaign=_ours(meta.get("campaign")) or _text(item, "Tag"),
        subscriber_id=_subscriber(meta.get("subscriber")),
        detail=detail,
        raw=item,
    )
    if record_id:
        key = _key("record", f"{record}:{record_id}")
    elif message_id:  # Delivery, SubscriptionChange, Open, Click: no id of their own
        key = _key("record", f"{record}:{message_id}:{occurred_at or ''}")
    else:
        key = _content_key(item)
    return [event], (key,)


def _unknown(
    provider: str,
    item: dict[str, Any],
    what: str | None,
    email_fields: tuple[str, ...] = (),
    id_fields: tuple[str, ...] = (),
    keys: tuple[str, ...] | None = None,
) -> Read:
    """A record of a type no table names: recorded as it came, known by ``keys`` (else by
    its content). Its fields' types are not known: only a string where an address or an
    id may be is read."""
    event = Event(
        provider=provider,
        kind=K.UNKNOWN,
        email=_first_string(item, email_fields),
        provider_message_id=_first_string(item, id_fields),
        detail=what and what[:200],
        raw=item,
    )
    return [event], (_content_key(item),) if keys is None else keys


def _first_string(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    found = (item.get(key) for key in keys)
    return next((v for v in found if isinstance(v, str) and 0 < len(v) <= 1000), None)


# -- SendGrid ---------------------------------------------------------------------------
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
        bounce_type = _text(item, "type")
        if bounce_type is None:
            return SENDGRID_UNTYPED_BOUNCE
        return SENDGRID_BOUNCE_TYPES.get(bounce_type, SENDGRID_OTHER_BOUNCE)
    if event == "dropped":
        reason = (_text(item, "reason") or "").strip().lower()
        return SENDGRID_DROP_REASONS.get(reason, SENDGRID_OTHER_DROP)
    return SENDGRID_EVENTS.get(event)


def _sendgrid(item: dict[str, Any]) -> Read:
    event = _text(item, "event") or ""
    event_id = _text(item, "sg_event_id")
    key = _key("event", event_id) if event_id else _content_key(item)
    kind = _sendgrid_kind(event, item)
    if kind is None:
        what = f"event {event}" if event else None
        return _unknown("sendgrid", item, what, ("email",), ("sg_message_id",), (key,))
    message_id = (_text(item, "sg_message_id") or "").split(".")[0] or None
    found = Event(
        provider="sendgrid",
        kind=kind,
        email=_text(item, "email"),
        provider_message_id=message_id,
        provider_event_id=event_id,
        occurred_at=_unix_time(item, "timestamp"),
        campaign=_ours(item.get("campaign")),
        subscriber_id=_subscriber(item.get("subscriber")),
        detail=_text(item, "reason") or _text(item, "response") or _text(item, "url"),
        raw=item,
    )
    return [found], (key,)


# -- Mailgun ----------------------------------------------------------------------------
# `event` -> kind (Mailgun's "Event types": documentation.mailgun.com, user-manual/events).
MAILGUN_EVENTS: dict[str, EventKind | None] = {
    "accepted": K.QUEUED,  # queued at Mailgun
    "rejected": K.FAILED,  # Mailgun refused the request (our setup): nothing was sent
    "delivered": K.DELIVERED,
    "failed": None,  # by `severity` and `reason`: MAILGUN_FAILURES
    "opened": K.OPENED,
    "clicked": K.CLICKED,
    "unsubscribed": K.UNSUBSCRIBED,
    "complained": K.COMPLAINED,
    "stored": K.UNKNOWN,  # an incoming message Mailgun stored: not about our mail
    "list_member_uploaded": K.UNKNOWN,  # Mailgun's own mailing lists: not ours
    "list_member_upload_error": K.UNKNOWN,
}
# A failure's (`severity`, `reason`): "permanent" when Mailgun stops trying, "temporary"
# when it retries (event types; reasons from its events API samples and stats counters).
MAILGUN_FAILURES: dict[tuple[str, str], EventKind] = {
    ("permanent", "bounce"): K.BOUNCED,  # a hard bounce
    ("permanent", "delayed-bounce"): K.BOUNCED,  # a hard bounce that came back later
    ("permanent", "generic"): K.BOUNCED,  # refused for good (e.g. a delayed 5.1.1 bounce);
    # Mailgun lists the address as bounced, so later sends fail as suppress-bounce
    ("permanent", "suppress-bounce"): K.DROPPED,  # not sent: it bounced before
    ("permanent", "suppress-unsubscribe"): K.UNSUBSCRIBED,  # not sent: unsubscribed there
    ("permanent", "suppress-complaint"): K.COMPLAINED,  # not sent: complained before
    ("permanent", "old"): K.SOFT_BOUNCED,  # gave up after retrying temporary failures
    ("temporary", "generic"): K.DEFERRED,  # Mailgun retries
    ("temporary", "espblock"): K.DEFERRED,  # the receiving ESP blocked it for now; retried
    ("temporary", "greylisted"): K.DEFERRED,  # greylisting; retried
}
MAILGUN_OTHER_FAILURES: dict[str, EventKind] = {  # by severity, for a reason not listed
    "permanent": K.SOFT_BOUNCED,  # a cause Mailgun does not name: counted, never at once
    "temporary": K.DEFERRED,
}


def _mailgun_kind(event: str, data: dict[str, Any]) -> EventKind | None:
    if event != "failed":
        return MAILGUN_EVENTS.get(event)
    severity = _text(data, "severity") or ""
    reason = _text(data, "reason") or ""
    found = MAILGUN_FAILURES.get((severity, reason))
    return found or MAILGUN_OTHER_FAILURES.get(severity, K.UNKNOWN)


def _mailgun(item: dict[str, Any]) -> Read:
    data = _object(item, "event-data") if "event-data" in item else item
    event = _text(data, "event") or ""
    event_id = _text(data, "id")
    key = _key("event", event_id) if event_id else _content_key(data)
    kind = _mailgun_kind(event, data)
    if kind is None or (kind == K.UNKNOWN and event != "failed"):
        what = f"event {event}" if event else None
        return _unknown("mailgun", item, what, keys=(key,))
    variables = _object(data, "user-variables")
    message_id = _text(_object(_object(data, "message"), "headers"), "message-id")
    status = _object(data, "delivery-status")
    found = Event(
        provider="mailgun",
        kind=kind,
        email=_text(data, "recipient"),
        provider_message_id=f"<{message_id.strip('<>')}>" if message_id else None,
        provider_event_id=event_id,
        occurred_at=_unix_time(data, "timestamp"),
        campaign=_ours(variables.get("campaign")),
        subscriber_id=_subscriber(variables.get("subscriber")),
        detail=_text(data, "reason") or _text(status, "description") or _text(status, "message"),
        raw=item,
    )
    return [found], (key,)


# -- Resend -----------------------------------------------------------------------------
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
    bounce_type = _text(bounce, "type") or ""
    found = RESEND_BOUNCES.get((bounce_type, _text(bounce, "subType") or ""))
    return found or RESEND_OTHER_BOUNCES.get(bounce_type, RESEND_OTHER_BOUNCE)


def _resend(item: dict[str, Any]) -> Read:
    """A Resend event; its replay key is the request's ``svix-id`` (no id in the body)."""
    name = _text(item, "type") or ""
    data = _object(item, "data")
    bounce = _object(data, "bounce")
    kind = _resend_kind(name, bounce)
    if kind is None or kind == K.UNKNOWN:
        events, _ = _unknown("resend", item, f"type {name}" if name else None)
        return events, ()
    tags = data.get("tags")
    if isinstance(tags, list):  # the API's form, [{name, value}]
        tags = {
            t["name"]: t.get("value")
            for t in tags
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        }
    tags = tags if isinstance(tags, dict) else {}
    recipients = data.get("to")
    if isinstance(recipients, str):
        recipients = [recipients]
    if recipients is not None and not (
        isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)
    ):
        raise Malformed("data.to is not a list of addresses")
    common = {
        "provider": "resend",
        "kind": kind,
        "provider_message_id": _text(data, "email_id"),
        "occurred_at": _iso_time(item, "created_at"),
        "campaign": _ours(tags.get("campaign")),
        "subscriber_id": _subscriber(tags.get("subscriber")),
        "detail": _text(bounce, "message"),
        "raw": item,
    }
    return [Event(email=email or None, **common) for email in recipients or [None]], ()


# -- Amazon SES (through SNS) -------------------------------------------------------------
# `eventType` (configuration-set event publishing) or `notificationType` (identity
# notifications) -> kind (SES developer guide, "Contents of event data that Amazon SES
# publishes to Amazon SNS" and "Amazon SNS notification contents for Amazon SES").
SES_EVENTS: dict[str, EventKind | None] = {
    "Bounce": None,  # by bounceType and bounceSubType: SES_BOUNCES
    "Complaint": None,  # by complaintSubType and complaintFeedbackType: SES_COMPLAINTS
    "Delivery": K.DELIVERED,
    "Send": K.SENT,  # the request succeeded and SES will try to deliver
    "Reject": K.FAILED,  # SES found a virus in our message and did not send it
    "Open": K.OPENED,
    "Click": K.CLICKED,
    "Rendering Failure": K.FAILED,  # a template did not render: not sent
    "DeliveryDelay": K.DEFERRED,  # a temporary issue (its delayType): SES keeps trying
    "Subscription": None,  # SES list management: by newTopicPreferences.unsubscribeAll
    "AmazonSnsSubscriptionSucceeded": K.UNKNOWN,  # SES's test message for a new topic
}
# A bounce's (bounceType, bounceSubType), "Bounce types". SES publishes only hard bounces
# and soft bounces it no longer retries.
SES_BOUNCES: dict[tuple[str, str], EventKind] = {
    ("Permanent", "General"): K.BOUNCED,  # "remove the recipient's address from your list"
    ("Permanent", "NoEmail"): K.BOUNCED,  # the address does not exist
    ("Permanent", "Suppressed"): K.DROPPED,  # on SES's suppression list: not sent
    ("Permanent", "OnAccountSuppressionList"): K.DROPPED,  # on the account's list: not sent
    ("Transient", "General"): K.SOFT_BOUNCED,  # "you may be able to send ... in the future"
    ("Transient", "MailboxFull"): K.SOFT_BOUNCED,
    ("Transient", "MessageTooLarge"): K.FAILED,  # about our message, not the address
    ("Transient", "ContentRejected"): K.FILTERED,  # our content
    ("Transient", "AttachmentRejected"): K.FILTERED,  # our attachment
    ("Undetermined", "Undetermined"): K.SOFT_BOUNCED,  # SES could not tell why: counted
}
SES_OTHER_BOUNCES: dict[str, EventKind] = {  # by bounceType, for a subtype not listed
    "Permanent": K.BOUNCED,
    "Transient": K.SOFT_BOUNCED,
    "Undetermined": K.SOFT_BOUNCED,
}
SES_OTHER_BOUNCE = K.SOFT_BOUNCED  # a bounceType not listed: counted, never at once
# A complaint's complaintFeedbackType, "Complaint types" (the IANA feedback types).
SES_COMPLAINTS: dict[str, EventKind] = {
    "abuse": K.COMPLAINED,  # unsolicited email
    "fraud": K.COMPLAINED,  # reported as fraud or phishing
    "other": K.COMPLAINED,  # any other complaint
    "virus": K.FILTERED,  # a virus report on the message, not the reader's wish
    "auth-failure": K.FILTERED,  # a report that our authentication failed
    "not-spam": K.UNKNOWN,  # a correction: "not spam"; recorded, nobody resubscribed by it
}
SES_UNTYPED_COMPLAINT = K.COMPLAINED  # no feedback report, as most ISPs send: a complaint
SES_SUPPRESSED_COMPLAINT = K.COMPLAINED  # complaintSubType OnAccountSuppressionList
SES_UNSUBSCRIBED_ALL = K.UNSUBSCRIBED  # Subscription with unsubscribeAll: out of every topic
SES_TOPICS_CHANGED = K.UNKNOWN  # other topic preferences: newsletter uses no SES topics
# Where each event type keeps its own object (with its timestamp) and its recipients.
_SES_OBJECTS = {
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "Delivery": ("delivery", "recipients"),
    "Send": ("send", None),
    "Reject": ("reject", None),
    "Open": ("open", None),
    "Click": ("click", None),
    "Rendering Failure": ("failure", None),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
    "Subscription": ("subscription", None),
}


def _ses_kind(name: str, data: dict[str, Any]) -> EventKind | None:
    if name == "Bounce":
        bounce = _object(data, "bounce")
        bounce_type = _text(bounce, "bounceType") or ""
        found = SES_BOUNCES.get((bounce_type, _text(bounce, "bounceSubType") or ""))
        return found or SES_OTHER_BOUNCES.get(bounce_type, SES_OTHER_BOUNCE)
    if name == "Complaint":
        complaint = _object(data, "complaint")
        if _text(complaint, "complaintSubType") == "OnAccountSuppressionList":
            return SES_SUPPRESSED_COMPLAINT
        feedback = _text(complaint, "complaintFeedbackType")
        return (
            SES_UNTYPED_COMPLAINT if feedback is None else SES_COMPLAINTS.get(feedback, K.UNKNOWN)
        )
    if name == "Subscription":
        topics = _object(_object(data, "subscription"), "newTopicPreferences")
        return SES_UNSUBSCRIBED_ALL if topics.get("unsubscribeAll") is True else SES_TOPICS_CHANGED
    return SES_EVENTS.get(name)


def _ses_message(item: dict[str, Any]) -> dict[str, Any]:
    """The SES event of an SNS envelope (as posted, or as saved from a queue), or the SES
    event itself (as exported from a Firehose stream)."""
    if item.get("Type") != "Notification":
        return item
    text = _text(item, "Message")
    if text is None:
        raise Malformed("Message is empty")
    data = load_json(text.encode("utf-8"))
    if not isinstance(data, dict):
        raise Malformed("Message is not a JSON object")
    return data


def _ses_recipients(data: dict[str, Any], name: str, mail: dict[str, Any]) -> list[Any]:
    """Each recipient the event is about: an object with emailAddress, or an address."""
    holder, field_name = _SES_OBJECTS[name]
    where = f"{holder}.{field_name}" if field_name else "mail.destination"
    found = _object(data, holder).get(field_name) if field_name else mail.get("destination")
    if found is None:
        return [None]
    if not isinstance(found, list):
        raise Malformed(f"{where} is {_kind(found)}, not a list")
    for recipient in found:
        if not isinstance(recipient, str | dict):
            raise Malformed(f"{where} holds {_kind(recipient)}")
    return found or [None]


def _ses_tag(tags: dict[str, Any], name: str) -> Any:
    """The first value of an SES message tag (tags are lists of values)."""
    values = tags.get(name)
    return values[0] if isinstance(values, list) and values else None


def _ses(item: dict[str, Any]) -> Read:
    """An SES event; a webhook's replay key is the SNS ``MessageId`` (``webhooks.py``)."""
    data = _ses_message(item)
    name = _text(data, "eventType") or _text(data, "notificationType") or ""
    kind = _ses_kind(name, data)
    if kind is None or name not in _SES_OBJECTS:
        what = f"eventType {name}" if name else None
        events, _ = _unknown("ses", data, what)
        return events, ()
    mail = _object(data, "mail")
    tags = _object(mail, "tags")
    own = _object(data, _SES_OBJECTS[name][0])
    occurred_at = _iso_time(own, "timestamp") or _iso_time(mail, "timestamp")
    feedback_id = _text(own, "feedbackId")
    summary = _ses_summary(name, own)
    events = []
    for recipient in _ses_recipients(data, name, mail):
        email = recipient if isinstance(recipient, str) else None
        detail = summary
        if isinstance(recipient, dict):
            email = _text(recipient, "emailAddress")
            detail = _text(recipient, "diagnosticCode") or summary
        events.append(
            Event(
                provider="ses",
                kind=kind,
                email=email or None,
                provider_message_id=_text(mail, "messageId"),
                provider_event_id=f"{feedback_id}:{email or ''}" if feedback_id else None,
                occurred_at=occurred_at,
                campaign=_ours(_ses_tag(tags, "campaign")),
                subscriber_id=_subscriber(_ses_tag(tags, "subscriber")),
                detail=detail,
                raw=data,
            )
        )
    return events, ()


def _ses_summary(name: str, own: dict[str, Any]) -> str | None:
    """What the event's own object says, in a few words."""
    if name == "Bounce":
        parts = (_text(own, "bounceType"), _text(own, "bounceSubType"))
    elif name == "Complaint":
        parts = (_text(own, "complaintFeedbackType"), _text(own, "complaintSubType"))
    elif name == "DeliveryDelay":
        parts = (_text(own, "delayType"),)
    elif name == "Reject":
        parts = (_text(own, "reason"),)
    elif name == "Rendering Failure":
        parts = (_text(own, "errorMessage"),)
    elif name == "Click":
        parts = (_text(own, "link"),)
    elif name == "Delivery":
        parts = (_text(own, "smtpResponse"),)
    elif name == "Subscription":
        parts = (_text(own, "contactList"),)
    else:
        parts = ()
    return " ".join(p for p in parts if p) or None


READERS: dict[str, Callable[[dict[str, Any]], Read]] = {
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "resend": _resend,
    "ses": _ses,
}


# -- records --------------------------------------------------------------------------------
@dataclass
class Record:
    """One record of a payload: its events and replay keys, or why it cannot be read."""

    where: str  # "record 3", or "line 7" of a JSON-lines file
    events: list[Event] = field(default_factory=list)
    keys: tuple[str, ...] = ()
    problem: str | None = None


def read_records(provider: str, items: Iterable[Any], where: str = "record") -> list[Record]:
    """Each item of a payload read by ``provider``'s reader."""
    reader = _reader(provider)
    records = []
    for number, item in enumerate(items, 1):
        record = Record(f"{where} {number}")
        if not isinstance(item, dict):
            record.problem = f"{_kind(item)}, not an event object"
        else:
            try:
                record.events, record.keys = reader(item)
            except Malformed as exc:
                record.problem = str(exc)
        records.append(record)
    return records


def _reader(provider: str) -> Callable[[dict[str, Any]], Read]:
    try:
        return READERS[provider]
    except KeyError:
        raise InputError(
            f"Unknown provider {provider!r}.", f"Use one of: {', '.join(PROVIDERS)}."
        ) from None


def parse(provider: str, body: bytes) -> list[Event]:
    """The events of a JSON array or object of ``provider``'s records; ``InputError``
    when it is not JSON or one of its records is malformed."""
    try:
        data = load_json(body)
    except Malformed as exc:
        raise InputError(f"The {provider} events are not usable: {exc}.") from None
    records = read_records(provider, data if isinstance(data, list) else [data])
    for record in records:
        if record.problem:
            raise InputError(
                f"The {provider} events are not usable: {record.where}: {record.problem}."
            )
    return [event for record in records for event in record.events]


# -- export files ---------------------------------------------------------------------------
def read_export(provider: str, data: bytes) -> list[Record]:
    """The records of an export file: a JSON array, one JSON object, or JSON lines (then
    a line that cannot be read is one record skipped, not the whole file)."""
    _reader(provider)
    try:
        parsed = load_json(data)
    except Malformed as exc:
        numbered = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
        if len(numbered) < 2 or not all(line.lstrip().startswith(b"{") for _, line in numbered):
            raise InputError(
                f"The {provider} events are not usable: {exc}.",
                "Give a JSON array of the provider's event records, or one JSON object per line.",
            ) from None
        return [_export_line(provider, n, line) for n, line in numbered]
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise InputError(
            f"The {provider} events are {_kind(parsed)}, not a JSON array or object.",
            "Give a JSON array of the provider's event records, or one JSON object per line.",
        )
    return read_records(provider, parsed)


def _export_line(provider: str, number: int, line: bytes) -> Record:
    try:
        item = load_json(line)
    except Malformed as exc:
        return Record(f"line {number}", problem=str(exc))
    record = read_records(provider, [item])[0]
    record.where = f"line {number}"
    return record


class EventStore(Protocol):
    def record_event(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent: ...


@dataclass
class ImportReport:
    outcomes: dict[RecordedEvent, int]  # what record_event did, and how often
    skipped: list[Record]  # the malformed records, each with its problem
    read: int  # records read (those of kinds newsletter does not use included)


def import_events(
    store: EventStore, provider: str, data: bytes, soft_bounce_limit: int = 3
) -> ImportReport:
    """Apply the events of an export file; malformed records are skipped and listed."""
    records = read_export(provider, data)
    outcomes: dict[RecordedEvent, int] = {}
    for record in records:
        for event in record.events:
            outcome = store.record_event(event, soft_bounce_limit)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    skipped = [r for r in records if r.problem]
    return ImportReport(outcomes, skipped, len(records) - len(skipped))
