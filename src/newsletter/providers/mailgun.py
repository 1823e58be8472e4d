"""Mailgun batch sending: up to 1000 recipients a request, with recipient-variables.

The body goes once per request with ``%recipient.x%`` placeholders; the
``recipient-variables`` object gives each recipient their own values, so each
gets only their own message (without it, every recipient would see all the
others). Mailgun answers with one id per request and reports per recipient
through events, so results are ``queued``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any

import requests

from ..delivery.base import HTTPRequest, HTTPTransport, json_or_none, results
from ..delivery.encode import PerCampaign, Substitutions, dumps, join
from ..errors import ConfigError, DeliveryError
from ..events import (
    Read,
    content_key,
    mapping,
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
from ..render.message import format_address
from ..webhooks import Rejected, Request, Verifier, checked_timestamp, fresh
from . import Option, Provider, Secret, Setup

if TYPE_CHECKING:
    from ..render.message import SharedContent

REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


def _placeholder(part: str, slot: int) -> str:
    return f"%recipient.{part}{slot}%"


class MailgunTransport(HTTPTransport):
    shared_body = True  # one body per request: every message of a batch of one variant
    name = "mailgun"
    provider = "Mailgun"
    max_batch = 1000
    default_base_url = REGIONS["us"]
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to the Mailgun API key or the domain's sending key, and check "
        '[delivery] domain and region (EU domains need region = "eu").'
    )

    def __init__(
        self,
        api_key: str,
        domain: str,
        region: str | None = None,
        *,
        clicks: bool = False,
        opens: bool = False,
        **kwargs: Any,
    ) -> None:
        if not kwargs.get("base_url"):
            region_key = (region or "us").lower()
            if region_key not in REGIONS:
                raise ConfigError(
                    f"[delivery] region {region!r} is not a Mailgun region.",
                    'Use region = "us" or region = "eu".',
                )
            kwargs["base_url"] = REGIONS[region_key]
        super().__init__(**kwargs)
        self.auth = ("api", api_key)
        self.domain = domain
        self.tracking = mailgun_tracking(clicks, opens)
        self._pieces = PerCampaign()

    def campaign_fields(
        self, message: OutgoingMessage, shared: SharedContent
    ) -> list[tuple[str, str]]:
        """The form's fields that are the same for every reader of a variant (the rest
        are one ``to`` per reader, then ``recipient-variables``)."""
        factory = message.factory
        compiled = factory.compiled
        fields: list[tuple[str, str]] = [
            ("from", factory.sender_display),
            ("subject", shared.subject),
            ("text", shared.text),
            ("html", shared.html),
            ("o:tag", compiled.slug[:128]),
            *self.tracking,
            *(
                [("h:Auto-Submitted", "auto-generated")]
                if factory.transactional
                else [
                    ("h:List-Unsubscribe", "%recipient.list_unsubscribe%"),
                    ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ("h:List-Id", message.list_headers()["List-Id"]),
                ]
            ),
            ("v:campaign", compiled.slug),
            ("v:subscriber", "%recipient.subscriber%"),
        ]
        if factory.reply_to:
            fields.append(("h:Reply-To", format_address(*factory.reply_to)))
        return fields

    @staticmethod
    def variables(message: OutgoingMessage, keys: Substitutions) -> dict[str, str]:
        """The reader's ``recipient-variables``: placeholders are %recipient.KEY%, the
        variables are keyed by KEY."""
        values = keys.values(message)
        values["list_unsubscribe"] = message.list_unsubscribe
        values["subscriber"] = str(message.recipient.subscriber_id)
        return values

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        """multipart/form-data (each field a part without a file name, sent as it is
        rather than percent-encoded), joined once: the variant's fields encoded once,
        then each reader's ``to`` and their entry of ``recipient-variables`` (compact
        JSON)."""
        first = messages[0]
        shared = first.factory.shared_content(first.variant, _placeholder)
        fixed, keys = self._pieces.get(
            first.factory,
            first.variant.number,
            lambda: (
                [_part(n, v.encode("utf-8")) for n, v in self.campaign_fields(first, shared)],
                Substitutions(shared, header_safe, _variable),
            ),
        )
        # drawn for each request, so that no reader's value can know it
        delimiter = b"--" + secrets.token_hex(16).encode("ascii") + b"\r\n"
        pieces: list[bytes] = []
        for part in fixed:
            pieces += (delimiter, part)
        variables: dict[str, bytes] = {}  # one entry per address, as a JSON object keeps
        for message in messages:
            pieces += (delimiter, _TO, message.to_display.encode("utf-8"), b"\r\n")
            variables[message.to_address] = dumps(self.variables(message, keys))
        pieces += (delimiter, _VARIABLES, b"{")
        for address, values in variables.items():
            pieces += (dumps(address), b":", values, b",")
        pieces[-1] = b"}\r\n" if variables else b"{}\r\n"
        pieces.append(delimiter[:-2] + b"--\r\n")
        boundary = delimiter[2:-2].decode("ascii")
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return HTTPRequest(f"/v3/{self.domain}/messages", join(pieces), headers, auth=self.auth)

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        if response.status_code == 200 and isinstance(data, dict) and data.get("id"):
            return results(messages, DeliveryStatus.QUEUED, message_id=str(data["id"]), raw=data)
        if response.status_code == 200:
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"Mailgun answered 200 without a message id: {response.text[:200]!r}",
            )
        message = data.get("message") if isinstance(data, dict) else response.text[:200]
        if response.status_code == 404:
            raise ConfigError(
                f"Mailgun does not know the domain {self.domain!r} ({message}).",
                'Check [delivery] domain, and region = "eu" for a domain in the EU region.',
            )
        raise DeliveryError(
            f"Mailgun rejected the request (HTTP {response.status_code}: {message}).",
            "Nothing in this batch was sent. Fix the cause and run the same send again.",
        )


def _variable(placeholder: str) -> str:
    """The recipient-variables key of a placeholder: %recipient.KEY% -> KEY."""
    return placeholder.removeprefix("%recipient.").removesuffix("%")


def _part(name: str, value: bytes) -> bytes:
    """A form field's part, after its delimiter line."""
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"


