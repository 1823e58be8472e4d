"""Brevo (formerly Sendinblue): its transactional API, ``POST /v3/smtp/email``, with
``messageVersions`` (up to 1000 a request, one per reader), its webhooks (a bearer token
or basic auth: Brevo signs nothing) and its events.

Each version carries the reader's whole message: subject, HTML, text and headers (their
List-Unsubscribe, and ``X-Mailin-custom``, which comes back in events). Brevo's
``params`` would let one body serve a batch, but its template language reads every
``{{`` and ``{%`` of the body, our literal text included, and says nothing of how it
escapes a value: not safe for content we do not control, so no params are sent (and
their size limits never apply). Brevo answers 201 with one message id per version, in
order: results are ``sent``.

A 400 that calls an address invalid does not say which version holds it: the batch is
split in halves and each half sent again (nothing of a 400 was sent), until the one
reader Brevo refuses is known; it is settled ``invalid`` and everyone else is sent to.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING, Any

import requests

from ..delivery.base import HTTPRequest, HTTPTransport, json_or_none
from ..delivery.encode import PerCampaign, dumps, join
from ..errors import CredentialsError, DeliveryError
from ..events import (
    Malformed,
    Read,
    content_key,
    our_subscriber,
    ours,
    replay_key,
    shown,
    string,
    unix_time,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import OutgoingMessage
from ..render.headers import phrase_words
from ..render.message import json_pieces
from ..webhooks import Rejected, Request, Verifier, authorization, digest
from . import Provider, Secret, Setup

if TYPE_CHECKING:
    from ..render import MessageFactory

MAX_VERSIONS = 1000  # messageVersions per request
# A 400 about a reader's address ("email is not valid in to"), never ours (sender, replyTo):
# only then is the batch split to find the reader.
_READER_ADDRESS = re.compile(r"\bemail\b.*\b(?:in|of) (?:messageVersions\[\d+\]\.)?to\b", re.I)
_OUR_ADDRESS = re.compile(r"sender|reply", re.I)
# What Brevo's names cannot hold as they are: a non-ASCII name with one of these is
# dropped silently (django-anymail's Brevo backend works around it the same way).
_SPECIALS = frozenset('()<>[]:;@\\,."')
# Brevo's error codes that mean the account, not the request, stops the send.
_ACCOUNT = {
    "not_enough_credits": "the account has no email credits left",
    "account_under_validation": "Brevo is still validating the account",
    "permission_denied": "the API key may not send transactional email",
    "unauthorized": "the API key was refused",
}


class BrevoTransport(HTTPTransport):
    name = "brevo"
    provider = "Brevo"
    max_batch = MAX_VERSIONS  # claimed and settled at once
    # Each version is a whole message (about 30 KB with its HTML): 1,000 a request
    # would hold 30 MB a request in flight. 100 keep a send's peak flat and small.
    per_request = 100
    default_base_url = "https://api.brevo.com"
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to a Brevo API v3 key (Brevo > SMTP & API > API keys), "
        "not an SMTP key."
    )

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "api-key": api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._pieces = PerCampaign()

    # -- the request ------------------------------------------------------------------
    @staticmethod
    def _campaign_pieces(factory: MessageFactory) -> tuple[bytes, bytes, str]:
        """What the request holds for the whole campaign, encoded once: ``sender`` and
        ``tags``, ``replyTo`` (with the body's end), and the start of ``X-Mailin-custom``."""
        compiled = factory.compiled
        sender = b'{"sender":' + dumps(_person(*factory.sender)) + b',"subject":'
        end = b"]"
        if factory.reply_to:
            end += b',"replyTo":' + dumps(_person(*factory.reply_to))
        custom = json.dumps({"campaign": compiled.slug}, separators=(",", ":"))[:-1]
        tags = b',"tags":' + dumps([compiled.slug]) + b',"messageVersions":['
        return sender, tags, end + b"}", custom + ',"subscriber":"'

    def version(
        self, message: OutgoingMessage
    ) -> tuple[bytes, bytes, list[bytes], list[bytes], bytes]:
        """One reader's message version, in pieces: up to its subject, the subject (a JSON
        string), its HTML and text (the insides of JSON strings, as the campaign's own
        escaped pieces around the reader's values: never copied per reader), and its end."""
        factory = message.factory
        *_, custom = self._pieces.get(factory, None, lambda: self._campaign_pieces(factory))
        headers = {
            **message.list_headers(),
            "X-Mailin-custom": f'{custom}{message.recipient.subscriber_id}"}}',
        }
        encoded = factory.encoded(message.variant)
        html: list[bytes] = []
        json_pieces(encoded.html_json, message.html_values, html)
        text: list[bytes] = []
        json_pieces(encoded.text_json, message.text_values, text)
        return (
            b'{"to":[' + dumps(_person(message.to_name, message.to_address)) + b'],"subject":',
            dumps(message.subject),
            html,
            text,
            b',"headers":' + dumps(headers) + b"}",
        )

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        """The documented body, as compact JSON joined once from its pieces: the first
        version's subject, HTML and text also go at the top (required there when no
        templateId is given; each version overrides them)."""
        factory = messages[0].factory
        sender, tags, end, _ = self._pieces.get(
            factory, None, lambda: self._campaign_pieces(factory)
        )
        versions = [self.version(m) for m in messages]
        _, subject, html, text, _ = versions[0]
        pieces = [sender, subject, b',"htmlContent":"', *html, b'","textContent":"', *text, b'"']
        pieces.append(tags)
        for head, subject, html, text, tail in versions:
            pieces += (head, subject, b',"htmlContent":"', *html, b'","textContent":"', *text)
            pieces += (b'"', tail, b",")
        pieces[-1] = end
        return HTTPRequest("/v3/smtp/email", join(pieces), self.headers)

    # -- sending, and finding the address Brevo refuses ---------------------------------
    def send_request(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        try:
            return super().send_request(messages)
        except _BadAddress as exc:
            if len(messages) == 1:
                sid = messages[0].recipient.subscriber_id
                return [SendResult(sid, DeliveryStatus.INVALID, error=exc.error, suppress=True)]
        done: list[SendResult] = []
        half = len(messages) // 2
        for part in (messages[:half], messages[half:]):
            try:
                done += self.send_request(part)
            except DeliveryError as exc:
                exc.partial = done + exc.partial
                raise
        return done

    def credentials_error(self, response: requests.Response) -> CredentialsError:
        code, text = _error(response)
        what = _ACCOUNT.get(code or "", "")
        if response.status_code == 403 and code == "account_under_validation":
            return CredentialsError(
                f"Brevo will not send yet: {what} (HTTP 403 {code}: {text}).",
                "Nothing in this batch was sent. Run the same send again once Brevo has "
                "activated the account (Brevo > Account > Plan & usage).",
            )
        return CredentialsError(
            f"Brevo refused the credentials (HTTP {response.status_code} {code or ''}: "
            f"{text}{'; ' + what if what else ''}).",
            f"{self.credentials_hint} Nothing in this batch was sent.",
        )

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        status = response.status_code
        if 200 <= status < 300:
            return self._results(response, messages)
        code, text = _error(response)
        if status == 402:
            raise DeliveryError(
                f"Brevo will not send: {_ACCOUNT['not_enough_credits']} (HTTP 402 "
                f"{code or ''}: {text}).",
                "Nothing in this batch was sent. Add credits or change the plan (Brevo > "
                "Account > Plan & usage), then run the same send again: it continues where "
                "it stopped.",
            )
        if (
            status == 400
            and code == "invalid_parameter"
            and _READER_ADDRESS.search(text)
            and not _OUR_ADDRESS.search(text)
        ):
            raise _BadAddress(f"Brevo: {text}")
        raise DeliveryError(
            f"Brevo rejected the request (HTTP {status} {code or ''}: {text}).",
            "Nothing in this batch was sent. Fix the cause and run the same send again.",
        )

    @staticmethod
    def _results(response: requests.Response, messages: list[OutgoingMessage]) -> list[SendResult]:
        data = json_or_none(response)
        ids = data.get("messageIds") if isinstance(data, dict) else None
        if isinstance(data, dict) and ids is None and len(messages) == 1:
            ids = [data.get("messageId")]
        good = (
            response.status_code == 201
            and isinstance(ids, list)
            and len(ids) == len(messages)
            and all(isinstance(i, str) and i for i in ids)
        )
        if not good:
            error = (
                f"Brevo answered HTTP {response.status_code} without one message id per "
                f"reader: {response.text[:200]!r}"
            )
            return [
                SendResult(m.recipient.subscriber_id, DeliveryStatus.UNKNOWN, error=error)
                for m in messages
            ]
        assert isinstance(ids, list)
        return [
            SendResult(m.recipient.subscriber_id, DeliveryStatus.SENT, message_id=i, raw=data)
            for m, i in zip(messages, ids, strict=True)
        ]


class _BadAddress(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _person(name: str, address: str) -> dict[str, str]:
    """``{"email", "name"}``; a non-ASCII name with a special character goes as RFC 2047
    encoded-words, which Brevo sends on as they are (it drops such a name otherwise)."""
    if name and not name.isascii() and _SPECIALS.intersection(name):
        name = " ".join(phrase_words(name))
    return {"email": address, **({"name": name} if name else {})}


def _error(response: requests.Response) -> tuple[str | None, str]:
    """Brevo's error body, ``{code, message}``: the code, and the message (or the text)."""
    data = json_or_none(response)
    if isinstance(data, dict):
        code = data.get("code")
        message = data.get("message")
        return (
            code if isinstance(code, str) else None,
            " ".join(str(message).split())[:300] if message else "no message",
        )
    return None, " ".join(response.text.split())[:200] or "no message"


K = EventKind


# -- events -------------------------------------------------------------------------------
# `event` -> kind (Brevo's "Transactional webhooks": developers.brevo.com/docs/
# transactional-webhooks; the camelCase spellings as some of its webhooks send them).
BREVO_EVENTS: dict[str, EventKind] = {
    "request": K.QUEUED,  # Brevo took the message and will send it
    "sent": K.QUEUED,  # the same, as the webhook settings name it
    "delivered": K.DELIVERED,
    "deferred": K.DEFERRED,  # the receiving server said later: Brevo retries
    "soft_bounce": K.SOFT_BOUNCED,  # full mailbox, server down: counted
    "softBounce": K.SOFT_BOUNCED,
    "hard_bounce": K.BOUNCED,  # the address does not exist or refuses for good
    "hardBounce": K.BOUNCED,
    "invalid_email": K.BOUNCED,  # not a valid address: never sent, never will be
    "invalid": K.BOUNCED,  # the webhook settings' name for it
    "blocked": K.DROPPED,  # on Brevo's blocklist (it bounced, complained or unsubscribed)
    "spam": K.COMPLAINED,  # the reader marked it as spam
    "unsubscribed": K.UNSUBSCRIBED,  # through Brevo's unsubscribe link or header
    "unsubscribe": K.UNSUBSCRIBED,  # the spelling django-anymail reads
    "error": K.FAILED,  # Brevo could not send it: our request or our account
    "opened": K.OPENED,
    "unique_opened": K.OPENED,  # the first open
    "uniqueOpened": K.OPENED,
    "proxy_open": K.OPENED,  # an open by a mail client's image proxy (Apple MPP)
    "unique_proxy_open": K.OPENED,
    "click": K.CLICKED,
    "list_addition": K.UNKNOWN,  # Brevo's own contact lists: newsletter keeps its own
}


def _metadata(item: dict[str, Any]) -> dict[str, Any]:
    """What we put in ``X-Mailin-custom``: a JSON object as text (anything else: none)."""
    text = item.get("X-Mailin-custom")
    if not isinstance(text, str) or len(text) > 1000:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _occurred_at(item: dict[str, Any]) -> str | None:
    """``ts_epoch`` (milliseconds, UTC); else ``ts_event`` or ``ts`` (seconds)."""
    epoch = item.get("ts_epoch")
    if epoch is None:
        return unix_time(item, "ts_event") or unix_time(item, "ts")
    if isinstance(epoch, str) and epoch.isascii() and epoch.isdigit() and len(epoch) <= 16:
        epoch = int(epoch)
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        raise Malformed(f"ts_epoch {shown(epoch)} is not a time in milliseconds")
    return unix_time({"ts_epoch": epoch / 1000}, "ts_epoch")


def _engagement(kind: EventKind, item: dict[str, Any]) -> dict[str, str | None]:
    """A click's ``link``, and an open's or a click's ``user_agent`` (both top-level
    fields of Brevo's transactional webhook)."""
    if kind not in (K.OPENED, K.CLICKED):
        return {}
    link = string(item, "link") if kind == K.CLICKED else None
    return {"url": link, "user_agent": string(item, "user_agent")}


def _read_event(item: dict[str, Any]) -> Read:
    """A Brevo event. It has no id of its own: it is known by its message id, type,
    address and time, else by its content."""
    event = string(item, "event") or ""
    kind = BREVO_EVENTS.get(event)
    if kind is None or kind == K.UNKNOWN:
        what = f"event {event}" if event else None
        return unknown_event("brevo", item, what, ("email",), ("message-id",))
    email = string(item, "email")
    message_id = string(item, "message-id")
    occurred_at = _occurred_at(item)
    tags = item.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise Malformed("tags is not a list of strings")
    meta = _metadata(item)
    detail = string(item, "reason") or string(item, "link")
    found = Event(
        provider="brevo",
        kind=kind,
        email=email,
        provider_message_id=message_id,
        occurred_at=occurred_at,
        campaign=ours(meta.get("campaign")) or (ours(tags[0]) if tags else None),
        subscriber_id=our_subscriber(meta.get("subscriber")),
        detail=detail,
        raw=item,
        **_engagement(kind, item),
    )
    if message_id and occurred_at:
        key = replay_key("event", f"{event}:{message_id}:{email or ''}:{occurred_at}")
    else:
        key = content_key(item)
    return [found], (key,)


# -- webhooks: a bearer token (or basic auth) ---------------------------------------------
_MIN_SECRET = 16


def _webhook_key(secret: str) -> bytes:
    if len(secret) < _MIN_SECRET or not secret.isascii() or not secret.isprintable():
        raise ValueError(
            f"it must be a random token of at least {_MIN_SECRET} printable ASCII characters, "
            "the one Brevo's webhook sends as its bearer token"
        )
    if " " in secret:
        raise ValueError("it must not contain spaces")
    return digest(secret.encode())


def _check_webhook(key: bytes, request: Request) -> tuple[str, ...]:
    scheme, credentials = authorization(request, ("bearer", "basic"))
    if scheme == "basic":  # the token as the password of the webhook URL's credentials
        credentials = credentials.partition(b":")[2]
    # digests of equal length, compared in constant time
    if not hmac.compare_digest(digest(credentials), key):
        raise Rejected(401, "wrong credentials")
    return ()


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> BrevoTransport:
    return BrevoTransport(setup.secret("NEWSLETTER_API_KEY"), **setup.http())


PROVIDER = Provider(
    name="brevo",
    transport=BrevoTransport,
    build=_build,
    secrets=(Secret("NEWSLETTER_API_KEY", "to send through Brevo (an API v3 key)"),),
    webhook=Verifier(_webhook_key, _check_webhook, batch=None, legacy=False),
    read_event=_read_event,
)