_TO = _part("to", b"")[:-2]
_VARIABLES = _part("recipient-variables", b"")[:-2]


def mailgun_tracking(clicks: bool, opens: bool) -> tuple[tuple[str, str], ...]:
    """The request's tracking options, each "yes" or an explicit "no" (which overrides
    the domain's tracking settings for this message)."""
    return (
        ("o:tracking-clicks", "yes" if clicks else "no"),
        ("o:tracking-opens", "yes" if opens else "no"),
    )


K = EventKind


# -- events -------------------------------------------------------------------------------
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
    severity = string(data, "severity") or ""
    reason = string(data, "reason") or ""
    found = MAILGUN_FAILURES.get((severity, reason))
    return found or MAILGUN_OTHER_FAILURES.get(severity, K.UNKNOWN)


def _user_agent(data: dict[str, Any], kind: EventKind) -> str | None:
    """An open's or a click's ``client-info.user-agent``."""
    if kind not in (K.OPENED, K.CLICKED):
        return None
    return string(mapping(data, "client-info"), "user-agent")


def _read_event(item: dict[str, Any]) -> Read:
    data = mapping(item, "event-data") if "event-data" in item else item
    event = string(data, "event") or ""
    event_id = string(data, "id")
    key = replay_key("event", event_id) if event_id else content_key(data)
    kind = _mailgun_kind(event, data)
    if kind is None or (kind == K.UNKNOWN and event != "failed"):
        what = f"event {event}" if event else None
        return unknown_event("mailgun", item, what, keys=(key,))
    variables = mapping(data, "user-variables")
    message_id = string(mapping(mapping(data, "message"), "headers"), "message-id")
    status = mapping(data, "delivery-status")
    found = Event(
        provider="mailgun",
        kind=kind,
        email=string(data, "recipient"),
        provider_message_id=f"<{message_id.strip('<>')}>" if message_id else None,
        provider_event_id=event_id,
        occurred_at=unix_time(data, "timestamp"),
        campaign=ours(variables.get("campaign")),
        subscriber_id=our_subscriber(variables.get("subscriber")),
        detail=string(data, "reason") or string(status, "description") or string(status, "message"),
        raw=item,
        url=string(data, "url") if kind == K.CLICKED else None,
        user_agent=_user_agent(data, kind),
    )
    return [found], (key,)


# -- webhooks: HMAC in the body -----------------------------------------------------------
_MAILGUN_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def _webhook_key(secret: str) -> bytes:
    return secret.encode()


def _check_webhook(key: bytes, request: Request) -> tuple[str, ...]:
    body = request.json()
    if not isinstance(body, dict):
        raise Rejected(400, "expected a JSON object")
    signature = body.get("signature")
    if not isinstance(signature, dict):
        raise Rejected(401, "no signature")
    token, timestamp, given = (signature.get(k) for k in ("token", "timestamp", "signature"))
    if not (isinstance(token, str) and _MAILGUN_TOKEN.fullmatch(token)):
        raise Rejected(401, "malformed token")
    if not isinstance(timestamp, str):
        raise Rejected(401, "malformed timestamp")
    checked_timestamp(timestamp)
    if not (isinstance(given, str) and _HEX_SHA256.fullmatch(given)):
        raise Rejected(401, "malformed signature")
    expected = hmac.new(key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Rejected(401, "bad signature")
    fresh(timestamp, request.now)
    return (f"token:{token}",)


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> MailgunTransport:
    return MailgunTransport(
        setup.secret("NEWSLETTER_API_KEY"),
        domain=setup.option("domain"),
        region=setup.option("region"),
        clicks=setup.tracking.clicks,
        opens=setup.tracking.opens,
        **setup.http(),
    )


PROVIDER = Provider(
    name="mailgun",
    transport=MailgunTransport,
    build=_build,
    options=(
        Option(
            "domain",
            required=True,
            hint='Add domain = "mg.example.org" (your Mailgun sending domain) under [delivery].',
        ),
        Option("region"),  # "us" (the default) or "eu"
    ),
    secrets=(
        Secret(
            "NEWSLETTER_API_KEY", "to send through Mailgun (the API key or a domain sending key)"
        ),
    ),
    webhook=Verifier(_webhook_key, _check_webhook),
    read_event=_read_event,
)
